// Time grids (see grid.hpp and docs/schedules_and_grids.md).
//
// Every grid returns N+1 strictly monotone times whose first entry is t_start and whose
// last is t_end, exactly (they are assigned, not computed). Grids usually run from
// noise to data (t_start > t_end), but may also run forward (t_start < t_end), e.g. to
// integrate the probability-flow ODE for likelihoods. Errors are ConfigErrors whose
// path is relative to the grid's JSON object ("t_start", "t[3]").
#include "diffsde/grid.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "diffsde/error.hpp"

namespace diffsde {

// Checks of a GridSpan that need no schedule (see grid.hpp).
void check_span(const GridSpan& span, bool uses_t_last) {
  if (!std::isfinite(span.t_start) || span.t_start < 0)
    throw ConfigError("t_start", "must be a finite time >= 0, got " + format_double(span.t_start));
  if (!std::isfinite(span.t_end) || span.t_end < 0)
    throw ConfigError("t_end", "must be a finite time >= 0, got " + format_double(span.t_end));
  if (span.steps < 1) throw ConfigError("steps", "must be >= 1, got " + std::to_string(span.steps));
  if (span.t_start == span.t_end)
    throw ConfigError("t_end", "must differ from t_start (both are " + format_double(span.t_start) + ")");
  if (!uses_t_last) return;
  if (span.t_start == 0)
    throw ConfigError("t_start", "must be > 0 for a grid spaced in lambda or sigma "
                                 "(both are infinite at t = 0)");
  if (span.t_end == 0 && span.steps > 1 &&
      !(std::isfinite(span.t_last) && span.t_last > 0 && span.t_last < span.t_start))
    throw ConfigError("t_last", "must lie in (0, t_start = " + format_double(span.t_start) +
                                    ") when t_end is 0, got " + format_double(span.t_last));
}

namespace {

// Checks that need the schedule's range.
void check_range(const GridSpan& span, const Schedule& schedule) {
  const double t_max = schedule.t_max();
  auto check = [&](const char* key, double t) {
    if (t > t_max)
      throw ConfigError(key, "time " + format_double(t) + " is beyond the schedule's t_max = " + format_double(t_max) +
                                 " (" + schedule.name() + ")");
  };
  check("t_start", span.t_start);
  check("t_end", span.t_end);
}

// Strict monotonicity of a computed grid (rounding can only break it for absurdly
// many steps, when neighbours are closer than the spacing of doubles).
void check_monotone(const std::vector<double>& t) {
  const bool decreasing = t.front() > t.back();
  for (std::size_t i = 1; i < t.size(); ++i)
    if (decreasing ? !(t[i] < t[i - 1]) : !(t[i] > t[i - 1]))
      throw ConfigError("steps", "too many steps for this span: grid times " +
                                     std::to_string(i - 1) + " and " + std::to_string(i) +
                                     " coincide in double precision");
}

// A grid spaced uniformly in some monotone transform y(t) with inverse t(y): the
// `steps` intervals run from t_start to t_end, or, when t_end == 0 and the transform
// is infinite there (`uses_t_last`), steps-1 of them run to t_last and a final one to 0.
std::vector<double> spaced_grid(const GridSpan& span, const Schedule& schedule, bool uses_t_last,
                                const std::function<double(double)>& y_of_t,
                                const std::function<double(double)>& t_of_y) {
  check_span(span, uses_t_last);
  check_range(span, schedule);
  const bool split = uses_t_last && span.t_end == 0;
  const int n = span.steps;
  std::vector<double> t(static_cast<std::size_t>(n) + 1);
  t.front() = span.t_start;
  t.back() = span.t_end;
  if (split && n == 1) return t;  // one step straight to 0
  const int m = split ? n - 1 : n;  // intervals spaced by the rule
  const double t_stop = split ? span.t_last : span.t_end;
  const double y0 = y_of_t(span.t_start), y1 = y_of_t(t_stop);
  for (int i = 1; i < m; ++i) {
    const double u = static_cast<double>(i) / m;
    t[static_cast<std::size_t>(i)] = t_of_y(y0 + u * (y1 - y0));
  }
  t[static_cast<std::size_t>(m)] = t_stop;
  check_monotone(t);
  return t;
}

std::vector<double> identity_grid(const GridSpan& span, const Schedule& schedule) {
  auto id = [](double x) { return x; };
  return spaced_grid(span, schedule, false, id, id);
}

}  // namespace

std::vector<double> TimeUniformGrid::times(const Schedule& schedule) const {
  return identity_grid(span_, schedule);
}

std::vector<double> TimeQuadraticGrid::times(const Schedule& schedule) const {
  // t(u) = t_end + (t_start - t_end) u^2 with u going uniformly from 1 to 0 (Song et al.
  // 2021, DDIM, "quadratic" sub-sequence): in y = sqrt((t - t_end)/(t_start - t_end))
  // the grid is uniform.
  const double a = span_.t_start, b = span_.t_end;
  return spaced_grid(
      span_, schedule, false, [a, b](double t) { return std::sqrt((t - b) / (a - b)); },
      [a, b](double u) { return b + (a - b) * u * u; });
}

std::vector<double> ShiftGrid::times(const Schedule& schedule) const {
  if (!(shift_ > 0) || !std::isfinite(shift_))
    throw ConfigError("shift", "must be a finite number > 0, got " + format_double(shift_));
  const double s = shift_;
  return spaced_grid(
      span_, schedule, true, [s](double t) { return t / (s - (s - 1) * t); },
      [s](double u) { return s * u / (1 + (s - 1) * u); });
}

std::vector<double> LogSnrGrid::times(const Schedule& schedule) const {
  // Uniform in lambda = log(alpha/sigma) (Lu et al. 2022, DPM-Solver, sec. 3.3).
  return spaced_grid(
      span_, schedule, true, [&schedule](double t) { return schedule.lambda(t); },
      [&schedule](double lambda) { return schedule.t_of_lambda(lambda); });
}

std::vector<double> KarrasGrid::times(const Schedule& schedule) const {
  // Karras et al. 2022 (EDM), eq. 5: uniform in sigma_ve^(1/rho), with the VE noise level
  // sigma_ve = sigma/alpha = exp(-lambda); so y = exp(-lambda/rho) and
  // t = t_of_lambda(-rho log y).
  if (!(rho_ > 0) || !std::isfinite(rho_))
    throw ConfigError("rho", "must be a finite number > 0, got " + format_double(rho_));
  const double rho = rho_;
  return spaced_grid(
      span_, schedule, true,
      [&schedule, rho](double t) { return std::exp(-schedule.lambda(t) / rho); },
      [&schedule, rho](double y) { return schedule.t_of_lambda(-rho * std::log(y)); });
}

std::vector<double> DiscreteUniformGrid::times(const Schedule& schedule) const {
  if (num_steps_ < 1) throw ConfigError("num_steps", "must be >= 1, got " + std::to_string(num_steps_));
  if (steps_ < 1 || steps_ > num_steps_)
    throw ConfigError("steps", "must lie in [1, num_steps = " + std::to_string(num_steps_) + "], got " +
                                   std::to_string(steps_));
  // DDIM's skip = N // S and seq = range(0, N, skip)[:S], run from its last entry down.
  const int skip = num_steps_ / steps_;
  const double n_total = static_cast<double>(num_steps_);
  std::vector<double> t(static_cast<std::size_t>(steps_) + 1);
  for (int i = 0; i < steps_; ++i)
    t[static_cast<std::size_t>(i)] = static_cast<double>((steps_ - 1 - i) * skip + 1) / n_total;
  t.back() = 0.0;
  if (t.front() > schedule.t_max())
    throw ConfigError("steps", "the first time " + format_double(t.front()) + " is beyond the schedule's t_max = " +
                                   format_double(schedule.t_max()) + " (" + schedule.name() + ")");
  return t;
}

// Checks of a custom list that need no schedule (see grid.hpp).
void check_custom(const std::vector<double>& t) {
  if (t.size() < 2)
    throw ConfigError("t", "needs at least 2 times, got " + std::to_string(t.size()));
  for (std::size_t i = 0; i < t.size(); ++i)
    if (!std::isfinite(t[i]) || t[i] < 0)
      throw ConfigError(join_path("t", i), "must be a finite time >= 0, got " + format_double(t[i]));
  const bool decreasing = t[1] < t[0];
  for (std::size_t i = 1; i < t.size(); ++i)
    if (decreasing ? !(t[i] < t[i - 1]) : !(t[i] > t[i - 1]))
      throw ConfigError(join_path("t", i),
                        std::string("times must be strictly ") +
                            (decreasing ? "decreasing" : "increasing") + ": " + format_double(t[i]) +
                            " follows " + format_double(t[i - 1]));
}

std::vector<double> CustomGrid::times(const Schedule& schedule) const {
  check_custom(t_);
  for (std::size_t i = 0; i < t_.size(); ++i)
    if (t_[i] > schedule.t_max())
      throw ConfigError(join_path("t", i), "time " + format_double(t_[i]) + " is beyond the schedule's t_max = " +
                                               format_double(schedule.t_max()) + " (" + schedule.name() + ")");
  return t_;
}

}  // namespace diffsde
