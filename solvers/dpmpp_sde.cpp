#include "diffsde/solvers/dpmpp_sde.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "diffsde/error.hpp"
#include "diffsde/solvers/ddim.hpp"
#include "diffsde/solvers/exponential.hpp"
#include "diffsde/solvers/options.hpp"

namespace diffsde {

AncestralStep ancestral_step(const ScheduleAt& s, const ScheduleAt& t, double eta) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  AncestralStep a;
  if (t.sigma == 0) {  // to the data: x_t = D, no noise
    a.u = 1;
    a.h_down = inf;
    a.x0 = t.alpha;
    return a;
  }
  const double h = t.lambda - s.lambda;
  // sigma_up^2 / sigma_ve_t^2 = eta^2 (1 - sigma_ve_t^2/sigma_ve_s^2), capped at 1 (k-diffusion).
  const AncestralSplit split = ancestral_split(s, t, eta);
  a.u = split.u;
  a.noise = split.noise;
  if (a.u >= 1) {  // sigma_down = 0: the deterministic part is D itself
    a.h_down = inf;
    a.x0 = t.alpha;
    return a;
  }
  // lambda_down = -log(sigma_ve_down) = lambda_t - log(1 - u)/2; both terms of h_down have
  // the sign of h, so neither it nor expm1(-h_down) cancels.
  a.h_down = h - 0.5 * std::log1p(-a.u);
  // alpha_t/alpha_s e^{-h_down} = (sigma_t/sigma_s) sqrt(1 - u), since alpha e^{-lambda} = sigma.
  a.x = t.sigma / s.sigma * std::sqrt(1 - a.u);
  a.x0 = -t.alpha * std::expm1(-a.h_down);
  return a;
}

bool DpmppOptions::is_valid(std::string* error, std::string* option) const {
  if (!(eta >= 0) || !std::isfinite(eta)) return invalid_option(error, option, "eta", "must be finite and >= 0");
  return true;
}

bool Dpmpp2mSdeSolver::Options::is_valid(std::string* error, std::string* option) const {
  if (!DpmppOptions{eta}.is_valid(error, option)) return false;
  return valid_step_orders(orders, 2, "data prediction(s)", error, option);
}

bool DpmppSdeSolver::Options::is_valid(std::string* error, std::string* option) const {
  if (!DpmppOptions{eta}.is_valid(error, option)) return false;
  if (!(r > 0 && r < 1)) return invalid_option(error, option, "r", "must lie in (0, 1)");
  return true;
}

std::string to_string(Dpmpp2mSdeSolver::SolverType solver_type) {
  return solver_type == Dpmpp2mSdeSolver::SolverType::midpoint ? "midpoint" : "heun";
}

Dpmpp2mSdeSolver::SolverType dpmpp_solver_type_from_string(const std::string& s) {
  if (s == "midpoint") return Dpmpp2mSdeSolver::SolverType::midpoint;
  if (s == "heun") return Dpmpp2mSdeSolver::SolverType::heun;
  throw Error("unknown dpmpp_2m_sde solver_type '" + s + "'; known: midpoint, heun");
}

DpmppSolver::DpmppSolver(std::string name, double eta) : name_(std::move(name)), eta_(eta) {}

SolverTraits DpmppSolver::base_traits(double ode_order, int evals_per_step) const {
  SolverTraits t;
  t.any_schedule = true;  // written in lambda, or in sigma/alpha and x/alpha
  t.name = name_;
  t.stochastic = stochastic();
  t.order = stochastic() ? 1 : ode_order;
  t.evals_per_step = evals_per_step;
  // With noise it samples the reverse process; at eta = 0 it also runs forwards (inversion).
  t.needs_decreasing_grid = stochastic();
  t.needs_positive_sigma_at_step_start = true;  // x0 from eps at the start
  return t;
}

void DpmppSolver::init(SolverContext& /*context*/, const State& x, const std::vector<double>& times) {
  steps_ = times.empty() ? 0 : times.size() - 1;
  const auto rows = x.rows(), cols = x.cols();
  eps_.resize(rows, cols);
  x0_.resize(rows, cols);
  if (stochastic()) z_.resize(rows, cols);
  allocate(rows, cols);
}

