// Stochastic Runge–Kutta solvers (stochastic_heun, sra) and the adaptive ggf on Gaussian
// data, against exact answers: strong order on one Brownian path (the exact solution of
// the linear reverse SDE driven by that path), the output law, and ggf's tolerance,
// step-rejection and batch-independence properties.
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
#include "diffsde/solvers/ggf.hpp"
#include "diffsde/solvers/sde_rk.hpp"
#include "support/exact.hpp"

using namespace diffsde;
using nlohmann::json;

namespace {

constexpr double kMu = 0.8, kSd = 0.5;

struct Setup {
  std::shared_ptr<VpLinearSchedule> schedule = std::make_shared<VpLinearSchedule>(0.1, 20.0);
  test::GaussianProblem problem{schedule, {kMu}, {kSd}};
  GaussianModel model{schedule, Eigen::VectorXd::Constant(1, kMu), Eigen::VectorXd::Constant(1, kSd)};
};

double strong_slope(const json& config, const std::vector<int>& steps, std::vector<double>& errors) {
  Setup s;
  const double t_lo = 1e-3, t_hi = 1.0;
  const int depth = 12;
  const State x_T = test::standard_normal_rows(200, 1, 5);
  static const State x_exact =
      s.problem.reverse_sde_on_path(x_T, BrownianTreeNoise(3, t_lo, t_hi, depth), t_hi, t_lo, depth);
  std::vector<double> hs;
  errors.clear();
  for (int n : steps) {
    BrownianTreeNoise noise(3, t_lo, t_hi, depth);
    State x = x_T;
    auto solver = solver_registry().create(config, "solver");
    integrate(*solver, *s.schedule, s.model, TimeUniformGrid({t_hi, t_lo, n}).times(*s.schedule), x, &noise);
    hs.push_back((t_hi - t_lo) / n);
    errors.push_back(test::rms_diff(x, x_exact));
  }
  return test::log_log_slope(hs, errors);
}

}  // namespace

TEST_CASE("Stochastic Runge-Kutta solvers reach their strong order on one Brownian path") {
  struct Case {
    json config;
    double order;
  };
  for (const Case& c : {Case{json{{"name", "euler_maruyama"}}, 1.0}, Case{json{{"name", "stochastic_heun"}}, 1.0},
                        Case{json{{"name", "sra"}, {"tableau", "sra1"}}, 1.5},
                        Case{json{{"name", "sra"}, {"tableau", "sra3"}}, 1.5}}) {
    std::vector<double> errors;
    const double slope = strong_slope(c.config, {32, 64, 128, 256}, errors);
    INFO(c.config.dump() << " strong errors " << errors[0] << " " << errors[1] << " " << errors[2] << " "
                         << errors[3] << " slope " << slope);
    // The Gaussian problem's drift is linear, so the scheme's order-1.5 error terms (which
    // involve the drift's second derivative) vanish and sra is observed near order 2 here:
    // check the declared order as a lower bound, and the other solvers exactly.
    if (c.order == 1.5)
      CHECK(slope > c.order - 0.1);
    else
      CHECK(slope == Approx(c.order).margin(0.2));
    const auto traits = solver_registry().create(c.config, "solver")->traits();
    CHECK(traits.strong_order == c.order);
  }
}

TEST_CASE("sra and stochastic_heun sample the Gaussian data's law with Philox noise") {
  Setup s;
  const long n = 20000;
  const double t_end = 1e-3;
  for (const json& config : {json{{"name", "stochastic_heun"}}, json{{"name", "sra"}},
                             json{{"name", "sra"}, {"tableau", "sra3"}}}) {
    INFO(config.dump());
    State x = test::standard_normal_rows(n, 1, 21);
    PhiloxNoise noise(21);
    auto solver = solver_registry().create(config, "solver");
    const Summary summary =
        integrate(*solver, *s.schedule, s.model, TimeUniformGrid({1.0, t_end, 100}).times(*s.schedule), x, &noise);
    CHECK(summary.nfe == 100 * solver->traits().evals_per_step);
    const double m_true = s.schedule->alpha(t_end) * kMu;
    const double v_true = s.problem.variance(0, t_end);
    const double mean = x.col(0).mean();
    const double var = (x.col(0) - mean).square().sum() / (n - 1);
    // Five standard errors plus a discretization allowance of 3%.
    CHECK(std::fabs(mean - m_true) < 5 * std::sqrt(v_true / n) + 0.03 * std::sqrt(v_true));
    CHECK(std::fabs(var - v_true) < 5 * v_true * std::sqrt(2.0 / n) + 0.03 * v_true);
  }
}

