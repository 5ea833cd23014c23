// Boost.Odeint's steppers and the one loop that drives them (see odeint_integrator.hpp).
//
// Two state types, each under its own algebra:
//  - State (pf_ode's batch) under vector_space_algebra: every stepper operation is one
//    Eigen expression over the whole batch (vectorised, no temporaries), and x needs no
//    copying into and out of a flat vector at every interval;
//  - std::vector<double> (one likelihood sample, d + K values) under odeint's default
//    range_algebra.
// Boost 1.74's odeint and Eigen 3.4 need three adjustments for a 2-D Eigen::Array as state,
// made here only (odeint's Eigen adapter adds operators to namespace Eigen, so it must stay
// in one translation unit):
//  - copy_impl: Eigen 3.4's begin()/end() make odeint take the array for a range and copy it
//    element by element through iterators that 2-D arrays lack; plain assignment is right;
//  - vector_space_norm_inf: odeint ships it for Eigen::Matrix only;
//  - StateOperations: odeint's default rel_error and scale_sum_swap2 copy whole states
//    (get_unit_value returns by value, swap goes through a temporary), i.e. they allocate
//    at every step; ours compute the same values in place.
#include "diffsde/solvers/odeint_integrator.hpp"
#include "diffsde/solvers/options.hpp"

#include <algorithm>
#include <boost/numeric/odeint/algebra/default_operations.hpp>
#include <boost/numeric/odeint/algebra/range_algebra.hpp>
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
#include <type_traits>
#include <utility>

// The Eigen adapter is not self-contained: it needs odeint's own headers first.
#include <boost/numeric/odeint/external/eigen/eigen.hpp>

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

OdeintStepFailure::OdeintStepFailure(Reason reason, double t, double dt)
    : Error(reason == Reason::too_many_attempts
                ? "odeint: too many step attempts (reached t = " + format_double(t) + ")"
                : "odeint: step size underflow at t = " + format_double(t) +
                      " (dt = " + format_double(dt) + ")"),
      reason_(reason),
      t_(t),
      dt_(dt) {}

namespace {

using Vector = std::vector<double>;

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

// The algebra and operations of each state type.
template <class X>
struct OdeintTypes;
template <>
struct OdeintTypes<State> {
  using Algebra = odeint::vector_space_algebra;
  using Operations = StateOperations;
};
template <>
struct OdeintTypes<Vector> {  // what odeint's dispatchers pick for a std::vector
  using Algebra = odeint::range_algebra;
  using Operations = odeint::default_operations;
};
template <class X>
using AlgebraOf = typename OdeintTypes<X>::Algebra;
template <class X>
using OperationsOf = typename OdeintTypes<X>::Operations;

// The steppers over state X.
template <class X>
using Euler = odeint::euler<X, double, X, double, AlgebraOf<X>, OperationsOf<X>>;
template <class X>
using Rk4 = odeint::runge_kutta4<X, double, X, double, AlgebraOf<X>, OperationsOf<X>>;
template <class X>
using Abm = odeint::adams_bashforth_moulton<4, X, double, X, double, AlgebraOf<X>, OperationsOf<X>>;
// A Runge-Kutta pair under odeint's error checker (a_x = a_dxdt = 1, odeint's usual).
template <class X, template <class, class, class, class, class, class, class> class Pair>
using Controlled = odeint::controlled_runge_kutta<
    Pair<X, double, X, double, AlgebraOf<X>, OperationsOf<X>, odeint::initially_resizer>,
    odeint::default_error_checker<double, AlgebraOf<X>, OperationsOf<X>>,
    odeint::default_step_adjuster<double, double>>;
template <class X>
using CashKarp54 = Controlled<X, odeint::runge_kutta_cash_karp54>;
template <class X>
using Dopri5 = Controlled<X, odeint::runge_kutta_dopri5>;
template <class X>
using Fehlberg78 = Controlled<X, odeint::runge_kutta_fehlberg78>;
template <class X>
using BulirschStoer = odeint::bulirsch_stoer<X, double, X, double, AlgebraOf<X>, OperationsOf<X>>;

template <class S>
struct IsBulirschStoer : std::false_type {};
template <class... A>
struct IsBulirschStoer<odeint::bulirsch_stoer<A...>> : std::true_type {};

// A stepper built from the tolerances. Returned as a prvalue, so that it is built in
// place: odeint's bulirsch_stoer leaves a member uninitialised until its first step, and
// copying one draws -Wmaybe-uninitialized.
template <class Stepper>
Stepper make_stepper(const PfOdeOptions& o) {
  if constexpr (IsBulirschStoer<Stepper>::value)
    return Stepper(o.atol, o.rtol);
  else
    return Stepper(typename Stepper::error_checker_type(o.atol, o.rtol));
}

// Whether the stepper keeps anything between steps that reset() forgets.
template <class S, class = void>
struct HasReset : std::false_type {};
template <class S>
struct HasReset<S, std::void_t<decltype(std::declval<S&>().reset())>> : std::true_type {};

template <class Stepper>
void reset_stepper(Stepper& stepper) {
  if constexpr (HasReset<Stepper>::value) stepper.reset();
}

bool same_state(const State& a, const State& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() && (a == b).all();
}
bool same_state(const Vector& a, const Vector& b) { return a == b; }

// Where the previous interval ended. The copy and the comparison cost O(size of x) per
// interval, small next to the right-hand side's work.
template <class X>
class EndPoint {
 public:
  bool continues(double t0, const X& x) const { return valid_ && t0 == t_ && same_state(x, x_); }
  void record(double t1, const X& x) {
    t_ = t1;
    x_ = x;  // allocates on the first interval only
    valid_ = true;
  }
  void forget() { valid_ = false; }

