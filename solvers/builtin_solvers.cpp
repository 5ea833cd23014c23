// The built-in solvers: one registration line per solver family.
#include "diffsde/registry.hpp"

namespace diffsde::builtin {

void register_euler_maruyama(Registry<Solver>& registry);

void register_solvers(Registry<Solver>& registry) {
  register_euler_maruyama(registry);
}

}  // namespace diffsde::builtin
