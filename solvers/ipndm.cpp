#include "diffsde/solvers/ipndm.hpp"

#include <algorithm>
#include <cmath>

#include "diffsde/error.hpp"
#include "diffsde/solvers/ddim.hpp"
#include "diffsde/solvers/exponential.hpp"
#include "diffsde/solvers/options.hpp"

namespace diffsde {

bool IpndmSolver::Options::is_valid(std::string* error, std::string* option) const {
  if (order < 1 || order > kMaxOrder)
    return invalid_option(error, option, "order", "must be 1, 2, 3 or 4, got " + std::to_string(order));
  return true;
}

IpndmSolver::IpndmSolver(Options options) : options_(options) { check_options(options_, "ipndm"); }

SolverTraits IpndmSolver::traits() const {
  SolverTraits t;
  t.any_schedule = true;  // only alpha, sigma, lambda and the field f, g^2
  t.name = "ipndm";
  t.order = options_.order;
  t.evals_per_step = 1;
  t.warmup_steps = options_.order - 1;
  t.needs_positive_sigma_at_step_start = true;  // rho = sigma / alpha and eps at the start
  return t;
}

void IpndmSolver::init(SolverContext& /*context*/, const State& x, const std::vector<double>& /*times*/) {
  for (int j = 0; j < options_.order; ++j) eps_[static_cast<std::size_t>(j)].resize(x.rows(), x.cols());
  if (options_.order > 1) combined_.resize(x.rows(), x.cols());
  count_ = 0;
}

void IpndmSolver::step(SolverContext& context, std::size_t /*i*/, double t0, double t1, State& x) {
  const ScheduleAt s = context.schedule().at(t0);
  const ScheduleAt t = context.schedule().at(t1);
  const auto n = static_cast<std::ptrdiff_t>(options_.order);
  std::rotate(eps_.begin(), eps_.begin() + (n - 1), eps_.begin() + n);
  std::rotate(rho_.begin(), rho_.begin() + (n - 1), rho_.begin() + n);
  context.eps(x, t0, eps_[0]);
  rho_[0] = s.sigma / s.alpha;
  count_ = std::min(count_ + 1, options_.order);

  const DdimCoefficients c = ddim_coefficients(s, t, 0.0);
  // The final step to t = 0 is a DDIM step (returns the predicted x0), as for the other
  // multistep solvers.
  const int k = t.sigma == 0 ? 1 : count_;
  if (k == 1) {
    x = c.x * x + c.eps * eps_[0];
    return;
  }
  const double step = t.sigma / t.alpha - rho_[0];
  std::array<double, 4> u{};
  for (int j = 1; j < k; ++j) u[static_cast<std::size_t>(j)] = (rho_[static_cast<std::size_t>(j)] - rho_[0]) / step;
  const std::array<double, 4> w = adams_bashforth_weights(u, k);
  combined_ = w[0] * eps_[0] + w[1] * eps_[1];
  for (int j = 2; j < k; ++j) combined_ += w[static_cast<std::size_t>(j)] * eps_[static_cast<std::size_t>(j)];
  x = c.x * x + c.eps * combined_;
}

}  // namespace diffsde
