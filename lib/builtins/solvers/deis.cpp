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
                  if (p.has("orders")) {
                    const auto v = p.numbers("orders");
                    if (v.empty()) p.fail("orders", "must not be empty");
                    for (std::size_t i = 0; i < v.size(); ++i) {
                      if (v[i] != std::floor(v[i]))
                        throw ConfigError(join_path(p.path_of("orders"), i),
                                          "expected an integer order, got " + format_double(v[i]));
                      o.orders.push_back(static_cast<int>(std::max(-1.0, std::min(v[i], 99.0))));
                    }
                  }
                  return std::make_unique<DeisSolver>(checked(p, o));
                },
                {{{"order", 1}}, {{"order", 2}}, {{"order", 3}}}});
}

}  // namespace diffsde::builtin