TEST_CASE("sra draws two normals per step with Philox noise and reaches t = 0") {
  Setup s;
  State x = test::standard_normal_rows(64, 1, 2);
  PhiloxNoise noise(2);
  SraSolver solver("sra3");
  integrate(solver, *s.schedule, s.model, TimeUniformGrid({1.0, 0.0, 20}).times(*s.schedule), x, &noise);
  CHECK(noise.draws() == 40);
  CHECK(x.allFinite());
  State y = test::standard_normal_rows(64, 1, 2);
  PhiloxNoise noise2(2);
  StochasticHeunSolver heun;
  integrate(heun, *s.schedule, s.model, TimeUniformGrid({1.0, 0.0, 20}).times(*s.schedule), y, &noise2);
  CHECK(y.allFinite());
}

namespace {

State run_ggf(const json& config, const State& x_T, std::uint64_t first_sample, double t_end, Summary* summary = nullptr,
              double t_lo = 1e-5) {
  Setup s;
  BrownianTreeNoise noise(3, t_lo, 1.0, 14, first_sample);
  State x = x_T;
  auto solver = solver_registry().create(config, "solver");
  const Summary sum = integrate(*solver, *s.schedule, s.model, {1.0, t_end}, x, &noise);
  if (summary != nullptr) *summary = sum;
  return x;
}

}  // namespace

TEST_CASE("ggf error against the exact path solution shrinks with the tolerance") {
  Setup s;
  const double t_lo = 1e-3;
  const int depth = 14;
  const State x_T = test::standard_normal_rows(50, 1, 5);
  const State x_exact =
      s.problem.reverse_sde_on_path(x_T, BrownianTreeNoise(3, t_lo, 1.0, depth), 1.0, t_lo, depth);
  std::vector<double> errors;
  std::vector<long> nfes;
  for (double tol : {1e-1, 1e-2, 1e-3}) {
    Summary summary;
    const State x = run_ggf(json{{"name", "ggf"}, {"rtol", tol}, {"atol", tol}}, x_T, 0, t_lo, &summary, t_lo);
    errors.push_back(test::rms_diff(x, x_exact));
    nfes.push_back(summary.nfe);
    CHECK(summary.accepted > 0);
    CHECK(summary.nfe == 2 * (summary.accepted + summary.rejected));
  }
  INFO("errors " << errors[0] << " " << errors[1] << " " << errors[2] << "; nfe " << nfes[0] << " " << nfes[1]
                 << " " << nfes[2]);
  CHECK(errors[1] < 0.5 * errors[0]);
  CHECK(errors[2] < 0.5 * errors[1]);
  CHECK(errors[2] < 0.02);
  CHECK(nfes[2] > nfes[1]);
  CHECK(nfes[1] > nfes[0]);
}

TEST_CASE("ggf rejects steps from a too large first step and counts them") {
  const State x_T = test::standard_normal_rows(8, 1, 9);
  Summary summary;
  const State x = run_ggf(json{{"name", "ggf"}, {"h_init", 0.5}, {"rtol", 1e-3}, {"atol", 1e-3}}, x_T, 0, 1e-3,
                          &summary);
  CHECK(summary.rejected > 0);
  CHECK(summary.accepted > 0);
  CHECK(x.allFinite());
}

TEST_CASE("ggf gives each sample the same result in any batch") {
  const State x_T = test::standard_normal_rows(8, 1, 13);
  for (const json& config : {json{{"name", "ggf"}}, json{{"name", "ggf"}, {"norm", "linf"}}}) {
    const State all = run_ggf(config, x_T, 0, 1e-3);
    for (long j : {0L, 5L}) {
      const State one = run_ggf(config, x_T.middleRows(j, 1), static_cast<std::uint64_t>(j), 1e-3);
      CHECK((one.row(0) == all.row(j)).all());
    }
  }
}

