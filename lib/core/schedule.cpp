// Noise schedules of the VP-SDE (see schedule.hpp and docs/schedules_and_grids.md).
//
// Everything derives from l(t) = log alpha_bar(t) = -int_0^t beta. The derived
// quantities use expm1/log1p so that neither end of the time range loses digits:
//   sigma  = sqrt(1 - e^l)          = sqrt(-expm1(l))
//   lambda = log(alpha/sigma)       = (l - log(-expm1(l))) / 2
//   l(lambda) = -log(1 + e^(-2 lambda))  (inverse of the line above).
//
// Out-of-range inputs. The schedules are meant for t in [0, t_max()]. Times t < 0
// are treated as t = 0 (and log alpha_bar values l > 0 as l = 0, giving t = 0).
// Times beyond t_max() follow the schedule's own formula where it still makes sense:
// the linear schedule's polynomial, the cosine formula up to t = 1 (where
// alpha_bar reaches 0; later times are treated as t = 1), and the discrete schedule's
// last segment extended linearly (or, when its last beta is 1, alpha_bar = 0 from t = 1
// on). The inverses are consistent with these extensions.
#include "diffsde/schedule.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "diffsde/error.hpp"

namespace diffsde {

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kInf = std::numeric_limits<double>::infinity();

}  // namespace

// ---------------------------------------------------------------------------
// Conversions and the derived quantities of the base class.

double lambda_of_log_alpha_bar(double l) {
  if (std::isnan(l)) return l;
  if (l >= 0) return kInf;  // t = 0: infinite SNR
  return 0.5 * (l - std::log(-std::expm1(l)));
}

double log_alpha_bar_of_lambda(double lambda) {
  // alpha_bar = sigmoid(2 lambda); both branches avoid overflow of exp.
  if (lambda >= 0) return -std::log1p(std::exp(-2.0 * lambda));
  return 2.0 * lambda - std::log1p(std::exp(2.0 * lambda));
}

double Schedule::alpha_bar(double t) const { return std::exp(log_alpha_bar(t)); }
double Schedule::alpha(double t) const { return std::exp(0.5 * log_alpha_bar(t)); }
double Schedule::sigma(double t) const { return std::sqrt(-std::expm1(log_alpha_bar(t))); }
double Schedule::lambda(double t) const { return lambda_of_log_alpha_bar(log_alpha_bar(t)); }

double Schedule::t_of_lambda(double lambda) const {
  return t_of_log_alpha_bar(log_alpha_bar_of_lambda(lambda));
}

ScheduleAt Schedule::at(double t) const {
  ScheduleAt s;
  s.t = t;
  s.log_alpha_bar = log_alpha_bar(t);
  s.alpha = std::exp(0.5 * s.log_alpha_bar);
  s.sigma = std::sqrt(-std::expm1(s.log_alpha_bar));
  s.lambda = lambda_of_log_alpha_bar(s.log_alpha_bar);
  s.beta = beta(t);
  s.f = -0.5 * s.beta;
  s.g2 = s.beta;
  return s;
}

// ---------------------------------------------------------------------------
// Linear VP schedule (Song et al. 2021, "Score-Based Generative Modeling through
// Stochastic Differential Equations"): beta(t) = beta0 + t (beta1 - beta0), so
// l(t) = -(beta0 t + (beta1 - beta0) t^2 / 2).

VpLinearSchedule::VpLinearSchedule(double beta0, double beta1) : beta0_(beta0), beta1_(beta1) {
  if (!(beta0 > 0) || !std::isfinite(beta0))
    throw Error("vp_linear: beta0 must be a finite number > 0, got " + format_double(beta0));
  if (!(beta1 >= beta0) || !std::isfinite(beta1))
    throw Error("vp_linear: beta1 must be finite and >= beta0, got " + format_double(beta1));
}

double VpLinearSchedule::beta(double t) const {
  t = std::max(t, 0.0);
  return beta0_ + t * (beta1_ - beta0_);
}

double VpLinearSchedule::log_alpha_bar(double t) const {
  t = std::max(t, 0.0);
  return -t * (beta0_ + 0.5 * (beta1_ - beta0_) * t);
}