void DpmppSolver::normalised_increment(SolverContext& context, double t0, double t1) {
  context.noise().brownian(t0, t1, z_);
  z_ /= std::sqrt(std::fabs(t1 - t0));
}

void DpmppSolver::step(SolverContext& context, std::size_t i, double t0, double t1, State& x) {
  step_index_ = i;
  const ScheduleAt s = context.schedule().at(t0);
  const ScheduleAt t = context.schedule().at(t1);
  context.eps(x, t0, eps_);
  x0_ = (x - s.sigma * eps_) / s.alpha;
  if (t.sigma == 0) {
    // lambda_t = +inf: every form tends to x_t = x0_s (k-diffusion's sigma_next = 0 branch).
    x = x0_;
    return;
  }
  advance(context, s, t, x);
}

// ---- dpmpp_2m_sde, dpmpp_3m_sde ----

DpmppMultistepSolver::DpmppMultistepSolver(std::string name, double eta, int max_order, bool midpoint)
    : DpmppSolver(std::move(name), eta), max_order_(max_order), midpoint_(midpoint) {}

SolverTraits DpmppMultistepSolver::traits() const {
  SolverTraits t = base_traits(max_order_, 1);
  t.warmup_steps = max_order_ - 1;
  if (stochastic())
    t.noise_use =
        "one Brownian increment W(t1) - W(t0) of shape batch x dim per step, normalised by "
        "sqrt(t0 - t1) to a standard normal (with Philox or replay: draw k at step k); none on "
        "the final step to t = 0";
  return t;
}

void DpmppMultistepSolver::allocate(Eigen::Index rows, Eigen::Index cols) {
  if (!orders_.empty() && orders_.size() != steps_)
    throw Error(name() + ": orders has " + std::to_string(orders_.size()) + " entries but the grid has " +
                std::to_string(steps_) + " steps");
  x0_prev_[0].resize(rows, cols);
  if (max_order_ == 3) x0_prev_[1].resize(rows, cols);
  history_ = 0;
  h_prev_[0] = h_prev_[1] = 0;
}

void DpmppMultistepSolver::advance(SolverContext& context, const ScheduleAt& s, const ScheduleAt& t, State& x) {
  const double h = t.lambda - s.lambda;
  const double eta_h = eta() * h;
  const double u = h + eta_h;
  const double c_x = t.sigma / s.sigma * std::exp(-eta_h);
  const double c_x0 = -t.alpha * std::expm1(-u);  // alpha_t u phi_1(-u)
  int order = std::min(history_ + 1, max_order_);
  if (step_index_ < orders_.size()) order = std::min(order, orders_[step_index_]);
  if (order == 1) {
    x = c_x * x + c_x0 * x0_;
  } else if (order == 2) {
    // One earlier prediction: D1 = (x0_s - x0_prev)/r estimates h dx0/dlambda.
    const double r = h_prev_[0] / h;
    // midpoint: (1/2) alpha_t (1 - e^{-u}); heun: alpha_t u phi_2(-u), the exact weight of a
    // linear x0 (k-diffusion's (e^{-u} - 1)/u + 1).
    const double c_d = midpoint_ ? 0.5 * c_x0 : t.alpha * u * phi(2, -u);
    x = c_x * x + c_x0 * x0_ + (c_d / r) * (x0_ - x0_prev_[0]);
  } else {
    // Two earlier predictions (the divided differences of DPM-Solver's third-order multistep):
    //   D1_0 = (x0_s - x0_1)/r0, D1_1 = (x0_1 - x0_2)/r1,
    //   D1 = D1_0 + r0/(r0 + r1) (D1_0 - D1_1) ~ h x0',  D2 = (D1_0 - D1_1)/(r0 + r1) ~ h^2 x0''/2,
    //   x_t += alpha_t [u phi_2(-u) D1 + 2 u phi_3(-u) D2],
    // the Taylor weights of the exact integral (1+eta) int e^{-u(1 - tau/h)} x0(lambda_s + tau).
    // DPM-Solver's and k-diffusion's 3M weight D2 by u phi_3(-u), half of this, which leaves
    // the method second order (tests/test_dpmpp_sde.cpp measures both).
    const double r0 = h_prev_[0] / h, r1 = h_prev_[1] / h;
    const double k2 = t.alpha * u * phi(2, -u), k3 = 2 * t.alpha * u * phi(3, -u);
    const double w = r0 / (r0 + r1);
    const double a = k2 * (1 + w) + k3 / (r0 + r1);  // coefficient of D1_0
    const double b = -k2 * w - k3 / (r0 + r1);        // coefficient of D1_1
    x = c_x * x + c_x0 * x0_ + (a / r0) * (x0_ - x0_prev_[0]) + (b / r1) * (x0_prev_[0] - x0_prev_[1]);
  }
  if (stochastic()) {
    normalised_increment(context, s.t, t.t);
    x += t.sigma * std::sqrt(-std::expm1(-2 * eta_h)) * z_;
  }
  // Shift the history without copying: x0_ is overwritten at the next step.
  if (max_order_ == 3) std::swap(x0_prev_[1], x0_prev_[0]);
  std::swap(x0_prev_[0], x0_);
  h_prev_[1] = h_prev_[0];
  h_prev_[0] = h;
  history_ = std::min(history_ + 1, max_order_ - 1);
}

