// Time grids against their defining rules: exact endpoints, strict monotonicity, equal
// spacing in the grid's own variable, the t_end = 0 split, and every validation error.
#include <catch2/catch.hpp>

#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "diffsde/error.hpp"
#include "diffsde/grid.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "support/exact.hpp"

using namespace diffsde;
using nlohmann::json;

namespace {

GridSpan span(double t_start, double t_end, int steps, double t_last = 1e-3) {
  GridSpan s;
  s.t_start = t_start;
  s.t_end = t_end;
  s.steps = steps;
  s.t_last = t_last;
  return s;
}

bool strictly_monotone(const std::vector<double>& t) {
  const bool dec = t.front() > t.back();
  for (std::size_t i = 1; i < t.size(); ++i)
    if (dec ? !(t[i] < t[i - 1]) : !(t[i] > t[i - 1])) return false;
  return true;
}


// Max deviation of the consecutive differences of y from their mean, relative to it.
double spacing_spread(const std::vector<double>& y) {
  const double mean = (y.back() - y.front()) / static_cast<double>(y.size() - 1);
  double worst = 0;
  for (std::size_t i = 1; i < y.size(); ++i)
    worst = std::max(worst, std::fabs((y[i] - y[i - 1]) - mean) / std::fabs(mean));
  return worst;
}

}  // namespace

TEST_CASE("time_uniform: equal steps in t, exact endpoints", "[grid]") {
  const VpLinearSchedule s;
  for (auto sp : {span(1.0, 1e-3, 50), span(1.0, 0.0, 7), span(1e-5, 1.0, 13), span(0.0, 0.3, 3)}) {
    const auto t = TimeUniformGrid(sp).times(s);
    REQUIRE(t.size() == static_cast<std::size_t>(sp.steps) + 1);
    CHECK(t.front() == sp.t_start);
    CHECK(t.back() == sp.t_end);
    CHECK(strictly_monotone(t));
    for (int i = 0; i <= sp.steps; ++i)
      CHECK(std::fabs(t[i] - (sp.t_start + (sp.t_end - sp.t_start) * i / sp.steps)) < 1e-15);
  }
  // One step is just the two endpoints.
  CHECK(TimeUniformGrid(span(0.7, 0.2, 1)).times(s) == std::vector<double>{0.7, 0.2});
}

TEST_CASE("time_quadratic: t = t_end + (t_start - t_end) u^2", "[grid]") {
  const VpLinearSchedule s;
  for (auto sp : {span(1.0, 1e-3, 20), span(0.8, 0.0, 10), span(1e-3, 1.0, 9)}) {
    const auto t = TimeQuadraticGrid(sp).times(s);
    REQUIRE(t.size() == static_cast<std::size_t>(sp.steps) + 1);
    CHECK(t.front() == sp.t_start);
    CHECK(t.back() == sp.t_end);
    CHECK(strictly_monotone(t));
    const double n = sp.steps;
    for (int i = 0; i <= sp.steps; ++i) {
      const double u = (n - i) / n;
      CHECK(std::fabs(t[i] - (sp.t_end + (sp.t_start - sp.t_end) * u * u)) < 1e-15);
    }
  }
  // Denser near t_end: the last step is the shortest.
  const auto t = TimeQuadraticGrid(span(1.0, 0.0, 10)).times(s);
  CHECK(std::fabs(t[9] - 0.01) < 1e-15);
}

TEST_CASE("logSNR: equal steps in lambda", "[grid]") {
  const VpLinearSchedule lin;
  const VpCosineSchedule cosine;
  const auto disc = VpDiscreteSchedule::linear();
  for (const Schedule* s : {static_cast<const Schedule*>(&lin), static_cast<const Schedule*>(&cosine),
                            static_cast<const Schedule*>(&disc)}) {
    INFO(s->name());
    const double t0 = std::min(1.0, s->t_max());
    for (auto sp : {span(t0, 1e-3, 25), span(t0, 1e-4, 5), span(1e-3, t0, 8)}) {
      const auto t = LogSnrGrid(sp).times(*s);
      REQUIRE(t.size() == static_cast<std::size_t>(sp.steps) + 1);
      CHECK(t.front() == sp.t_start);
      CHECK(t.back() == sp.t_end);
      CHECK(strictly_monotone(t));
      std::vector<double> lam;
      for (double ti : t) lam.push_back(s->lambda(ti));
      CHECK(spacing_spread(lam) < 1e-10);
    }
  }
}

