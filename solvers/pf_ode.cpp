// The probability-flow ODE under Boost.Odeint steppers (see pf_ode.hpp).
//
// odeint works on diffsde::State itself, through its vector_space_algebra: every stepper
// operation is then one Eigen expression over the whole batch (vectorised, no temporaries),
// and x needs no copying into and out of a flat vector at every interval. Boost 1.74's
// odeint and Eigen 3.4 need three adjustments for a 2-D Eigen::Array as state, made below
// here only (odeint's Eigen adapter adds operators to namespace Eigen, so it must stay in
// one translation unit):
//  - copy_impl: Eigen 3.4's begin()/end() make odeint take the array for a range and copy it
//    element by element through iterators that 2-D arrays lack; plain assignment is right;
//  - vector_space_norm_inf: odeint ships it for Eigen::Matrix only;
//  - StateOperations: odeint's default rel_error and scale_sum_swap2 copy whole states
//    (get_unit_value returns by value, swap goes through a temporary), i.e. they allocate
//    at every step; ours compute the same values in place.
#include "diffsde/solvers/pf_ode.hpp"

#include <algorithm>
#include <boost/numeric/odeint/algebra/default_operations.hpp>
#include <boost/numeric/odeint/algebra/vector_space_algebra.hpp>
#include <boost/numeric/odeint/stepper/adams_bashforth_moulton.hpp>
#include <boost/numeric/odeint/stepper/bulirsch_stoer.hpp>
#include <boost/numeric/odeint/stepper/controlled_runge_kutta.hpp>
#include <boost/numeric/odeint/stepper/euler.hpp>
#include <boost/numeric/odeint/stepper/runge_kutta4.hpp>
#include <boost/numeric/odeint/stepper/runge_kutta_cash_karp54.hpp>
#include <boost/numeric/odeint/stepper/runge_kutta_dopri5.hpp>
#include <boost/numeric/odeint/stepper/runge_kutta_fehlberg78.hpp>
#include <boost/numeric/odeint/util/copy.hpp>
#include <cmath>
#include <iterator>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

// The Eigen adapter is not self-contained: it needs odeint's own headers first.
#include <boost/numeric/odeint/external/eigen/eigen.hpp>

#include "diffsde/error.hpp"
#include "diffsde/registry.hpp"

namespace boost::numeric::odeint {

// Plain assignment (sizes already match: odeint resizes its work arrays first).
template <typename B, int R, int C, int O, int MR, int MC>
struct copy_impl<Eigen::Array<B, R, C, O, MR, MC>, Eigen::Array<B, R, C, O, MR, MC>> {
  static void copy(const Eigen::Array<B, R, C, O, MR, MC>& from,
                   Eigen::Array<B, R, C, O, MR, MC>& to) {
    to = from;
  }
};

// The max-norm the adaptive controllers compare with 1. A NaN anywhere reads as +inf, so
// that a step which produced NaN is rejected (and shrunk) instead of accepted.
template <typename B, int R, int C, int O, int MR, int MC>
struct vector_space_norm_inf<Eigen::Array<B, R, C, O, MR, MC>> {
  using result_type = B;
  result_type operator()(const Eigen::Array<B, R, C, O, MR, MC>& a) const {
    const B m = a.abs().template maxCoeff<Eigen::PropagateNaN>();
    return std::isnan(m) ? std::numeric_limits<B>::infinity() : m;
  }
};

}  // namespace boost::numeric::odeint

namespace diffsde {

namespace odeint = boost::numeric::odeint;

namespace {

using Algebra = odeint::vector_space_algebra;

// odeint's default operations with the two that copied whole states done in place.
struct StateOperations : odeint::default_operations {
  // t1 <- a1 t2 + a2 t3 and t2 <- old t1 (the modified-midpoint recursion of
  // bulirsch_stoer): build the new value in t2's storage, then swap the buffers.
  template <class Fac1 = double, class Fac2 = Fac1>
  struct scale_sum_swap2 {
    const Fac1 m_alpha1;
    const Fac2 m_alpha2;
    scale_sum_swap2(Fac1 alpha1, Fac2 alpha2) : m_alpha1(alpha1), m_alpha2(alpha2) {}
    void operator()(State& t1, State& t2, const State& t3) const {
      t2 = m_alpha1 * t2 + m_alpha2 * t3;
      t1.swap(t2);
    }
    typedef void result_type;
  };

