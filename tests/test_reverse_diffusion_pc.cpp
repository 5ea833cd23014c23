// reverse_diffusion and pc on Gaussian data, against exact answers:
//  - reverse_diffusion's output law equals the exact law of its linear chain (mean and
//    variance by a recursion written here, independent of the solver code);
//  - reverse_diffusion has strong order 1 on one Brownian path, against the exact
//    solution of the linear reverse SDE driven by that path, and approaches
//    Euler-Maruyama on that path as the steps shrink;
//  - pc without a corrector is its predictor, bit for bit; one pc step equals a
//    hand-computed Langevin step plus predictor step from the same draws; the sigma and
//    sample_norms step-size rules do not depend on the batch; with the corrector the
//    output law approaches the data law as the steps grow;
//  - configuration errors name their JSON path.
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
#include "diffsde/solvers/euler_maruyama.hpp"
#include "diffsde/solvers/pc.hpp"
#include "diffsde/solvers/reverse_diffusion.hpp"
#include "support/exact.hpp"
#include "support/fixtures.hpp"

using namespace diffsde;
using nlohmann::json;

namespace {

// Per-axis data N(mu, s^2); at time t the marginal variance is v(t) = alpha^2 s^2 + sigma^2.
struct Axis {
  double mu, s;
};

// The exact mean and variance after the reverse-diffusion chain on `times`, from N(m0, p0):
// x1 = (2 - sqrt(1 - b)) x + b s(x) + sqrt(b) z with b = 1 - alpha_bar(t0)/alpha_bar(t1) and
// the exact score s(x) = -(x - alpha mu) / v, so mean and variance propagate exactly.
// With `corrector_steps` > 0, each step first makes that many Langevin steps of pc's
// sigma rule, x <- x + e s(x) + sqrt(2 e) z with e = 2 a (snr sigma(t0))^2, a = 1 - b:
// also linear in x, so the pc chain's law is exact too.
void rd_chain_law(const Schedule& sch, const std::vector<double>& times, Axis axis, double m0,
                  double p0, long double& mean, long double& var, int corrector_steps = 0,
                  double snr = 0.16) {
  mean = m0;
  var = p0;
  for (std::size_t i = 0; i + 1 < times.size(); ++i) {
    const long double ab0 = sch.alpha_bar(times[i]), ab1 = sch.alpha_bar(times[i + 1]);
    const long double b = 1 - ab0 / ab1;
    const long double alpha = std::sqrt(ab0);
    const long double v = ab0 * axis.s * axis.s + (1 - ab0);
    for (int k = 0; k < corrector_steps; ++k) {
      const long double e = 2 * (1 - b) * snr * snr * (1 - ab0);
      const long double A = 1 - e / v;
      const long double B = e * alpha * axis.mu / v;
      mean = A * mean + B;
      var = A * A * var + 2 * e;
    }
    const long double A = 2 - std::sqrt(1 - b) - b / v;
    const long double B = b * alpha * axis.mu / v;
    mean = A * mean + B;
    var = A * A * var + b;
  }
}

// x_T ~ N(0, I) from the init stream, rows first_sample.. of the global batch.
State initial_state(long n, int dim, std::uint64_t seed, long first_sample = 0) {
  State x(n, dim);
  for (long j = 0; j < n; ++j)
    philox_normals(seed, NoiseStream::init, static_cast<std::uint64_t>(first_sample + j), 0,
                   x.row(j).data(), dim);
  return x;
}


// One-axis Gaussian data and the exact solution of the linear reverse SDE on one
// Brownian-tree path (tests/support/exact.hpp).
struct OnePath {
  static constexpr double mu = 0.8, s = 0.5, t_lo = 1e-3, t_hi = 1.0;
  static constexpr int depth = 10;  // 1024 leaves; the path is linear below them
  static constexpr std::uint64_t path_seed = 3;
  std::shared_ptr<VpLinearSchedule> schedule = std::make_shared<VpLinearSchedule>(0.1, 20.0);
  GaussianModel model{schedule, Eigen::VectorXd::Constant(1, mu), Eigen::VectorXd::Constant(1, s)};
  long n = 200;
  State x_T = initial_state(n, 1, 5);
  Eigen::ArrayXd x_exact = test::GaussianProblem{schedule, {mu}, {s}}
                               .reverse_sde_on_path(x_T, BrownianTreeNoise(path_seed, t_lo, t_hi, depth), t_hi, t_lo, depth)
                               .col(0);

