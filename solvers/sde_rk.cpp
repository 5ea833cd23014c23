#include "diffsde/solvers/sde_rk.hpp"

#include <algorithm>
#include <cmath>

#include "diffsde/error.hpp"
#include "diffsde/solvers/options.hpp"
#include "diffsde/vector_field.hpp"

namespace diffsde {

namespace {

// The reverse SDE's drift f x + g^2/sigma eps(x, t) into out (vector_field.hpp). Every stage
// time has sigma > 0: the step's start (declared in the traits, checked by the driver), times
// inside the step, and its end only where sigma > 0 there (SraSolver::step).
void drift(SolverContext& context, const State& x, const ScheduleAt& s, State& eps, State& out) {
  context.eps(x, s.t, eps);
  out = reverse_sde_drift(field_at(s), x, eps);
}

}  // namespace

// ----------------------------------------------------------------------------------------
SolverTraits StochasticHeunSolver::traits() const {
  SolverTraits t;
  t.any_schedule = true;  // only alpha, sigma, lambda and the field f, g^2
  t.name = "stochastic_heun";
  t.stochastic = true;
  t.order = 1;         // weak
  t.strong_order = 1;  // additive noise
  t.evals_per_step = 2;
  t.needs_decreasing_grid = true;  // the reverse SDE
  t.needs_positive_sigma_at_step_start = true;
  t.noise_use =
      "one Brownian increment W(t1) - W(t0) of shape batch x dim per step, shared by the "
      "predictor and the corrector; with Philox or replayed noise this is sqrt(t0 - t1) times "
      "draw i at step i";
  return t;
}

void StochasticHeunSolver::init(SolverContext& /*context*/, const State& x,
                                const std::vector<double>& /*times*/) {
  eps_.resize(x.rows(), x.cols());
  f0_.resize(x.rows(), x.cols());
  xp_.resize(x.rows(), x.cols());
  dw_.resize(x.rows(), x.cols());
}

void StochasticHeunSolver::step(SolverContext& context, std::size_t /*i*/, double t0, double t1,
                                State& x) {
  const ScheduleAt s0 = context.schedule().at(t0);
  const ScheduleAt s1 = context.schedule().at(t1);
  const FieldAt c1 = field_at(s1);
  const double h = t1 - t0;
  const double g0 = field_at(s0).g(), g1 = c1.g();
  drift(context, x, s0, eps_, f0_);
  context.noise().brownian(t0, t1, dw_);
  xp_ = x + h * f0_ + g0 * dw_;
  if (!(c1.sigma > 0)) {  // a final step to sigma = 0: Euler–Maruyama
    x = xp_;
    return;
  }
  context.eps(xp_, t1, eps_);
  // x1 = x + h/2 (f(x, t0) + f(x~, t1)) + (g0 + g1)/2 dW
  x += (0.5 * h) * (f0_ + c1.f * xp_ + c1.sde_eps() * eps_) +
       (0.5 * (g0 + g1)) * dw_;
}

// ----------------------------------------------------------------------------------------
// Rößler, SIAM J. Numer. Anal. 48(3), 2010 (SRA1, SRA3); the same coefficients as
// StochasticDiffEq.jl's constructSRA1/constructSRA3.
SraTableau SraTableau::sra1() {
  SraTableau t;
  t.name = "sra1";
  t.stages = 2;
  t.c0 = {0, 0.75};
  t.c1 = {1, 0};
  t.a0 = {{0, 0}, {0.75, 0}};
  t.b0 = {{0, 0}, {1.5, 0}};
  t.alpha = {1.0 / 3, 2.0 / 3};
  t.beta1 = {1, 0};
  t.beta2 = {-1, 1};
  return t;
}

SraTableau SraTableau::sra3() {
  SraTableau t;
  t.name = "sra3";
  t.stages = 3;
  t.c0 = {0, 1, 0.5};
  t.c1 = {1, 0, 0};
  t.a0 = {{0, 0, 0}, {1, 0, 0}, {0.25, 0.25, 0}};
  t.b0 = {{0, 0, 0}, {0, 0, 0}, {1, 0.5, 0}};
  t.alpha = {1.0 / 6, 1.0 / 6, 2.0 / 3};
  t.beta1 = {1, 0, 0};
  t.beta2 = {-1, 1, 0};
  return t;
}

bool SraSolver::Options::is_valid(std::string* error, std::string* option) const {
  if (tableau != "sra1" && tableau != "sra3")
    return invalid_option(error, option, "tableau", "must be sra1 or sra3, got '" + tableau + "'",
                          "unknown tableau '" + tableau + "' (sra1 or sra3)");
  return true;
}

SraSolver::SraSolver(Options options)
    : tableau_name_(options.tableau),
      tableau_(options.tableau == "sra3" ? SraTableau::sra3() : SraTableau::sra1()),
      fallback_(SraTableau::sra1()) {
  check_options(options, "sra");
}

SraSolver::SraSolver() : SraSolver(Options{}) {}

SraSolver::SraSolver(const std::string& tableau) : SraSolver(Options{tableau}) {}

SolverTraits SraSolver::traits() const {
  SolverTraits t;
  t.any_schedule = true;  // only alpha, sigma, lambda and the field f, g^2
  t.name = "sra";
  t.stochastic = true;
  t.order = 2;  // weak (additive noise)
  t.strong_order = 1.5;
  t.evals_per_step = tableau_.stages;
  t.needs_decreasing_grid = true;  // the reverse SDE
  t.needs_positive_sigma_at_step_start = true;
  t.noise_use =
      "two random variables per step: dW = W(t1) - W(t0) and I10 = int_{t1}^{t0} (W(s) - W(t0)) ds. "
      "With brownian_tree noise both come from the tree's path (I10 by the trapezoid rule on "
      "its dyadic points inside the step); otherwise dW = sqrt(t0 - t1) times draw 2i and "
      "I10 = (t0 - t1)/2 (dW + sqrt((t0 - t1)/3) Z), Z = draw 2i + 1";
  return t;
}

void SraSolver::init(SolverContext& /*context*/, const State& x, const std::vector<double>& /*times*/) {
  f_.assign(static_cast<std::size_t>(tableau_.stages), State(x.rows(), x.cols()));
  g1_.assign(static_cast<std::size_t>(std::max(tableau_.stages, fallback_.stages)), 0.0);
  for (State* s : {&h_, &eps_, &dw_, &i10_, &w0_, &wa_, &wb_}) s->resize(x.rows(), x.cols());
}

void SraSolver::increments(SolverContext& context, double t0, double t1) {
  const double k = t0 - t1;
  const NoiseSource& path = context.noise();
  if (!path.is_path()) {
    context.noise().brownian(t0, t1, dw_);
    context.noise().normal(i10_);
    i10_ = (0.5 * k) * (dw_ + std::sqrt(k / 3.0) * i10_);
    return;
  }
  // int_{t1}^{t0} (W(s) - W(t0)) ds on the tree's path, by the trapezoid rule on the dyadic
  // points of level L inside the step (exact when L is the tree's depth: the path is linear
  // below its leaves). Spacing D = T 2^-L with D <= k^1.5 / 4 (in units of T) keeps the
  // quadrature error, of standard deviation ~ sqrt(k/12) D per step, below the scheme's.
  const NoiseSource::PathLattice lattice = path.lattice();
  const double span = lattice.t_hi - lattice.t_lo;
  const int wanted = static_cast<int>(std::ceil(1.5 * std::log2(span / k))) + 2;
  const int level = std::min(lattice.depth, std::max(1, wanted));
  const double d = std::ldexp(span, -level);
  path.value(t0, w0_);
  path.value(t1, wa_);
  dw_ = wa_ - w0_;
  i10_.setZero();
  double p = t1;
  auto m = static_cast<long long>(std::floor((t1 - lattice.t_lo) / d)) + 1;
  for (;; ++m) {
    double q = lattice.t_lo + static_cast<double>(m) * d;
    if (!(q < t0)) q = t0;
    if (q <= p) continue;
    if (q == t0)
      wb_ = w0_;
    else
      path.value(q, wb_);
    i10_ += (0.5 * (q - p)) * (wa_ + wb_ - 2.0 * w0_);
    if (q == t0) break;
    wa_.swap(wb_);
    p = q;
  }
}

void SraSolver::run_tableau(SolverContext& context, const SraTableau& tab, double t0, double t1,
                            State& x) {
  const Schedule& sch = context.schedule();
  const double h = t1 - t0, k = t0 - t1;
  const auto s = static_cast<std::size_t>(tab.stages);
  for (std::size_t j = 0; j < s; ++j) g1_[j] = field_g(sch, t0 + tab.c1[j] * h);
  for (std::size_t i = 0; i < s; ++i) {
    h_ = x;
    double noise = 0;
    for (std::size_t j = 0; j < i; ++j) {
      if (tab.a0[i][j] != 0) h_ += (h * tab.a0[i][j]) * f_[j];
      noise += tab.b0[i][j] * g1_[j];
    }
    if (noise != 0) h_ += (noise / k) * i10_;
    drift(context, h_, sch.at(t0 + tab.c0[i] * h), eps_, f_[i]);
  }
  double c_dw = 0, c_i10 = 0;
  for (std::size_t i = 0; i < s; ++i) {
    x += (h * tab.alpha[i]) * f_[i];
    c_dw += tab.beta1[i] * g1_[i];
    c_i10 += tab.beta2[i] * g1_[i];
  }
  x += c_dw * dw_ + (c_i10 / k) * i10_;
}

void SraSolver::step(SolverContext& context, std::size_t /*i*/, double t0, double t1, State& x) {
  increments(context, t0, t1);
  // SRA3 evaluates the drift at t1; on a final step to sigma = 0 use SRA1 (stages at t0 and
  // t0 + 3/4 h only).
  const bool end_at_zero = !(context.schedule().sigma(t1) > 0);
  run_tableau(context, end_at_zero ? fallback_ : tableau_, t0, t1, x);
}

}  // namespace diffsde