  // odeint's error measure err_i / (atol + rtol (a_x |x_i| + a_dxdt |dt| |dxdt_i|)), in place.
  template <class Fac1 = double>
  struct rel_error {
    const Fac1 m_eps_abs, m_eps_rel, m_a_x, m_a_dxdt;
    rel_error(Fac1 eps_abs, Fac1 eps_rel, Fac1 a_x, Fac1 a_dxdt)
        : m_eps_abs(eps_abs), m_eps_rel(eps_rel), m_a_x(a_x), m_a_dxdt(a_dxdt) {}
    void operator()(State& t3, const State& t1, const State& t2) const {
      t3 = t3.abs() / (m_eps_abs + m_eps_rel * (m_a_x * t1.abs() + m_a_dxdt * t2.abs()));
    }
    typedef void result_type;
  };
};

using EulerStepper = odeint::euler<State, double, State, double, Algebra, StateOperations>;
using Rk4Stepper = odeint::runge_kutta4<State, double, State, double, Algebra, StateOperations>;
using AbmStepper =
    odeint::adams_bashforth_moulton<4, State, double, State, double, Algebra, StateOperations>;
using ErrorChecker = odeint::default_error_checker<double, Algebra, StateOperations>;
using StepAdjuster = odeint::default_step_adjuster<double, double>;
template <class ErrorStepper>
using Controlled = odeint::controlled_runge_kutta<ErrorStepper, ErrorChecker, StepAdjuster>;
using CashKarp54Stepper = Controlled<
    odeint::runge_kutta_cash_karp54<State, double, State, double, Algebra, StateOperations>>;
using Dopri5Stepper =
    Controlled<odeint::runge_kutta_dopri5<State, double, State, double, Algebra, StateOperations>>;
using Fehlberg78Stepper = Controlled<
    odeint::runge_kutta_fehlberg78<State, double, State, double, Algebra, StateOperations>>;
using BulirschStoerStepper =
    odeint::bulirsch_stoer<State, double, State, double, Algebra, StateOperations>;

// The right-hand side dx/dt = -beta/2 x + beta / (2 sigma) eps(x, t) (Song et al. 2021,
// eq. 13, with the score s = -eps / sigma), for odeint: sys(x, dxdt, t). The model writes
// eps into dxdt, which is then turned into the derivative in place.
class PfOdeRhs {
 public:
  explicit PfOdeRhs(SolverContext& context) : context_(&context) {}
  void operator()(const State& x, State& dxdt, double t) const {
    const ScheduleAt s = context_->schedule().at(t);
    context_->eps(x, t, dxdt);
    dxdt = (-0.5 * s.beta) * x + (0.5 * s.beta / s.sigma) * dxdt;
  }

 private:
  SolverContext* context_;
};

// Where the previous interval ended. Multistep history (adams_bashforth_moulton) and the
// first-same-as-last derivative (dopri5) belong to that end point; a step that starts
// anywhere else (another t, or an x changed between steps) must start afresh. The copy
// and the comparison cost O(batch x dim) per interval, small next to the model's work.
class EndPoint {
 public:
  bool continues(double t0, const State& x) const {
    return valid_ && t0 == t_ && x.rows() == x_.rows() && x.cols() == x_.cols() && (x == x_).all();
  }
  void record(double t1, const State& x) {
    t_ = t1;
    x_ = x;  // allocates on the first interval only
    valid_ = true;
  }

 private:
  bool valid_ = false;
  double t_ = 0;
  State x_;
};

}  // namespace

class PfOdeSolver::Engine {
 public:
  virtual ~Engine() = default;
  // Advances x from t0 to t1, landing exactly on t1.
  virtual void advance(SolverContext& context, double t0, double t1, State& x) = 0;
};

namespace {

// One do_step per grid interval (negative dt when the grid decreases).
template <class Stepper>
class FixedEngine final : public PfOdeSolver::Engine {
 public:
  void advance(SolverContext& context, double t0, double t1, State& x) override {
    stepper_.do_step(PfOdeRhs(context), x, t0, t1 - t0);
  }

 private:
  Stepper stepper_;
};

// adams_bashforth_moulton<4>: RK4 for the first three steps, then AB4 predictor, AM
// corrector, each with one evaluation. The history restarts wherever a step does not
// continue the previous one.
class AbmEngine final : public PfOdeSolver::Engine {
 public:
  void advance(SolverContext& context, double t0, double t1, State& x) override {
    if (!end_.continues(t0, x)) stepper_.reset();
    stepper_.do_step(PfOdeRhs(context), x, t0, t1 - t0);
    end_.record(t1, x);
  }

