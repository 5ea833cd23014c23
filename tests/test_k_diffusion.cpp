// The EDM / k-diffusion samplers (euler, euler_ancestral, heun, dpm2, dpm2_ancestral, lms)
// against exact answers: equivalences with ddim, orders on the exact Gaussian PF-ODE flow,
// the output law of churned Heun on Gaussian data, final steps to t = 0, config errors.
#include <catch2/catch.hpp>
#include <cmath>
#include <memory>

#include "diffsde/driver.hpp"
#include "diffsde/error.hpp"
#include "diffsde/grid.hpp"
#include "diffsde/noise.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/scores/analytic.hpp"
#include "diffsde/solvers/k_diffusion.hpp"
#include "support/exact.hpp"
#include "support/fixtures.hpp"

using namespace diffsde;
using nlohmann::json;

namespace {



State run(const json& config, const Schedule& schedule, const Model& model, const std::vector<double>& times,
          State x, std::uint64_t seed = 5, Summary* summary = nullptr) {
  auto solver = test::make_solver(config);
  PhiloxNoise noise(seed);
  const Summary s = integrate(*solver, schedule, model, times, x, &noise);
  if (summary) *summary = s;
  return x;
}

// As tests/test_solver_orders.cpp: Gaussian data from t = 1 to 0.1, multistep warm-up steps
// shrunk so that the declared order is what is observed.
struct Problem {
  std::shared_ptr<VpLinearSchedule> schedule = std::make_shared<VpLinearSchedule>(0.1, 20.0);
  test::GaussianProblem exact{schedule, {0.5, -1.0}, {0.6, 1.2}};
  GaussianModel model{schedule, Eigen::Vector2d(0.5, -1.0), Eigen::Vector2d(0.6, 1.2)};
  double t_start = 1.0, t_end = 0.1;
};

std::vector<double> order_grid(const Problem& p, int steps, const SolverTraits& traits) {
  const double span = p.t_start - p.t_end;
  const double h = span / steps;
  if (traits.warmup_steps == 0) return TimeUniformGrid({p.t_start, p.t_end, steps}).times(*p.schedule);
  const double tiny = span * std::pow(h / span, (traits.order + 1) / 2);
  std::vector<double> t = {p.t_start};
  for (int i = 0; i < traits.warmup_steps; ++i) t.push_back(t.back() - tiny);
  const int rest = steps - traits.warmup_steps;
  const double start = t.back();
  for (int i = 1; i <= rest; ++i) t.push_back(i == rest ? p.t_end : start - (start - p.t_end) * i / rest);
  return t;
}

}  // namespace

TEST_CASE("lms coefficients integrate polynomials of degree < order exactly") {
  const std::vector<double> nodes = {2.0, 2.7, 3.1, 4.6};
  const double a = 2.0, b = 1.3;
  for (std::size_t k = 1; k <= 4; ++k) {
    const std::vector<double> n(nodes.begin(), nodes.begin() + static_cast<long>(k));
    const auto c = lms_coefficients(n, a, b);
    for (std::size_t m = 0; m < k; ++m) {
      double quad = 0;
      for (std::size_t j = 0; j < k; ++j) quad += c[j] * std::pow(n[j], static_cast<double>(m));
      const double exact = (std::pow(b, m + 1.0) - std::pow(a, m + 1.0)) / (m + 1.0);
      INFO("k=" << k << " m=" << m);
      CHECK(quad == Approx(exact).epsilon(1e-12).margin(1e-13));
    }
  }
  CHECK(lms_coefficients({3.0}, 3.0, 1.0)[0] == Approx(-2.0));
  CHECK_THROWS_AS(lms_coefficients({}, 1.0, 0.5), Error);
}

TEST_CASE("euler equals ddim at eta = 0") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel model = GmmModel::builtin_2d(schedule);
  const State x_T = test::standard_normal_rows(64, 2, 1);
  for (const auto& times : {TimeUniformGrid({1.0, 1e-3, 25}).times(*schedule),
                            LogSnrGrid({1.0, 0.0, 15, 1e-3}).times(*schedule),
                            KarrasGrid({1.0, 1e-3, 10}).times(*schedule)}) {
    const State a = run({{"name", "euler"}}, *schedule, model, times, x_T);
    const State b = run({{"name", "ddim"}, {"eta", 0}}, *schedule, model, times, x_T);
    CHECK(test::max_abs(a - b) < 1e-12 * (1 + test::max_abs(b)));
  }
  CHECK_FALSE(test::make_solver({{"name", "euler"}})->traits().stochastic);
  CHECK(test::make_solver({{"name", "euler"}})->traits().order == 1);
}

