// The built-in solvers: one declaration and one call per solver family, in the order that
// `diffsde list solvers` shows. Each family's entries are in lib/builtins/solvers/FAMILY.cpp.
#include "diffsde/builtins.hpp"

namespace diffsde::builtin {

void register_euler_maruyama(Registry<Solver>& registry);
void register_ddim(Registry<Solver>& registry);  // ddim and ddpm
void register_reverse_diffusion(Registry<Solver>& registry);
void register_pc(Registry<Solver>& registry);
void register_pf_ode(Registry<Solver>& registry);
void register_dpm_solver(Registry<Solver>& registry);
void register_dpm_solver_adaptive(Registry<Solver>& registry);
void register_dpmpp_sde(Registry<Solver>& registry);  // dpmpp_2m_sde, dpmpp_3m_sde, dpmpp_2s_ancestral, dpmpp_sde
void register_unipc(Registry<Solver>& registry);
void register_deis(Registry<Solver>& registry);
void register_ipndm(Registry<Solver>& registry);
void register_pndm(Registry<Solver>& registry);
void register_lcm(Registry<Solver>& registry);
void register_k_diffusion(Registry<Solver>& registry);  // euler, euler_ancestral, heun, dpm2, dpm2_ancestral, lms
void register_k_dpm(Registry<Solver>& registry);        // dpm_fast, dpm_adaptive
void register_sde_rk(Registry<Solver>& registry);  // stochastic_heun, sra
void register_ggf(Registry<Solver>& registry);

void register_solvers(Registry<Solver>& registry) {
  register_euler_maruyama(registry);
  register_ddim(registry);
  register_reverse_diffusion(registry);
  register_pc(registry);
  register_pf_ode(registry);
  register_dpm_solver(registry);
  register_dpm_solver_adaptive(registry);
  register_dpmpp_sde(registry);
  register_unipc(registry);
  register_deis(registry);
  register_ipndm(registry);
  register_pndm(registry);
  register_lcm(registry);
  register_k_diffusion(registry);
  register_k_dpm(registry);
  register_sde_rk(registry);
  register_ggf(registry);
}

}  // namespace diffsde::builtin
