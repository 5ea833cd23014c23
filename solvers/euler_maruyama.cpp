#include "diffsde/solvers/euler_maruyama.hpp"

#include <cmath>

#include "diffsde/vector_field.hpp"

namespace diffsde {

SolverTraits EulerMaruyamaSolver::traits() const {
  SolverTraits t;
  t.any_schedule = true;  // only alpha, sigma, lambda and the field f, g^2
  t.name = "euler_maruyama";
  t.stochastic = true;
  t.order = 1;         // weak
  t.strong_order = 1;  // additive noise
  t.evals_per_step = 1;
  t.needs_decreasing_grid = true;               // the reverse SDE
  t.needs_positive_sigma_at_step_start = true;  // eps / sigma at t0
  t.noise_use =
      "one Brownian increment W(t1) - W(t0) of shape batch x dim per step; with Philox or "
      "replayed noise this is sqrt(t0 - t1) times draw i at step i";
  return t;
}

void EulerMaruyamaSolver::init(SolverContext& /*context*/, const State& x,
                               const std::vector<double>& /*times*/) {
  eps_.resize(x.rows(), x.cols());
  dw_.resize(x.rows(), x.cols());
}

void EulerMaruyamaSolver::step(SolverContext& context, std::size_t /*i*/, double t0, double t1,
                               State& x) {
  const FieldAt c = field_at(context.schedule(), t0);
  const double h = t1 - t0;
  context.eps(x, t0, eps_);
  context.noise().brownian(t0, t1, dw_);
  // x += h (f x + g^2/sigma eps) + g dW
  const double a = 1.0 + h * c.f;
  const double b = h * c.g2 / c.sigma;
  x = a * x + b * eps_ + c.g() * dw_;
}

}  // namespace diffsde
