// The probability-flow ODE of the VP-SDE (Song et al. 2021, eq. 13),
//   dx/dt = -beta(t)/2 x - beta(t)/2 s(x, t),  s = -eps / sigma,
// i.e. dx/dt = -beta/2 x + beta / (2 sigma) eps(x, t), integrated by a Boost.Odeint stepper.
// It has the same marginals p_t as the SDE, so integrating it from noise at t ~ 1 down to
// t_end > 0 samples deterministically; integrating it forwards (an increasing grid) maps
// data to noise, as likelihood computations need.
//
// Fixed steppers (euler, rk4, adams_bashforth_moulton) take exactly one step per grid
// interval. Adaptive steppers (cash_karp54, dopri5, fehlberg78, bulirsch_stoer) choose their
// own steps inside each interval with odeint's controller and land exactly on every grid
// time; the grid's times are then only output times (usually the grid is {t_start, t_end}).
// The error norm is odeint's max-norm over the whole batch, so one step size serves all
// samples: an adaptive run's output depends, within the tolerance, on which samples share
// the batch.
//
// The ODE is singular at sigma = 0 (t = 0), so every grid time must be > 0.
//
// Boost.Odeint appears only in pf_ode.cpp (its Eigen adapter patches Eigen's namespace);
// this header keeps it out behind a pointer to an internal engine.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "diffsde/solver.hpp"

namespace diffsde {

// Each value has one row in pf_ode.cpp's stepper table (name, fixed or adaptive, order,
// evaluations per step, grid needs, engine), in this order.
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

struct PfOdeOptions {
  PfOdeStepper stepper = PfOdeStepper::dopri5;
  // Adaptive steppers only: odeint's per-component tolerance
  //   |err_i| <= atol + rtol (|x_i| + |h| |dx_i/dt|), max over the whole batch.
  double rtol = 1e-6;
  double atol = 1e-6;
  // Adaptive steppers only: the first trial |dt| (later intervals go on from the
  // controller's last proposal).
  double h_init = 0.01;

  // True when usable; otherwise false with the reason in *error (naming the field).
  bool is_valid(std::string* error = nullptr) const;
};

class PfOdeSolver final : public Solver {
 public:
  // Throws Error when !options.is_valid().
  explicit PfOdeSolver(PfOdeOptions options = {});
  ~PfOdeSolver() override;
  PfOdeSolver(const PfOdeSolver&) = delete;
  PfOdeSolver& operator=(const PfOdeSolver&) = delete;

  const PfOdeOptions& options() const { return options_; }
  SolverTraits traits() const override;
  // A new solver with the same options (the engine is made afresh by init).
  std::unique_ptr<Solver> clone() const override;
  // Checks the grid (strictly monotone, every time > 0; uniform for
  // adams_bashforth_moulton), allocates the stepper's work arrays and resets its history
  // and step size.
  void init(SolverContext& context, const State& x, const std::vector<double>& times) override;
  void step(SolverContext& context, std::size_t i, double t0, double t1, State& x) override;

  // The engine wrapping one odeint stepper (defined in pf_ode.cpp).
  class Engine;

 private:
  PfOdeOptions options_;
  std::unique_ptr<Engine> engine_;
};

}  // namespace diffsde