TEST_CASE("ggf counts NFE and steps per sample, summed, whatever calls share rows") {
  // The first round evaluates all samples at t = 1 in one call; its NFE is still one per
  // sample, so the batch's counts are the sums of the samples' own (each in a batch of 1).
  const State x_T = test::standard_normal_rows(6, 1, 21);
  for (const json& config : {json{{"name", "ggf"}}, json{{"name", "ggf"}, {"h_init", 0.5}}}) {
    for (double t_end : {1e-3, 0.0}) {
      Summary all;
      const State x = run_ggf(config, x_T, 0, t_end, &all, 0.0);
      long nfe = 0, accepted = 0, rejected = 0;
      for (long j = 0; j < x_T.rows(); ++j) {
        Summary one;
        const State y = run_ggf(config, x_T.middleRows(j, 1), static_cast<std::uint64_t>(j), t_end, &one, 0.0);
        CHECK((y.row(0) == x.row(j)).all());
        nfe += one.nfe;
        accepted += one.accepted;
        rejected += one.rejected;
      }
      CHECK(all.nfe == nfe);
      CHECK(all.accepted == accepted);
      CHECK(all.rejected == rejected);
      CHECK(all.network_rows == nfe);
    }
  }
}

TEST_CASE("ggf stays finite down to a small t_end and to t = 0") {
  const State x_T = test::standard_normal_rows(16, 1, 4);
  CHECK(run_ggf(json{{"name", "ggf"}}, x_T, 0, 1e-5).allFinite());
  CHECK(run_ggf(json{{"name", "ggf"}}, x_T, 0, 0.0, nullptr, 0.0).allFinite());
}

TEST_CASE("ggf refuses noise that is not a Brownian tree and bad parameters") {
  Setup s;
  State x = test::standard_normal_rows(4, 1, 1);
  PhiloxNoise noise(1);
  GgfSolver solver;
  CHECK_THROWS_AS(integrate(solver, *s.schedule, s.model, {1.0, 1e-3}, x, &noise), Error);
  CHECK(test::config_error_path([] {
          solver_registry().create(json{{"name", "ggf"}, {"norm", "l3"}}, "solver");
        }) == "solver.norm");
  CHECK_THROWS_AS(solver_registry().create(json{{"name", "ggf"}, {"h_init", 0.0}}, "solver"), Error);
  CHECK(test::config_error_path([] {
          solver_registry().create(json{{"name", "sra"}, {"tableau", "sra9"}}, "solver");
        }) == "solver.tableau");
}

TEST_CASE("sra converges faster than stochastic_heun on a nonlinear score (mixture), same path") {
  // No closed form here: the reference is sra3 on 2048 steps of the same Brownian-tree path.
  auto schedule = std::make_shared<VpLinearSchedule>();
  // Two overlapping components: a nonlinear score, but no mode for a path to switch to.
  Eigen::VectorXd weights(2);
  weights << 0.4, 0.6;
  Eigen::MatrixXd means(2, 1), stds(2, 1);
  means << -0.6, 0.5;
  stds << 0.5, 0.8;
  const GmmModel model(schedule, weights, means, stds);
  const double t_lo = 1e-2, t_hi = 1.0;
  const int depth = 12;
  const State x_T = test::standard_normal_rows(100, 1, 8);
  auto run = [&](const json& config, int steps) {
    BrownianTreeNoise noise(6, t_lo, t_hi, depth);
    State x = x_T;
    auto solver = solver_registry().create(config, "solver");
    integrate(*solver, *schedule, model, TimeUniformGrid({t_hi, t_lo, steps}).times(*schedule), x, &noise);
    return x;
  };
  const State ref = run(json{{"name", "sra"}, {"tableau", "sra3"}}, 2048);
  std::vector<double> heun;
  for (const json& config : {json{{"name", "stochastic_heun"}}, json{{"name", "sra"}}, json{{"name", "sra"}, {"tableau", "sra3"}}}) {
    std::vector<double> hs, errors;
    for (int steps : {32, 64, 128, 256}) {
      hs.push_back(1.0 / steps);
      errors.push_back(test::rms_diff(run(config, steps), ref));
    }
    const double slope = test::log_log_slope(hs, errors);
    INFO(config.dump() << " errors " << errors[0] << " " << errors[1] << " " << errors[2] << " " << errors[3]
                       << " slope " << slope);
    if (config["name"] == "stochastic_heun") {
      CHECK(slope == Approx(1.0).margin(0.2));
      heun = errors;
    } else {
      // Measured 1.89 (sra1) and 1.85 (sra3): at least the declared 1.5.
      CHECK(slope > 1.4);
      for (std::size_t i = 0; i < errors.size(); ++i) CHECK(errors[i] < 0.5 * heun[i]);
    }
  }
}