 private:
  bool valid_ = false;
  double t_ = 0;
  X x_;
};

// kEndPointState: the stepper keeps state that belongs to where its last step ended
// (adams_bashforth_moulton's history, dopri5's derivative), restarted wherever an interval
// does not continue the previous one.
template <class X, class Stepper, bool kEndPointState>
class FixedIntegrator final : public OdeintIntegrator<X> {
 public:
  using state_type = X;
  FixedIntegrator(const PfOdeOptions& /*o*/, const OdeintLoopSettings& loop)
      : steps_(loop.fixed_steps) {
    if (steps_ < 1) throw Error("odeint: fixed_steps must be >= 1, got " + std::to_string(steps_));
  }

  void advance(OdeintRhs<X> rhs, X& x, double t0, double t1, OdeintObserver<X>* observer) override {
    if constexpr (kEndPointState) {
      if (!end_.continues(t0, x)) reset_stepper(stepper_);
    }
    const double h = (t1 - t0) / static_cast<double>(steps_);
    for (long i = 0; i < steps_; ++i) {
      const double t = t0 + static_cast<double>(i) * h;
      const double t_next = i + 1 == steps_ ? t1 : t0 + static_cast<double>(i + 1) * h;
      stepper_.do_step(rhs, x, t, t_next - t);
      if (observer != nullptr) observer->accepted(x, t_next);
    }
    if constexpr (kEndPointState) end_.record(t1, x);
  }

  void restart() override {
    reset_stepper(stepper_);
    end_.forget();
  }

 private:
  long steps_;
  Stepper stepper_;
  EndPoint<X> end_;
};

// Controlled steps with try_step between t0 and t1: accepted and rejected attempts are
// observed, the step is clipped to land exactly on t1, and the controller's proposal
// carries over to the next interval.
template <class X, class Stepper, bool kEndPointState>
class AdaptiveIntegrator final : public OdeintIntegrator<X> {
 public:
  using state_type = X;
  AdaptiveIntegrator(const PfOdeOptions& o, const OdeintLoopSettings& loop)
      : stepper_(make_stepper<Stepper>(o)),
        h_init_(o.h_init),
        h_(o.h_init),
        max_attempts_(loop.max_attempts),
        underflow_floor_(loop.underflow_floor) {}