  // The solver's output on the path with `steps` uniform steps.
  State run(Solver& solver, int steps) const {
    BrownianTreeNoise noise(path_seed, t_lo, t_hi, depth);
    State x = x_T;
    integrate(solver, *schedule, model, TimeUniformGrid({t_hi, t_lo, steps}).times(*schedule), x, &noise);
    return x;
  }
};

// Sample mean and variance of column `axis`.
void moments(const State& x, int axis, double& mean, double& var) {
  const Eigen::ArrayXd col = x.col(axis);
  mean = col.mean();
  var = (col - mean).square().sum() / static_cast<double>(col.size() - 1);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// reverse_diffusion

TEST_CASE("reverse_diffusion output law equals the exact law of the discretized chain") {
  auto schedule = std::make_shared<VpLinearSchedule>(0.1, 20.0);
  const Axis ax0{1.5, 0.5}, ax1{-0.7, 1.3};
  Eigen::VectorXd mean(2), std(2);
  mean << ax0.mu, ax1.mu;
  std << ax0.s, ax1.s;
  const GaussianModel model(schedule, mean, std);
  const auto times = TimeUniformGrid({1.0, 1e-3, 40}).times(*schedule);

  const long n = 40000;
  State x = initial_state(n, 2, 11);
  PhiloxNoise noise(11);
  ReverseDiffusionSolver solver;
  const Summary summary = integrate(solver, *schedule, model, times, x, &noise);
  CHECK(summary.nfe == 40);
  CHECK(summary.draws == 40);

  for (int axis = 0; axis < 2; ++axis) {
    long double m, v;
    rd_chain_law(*schedule, times, axis == 0 ? ax0 : ax1, 0.0, 1.0, m, v);
    double sample_mean, sample_var;
    moments(x, axis, sample_mean, sample_var);
    INFO("axis " << axis << ": mean " << sample_mean << " vs " << static_cast<double>(m) << ", var "
                 << sample_var << " vs " << static_cast<double>(v));
    // Five standard errors of the sample mean and variance of a Gaussian.
    CHECK(std::fabs(sample_mean - static_cast<double>(m)) < 5 * std::sqrt(static_cast<double>(v) / n));
    CHECK(std::fabs(sample_var - static_cast<double>(v)) < 5 * static_cast<double>(v) * std::sqrt(2.0 / n));
  }
}

TEST_CASE("The reverse-diffusion chain's law approaches the true marginal at weak order 1") {
  // Pure arithmetic on the exact chain law, started from the exact marginal at t = 1.
  const VpLinearSchedule schedule;
  const Axis ax{0.3, 0.6};
  const double t_end = 1e-2;
  const double v_true = schedule.alpha_bar(t_end) * ax.s * ax.s + (1 - schedule.alpha_bar(t_end));
  const double m1 = schedule.alpha(1.0) * ax.mu;
  const double p1 = schedule.alpha_bar(1.0) * ax.s * ax.s + (1 - schedule.alpha_bar(1.0));
  std::vector<double> errors;
  for (int steps : {200, 400, 800, 1600}) {
    long double m, v;
    rd_chain_law(schedule, TimeUniformGrid({1.0, t_end, steps}).times(schedule), ax, m1, p1, m, v);
    errors.push_back(std::fabs(static_cast<double>(v) - v_true) +
                     std::fabs(static_cast<double>(m) - schedule.alpha(t_end) * ax.mu));
  }
  INFO("weak errors " << errors[0] << " " << errors[1] << " " << errors[2] << " " << errors[3]);
  for (std::size_t i = 0; i + 1 < errors.size(); ++i)
    CHECK(std::log2(errors[i] / errors[i + 1]) == Approx(1.0).margin(0.1));
}

TEST_CASE("reverse_diffusion coefficients are free of cancellation") {
  const VpLinearSchedule schedule;
  // A tiny step near t = 0, where b ~ beta h and 1 - sqrt(1 - b) ~ b / 2 would lose digits.
  const double t0 = 2e-3, t1 = t0 - 1e-9;
  const ReverseDiffusionCoefficients c =
      reverse_diffusion_coefficients(schedule.at(t0), schedule.at(t1));
  // Exact: log alpha_bar(t0) - log alpha_bar(t1) = -int_{t1}^{t0} beta
  //                                             = -(beta0 h + (beta1 - beta0)(t0^2 - t1^2)/2).
  const long double h = 1e-9L;
  const long double dl = -(0.1L * h + 19.9L * (static_cast<long double>(t0) * t0 -
                                               static_cast<long double>(t1) * t1) / 2);
  const long double b = -std::expm1(dl);
  CHECK(c.b == Approx(static_cast<double>(b)).epsilon(1e-6));
  // c.x itself is 1 + O(1e-9): only its rounding (~1e-16) may differ.
  CHECK(c.x - 1 == Approx(static_cast<double>(b / (1 + std::sqrt(1 - b)))).epsilon(0).margin(3e-16));
  CHECK(c.noise == Approx(static_cast<double>(std::sqrt(b / h))).epsilon(1e-6));
}

TEST_CASE("reverse_diffusion has strong order 1 on one Brownian path") {
  const OnePath path;
  std::vector<double> hs, errors;
  for (int steps : {16, 32, 64, 128}) {
    ReverseDiffusionSolver solver;
    const State x = path.run(solver, steps);
    hs.push_back((OnePath::t_hi - OnePath::t_lo) / steps);
    errors.push_back(std::sqrt((x.col(0) - path.x_exact).square().mean()));
  }
  const double slope = test::log_log_slope(hs, errors);
  INFO("strong errors " << errors[0] << " " << errors[1] << " " << errors[2] << " " << errors[3]
                        << ", slope " << slope);
  CHECK(slope == Approx(1.0).margin(0.15));
  CHECK(errors.back() < 0.05);
}

TEST_CASE("reverse_diffusion and Euler-Maruyama approach each other on one path") {
  const OnePath path;
  std::vector<double> hs, diffs;
  for (int steps : {16, 32, 64, 128, 256}) {
    ReverseDiffusionSolver rd;
    EulerMaruyamaSolver em;
    const State x_rd = path.run(rd, steps);
    const State x_em = path.run(em, steps);
    hs.push_back((OnePath::t_hi - OnePath::t_lo) / steps);
    diffs.push_back(std::sqrt((x_rd - x_em).square().mean()));
  }
  const double slope = test::log_log_slope(hs, diffs);
  INFO("RMS differences " << diffs[0] << " " << diffs[1] << " " << diffs[2] << " " << diffs[3] << " "
                          << diffs[4] << ", slope " << slope);
  CHECK(slope == Approx(1.0).margin(0.2));
  for (std::size_t i = 0; i + 1 < diffs.size(); ++i) CHECK(diffs[i + 1] < diffs[i]);
}

TEST_CASE("reverse_diffusion refuses an increasing grid and is registered") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GaussianModel model(schedule, Eigen::VectorXd::Zero(1), Eigen::VectorXd::Ones(1));
  State x = State::Zero(2, 1);
  PhiloxNoise noise(0);
  ReverseDiffusionSolver solver;
  CHECK_THROWS_AS(integrate(solver, *schedule, model, {0.1, 0.5}, x, &noise), Error);
  const SolverTraits traits = test::make_solver("reverse_diffusion")->traits();
  CHECK(traits.name == "reverse_diffusion");
  CHECK(traits.stochastic);
  CHECK(traits.order == 1);
  CHECK(traits.strong_order == 1);
  CHECK(traits.evals_per_step == 1);
}

// ---------------------------------------------------------------------------------------
// pc

TEST_CASE("pc without a corrector is its predictor, bit for bit") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  Eigen::VectorXd mean(2), std(2);
  mean << 0.4, -1.0;
  std << 0.7, 0.2;
  const GaussianModel model(schedule, mean, std);
  const auto times = TimeUniformGrid({1.0, 1e-3, 25}).times(*schedule);
  std::vector<std::string> predictors = {"euler_maruyama", "reverse_diffusion"};
  if (solver_registry().find("ddpm") != nullptr) predictors.push_back("ddpm");
  for (const auto& name : predictors) {
    INFO("predictor " << name);
    auto pc = test::make_solver({{"name", "pc"}, {"predictor", name}, {"corrector", "none"}});
    auto alone = test::make_solver(name);
    State x_pc = initial_state(300, 2, 21), x_alone = x_pc;
    PhiloxNoise noise_pc(21), noise_alone(21);
    const Summary s_pc = integrate(*pc, *schedule, model, times, x_pc, &noise_pc);
    const Summary s_alone = integrate(*alone, *schedule, model, times, x_alone, &noise_alone);
    CHECK((x_pc == x_alone).all());
    CHECK(s_pc.nfe == s_alone.nfe);
    CHECK(s_pc.draws == s_alone.draws);
    const SolverTraits tp = pc->traits(), ta = alone->traits();
    CHECK(tp.name == "pc");
    CHECK(tp.order == ta.order);
    CHECK(tp.evals_per_step == ta.evals_per_step);
    CHECK(tp.noise_use == ta.noise_use);
    CHECK((std::isnan(tp.strong_order) ? std::isnan(ta.strong_order) : tp.strong_order == ta.strong_order));
  }
}

