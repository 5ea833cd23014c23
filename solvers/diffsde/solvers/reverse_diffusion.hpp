// The reverse-diffusion predictor of score-SDE (Song et al. 2021, Appendix E; their
// ReverseDiffusionPredictor): discretize the forward VP-SDE over a grid step [t1, t0]
// (t1 < t0) the way DDPM does,
//   x(t0) = sqrt(1 - b) x(t1) + sqrt(b) z,   b = 1 - alpha_bar(t0) / alpha_bar(t1),
// i.e. f = (sqrt(1 - b) - 1) x, G = sqrt(b), and run that discrete SDE backwards:
//   x1 = x0 - f(x0) + G^2 s(x0, t0) + G z
//      = x0 + b / (1 + sqrt(1 - b)) x0 - b eps(x0, t0) / sigma(t0) + sqrt(b) z,
// s = -eps / sigma; 1 - sqrt(1 - b) is written as b / (1 + sqrt(1 - b)) and b as
// -expm1(log_alpha_bar(t0) - log_alpha_bar(t1)), both free of cancellation.
// The noise is z = (W(t1) - W(t0)) / sqrt(t0 - t1), so a Brownian tree gives one path at
// every step size. Since b = beta(t0) (t0 - t1) + O(h^2), the scheme agrees with
// Euler-Maruyama to first order: weak order 1 and, the noise being additive, strong order 1.
#pragma once

#include "diffsde/solver.hpp"

namespace diffsde {

// Coefficients of one reverse-diffusion step, x1 = x * x0 + eps * eps(x0, t0) + noise * dW,
// dW = W(t1) - W(t0); b = 1 - alpha_bar(t0) / alpha_bar(t1).
struct ReverseDiffusionCoefficients {
  double b = 0, x = 1, eps = 0, noise = 0;
};
ReverseDiffusionCoefficients reverse_diffusion_coefficients(const ScheduleAt& s0,
                                                            const ScheduleAt& s1);

class ReverseDiffusionSolver final : public Solver {
 public:
  SolverTraits traits() const override;
  std::unique_ptr<Solver> clone() const override {
    return std::make_unique<ReverseDiffusionSolver>();
  }
  void init(SolverContext& context, const State& x, const std::vector<double>& times) override;
  void step(SolverContext& context, std::size_t i, double t0, double t1, State& x) override;

 private:
  State eps_, dw_;
};

}  // namespace diffsde
