// Euler–Maruyama for the reverse VP-SDE
//   dx = [-beta/2 x - beta s(x, t)] dt + sqrt(beta) dW_bar,  s = -eps / sigma,
// stepping backwards in time (the discretization of Song et al. 2021, eq. 6):
//   x1 = x0 + h [-beta/2 x0 + beta eps(x0, t0) / sigma(t0)] + sqrt(beta(t0)) dW,
// h = t1 - t0 < 0, dW = W(t1) - W(t0) ~ N(0, |h| I). The noise is additive, so the
// scheme has strong order 1 and weak order 1.
#pragma once

#include "diffsde/solver.hpp"

namespace diffsde {

class EulerMaruyamaSolver final : public Solver {
 public:
  SolverTraits traits() const override;
  std::unique_ptr<Solver> clone() const override { return std::make_unique<EulerMaruyamaSolver>(); }
  void init(SolverContext& context, const State& x, const std::vector<double>& times) override;
  void step(SolverContext& context, std::size_t i, double t0, double t1, State& x) override;

 private:
  State eps_, dw_;
};

}  // namespace diffsde
