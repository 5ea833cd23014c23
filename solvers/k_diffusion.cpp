#include "diffsde/solvers/k_diffusion.hpp"

#include <algorithm>
#include <array>
#include <cmath>

#include "diffsde/error.hpp"
#include "diffsde/solvers/ddim.hpp"
#include "diffsde/solvers/exponential.hpp"
#include "diffsde/solvers/options.hpp"

namespace diffsde {

namespace {

constexpr int kMaxLmsOrder = 4;

double sigma_ve_of(const ScheduleAt& a) { return a.sigma / a.alpha; }

// Exact integral of the Lagrange basis polynomials over [sigma_s, sigma_t]: in the scaled
// variable w = (tau - sigma_s) / H, H = sigma_t - sigma_s, these are H times the
// Adams–Bashforth weights int_0^1 l_j(w) dw.
void lms_coefficients_into(const double* nodes, int k, double sigma_s, double sigma_t, double* out) {
  const double H = sigma_t - sigma_s;
  if (H == 0) {
    for (int j = 0; j < k; ++j) out[j] = 0;
    return;
  }
  std::array<double, kMaxLmsOrder> w{};
  for (int j = 0; j < k; ++j) w[static_cast<std::size_t>(j)] = (nodes[j] - sigma_s) / H;
  const std::array<double, 4> c = adams_bashforth_weights(w, k);
  for (int j = 0; j < k; ++j) out[j] = H * c[static_cast<std::size_t>(j)];
}

}  // namespace

std::vector<double> lms_coefficients(const std::vector<double>& nodes, double sigma_s, double sigma_t) {
  if (nodes.empty() || nodes.size() > static_cast<std::size_t>(kMaxLmsOrder))
    throw Error("lms_coefficients: 1 to 4 nodes, got " + std::to_string(nodes.size()));
  std::vector<double> out(nodes.size());
  lms_coefficients_into(nodes.data(), static_cast<int>(nodes.size()), sigma_s, sigma_t, out.data());
  return out;
}

void KDiffusionSolver::init(SolverContext& context, const State& x, const std::vector<double>& times) {
  steps_ = times.empty() ? 0 : times.size() - 1;
  const ScheduleAt top = context.schedule().at(context.schedule().t_max());
  sigma_ve_max_ = sigma_ve_of(top);
  const auto rows = x.rows(), cols = x.cols();
  x_ve_.resize(rows, cols);
  eps_.resize(rows, cols);
  tmp_.resize(rows, cols);
  allocate(rows, cols);
}

void KDiffusionSolver::step(SolverContext& context, std::size_t /*i*/, double t0, double t1, State& x) {
  const Schedule& sch = context.schedule();
  const ScheduleAt s = sch.at(t0);
  const ScheduleAt t = sch.at(t1);
  x_ve_ = x / s.alpha;
  step_ve(context, t0, t1, s, t, x);
  x = t.alpha * x_ve_;
}

SolverTraits KDiffusionSolver::base_traits(bool stochastic) const {
  SolverTraits t;
  t.any_schedule = true;  // written in lambda, or in sigma/alpha and x/alpha
  t.name = name_;
  t.stochastic = stochastic;
  // With noise (churn, the ancestral split) they sample the reverse process, so sigma must
  // decrease. Without it each step is a quadrature of dx_ve/dsigma_ve = eps in sigma_ve whose
  // formulas hold for either sign of the step (only a step to sigma = 0 is special, and an
  // increasing grid never ends there): they also run forwards, an ODE inversion. x_ve =
  // x / alpha and eps are taken at the start of every step.
  t.needs_decreasing_grid = stochastic;
  t.needs_positive_sigma_at_step_start = true;
  return t;
}

void KDiffusionSolver::eps_at(SolverContext& context, const State& x_ve, double t_vp, double alpha_vp,
                              State& out) {
  tmp_ = alpha_vp * x_ve;
  context.eps(tmp_, t_vp, out);
}

void KDiffusionSolver::euler_to(double sigma_from, double sigma_to) { x_ve_ += (sigma_to - sigma_from) * eps_; }

void KDiffusionSolver::dpm2_to(SolverContext& context, double sigma_from, double lambda_from, double sigma_to) {
  if (!(sigma_to > 0)) {  // final step to sigma = 0: Euler (the midpoint would be at 0)
    euler_to(sigma_from, 0.0);
    return;
  }
  const double lambda_mid = 0.5 * (lambda_from - std::log(sigma_to));
  const double sigma_mid = std::exp(-lambda_mid);
  const double t_mid = context.schedule().t_of_lambda(lambda_mid);
  const double alpha_mid = context.schedule().alpha(t_mid);
  // x_ve at the midpoint, then its eps; x_ve_ moves with the midpoint slope.
  eps2_ = x_ve_ + (sigma_mid - sigma_from) * eps_;
  eps_at(context, eps2_, t_mid, alpha_mid, eps2_);
  x_ve_ += (sigma_to - sigma_from) * eps2_;
}

void KDiffusionSolver::add_ancestral_noise(SolverContext& context, double noise, double alpha_t,
                                           double s_noise) {
  if (noise > 0) {
    context.noise().normal(z_);
    x_ve_ += (s_noise * noise / alpha_t) * z_;
  }
}

bool KDiffusionAncestralOptions::is_valid(std::string* error, std::string* option) const {
  if (!(eta >= 0)) return invalid_option(error, option, "eta", "must be >= 0");
  if (!(s_noise >= 0)) return invalid_option(error, option, "s_noise", "must be >= 0");
  return true;
}

namespace {

// The ancestral samplers draw after the step's evaluations.
const char* const kAncestralNoiseUse =
    "one standard-normal draw of shape batch x dim per step with sigma_up > 0, made after the "
    "step's evaluations; the final step to t = 0 draws none";

}  // namespace

// ---- euler ----

KDiffusionEuler::KDiffusionEuler() : KDiffusionSolver("euler") {}

SolverTraits KDiffusionEuler::traits() const {
  SolverTraits t = base_traits(false);
  t.order = 1;
  t.evals_per_step = 1;
  return t;
}

void KDiffusionEuler::allocate(Eigen::Index /*rows*/, Eigen::Index /*cols*/) {}

void KDiffusionEuler::step_ve(SolverContext& context, double t0, double /*t1*/, const ScheduleAt& s,
                              const ScheduleAt& t, const State& x) {
  context.eps(x, t0, eps_);
  euler_to(sigma_ve_of(s), sigma_ve_of(t));
}

// ---- euler_ancestral ----

KDiffusionEulerAncestral::KDiffusionEulerAncestral(KDiffusionAncestralOptions options)
    : KDiffusionSolver("euler_ancestral"), options_(options) {
  check_options(options_, name());
}

SolverTraits KDiffusionEulerAncestral::traits() const {
  SolverTraits t = base_traits(options_.eta > 0);
  t.order = 1;
  t.evals_per_step = 1;
  if (t.stochastic) t.noise_use = kAncestralNoiseUse;
  return t;
}

void KDiffusionEulerAncestral::allocate(Eigen::Index rows, Eigen::Index cols) {
  if (options_.eta > 0) z_.resize(rows, cols);
}

void KDiffusionEulerAncestral::step_ve(SolverContext& context, double t0, double /*t1*/, const ScheduleAt& s,
                                       const ScheduleAt& t, const State& x) {
  context.eps(x, t0, eps_);
  // sigma_down and sigma_up: the VP split divided by alpha_t.
  const AncestralSplit a = ancestral_split(s, t, options_.eta);
  euler_to(sigma_ve_of(s), a.dir / t.alpha);
  add_ancestral_noise(context, a.noise, t.alpha, options_.s_noise);
}

// ---- heun ----

bool KDiffusionHeun::Options::is_valid(std::string* error, std::string* option) const {
  if (!(s_churn >= 0)) return invalid_option(error, option, "s_churn", "must be >= 0");
  if (!(s_tmin >= 0)) return invalid_option(error, option, "s_tmin", "must be >= 0");
  if (!(s_tmax >= s_tmin)) return invalid_option(error, option, "s_tmax", "must be >= s_tmin");
  if (!(s_noise >= 0)) return invalid_option(error, option, "s_noise", "must be >= 0");
  return true;
}

KDiffusionHeun::KDiffusionHeun(Options options) : KDiffusionSolver("heun"), options_(options) {
  check_options(options_, name());
}

SolverTraits KDiffusionHeun::traits() const {
  SolverTraits t = base_traits(stochastic());
  t.order = t.stochastic ? 1 : 2;
  t.evals_per_step = 2;
  if (t.stochastic)
    t.noise_use =
        "one standard-normal draw of shape batch x dim per step whose churn raises sigma_ve "
        "(gamma > 0), made before the step's first evaluation; no draw elsewhere";
  return t;
}

void KDiffusionHeun::allocate(Eigen::Index rows, Eigen::Index cols) {
  eps2_.resize(rows, cols);
  if (stochastic()) z_.resize(rows, cols);
}

void KDiffusionHeun::step_ve(SolverContext& context, double t0, double t1, const ScheduleAt& s,
                             const ScheduleAt& t, const State& x) {
  const Schedule& sch = context.schedule();
  const double sv_s = sigma_ve_of(s), sv_t = sigma_ve_of(t);
  double gamma = 0;
  if (options_.s_churn > 0 && options_.s_tmin <= sv_s && sv_s <= options_.s_tmax)
    gamma = std::min(options_.s_churn / static_cast<double>(std::max<std::size_t>(steps_, 1)),
                     std::sqrt(2.0) - 1);
  double sv_hat = sv_s;
  if (gamma > 0) sv_hat = std::min(sv_s * (1 + gamma), std::max(sigma_ve_max_, sv_s));
  if (sv_hat > sv_s) {
    // Churn: raise the noise level to sigma_hat with fresh noise, evaluate there.
    context.noise().normal(z_);
    x_ve_ += (std::sqrt(sv_hat * sv_hat - sv_s * sv_s) * options_.s_noise) * z_;
    const double t_hat = std::min(sch.t_of_lambda(-std::log(sv_hat)), sch.t_max());
    eps_at(context, x_ve_, t_hat, sch.alpha(t_hat), eps_);
  } else {
    context.eps(x, t0, eps_);
  }
  if (!(t.sigma > 0)) {  // final step to sigma = 0: Euler
    euler_to(sv_hat, 0.0);
    return;
  }
  eps2_ = x_ve_ + (sv_t - sv_hat) * eps_;
  eps_at(context, eps2_, t1, t.alpha, eps2_);
  x_ve_ += (0.5 * (sv_t - sv_hat)) * (eps_ + eps2_);
}

// ---- dpm2 ----

KDiffusionDpm2::KDiffusionDpm2() : KDiffusionSolver("dpm2") {}

SolverTraits KDiffusionDpm2::traits() const {
  SolverTraits t = base_traits(false);
  t.order = 2;
  t.evals_per_step = 2;
  return t;
}

void KDiffusionDpm2::allocate(Eigen::Index rows, Eigen::Index cols) { eps2_.resize(rows, cols); }

void KDiffusionDpm2::step_ve(SolverContext& context, double t0, double /*t1*/, const ScheduleAt& s,
                             const ScheduleAt& t, const State& x) {
  context.eps(x, t0, eps_);
  if (!(t.sigma > 0))
    euler_to(sigma_ve_of(s), 0.0);
  else
    dpm2_to(context, sigma_ve_of(s), s.lambda, sigma_ve_of(t));
}

// ---- dpm2_ancestral ----

KDiffusionDpm2Ancestral::KDiffusionDpm2Ancestral(KDiffusionAncestralOptions options)
    : KDiffusionSolver("dpm2_ancestral"), options_(options) {
  check_options(options_, name());
}

SolverTraits KDiffusionDpm2Ancestral::traits() const {
  SolverTraits t = base_traits(options_.eta > 0);
  t.order = t.stochastic ? 1 : 2;
  t.evals_per_step = 2;
  if (t.stochastic) t.noise_use = kAncestralNoiseUse;
  return t;
}

void KDiffusionDpm2Ancestral::allocate(Eigen::Index rows, Eigen::Index cols) {
  eps2_.resize(rows, cols);
  if (options_.eta > 0) z_.resize(rows, cols);
}

void KDiffusionDpm2Ancestral::step_ve(SolverContext& context, double t0, double /*t1*/, const ScheduleAt& s,
                                      const ScheduleAt& t, const State& x) {
  context.eps(x, t0, eps_);
  const AncestralSplit a = ancestral_split(s, t, options_.eta);
  dpm2_to(context, sigma_ve_of(s), s.lambda, options_.eta > 0 ? a.dir / t.alpha : sigma_ve_of(t));
  add_ancestral_noise(context, a.noise, t.alpha, options_.s_noise);
}

// ---- lms ----

bool KDiffusionLms::Options::is_valid(std::string* error, std::string* option) const {
  if (order < 1 || order > kMaxLmsOrder)
    return invalid_option(error, option, "order", "must be 1 to 4, got " + std::to_string(order));
  return true;
}

KDiffusionLms::KDiffusionLms() : KDiffusionLms(Options{}) {}

KDiffusionLms::KDiffusionLms(Options options) : KDiffusionSolver("lms"), order_(options.order) {
  check_options(options, name());
}

SolverTraits KDiffusionLms::traits() const {
  SolverTraits t = base_traits(false);
  t.order = order_;
  t.evals_per_step = 1;
  t.warmup_steps = order_ - 1;
  return t;
}

void KDiffusionLms::allocate(Eigen::Index rows, Eigen::Index cols) {
  history_.clear();
  for (int k = 0; k < order_; ++k) history_.emplace_back(rows, cols);
  history_sigma_.assign(static_cast<std::size_t>(kMaxLmsOrder), 0.0);
  history_size_ = 0;
}

void KDiffusionLms::step_ve(SolverContext& context, double t0, double t1, const ScheduleAt& s,
                            const ScheduleAt& t, const State& x) {
  const double sv_s = sigma_ve_of(s), sv_t = sigma_ve_of(t);
  if (history_size_ > 0 && t0 != last_t1_) history_size_ = 0;  // not a continuation
  last_t1_ = t1;
  // Newest first: the oldest slot is reused for this step's eps.
  std::rotate(history_.begin(), history_.end() - 1, history_.end());
  std::rotate(history_sigma_.begin(), history_sigma_.begin() + (order_ - 1),
              history_sigma_.begin() + order_);
  context.eps(x, t0, history_[0]);
  history_sigma_[0] = sv_s;
  history_size_ = std::min(history_size_ + 1, static_cast<std::size_t>(order_));
  const int k = static_cast<int>(history_size_);
  std::array<double, kMaxLmsOrder> c{};
  lms_coefficients_into(history_sigma_.data(), k, sv_s, sv_t, c.data());
  for (int j = 0; j < k; ++j) x_ve_ += c[static_cast<std::size_t>(j)] * history_[static_cast<std::size_t>(j)];
}

}  // namespace diffsde