double VpLinearSchedule::t_of_log_alpha_bar(double l) const {
  // Solve (beta1 - beta0)/2 t^2 + beta0 t - L = 0, L = -l >= 0, for the root t >= 0 in
  // the form without cancellation: t = 2L / (beta0 + sqrt(beta0^2 + 2 (beta1 - beta0) L)).
  // With beta1 == beta0 it reduces to t = L / beta0.
  const double L = std::max(-l, 0.0);
  if (std::isinf(L)) return kInf;
  return 2.0 * L / (beta0_ + std::sqrt(beta0_ * beta0_ + 2.0 * (beta1_ - beta0_) * L));
}

// ---------------------------------------------------------------------------
// Cosine schedule (Nichol & Dhariwal 2021, "Improved Denoising Diffusion Probabilistic
// Models", sec. 3.2): alpha_bar(t) = f(t)/f(0), f(t) = cos^2(theta(t)),
// theta(t) = (t + s)/(1 + s) * pi/2. Hence l(t) = 2 log(cos theta / cos theta0) and
// beta(t) = -l'(t) = pi/(1 + s) tan(theta(t)), which diverges at t = 1; the usable
// range ends at t_max with beta(t_max) = beta_max (as in DPM-Solver's NoiseScheduleVP):
// t_max = atan(beta_max (1 + s)/pi) * 2 (1 + s)/pi - s.

VpCosineSchedule::VpCosineSchedule(double s, double beta_max) : s_(s), beta_max_(beta_max) {
  if (!(s > 0) || !std::isfinite(s))
    throw Error("vp_cosine: s must be a finite number > 0, got " + format_double(s));
  theta0_ = s / (1.0 + s) * kPi / 2.0;
  log_cos_theta0_ = std::log(std::cos(theta0_));
  const double beta_at_0 = kPi / (1.0 + s) * std::tan(theta0_);
  if (!(beta_max > beta_at_0) || !std::isfinite(beta_max))
    throw Error("vp_cosine: beta_max must be finite and larger than beta(0) = " + format_double(beta_at_0) +
                ", got " + format_double(beta_max));
  t_max_ = std::atan(beta_max * (1.0 + s) / kPi) * 2.0 * (1.0 + s) / kPi - s;
}

double VpCosineSchedule::beta(double t) const {
  t = std::clamp(t, 0.0, 1.0);
  return kPi / (1.0 + s_) * std::tan((t + s_) / (1.0 + s_) * kPi / 2.0);
}

double VpCosineSchedule::log_alpha_bar(double t) const {
  t = std::clamp(t, 0.0, 1.0);
  // cos(theta) - cos(theta0) = -2 sin((theta + theta0)/2) sin((theta - theta0)/2), with
  // theta - theta0 = t/(1 + s) * pi/2 taken from t directly, so that
  // log(cos theta / cos theta0) = log1p((cos theta - cos theta0)/cos theta0) keeps full
  // relative accuracy as t -> 0.
  const double delta = t / (1.0 + s_) * kPi / 2.0;
  const double theta = delta + theta0_;
  const double diff = -2.0 * std::sin(0.5 * (theta + theta0_)) * std::sin(0.5 * delta);
  const double ratio_m1 = diff / std::cos(theta0_);
  if (ratio_m1 <= -1.0) return -kInf;  // alpha_bar = 0 at t = 1
  return 2.0 * std::log1p(ratio_m1);
}

double VpCosineSchedule::t_of_log_alpha_bar(double l) const {
  // r = sqrt(alpha_bar) = cos(theta)/cos(theta0); Delta = theta - theta0 from
  //   sin(Delta) = c0 (1 - r^2) / (sqrt(1 - r^2 c0^2) + r s0),
  //   cos(Delta) = r c0^2 + s0 sqrt(1 - r^2 c0^2),
  // with 1 - r^2 c0^2 = s0^2 + c0^2 (1 - r^2) and 1 - r^2 = -expm1(l): no cancellation
  // near t = 0 (r -> 1).
  l = std::min(l, 0.0);
  const double r = std::exp(0.5 * l);
  const double one_minus_r2 = -std::expm1(l);
  const double c0 = std::cos(theta0_), s0 = std::sin(theta0_);
  const double root = std::sqrt(s0 * s0 + c0 * c0 * one_minus_r2);
  const double sin_delta = c0 * one_minus_r2 / (root + r * s0);
  const double cos_delta = r * c0 * c0 + s0 * root;
  const double delta = std::atan2(sin_delta, cos_delta);
  return delta * (1.0 + s_) * 2.0 / kPi;
}