TEST_CASE("pc counts NFE and draws: n_steps corrector draws, then the predictor's") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GaussianModel model(schedule, Eigen::VectorXd::Constant(3, 0.5), Eigen::VectorXd::Constant(3, 0.3));
  const auto times = TimeUniformGrid({1.0, 1e-3, 12}).times(*schedule);
  std::vector<std::string> predictors = {"euler_maruyama", "reverse_diffusion"};
  if (solver_registry().find("ddpm") != nullptr) predictors.push_back("ddpm");
  for (const auto& name : predictors)
    for (int n_steps : {1, 3}) {
      INFO("predictor " << name << ", n_steps " << n_steps);
      auto pc = test::make_solver({{"name", "pc"}, {"predictor", name}, {"n_steps", n_steps}});
      const SolverTraits traits = pc->traits();
      CHECK(traits.stochastic);
      CHECK(traits.order == 1);
      CHECK(std::isnan(traits.strong_order));
      CHECK(traits.evals_per_step == 1 + n_steps);
      State x = initial_state(50, 3, 4);
      PhiloxNoise noise(4);
      const Summary summary = integrate(*pc, *schedule, model, times, x, &noise);
      CHECK(summary.nfe == 12L * (1 + n_steps));
      CHECK(summary.draws == 12u * static_cast<unsigned>(1 + n_steps));
    }
}

