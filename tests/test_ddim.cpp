// DDIM and DDPM as the generalized DDIM step, against exact answers and against the
// textbook formulas written out independently here.
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
#include "diffsde/solvers/ddim.hpp"
#include "diffsde/solvers/euler_maruyama.hpp"
#include "support/exact.hpp"
#include "support/fixtures.hpp"

using namespace diffsde;
using nlohmann::json;

namespace {

}  // namespace

TEST_CASE("Generalized DDIM coefficients match the closed forms") {
  const VpLinearSchedule sch;
  for (auto [ts, tt] : {std::pair{1.0, 0.9}, {0.5, 0.499}, {0.2, 1e-3}, {1e-2, 1e-6}}) {
    const ScheduleAt s = sch.at(ts), t = sch.at(tt);
    const double ab_s = sch.alpha_bar(ts), ab_t = sch.alpha_bar(tt);
    // DDPM posterior variance (Ho et al. eq. 7) over the step.
    const double beta_tilde = (1 - ab_t) / (1 - ab_s) * (1 - ab_s / ab_t);
    for (double eta : {0.0, 0.3, 1.0}) {
      const DdimCoefficients c = ddim_coefficients(s, t, eta);
      INFO("s=" << ts << " t=" << tt << " eta=" << eta);
      CHECK(c.noise * c.noise == Approx(eta * eta * beta_tilde).epsilon(1e-10).margin(1e-300));
      // DDIM eq. 12: x_t = alpha_t x0 + sqrt(1 - ab_t - sigma^2) eps + sigma z with
      // x0 = (x - sqrt(1 - ab_s) eps)/sqrt(ab_s), multiplied out.
      const double dir = std::sqrt(1 - ab_t - eta * eta * beta_tilde);
      CHECK(c.x == Approx(std::sqrt(ab_t / ab_s)).epsilon(1e-13));
      CHECK(c.dir == Approx(dir).epsilon(1e-9));
      CHECK(c.eps == Approx(dir - std::sqrt(ab_t) * std::sqrt(1 - ab_s) / std::sqrt(ab_s)).epsilon(1e-7));
    }
  }
  // The final step to t = 0 returns x0 = (x - sigma_s eps)/alpha_s.
  const ScheduleAt s = sch.at(0.3), t = sch.at(0.0);
  const DdimCoefficients c = ddim_coefficients(s, t, 1.0);
  CHECK(c.x == Approx(1 / s.alpha));
  CHECK(c.eps == Approx(-s.sigma / s.alpha));
  CHECK(c.noise == 0);
  CHECK_THROWS_AS(ddim_coefficients(sch.at(0.5), sch.at(0.1), 5.0), Error);
}

TEST_CASE("DDIM(eta=0) is the first-order exponential integrator in lambda (DPM-Solver-1)") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel model = test::test_gmm(schedule);
  const auto times = LogSnrGrid({1.0, 1e-3, 12}).times(*schedule);
  State x = test::standard_normal_rows(64, 2, 1);
  State y = x;
  auto ddim = test::make_solver({{"name", "ddim"}, {"eta", 0}});
  CHECK_FALSE(ddim->traits().stochastic);
  integrate(*ddim, *schedule, model, times, x, nullptr);
  // Lu et al. 2022, eq. 3.7 with k = 1: x_t = (alpha_t/alpha_s) x_s - sigma_t (e^h - 1) eps.
  State eps(y.rows(), y.cols());
  for (std::size_t i = 0; i + 1 < times.size(); ++i) {
    const double s = times[i], t = times[i + 1];
    const double h = schedule->lambda(t) - schedule->lambda(s);
    model.eps(y, s, eps);
    y = schedule->alpha(t) / schedule->alpha(s) * y - schedule->sigma(t) * std::expm1(h) * eps;
  }
  CHECK(test::max_abs(x - y) < 1e-12 * (1 + test::max_abs(y)));
}