// ---------------------------------------------------------------------------
// Discrete DDPM schedule (Ho et al. 2020, "Denoising Diffusion Probabilistic Models"):
// alpha_bar_n = prod_{k<=n} (1 - beta_k). Seen as a continuous schedule with l piecewise
// linear in t between the knots t_n = (n + 1)/N (and l(0) = 0), as in DPM-Solver's
// discrete NoiseScheduleVP. On segment n, (n/N, (n+1)/N], beta(t) = -N log(1 - beta_n).
//
// A last beta of exactly 1 (zero terminal SNR, Lin et al. 2024) makes l(1) = -inf; on the
// last segment alpha = e^(l/2) is then linear in t instead, alpha(t) = alpha_{N-2} (N - u)
// with u = t N, so l = l_{N-2} + 2 log(N - u), beta = 2N/(N - u) and
// t(l) = (N - e^((l - l_{N-2})/2))/N. At the knots the knot values are returned exactly.

std::vector<double> numpy_linspace(double start, double stop, int num) {
  if (num < 1) return {};
  std::vector<double> v(static_cast<std::size_t>(num));
  if (num == 1) {
    v[0] = start;
  } else {
    const double step = (stop - start) / (num - 1);
    for (int i = 0; i < num; ++i) v[static_cast<std::size_t>(i)] = i * step + start;
    v.back() = stop;
  }
  return v;
}

namespace {

void check_num_steps(int num_steps) {
  if (num_steps < 1) throw Error("vp_discrete: num_steps must be >= 1, got " + std::to_string(num_steps));
}

}  // namespace