TEST_CASE("One pc step is n_steps Langevin steps at t0, then the predictor step") {
  // Recomputed by hand from the same Philox draws: draws 0..n_steps-1 go to the
  // corrector, draw n_steps to the predictor.
  auto schedule = std::make_shared<VpLinearSchedule>();
  Eigen::VectorXd mean(3), std(3);
  mean << 0.5, -0.2, 1.0;
  std << 0.4, 0.9, 0.25;
  const GaussianModel model(schedule, mean, std);
  const double t0 = 0.6, t1 = 0.55, snr = 0.2;
  const int n_steps = 2;
  const long n = 64;
  const State x_start = initial_state(n, 3, 8);
  const double ab0 = schedule->alpha_bar(t0), ab1 = schedule->alpha_bar(t1);
  const double a = ab0 / ab1, b = 1 - a;
  const double sigma0 = std::sqrt(1 - ab0);

  for (const char* rule : {"sigma", "sample_norms", "batch_norms"}) {
    INFO("step_size " << rule);
    // By hand.
    State x = x_start, g(n, 3), z(n, 3);
    for (int k = 0; k < n_steps; ++k) {
      model.score(x, t0, g);
      for (long j = 0; j < n; ++j) philox_normals(8, NoiseStream::solver, j, k, z.row(j).data(), 3);
      double gbar = 0, zbar = 0;
      for (long j = 0; j < n; ++j) {
        gbar += g.row(j).matrix().norm() / n;
        zbar += z.row(j).matrix().norm() / n;
      }
      for (long j = 0; j < n; ++j) {
        double step = 2 * a * snr * snr * sigma0 * sigma0;
        if (std::string(rule) == "sample_norms")
          step = 2 * a * std::pow(snr * z.row(j).matrix().norm() / g.row(j).matrix().norm(), 2);
        if (std::string(rule) == "batch_norms") step = 2 * a * std::pow(snr * zbar / gbar, 2);
        x.row(j) += step * g.row(j) + std::sqrt(2 * step) * z.row(j);
      }
    }
    model.score(x, t0, g);
    for (long j = 0; j < n; ++j) philox_normals(8, NoiseStream::solver, j, n_steps, z.row(j).data(), 3);
    x = (2 - std::sqrt(1 - b)) * x + b * g + std::sqrt(b) * z;

    auto pc = test::make_solver({{"name", "pc"}, {"snr", snr}, {"n_steps", n_steps}, {"step_size", rule}});
    State y = x_start;
    PhiloxNoise noise(8);
    const Summary summary = integrate(*pc, *schedule, model, {t0, t1}, y, &noise);
    CHECK(summary.draws == 3);
    CHECK(summary.nfe == 3);
    CHECK((y - x).abs().maxCoeff() < 1e-12);
  }
}