TEST_CASE("DDIM(eta=0) converges at order 1 to the pf_ode dopri5 answer") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel model = test::test_gmm(schedule);
  State reference = test::standard_normal_rows(32, 2, 2);
  const State x_T = reference;
  auto dopri = test::make_solver({{"name", "pf_ode"}, {"stepper", "dopri5"}, {"rtol", 1e-11}, {"atol", 1e-11}});
  integrate(*dopri, *schedule, model, {1.0, 1e-2}, reference, nullptr);
  std::vector<double> errors;
  for (int steps : {40, 80, 160, 320}) {
    State x = x_T;
    auto ddim = test::make_solver({{"name", "ddim"}});
    integrate(*ddim, *schedule, model, TimeUniformGrid({1.0, 1e-2, steps}).times(*schedule), x, nullptr);
    errors.push_back(test::max_abs(x - reference));
  }
  for (std::size_t i = 0; i + 1 < errors.size(); ++i) {
    INFO("errors " << errors[i] << " -> " << errors[i + 1]);
    CHECK(std::log2(errors[i] / errors[i + 1]) == Approx(1.0).margin(0.15));
  }
}

namespace {

// DDPM's Algorithm 2 on the discrete schedule, written from the paper:
//   x_{n-1} = (x_n - beta_n / sqrt(1 - ab_n) eps(x_n, n)) / sqrt(1 - beta_n) + sigma_n z,
// z = 0 at the last step, with sigma_n^2 = beta_tilde_n or beta_n. Step n (0-based) sits at
// t = (n + 1)/N. Draws come from `noise` in order.
State textbook_ddpm(const VpDiscreteSchedule& sch, const Model& model, State x, NoiseSource& noise,
                    bool beta_variance) {
  const int N = sch.num_steps();
  State eps(x.rows(), x.cols()), z(x.rows(), x.cols());
  for (int n = N - 1; n >= 0; --n) {
    const double beta = sch.betas()[static_cast<std::size_t>(n)];
    const double ab = std::exp(sch.log_alpha_bars()[static_cast<std::size_t>(n)]);
    const double ab_prev = n > 0 ? std::exp(sch.log_alpha_bars()[static_cast<std::size_t>(n - 1)]) : 1.0;
    model.eps(x, sch.t_of_step(n), eps);
    x = (x - beta / std::sqrt(1 - ab) * eps) / std::sqrt(1 - beta);
    if (n > 0) {
      const double var = beta_variance ? beta : (1 - ab_prev) / (1 - ab) * beta;
      noise.normal(z);
      x += std::sqrt(var) * z;
    }
  }
  return x;
}

std::vector<double> every_step_grid(int N) {
  std::vector<double> t;
  for (int n = N; n >= 0; --n) t.push_back(static_cast<double>(n) / N);
  return t;
}

}  // namespace

TEST_CASE("DDIM(eta=1) on the discrete 1000-step schedule equals DDPM ancestral, draw for draw") {
  auto schedule = std::make_shared<VpDiscreteSchedule>(VpDiscreteSchedule::linear(1e-4, 0.02, 1000));
  const GmmModel model = test::test_gmm(schedule);
  const auto times = every_step_grid(1000);
  const State x_T = test::standard_normal_rows(16, 2, 3);

  State a = x_T, b = x_T;
  PhiloxNoise na(9), nb(9), nc(9);
  auto ddim = test::make_solver({{"name", "ddim"}, {"eta", 1}});
  auto ddpm = test::make_solver({{"name", "ddpm"}, {"variance", "posterior"}});
  const Summary sa = integrate(*ddim, *schedule, model, times, a, &na);
  integrate(*ddpm, *schedule, model, times, b, &nb);
  CHECK(sa.draws == 999);  // no draw on the final step to t = 0
  const State c = textbook_ddpm(*schedule, model, x_T, nc, false);
  CHECK(test::max_abs(a - b) <= 1e-12 * test::max_abs(c));
  CHECK(test::max_abs(a - c) <= 1e-9 * test::max_abs(c));
}