 private:
  AbmStepper stepper_;
  EndPoint end_;
};

// Controlled steps with try_step between two grid times: accepted and rejected attempts
// are counted, the step is clipped to land exactly on t1, and the controller's proposal
// carries over to the next interval.
template <class Stepper, bool kFsal>
class AdaptiveEngine final : public PfOdeSolver::Engine {
 public:
  // The stepper is built in place: odeint's bulirsch_stoer leaves a member uninitialised
  // until its first step, so copying one draws -Wmaybe-uninitialized.
  template <class... StepperArgs>
  explicit AdaptiveEngine(double h_init, StepperArgs&&... args)
      : stepper_(std::forward<StepperArgs>(args)...), h_(h_init) {}

  void advance(SolverContext& context, double t0, double t1, State& x) override {
    if constexpr (kFsal) {
      if (!end_.continues(t0, x)) stepper_.reset();  // recompute the derivative at (t0, x)
    }
    const PfOdeRhs rhs(context);
    const double direction = t1 > t0 ? 1.0 : -1.0;
    double t = t0;
    double dt = direction * h_;
    long attempts = 0;
    while (t != t1) {
      if (++attempts > kMaxAttempts)
        throw Error("pf_ode: more than " + std::to_string(kMaxAttempts) +
                    " step attempts between t = " + format_double(t0) +
                    " and t = " + format_double(t1) + " (reached t = " + format_double(t) +
                    "); the tolerance may be too tight for this model");
      const double remaining = t1 - t;
      const bool clipped = std::fabs(dt) > std::fabs(remaining);
      const bool last = clipped || dt == remaining;
      double dt_try = last ? remaining : dt;
      if (stepper_.try_step(rhs, x, t, dt_try) == odeint::success) {
        context.count_accepted();
        if (last) {
          t = t1;  // exactly, whatever t0 + sum of steps rounds to
          // A clipped step says nothing against the larger proposal before it.
          h_ = clipped ? std::max(std::fabs(dt), std::fabs(dt_try)) : std::fabs(dt_try);
        } else {
          dt = dt_try;
        }
      } else {
        context.count_rejected();
        dt = dt_try;
        if (!(std::fabs(dt) > kMinRelativeStep * std::fabs(t)))
          throw Error("pf_ode: step size underflow at t = " + format_double(t) +
                      " (|dt| = " + format_double(std::fabs(dt)) +
                      "): the error estimate stays too large (non-finite values, or a "
                      "tolerance below rounding)");
      }
    }
    if constexpr (kFsal) end_.record(t1, x);
  }