TEST_CASE("pc's output law (sigma rule) equals the exact law of its linear chain") {
  // The sigma rule's step size does not depend on x, so on Gaussian data the whole pc
  // chain (Langevin steps, then reverse_diffusion) is linear: its law is exact.
  auto schedule = std::make_shared<VpLinearSchedule>(0.1, 20.0);
  const Axis ax0{1.5, 0.5}, ax1{-0.7, 1.3};
  Eigen::VectorXd mean(2), std(2);
  mean << ax0.mu, ax1.mu;
  std << ax0.s, ax1.s;
  const GaussianModel model(schedule, mean, std);
  const auto times = TimeUniformGrid({1.0, 1e-3, 30}).times(*schedule);
  const double snr = 0.5;  // larger than the default, so that the corrector shows
  const long n = 40000;
  State x = initial_state(n, 2, 12);
  PhiloxNoise noise(12);
  auto pc = test::make_solver({{"name", "pc"}, {"snr", snr}, {"n_steps", 2}});
  const Summary summary = integrate(*pc, *schedule, model, times, x, &noise);
  CHECK(summary.nfe == 90);
  CHECK(summary.draws == 90);
  for (int axis = 0; axis < 2; ++axis) {
    long double m, v, m_none, v_none;
    rd_chain_law(*schedule, times, axis == 0 ? ax0 : ax1, 0.0, 1.0, m, v, 2, snr);
    rd_chain_law(*schedule, times, axis == 0 ? ax0 : ax1, 0.0, 1.0, m_none, v_none);
    double sample_mean, sample_var;
    moments(x, axis, sample_mean, sample_var);
    INFO("axis " << axis << ": mean " << sample_mean << " vs " << static_cast<double>(m) << ", var "
                 << sample_var << " vs " << static_cast<double>(v) << " (without corrector "
                 << static_cast<double>(m_none) << ", " << static_cast<double>(v_none) << ")");
    CHECK(std::fabs(sample_mean - static_cast<double>(m)) < 5 * std::sqrt(static_cast<double>(v) / n));
    CHECK(std::fabs(sample_var - static_cast<double>(v)) < 5 * static_cast<double>(v) * std::sqrt(2.0 / n));
    // The test can tell the corrector from its absence (on the narrow axis, where the
    // corrector acts most): the two exact laws differ by many standard errors.
    if (axis == 0) {
      const double se_mean = std::sqrt(static_cast<double>(v) / n);
      const double se_var = static_cast<double>(v) * std::sqrt(2.0 / n);
      CHECK(std::fabs(static_cast<double>(m - m_none)) / se_mean +
                std::fabs(static_cast<double>(v - v_none)) / se_var >
            10);
    }
  }
}