TEST_CASE("DDPM with the 'beta' variance follows Algorithm 2 with sigma^2 = beta") {
  auto schedule = std::make_shared<VpDiscreteSchedule>(VpDiscreteSchedule::linear(1e-4, 0.02, 200));
  const GmmModel model = test::test_gmm(schedule);
  const State x_T = test::standard_normal_rows(16, 2, 4);
  State a = x_T;
  PhiloxNoise na(5), nc(5);
  auto ddpm = test::make_solver({{"name", "ddpm"}, {"variance", "beta"}});
  integrate(*ddpm, *schedule, model, every_step_grid(200), a, &na);
  const State c = textbook_ddpm(*schedule, model, x_T, nc, true);
  CHECK(test::max_abs(a - c) <= 1e-9 * test::max_abs(c));
}

TEST_CASE("DDPM and Euler-Maruyama approach each other at rate 1 as steps grow") {
  // Seed 000: 1/sqrt(1 - beta) = 1 + beta/2 + O(beta^2), so one DDPM step and one EM step
  // on the same draw differ by O(h^2) in the drift and O(h^1.5) in the noise; over 1/h
  // steps the gap is O(h). (Gaussian data: with a mixture, a sample near a ridge between
  // modes may switch mode under a small perturbation, which hides the rate.)
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GaussianModel model(schedule, Eigen::VectorXd::Constant(2, 0.3), Eigen::VectorXd::Constant(2, 0.5));
  const State x_T = test::standard_normal_rows(200, 2, 6);
  std::vector<double> gaps;
  for (int steps : {100, 200, 400, 800}) {
    const auto times = TimeUniformGrid({1.0, 1e-2, steps}).times(*schedule);
    State a = x_T, b = x_T;
    PhiloxNoise na(8), nb(8);
    auto ddpm = test::make_solver({{"name", "ddpm"}, {"variance", "beta"}});
    auto em = test::make_solver({{"name", "euler_maruyama"}});
    integrate(*ddpm, *schedule, model, times, a, &na);
    integrate(*em, *schedule, model, times, b, &nb);
    gaps.push_back(std::sqrt((a - b).square().mean()));
  }
  for (std::size_t i = 0; i + 1 < gaps.size(); ++i) {
    INFO("gaps " << gaps[i] << " -> " << gaps[i + 1]);
    CHECK(std::log2(gaps[i] / gaps[i + 1]) == Approx(1.0).margin(0.2));
  }
}

TEST_CASE("DDPM's output law on Gaussian data is the exact law of its linear chain") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const double mu = -0.4, sd = 0.7;
  const GaussianModel model(schedule, Eigen::VectorXd::Constant(1, mu), Eigen::VectorXd::Constant(1, sd));
  const auto times = TimeUniformGrid({1.0, 1e-3, 30}).times(*schedule);
  const long n = 40000;
  State x = test::standard_normal_rows(n, 1, 10);
  PhiloxNoise noise(10);
  auto ddpm = test::make_solver({{"name", "ddpm"}});
  integrate(*ddpm, *schedule, model, times, x, &noise);
  // The chain from the textbook form: x1 = (x - b eps/sigma_s)/sqrt(1 - b) + sqrt(bt) z with
  // b = 1 - ab_s/ab_t, bt = (1 - ab_t)/(1 - ab_s) b and the exact eps = sigma (x - alpha mu)/v.
  long double m = 0, var = 1;
  for (std::size_t i = 0; i + 1 < times.size(); ++i) {
    const long double ab_s = schedule->alpha_bar(times[i]), ab_t = schedule->alpha_bar(times[i + 1]);
    const long double b = 1 - ab_s / ab_t, bt = (1 - ab_t) / (1 - ab_s) * b;
    const long double al = std::sqrt(ab_s);
    const long double v = ab_s * sd * sd + 1 - ab_s;
    const long double A = (1 - b / v) / std::sqrt(1 - b);  // eps/sigma = (x - alpha mu)/v
    const long double B = b * al * mu / v / std::sqrt(1 - b);
    m = A * m + B;
    var = A * A * var + bt;
  }
  const double sm = x.col(0).mean();
  const double sv = (x.col(0) - sm).square().sum() / (n - 1);
  CHECK(std::fabs(sm - static_cast<double>(m)) < 5 * std::sqrt(static_cast<double>(var) / n));
  CHECK(std::fabs(sv - static_cast<double>(var)) < 5 * static_cast<double>(var) * std::sqrt(2.0 / n));
}

