#include "diffsde/solvers/dpm_solver_adaptive.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "diffsde/error.hpp"
#include "diffsde/solvers/options.hpp"

namespace diffsde {

bool DpmSolverAdaptive::Options::is_valid(std::string* error, std::string* option) const {
  auto fail = [&](const char* name, const std::string& message) {
    return invalid_option(error, option, name, message);
  };
  if (order != 2 && order != 3) return fail("order", "must be 2 or 3, got " + std::to_string(order));
  if (!(rtol >= 0) || !std::isfinite(rtol)) return fail("rtol", "must be >= 0, got " + format_double(rtol));
  if (!(atol > 0) || !std::isfinite(atol)) return fail("atol", "must be > 0, got " + format_double(atol));
  if (!(h_init > 0) || !std::isfinite(h_init))
    return fail("h_init", "must be > 0, got " + format_double(h_init));
  if (!(theta > 0 && theta <= 1)) return fail("theta", "must be in (0, 1], got " + format_double(theta));
  return true;
}

DpmSolverAdaptive::DpmSolverAdaptive(Options options)
    : options_(options), single_(options.algorithm) {
  check_options(options_, "dpm_solver_adaptive");
}

SolverTraits DpmSolverAdaptive::traits() const {
  SolverTraits t;
  t.any_schedule = true;  // only alpha, sigma, lambda and the field f, g^2
  t.name = "dpm_solver_adaptive";
  t.stochastic = false;
  t.adaptive = true;
  t.batch_coupled = true;  // one step size for the whole batch
  t.order = options_.order;
  t.evals_per_step = options_.order;  // per attempt (order - 1 after a rejection)
  // Declared for what it shares with the others; init() asks more: sigma > 0 at every grid
  // time, the end included.
  t.needs_positive_sigma_at_step_start = true;
  return t;
}

void DpmSolverAdaptive::init(SolverContext& context, const State& x,
                             const std::vector<double>& times) {
  for (std::size_t i = 0; i < times.size(); ++i)
    if (!(context.schedule().sigma(times[i]) > 0) || !std::isfinite(times[i]))
      throw Error("dpm_solver_adaptive: grid time t[" + std::to_string(i) + "] = " +
                  format_double(times[i]) +
                  " has sigma = 0, where lambda is infinite and no step size in lambda reaches "
                  "it; end at a small t such as 1e-3");
  single_.resize(x.rows(), x.cols());
  for (State* a : {&eps_, &x_low_, &x_high_}) a->resize(x.rows(), x.cols());
  h_ = options_.h_init;
}

double DpmSolverAdaptive::error_norm() const {
  const auto delta = (x_low_.abs().max(x_high_.abs()) * options_.rtol).max(options_.atol);
  const double e = std::sqrt(
      ((x_high_ - x_low_) / delta).square().rowwise().mean().maxCoeff<Eigen::PropagateNaN>());
  return std::isnan(e) ? std::numeric_limits<double>::infinity() : e;
}

void DpmSolverAdaptive::step(SolverContext& context, std::size_t /*i*/, double t0, double t1,
                             State& x) {
  const Schedule& schedule = context.schedule();
  ScheduleAt s = schedule.at(t0);
  const ScheduleAt end = schedule.at(t1);
  const double direction = end.lambda >= s.lambda ? 1.0 : -1.0;
  const double order = options_.order;
  bool have_eps = false;  // eps(x, s) for the current s
  long attempts = 0;
  while (s.t != end.t) {
    if (++attempts > kMaxAttempts)
      throw Error("dpm_solver_adaptive: more than " + std::to_string(kMaxAttempts) +
                  " step attempts between t = " + format_double(t0) + " and t = " +
                  format_double(t1) + " (reached t = " + format_double(s.t) +
                  "); the tolerance may be too tight for this model");
    const double remaining = std::fabs(end.lambda - s.lambda);
    const bool last = h_ >= remaining;
    const ScheduleAt t = last ? end : schedule.at(schedule.t_of_lambda(s.lambda + direction * h_));
    const double h = std::fabs(t.lambda - s.lambda);  // the step actually tried
    if (!(h > 16 * std::numeric_limits<double>::epsilon() * std::max(1.0, std::fabs(s.lambda))) &&
        !last)
      throw Error("dpm_solver_adaptive: step size underflow at t = " + format_double(s.t) +
                  " (h = " + format_double(h) +
                  " in lambda): the error estimate stays too large (non-finite values, or a "
                  "tolerance below rounding)");
    if (!have_eps) {
      context.eps(x, s.t, eps_);
      have_eps = true;
    }
    single_.step(context, options_.order, s, t, x, eps_, x_high_, &x_low_,
                 options_.order == 2 ? 0.5 : 1.0 / 3.0);
    const double e = error_norm();
    // h_new = theta h E^{-1/order} (Algorithm 4); shrink at most 10x at once, so that an
    // infinite error still leaves a positive step.
    const double factor = std::max(0.1, options_.theta * std::pow(e, -1.0 / order));
    if (e <= 1) {
      context.count_accepted();
      x = x_high_;
      s = t;
      have_eps = false;
      // A step clipped to land on the grid time says nothing against the larger proposal.
      h_ = last ? std::max(h_, h * factor) : h * factor;
    } else {
      context.count_rejected();
      h_ = h * factor;
    }
  }
}

}  // namespace diffsde
