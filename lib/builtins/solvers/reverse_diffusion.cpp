// Registry entry "reverse_diffusion" (no parameters).
#include <memory>

#include "diffsde/solvers/reverse_diffusion.hpp"
#include "entry.hpp"

namespace diffsde::builtin {

void register_reverse_diffusion(Registry<Solver>& registry) {
  registry.add({"reverse_diffusion",
                "score-SDE's reverse-diffusion predictor: DDPM-style discretization of the "
                "forward VP-SDE, run backwards (strong order 1 for its additive noise)",
                {},
                [](const Params&, const BuildContext&) -> std::unique_ptr<Solver> {
                  return std::make_unique<ReverseDiffusionSolver>();
                }});
}

}  // namespace diffsde::builtin
