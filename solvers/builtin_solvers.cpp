// The built-in solvers: one registration line per solver family.
#include "diffsde/registry.hpp"

namespace diffsde::builtin {

void register_euler_maruyama(Registry<Solver>& registry);
void register_ddim(Registry<Solver>& registry);  // ddim and ddpm
void register_reverse_diffusion(Registry<Solver>& registry);
void register_pc(Registry<Solver>& registry);
void register_pf_ode(Registry<Solver>& registry);

void register_solvers(Registry<Solver>& registry) {
  register_euler_maruyama(registry);
  register_ddim(registry);
  register_reverse_diffusion(registry);
  register_pc(registry);
  register_pf_ode(registry);
}

}  // namespace diffsde::builtin