  void advance(OdeintRhs<X> rhs, X& x, double t0, double t1, OdeintObserver<X>* observer) override {
    if constexpr (kEndPointState) {
      if (!end_.continues(t0, x)) reset_stepper(stepper_);  // recompute the derivative at (t0, x)
    }
    const double direction = t1 > t0 ? 1.0 : -1.0;
    double t = t0;
    double dt = direction * h_;
    long attempts = 0;
    while (t != t1) {
      if (++attempts > max_attempts_)
        throw OdeintStepFailure(OdeintStepFailure::Reason::too_many_attempts, t, dt);
      const double remaining = t1 - t;
      const bool clipped = std::fabs(dt) > std::fabs(remaining);
      const bool last = clipped || dt == remaining;
      double dt_try = last ? remaining : dt;
      if (stepper_.try_step(rhs, x, t, dt_try) == odeint::success) {
        if (last) {
          t = t1;  // exactly, whatever t0 + sum of steps rounds to
          // A clipped step says nothing against the larger proposal before it.
          h_ = clipped ? std::max(std::fabs(dt), std::fabs(dt_try)) : std::fabs(dt_try);
        } else {
          dt = dt_try;
        }
        if (observer != nullptr) observer->accepted(x, t);
      } else {
        if (observer != nullptr) observer->rejected(x, t);
        dt = dt_try;
        if (!(std::fabs(dt) > kMinRelativeStep * std::max(underflow_floor_, std::fabs(t))))
          throw OdeintStepFailure(OdeintStepFailure::Reason::step_underflow, t, dt);
      }
    }
    if constexpr (kEndPointState) end_.record(t1, x);
  }

  void restart() override {
    reset_stepper(stepper_);
    end_.forget();
    h_ = h_init_;
  }

 private:
  static constexpr double kMinRelativeStep = 16 * std::numeric_limits<double>::epsilon();
  Stepper stepper_;
  double h_init_;
  double h_;  // the next trial |dt|
  long max_attempts_;
  double underflow_floor_;
  EndPoint<X> end_;
};

// The integrator of each stepper, for either state type.
template <class X>
using EulerIntegrator = FixedIntegrator<X, Euler<X>, false>;
template <class X>
using Rk4Integrator = FixedIntegrator<X, Rk4<X>, false>;
template <class X>
using AbmIntegrator = FixedIntegrator<X, Abm<X>, true>;
template <class X>
using CashKarp54Integrator = AdaptiveIntegrator<X, CashKarp54<X>, false>;
template <class X>
using Dopri5Integrator = AdaptiveIntegrator<X, Dopri5<X>, true>;  // FSAL
template <class X>
using Fehlberg78Integrator = AdaptiveIntegrator<X, Fehlberg78<X>, false>;
template <class X>
using BulirschStoerIntegrator = AdaptiveIntegrator<X, BulirschStoer<X>, false>;

template <class X>
using Factory = std::unique_ptr<OdeintIntegrator<X>> (*)(const PfOdeOptions&,
                                                         const OdeintLoopSettings&);

template <class Integrator>
std::unique_ptr<OdeintIntegrator<typename Integrator::state_type>> make(
    const PfOdeOptions& o, const OdeintLoopSettings& loop) {
  return std::make_unique<Integrator>(o, loop);
}

// One integrator, instantiated for both state types.
struct Factories {
  Factory<State> state;
  Factory<Vector> vector;
};
template <template <class> class Integrator>
constexpr Factories kFactories{&make<Integrator<State>>, &make<Integrator<Vector>>};

struct StepperRow {
  OdeintStepperInfo info;
  Factories make;
};

// In PfOdeStepper's order (checked below). Adding a stepper is one value in PfOdeStepper
// and one row here.
constexpr StepperRow kSteppers[] = {
    {{PfOdeStepper::euler, "euler", false, 1, 1, nullptr}, kFactories<EulerIntegrator>},
    {{PfOdeStepper::rk4, "rk4", false, 4, 4, nullptr}, kFactories<Rk4Integrator>},
    // odeint's PECE: f(x_n) for the predictor, f(predicted) for the corrector. The first
    // three steps are RK4 (4 each), so N >= 3 steps cost 2 N + 6 evaluations.
    {{PfOdeStepper::adams_bashforth_moulton, "adams_bashforth_moulton", false, 4, 2,
      "its 4-step history assumes one step size"},
     kFactories<AbmIntegrator>},
    {{PfOdeStepper::cash_karp54, "cash_karp54", true, 5, 6, nullptr},
     kFactories<CashKarp54Integrator>},
    // 7 stages, the last reused as the next step's first (FSAL).
    {{PfOdeStepper::dopri5, "dopri5", true, 5, 6, nullptr}, kFactories<Dopri5Integrator>},
    {{PfOdeStepper::fehlberg78, "fehlberg78", true, 8, 13, nullptr},
     kFactories<Fehlberg78Integrator>},
    // Extrapolated modified midpoint: column k of the tableau has order 2k + 2, and the
    // controller moves k within 1..8 as it goes. Declared: column 4, where odeint starts
    // (order 10); an attempt through column 4 costs 1 + 2 + 4 + 6 + 8 + 10 = 31.
    {{PfOdeStepper::bulirsch_stoer, "bulirsch_stoer", true, 10, 31, nullptr},
     kFactories<BulirschStoerIntegrator>},
};

constexpr bool rows_in_enum_order() {
  for (std::size_t i = 0; i < std::size(kSteppers); ++i)
    if (static_cast<std::size_t>(kSteppers[i].info.stepper) != i) return false;
  return true;
}
static_assert(rows_in_enum_order(), "kSteppers must list the steppers in PfOdeStepper's order");

const StepperRow* find_row(PfOdeStepper stepper) {
  const auto i = static_cast<std::size_t>(stepper);
  return i < std::size(kSteppers) ? &kSteppers[i] : nullptr;
}

}  // namespace