 private:
  static constexpr long kMaxAttempts = 100000;
  static constexpr double kMinRelativeStep = 16 * std::numeric_limits<double>::epsilon();
  Stepper stepper_;
  double h_;  // the next trial |dt|
  EndPoint end_;
};

// Engine factories for the table below.
template <class Stepper>
std::unique_ptr<PfOdeSolver::Engine> fixed_engine(const PfOdeOptions& /*o*/) {
  return std::make_unique<FixedEngine<Stepper>>();
}

std::unique_ptr<PfOdeSolver::Engine> abm_engine(const PfOdeOptions& /*o*/) {
  return std::make_unique<AbmEngine>();
}

// A controlled Runge-Kutta pair under odeint's error checker (a_x = a_dxdt = 1, odeint's usual).
template <class Stepper, bool kFsal>
std::unique_ptr<PfOdeSolver::Engine> controlled_engine(const PfOdeOptions& o) {
  const ErrorChecker checker(o.atol, o.rtol);
  return std::make_unique<AdaptiveEngine<Stepper, kFsal>>(o.h_init, checker);
}

std::unique_ptr<PfOdeSolver::Engine> bulirsch_stoer_engine(const PfOdeOptions& o) {
  return std::make_unique<AdaptiveEngine<BulirschStoerStepper, false>>(o.h_init, o.atol, o.rtol);
}

enum class Steps { fixed, adaptive };

// Everything the solver knows about one stepper. Adding a stepper is one value in
// PfOdeStepper (pf_ode.hpp) and one row of kSteppers.
struct StepperRow {
  PfOdeStepper stepper;
  const char* name;
  // fixed: one do_step per grid interval; adaptive: odeint's controller chooses the steps
  // between grid times (and the error norm couples the batch).
  Steps steps;
  double order;  // declared global order (traits, order tests)
  // Fixed steppers: evaluations per grid interval. Adaptive ones: per attempted step.
  int evals_per_step;
  // Why the stepper needs equal grid intervals; nullptr when any grid will do.
  const char* uniform_grid_reason;
  std::unique_ptr<PfOdeSolver::Engine> (*make_engine)(const PfOdeOptions& o);
};

// In PfOdeStepper's order (checked below).
constexpr StepperRow kSteppers[] = {
    {PfOdeStepper::euler, "euler", Steps::fixed, 1, 1, nullptr, fixed_engine<EulerStepper>},
    {PfOdeStepper::rk4, "rk4", Steps::fixed, 4, 4, nullptr, fixed_engine<Rk4Stepper>},
    // odeint's PECE: f(x_n) for the predictor, f(predicted) for the corrector. The first
    // three steps are RK4 (4 each), so N >= 3 steps cost 2 N + 6 evaluations.
    {PfOdeStepper::adams_bashforth_moulton, "adams_bashforth_moulton", Steps::fixed, 4, 2,
     "its 4-step history assumes one step size", abm_engine},
    {PfOdeStepper::cash_karp54, "cash_karp54", Steps::adaptive, 5, 6, nullptr,
     controlled_engine<CashKarp54Stepper, false>},
    // 7 stages, the last reused as the next step's first (FSAL).
    {PfOdeStepper::dopri5, "dopri5", Steps::adaptive, 5, 6, nullptr, controlled_engine<Dopri5Stepper, true>},
    {PfOdeStepper::fehlberg78, "fehlberg78", Steps::adaptive, 8, 13, nullptr,
     controlled_engine<Fehlberg78Stepper, false>},
    // Extrapolated modified midpoint: column k of the tableau has order 2k + 2, and the
    // controller moves k within 1..8 as it goes. Declared: column 4, where odeint starts
    // (order 10); an attempt through column 4 costs 1 + 2 + 4 + 6 + 8 + 10 = 31.
    {PfOdeStepper::bulirsch_stoer, "bulirsch_stoer", Steps::adaptive, 10, 31, nullptr, bulirsch_stoer_engine},
};

constexpr bool rows_in_enum_order() {
  for (std::size_t i = 0; i < std::size(kSteppers); ++i)
    if (static_cast<std::size_t>(kSteppers[i].stepper) != i) return false;
  return true;
}
static_assert(rows_in_enum_order(), "kSteppers must list the steppers in PfOdeStepper's order");

// The stepper's row; nullptr for a value outside the enum.
const StepperRow* find_row(PfOdeStepper stepper) {
  const auto i = static_cast<std::size_t>(stepper);
  return i < std::size(kSteppers) ? &kSteppers[i] : nullptr;
}

std::unique_ptr<PfOdeSolver::Engine> make_engine(const PfOdeOptions& o) {
  if (const StepperRow* row = find_row(o.stepper)) return row->make_engine(o);
  throw Error("pf_ode: unknown stepper");
}

// The names of the steppers whose row passes `keep`, joined by ", " and the last by `last_sep`.
template <class Keep>
std::string joined_names(Keep keep, const std::string& last_sep = ", ") {
  std::vector<std::string> names;
  for (const StepperRow& row : kSteppers)
    if (keep(row)) names.emplace_back(row.name);
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i)
    out += (i == 0 ? "" : i + 1 == names.size() ? last_sep : ", ") + names[i];
  return out;
}

bool is_fixed(const StepperRow& row) { return row.steps == Steps::fixed; }
bool is_adaptive_row(const StepperRow& row) { return row.steps == Steps::adaptive; }

}  // namespace

const std::vector<PfOdeStepper>& all_pf_ode_steppers() {
  static const std::vector<PfOdeStepper> all = [] {
    std::vector<PfOdeStepper> v;
    for (const StepperRow& row : kSteppers) v.push_back(row.stepper);
    return v;
  }();
  return all;
}

std::string to_string(PfOdeStepper stepper) {
  const StepperRow* row = find_row(stepper);
  return row != nullptr ? row->name : "?";
}

PfOdeStepper pf_ode_stepper_from_string(const std::string& s) {
  std::string known;
  for (const StepperRow& row : kSteppers) {
    if (row.name == s) return row.stepper;
    known += (known.empty() ? "" : ", ") + std::string(row.name);
  }
  throw Error("unknown pf_ode stepper '" + s + "'; known: " + known);
}

bool is_adaptive(PfOdeStepper stepper) {
  const StepperRow* row = find_row(stepper);
  return row != nullptr && is_adaptive_row(*row);
}

