// Registry entries "ddim" and "ddpm": one DdimSolver with different noise settings.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "diffsde/solvers/ddim.hpp"
#include "entry.hpp"

namespace diffsde::builtin {

namespace {

const ParamSpec kClip{"clip_x0", ParamType::numbers, nullptr,
                      "clamp the predicted x0 to [lo, hi] before the step (off when not given)"};

const ParamSpec kClipped{"use_clipped_model_output", ParamType::boolean, true,
                         "with clip_x0: step with the eps consistent with the clipped x0 (true), or with the "
                         "model's own eps (false, diffusers' default)"};

// The DdimSolver for `o` with clip_x0 from the JSON. Its shape ([lo, hi]) is JSON's to check,
// its values is_valid's; the shape is reported after eta and lo < hi, as it always was.
std::unique_ptr<Solver> make(const Params& p, DdimSolver::Options o) {
  const std::vector<double> clip = p.has("clip_x0") ? p.numbers("clip_x0") : std::vector<double>{};
  const bool shaped = clip.size() == 2;
  if (shaped) o.clip_x0 = std::make_pair(clip[0], clip[1]);
  o.clipped_model_output = p.boolean("use_clipped_model_output");
  if (p.given("use_clipped_model_output") && !p.has("clip_x0"))
    p.fail("use_clipped_model_output", "applies with clip_x0 only");
  checked(p, o);
  if (p.has("clip_x0") && !shaped)
    p.fail("clip_x0", "expected [lo, hi], got " + std::to_string(clip.size()) + " numbers");
  return std::make_unique<DdimSolver>(std::move(o));
}

}  // namespace

void register_ddim(Registry<Solver>& registry) {
  registry.add({"ddim",
                "generalized DDIM step (first-order exponential integrator in lambda); eta = 0 "
                "is deterministic and equals DPM-Solver-1",
                {{"eta", ParamType::number, 0.0,
                  "stochasticity: noise scale eta * sqrt(posterior variance); 0 = deterministic, 1 = DDPM"},
                 kClip, kClipped},
                [](const Params& p, const BuildContext&) -> std::unique_ptr<Solver> {
                  DdimSolver::Options o;
                  o.eta = p.number("eta");
                  return make(p, o);
                },
                {{{"eta", 0.0}}, {{"eta", 0.5}}, {{"eta", 1.0}}}});
  registry.add({"ddpm",
                "DDPM ancestral sampling (Algorithm 2): the generalized DDIM step at eta = 1, or "
                "with the larger 'beta' variance",
                {{"variance", ParamType::string, "posterior",
                  "noise variance: posterior (beta_tilde) or beta (1 - alpha_bar_s/alpha_bar_t)",
                  {"posterior", "beta"}},
                 kClip, kClipped,
                 {"final_noise", ParamType::boolean, false,
                  "beta variance: the final step to t = 0 adds its noise too (diffusers' DDPMScheduler with "
                  "fixed_large when its last timestep is above 0); DDPM's Algorithm 2 adds none there"}},
                [](const Params& p, const BuildContext&) -> std::unique_ptr<Solver> {
                  DdimSolver::Options o;
                  o.name = "ddpm";
                  o.eta = 1;
                  o.noise = p.string("variance") == "beta" ? DdimSolver::Noise::ddpm_beta : DdimSolver::Noise::eta;
                  o.final_noise = p.boolean("final_noise");
                  return make(p, o);
                },
                {{{"variance", "posterior"}}, {{"variance", "beta"}}}});
}

}  // namespace diffsde::builtin