const OdeintStepperInfo* find_odeint_stepper(PfOdeStepper stepper) {
  const StepperRow* row = find_row(stepper);
  return row != nullptr ? &row->info : nullptr;
}

const std::vector<OdeintStepperInfo>& odeint_steppers() {
  static const std::vector<OdeintStepperInfo> all = [] {
    std::vector<OdeintStepperInfo> v;
    for (const StepperRow& row : kSteppers) v.push_back(row.info);
    return v;
  }();
  return all;
}

const std::vector<PfOdeStepper>& all_pf_ode_steppers() {
  static const std::vector<PfOdeStepper> all = [] {
    std::vector<PfOdeStepper> v;
    for (const StepperRow& row : kSteppers) v.push_back(row.info.stepper);
    return v;
  }();
  return all;
}

std::string to_string(PfOdeStepper stepper) {
  const StepperRow* row = find_row(stepper);
  return row != nullptr ? row->info.name : "?";
}

PfOdeStepper pf_ode_stepper_from_string(const std::string& s) {
  std::string known;
  for (const StepperRow& row : kSteppers) {
    if (row.info.name == s) return row.info.stepper;
    known += (known.empty() ? "" : ", ") + std::string(row.info.name);
  }
  throw Error("unknown pf_ode stepper '" + s + "'; known: " + known);
}

bool is_adaptive(PfOdeStepper stepper) {
  const StepperRow* row = find_row(stepper);
  return row != nullptr && row->info.adaptive;
}

bool PfOdeOptions::is_valid(std::string* error, std::string* option) const {
  if (!(rtol > 0) || !std::isfinite(rtol))
    return invalid_option(error, option, "rtol", "must be > 0, got " + format_double(rtol));
  if (!(atol > 0) || !std::isfinite(atol))
    return invalid_option(error, option, "atol", "must be > 0, got " + format_double(atol));
  if (!(h_init > 0) || !std::isfinite(h_init))
    return invalid_option(error, option, "h_init", "must be > 0, got " + format_double(h_init));
  return true;
}

template <class X>
std::unique_ptr<OdeintIntegrator<X>> make_odeint_integrator(const PfOdeOptions& options,
                                                            const OdeintLoopSettings& loop) {
  const StepperRow* row = find_row(options.stepper);
  if (row == nullptr) throw Error("odeint: unknown pf_ode stepper");
  if constexpr (std::is_same_v<X, State>)
    return row->make.state(options, loop);
  else
    return row->make.vector(options, loop);
}

template std::unique_ptr<OdeintIntegrator<State>> make_odeint_integrator<State>(
    const PfOdeOptions&, const OdeintLoopSettings&);
template std::unique_ptr<OdeintIntegrator<Vector>> make_odeint_integrator<Vector>(
    const PfOdeOptions&, const OdeintLoopSettings&);

}  // namespace diffsde
