// Euler–Maruyama on Gaussian data, against exact answers:
//  - the output law of the discretized chain (linear, so exactly Gaussian with a
//    mean and variance computed here by a recursion, independent of the solver code);
//  - strong order 1 on one Brownian path, against the exact solution of the linear
//    reverse SDE driven by that path.
#include <catch2/catch.hpp>
#include <cmath>
#include <memory>

#include "diffsde/driver.hpp"
#include "diffsde/error.hpp"
#include "diffsde/grid.hpp"
#include "diffsde/noise.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/scores/analytic.hpp"
#include "diffsde/solvers/euler_maruyama.hpp"
#include "support/exact.hpp"

using namespace diffsde;

namespace {

// Per-axis data N(mu, s^2); at time t the marginal variance is v(t) = alpha^2 s^2 + sigma^2.
struct Axis {
  double mu, s;
};

// The exact mean and variance after the EM chain on `times`, starting from N(m0, p0):
// x1 = A x0 + B + sqrt(beta) dW, from the reverse SDE's drift -beta/2 x + beta/sigma eps
// with the exact eps(x) = sigma (x - alpha mu) / v, so mean and variance propagate exactly.
void em_chain_law(const Schedule& sch, const std::vector<double>& times, Axis axis, double m0,
                  double p0, long double& mean, long double& var) {
  mean = m0;
  var = p0;
  for (std::size_t i = 0; i + 1 < times.size(); ++i) {
    const long double h = times[i + 1] - times[i];
    const long double beta = sch.beta(times[i]);
    const long double alpha = sch.alpha(times[i]), sigma = sch.sigma(times[i]);
    const long double v = alpha * alpha * axis.s * axis.s + sigma * sigma;
    // drift(x) = -beta/2 x + beta/sigma * eps = -beta/2 x + beta (x - alpha mu)/v
    const long double A = 1 + h * (-beta / 2 + beta / v);
    const long double B = -h * beta * alpha * axis.mu / v;
    mean = A * mean + B;
    var = A * A * var + beta * std::fabs(static_cast<double>(h));
  }
}

}  // namespace

TEST_CASE("Euler-Maruyama output law equals the exact law of the discretized chain") {
  auto schedule = std::make_shared<VpLinearSchedule>(0.1, 20.0);
  const Axis ax0{1.5, 0.5}, ax1{-0.7, 1.3};
  Eigen::VectorXd mean(2), std(2);
  mean << ax0.mu, ax1.mu;
  std << ax0.s, ax1.s;
  const GaussianModel model(schedule, mean, std);
  const auto times = TimeUniformGrid({1.0, 1e-3, 40}).times(*schedule);

  const long n = 40000;
  State x = test::standard_normal_rows(n, 2, 11);
  PhiloxNoise noise(11);
  EulerMaruyamaSolver solver;
  const Summary summary = integrate(solver, *schedule, model, times, x, &noise);
  CHECK(summary.nfe == 40);
  CHECK(summary.draws == 40);

  for (int axis = 0; axis < 2; ++axis) {
    long double m, v;
    em_chain_law(*schedule, times, axis == 0 ? ax0 : ax1, 0.0, 1.0, m, v);
    const Eigen::ArrayXd col = x.col(axis);
    const double sample_mean = col.mean();
    const double sample_var = (col - sample_mean).square().sum() / (n - 1);
    // Five standard errors of the sample mean and variance of a Gaussian.
    CHECK(std::fabs(sample_mean - static_cast<double>(m)) < 5 * std::sqrt(static_cast<double>(v) / n));
    CHECK(std::fabs(sample_var - static_cast<double>(v)) < 5 * static_cast<double>(v) * std::sqrt(2.0 / n));
  }
  // And the two axes are independent.
  const double corr = ((x.col(0) - x.col(0).mean()) * (x.col(1) - x.col(1).mean())).mean() /
                      std::sqrt((x.col(0) - x.col(0).mean()).square().mean() *
                                (x.col(1) - x.col(1).mean()).square().mean());
  CHECK(std::fabs(corr) < 5 / std::sqrt(static_cast<double>(n)));
}

TEST_CASE("The EM chain's law approaches the true marginal at weak order 1") {
  // Pure arithmetic on the exact chain law: the error of the output variance against
  // the true marginal variance v(t_end) halves when the step halves.
  const VpLinearSchedule schedule;
  const Axis ax{0.3, 0.6};
  const double t_end = 1e-2;
  const double v_true = schedule.alpha_bar(t_end) * ax.s * ax.s + (1 - schedule.alpha_bar(t_end));
  // Start from the exact marginal at t = 1 so that only the discretization errs.
  const double m1 = schedule.alpha(1.0) * ax.mu;
  const double p1 = schedule.alpha_bar(1.0) * ax.s * ax.s + (1 - schedule.alpha_bar(1.0));
  std::vector<double> errors;
  for (int steps : {200, 400, 800, 1600}) {
    long double m, v;
    em_chain_law(schedule, TimeUniformGrid({1.0, t_end, steps}).times(schedule), ax, m1, p1, m, v);
    errors.push_back(std::fabs(static_cast<double>(v) - v_true) +
                     std::fabs(static_cast<double>(m) - schedule.alpha(t_end) * ax.mu));
  }
  for (std::size_t i = 0; i + 1 < errors.size(); ++i) {
    const double rate = std::log2(errors[i] / errors[i + 1]);
    CHECK(rate == Approx(1.0).margin(0.1));
  }
}

TEST_CASE("Euler-Maruyama has strong order 1 on one Brownian path") {
  auto schedule = std::make_shared<VpLinearSchedule>(0.1, 20.0);
  const double t_lo = 1e-3, t_hi = 1.0;
  const test::GaussianProblem problem{schedule, {0.8}, {0.5}};
  const GaussianModel model(schedule, Eigen::VectorXd::Constant(1, 0.8), Eigen::VectorXd::Constant(1, 0.5));
  const int depth = 10;  // 1024 leaves; the path is linear below them
  const State x_T = test::standard_normal_rows(200, 1, 5);
  const State x_exact = problem.reverse_sde_on_path(x_T, BrownianTreeNoise(3, t_lo, t_hi, depth), t_hi, t_lo, depth);

  std::vector<double> hs, errors;
  for (int steps : {16, 32, 64, 128}) {
    BrownianTreeNoise noise(3, t_lo, t_hi, depth);
    State x = x_T;
    EulerMaruyamaSolver solver;
    integrate(solver, *schedule, model, TimeUniformGrid({t_hi, t_lo, steps}).times(*schedule), x, &noise);
    hs.push_back((t_hi - t_lo) / steps);
    errors.push_back(test::rms_diff(x, x_exact));
  }
  const double slope = test::log_log_slope(hs, errors);
  INFO("strong errors " << errors[0] << " " << errors[1] << " " << errors[2] << " " << errors[3]);
  CHECK(slope == Approx(1.0).margin(0.15));
  CHECK(errors.back() < 0.05);
}

TEST_CASE("Euler-Maruyama refuses an increasing grid") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GaussianModel model(schedule, Eigen::VectorXd::Zero(1), Eigen::VectorXd::Ones(1));
  State x = State::Zero(2, 1);
  PhiloxNoise noise(0);
  EulerMaruyamaSolver solver;
  CHECK_THROWS_AS(integrate(solver, *schedule, model, {0.1, 0.5}, x, &noise), Error);
}