Dpmpp2mSdeSolver::Dpmpp2mSdeSolver(Options options)
    : DpmppMultistepSolver("dpmpp_2m_sde", options.eta, 2, options.solver_type == SolverType::midpoint),
      options_(options) {
  check_options(options_, name());
  orders_ = options_.orders;
}

// The third-order step at order 2 (its second step) uses the exact linear-x0 weight.
Dpmpp3mSdeSolver::Dpmpp3mSdeSolver(Options options)
    : DpmppMultistepSolver("dpmpp_3m_sde", options.eta, 3, false) {
  check_options(options, name());
}

// ---- dpmpp_2s_ancestral ----

Dpmpp2sAncestralSolver::Dpmpp2sAncestralSolver(Options options)
    : DpmppSolver("dpmpp_2s_ancestral", options.eta) {
  check_options(options, name());
}

SolverTraits Dpmpp2sAncestralSolver::traits() const {
  SolverTraits t = base_traits(2, 2);
  if (stochastic())
    t.noise_use =
        "one Brownian increment W(t1) - W(t0) of shape batch x dim per step, after both "
        "evaluations, normalised by sqrt(t0 - t1) (with Philox or replay: draw k at step k); "
        "none on the final step to t = 0";
  return t;
}

void Dpmpp2sAncestralSolver::allocate(Eigen::Index rows, Eigen::Index cols) { x0_mid_.resize(rows, cols); }

void Dpmpp2sAncestralSolver::advance(SolverContext& context, const ScheduleAt& s, const ScheduleAt& t,
                                     State& x) {
  const AncestralStep a = ancestral_step(s, t, eta());
  if (std::isinf(a.h_down)) {
    // sigma_down = 0 (eta > 1 on a long step): first order, D = x0_s (k-diffusion's Euler branch).
    x = a.x * x + a.x0 * x0_;
  } else {
    // DPM-Solver++(2S) with r = 1/2 from s to lambda_down: a first-order step (DDIM(0)) to the
    // midpoint lambda_s + h_down/2, whose data prediction is D.
    const ScheduleAt m = context.schedule().at(context.schedule().t_of_lambda(s.lambda + 0.5 * a.h_down));
    const DdimCoefficients c = ddim_coefficients(s, m, 0.0);
    x0_mid_ = c.x * x + c.eps * eps_;  // x_mid, kept in x0_mid_ until evaluated
    context.eps(x0_mid_, m.t, eps_);
    x0_mid_ = (x0_mid_ - m.sigma * eps_) / m.alpha;
    x = a.x * x + a.x0 * x0_mid_;
  }
  if (a.noise > 0) {
    normalised_increment(context, s.t, t.t);
    x += a.noise * z_;
  }
}

