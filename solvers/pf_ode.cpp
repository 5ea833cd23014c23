// The probability-flow ODE under Boost.Odeint steppers (see pf_ode.hpp): the grid checks,
// the right-hand side and the step counts. The steppers and their driver loop are
// odeint_integrator.cpp's.
#include "diffsde/solvers/pf_ode.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "diffsde/error.hpp"
#include "diffsde/solvers/options.hpp"
#include "diffsde/vector_field.hpp"

namespace diffsde {

namespace {

// pf_ode's limits on the adaptive loop: per grid interval, and an underflow relative to t
// alone (the likelihood keeps its own; see likelihood.cpp).
constexpr long kMaxAttempts = 100000;
constexpr OdeintLoopSettings kLoop{1, kMaxAttempts, 0.0};

// The right-hand side dx/dt = f x + g^2 / (2 sigma) eps(x, t) (vector_field.hpp; Song et
// al. 2021, eq. 13), for odeint: sys(x, dxdt, t). The model writes eps into dxdt, which is
// then turned into the derivative in place.
class PfOdeRhs {
 public:
  explicit PfOdeRhs(SolverContext& context) : context_(&context) {}
  void operator()(const State& x, State& dxdt, double t) const {
    const FieldAt c = field_at(context_->schedule(), t);
    context_->eps(x, t, dxdt);
    dxdt = pf_ode_drift(c, x, dxdt);
  }

 private:
  SolverContext* context_;
};

// Accepted and rejected attempts go to the run summary.
class ContextCounts final : public OdeintObserver<State> {
 public:
  explicit ContextCounts(SolverContext& context) : context_(&context) {}
  void accepted(const State& /*x*/, double /*t*/) override { context_->count_accepted(); }
  void rejected(const State& /*x*/, double /*t*/) override { context_->count_rejected(); }

 private:
  SolverContext* context_;
};

}  // namespace

PfOdeSolver::PfOdeSolver(PfOdeOptions options) : options_(options) {
  check_options(options_, "pf_ode");
}

PfOdeSolver::~PfOdeSolver() = default;

std::unique_ptr<Solver> PfOdeSolver::clone() const {
  return std::make_unique<PfOdeSolver>(options_);
}

SolverTraits PfOdeSolver::traits() const {
  SolverTraits t;
  t.any_schedule = true;  // only alpha, sigma, lambda and the field f, g^2
  t.name = "pf_ode";
  t.stochastic = false;
  if (const OdeintStepperInfo* row = find_odeint_stepper(options_.stepper)) {
    t.adaptive = row->adaptive;
    t.order = row->order;
    t.evals_per_step = row->evals_per_step;
  }
  t.batch_coupled = t.adaptive;  // one step size for the whole batch
  return t;
}

void PfOdeSolver::init(SolverContext& /*context*/, const State& /*x*/,
                       const std::vector<double>& times) {
  if (times.size() < 2) throw Error("pf_ode: the time grid needs at least 2 times");
  for (std::size_t i = 0; i < times.size(); ++i)
    if (!std::isfinite(times[i]))
      throw Error("pf_ode: grid time t[" + std::to_string(i) + "] is not finite");
  const bool increasing = times.back() > times.front();
  for (std::size_t i = 0; i + 1 < times.size(); ++i)
    if (increasing ? !(times[i + 1] > times[i]) : !(times[i + 1] < times[i]))
      throw Error("pf_ode: the grid must be strictly monotone, but t[" + std::to_string(i) +
                  "] = " + format_double(times[i]) + " and t[" + std::to_string(i + 1) +
                  "] = " + format_double(times[i + 1]));
  // The drift divides eps by sigma, which is 0 at t = 0.
  if (!(times.back() > 0))
    throw Error("pf_ode: the grid's end time t_end = " + format_double(times.back()) +
                " must be > 0: the probability-flow ODE divides eps by sigma(t), which is 0 at "
                "t = 0 (end at a small t such as 1e-3)");
  if (!(times.front() > 0))
    throw Error("pf_ode: the grid's start time t_start = " + format_double(times.front()) +
                " must be > 0: the probability-flow ODE divides eps by sigma(t), which is 0 at "
                "t = 0 (start at a small t such as 1e-3)");
  const OdeintStepperInfo* row = find_odeint_stepper(options_.stepper);
  if (row == nullptr) throw Error("pf_ode: unknown stepper");
  if (row->uniform_grid_reason != nullptr) {
    // A history kept for one step size; allow for rounding of the grid's times.
    const double n = static_cast<double>(times.size() - 1);
    const double h = (times.back() - times.front()) / n;
    for (std::size_t i = 0; i + 1 < times.size(); ++i) {
      const double h_i = times[i + 1] - times[i];
      const double slack =
          1e-9 * std::fabs(h) + 16 * std::numeric_limits<double>::epsilon() *
                                    std::max(std::fabs(times[i]), std::fabs(times[i + 1]));
      if (std::fabs(h_i - h) > slack)
        throw Error(
            "pf_ode: stepper " + std::string(row->name) + " needs a uniform grid (" +
            row->uniform_grid_reason + "), but interval " +
            std::to_string(i) + " from t = " + format_double(times[i]) + " to t = " +
            format_double(times[i + 1]) + " has dt = " + format_double(h_i) + " against the mean " +
            format_double(h) + "; use a time_uniform grid or another stepper");
    }
  }
  // A fresh integrator: empty history, h_init as the first trial step; odeint sizes its
  // work arrays on the first step.
  integrator_ = make_odeint_integrator<State>(options_, kLoop);
}

void PfOdeSolver::step(SolverContext& context, std::size_t /*i*/, double t0, double t1, State& x) {
  if (!integrator_) throw Error("pf_ode: step() before init()");
  PfOdeRhs rhs(context);
  // Adaptive attempts only: the driver counts a fixed stepper's steps itself (accepted =
  // grid steps).
  ContextCounts counts(context);
  try {
    integrator_->advance(OdeintRhs<State>(rhs), x, t0, t1,
                         is_adaptive(options_.stepper) ? &counts : nullptr);
  } catch (const OdeintStepFailure& f) {
    if (f.reason() == OdeintStepFailure::Reason::too_many_attempts)
      throw Error("pf_ode: more than " + std::to_string(kMaxAttempts) +
                  " step attempts between t = " + format_double(t0) +
                  " and t = " + format_double(t1) + " (reached t = " + format_double(f.t()) +
                  "); the tolerance may be too tight for this model");
    throw Error("pf_ode: step size underflow at t = " + format_double(f.t()) +
                " (|dt| = " + format_double(std::fabs(f.dt())) +
                "): the error estimate stays too large (non-finite values, or a "
                "tolerance below rounding)");
  }
}

}  // namespace diffsde
