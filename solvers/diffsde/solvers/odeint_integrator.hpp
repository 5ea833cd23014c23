// Boost.Odeint's steppers behind one table and one driver loop, shared by the pf_ode solver
// (its state is a State batch) and the PF-ODE likelihood (its state is one sample's
// augmented vector (x, D_1..D_K), a std::vector<double>).
//
// An OdeintIntegrator<X> integrates a right-hand side over [t0, t1] with one stepper:
//  - fixed steppers (euler, rk4, adams_bashforth_moulton) take `fixed_steps` uniform
//    do_steps, t_i = t0 + i (t1 - t0) / n, the last landing on t1;
//  - adaptive steppers (cash_karp54, dopri5, fehlberg78, bulirsch_stoer) run odeint's
//    controller with try_step, count accepted and rejected attempts, clip the last step to
//    land exactly on t1, and carry the controller's proposal over to the next interval.
// A multistep history (adams_bashforth_moulton) and a first-same-as-last derivative
// (dopri5) belong to the point where the previous interval ended: an interval that starts
// anywhere else (another t, or an x changed in between) restarts them.
//
// Boost.Odeint appears only in odeint_integrator.cpp (its Eigen adapter patches Eigen's
// namespace, so it must stay in one translation unit): this header is type-erased, and the
// integrator is instantiated there for the two state types above only.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "diffsde/error.hpp"
#include "diffsde/state.hpp"

namespace diffsde {

// Each value has one row in odeint_integrator.cpp's stepper table (name, fixed or
// adaptive, order, evaluations per step, grid needs, integrator), in this order.
enum class PfOdeStepper {
  euler,                    // fixed, order 1
  rk4,                      // fixed, classic Runge-Kutta, order 4
  adams_bashforth_moulton,  // fixed, 4-step predictor-corrector, order 4; uniform grid only
  cash_karp54,              // adaptive, Cash & Karp (1990), order 5 (error estimate 4)
  dopri5,                   // adaptive, Dormand & Prince (1980), order 5 (error estimate 4)
  fehlberg78,               // adaptive, Fehlberg (1969), order 8 (error estimate 7)
  bulirsch_stoer,           // adaptive, extrapolated modified midpoint, variable order
};

// "euler" | "rk4" | ... ; throws Error listing the known names on anything else.
PfOdeStepper pf_ode_stepper_from_string(const std::string& s);
std::string to_string(PfOdeStepper stepper);
// All steppers, in the order above.
const std::vector<PfOdeStepper>& all_pf_ode_steppers();
bool is_adaptive(PfOdeStepper stepper);

// What the table knows about one stepper.
struct OdeintStepperInfo {
  PfOdeStepper stepper;
  const char* name;
  // false: one do_step per step of the caller's grid; true: odeint's controller chooses
  // the steps between grid times.
  bool adaptive;
  double order;  // declared global order (traits, order tests)
  // Fixed steppers: evaluations per step. Adaptive ones: per attempted step.
  int evals_per_step;
  // Why the stepper needs equal steps; nullptr when any grid will do.
  const char* uniform_grid_reason;
};

// The stepper's row; nullptr for a value outside the enum.
const OdeintStepperInfo* find_odeint_stepper(PfOdeStepper stepper);
// Every row, in PfOdeStepper's order.
const std::vector<OdeintStepperInfo>& odeint_steppers();

// The stepper and its tolerances, as the pf_ode solver and the likelihood take them.
struct PfOdeOptions {
  PfOdeStepper stepper = PfOdeStepper::dopri5;
  // Adaptive steppers only: odeint's per-component tolerance
  //   |err_i| <= atol + rtol (|x_i| + |h| |dx_i/dt|), max over the whole state.
  double rtol = 1e-6;
  double atol = 1e-6;
  // Adaptive steppers only: the first trial |dt| (later intervals go on from the
  // controller's last proposal).
  double h_init = 0.01;

  // True when usable; otherwise false with the reason (solvers/diffsde/solvers/options.hpp:
  // the option in *option and what is wrong in *error, or one sentence in *error).
  bool is_valid(std::string* error = nullptr, std::string* option = nullptr) const;
};

// How a caller drives the loop. The two callers keep different limits (pf_ode gives up
// per grid interval, the likelihood per sample over its whole [t_min, t_max]), so each
// states its own.
struct OdeintLoopSettings {
  // Fixed steppers: uniform do_steps per advance().
  long fixed_steps = 1;
  // Adaptive steppers: attempts per advance() before OdeintStepFailure.
  long max_attempts = 100000;
  // Adaptive steppers: a rejected step that shrinks to
  //   |dt| <= 16 eps max(underflow_floor, |t|)
  // is an underflow (0: relative to t alone; 1: never below 16 eps absolute).
  double underflow_floor = 0;
};

// An adaptive loop that gave up: the caller words the error for its users.
class OdeintStepFailure : public Error {
 public:
  enum class Reason {
    too_many_attempts,  // more than max_attempts in one advance()
    step_underflow,     // a rejected step shrank below rounding (see underflow_floor)
  };
  OdeintStepFailure(Reason reason, double t, double dt);
  Reason reason() const { return reason_; }
  double t() const { return t_; }    // where the loop stood
  double dt() const { return dt_; }  // the step it would have tried next (signed)

 private:
  Reason reason_;
  double t_, dt_;
};

// A reference to the caller's right-hand side sys(x, dxdt, t), cheap to copy (odeint
// copies systems by value); the callable must outlive it.
template <class X>
class OdeintRhs {
 public:
  template <class F>
  explicit OdeintRhs(F& f)
      : object_(const_cast<void*>(static_cast<const void*>(&f))),
        call_([](void* object, const X& x, X& dxdt, double t) {
          (*static_cast<F*>(object))(x, dxdt, t);
        }) {}
  void operator()(const X& x, X& dxdt, double t) const { call_(object_, x, dxdt, t); }

 private:
  void* object_;
  void (*call_)(void*, const X&, X&, double);
};

// Sees every step of an advance().
template <class X>
class OdeintObserver {
 public:
  // After each step taken (every fixed step, every accepted attempt); t is the time
  // reached, exactly t1 after the last step of an interval. May throw to stop the run.
  virtual void accepted(const X& x, double t) = 0;
  // After each rejected attempt (x unchanged), at the t it started from.
  virtual void rejected(const X& x, double t) = 0;

 protected:
  ~OdeintObserver() = default;
};

// One stepper with its work arrays, history and step size; X is State or
// std::vector<double>. Work arrays are sized on the first step; nothing is allocated per
// step after that (except inside odeint's bulirsch_stoer, two vectors per attempt).
template <class X>
class OdeintIntegrator {
 public:
  virtual ~OdeintIntegrator() = default;
  // Advances x from t0 to t1 (either direction), landing exactly on t1. The observer may
  // be null. Throws OdeintStepFailure when an adaptive loop gives up.
  virtual void advance(OdeintRhs<X> rhs, X& x, double t0, double t1,
                       OdeintObserver<X>* observer) = 0;
  // Forgets everything, as if newly made: history, FSAL derivative, bulirsch_stoer's
  // order and step memory, and the next trial step goes back to h_init.
  virtual void restart() = 0;
};

// A new integrator for options.stepper (options need not be checked here: the callers do).
// Defined for X = State and X = std::vector<double> only.
template <class X>
std::unique_ptr<OdeintIntegrator<X>> make_odeint_integrator(const PfOdeOptions& options,
                                                            const OdeintLoopSettings& loop);

}  // namespace diffsde
