// Registry entry "pc": predictor-corrector sampling around a reverse-SDE predictor.
#include <memory>
#include <string>

#include "diffsde/solvers/ddim.hpp"
#include "diffsde/solvers/euler_maruyama.hpp"
#include "diffsde/solvers/pc.hpp"
#include "diffsde/solvers/reverse_diffusion.hpp"
#include "entry.hpp"

namespace diffsde::builtin {

namespace {

// The predictors pc offers, each with the defaults of its registry entry. Made here rather
// than through solver_registry(), so that pc does not depend on what else is registered.
std::unique_ptr<Solver> make_predictor(const std::string& name) {
  if (name == "euler_maruyama") return std::make_unique<EulerMaruyamaSolver>();
  if (name == "ddpm") {
    DdimSolver::Options o;
    o.name = "ddpm";
    o.eta = 1;
    o.noise = DdimSolver::Noise::eta;  // variance "posterior"
    return std::make_unique<DdimSolver>(o);
  }
  return std::make_unique<ReverseDiffusionSolver>();
}

}  // namespace

void register_pc(Registry<Solver>& registry) {
  registry.add(
      {"pc",
       "predictor-corrector sampler of score-SDE: n_steps Langevin corrector steps at t0, then "
       "a reverse-SDE predictor step from t0 to t1",
       {{"predictor", ParamType::string, "reverse_diffusion",
         "the predictor: a reverse-SDE solver, with its default parameters",
         {"euler_maruyama", "reverse_diffusion", "ddpm"}},
        {"corrector", ParamType::string, "langevin",
         "the corrector: langevin (score-SDE's LangevinCorrector) or none", {"langevin", "none"}},
        {"snr", ParamType::number, 0.16, "signal-to-noise ratio of the Langevin step, > 0"},
        {"n_steps", ParamType::integer, 1, "corrector steps per grid step, >= 1"},
        {"step_size", ParamType::string, "sigma",
         "Langevin step size rule: sigma (2 a (snr sigma)^2), sample_norms (score-SDE's norms "
         "per sample) or batch_norms (score-SDE's batch means; depends on the batch)",
         {"sigma", "sample_norms", "batch_norms"}}},
       [](const Params& p, const BuildContext&) -> std::unique_ptr<Solver> {
         PcSolver::Options o;
         o.corrector = pc_corrector_from_string(p.string("corrector"));
         o.step_size = pc_step_size_from_string(p.string("step_size"));
         o.snr = p.number("snr");
         o.n_steps = int_param(p, "n_steps");
         return std::make_unique<PcSolver>(make_predictor(p.string("predictor")), checked(p, o));
       },
       {{{"predictor", "euler_maruyama"}, {"corrector", "none"}},
        {{"predictor", "reverse_diffusion"}, {"corrector", "langevin"}},
        {{"predictor", "euler_maruyama"}, {"corrector", "langevin"}, {"n_steps", 2},
         {"step_size", "sample_norms"}},
        {{"predictor", "ddpm"}, {"corrector", "langevin"}}}});
}

}  // namespace diffsde::builtin