TEST_CASE("karras: equal steps in sigma_ve^(1/rho)", "[grid]") {
  const VpLinearSchedule lin;
  const VpCosineSchedule cosine;
  for (const Schedule* s : {static_cast<const Schedule*>(&lin), static_cast<const Schedule*>(&cosine)}) {
    INFO(s->name());
    const double t0 = std::min(1.0, s->t_max());
    for (double rho : {7.0, 1.0, 3.0}) {
      const auto sp = span(t0, 2e-3, 18);
      const auto t = KarrasGrid(sp, rho).times(*s);
      REQUIRE(t.size() == 19);
      CHECK(t.front() == sp.t_start);
      CHECK(t.back() == sp.t_end);
      CHECK(strictly_monotone(t));
      // sigma_ve = sigma/alpha computed from its definition.
      std::vector<double> y;
      for (double ti : t) y.push_back(std::pow(s->sigma(ti) / s->alpha(ti), 1.0 / rho));
      CHECK(spacing_spread(y) < 1e-9);
      // EDM eq. 5 with sigma_max = sigma_ve(t_start), sigma_min = sigma_ve(t_end).
      const double smax = s->sigma(t0) / s->alpha(t0), smin = s->sigma(2e-3) / s->alpha(2e-3);
      for (int i = 0; i <= 18; ++i) {
        const double si = std::pow(std::pow(smax, 1 / rho) + i / 18.0 * (std::pow(smin, 1 / rho) -
                                                                        std::pow(smax, 1 / rho)),
                                   rho);
        CHECK(std::fabs(s->sigma(t[i]) / s->alpha(t[i]) - si) < 1e-11 * si);
      }
    }
  }
  // rho = 1 is uniform in sigma_ve = exp(-lambda).
  const auto t = KarrasGrid(span(1.0, 1e-3, 4), 1.0).times(lin);
  std::vector<double> sv;
  for (double ti : t) sv.push_back(std::exp(-lin.lambda(ti)));
  CHECK(spacing_spread(sv) < 1e-12);
}

TEST_CASE("t_end = 0: lambda- and sigma-spaced grids go to t_last, then to 0", "[grid]") {
  const VpLinearSchedule s;
  const auto sp = span(1.0, 0.0, 10, 2e-3);
  for (const std::vector<double>& t : {LogSnrGrid(sp).times(s), KarrasGrid(sp).times(s)}) {
    REQUIRE(t.size() == 11);
    CHECK(t.front() == 1.0);
    CHECK(t[9] == 2e-3);
    CHECK(t[10] == 0.0);
    CHECK(strictly_monotone(t));
  }
  // The first 9 steps are equal in lambda.
  const auto t = LogSnrGrid(sp).times(s);
  std::vector<double> lam(t.begin(), t.end() - 1);
  for (double& x : lam) x = s.lambda(x);
  CHECK(spacing_spread(lam) < 1e-10);
  // One step: straight to 0.
  CHECK(LogSnrGrid(span(1.0, 0.0, 1)).times(s) == std::vector<double>{1.0, 0.0});
  CHECK(KarrasGrid(span(0.5, 0.0, 1)).times(s) == std::vector<double>{0.5, 0.0});
  // Two steps: t_start, t_last, 0.
  CHECK(LogSnrGrid(span(1.0, 0.0, 2, 0.01)).times(s) == std::vector<double>{1.0, 0.01, 0.0});
  // time-spaced grids ignore t_last and reach 0 by their own rule.
  CHECK(TimeUniformGrid(span(1.0, 0.0, 4)).times(s) == std::vector<double>{1.0, 0.75, 0.5, 0.25, 0.0});
}

TEST_CASE("custom: the given times, checked", "[grid]") {
  const VpLinearSchedule s;
  const std::vector<double> dec = {1.0, 0.5, 0.1, 0.0};
  CHECK(CustomGrid(dec).times(s) == dec);
  const std::vector<double> inc = {0.0, 0.25, 1.0};
  CHECK(CustomGrid(inc).times(s) == inc);

  CHECK(test::config_error_path([&] { CustomGrid({1.0}).times(s); }) == "t");
  CHECK(test::config_error_path([&] { CustomGrid({}).times(s); }) == "t");
  CHECK(test::config_error_path([&] { CustomGrid({1.0, 0.5, 0.7}).times(s); }) == "t[2]");
  CHECK(test::config_error_path([&] { CustomGrid({1.0, 0.5, 0.5}).times(s); }) == "t[2]");
  CHECK(test::config_error_path([&] { CustomGrid({0.5, 0.5}).times(s); }) == "t[1]");
  CHECK(test::config_error_path([&] { CustomGrid({0.1, 0.2, 0.15}).times(s); }) == "t[2]");
  CHECK(test::config_error_path([&] { CustomGrid({1.0, -0.1}).times(s); }) == "t[1]");
  CHECK(test::config_error_path([&] { CustomGrid({1.5, 0.1}).times(s); }) == "t[0]");
  CHECK(test::config_error_path([&] { CustomGrid({0.999, 0.1}).times(VpCosineSchedule()); }) == "t[0]");
}

