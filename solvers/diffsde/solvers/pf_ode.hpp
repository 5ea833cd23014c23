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
// The steppers, their table and the loop that drives them are odeint_integrator.hpp's
// (shared with the PF-ODE likelihood); this solver checks the grid, writes the
// right-hand side and counts the steps.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "diffsde/solver.hpp"
#include "diffsde/solvers/odeint_integrator.hpp"

namespace diffsde {

class PfOdeSolver final : public Solver {
 public:
  // Throws Error when !options.is_valid().
  explicit PfOdeSolver(PfOdeOptions options = {});
  ~PfOdeSolver() override;
  PfOdeSolver(const PfOdeSolver&) = delete;
  PfOdeSolver& operator=(const PfOdeSolver&) = delete;

  const PfOdeOptions& options() const { return options_; }
  SolverTraits traits() const override;
  // A new solver with the same options (the integrator is made afresh by init).
  std::unique_ptr<Solver> clone() const override;
  // Checks the grid (strictly monotone, every time > 0; uniform for
  // adams_bashforth_moulton), allocates the stepper's work arrays and resets its history
  // and step size.
  void init(SolverContext& context, const State& x, const std::vector<double>& times) override;
  void step(SolverContext& context, std::size_t i, double t0, double t1, State& x) override;

 private:
  PfOdeOptions options_;
  std::unique_ptr<OdeintIntegrator<State>> integrator_;
};

}  // namespace diffsde
