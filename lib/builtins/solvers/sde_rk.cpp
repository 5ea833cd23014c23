// Registry entries of the stochastic Runge–Kutta methods: stochastic_heun and sra.
#include <memory>

#include "diffsde/solvers/sde_rk.hpp"
#include "entry.hpp"

namespace diffsde::builtin {

void register_sde_rk(Registry<Solver>& registry) {
  registry.add({"stochastic_heun",
                "Stochastic Heun (improved Euler) for the reverse VP-SDE's additive noise: strong "
                "order 1, 2 evaluations per step",
                {},
                [](const Params&, const BuildContext&) -> std::unique_ptr<Solver> {
                  return std::make_unique<StochasticHeunSolver>();
                }});
  registry.add({"sra",
                "Roessler's SRA stochastic Runge-Kutta schemes for additive noise (strong order "
                "1.5): sra1 (2 evaluations per step) or sra3 (3)",
                {{"tableau", ParamType::string, "sra1", "SRA tableau: sra1 or sra3", {"sra1", "sra3"}}},
                [](const Params& p, const BuildContext&) -> std::unique_ptr<Solver> {
                  SraSolver::Options o;
                  o.tableau = p.string("tableau");
                  return std::make_unique<SraSolver>(checked(p, o));
                },
                {nlohmann::json{{"tableau", "sra1"}}, nlohmann::json{{"tableau", "sra3"}}}});
}

}  // namespace diffsde::builtin