bool PfOdeOptions::is_valid(std::string* error) const {
  auto fail = [&](const std::string& message) {
    if (error != nullptr) *error = message;
    return false;
  };
  if (!(rtol > 0) || !std::isfinite(rtol))
    return fail("rtol must be > 0, got " + format_double(rtol));
  if (!(atol > 0) || !std::isfinite(atol))
    return fail("atol must be > 0, got " + format_double(atol));
  if (!(h_init > 0) || !std::isfinite(h_init))
    return fail("h_init must be > 0, got " + format_double(h_init));
  return true;
}

PfOdeSolver::PfOdeSolver(PfOdeOptions options) : options_(options) {
  std::string error;
  if (!options_.is_valid(&error)) throw Error("pf_ode: " + error);
}

PfOdeSolver::~PfOdeSolver() = default;

std::unique_ptr<Solver> PfOdeSolver::clone() const {
  return std::make_unique<PfOdeSolver>(options_);
}

SolverTraits PfOdeSolver::traits() const {
  SolverTraits t;
  t.name = "pf_ode";
  t.stochastic = false;
  if (const StepperRow* row = find_row(options_.stepper)) {
    t.adaptive = is_adaptive_row(*row);
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
  const StepperRow* row = find_row(options_.stepper);
  if (row != nullptr && row->uniform_grid_reason != nullptr) {
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
  // A fresh engine: empty history, h_init as the first trial step; odeint sizes its work
  // arrays on the first step.
  engine_ = make_engine(options_);
}

void PfOdeSolver::step(SolverContext& context, std::size_t /*i*/, double t0, double t1, State& x) {
  if (!engine_) throw Error("pf_ode: step() before init()");
  engine_->advance(context, t0, t1, x);
}

namespace builtin {

void register_pf_ode(Registry<Solver>& registry) {
  std::vector<std::string> choices;
  std::vector<nlohmann::json> variants;
  for (const StepperRow& row : kSteppers) {
    choices.emplace_back(row.name);
    variants.push_back(nlohmann::json{{"stepper", row.name}});
  }
  // The texts below name the steppers from the table, so that a new row shows up in them.
  const std::string fixed = joined_names(is_fixed);
  const std::string adaptive = joined_names(is_adaptive_row);
  std::string uniform_note;
  for (const StepperRow& row : kSteppers)
    if (row.uniform_grid_reason != nullptr)
      uniform_note += " (" + std::string(row.name) + " needs a uniform grid)";
  RegistryEntry<Solver> entry;
  entry.name = "pf_ode";
  entry.description =
      "Probability-flow ODE dx/dt = -beta/2 x + beta/(2 sigma) eps(x, t) under a Boost.Odeint "
      "stepper: fixed (" + fixed + ") or adaptive (" + adaptive + ")";
  entry.params = {
      {"stepper", ParamType::string, "dopri5",
       "odeint stepper; " + joined_names(is_fixed, " and ") + " take one step per grid interval" +
           uniform_note + ", the others choose their own steps between the grid times",
       choices},
      {"rtol", ParamType::number, 1e-6, "relative tolerance of the adaptive steppers"},
      {"atol", ParamType::number, 1e-6, "absolute tolerance of the adaptive steppers"},
      {"h_init", ParamType::number, 0.01, "first trial |dt| of the adaptive steppers"},
  };
  entry.make = [adaptive](const Params& params, const BuildContext&) -> std::unique_ptr<Solver> {
    PfOdeOptions o;
    o.stepper = pf_ode_stepper_from_string(params.string("stepper"));
    o.rtol = params.number("rtol");
    o.atol = params.number("atol");
    o.h_init = params.number("h_init");
    if (!is_adaptive(o.stepper))
      for (const char* name : {"rtol", "atol", "h_init"})
        if (params.given(name))
          params.fail(name,
                      "only the adaptive steppers (" + adaptive + ") use it; stepper '" +
                          to_string(o.stepper) + "' takes one step per grid interval");
    if (!(o.rtol > 0)) params.fail("rtol", "must be > 0, got " + format_double(o.rtol));
    if (!(o.atol > 0)) params.fail("atol", "must be > 0, got " + format_double(o.atol));
    if (!(o.h_init > 0)) params.fail("h_init", "must be > 0, got " + format_double(o.h_init));
    return std::make_unique<PfOdeSolver>(o);
  };
  entry.variants = std::move(variants);
  registry.add(std::move(entry));
}

}  // namespace builtin

}  // namespace diffsde
