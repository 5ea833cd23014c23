#include "diffsde/solvers/deis.hpp"

#include <algorithm>
#include <cmath>

#include "diffsde/error.hpp"
#include "diffsde/solvers/ddim.hpp"
#include "diffsde/solvers/exponential.hpp"
#include "diffsde/solvers/options.hpp"

namespace diffsde {

std::array<double, 4> deis_weights(const std::array<double, 4>& r, int k, double h) {
  std::array<double, 4> v{};
  if (k <= 1) return v;
  const LagrangeCoefficients a = lagrange_basis_coefficients(r, k);
  // q! h phi_{q+1}(h) = int_0^h e^{h-u} (u/h)^q du, q = 1..k-1.
  std::array<double, 4> moment{};
  double factorial = 1;
  for (int q = 1; q < k; ++q) {
    factorial *= q;
    moment[q] = factorial * h * phi(q + 1, h);
  }
  for (int j = 0; j < k; ++j)
    for (int q = 1; q < k; ++q) v[j] += a[j][q] * moment[q];
  return v;
}

bool DeisSolver::Options::is_valid(std::string* error, std::string* option) const {
  if (order < 1 || order > kMaxOrder)
    return invalid_option(error, option, "order", "must be 1, 2 or 3, got " + std::to_string(order));
  if (!valid_step_orders(orders, order, "eps value(s)", error, option)) return false;
  if (!orders.empty() && lower_order_final)
    return invalid_option(error, option, "lower_order_final", "give either orders or lower_order_final, not both");
  return true;
}

int DeisSolver::step_order(std::size_t i, std::size_t steps) const {
  if (!options_.orders.empty() && i < options_.orders.size()) return options_.orders[i];
  std::size_t order = std::min(static_cast<std::size_t>(options_.order), i + 1);
  if (options_.lower_order_final && steps > i) order = std::min(order, steps - i);
  return static_cast<int>(order);
}

DeisSolver::DeisSolver(Options options) : options_(options) { check_options(options_, "deis"); }

SolverTraits DeisSolver::traits() const {
  SolverTraits t;
  t.any_schedule = true;  // only alpha, sigma, lambda and the field f, g^2
  t.name = "deis";
  t.order = options_.order;
  t.evals_per_step = 1;
  t.warmup_steps = options_.order - 1;
  t.needs_positive_sigma_at_step_start = true;  // lambda and eps at the start
  return t;
}

void DeisSolver::init(SolverContext& /*context*/, const State& x, const std::vector<double>& times) {
  steps_ = times.empty() ? 0 : times.size() - 1;
  if (!options_.orders.empty() && options_.orders.size() != steps_)
    throw Error("deis: orders has " + std::to_string(options_.orders.size()) + " entries but the grid has " +
                std::to_string(steps_) + " steps");
  for (int j = 0; j < options_.order; ++j) eps_[static_cast<std::size_t>(j)].resize(x.rows(), x.cols());
  count_ = 0;
}

void DeisSolver::step(SolverContext& context, std::size_t i, double t0, double t1, State& x) {
  const ScheduleAt s = context.schedule().at(t0);
  const ScheduleAt t = context.schedule().at(t1);
  // Newest first: the oldest buffer is reused for eps at s.
  const auto n = static_cast<std::size_t>(options_.order);
  std::rotate(eps_.begin(), eps_.begin() + static_cast<std::ptrdiff_t>(n - 1), eps_.begin() + static_cast<std::ptrdiff_t>(n));
  std::rotate(lambda_.begin(), lambda_.begin() + static_cast<std::ptrdiff_t>(n - 1), lambda_.begin() + static_cast<std::ptrdiff_t>(n));
  context.eps(x, t0, eps_[0]);
  lambda_[0] = s.lambda;
  count_ = std::min(count_ + 1, options_.order);

  const DdimCoefficients c = ddim_coefficients(s, t, 0.0);
  // The final step to t = 0 (lambda = +inf) is a DDIM step: it returns the predicted x0.
  const int k = t.sigma == 0 ? 1 : std::min(count_, step_order(i, steps_));
  if (k == 1) {
    x = c.x * x + c.eps * eps_[0];
    return;
  }
  const double h = t.lambda - s.lambda;
  std::array<double, 4> r{};
  for (int j = 1; j < k; ++j) r[static_cast<std::size_t>(j)] = (lambda_[static_cast<std::size_t>(j)] - s.lambda) / h;
  const std::array<double, 4> v = deis_weights(r, k, h);
  x = c.x * x + (c.eps - t.sigma * v[0]) * eps_[0] - t.sigma * v[1] * eps_[1];
  if (k == 3) x -= t.sigma * v[2] * eps_[2];
}

}  // namespace diffsde