TEST_CASE("The pc chain's law (sigma rule) converges to the true marginal") {
  // Pure arithmetic on the exact chain law, from the exact marginal at t = 1. The
  // corrector's step does not shrink with the grid step, so the rate is not the
  // predictor's 1 at every step count (about 1.2 up to 200 steps, then about 0.6);
  // assert only that the error keeps falling and becomes small.
  const VpLinearSchedule schedule;
  const Axis ax{0.3, 0.6};
  const double t_end = 1e-3;
  const double v_true = schedule.alpha_bar(t_end) * ax.s * ax.s + (1 - schedule.alpha_bar(t_end));
  const double m1 = schedule.alpha(1.0) * ax.mu;
  const double p1 = schedule.alpha_bar(1.0) * ax.s * ax.s + (1 - schedule.alpha_bar(1.0));
  std::vector<double> errors;
  for (int steps : {50, 200, 800, 3200}) {
    long double m, v;
    rd_chain_law(schedule, TimeUniformGrid({1.0, t_end, steps}).times(schedule), ax, m1, p1, m, v, 1);
    errors.push_back(std::fabs(static_cast<double>(v) / v_true - 1) +
                     std::fabs(static_cast<double>(m) - schedule.alpha(t_end) * ax.mu) / std::sqrt(v_true));
  }
  INFO("weak errors " << errors[0] << " " << errors[1] << " " << errors[2] << " " << errors[3]);
  for (std::size_t i = 0; i + 1 < errors.size(); ++i) CHECK(errors[i + 1] < 0.75 * errors[i]);
  CHECK(errors.back() < 5e-3);
}

namespace {
// eps = 0 everywhere: a zero score, where sample_norms' step size would divide by zero.
class ZeroModel final : public Model {
 public:
  std::string name() const override { return "zero"; }
  int dim() const override { return 2; }
  void eps(const ConstStateRef& /*x*/, double /*t*/, StateRef out) const override { out.setZero(); }
};
}  // namespace

TEST_CASE("pc's sample_norms and batch_norms leave a sample with zero score unchanged") {
  const VpLinearSchedule schedule;
  const ZeroModel model;
  const double t0 = 0.5, t1 = 0.45;
  const State x_start = initial_state(5, 2, 2);
  // Only the predictor acts: x1 = (2 - sqrt(1 - b)) x + sqrt(b) z, z = draw 1.
  const double b = 1 - schedule.alpha_bar(t0) / schedule.alpha_bar(t1);
  State z(5, 2);
  for (long j = 0; j < 5; ++j) philox_normals(2, NoiseStream::solver, j, 1, z.row(j).data(), 2);
  const State expected = (2 - std::sqrt(1 - b)) * x_start + std::sqrt(b) * z;
  for (const char* rule : {"sample_norms", "batch_norms"}) {
    INFO("step_size " << rule);
    auto pc = test::make_solver({{"name", "pc"}, {"step_size", rule}});
    State x = x_start;
    PhiloxNoise noise(2);
    integrate(*pc, schedule, model, {t0, t1}, x, &noise);
    CHECK((x - expected).abs().maxCoeff() < 1e-12);
  }
}

