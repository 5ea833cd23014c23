// Time grids: the times t_0 = t_start, ..., t_N = t_end a fixed-step solver visits.
#pragma once

#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "diffsde/schedule.hpp"

namespace diffsde {

class Grid {
 public:
  virtual ~Grid() = default;
  virtual std::string name() const = 0;
  // The N+1 times (strictly monotone, usually decreasing from t_start to t_end),
  // checked against the schedule's range [0, t_max]. Throws ConfigError (path
  // relative to the grid object, e.g. "t_start") when they do not fit.
  virtual std::vector<double> times(const Schedule& schedule) const = 0;
  // The times at which the network is evaluated at each of times()' nodes, for a grid that
  // calls the network at other times than its steps' noise levels (diffusers' rounded or
  // interpolated timesteps, and its fractional timesteps between the nodes: RetimedModel);
  // empty when the network runs at the solver's own times.
  virtual std::vector<double> model_times(const Schedule& /*schedule*/) const { return {}; }
};

// Common parameters of the rule-based grids.
struct GridSpan {
  double t_start = 1.0;
  double t_end = 1e-3;
  int steps = 50;
  // Used only when t_end == 0 by grids spaced in lambda or sigma (infinite at
  // t = 0): the first steps-1 steps are spaced by the rule from t_start down to
  // t_last, and the final step goes from t_last to 0.
  double t_last = 1e-3;
};

// Checks of a span that need no schedule; ConfigError with a path relative to the grid
// object ("t_start", "t_last"). `uses_t_last`: the grid is spaced in lambda or sigma,
// which are infinite at t = 0. The grids' times() repeat these checks.
void check_span(const GridSpan& span, bool uses_t_last);
// Checks of a custom list of times that need no schedule (at least two, finite, >= 0,
// strictly monotone); ConfigError at "t" or "t[i]".
void check_custom(const std::vector<double>& t);

// Uniform in t.
class TimeUniformGrid final : public Grid {
 public:
  explicit TimeUniformGrid(GridSpan span) : span_(span) {}
  std::string name() const override { return "time_uniform"; }
  std::vector<double> times(const Schedule& schedule) const override;

 private:
  GridSpan span_;
};

// Uniform in lambda = log(alpha/sigma) (DPM-Solver's "logSNR" spacing).
class LogSnrGrid final : public Grid {
 public:
  explicit LogSnrGrid(GridSpan span) : span_(span) {}
  std::string name() const override { return "logSNR"; }
  std::vector<double> times(const Schedule& schedule) const override;

 private:
  GridSpan span_;
};

// Flow matching's resolution shift (SD3, Esser et al. 2024; diffusers' flow-matching
// schedulers): uniform in u, with t = shift u / (1 + (shift - 1) u), i.e. u = t / (shift -
// (shift - 1) t); shift > 1 crowds the times towards t = 1 (the noise). As logSNR and
// karras: when t_end is 0, steps-1 intervals run to t_last and a final one to 0 (the way
// diffusers' flow-matching sigmas end). On the flow schedule with shift 1, t is sigma.
class ShiftGrid final : public Grid {
 public:
  ShiftGrid(GridSpan span, double shift) : span_(span), shift_(shift) {}
  std::string name() const override { return "shift"; }
  std::vector<double> times(const Schedule& schedule) const override;

 private:
  GridSpan span_;
  double shift_;
};

// Quadratic in t, denser near t_end: t(u) = t_end + (t_start - t_end) u^2, u uniform
// (the DDIM paper's "quadratic" skip).
class TimeQuadraticGrid final : public Grid {
 public:
  explicit TimeQuadraticGrid(GridSpan span) : span_(span) {}
  std::string name() const override { return "time_quadratic"; }
  std::vector<double> times(const Schedule& schedule) const override;

 private:
  GridSpan span_;
};

// Karras et al. (2022): uniform in sigma_ve^(1/rho), sigma_ve = sigma/alpha = exp(-lambda).
class KarrasGrid final : public Grid {
 public:
  KarrasGrid(GridSpan span, double rho = 7.0) : span_(span), rho_(rho) {}
  std::string name() const override { return "karras"; }
  std::vector<double> times(const Schedule& schedule) const override;

 private:
  GridSpan span_;
  double rho_;
};

// Every c-th step of an N-step discrete schedule, c = floor(N / steps): the DDIM paper's
// "uniform" sub-sequence (Song et al. 2021, appendix D.2; diffusers' "leading" spacing).
// Steps n_i = (steps - 1 - i) c, i = 0 .. steps-1, at t = (n_i + 1)/N (the knots of
// vp_discrete), then a final step to t = 0: steps intervals in all.
class DiscreteUniformGrid final : public Grid {
 public:
  DiscreteUniformGrid(int steps, int num_steps) : steps_(steps), num_steps_(num_steps) {}
  std::string name() const override { return "discrete_uniform"; }
  std::vector<double> times(const Schedule& schedule) const override;

