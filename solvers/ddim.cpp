#include "diffsde/solvers/ddim.hpp"

#include <cmath>
#include <string>

#include "diffsde/error.hpp"
#include "diffsde/solvers/options.hpp"

namespace diffsde {

DdimCoefficients ddim_coefficients(const ScheduleAt& s, const ScheduleAt& t, double eta) {
  DdimCoefficients c;
  // alpha_t / alpha_s from the log alpha_bars, without forming either ratio's parts.
  c.x = std::exp(0.5 * (t.log_alpha_bar - s.log_alpha_bar));
  if (t.sigma == 0) {  // final step to the data: x_t = x0
    c.eps = -c.x * s.sigma;
    return c;
  }
  const AncestralSplit a = ancestral_split(s, t, eta);
  if (a.capped)
    throw Error("eta = " + format_double(eta) + " is too large for the step from t = " +
                format_double(s.t) + " to t = " + format_double(t.t) +
                " (the noise would exceed sigma_t)");
  const double root = std::sqrt(1 - a.u);
  c.noise = a.noise;
  c.dir = a.dir;
  // sigma_t (sqrt(1 - u) - e^h) with both parts negative: nothing cancels.
  c.eps = t.sigma * (-a.u / (root + 1) - std::expm1(t.lambda - s.lambda));
  return c;
}

AncestralSplit ancestral_split(const ScheduleAt& s, const ScheduleAt& t, double eta) {
  AncestralSplit a;
  if (!(t.sigma > 0)) return a;
  const double em2h = std::expm1(-2 * (t.lambda - s.lambda));  // in (-1, 0] towards the data
  a.u = -(eta * eta * em2h);
  if (a.u > 1) {
    a.u = 1;
    a.capped = true;
    a.noise = t.sigma;
    return a;
  }
  a.noise = eta * t.sigma * std::sqrt(-em2h);
  a.dir = t.sigma * std::sqrt(1 - a.u);
  return a;
}

double ddpm_beta_noise(const ScheduleAt& s, const ScheduleAt& t) {
  if (t.sigma == 0) return 0;
  return std::sqrt(-std::expm1(s.log_alpha_bar - t.log_alpha_bar));
}

bool DdimSolver::Options::is_valid(std::string* error, std::string* option) const {
  if (!(eta >= 0)) return invalid_option(error, option, "eta", "must be >= 0");
  if (final_noise && noise != Noise::ddpm_beta)
    return invalid_option(error, option, "final_noise", "applies to the beta variance (the posterior's is 0 there)");
  if (clip_x0 && !(clip_x0->first < clip_x0->second))
    return invalid_option(error, option, "clip_x0", "needs lo < hi");
  return true;
}

DdimSolver::DdimSolver(Options options) : options_(std::move(options)) {
  check_options(options_, options_.name);
}

SolverTraits DdimSolver::traits() const {
  SolverTraits t;
  t.name = options_.name;
  // The DDIM step and its eta noise are written in alpha, sigma and lambda (exact for every
  // schedule); the DDPM beta variance 1 - alpha_bar_s/alpha_bar_t is VP's.
  t.any_schedule = options_.noise != Noise::ddpm_beta;
  t.stochastic = stochastic();
  t.order = 1;  // ODE order at eta = 0, weak order otherwise
  t.evals_per_step = 1;
  // With noise it samples the reverse process; at eta = 0 it also runs forwards (inversion).
  t.needs_decreasing_grid = t.stochastic;
  t.needs_positive_sigma_at_step_start = true;  // x0 from eps at the start
  // From alpha = 0 it steps with the model's own x0 and eps = x / sigma (step()).
  t.starts_from_pure_noise = true;
  if (t.stochastic)
    t.noise_use =
        std::string("one standard-normal draw of shape batch x dim per step whose noise scale is > 0 ") +
        (options_.final_noise ? std::string("(draw k at the k-th such step), the final step to t = 0 included")
                              : std::string("(draw k at the k-th such step); the final step to t = 0 draws none"));
  return t;
}

void DdimSolver::init(SolverContext& /*context*/, const State& x, const std::vector<double>& /*times*/) {
  eps_.resize(x.rows(), x.cols());
  if (stochastic()) z_.resize(x.rows(), x.cols());
  x0_.resize(x.rows(), x.cols());
}

void DdimSolver::step(SolverContext& context, std::size_t /*i*/, double t0, double t1, State& x) {
  const ScheduleAt s = context.schedule().at(t0);
  const ScheduleAt t = context.schedule().at(t1);
  const double eta = options_.noise == Noise::ddpm_beta ? 1.0 : options_.eta;
  const DdimCoefficients c = ddim_coefficients(s, t, eta);
  double noise = c.noise;
  if (options_.noise == Noise::ddpm_beta)
    noise = t.sigma == 0 && options_.final_noise ? std::sqrt(-std::expm1(s.log_alpha_bar - t.log_alpha_bar))
                                                 : ddpm_beta_noise(s, t);

  if (s.alpha == 0) {
    // From pure noise (lambda = -inf): x = sigma eps there, so eps = x / sigma, and x0 is the
    // model's own prediction; the step is the x0 form (dir = sigma_t sqrt(1 - u), the noise
    // eta sigma_t, since e^(lambda_s - lambda_t) = 0).
    context.x0(x, t0, x0_);
    if (options_.clip_x0) x0_ = x0_.cwiseMax(options_.clip_x0->first).cwiseMin(options_.clip_x0->second);
    eps_ = x / s.sigma;
    x = t.alpha * x0_ + c.dir * eps_;
  } else {
    context.eps(x, t0, eps_);
    if (options_.clip_x0) {
      // x0 form: clamp the data prediction, take eps consistent with it, then step.
      x0_ = ((x - s.sigma * eps_) / s.alpha).cwiseMax(options_.clip_x0->first).cwiseMin(options_.clip_x0->second);
      if (options_.clipped_model_output) eps_ = (x - s.alpha * x0_) / s.sigma;
      x = t.alpha * x0_ + c.dir * eps_;
    } else {
      x = c.x * x + c.eps * eps_;
    }
  }
  if (noise > 0) {
    context.noise().normal(z_);
    x += noise * z_;
  }
}

}  // namespace diffsde