TEST_CASE("pc's sigma and sample_norms step sizes do not depend on the batch") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  Eigen::VectorXd mean(4), std(4);
  mean << 0.5, -0.2, 1.0, 0.0;
  std << 0.4, 0.9, 0.25, 1.5;
  const GaussianModel model(schedule, mean, std);
  const auto times = TimeUniformGrid({1.0, 1e-3, 20}).times(*schedule);
  const long n = 40, first = 13, m = 7;
  for (const char* rule : {"sigma", "sample_norms", "batch_norms"}) {
    INFO("step_size " << rule);
    auto pc = test::make_solver({{"name", "pc"}, {"step_size", rule}});
    State whole = initial_state(n, 4, 6);
    PhiloxNoise noise(6);
    integrate(*pc, *schedule, model, times, whole, &noise);
    // Rows first..first+m-1 run on their own, with the noise of their global indices.
    State part = initial_state(m, 4, 6, first);
    PhiloxNoise part_noise(6, first);
    integrate(*pc, *schedule, model, times, part, &part_noise);
    const double diff = (whole.middleRows(first, m) - part).abs().maxCoeff();
    if (std::string(rule) == "batch_norms")
      CHECK(diff > 1e-6);  // score-SDE's rule: a sample depends on its batch (documented)
    else
      CHECK(diff < 1e-12);
  }
}

TEST_CASE("pc with the Langevin corrector approaches the data law as steps grow") {
  // 2-D Gaussian data (the dimension of the built-in mixture). Not a linear chain, so
  // compare the sample moments with the exact marginal at t_end: within five standard
  // errors plus a discretization allowance.
  auto schedule = std::make_shared<VpLinearSchedule>();
  const Axis ax0{1.0, 0.5}, ax1{-0.5, 0.8};
  Eigen::VectorXd mean(2), std(2);
  mean << ax0.mu, ax1.mu;
  std << ax0.s, ax1.s;
  const GaussianModel model(schedule, mean, std);
  const double t_end = 1e-3;
  const long n = 10000;
  // Relative variance error of both axes together, and the largest mean error in standard
  // deviations, for a given solver and number of steps.
  auto errors = [&](const json& config, int steps, double& var_err, double& mean_err) {
    auto solver = test::make_solver(config);
    State x = initial_state(n, 2, 31);
    PhiloxNoise noise(31);
    integrate(*solver, *schedule, model, TimeUniformGrid({1.0, t_end, steps}).times(*schedule), x, &noise);
    var_err = 0;
    mean_err = 0;
    for (int axis = 0; axis < 2; ++axis) {
      const Axis ax = axis == 0 ? ax0 : ax1;
      const double v = schedule->alpha_bar(t_end) * ax.s * ax.s - std::expm1(schedule->log_alpha_bar(t_end));
      double sample_mean, sample_var;
      moments(x, axis, sample_mean, sample_var);
      var_err += std::fabs(sample_var / v - 1) / 2;
      mean_err = std::max(mean_err, std::fabs(sample_mean - schedule->alpha(t_end) * ax.mu) / std::sqrt(v));
    }
  };
  const double se_var = std::sqrt(2.0 / n), se_mean = std::sqrt(1.0 / n);

  double var_err, mean_err;
  errors({{"name", "pc"}}, 400, var_err, mean_err);
  INFO("pc 400 steps: relative variance error " << var_err << ", mean error " << mean_err << " sd");
  CHECK(var_err < 5 * se_var + 0.02);
  CHECK(mean_err < 5 * se_mean + 0.02);

  // At few steps the corrector does not hurt: compared with the predictor alone.
  double var_none, mean_none;
  errors({{"name", "pc"}, {"corrector", "none"}}, 20, var_none, mean_none);
  errors({{"name", "pc"}}, 20, var_err, mean_err);
  INFO("20 steps: variance error " << var_err << " with corrector, " << var_none << " without");
  CHECK(var_err < var_none + 5 * se_var);
}