TEST_CASE("A final step to t = 0 returns the posterior mean of x0, without NaN") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const double mu = 1.2, sd = 0.4;
  const GaussianModel model(schedule, Eigen::VectorXd::Constant(1, mu), Eigen::VectorXd::Constant(1, sd));
  State x = test::standard_normal_rows(8, 1, 12);
  const State x_s = x;
  for (const char* name : {"ddim", "ddpm"}) {
    State y = x_s;
    PhiloxNoise noise(1);
    integrate(*test::make_solver({{"name", name}}), *schedule, model, {0.5, 0.0}, y, &noise);
    // E[x0 | x_s] = mu + alpha_s sd^2 (x_s - alpha_s mu) / v_s for Gaussian data.
    const double a = schedule->alpha(0.5), v = a * a * sd * sd + 1 - a * a;
    const State expected = mu + a * sd * sd * (x_s - a * mu) / v;
    CHECK(test::max_abs(y - expected) < 1e-12);
  }
}

TEST_CASE("Grids touching the ends of the schedules' ranges stay finite") {
  for (const json& sched : {json{{"name", "vp_linear"}}, json{{"name", "vp_cosine"}},
                            json{{"name", "vp_discrete"}}}) {
    std::shared_ptr<const Schedule> schedule = schedule_registry().create(sched, "schedule");
    const GmmModel model = test::test_gmm(schedule);
    const auto times = TimeUniformGrid({schedule->t_max(), 0.0, 25}).times(*schedule);
    for (const json& solver : {json{{"name", "ddim"}}, json{{"name", "ddim"}, {"eta", 1}},
                               json{{"name", "ddpm"}, {"variance", "beta"}}}) {
      State x = test::standard_normal_rows(8, 2, 13);
      PhiloxNoise noise(2);
      INFO(sched.dump() << " " << solver.dump());
      CHECK_NOTHROW(integrate(*test::make_solver(solver), *schedule, model, times, x, &noise));
      CHECK(x.allFinite());
    }
  }
}

TEST_CASE("clip_x0 clamps the data prediction") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GaussianModel model(schedule, Eigen::VectorXd::Constant(2, 5.0), Eigen::VectorXd::Constant(2, 0.1));
  State x = test::standard_normal_rows(8, 2, 14);
  integrate(*test::make_solver({{"name", "ddim"}, {"clip_x0", {-1, 1}}}), *schedule, model,
            TimeUniformGrid({1.0, 0.0, 10}).times(*schedule), x, nullptr);
  CHECK((x == 1.0).all());  // the last step returns the clamped x0
  CHECK_THROWS_AS(test::make_solver({{"name", "ddim"}, {"clip_x0", {1, -1}}}), ConfigError);
  CHECK_THROWS_AS(test::make_solver({{"name", "ddim"}, {"clip_x0", {1}}}), ConfigError);
  CHECK_THROWS_AS(test::make_solver({{"name", "ddim"}, {"eta", -0.1}}), ConfigError);
  CHECK_THROWS_AS(test::make_solver({{"name", "ddpm"}, {"variance", "large"}}), ConfigError);
}
