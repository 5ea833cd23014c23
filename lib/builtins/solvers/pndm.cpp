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
                {},
                [](const Params&, const BuildContext&) -> std::unique_ptr<Solver> {
                  return std::make_unique<PndmSolver>();
                }});
}

}  // namespace diffsde::builtin
