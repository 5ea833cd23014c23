#include "diffsde/solvers/reverse_diffusion.hpp"

#include <cmath>


namespace diffsde {

ReverseDiffusionCoefficients reverse_diffusion_coefficients(const ScheduleAt& s0,
                                                            const ScheduleAt& s1) {
  ReverseDiffusionCoefficients c;
  const double dl = s0.log_alpha_bar - s1.log_alpha_bar;  // < 0 stepping towards the data
  c.b = -std::expm1(dl);
  const double root = std::exp(0.5 * dl);  // sqrt(1 - b)
  c.x = 1 + c.b / (1 + root);              // 2 - sqrt(1 - b)
  c.eps = -c.b / s0.sigma;                 // G^2 s = -b eps / sigma
  c.noise = std::sqrt(c.b / (s0.t - s1.t));  // sqrt(b) z = sqrt(b / (t0 - t1)) dW
  return c;
}

SolverTraits ReverseDiffusionSolver::traits() const {
  SolverTraits t;
  t.name = "reverse_diffusion";
  // any_schedule stays false: b = 1 - alpha_bar(t0)/alpha_bar(t1) is the VP discretisation.
  t.stochastic = true;
  t.order = 1;         // weak
  t.strong_order = 1;  // additive noise
  t.evals_per_step = 1;
  t.needs_decreasing_grid = true;               // the reverse SDE
  t.needs_positive_sigma_at_step_start = true;  // eps / sigma at t0
  t.noise_use =
      "one Brownian increment W(t1) - W(t0) of shape batch x dim per step, the final step "
      "included; z = (W(t1) - W(t0)) / sqrt(t0 - t1), which with Philox or replayed noise "
      "is draw i at step i (up to rounding)";
  return t;
}

void ReverseDiffusionSolver::init(SolverContext& /*context*/, const State& x,
                                  const std::vector<double>& /*times*/) {
  eps_.resize(x.rows(), x.cols());
  dw_.resize(x.rows(), x.cols());
}

void ReverseDiffusionSolver::step(SolverContext& context, std::size_t /*i*/, double t0, double t1,
                                  State& x) {
  const ScheduleAt s0 = context.schedule().at(t0);
  const ScheduleAt s1 = context.schedule().at(t1);
  const ReverseDiffusionCoefficients c = reverse_diffusion_coefficients(s0, s1);
  context.eps(x, t0, eps_);
  context.noise().brownian(t0, t1, dw_);
  x = c.x * x + c.eps * eps_ + c.noise * dw_;
}

}  // namespace diffsde
