// Shared by the registry-wide order tests (deterministic and stochastic solvers): every
// registered configuration to test, and the time grid an order is measured on.
// Header-only, test use only.
#pragma once

#include <algorithm>
#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "diffsde/grid.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/scores/analytic.hpp"
#include "diffsde/solver.hpp"
#include "support/exact.hpp"

namespace diffsde::test {

// The configurations a registry entry asks to be tested: each listed variant with the
// entry's name, or the defaults when it lists none.
inline std::vector<nlohmann::json> solver_variants(const RegistryEntry<Solver>& entry) {
  if (entry.variants.empty()) return {nlohmann::json{{"name", entry.name}}};
  std::vector<nlohmann::json> out;
  for (nlohmann::json v : entry.variants) {
    v["name"] = entry.name;
    out.push_back(v);
  }
  return out;
}

// The order tests' problem: Gaussian data per axis (unequal spreads, neither 1), from t = 1
// to 0.1. (A time-uniform grid ending much closer to t = 0 has lambda steps near its end that
// shrink far more slowly than 1/N, so lambda-based multistep methods, dpmpp_*m_sde among
// them, are still pre-asymptotic at a few hundred steps.)
struct OrderProblem {
  std::shared_ptr<VpLinearSchedule> schedule = std::make_shared<VpLinearSchedule>(0.1, 20.0);
  GaussianProblem exact{schedule, {0.5, -1.0}, {0.6, 1.2}};
  GaussianModel model{schedule, Eigen::Vector2d(0.5, -1.0), Eigen::Vector2d(0.6, 1.2)};
  double t_start = 1.0, t_end = 0.1;
};

// Every registered solver configuration to test, entry by entry in registration order.
inline std::vector<nlohmann::json> all_solver_variants() {
  std::vector<nlohmann::json> out;
  for (const auto& entry : solver_registry().entries())
    for (nlohmann::json& v : solver_variants(entry)) out.push_back(std::move(v));
  return out;
}

// A uniform grid of `steps` steps from t_start to t_end, except that a multistep solver's
// `warmup_steps` first steps (taken at lower orders) are shrunk to size ~ h^((order + 1) / 2),
// so that their local errors O(size^2) and smaller stay below the O(h^order) global error
// being measured.
inline std::vector<double> order_test_grid(const Schedule& schedule, double t_start, double t_end,
                                           int steps, int warmup_steps, double order) {
  const double span = t_start - t_end;
  const double h = span / steps;
  if (warmup_steps == 0) return TimeUniformGrid({t_start, t_end, steps}).times(schedule);
  const double tiny = span * std::pow(h / span, (order + 1) / 2);
  std::vector<double> t = {t_start};
  for (int i = 0; i < warmup_steps; ++i) t.push_back(t.back() - tiny);
  const int rest = steps - warmup_steps;
  const double start = t.back();
  for (int i = 1; i <= rest; ++i)
    t.push_back(i == rest ? t_end : start - (start - t_end) * i / rest);
  return t;
}

// A grid for multistep solvers whose start has O(1) curvature: a graded start, then
// uniform steps of about h = (t_start - t_end) / steps. The first step has size
// d0 = span (h / span)^(order / 2), so that its first-order local error d0^2 stays within
// the O(h^order) global error being measured, and each following step doubles until it
// reaches h. Bounded step ratios keep the variable-step Adams weights bounded. (On
// order_test_grid's shrunk warm-up an order-k Adams step after the warm-up extrapolates over
// nodes ~ h^((k + 1) / 2) apart with weights ~ (h / d)^(k - 1): it multiplies the warm-up's
// local error and rounding by up to 1e11 at k = 4 and 320 steps, which stays hidden only
// where the solution is nearly straight at the start, as at t = 1 on vp_linear.)
inline std::vector<double> graded_order_test_grid(const Schedule& schedule, double t_start, double t_end,
                                                  int steps, int warmup_steps, double order) {
  if (warmup_steps == 0) return TimeUniformGrid({t_start, t_end, steps}).times(schedule);
  const double span = t_start - t_end;
  const double h = span / steps;
  std::vector<double> t = {t_start};
  for (double d = span * std::pow(h / span, order / 2); d < h; d *= 2) t.push_back(t.back() - d);
  const double start = t.back();
  const int rest = std::max(1, static_cast<int>(std::lround((start - t_end) / h)));
  for (int i = 1; i <= rest; ++i) t.push_back(i == rest ? t_end : start - (start - t_end) * i / rest);
  return t;
}

// The general schedules (ve, subvp, edm, flow with shift 1 and 3), each with the span the
// order tests on them use: from t_start (the noise end) to t_end.
struct ScheduleCase {
  std::string label;
  std::shared_ptr<Schedule> schedule;
  double t_start, t_end;
};

inline std::vector<ScheduleCase> general_schedule_cases() {
  return {{"ve", std::make_shared<VeSchedule>(0.01, 50.0), 1.0, 0.1},
          {"subvp", std::make_shared<SubVpSchedule>(0.1, 20.0), 1.0, 0.2},
          {"edm", std::make_shared<EdmSchedule>(0.002, 80.0), 3.0, 0.3},
          {"flow", std::make_shared<FlowSchedule>(1.0), 0.8, 0.05},
          {"flow shift 3", std::make_shared<FlowSchedule>(3.0), 0.6, 0.05}};
}

}  // namespace diffsde::test