VpDiscreteSchedule::VpDiscreteSchedule(std::vector<double> betas) : betas_(std::move(betas)) {
  if (betas_.empty()) throw Error("vp_discrete: betas must not be empty");
  if (betas_.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    throw Error("vp_discrete: too many betas");
  log_alpha_bars_.reserve(betas_.size());
  double sum = 0;
  for (std::size_t n = 0; n < betas_.size(); ++n) {
    const double b = betas_[n];
    const bool last = n + 1 == betas_.size();
    if (!(b > 0 && (b < 1 || (last && b == 1))))
      throw Error("vp_discrete: betas[" + std::to_string(n) + "] = " + format_double(b) +
                  (last ? " is outside (0, 1]" : " is outside (0, 1) (only the last beta may be 1)"));
    sum += std::log1p(-b);
    log_alpha_bars_.push_back(sum);
  }
  zero_terminal_snr_ = betas_.back() == 1;
}

VpDiscreteSchedule VpDiscreteSchedule::linear(double beta_start, double beta_end, int num_steps) {
  check_num_steps(num_steps);
  return VpDiscreteSchedule(numpy_linspace(beta_start, beta_end, num_steps));
}

VpDiscreteSchedule VpDiscreteSchedule::scaled_linear(double beta_start, double beta_end, int num_steps) {
  check_num_steps(num_steps);
  // Latent diffusion (Rombach et al. 2022): linear in sqrt(beta).
  std::vector<double> betas = numpy_linspace(std::sqrt(beta_start), std::sqrt(beta_end), num_steps);
  for (double& b : betas) b = b * b;
  return VpDiscreteSchedule(std::move(betas));
}

VpDiscreteSchedule VpDiscreteSchedule::squaredcos_cap_v2(int num_steps, double max_beta) {
  check_num_steps(num_steps);
  if (!(max_beta > 0 && max_beta <= 1))
    throw Error("vp_discrete: max_beta must be in (0, 1], got " + format_double(max_beta));
  // Nichol & Dhariwal 2021, eq. 17, as diffusers' betas_for_alpha_bar evaluates it.
  const auto alpha_bar = [](double t) {
    const double c = std::cos((t + 0.008) / 1.008 * kPi / 2);
    return c * c;
  };
  std::vector<double> betas(static_cast<std::size_t>(num_steps));
  for (int i = 0; i < num_steps; ++i) {
    const double t1 = static_cast<double>(i) / num_steps, t2 = static_cast<double>(i + 1) / num_steps;
    betas[static_cast<std::size_t>(i)] = std::min(1 - alpha_bar(t2) / alpha_bar(t1), max_beta);
  }
  return VpDiscreteSchedule(std::move(betas));
}

VpDiscreteSchedule VpDiscreteSchedule::sigmoid(double beta_start, double beta_end, int num_steps) {
  check_num_steps(num_steps);
  std::vector<double> betas = numpy_linspace(-6.0, 6.0, num_steps);
  for (double& b : betas) b = 1 / (1 + std::exp(-b)) * (beta_end - beta_start) + beta_start;
  return VpDiscreteSchedule(std::move(betas));
}

const std::vector<std::string>& VpDiscreteSchedule::beta_schedule_names() {
  static const std::vector<std::string> names = {"linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid"};
  return names;
}

VpDiscreteSchedule VpDiscreteSchedule::named(const std::string& beta_schedule, double beta_start,
                                             double beta_end, int num_steps, double max_beta) {
  if (beta_schedule == "linear") return linear(beta_start, beta_end, num_steps);
  if (beta_schedule == "scaled_linear") return scaled_linear(beta_start, beta_end, num_steps);
  if (beta_schedule == "squaredcos_cap_v2") return squaredcos_cap_v2(num_steps, max_beta);
  if (beta_schedule == "sigmoid") return sigmoid(beta_start, beta_end, num_steps);
  std::string list;
  for (const auto& n : beta_schedule_names()) list += (list.empty() ? "" : ", ") + n;
  throw Error("vp_discrete: unknown beta_schedule '" + beta_schedule + "'; known: " + list);
}

std::vector<double> VpDiscreteSchedule::rescale_zero_terminal_snr(const std::vector<double>& betas) {
  // Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are Flawed",
  // Algorithm 1, in float64.
  const std::size_t N = betas.size();
  if (N < 2) throw Error("vp_discrete: rescaling to zero terminal SNR needs at least 2 betas");
  std::vector<double> sqrt_alpha_bar(N);
  double alpha_bar = 1;
  for (std::size_t n = 0; n < N; ++n) {
    alpha_bar *= 1 - betas[n];
    sqrt_alpha_bar[n] = std::sqrt(alpha_bar);
  }
  const double first = sqrt_alpha_bar.front(), last = sqrt_alpha_bar.back();
  if (!(first > last))
    throw Error("vp_discrete: cannot rescale to zero terminal SNR: alpha_bar does not decrease");
  for (double& a : sqrt_alpha_bar) a = (a - last) * (first / (first - last));
  std::vector<double> out(N);
  double previous = 1;  // alpha_bar_{n-1}, alpha_bar_{-1} = 1
  for (std::size_t n = 0; n < N; ++n) {
    const double ab = sqrt_alpha_bar[n] * sqrt_alpha_bar[n];
    out[n] = 1 - ab / previous;
    previous = ab;
  }
  return out;
}

std::vector<double> VpDiscreteSchedule::with_final_alpha_bar(const std::vector<double>& betas,
                                                             double final_alpha_bar) {
  if (betas.empty()) throw Error("vp_discrete: betas must not be empty");
  double before = 1;  // alpha_bar_{N-2}
  for (std::size_t n = 0; n + 1 < betas.size(); ++n) before *= 1 - betas[n];
  if (!(final_alpha_bar >= 0 && final_alpha_bar < before))
    throw Error("vp_discrete: final_alpha_bar must be in [0, " + format_double(before) +
                ") (alpha_bar of the step before the last), got " + format_double(final_alpha_bar));
  std::vector<double> out = betas;
  out.back() = 1 - final_alpha_bar / before;
  return out;
}

double VpDiscreteSchedule::t_of_step(int n) const {
  return static_cast<double>(n + 1) / static_cast<double>(betas_.size());
}

double VpDiscreteSchedule::beta(double t) const {
  if (std::isnan(t)) return t;
  const long N = static_cast<long>(betas_.size());
  // Segment n covers (n/N, (n+1)/N]: at a knot take the segment on the left; t <= 0 is
  // on the first segment and t > 1 on the last.
  const double u = std::clamp(t * static_cast<double>(N), 0.0, static_cast<double>(N));
  long n = static_cast<long>(std::ceil(u)) - 1;
  n = std::clamp(n, 0L, N - 1);
  if (n >= 1 && t <= t_of_step(static_cast<int>(n) - 1)) --n;  // rounding of t * N
  if (zero_terminal_snr_ && n == N - 1) {
    // alpha linear in t: beta = -d/dt 2 log(N - u) = 2N/(N - u), +inf from t = 1 on.
    if (u >= static_cast<double>(N)) return kInf;
    return 2.0 * static_cast<double>(N) / (static_cast<double>(N) - u);
  }
  return -static_cast<double>(N) * std::log1p(-betas_[static_cast<std::size_t>(n)]);
}

double VpDiscreteSchedule::log_alpha_bar(double t) const {
  if (std::isnan(t)) return t;
  const long N = static_cast<long>(betas_.size());
  const double u = std::max(t, 0.0) * static_cast<double>(N);
  // Knot j (j = 0..N) sits at j/N with value V_j (V_0 = 0, V_j = log_alpha_bars_[j-1]);
  // interpolate on [j, j+1], or extend the last segment beyond t = 1.
  const long j = std::clamp(static_cast<long>(std::floor(std::min(u, static_cast<double>(N)))), 0L, N - 1);
  const double v = j == 0 ? 0.0 : log_alpha_bars_[static_cast<std::size_t>(j - 1)];
  if (zero_terminal_snr_ && j == N - 1) {
    // alpha linear in t on the last segment, reaching 0 at t = 1 (and staying there).
    const double rest = static_cast<double>(N) - u;
    if (!(rest > 0)) return -kInf;
    return v + 2.0 * std::log(rest);
  }
  const double slope = std::log1p(-betas_[static_cast<std::size_t>(j)]);
  return v + (u - static_cast<double>(j)) * slope;
}

double VpDiscreteSchedule::t_of_log_alpha_bar(double l) const {
  if (std::isnan(l)) return l;
  if (l >= 0) return 0.0;
  const long N = static_cast<long>(betas_.size());
  // Find the first knot n with log_alpha_bars_[n] <= l (the values decrease strictly);
  // then l lies on segment n, between V_n and V_{n+1} = log_alpha_bars_[n].
  const auto it = std::lower_bound(log_alpha_bars_.begin(), log_alpha_bars_.end(), l,
                                   [](double a, double b) { return a > b; });
  long n = static_cast<long>(it - log_alpha_bars_.begin());
  n = std::min(n, N - 1);  // beyond the last knot: extend the last segment
  const double v = n == 0 ? 0.0 : log_alpha_bars_[static_cast<std::size_t>(n - 1)];
  if (l == log_alpha_bars_[static_cast<std::size_t>(n)]) return t_of_step(static_cast<int>(n));
  if (zero_terminal_snr_ && n == N - 1)  // alpha linear in t: invert l = v + 2 log(N - u)
    return (static_cast<double>(N) - std::exp(0.5 * (l - v))) / static_cast<double>(N);
  const double slope = std::log1p(-betas_[static_cast<std::size_t>(n)]);
  return (static_cast<double>(n) + (l - v) / slope) / static_cast<double>(N);
}

// ---------------------------------------------------------------------------
// VE-SDE (Song et al. 2021, eq. 31 and appendix C): sigma(t) = sigma_min r^t,
// r = sigma_max/sigma_min, alpha = 1. Then f = 0 and g^2 = d sigma^2/dt = 2 sigma^2 log r;
// lambda = -log sigma is linear in t. Times below 0 are treated as 0.

namespace {

[[noreturn]] void throw_constant_alpha(const std::string& name) {
  throw Error(name + ": alpha = 1 at every t, so log alpha_bar does not determine t (use t_of_lambda)");
}

}  // namespace

VeSchedule::VeSchedule(double sigma_min, double sigma_max) : sigma_min_(sigma_min), sigma_max_(sigma_max) {
  if (!(sigma_min > 0) || !std::isfinite(sigma_min))
    throw Error("ve: sigma_min must be a finite number > 0, got " + format_double(sigma_min));
  if (!(sigma_max > sigma_min) || !std::isfinite(sigma_max))
    throw Error("ve: sigma_max must be finite and > sigma_min, got " + format_double(sigma_max));
  log_sigma_min_ = std::log(sigma_min);
  log_ratio_ = std::log(sigma_max / sigma_min);
}

double VeSchedule::beta(double /*t*/) const { return 0.0; }
double VeSchedule::log_alpha_bar(double /*t*/) const { return 0.0; }
double VeSchedule::t_of_log_alpha_bar(double /*l*/) const { throw_constant_alpha(name()); }
double VeSchedule::sigma(double t) const { return std::exp(log_sigma_min_ + std::max(t, 0.0) * log_ratio_); }
double VeSchedule::lambda(double t) const { return -(log_sigma_min_ + std::max(t, 0.0) * log_ratio_); }
double VeSchedule::t_of_lambda(double lambda) const {
  if (std::isnan(lambda)) return lambda;
  return std::max((-lambda - log_sigma_min_) / log_ratio_, 0.0);
}
double VeSchedule::g2(double t) const {
  const double s = sigma(t);
  return 2.0 * s * s * log_ratio_;
}

ScheduleAt VeSchedule::at(double t) const {
  ScheduleAt s;
  s.t = t;
  s.log_alpha_bar = 0;
  s.alpha = 1;
  s.lambda = lambda(t);
  s.sigma = std::exp(-s.lambda);
  s.beta = 0;
  s.f = 0;
  s.g2 = 2.0 * s.sigma * s.sigma * log_ratio_;
  return s;
}

// ---------------------------------------------------------------------------
// Sub-VP SDE (Song et al. 2021, eq. 29): with l = log alpha_bar of vp_linear,
// alpha = e^(l/2), sigma = 1 - e^l = -expm1(l), f = -beta/2 and
// g^2 = beta (1 - e^(2l)) = d sigma^2/dt + beta sigma^2.
// lambda = l/2 - log(-expm1(l)). Its inverse: r = alpha solves e^lambda r^2 + r - e^lambda = 0,
//   r = 2 e^lambda / (1 + sqrt(1 + 4 e^(2 lambda)))       (lambda <= 0)
//     = 2 / (e^-lambda + sqrt(e^(-2 lambda) + 4))          (lambda > 0),
// and near r = 1 the form 1 - r = r e^-lambda / (1 + r) keeps l = 2 log r accurate.

SubVpSchedule::SubVpSchedule(double beta0, double beta1) : vp_(beta0, beta1) {}

double SubVpSchedule::sigma(double t) const { return -std::expm1(vp_.log_alpha_bar(t)); }

namespace {

double subvp_lambda(double l) {
  if (std::isnan(l)) return l;
  if (l >= 0) return kInf;
  return 0.5 * l - std::log(-std::expm1(l));
}

}  // namespace

double SubVpSchedule::lambda(double t) const { return subvp_lambda(vp_.log_alpha_bar(t)); }

double SubVpSchedule::t_of_lambda(double lambda) const {
  if (std::isnan(lambda)) return lambda;
  double l;
  if (lambda > 0) {
    const double e = std::exp(-lambda);
    const double r = 2.0 / (e + std::sqrt(e * e + 4.0));
    l = 2.0 * std::log1p(-(r * e / (1.0 + r)));
  } else {
    const double e = std::exp(lambda);
    l = 2.0 * std::log(2.0 * e / (1.0 + std::sqrt(1.0 + 4.0 * e * e)));
  }
  return vp_.t_of_log_alpha_bar(l);
}

double SubVpSchedule::g2(double t) const { return vp_.beta(t) * -std::expm1(2.0 * vp_.log_alpha_bar(t)); }

ScheduleAt SubVpSchedule::at(double t) const {
  ScheduleAt s;
  s.t = t;
  s.log_alpha_bar = vp_.log_alpha_bar(t);
  s.alpha = std::exp(0.5 * s.log_alpha_bar);
  s.sigma = -std::expm1(s.log_alpha_bar);
  s.lambda = subvp_lambda(s.log_alpha_bar);
  s.beta = vp_.beta(t);
  s.f = -0.5 * s.beta;
  s.g2 = s.beta * -std::expm1(2.0 * s.log_alpha_bar);
  return s;
}

// ---------------------------------------------------------------------------
// EDM (Karras et al. 2022, Table 1): alpha = 1, sigma = t, so f = 0, g^2 = 2 t and
// lambda = -log t. Times below 0 are treated as 0.

EdmSchedule::EdmSchedule(double sigma_min, double sigma_max) : sigma_min_(sigma_min), sigma_max_(sigma_max) {
  if (!(sigma_min > 0) || !std::isfinite(sigma_min))
    throw Error("edm: sigma_min must be a finite number > 0, got " + format_double(sigma_min));
  if (!(sigma_max > sigma_min) || !std::isfinite(sigma_max))
    throw Error("edm: sigma_max must be finite and > sigma_min, got " + format_double(sigma_max));
}

double EdmSchedule::beta(double /*t*/) const { return 0.0; }
double EdmSchedule::log_alpha_bar(double /*t*/) const { return 0.0; }
double EdmSchedule::t_of_log_alpha_bar(double /*l*/) const { throw_constant_alpha(name()); }
double EdmSchedule::sigma(double t) const { return std::max(t, 0.0); }
double EdmSchedule::lambda(double t) const {
  if (std::isnan(t)) return t;
  return -std::log(std::max(t, 0.0));
}
double EdmSchedule::t_of_lambda(double lambda) const { return std::exp(-lambda); }
double EdmSchedule::g2(double t) const { return 2.0 * std::max(t, 0.0); }

ScheduleAt EdmSchedule::at(double t) const {
  ScheduleAt s;
  s.t = t;
  s.log_alpha_bar = 0;
  s.alpha = 1;
  s.sigma = sigma(t);
  s.lambda = lambda(t);
  s.beta = 0;
  s.f = 0;
  s.g2 = 2.0 * s.sigma;
  return s;
}

// ---------------------------------------------------------------------------
// Flow matching with the SD3 shift (Esser et al. 2024, eq. 23): s = shift t / D,
// D = 1 + (shift - 1) t, alpha = 1 - s = (1 - t)/D, sigma = s. Then
//   lambda = log((1 - t)/(shift t)),     t(lambda) = 1/(1 + shift e^lambda),
//   f = d log alpha/dt = -shift / ((1 - t) D),   g^2 = 2 shift^2 t / ((1 - t) D^2)
// (shift = 1: f = -1/(1 - t), g^2 = 2t/(1 - t)). 1 - t is exact for t in [1/2, 1], so
// alpha and lambda keep full relative accuracy near t = 1. Times are clamped to [0, 1].

FlowSchedule::FlowSchedule(double shift) : shift_(shift) {
  if (!(shift > 0) || !std::isfinite(shift))
    throw Error("flow: shift must be a finite number > 0, got " + format_double(shift));
}

namespace {

double clamp01(double t) { return std::isnan(t) ? t : std::clamp(t, 0.0, 1.0); }

}  // namespace

double FlowSchedule::beta(double t) const {
  t = clamp01(t);
  return 2.0 * shift_ / ((1.0 - t) * (1.0 + (shift_ - 1.0) * t));
}
double FlowSchedule::log_alpha_bar(double t) const {
  t = clamp01(t);
  return 2.0 * (std::log1p(-t) - std::log1p((shift_ - 1.0) * t));
}
double FlowSchedule::t_of_log_alpha_bar(double l) const {
  if (std::isnan(l)) return l;
  l = std::min(l, 0.0);
  const double a = std::exp(0.5 * l);
  return -std::expm1(0.5 * l) / (1.0 + a * (shift_ - 1.0));
}
double FlowSchedule::sigma(double t) const {
  t = clamp01(t);
  return shift_ * t / (1.0 + (shift_ - 1.0) * t);
}
double FlowSchedule::lambda(double t) const {
  t = clamp01(t);
  return std::log1p(-t) - std::log(shift_ * t);
}
double FlowSchedule::t_of_lambda(double lambda) const {
  if (std::isnan(lambda)) return lambda;
  if (lambda > 0) {
    const double e = std::exp(-lambda);
    return e / (e + shift_);
  }
  return 1.0 / (1.0 + shift_ * std::exp(lambda));
}
double FlowSchedule::g2(double t) const {
  t = clamp01(t);
  const double d = 1.0 + (shift_ - 1.0) * t;
  return 2.0 * shift_ * shift_ * t / ((1.0 - t) * d * d);
}

ScheduleAt FlowSchedule::at(double t) const {
  ScheduleAt s;
  s.t = t;
  const double u = clamp01(t);
  const double d = 1.0 + (shift_ - 1.0) * u;
  s.alpha = (1.0 - u) / d;
  s.sigma = shift_ * u / d;
  s.log_alpha_bar = log_alpha_bar(u);
  s.lambda = lambda(u);
  s.f = -shift_ / ((1.0 - u) * d);
  s.beta = -2.0 * s.f;
  s.g2 = 2.0 * shift_ * shift_ * u / ((1.0 - u) * d * d);
  return s;
}

}  // namespace diffsde
