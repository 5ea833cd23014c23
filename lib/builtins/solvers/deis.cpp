// Registry entry "deis": the multistep exponential integrator of Zhang & Chen.
#include <algorithm>
#include <cmath>
#include <memory>

#include "diffsde/solvers/deis.hpp"
#include "entry.hpp"

namespace diffsde::builtin {

void register_deis(Registry<Solver>& registry) {
  registry.add({"deis",
                "DEIS (Zhang & Chen 2023): multistep exponential integrator; eps extrapolated by "
                "the Lagrange polynomial in lambda through the last `order` values, integrated "
                "exactly against the exponential kernel (phi functions); order 1 = DDIM",
                {{"order", ParamType::integer, 3, "order of the method and number of eps values used: 1, 2 or 3"},
                 {"lower_order_final", ParamType::boolean, false,
                  "the order drops to the number of steps left (the last step is DDIM), as dpm_solver's"},
                 {"orders", ParamType::numbers, nlohmann::json(nullptr),
                  "the order of each step, one per grid step, each in [1, order] and at most its step number "
                  "+ 1 (diffusers' DEISMultistepScheduler's lowering rules); replaces lower_order_final"}},
                [](const Params& p, const BuildContext&) -> std::unique_ptr<Solver> {
                  DeisSolver::Options o;
                  o.order = int_param(p, "order");
                  o.lower_order_final = p.boolean("lower_order_final");
                  o.orders = int_list_param(p, "orders", true);
                  return std::make_unique<DeisSolver>(checked(p, o));
                },
                {{{"order", 1}}, {{"order", 2}}, {{"order", 3}}}});
}

}  // namespace diffsde::builtin
