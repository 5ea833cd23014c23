// Registry entry "deis": the multistep exponential integrator of Zhang & Chen.
#include <memory>

#include "diffsde/solvers/deis.hpp"
#include "entry.hpp"

namespace diffsde::builtin {

void register_deis(Registry<Solver>& registry) {
  registry.add({"deis",
                "DEIS (Zhang & Chen 2023): multistep exponential integrator; eps extrapolated by "
                "the Lagrange polynomial in lambda through the last `order` values, integrated "
                "exactly against the exponential kernel (phi functions); order 1 = DDIM",
                {{"order", ParamType::integer, 3, "order of the method and number of eps values used: 1, 2 or 3"}},
                [](const Params& p, const BuildContext&) -> std::unique_ptr<Solver> {
                  DeisSolver::Options o;
                  o.order = int_param(p, "order");
                  return std::make_unique<DeisSolver>(checked(p, o));
                },
                {{{"order", 1}}, {{"order", 2}}, {{"order", 3}}}});
}

}  // namespace diffsde::builtin
