// The vector field of the diffusion, written once: every solver that integrates the
// reverse SDE or the probability-flow ODE in t takes its coefficients from here, so a new
// family of schedules changes f and g^2 in this one place.
//
// The forward SDE is dx = f(t) x dt + g(t) dW with f = d log alpha/dt and
// g^2 = d sigma^2/dt - 2 f sigma^2, from the schedule (ScheduleAt::f, g2); for the VP-SDE
// f = -beta/2 and g^2 = beta (Song et al. 2021, eq. 11). With the score written through the noise
// prediction, s = -eps / sigma:
//   reverse SDE (t decreasing):  dx = [f x + (g^2 / sigma) eps] dt + g dW_bar
//   probability-flow ODE:        dx/dt = f x + (g^2 / (2 sigma)) eps
// (Song et al. 2021, eqs. 6 and 13). The coefficients are plain numbers, so that a
// solver can fold them into its own update; the drift helpers give the usual forms.
#pragma once

#include <cmath>

#include "diffsde/schedule.hpp"

namespace diffsde {

// The field's coefficients at one time.
struct FieldAt {
  double t = 0;
  double f = 0;      // drift coefficient of the forward SDE, d log alpha / dt
  double g2 = 0;     // squared diffusion coefficient of the forward SDE
  double sigma = 0;  // noise scale sigma(t)

  // The forward SDE's diffusion coefficient g.
  double g() const { return std::sqrt(g2); }
  // The coefficient of eps in the reverse SDE's drift, g^2 / sigma.
  double sde_eps() const { return g2 / sigma; }
  // The coefficient of eps in the probability-flow ODE, g^2 / (2 sigma).
  double ode_eps() const { return 0.5 * g2 / sigma; }
};

// The coefficients from the schedule's values at t (VP: f = -beta/2, g^2 = beta).
inline FieldAt field_at(const ScheduleAt& s) {
  FieldAt c;
  c.t = s.t;
  c.f = s.f;
  c.g2 = s.g2;
  c.sigma = s.sigma;
  return c;
}
inline FieldAt field_at(const Schedule& schedule, double t) { return field_at(schedule.at(t)); }

// The diffusion coefficient g(t) alone, for solvers that need it at points where they need
// nothing else (it skips the alpha, sigma and lambda of Schedule::at): the same value as
// field_at(schedule, t).g().
inline double field_g(const Schedule& schedule, double t) { return std::sqrt(schedule.g2(t)); }

// The reverse SDE's drift f x + (g^2 / sigma) eps, as an expression of x and eps.
template <class X, class E>
auto reverse_sde_drift(const FieldAt& c, const X& x, const E& eps) {
  return c.f * x + c.sde_eps() * eps;
}

// The probability-flow ODE's right-hand side f x + (g^2 / (2 sigma)) eps.
template <class X, class E>
auto pf_ode_drift(const FieldAt& c, const X& x, const E& eps) {
  return c.f * x + c.ode_eps() * eps;
}

}  // namespace diffsde