TEST_CASE("pc's sample_norms rule biases the law in low dimension, as documented") {
  // The documented caveat: a Langevin step size that depends on x (through ||g_i||) and
  // on the draw's own norm inflates the variance, by about (1 + 2/d)^2 on isotropic
  // Gaussian data. At d = 8 that is a factor of about 1.5.
  auto schedule = std::make_shared<VpLinearSchedule>();
  const int d = 8;
  const GaussianModel model(schedule, Eigen::VectorXd::Constant(d, 0.3), Eigen::VectorXd::Constant(d, 0.5));
  const double t_end = 1e-3;
  const long n = 2000;
  auto pc = test::make_solver({{"name", "pc"}, {"step_size", "sample_norms"}});
  State x = initial_state(n, d, 17);
  PhiloxNoise noise(17);
  integrate(*pc, *schedule, model, TimeUniformGrid({1.0, t_end, 200}).times(*schedule), x, &noise);
  const double v = schedule->alpha_bar(t_end) * 0.25 - std::expm1(schedule->log_alpha_bar(t_end));
  double ratio = 0;
  for (int axis = 0; axis < d; ++axis) {
    double sample_mean, sample_var;
    moments(x, axis, sample_mean, sample_var);
    ratio += sample_var / v / d;
  }
  INFO("variance ratio " << ratio);
  CHECK(ratio > 1.3);
  CHECK(ratio < 1.8);
}

TEST_CASE("pc configuration errors name their JSON path") {
  CHECK(test::config_error_path([] { test::make_solver({{"name", "pc"}, {"predictor", "heun"}}); }) == "solver.predictor");
  CHECK(test::config_error_path([] { test::make_solver({{"name", "pc"}, {"predictor", "pc"}}); }) == "solver.predictor");
  CHECK(test::config_error_path([] { test::make_solver({{"name", "pc"}, {"corrector", "ald"}}); }) == "solver.corrector");
  CHECK(test::config_error_path([] { test::make_solver({{"name", "pc"}, {"snr", 0.0}}); }) == "solver.snr");
  CHECK(test::config_error_path([] { test::make_solver({{"name", "pc"}, {"snr", -0.1}}); }) == "solver.snr");
  CHECK(test::config_error_path([] { test::make_solver({{"name", "pc"}, {"n_steps", 0}}); }) == "solver.n_steps");
  CHECK(test::config_error_path([] { test::make_solver({{"name", "pc"}, {"n_steps", 1.5}}); }) == "solver.n_steps");
  CHECK(test::config_error_path([] { test::make_solver({{"name", "pc"}, {"step_size", "adaptive"}}); }) == "solver.step_size");
  CHECK(test::config_error_path([] { test::make_solver({{"name", "pc"}, {"snr", 0.1}, {"n_steps", 2}}); }) == "(none)");
  CHECK_THROWS_AS(PcSolver(test::make_solver("euler_maruyama"), PcSolver::Options{PcSolver::Corrector::langevin,
                                                                            PcSolver::StepSize::sigma, 0.0, 1}),
                  Error);
  CHECK_THROWS_AS(PcSolver(nullptr, PcSolver::Options{}), Error);
}

TEST_CASE("pc refuses an increasing grid") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GaussianModel model(schedule, Eigen::VectorXd::Zero(1), Eigen::VectorXd::Ones(1));
  State x = State::Zero(2, 1);
  PhiloxNoise noise(0);
  auto pc = test::make_solver("pc");
  CHECK_THROWS_AS(integrate(*pc, *schedule, model, {0.1, 0.5}, x, &noise), Error);
}

TEST_CASE("pc's registry variants build and run") {
  const auto* entry = solver_registry().find("pc");
  REQUIRE(entry != nullptr);
  REQUIRE_FALSE(entry->variants.empty());
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GaussianModel model(schedule, Eigen::VectorXd::Zero(2), Eigen::VectorXd::Ones(2));
  for (json variant : entry->variants) {
    INFO("variant " << variant.dump());
    if (variant.value("predictor", "") == "ddpm" && solver_registry().find("ddpm") == nullptr) continue;
    variant["name"] = "pc";
    auto pc = test::make_solver(variant);
    State x = initial_state(10, 2, 1);
    PhiloxNoise noise(1);
    const auto times = TimeUniformGrid({1.0, 1e-3, 5}).times(*schedule);
    const Summary s = integrate(*pc, *schedule, model, times, x, &noise);
    CHECK(s.nfe == 5L * pc->traits().evals_per_step);
  }
}
