// Registry entry "pndm": PNDM's pseudo linear multistep method (PLMS) with its second-order
// start, as diffusers' PNDMScheduler with skip_prk_steps.
#include <memory>

#include "diffsde/solvers/pndm.hpp"
#include "entry.hpp"

namespace diffsde::builtin {

void register_pndm(Registry<Solver>& registry) {
  registry.add({"pndm",
                "PNDM's pseudo linear multistep method (Liu et al. 2022, PLMS): the DDIM transfer with the "
                "constant Adams–Bashforth weights of up to four eps values, started by a second-order step "
                "(diffusers' PNDMScheduler with skip_prk_steps)",
                {{"warmup", ParamType::string, "second_order",
                  "the first steps: second_order (one second-order step, diffusers' skip_prk_steps) or prk "
                  "(PNDM's pseudo Runge-Kutta for three steps, four evaluations each)",
                  {"second_order", "prk"}}},
                [](const Params& p, const BuildContext&) -> std::unique_ptr<Solver> {
                  PndmSolver::Options o;
                  o.warmup = pndm_warmup_from_string(p.string("warmup"));
                  return std::make_unique<PndmSolver>(o);
                },
                {{{"warmup", "second_order"}}, {{"warmup", "prk"}}}});
}

}  // namespace diffsde::builtin