TEST_CASE("euler_ancestral equals ddim with the same eta, draw for draw") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel model = GmmModel::builtin_2d(schedule);
  const State x_T = test::standard_normal_rows(64, 2, 2);
  for (double eta : {0.5, 1.0}) {
    for (const auto& times : {TimeUniformGrid({1.0, 1e-3, 30}).times(*schedule),
                              LogSnrGrid({1.0, 0.0, 12, 1e-3}).times(*schedule)}) {
      INFO("eta " << eta);
      Summary sa, sb;
      const State a = run({{"name", "euler_ancestral"}, {"eta", eta}, {"s_noise", 1}}, *schedule, model, times,
                          x_T, 11, &sa);
      const State b = run({{"name", "ddim"}, {"eta", eta}}, *schedule, model, times, x_T, 11, &sb);
      CHECK(test::max_abs(a - b) < 1e-11 * (1 + test::max_abs(b)));
      CHECK(sa.nfe == sb.nfe);
    }
  }
  auto t = test::make_solver({{"name", "euler_ancestral"}})->traits();
  CHECK(t.stochastic);
  CHECK_FALSE(t.noise_use.empty());
  CHECK_FALSE(test::make_solver({{"name", "euler_ancestral"}, {"eta", 0}})->traits().stochastic);
}

TEST_CASE("k-diffusion ODE samplers converge at their declared orders on the exact flow") {
  const Problem p;
  const State x_T = test::standard_normal_rows(64, 2, 1);
  const State x_exact = p.exact.pf_ode_flow(x_T, p.t_start, p.t_end);
  const std::vector<std::pair<json, double>> cases = {
      {{{"name", "euler"}}, 1},           {{{"name", "heun"}, {"s_churn", 0}}, 2},
      {{{"name", "dpm2"}}, 2},            {{{"name", "dpm2_ancestral"}, {"eta", 0}}, 2},
      {{{"name", "lms"}, {"order", 1}}, 1}, {{{"name", "lms"}, {"order", 2}}, 2},
      {{{"name", "lms"}, {"order", 3}}, 3}, {{{"name", "lms"}, {"order", 4}}, 4}};
  for (const auto& [config, order] : cases) {
    const auto traits = test::make_solver(config)->traits();
    CHECK_FALSE(traits.stochastic);
    CHECK(traits.order == order);
    std::vector<double> hs, errors;
    for (int steps : {40, 80, 160, 320}) {
      State x = x_T;
      auto solver = test::make_solver(config);
      const Summary s = integrate(*solver, *p.schedule, p.model, order_grid(p, steps, traits), x, nullptr);
      CHECK(s.nfe == static_cast<long>(traits.evals_per_step) * steps);
      hs.push_back((p.t_start - p.t_end) / steps);
      errors.push_back(test::max_abs(x - x_exact));
    }
    const double slope = test::log_log_slope(hs, errors);
    INFO(config.dump() << ": observed order " << slope << "; errors " << errors[0] << " " << errors[3]);
    CHECK(std::fabs(slope - order) < 0.2);
  }
}

TEST_CASE("heun with churn stays finite and samples Gaussian data at many steps") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const Eigen::Vector2d mu(0.5, -1.0), sd(0.6, 1.2);
  const GaussianModel model(schedule, mu, sd);
  const long n = 4000;
  const State x_T = test::standard_normal_rows(n, 2, 7);
  auto solver = test::make_solver({{"name", "heun"}, {"s_churn", 10}});
  CHECK(solver->traits().stochastic);
  CHECK(solver->traits().order == 1);
  const auto times = TimeUniformGrid({1.0, 0.0, 200}).times(*schedule);
  Summary summary;
  const State x = run({{"name", "heun"}, {"s_churn", 10}}, *schedule, model, times, x_T, 3, &summary);
  REQUIRE(x.allFinite());
  CHECK(summary.nfe == 2 * 200 - 1);
  for (int j = 0; j < 2; ++j) {
    const double mean = x.col(j).mean();
    const double std = std::sqrt((x.col(j) - mean).square().mean());
    INFO("axis " << j << ": mean " << mean << " std " << std);
    CHECK(std::fabs(mean - mu(j)) < 4 * sd(j) / std::sqrt(static_cast<double>(n)) + 0.01);
    CHECK(std::fabs(std / sd(j) - 1) < 0.05);
  }
  // The churn differs from the deterministic run, and a restricted churn range changes less.
  const State x0 = run({{"name", "heun"}}, *schedule, model, times, x_T);
  CHECK(test::max_abs(x - x0) > 1e-3);
  const State x_none = run({{"name", "heun"}, {"s_churn", 10}, {"s_tmin", 1e6}}, *schedule, model, times, x_T);
  CHECK(test::max_abs(x_none - x0) == 0.0);
}

