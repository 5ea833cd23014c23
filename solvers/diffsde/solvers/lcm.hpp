// Multistep consistency sampling of latent consistency models (Luo et al. 2023, "Latent
// Consistency Models"), as diffusers' LCMScheduler runs it. At each grid time t_i the network
// gives x0 = (x - sigma eps)/alpha, and the consistency function's boundary condition mixes it
// with the sample:
//   D = c_out(tau) x0 + c_skip(tau) x,
//   c_skip = sigma_data^2 / ((s tau)^2 + sigma_data^2),  c_out = s tau / sqrt((s tau)^2 + sigma_data^2),
// with tau the network's integer timestep at t_i (tau = N t - 1 on an N-step discrete
// schedule), s = timestep_scaling and sigma_data = 0.5. The next grid time gets D re-noised
// with a fresh draw, x = alpha_{i+1} D + sigma_{i+1} z; the last step returns D itself.
//
// This is not a discretisation of the reverse SDE or the probability-flow ODE: it samples a
// network distilled to map any x_t to the data, and with more steps it does not converge to a
// limit the way the solvers do. It is here to run such networks with their own sampler.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "diffsde/solver.hpp"

namespace diffsde {

class LcmSolver final : public Solver {
 public:
  struct Options {
    double timestep_scaling = 10.0;
    double sigma_data = 0.5;
    // N in tau = N t - 1; 0: the schedule's (a vp_discrete schedule's number of steps, else 1000).
    int train_steps = 0;
    // Clamp x0 to [lo, hi] before the boundary condition (diffusers' clip_sample).
    std::optional<std::pair<double, double>> clip_x0;
    // timestep_scaling > 0, sigma_data > 0, train_steps >= 0, lo < hi (options.hpp).
    bool is_valid(std::string* error = nullptr, std::string* option = nullptr) const;
  };

  // Throws Error unless options.is_valid().
  explicit LcmSolver(Options options);
  SolverTraits traits() const override;
  std::unique_ptr<Solver> clone() const override { return std::make_unique<LcmSolver>(options_); }
  void init(SolverContext& context, const State& x, const std::vector<double>& times) override;
  void step(SolverContext& context, std::size_t i, double t0, double t1, State& x) override;

  // The boundary condition's (c_skip, c_out) at the network timestep tau.
  std::pair<double, double> scalings(double tau) const;

 private:
  Options options_;
  std::size_t steps_ = 0;
  double train_steps_ = 1000;
  State eps_, x0_, z_;
};

}  // namespace diffsde
