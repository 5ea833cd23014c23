// Predictor-corrector sampling (Song et al. 2021, Appendix G, the VP version). At every
// grid step [t0 -> t1] it first runs `n_steps` Langevin MCMC steps at t0 (the corrector),
// then one predictor step from t0 to t1, in the order of score-SDE's pc_sampler. The
// predictor is any registered reverse-SDE solver (euler_maruyama, reverse_diffusion, ddpm).
//
// Langevin corrector (score-SDE's LangevinCorrector), for each of n_steps:
//   g = s(x, t0) = -eps(x, t0) / sigma(t0),  z ~ N(0, I),
//   x <- x + step g + sqrt(2 step) z,   step = 2 a (snr ||z|| / ||g||)^2,
// with a = 1 - b = alpha_bar(t0) / alpha_bar(t1) over the current grid step (b as in
// reverse_diffusion): the continuous analogue of score-SDE's alpha_i = 1 - beta_i.
// score-SDE takes ||z|| and ||g|| as means over the batch, which makes a sample depend on
// the rest of its batch. The `step_size` rules:
//   sigma         step = 2 a (snr sigma(t0))^2: the norms replaced by their values
//                 sqrt(d) and sqrt(d) / sigma for a model whose eps has the norm of
//                 standard noise. Independent of x and of the batch (the default).
//   sample_norms  the norms of each sample's own z_i and g_i. Independent of the batch,
//                 but a step size that depends on x biases the corrector's stationary
//                 law (about p_t ||s||^2 instead of p_t; on isotropic Gaussian data the
//                 variance grows by about (1 + 2/d)^2): fine for images, wrong for
//                 low-dimensional data (d = 2: variance x5.8).
//                 A sample with g_i = 0 (or an overflowing step) is left unchanged.
//   batch_norms   score-SDE's batch means, to reproduce it; depends on the batch.
#pragma once

#include <memory>
#include <string>

#include "diffsde/solver.hpp"

namespace diffsde {

class PcSolver final : public Solver {
 public:
  enum class Corrector { langevin, none };
  enum class StepSize { sigma, sample_norms, batch_norms };
  struct Options {
    Corrector corrector = Corrector::langevin;
    StepSize step_size = StepSize::sigma;
    double snr = 0.16;  // signal-to-noise ratio of the Langevin step
    int n_steps = 1;    // corrector steps per grid step
    // snr finite and > 0, n_steps in [1, 10^6] (options.hpp: the message in *error, the
    // option in *option).
    bool is_valid(std::string* error = nullptr, std::string* option = nullptr) const;
  };

  // `predictor` advances the state from t0 to t1 after the corrector. Throws Error without
  // a predictor or unless options.is_valid().
  PcSolver(std::unique_ptr<Solver> predictor, Options options);
  SolverTraits traits() const override;
  // A PcSolver around a clone of the predictor (nullptr if the predictor has none).
  std::unique_ptr<Solver> clone() const override;
  void init(SolverContext& context, const State& x, const std::vector<double>& times) override;
  void step(SolverContext& context, std::size_t i, double t0, double t1, State& x) override;

  const Solver& predictor() const { return *predictor_; }
  const Options& options() const { return options_; }

 private:
  // n_steps Langevin steps at t0 with a = alpha_bar(t0) / alpha_bar(t1).
  void correct(SolverContext& context, double t0, double t1, State& x);

  std::unique_ptr<Solver> predictor_;
  Options options_;
  State g_, z_;
  BatchVector step_;  // per-sample Langevin step sizes
};

// "langevin" | "none"; "sigma" | "sample_norms" | "batch_norms".
std::string to_string(PcSolver::Corrector corrector);
std::string to_string(PcSolver::StepSize step_size);
// Throw Error on unknown names.
PcSolver::Corrector pc_corrector_from_string(const std::string& s);
PcSolver::StepSize pc_step_size_from_string(const std::string& s);

}  // namespace diffsde
