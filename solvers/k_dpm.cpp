#include "diffsde/solvers/k_dpm.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "diffsde/error.hpp"
#include "diffsde/solvers/options.hpp"

namespace diffsde {

namespace {

// k-diffusion's DPMSolver stops an interval once lambda is this close to its end.
constexpr double kEndSlack = 1e-5;

// Where an ancestral step from lambda_s to lambda_t goes deterministically, and the noise
// it adds to x_ve (k-diffusion's get_ancestral_step in sigma_ve = exp(-lambda), with its
// target clipped to lambda_end and sigma_up recomputed for the clipped target).
struct KAncestralStep {
  double lambda_to;
  double sigma_up;  // in sigma_ve units: the std of the noise added to x_ve
};

KAncestralStep k_ancestral_step(double lambda_s, double lambda_t, double lambda_end, double eta) {
  if (!(eta > 0)) return {lambda_t, 0.0};
  const double from = std::exp(-lambda_s), to = std::exp(-lambda_t);
  const double up = std::min(to, eta * std::sqrt(to * to * (from * from - to * to) / (from * from)));
  const double down = std::sqrt(std::max(0.0, to * to - up * up));
  const double lambda_to = std::min(lambda_end, -std::log(down));  // down = 0: lambda_end
  const double reached = std::exp(-lambda_to);
  return {lambda_to, std::sqrt(std::max(0.0, to * to - reached * reached))};
}

// The schedule at lambda, `known` itself where it is already there (no t(lambda) round trip).
ScheduleAt at_lambda(const Schedule& schedule, double lambda, const ScheduleAt& known) {
  return lambda == known.lambda ? known : schedule.at(schedule.t_of_lambda(lambda));
}

const char* const kNoiseUse =
    "one standard-normal draw of shape batch x dim per (accepted) step whose ancestral sigma_up "
    "is > 0, made after the step's evaluations; x_ve += s_noise sigma_up z. The last step to "
    "the end of the run (dpm_fast) or of a grid interval (dpm_adaptive) draws none";

bool finite_at_least(double value, double low) { return std::isfinite(value) && value >= low; }

}  // namespace

std::vector<int> dpm_fast_orders(int nfe) {
  if (nfe < 1) throw Error("dpm_fast: nfe must be >= 1, got " + std::to_string(nfe));
  const int steps = nfe / 3 + 1;
  std::vector<int> orders;
  if (nfe % 3 == 0) {
    orders.assign(static_cast<std::size_t>(steps - 2), 3);
    orders.push_back(2);
    orders.push_back(1);
  } else {
    orders.assign(static_cast<std::size_t>(steps - 1), 3);
    orders.push_back(nfe % 3);
  }
  return orders;
}

// ---- KPidController ----

KPidController::KPidController(double h, double pcoeff, double icoeff, double dcoeff, double order,
                               double accept_safety)
    : h_(h),
      b1_((pcoeff + icoeff + dcoeff) / order),
      b2_(-(pcoeff + 2 * dcoeff) / order),
      b3_(dcoeff / order),
      accept_safety_(accept_safety) {}

bool KPidController::propose(double error) {
  const double inv_error = std::isnan(error) ? 0.0 : 1.0 / (error + kEps);
  if (!started_) {
    errs_[1] = errs_[2] = inv_error;
    started_ = true;
  }
  errs_[0] = inv_error;
  double product = std::pow(errs_[0], b1_) * std::pow(errs_[1], b2_) * std::pow(errs_[2], b3_);
  if (std::isnan(product)) product = 0;  // 0 * inf from an infinite error: shrink
  // The limiter 1 + atan(x - 1) keeps the factor in (1 - pi/2, 1 + pi/2).
  const double factor = 1 + std::atan(product - 1);
  const bool accept = factor >= accept_safety_;
  if (accept) {
    errs_[2] = errs_[1];
    errs_[1] = errs_[0];
  }
  h_ *= factor;
  return accept;
}

// ---- dpm_fast ----

bool KDiffusionDpmFast::Options::is_valid(std::string* error, std::string* option) const {
  if (nfe < 0) return invalid_option(error, option, "nfe", "must be >= 1, got " + std::to_string(nfe));
  if (!finite_at_least(eta, 0)) return invalid_option(error, option, "eta", "must be >= 0, got " + format_double(eta));
  if (!finite_at_least(s_noise, 0))
    return invalid_option(error, option, "s_noise", "must be >= 0, got " + format_double(s_noise));
  return true;
}

KDiffusionDpmFast::KDiffusionDpmFast(Options options) : options_(options), single_(DpmAlgorithm::dpmsolver) {
  check_options(options_, "dpm_fast");
}

SolverTraits KDiffusionDpmFast::traits() const {
  SolverTraits t;
  t.name = "dpm_fast";
  t.stochastic = options_.eta > 0;
  // A last step of order 1 leaves a local error O(h^2), which sets the global order.
  t.order = t.stochastic ? 1 : (options_.nfe == 0 || options_.nfe % 3 == 2) ? 3 : 2;
  t.evals_per_step = 3;
  if (t.stochastic) t.noise_use = kNoiseUse;
  // k-diffusion runs either way without noise (an inversion when sigma grows), only down with.
  t.needs_decreasing_grid = t.stochastic;
  t.needs_positive_sigma_at_step_start = true;
  return t;
}

void KDiffusionDpmFast::init(SolverContext& context, const State& x, const std::vector<double>& times) {
  const Schedule& schedule = context.schedule();
  // K: the intervals that end at sigma > 0 (the driver has made sure no step starts at 0,
  // so only the last interval may end there).
  std::size_t k = 0;
  while (k + 1 < times.size() && schedule.sigma(times[k + 1]) > 0) ++k;
  lambda_end_ = schedule.at(times.empty() ? 1.0 : times[k]).lambda;
  orders_.clear();
  if (k > 0) {
    const int nfe = options_.nfe > 0 ? options_.nfe : 3 * static_cast<int>(k) - 1;
    orders_ = dpm_fast_orders(nfe);
    if (orders_.size() != k)
      throw Error("dpm_fast: nfe = " + std::to_string(nfe) + " takes floor(nfe / 3) + 1 = " +
                  std::to_string(orders_.size()) + " steps, but the grid has " + std::to_string(k) +
                  " steps ending at sigma > 0; give a grid of " + std::to_string(orders_.size()) +
                  " steps (the logSNR grid gives k-diffusion's) or leave nfe out");
  } else if (options_.nfe > 0) {
    throw Error("dpm_fast: nfe = " + std::to_string(options_.nfe) +
                " needs grid steps ending at sigma > 0; the grid has none");
  }
  single_.resize(x.rows(), x.cols());
  eps_.resize(x.rows(), x.cols());
  if (options_.eta > 0) z_.resize(x.rows(), x.cols());
}

void KDiffusionDpmFast::step(SolverContext& context, std::size_t i, double t0, double t1, State& x) {
  const Schedule& schedule = context.schedule();
  const ScheduleAt s = schedule.at(t0);
  const ScheduleAt t = schedule.at(t1);
  context.eps(x, t0, eps_);
  if (!(t.sigma > 0) || i >= orders_.size()) {
    // Denoise to zero: the first-order step to sigma = 0 is the x0 prediction at s.
    single_.step(context, 1, s, t, x, eps_, x);
    return;
  }
  const KAncestralStep a = k_ancestral_step(s.lambda, t.lambda, lambda_end_, options_.eta);
  const ScheduleAt to = at_lambda(schedule, a.lambda_to, t);
  single_.step(context, orders_[i], s, to, x, eps_, x);
  if (a.sigma_up > 0) {
    // x_ve at sigma_down plus the noise is x_ve at t.
    context.noise().normal(z_);
    x = (t.alpha / to.alpha) * x + (t.alpha * a.sigma_up * options_.s_noise) * z_;
  } else if (to.t != t.t) {
    x *= t.alpha / to.alpha;
  }
}

// ---- dpm_adaptive ----

bool KDiffusionDpmAdaptive::Options::is_valid(std::string* error, std::string* option) const {
  auto fail = [&](const char* name, const std::string& message) { return invalid_option(error, option, name, message); };
  if (order != 2 && order != 3) return fail("order", "must be 2 or 3, got " + std::to_string(order));
  if (!finite_at_least(rtol, 0)) return fail("rtol", "must be >= 0, got " + format_double(rtol));
  if (!(atol > 0) || !std::isfinite(atol)) return fail("atol", "must be > 0, got " + format_double(atol));
  if (!(h_init > 0) || !std::isfinite(h_init)) return fail("h_init", "must be > 0, got " + format_double(h_init));
  if (!finite_at_least(pcoeff, 0)) return fail("pcoeff", "must be >= 0, got " + format_double(pcoeff));
  if (!finite_at_least(icoeff, 0)) return fail("icoeff", "must be >= 0, got " + format_double(icoeff));
  if (!finite_at_least(dcoeff, 0)) return fail("dcoeff", "must be >= 0, got " + format_double(dcoeff));
  if (!(pcoeff + icoeff + dcoeff > 0))
    return fail("icoeff", "pcoeff + icoeff + dcoeff must be > 0 (the step size would never respond to the error)");
  if (!(accept_safety > 0) || !std::isfinite(accept_safety))
    return fail("accept_safety", "must be > 0, got " + format_double(accept_safety));
  if (!finite_at_least(eta, 0)) return fail("eta", "must be >= 0, got " + format_double(eta));
  if (!finite_at_least(s_noise, 0)) return fail("s_noise", "must be >= 0, got " + format_double(s_noise));
  return true;
}

KDiffusionDpmAdaptive::KDiffusionDpmAdaptive(Options options)
    : options_(options), single_(DpmAlgorithm::dpmsolver) {
  check_options(options_, "dpm_adaptive");
}

SolverTraits KDiffusionDpmAdaptive::traits() const {
  SolverTraits t;
  t.name = "dpm_adaptive";
  t.stochastic = options_.eta > 0;
  t.order = t.stochastic ? 1 : options_.order;
  t.evals_per_step = options_.order;  // per attempt (order - 1 after a rejection)
  t.adaptive = true;
  t.batch_coupled = true;  // one step size and one error norm for the whole batch
  if (t.stochastic) t.noise_use = kNoiseUse;
  t.needs_decreasing_grid = t.stochastic;  // as dpm_fast
  t.needs_positive_sigma_at_step_start = true;
  return t;
}

void KDiffusionDpmAdaptive::init(SolverContext& context, const State& x, const std::vector<double>& times) {
  // k-diffusion needs sigma_min > 0; a step to sigma = 0 would be the whole last interval's
  // x0 prediction (with a one-interval grid, the whole run's), never what an adaptive run means.
  for (std::size_t i = 0; i < times.size(); ++i)
    if (!(context.schedule().sigma(times[i]) > 0) || !std::isfinite(times[i]))
      throw Error("dpm_adaptive: grid time t[" + std::to_string(i) + "] = " + format_double(times[i]) +
                  " has sigma = 0, where lambda is infinite and no step size in lambda reaches it (k-diffusion "
                  "needs sigma_min > 0); end at a small t such as 1e-3");
  single_.resize(x.rows(), x.cols());
  for (State* a : {&eps_, &x_low_, &x_high_, &x_prev_ve_}) a->resize(x.rows(), x.cols());
  if (options_.eta > 0) z_.resize(x.rows(), x.cols());
  // k-diffusion's x_prev starts as the initial state (in x_ve).
  x_prev_ve_ = x / context.schedule().alpha(times.empty() ? 1.0 : times.front());
  // The controller's order is 1.5 with noise, as k-diffusion's.
  pid_ = KPidController(options_.h_init, options_.pcoeff, options_.icoeff, options_.dcoeff,
                        options_.eta > 0 ? 1.5 : options_.order, options_.accept_safety);
}

void KDiffusionDpmAdaptive::step(SolverContext& context, std::size_t /*i*/, double t0, double t1, State& x) {
  const Schedule& schedule = context.schedule();
  ScheduleAt s = schedule.at(t0);
  const ScheduleAt end = schedule.at(t1);
  const int order = options_.order;
  const double numel = static_cast<double>(x.size());
  bool have_eps = false;  // eps(x, s), reused by the attempts after a rejection
  long attempts = 0;
  // Sampling runs up in lambda; an inversion (eta = 0 only) runs down, with k-diffusion's
  // negative h: the controller keeps |h| and the sign is applied here.
  const bool up = end.lambda >= s.lambda;
  const double sign = up ? 1.0 : -1.0;
  while (up ? s.lambda < end.lambda - kEndSlack : s.lambda > end.lambda + kEndSlack) {
    if (++attempts > kMaxAttempts)
      throw Error("dpm_adaptive: more than " + std::to_string(kMaxAttempts) + " step attempts between t = " +
                  format_double(t0) + " and t = " + format_double(t1) + " (reached t = " + format_double(s.t) +
                  "); the tolerance may be too tight for this model");
    const double lambda_t =
        up ? std::min(end.lambda, s.lambda + pid_.h()) : std::max(end.lambda, s.lambda - pid_.h());
    if (!(sign * (lambda_t - s.lambda) > 16 * std::numeric_limits<double>::epsilon() * std::max(1.0, std::fabs(s.lambda))))
      throw Error("dpm_adaptive: step size underflow at t = " + format_double(s.t) + " (h = " +
                  format_double(pid_.h()) +
                  " in lambda): the error estimate stays too large (non-finite values, or a tolerance below "
                  "rounding)");
    const KAncestralStep a = k_ancestral_step(s.lambda, lambda_t, end.lambda, options_.eta);
    const ScheduleAt to = at_lambda(schedule, a.lambda_to, end);
    if (!have_eps) {
      context.eps(x, s.t, eps_);
      have_eps = true;
    }
    single_.step(context, order, s, to, x, eps_, x_high_, &x_low_, order == 2 ? 0.5 : 1.0 / 3.0);
    // k-diffusion's error norm in x_ve: RMS over every entry of the batch.
    const double inv_alpha = 1.0 / to.alpha;
    const double sum = (((x_low_ - x_high_) * inv_alpha) /
                        ((x_low_.abs() * inv_alpha).max(x_prev_ve_.abs()) * options_.rtol).max(options_.atol))
                           .square()
                           .sum();
    const double error = std::sqrt(sum) / std::sqrt(numel);
    if (pid_.propose(error)) {
      context.count_accepted();
      x_prev_ve_ = x_low_ * inv_alpha;
      const ScheduleAt at_t = at_lambda(schedule, lambda_t, to.lambda == lambda_t ? to : end);
      if (a.sigma_up > 0) {
        context.noise().normal(z_);
        x = (at_t.alpha * inv_alpha) * x_high_ + (at_t.alpha * a.sigma_up * options_.s_noise) * z_;
      } else if (at_t.t != to.t) {
        x = (at_t.alpha * inv_alpha) * x_high_;
      } else {
        x = x_high_;
      }
      s = at_t;
      have_eps = false;
    } else {
      context.count_rejected();
    }
  }
  // Stopped within kEndSlack of the end: k-diffusion's x_ve stands for the end.
  if (s.t != end.t) x *= end.alpha / s.alpha;
}

}  // namespace diffsde