TEST_CASE("rule grids: validation errors name the parameter", "[grid]") {
  const VpLinearSchedule s;
  const VpCosineSchedule cosine;
  auto all = [](GridSpan sp) {
    std::vector<std::unique_ptr<Grid>> g;
    g.push_back(std::make_unique<TimeUniformGrid>(sp));
    g.push_back(std::make_unique<TimeQuadraticGrid>(sp));
    g.push_back(std::make_unique<LogSnrGrid>(sp));
    g.push_back(std::make_unique<KarrasGrid>(sp));
    return g;
  };
  for (const auto& g : all(span(1.0, 1e-3, 0))) CHECK(test::config_error_path([&] { g->times(s); }) == "steps");
  for (const auto& g : all(span(1.0, -1e-3, 10))) CHECK(test::config_error_path([&] { g->times(s); }) == "t_end");
  for (const auto& g : all(span(-1.0, 0.5, 10))) CHECK(test::config_error_path([&] { g->times(s); }) == "t_start");
  for (const auto& g : all(span(0.5, 0.5, 10))) CHECK(test::config_error_path([&] { g->times(s); }) == "t_end");
  for (const auto& g : all(span(1.5, 1e-3, 10))) CHECK(test::config_error_path([&] { g->times(s); }) == "t_start");
  for (const auto& g : all(span(1e-3, 1.5, 10))) CHECK(test::config_error_path([&] { g->times(s); }) == "t_end");
  for (const auto& g : all(span(std::nan(""), 1e-3, 10))) CHECK(test::config_error_path([&] { g->times(s); }) == "t_start");
  // The cosine schedule ends at t_max ~ 0.998 < 1.
  for (const auto& g : all(span(1.0, 1e-3, 10)))
    CHECK(test::config_error_path([&] { g->times(cosine); }) == "t_start");
  for (const auto& g : all(span(cosine.t_max(), 1e-3, 10))) CHECK(g->times(cosine).front() == cosine.t_max());
  // lambda and sigma are infinite at t = 0.
  CHECK(test::config_error_path([&] { LogSnrGrid(span(0.0, 1.0, 10)).times(s); }) == "t_start");
  CHECK(test::config_error_path([&] { KarrasGrid(span(0.0, 1.0, 10)).times(s); }) == "t_start");
  // t_last must lie in (0, t_start) when it is used...
  CHECK(test::config_error_path([&] { LogSnrGrid(span(1.0, 0.0, 10, 0.0)).times(s); }) == "t_last");
  CHECK(test::config_error_path([&] { KarrasGrid(span(0.5, 0.0, 10, 0.6)).times(s); }) == "t_last");
  // ...and is ignored otherwise.
  CHECK(LogSnrGrid(span(1.0, 1e-3, 10, 0.0)).times(s).size() == 11);
  CHECK(TimeUniformGrid(span(1.0, 0.0, 10, -1.0)).times(s).size() == 11);
  CHECK(test::config_error_path([&] { KarrasGrid(span(1.0, 1e-3, 10), 0.0).times(s); }) == "rho");
  CHECK(test::config_error_path([&] { KarrasGrid(span(1.0, 1e-3, 10), -7.0).times(s); }) == "rho");
}