TEST_CASE("k-diffusion samplers take a final step to t = 0 and start at t_max without NaN") {
  std::vector<std::shared_ptr<const Schedule>> schedules = {
      std::make_shared<VpLinearSchedule>(), std::make_shared<VpCosineSchedule>(),
      std::make_shared<VpDiscreteSchedule>(VpDiscreteSchedule::linear())};
  const State x_T = test::standard_normal_rows(32, 2, 4);
  for (const auto& schedule : schedules) {
    const GmmModel model = GmmModel::builtin_2d(schedule);
    const double t_max = schedule->t_max();
    for (const auto& times : {TimeUniformGrid({t_max, 0.0, 10}).times(*schedule),
                              KarrasGrid({t_max, 0.0, 8, 1e-3}).times(*schedule)}) {
      for (const json& config :
           {json{{"name", "euler"}}, json{{"name", "euler_ancestral"}}, json{{"name", "euler_ancestral"}, {"eta", 2}},
            json{{"name", "heun"}}, json{{"name", "heun"}, {"s_churn", 40}}, json{{"name", "dpm2"}},
            json{{"name", "dpm2_ancestral"}}, json{{"name", "lms"}}, json{{"name", "lms"}, {"order", 2}}}) {
        INFO(schedule->name() << " " << config.dump());
        State x;
        REQUIRE_NOTHROW(x = run(config, *schedule, model, times, x_T));
        CHECK(x.allFinite());
      }
      // euler's final step returns the predicted x0, as ddim's does.
      const State a = run({{"name", "euler"}}, *schedule, model, times, x_T);
      const State b = run({{"name", "ddim"}}, *schedule, model, times, x_T);
      CHECK(test::max_abs(a - b) < 1e-10 * (1 + test::max_abs(b)));
    }
  }
}

TEST_CASE("k-diffusion config errors name their JSON paths") {
  using test::config_error_path;
  CHECK(config_error_path([] { test::make_solver({{"name", "euler_ancestral"}, {"eta", -0.1}}); }) == "solver.eta");
  CHECK(config_error_path([] { test::make_solver({{"name", "dpm2_ancestral"}, {"eta", -1}}); }) == "solver.eta");
  CHECK(config_error_path([] { test::make_solver({{"name", "euler_ancestral"}, {"s_noise", -1}}); }) == "solver.s_noise");
  CHECK(config_error_path([] { test::make_solver({{"name", "heun"}, {"s_noise", -1}}); }) == "solver.s_noise");
  CHECK(config_error_path([] { test::make_solver({{"name", "heun"}, {"s_churn", -1}}); }) == "solver.s_churn");
  CHECK(config_error_path([] { test::make_solver({{"name", "heun"}, {"s_tmin", 2}, {"s_tmax", 1}}); }) == "solver.s_tmax");
  CHECK(config_error_path([] { test::make_solver({{"name", "lms"}, {"order", 0}}); }) == "solver.order");
  CHECK(config_error_path([] { test::make_solver({{"name", "lms"}, {"order", 5}}); }) == "solver.order");
  CHECK(config_error_path([] { test::make_solver({{"name", "euler"}, {"eta", 1}}); }) == "solver.eta");
  CHECK(test::make_solver({{"name", "lms"}})->traits().warmup_steps == 3);
  CHECK(test::make_solver({{"name", "heun"}})->traits().evals_per_step == 2);
}

TEST_CASE("dpm2_ancestral at eta = 0 is dpm2, and a solver object reruns identically") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel model = GmmModel::builtin_2d(schedule);
  const State x_T = test::standard_normal_rows(16, 2, 9);
  const auto times = KarrasGrid({1.0, 0.0, 12, 1e-3}).times(*schedule);
  const State a = run({{"name", "dpm2_ancestral"}, {"eta", 0}}, *schedule, model, times, x_T);
  const State b = run({{"name", "dpm2"}}, *schedule, model, times, x_T);
  CHECK(test::max_abs(a - b) == 0.0);
  for (const json& config : {json{{"name", "lms"}}, json{{"name", "heun"}, {"s_churn", 5}}}) {
    auto solver = test::make_solver(config);
    State x1 = x_T, x2 = x_T;
    PhiloxNoise n1(4), n2(4);
    integrate(*solver, *schedule, model, times, x1, &n1);
    integrate(*solver, *schedule, model, times, x2, &n2);
    CHECK(test::max_abs(x1 - x2) == 0.0);
  }
}