 private:
  int steps_, num_steps_;
};

// The time steps diffusers' schedulers compute from a discrete schedule (vp_discrete),
// by the rule of one family of its schedulers:
//   ddim:       DDIMScheduler, DDPMScheduler: `steps` integer timesteps; each step goes
//               from timestep T to T - N / steps (integer division), which must be the
//               next timestep; the last one ends at t = 0 (set_alpha_to_one) or at the
//               first discrete step.
//   dpm_solver: DPMSolverMultistepScheduler, DPMSolverSinglestepScheduler,
//               UniPCMultistepScheduler, DEISMultistepScheduler: integer timesteps; with
//               Karras, exponential or beta sigmas the network sees the rounded timestep
//               of each sigma (log-sigma interpolation over the table).
//   euler:      EulerDiscreteScheduler, EulerAncestralDiscreteScheduler,
//               LMSDiscreteScheduler: fractional timesteps, sigmas interpolated linearly
//               in sigma (or Karras, exponential, beta sigmas, timesteps not rounded).
// Timestep n is the schedule's time (n + 1)/N; a fractional timestep tau is (tau + 1)/N.
// times() are the times whose noise level sigma/alpha is each step's sigma;
// model_times() the timesteps' times, always (also where they are the nodes), so that a
// run evaluates the network between the nodes at diffusers' fractional timesteps too.
struct DiffusersGridOptions {
  int steps = 50;                        // num_inference_steps
  std::string family = "dpm_solver";     // ddim | dpm_solver | euler
  std::string timestep_spacing = "linspace";  // linspace | leading | trailing
  long steps_offset = 0;
  std::string sigmas = "timesteps";      // timesteps | karras | exponential | lu_lambdas | beta
  std::vector<double> custom_sigmas;     // given sigma_ve list (replaces the rule)
  std::vector<long> custom_timesteps;    // given timesteps (replaces the spacing)
  std::string final_sigmas_type = "zero";  // zero | sigma_min (dpm_solver, euler)
  bool set_alpha_to_one = true;            // ddim
  double beta_a = 0.6, beta_b = 0.6;       // the beta sigmas' distribution
  // dpm_solver: timesteps stop where lambda falls below this (NaN: no clip).
  double lambda_min_clipped = std::numeric_limits<double>::quiet_NaN();
  // Whether the network timesteps of sigmas other than the timesteps' own (Karras and the
  // other rules, given sigmas) are rounded to integers: unset, the family's rule (the
  // euler family keeps them fractional, the others round); diffusers' KDPM2 classes round
  // their Karras timesteps in the euler family.
  std::optional<bool> round_timesteps;
};

// diffusers' table of a discrete schedule: log sigma_n = log sqrt((1 - alpha_bar_n)/alpha_bar_n)
// for its steps n = 0..N-1.
std::vector<double> diffusers_log_sigmas(const VpDiscreteSchedule& schedule);
// diffusers' _sigma_to_t: the fractional timestep of the noise level sigma (= sigma/alpha),
// log sigma interpolated linearly between the table's log sigmas and clipped to its ends.
double diffusers_timestep(double sigma, const std::vector<double>& log_sigmas);

class DiffusersGrid final : public Grid {
 public:
  explicit DiffusersGrid(DiffusersGridOptions options) : o_(std::move(options)) {}
  std::string name() const override { return "diffusers"; }
  std::vector<double> times(const Schedule& schedule) const override;
  std::vector<double> model_times(const Schedule& schedule) const override;
  // diffusers' timesteps (float; integers in the ddim and dpm_solver families) and its
  // sigmas (sigma/alpha, the final one included: timesteps().size() + 1 values).
  struct Table {
    std::vector<double> timesteps, sigmas, times, model_times;
  };
  Table table(const Schedule& schedule) const;

 private:
  DiffusersGridOptions o_;
};

// An explicit list of times: strictly monotone, inside [0, t_max].
class CustomGrid final : public Grid {
 public:
  explicit CustomGrid(std::vector<double> t) : t_(std::move(t)) {}
  std::string name() const override { return "custom"; }
  std::vector<double> times(const Schedule& schedule) const override;

 private:
  std::vector<double> t_;
};

}  // namespace diffsde
