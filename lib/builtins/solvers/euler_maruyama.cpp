// Registry entry "euler_maruyama" (no parameters).
#include <memory>

#include "diffsde/solvers/euler_maruyama.hpp"
#include "entry.hpp"

namespace diffsde::builtin {

void register_euler_maruyama(Registry<Solver>& registry) {
  registry.add({"euler_maruyama",
                "Euler-Maruyama discretization of the reverse VP-SDE (strong order 1 for its "
                "additive noise)",
                {},
                [](const Params&, const BuildContext&) -> std::unique_ptr<Solver> {
                  return std::make_unique<EulerMaruyamaSolver>();
                }});
}

}  // namespace diffsde::builtin