// ---- dpmpp_sde ----

DpmppSdeSolver::DpmppSdeSolver(Options options) : DpmppSolver("dpmpp_sde", options.eta), options_(options) {
  check_options(options_, name());
}

SolverTraits DpmppSdeSolver::traits() const {
  SolverTraits t = base_traits(2, 2);
  if (stochastic())
    t.noise_use =
        (options_.sampler_draws
             ? std::string("two standard-normal draws per step, used as k-diffusion's noise sampler's two outputs: "
                           "draw 2k at the intermediate point, draw 2k + 1 at the end of step k; none on the final "
                           "step to t = 0")
             : std::string("two Brownian increments per step, normalised to standard normals: z1 from W(t_mid) - "
                           "W(t0) before the second evaluation, z2 from W(t1) - W(t_mid) after it (t_mid = "
                           "t(lambda_0 + r h)); the intermediate point gets z1, the end rho z1 + sqrt(1 - rho^2) z2 "
                           "with rho^2 = expm1(-r h)/expm1(-h) (with Philox or replay: draws 2k and 2k+1 at step "
                           "k); none on the final step to t = 0"));
  return t;
}

void DpmppSdeSolver::allocate(Eigen::Index rows, Eigen::Index cols) {
  x0_mid_.resize(rows, cols);
  if (stochastic()) dw_.resize(rows, cols);
}

void DpmppSdeSolver::advance(SolverContext& context, const ScheduleAt& s, const ScheduleAt& t, State& x) {
  const double r = options_.r;
  const double h = t.lambda - s.lambda;
  const ScheduleAt m = context.schedule().at(context.schedule().t_of_lambda(s.lambda + r * h));
  // Step 1: the ancestral first-order step s -> mid with z1 = (W(t_mid) - W(t_s))/sqrt(t_s - t_mid).
  const AncestralStep a1 = ancestral_step(s, m, eta());
  x0_mid_ = a1.x * x + a1.x0 * x0_;  // x_mid, kept in x0_mid_ until evaluated
  if (stochastic()) {
    if (options_.sampler_draws)
      context.noise().normal(z_);
    else
      normalised_increment(context, s.t, m.t);
    x0_mid_ += a1.noise * z_;
  }
  context.eps(x0_mid_, m.t, eps_);
  x0_mid_ = (x0_mid_ - m.sigma * eps_) / m.alpha;
  // Step 2: the ancestral step s -> t with D = (1 - 1/(2r)) x0_s + 1/(2r) x0_mid. Its noise is
  // the whole step's: z = rho z1 + sqrt(1 - rho^2) z2, z2 = (W(t_t) - W(t_mid))/sqrt(t_mid - t_t),
  // rho^2 = (sigma_ve_s - sigma_ve_mid)/(sigma_ve_s - sigma_ve_t) = expm1(-r h)/expm1(-h): the
  // normalised increment over [s, t] of a Brownian path in the clock sigma_ve, which is the
  // clock of k-diffusion's Brownian-tree noise sampler. It depends on lambda only (not on the
  // schedule), and on a Brownian tree in t it is the normalised increment W(t_t) - W(t_s) up to
  // O(h) in its weights.
  const AncestralStep a2 = ancestral_step(s, t, eta());
  const double fac = 1 / (2 * r);
  x = a2.x * x + (a2.x0 * (1 - fac)) * x0_ + (a2.x0 * fac) * x0_mid_;
  if (stochastic()) {
    if (options_.sampler_draws) {
      // The sampler's second output, noise_sampler(sigma, sigma_next), is the end's noise.
      context.noise().normal(dw_);
      x += a2.noise * dw_;
    } else {
      const double rho2 = std::min(1.0, std::expm1(-(m.lambda - s.lambda)) / std::expm1(-h));
      context.noise().brownian(m.t, t.t, dw_);
      x += (a2.noise * std::sqrt(rho2)) * z_ + (a2.noise * std::sqrt((1 - rho2) / std::fabs(t.t - m.t))) * dw_;
    }
  }
}

}  // namespace diffsde