TEST_CASE("grids from the registry", "[grid][registry]") {
  auto& reg = grid_registry();
  const VpLinearSchedule s;
  for (const char* name : {"time_uniform", "logSNR", "time_quadratic", "karras"}) {
    INFO(name);
    auto g = reg.create_default(name);
    CHECK(g->name() == name);
    const auto t = g->times(s);
    REQUIRE(t.size() == 51);  // defaults: t_start 1, t_end 1e-3, 50 steps
    CHECK(t.front() == 1.0);
    CHECK(t.back() == 1e-3);
    CHECK(strictly_monotone(t));
  }
  auto g = reg.create(json{{"name", "logSNR"}, {"steps", 10}, {"t_end", 0.0}, {"t_last", 1e-4}}, "grid");
  auto t = g->times(s);
  REQUIRE(t.size() == 11);
  CHECK(t[9] == 1e-4);
  CHECK(t[10] == 0.0);

  auto custom = reg.create(json{{"name", "custom"}, {"t", {1.0, 0.5, 0.0}}}, "grid");
  CHECK(custom->times(s) == std::vector<double>{1.0, 0.5, 0.0});

  // rho changes the karras grid.
  const auto k7 = reg.create(json{{"name", "karras"}, {"steps", 5}}, "grid")->times(s);
  const auto k1 = reg.create(json{{"name", "karras"}, {"steps", 5}, {"rho", 1.0}}, "grid")->times(s);
  CHECK(k7 == KarrasGrid(span(1.0, 1e-3, 5), 7.0).times(s));
  CHECK(k1 == KarrasGrid(span(1.0, 1e-3, 5), 1.0).times(s));
  CHECK(k7 != k1);

  auto fails_at = [&](const json& j) {
    try {
      reg.create(j, "grid");
    } catch (const ConfigError& e) {
      return e.path();
    }
    return std::string("(none)");
  };
  CHECK(fails_at({{"name", "time_linear"}}) == "grid.name");
  CHECK(fails_at({{"name", "time_uniform"}, {"stepz", 3}}) == "grid.stepz");
  // t_last is accepted (and ignored) by the time-spaced grids.
  CHECK(fails_at({{"name", "time_uniform"}, {"t_end", 0.0}, {"t_last", 0.0}}) == "(none)");
  CHECK(fails_at({{"name", "time_uniform"}, {"steps", 0}}) == "grid.steps");
  CHECK(fails_at({{"name", "time_uniform"}, {"steps", 2.5}}) == "grid.steps");
  CHECK(fails_at({{"name", "logSNR"}, {"t_end", -1.0}}) == "grid.t_end");
  CHECK(fails_at({{"name", "logSNR"}, {"t_start", 0.2}, {"t_end", 0.2}}) == "grid.t_end");
  CHECK(fails_at({{"name", "logSNR"}, {"t_end", 0.0}, {"t_last", 0.0}}) == "grid.t_last");
  CHECK(fails_at({{"name", "karras"}, {"rho", 0.0}}) == "grid.rho");
  CHECK(fails_at({{"name", "custom"}}) == "grid.t");
  CHECK(fails_at({{"name", "custom"}, {"t", {1.0}}}) == "grid.t");
  CHECK(fails_at({{"name", "custom"}, {"t", {1.0, 0.5, 0.7}}}) == "grid.t[2]");
  CHECK(fails_at({{"name", "custom"}, {"t", {1.0, -0.5}}}) == "grid.t[1]");
  // Range checks against the schedule come from times(), with the path relative to the grid.
  auto beyond = reg.create(json{{"name", "time_uniform"}, {"t_start", 1.0}}, "grid");
  CHECK(test::config_error_path([&] { beyond->times(VpCosineSchedule()); }) == "t_start");
}

TEST_CASE("discrete_uniform: DDIM's uniform skip over the discrete steps, then t = 0", "[grid]") {
  auto& reg = grid_registry();
  const VpDiscreteSchedule discrete = VpDiscreteSchedule::linear();  // 1000 linear betas
  // S = 10 on N = 1000: skip 100, steps 900, 800, ..., 0 at t = (n + 1)/N, then 0.
  const auto t = reg.create(json{{"name", "discrete_uniform"}, {"steps", 10}}, "grid")->times(discrete);
  REQUIRE(t.size() == 11);
  for (int i = 0; i < 10; ++i) CHECK(t[static_cast<std::size_t>(i)] == static_cast<double>((9 - i) * 100 + 1) / 1000.0);
  CHECK(t.back() == 0.0);
  // They are the schedule's knots: alpha_bar there is DDPM's cumulative product.
  CHECK(t[9] == discrete.t_of_step(0));
  CHECK(t[0] == discrete.t_of_step(900));
  // S = N is every step, from t = 1.
  const auto all = reg.create(json{{"name", "discrete_uniform"}, {"steps", 1000}}, "grid")->times(discrete);
  REQUIRE(all.size() == 1001);
  CHECK(all.front() == 1.0);
  CHECK(strictly_monotone(all));
  // S that does not divide N: skip = floor(N / S).
  const auto odd = reg.create(json{{"name", "discrete_uniform"}, {"steps", 3}, {"num_steps", 10}}, "grid")
                       ->times(discrete);
  CHECK(odd == std::vector<double>{0.7, 0.4, 0.1, 0.0});
  auto fails_at = [&](const json& j) {
    return test::config_error_path([&] { reg.create(j, "grid"); });
  };
  CHECK(fails_at({{"name", "discrete_uniform"}, {"steps", 0}}) == "grid.steps");
  CHECK(fails_at({{"name", "discrete_uniform"}, {"steps", 20}, {"num_steps", 10}}) == "grid.steps");
  CHECK(fails_at({{"name", "discrete_uniform"}, {"num_steps", 0}}) == "grid.num_steps");
  // vp_cosine ends before t = 1.
  auto g = reg.create(json{{"name", "discrete_uniform"}, {"steps", 1000}}, "grid");
  CHECK(test::config_error_path([&] { g->times(VpCosineSchedule()); }) == "steps");
}
