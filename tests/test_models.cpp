// Analytic models against exact answers: eps = -sigma grad log p_t (finite
// differences of the exact log density), closed forms, normalisation, far tails,
// data moments by hand, row independence, and the registry entries.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>
#include <vector>

#include "diffsde/error.hpp"
#include "diffsde/model.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/scores/analytic.hpp"

using diffsde::BatchVector;
using diffsde::GaussianModel;
using diffsde::GmmModel;
using diffsde::State;
using nlohmann::json;

namespace {

std::shared_ptr<const diffsde::Schedule> vp() { return std::make_shared<diffsde::VpLinearSchedule>(); }

const double kTimes[] = {1e-3, 0.1, 0.5, 1.0};

// A random mixture in `dim` dimensions with K components, well inside the validity
// range (weights not normalised).
GmmModel random_gmm(int dim, int K, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  Eigen::VectorXd w(K);
  Eigen::MatrixXd means(K, dim), stds(K, dim);
  for (int k = 0; k < K; ++k) {
    w(k) = 0.5 + u(rng);
    for (int j = 0; j < dim; ++j) {
      means(k, j) = -3.0 + 6.0 * u(rng);
      stds(k, j) = 0.2 + 0.8 * u(rng);
    }
  }
  return GmmModel(vp(), w, means, stds);
}

GaussianModel random_gaussian(int dim, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  Eigen::VectorXd mean(dim), std(dim);
  for (int j = 0; j < dim; ++j) {
    mean(j) = -2.0 + 4.0 * u(rng);
    std(j) = 0.2 + 1.5 * u(rng);
  }
  return GaussianModel(vp(), mean, std);
}

// Points spread around the data scale (x0 in [-4, 4]) noised to time t.
State points(int n, int dim, double t, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-4.0, 4.0);
  std::normal_distribution<double> normal(0.0, 1.0);
  const auto s = vp();
  const double alpha = s->alpha(t), sigma = s->sigma(t);
  State x(n, dim);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < dim; ++j) x(i, j) = alpha * u(rng) + sigma * normal(rng);
  return x;
}

double log_density_at(const diffsde::AnalyticModel& m, const Eigen::RowVectorXd& x, double t) {
  State row = x.array();
  BatchVector lp(1);
  m.log_density(row, t, lp);
  return lp(0);
}

// Central finite difference of the exact log density (4th order, Richardson).
Eigen::RowVectorXd fd_gradient(const diffsde::AnalyticModel& m, const Eigen::RowVectorXd& x,
                               double t, double h) {
  Eigen::RowVectorXd g(x.size());
  for (Eigen::Index j = 0; j < x.size(); ++j) {
    auto at = [&](double dx) {
      Eigen::RowVectorXd y = x;
      y(j) += dx;
      return log_density_at(m, y, t);
    };
    g(j) = (8.0 * (at(h) - at(-h)) - (at(2 * h) - at(-2 * h))) / (12.0 * h);
  }
  return g;
}

// eps and score of every row against -sigma (and 1) times the finite-difference
// gradient of log p_t.
void check_against_fd(const diffsde::AnalyticModel& m, const State& x, double t) {
  const double sigma = m.schedule().sigma(t);
  State eps(x.rows(), x.cols()), score(x.rows(), x.cols());
  m.eps(x, t, eps);
  m.score(x, t, score);
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    const Eigen::RowVectorXd xi = x.row(i).matrix();
    const Eigen::RowVectorXd g = fd_gradient(m, xi, t, 1e-4);
    for (Eigen::Index j = 0; j < x.cols(); ++j) {
      INFO("t = " << t << ", row " << i << ", axis " << j << ", x = " << xi);
      const double tol = 1e-7 * (1.0 + std::abs(g(j)));
      CHECK(std::abs(score(i, j) - g(j)) <= tol);
      CHECK(std::abs(eps(i, j) + sigma * g(j)) <= sigma * tol);
    }
  }
}

double max_abs_diff(const State& a, const State& b) { return (a - b).abs().maxCoeff(); }

// 1-D log density on a grid, evaluated in one batch.
BatchVector log_density_grid(const diffsde::AnalyticModel& m, double t, double a, double b, int n) {
  State x(n + 1, 1);
  for (int i = 0; i <= n; ++i) x(i, 0) = a + (b - a) * i / n;
  BatchVector lp(n + 1);
  m.log_density(x, t, lp);
  return lp;
}

}  // namespace

TEST_CASE("Gaussian eps is -sigma grad log p_t", "[models][gaussian]") {
  for (int dim = 1; dim <= 3; ++dim) {
    const GaussianModel m = random_gaussian(dim, 10 + dim);
    for (double t : kTimes) check_against_fd(m, points(12, dim, t, 20 + dim), t);
  }
}

TEST_CASE("Gaussian log density, eps and score equal the closed form", "[models][gaussian]") {
  Eigen::VectorXd mean(3), std(3);
  mean << 1.0, -0.5, 2.0;
  std << 0.5, 2.0, 0.1;
  const GaussianModel m(vp(), mean, std);
  CHECK(m.dim() == 3);
  CHECK(m.name() == "gaussian");
  const State x = points(9, 3, 0.3, 5);
  for (double t : {0.0, 1e-3, 0.3, 1.0}) {
    const double alpha = m.schedule().alpha(t), sigma = m.schedule().sigma(t);
    BatchVector lp(x.rows());
    m.log_density(x, t, lp);
    State eps(x.rows(), 3), score(x.rows(), 3);
    m.eps(x, t, eps);
    m.score(x, t, score);
    for (Eigen::Index i = 0; i < x.rows(); ++i) {
      double expected = 0.0;
      for (int j = 0; j < 3; ++j) {
        const double var = alpha * alpha * std(j) * std(j) + sigma * sigma;
        const double z = x(i, j) - alpha * mean(j);
        expected += -0.5 * std::log(2.0 * M_PI * var) - 0.5 * z * z / var;
        CHECK(eps(i, j) == Approx(sigma * z / var).epsilon(1e-12).margin(1e-300));
        CHECK(score(i, j) == Approx(-z / var).epsilon(1e-12));
      }
      CHECK(lp(i) == Approx(expected).epsilon(1e-12));
    }
  }
  // At t = 0, sigma = 0 so eps = 0, while the score is that of the data.
  State eps(1, 3), score(1, 3);
  const State x0 = mean.transpose().array() + 1.0;
  m.eps(x0, 0.0, eps);
  m.score(x0, 0.0, score);
  CHECK(eps.abs().maxCoeff() == 0.0);
  for (int j = 0; j < 3; ++j) CHECK(score(0, j) == Approx(-1.0 / (std(j) * std(j))));
  // Data moments.
  CHECK(m.data_mean().isApprox(mean));
  CHECK(m.data_covariance().isApprox(Eigen::MatrixXd(std.array().square().matrix().asDiagonal())));
}

TEST_CASE("GMM eps is -sigma grad log p_t", "[models][gmm]") {
  for (int dim = 1; dim <= 3; ++dim) {
    for (int K : {1, 2, 3, 5}) {
      INFO("dim " << dim << ", K " << K);
      const GmmModel m = random_gmm(dim, K, 100 * dim + K);
      for (double t : kTimes) check_against_fd(m, points(10, dim, t, 7 * dim + K), t);
    }
  }
  const GmmModel builtin = GmmModel::builtin_2d(vp());
  for (double t : kTimes) check_against_fd(builtin, points(20, 2, t, 99), t);
}

TEST_CASE("GMM with one component equals the Gaussian model", "[models][gmm]") {
  for (int dim = 1; dim <= 3; ++dim) {
    const GaussianModel g = random_gaussian(dim, 40 + dim);
    Eigen::VectorXd w(1);
    w << 2.5;  // normalised to 1
    const GmmModel m(vp(), w, g.mean().transpose(), g.std().transpose());
    const State x = points(50, dim, 0.5, 3);
    for (double t : {0.0, 1e-3, 0.1, 0.5, 1.0}) {
      INFO("dim " << dim << ", t " << t);
      State a(x.rows(), dim), b(x.rows(), dim);
      g.eps(x, t, a);
      m.eps(x, t, b);
      CHECK(max_abs_diff(a, b) <= 1e-12 * (1.0 + a.abs().maxCoeff()));
      g.score(x, t, a);
      m.score(x, t, b);
      CHECK(max_abs_diff(a, b) <= 1e-12 * (1.0 + a.abs().maxCoeff()));
      BatchVector la(x.rows()), lb(x.rows());
      g.log_density(x, t, la);
      m.log_density(x, t, lb);
      CHECK((la - lb).abs().maxCoeff() <= 1e-12 * (1.0 + la.abs().maxCoeff()));
    }
    CHECK(m.data_mean().isApprox(g.data_mean()));
    CHECK(m.data_covariance().isApprox(g.data_covariance()));
  }
}

TEST_CASE("1-D GMM density integrates to one, with the noised moments", "[models][gmm]") {
  Eigen::VectorXd w(3);
  w << 1.0, 2.0, 1.5;
  Eigen::MatrixXd means(3, 1), stds(3, 1);
  means << -2.0, 0.5, 3.0;
  stds << 0.3, 0.8, 0.15;
  const GmmModel m(vp(), w, means, stds);
  const double mean0 = m.data_mean()(0), var0 = m.data_covariance()(0, 0);
  for (double t : {0.0, 0.5}) {
    INFO("t = " << t);
    const double a = -30.0, b = 30.0;
    const int n = 200000;
    const BatchVector lp = log_density_grid(m, t, a, b, n);
    const double h = (b - a) / n;
    auto integrate = [&](auto weight) {
      double s = 0.5 * (weight(a) * std::exp(lp(0)) + weight(b) * std::exp(lp(n)));
      for (int i = 1; i < n; ++i) s += weight(a + i * h) * std::exp(lp(i));
      return s * h;
    };
    CHECK(integrate([](double) { return 1.0; }) == Approx(1.0).epsilon(1e-9));
    // The forward SDE maps mean -> alpha mean, var -> alpha^2 var + sigma^2.
    const double alpha = m.schedule().alpha(t), sigma = m.schedule().sigma(t);
    const double mean_t = integrate([](double x) { return x; });
    const double var_t = integrate([&](double x) { return (x - mean_t) * (x - mean_t); });
    CHECK(mean_t == Approx(alpha * mean0).epsilon(1e-9));
    CHECK(var_t == Approx(alpha * alpha * var0 + sigma * sigma).epsilon(1e-9));
  }
}

// eps of a mixture by hand, in long double: l_k, log-sum-exp, responsibilities.
// Also returns the dominant component and the gap of its l_k to the runner-up.
struct HandEps {
  std::vector<double> eps;
  double log_density = 0;
  int dominant = -1;
  long double gap = 0;
};

HandEps hand_gmm_eps(const GmmModel& g, const State& x, Eigen::Index i, double t) {
  const long double alpha = g.schedule().alpha(t), sigma = g.schedule().sigma(t);
  const int K = static_cast<int>(g.weights().size()), d = g.dim();
  std::vector<long double> l(K);
  for (int k = 0; k < K; ++k) {
    l[k] = std::log(static_cast<long double>(g.weights()(k)));
    for (int j = 0; j < d; ++j) {
      const long double s = g.stds()(k, j);
      const long double var = alpha * alpha * s * s + sigma * sigma;
      const long double z = x(i, j) - alpha * g.means()(k, j);
      l[k] += -0.5L * std::log(2.0L * static_cast<long double>(M_PI) * var) - 0.5L * z * z / var;
    }
  }
  HandEps out;
  out.dominant = 0;
  for (int k = 1; k < K; ++k)
    if (l[k] > l[out.dominant]) out.dominant = k;
  out.gap = INFINITY;
  long double total = 0;
  for (int k = 0; k < K; ++k) {
    if (k != out.dominant) out.gap = std::min(out.gap, l[out.dominant] - l[k]);
    total += std::exp(l[k] - l[out.dominant]);
  }
  for (int j = 0; j < d; ++j) {
    long double e = 0;
    for (int k = 0; k < K; ++k) {
      const long double s = g.stds()(k, j);
      const long double var = alpha * alpha * s * s + sigma * sigma;
      const long double r = std::exp(l[k] - l[out.dominant]) / total;
      e += r * sigma * (x(i, j) - alpha * g.means()(k, j)) / var;
    }
    out.eps.push_back(static_cast<double>(e));
  }
  out.log_density = static_cast<double>(l[out.dominant] + std::log(total));
  return out;
}

TEST_CASE("GMM eps and log density equal a long-double evaluation", "[models][gmm]") {
  // Points from the data scale to a few noise scales out, so the posterior weights
  // span everything from ~1 to underflow.
  for (int dim = 1; dim <= 3; ++dim) {
    const GmmModel m = random_gmm(dim, 4, 300 + dim);
    for (double t : {0.0, 1e-3, 0.05, 0.3, 0.7, 1.0}) {
      State x = points(200, dim, t, 50 + dim);
      x.bottomRows(50) *= 4.0;
      State eps(x.rows(), dim);
      BatchVector lp(x.rows());
      m.eps(x, t, eps);
      m.log_density(x, t, lp);
      for (Eigen::Index i = 0; i < x.rows(); ++i) {
        const HandEps hand = hand_gmm_eps(m, x, i, t);
        double scale = 0;
        for (int j = 0; j < dim; ++j) scale = std::max(scale, std::abs(hand.eps[j]));
        INFO("dim " << dim << ", t " << t << ", row " << i);
        for (int j = 0; j < dim; ++j) CHECK(std::abs(eps(i, j) - hand.eps[j]) <= 1e-13 * scale + 1e-300);
        CHECK(lp(i) == Approx(hand.log_density).epsilon(1e-13).margin(1e-13));
      }
    }
  }
}

TEST_CASE("GMM eps stays finite in the far tails", "[models][gmm]") {
  // Two 1-D components; far out, the one with the larger noised variance (the wider
  // one, component 0) takes all the weight, so eps = sigma (x - alpha m_0) / var_0.
  // (At t = 1, alpha ~ 0.0066 and the two variances differ by ~7e-6, so at |x| = 1e3
  // both components still share the weight: there the check is against the full
  // mixture computed by hand.)
  Eigen::VectorXd w(2);
  w << 0.3, 0.7;
  Eigen::MatrixXd means(2, 1), stds(2, 1);
  means << -1.0, 2.0;
  stds << 0.5, 0.3;
  const GmmModel m(vp(), w, means, stds);
  State x(4, 1);
  x << 1e3, -1e3, 1e5, -1e5;
  int dominated = 0;
  for (double t : {0.0, 1e-3, 0.1, 0.5, 1.0}) {
    const double alpha = m.schedule().alpha(t), sigma = m.schedule().sigma(t);
    const double var0 = alpha * alpha * 0.25 + sigma * sigma;
    State eps(4, 1), score(4, 1);
    m.eps(x, t, eps);
    m.score(x, t, score);
    BatchVector lp(4);
    m.log_density(x, t, lp);
    INFO("t = " << t);
    CHECK(eps.isFinite().all());
    CHECK(score.isFinite().all());
    CHECK(lp.isFinite().all());
    for (int i = 0; i < 4; ++i) {
      INFO("x = " << x(i, 0));
      const HandEps hand = hand_gmm_eps(m, x, i, t);
      CHECK(eps(i, 0) == Approx(hand.eps[0]).epsilon(1e-12).margin(1e-300));
      if (hand.gap < 50) continue;
      ++dominated;
      CHECK(hand.dominant == 0);
      const double z = x(i, 0) + alpha;  // x - alpha m_0
      CHECK(eps(i, 0) == Approx(sigma * z / var0).epsilon(1e-12).margin(1e-300));
      CHECK(score(i, 0) == Approx(-z / var0).epsilon(1e-12));
      CHECK(lp(i) == Approx(std::log(0.3) - 0.5 * std::log(2 * M_PI * var0) - 0.5 * z * z / var0)
                         .epsilon(1e-12));
    }
  }
  CHECK(dominated >= 18);

  // The built-in 2-D mixture against the hand computation, and against the dominant
  // component alone where the others' weight is below exp(-50).
  const GmmModel g = GmmModel::builtin_2d(vp());
  State far(6, 2);
  far << 1e3, 1e3, -1e3, 1e3, 1e5, -1e5, -1e5, -1e5, 1e3, 0.0, 0.0, -1e5;
  dominated = 0;
  for (double t : {0.0, 1e-3, 0.1, 0.5, 1.0}) {
    const double alpha = g.schedule().alpha(t), sigma = g.schedule().sigma(t);
    State eps(far.rows(), 2);
    g.eps(far, t, eps);
    REQUIRE(eps.isFinite().all());
    for (Eigen::Index i = 0; i < far.rows(); ++i) {
      const HandEps hand = hand_gmm_eps(g, far, i, t);
      const int best = hand.dominant;
      for (int j = 0; j < 2; ++j) {
        INFO("t = " << t << ", row " << i << ", axis " << j << ", component " << best
                    << ", gap " << static_cast<double>(hand.gap));
        // Relative to the row's eps norm: a small axis inherits the rounding of the
        // responsibilities, whose log-weights are ~ -|x|^2 / 2.
        const double scale = std::max(std::abs(hand.eps[0]), std::abs(hand.eps[1]));
        CHECK(eps(i, j) == Approx(hand.eps[j]).epsilon(1e-12).margin(1e-12 * scale));
        if (hand.gap < 50) continue;
        ++dominated;
        const double var = alpha * alpha * g.stds()(best, j) * g.stds()(best, j) + sigma * sigma;
        const double expected = sigma * (far(i, j) - alpha * g.means()(best, j)) / var;
        CHECK(eps(i, j) == Approx(expected).epsilon(1e-12).margin(1e-300));
      }
    }
  }
  CHECK(dominated >= 40);
}

TEST_CASE("GMM data moments equal hand-derived closed forms", "[models][gmm]") {
  // 1-D: weights 1 : 3 -> 0.25, 0.75; means -1, 3; stds 0.5, 1.
  //   mean = 0.25 (-1) + 0.75 (3) = 2
  //   var  = within 0.25 (0.25) + 0.75 (1) = 0.8125
  //        + between 0.25 (-1 - 2)^2 + 0.75 (3 - 2)^2 = 3  -> 3.8125
  Eigen::VectorXd w(2);
  w << 1.0, 3.0;
  Eigen::MatrixXd means(2, 1), stds(2, 1);
  means << -1.0, 3.0;
  stds << 0.5, 1.0;
  const GmmModel m(vp(), w, means, stds);
  CHECK(m.weights()(0) == Approx(0.25));
  CHECK(m.weights()(1) == Approx(0.75));
  CHECK(m.data_mean()(0) == Approx(2.0).epsilon(1e-15));
  CHECK(m.data_covariance()(0, 0) == Approx(3.8125).epsilon(1e-15));

  // 2-D: equal weights, means (0, 0) and (2, 2), unit stds: mean (1, 1) and
  // covariance I + [[1, 1], [1, 1]] (the between-component term is off-diagonal).
  Eigen::VectorXd w2(2);
  w2 << 0.5, 0.5;
  Eigen::MatrixXd means2(2, 2), stds2(2, 2);
  means2 << 0.0, 0.0, 2.0, 2.0;
  stds2 << 1.0, 1.0, 1.0, 1.0;
  const GmmModel m2(vp(), w2, means2, stds2);
  CHECK(m2.data_mean().isApprox(Eigen::Vector2d(1.0, 1.0)));
  Eigen::Matrix2d cov;
  cov << 2.0, 1.0, 1.0, 2.0;
  CHECK(m2.data_covariance().isApprox(cov));

  // The built-in mixture, from its documented parameters.
  const GmmModel g = GmmModel::builtin_2d(vp());
  CHECK(g.dim() == 2);
  CHECK(g.name() == "gmm");
  REQUIRE(g.weights().size() == 3);
  CHECK(g.weights().sum() == Approx(1.0));
  const Eigen::Vector2d mean_b = g.means().transpose() * g.weights();
  CHECK(g.data_mean().isApprox(mean_b));
  const Eigen::MatrixXd cov_b = g.data_covariance();
  CHECK(cov_b.isApprox(cov_b.transpose()));
  CHECK(std::abs(cov_b(0, 1)) > 0.1);  // not axis-aligned: a real correlation
  // As documented in docs/models.md.
  CHECK(g.data_mean().isApprox(Eigen::Vector2d(0.225, 0.025)));
}

TEST_CASE("model output of a row does not depend on the other rows", "[models]") {
  const GmmModel gmm = GmmModel::builtin_2d(vp());
  const GaussianModel gauss = random_gaussian(2, 3);
  const State x = points(613, 2, 0.4, 8);  // crosses several chunks, odd size
  for (const diffsde::AnalyticModel* m :
       {static_cast<const diffsde::AnalyticModel*>(&gmm), static_cast<const diffsde::AnalyticModel*>(&gauss)}) {
    INFO(m->name());
    for (double t : {1e-3, 0.4, 1.0}) {
      State all(x.rows(), 2);
      m->eps(x, t, all);
      BatchVector lp_all(x.rows());
      m->log_density(x, t, lp_all);
      // One row at a time, and in a reversed batch, and in sub-blocks at odd offsets.
      for (Eigen::Index i = 0; i < x.rows(); i += 37) {
        State one(1, 2);
        m->eps(x.row(i), t, one);
        CHECK(one(0, 0) == all(i, 0));
        CHECK(one(0, 1) == all(i, 1));
        BatchVector lp_one(1);
        m->log_density(x.row(i), t, lp_one);
        CHECK(lp_one(0) == lp_all(i));
      }
      const State reversed = x.colwise().reverse();
      State rev_out(x.rows(), 2);
      m->eps(reversed, t, rev_out);
      CHECK(max_abs_diff(rev_out.colwise().reverse(), all) == 0.0);
      State block_out(101, 2);
      m->eps(x.middleRows(3, 101), t, block_out);
      CHECK(max_abs_diff(block_out, all.middleRows(3, 101)) == 0.0);
      // In place: out may be x itself.
      State in_place = x;
      m->eps(in_place, t, in_place);
      CHECK(max_abs_diff(in_place, all) == 0.0);
    }
  }
}

TEST_CASE("model calls may run concurrently", "[models]") {
  // The driver may split a batch across threads: each thread uses its own scratch.
  const GmmModel gmm = random_gmm(3, 4, 77);
  const State x = points(4000, 3, 0.3, 12);
  State serial(x.rows(), 3), parallel(x.rows(), 3);
  gmm.eps(x, 0.3, serial);
  std::vector<std::thread> threads;
  for (int part = 0; part < 4; ++part) {
    threads.emplace_back([&, part] {
      for (int rep = 0; rep < 5; ++rep)
        gmm.eps(x.middleRows(1000 * part, 1000), 0.3, parallel.middleRows(1000 * part, 1000));
    });
  }
  for (auto& th : threads) th.join();
  CHECK(max_abs_diff(parallel, serial) == 0.0);
}

TEST_CASE("models reject bad input", "[models]") {
  Eigen::VectorXd mean(2), std(2);
  mean << 0.0, 1.0;
  std << 1.0, 0.5;
  CHECK_THROWS_AS(GaussianModel(nullptr, mean, std), diffsde::Error);
  CHECK_THROWS_WITH(GaussianModel(vp(), mean, Eigen::VectorXd::Ones(3)), Catch::Contains("std"));
  Eigen::VectorXd bad_std = std;
  bad_std(1) = 0.0;
  CHECK_THROWS_WITH(GaussianModel(vp(), mean, bad_std), Catch::Contains("std[1]"));
  bad_std(1) = NAN;
  CHECK_THROWS_AS(GaussianModel(vp(), mean, bad_std), diffsde::Error);
  CHECK_THROWS_AS(GaussianModel(vp(), Eigen::VectorXd(), Eigen::VectorXd()), diffsde::Error);

  Eigen::VectorXd w(2);
  w << 1.0, 2.0;
  Eigen::MatrixXd means = Eigen::MatrixXd::Zero(2, 3), stds = Eigen::MatrixXd::Ones(2, 3);
  CHECK_NOTHROW(GmmModel(vp(), w, means, stds));
  Eigen::VectorXd bad_w = w;
  bad_w(0) = -1.0;
  CHECK_THROWS_WITH(GmmModel(vp(), bad_w, means, stds), Catch::Contains("weights[0]"));
  bad_w(0) = 0.0;
  CHECK_THROWS_AS(GmmModel(vp(), bad_w, means, stds), diffsde::Error);
  CHECK_THROWS_WITH(GmmModel(vp(), w, Eigen::MatrixXd::Zero(3, 3), stds), Catch::Contains("one per weight"));
  CHECK_THROWS_WITH(GmmModel(vp(), w, means, Eigen::MatrixXd::Ones(2, 2)), Catch::Contains("stds"));
  Eigen::MatrixXd bad_stds = stds;
  bad_stds(1, 2) = -0.1;
  CHECK_THROWS_WITH(GmmModel(vp(), w, means, bad_stds), Catch::Contains("stds[1][2]"));
  Eigen::MatrixXd bad_means = means;
  bad_means(0, 0) = INFINITY;
  CHECK_THROWS_AS(GmmModel(vp(), w, bad_means, stds), diffsde::Error);
  CHECK_THROWS_AS(GmmModel(vp(), Eigen::VectorXd(), Eigen::MatrixXd(), Eigen::MatrixXd()), diffsde::Error);

  // Calls with the wrong shapes or times.
  const GmmModel m(vp(), w, means, stds);
  State x(4, 2), out(4, 2);
  x.setZero();
  CHECK_THROWS_WITH(m.eps(x, 0.5, out), Catch::Contains("dim is 3"));
  State x3 = State::Zero(4, 3), out3(5, 3);
  CHECK_THROWS_AS(m.eps(x3, 0.5, out3), diffsde::Error);
  BatchVector lp(3);
  CHECK_THROWS_AS(m.log_density(x3, 0.5, lp), diffsde::Error);
  State good(4, 3);
  CHECK_THROWS_AS(m.eps(x3, NAN, good), diffsde::Error);
  CHECK_THROWS_AS(m.eps(x3, INFINITY, good), diffsde::Error);
  // Times below 0 are t = 0, as for the schedules: eps = 0 there.
  x3.setOnes();
  m.eps(x3, -1e-17, good);
  CHECK(good.abs().maxCoeff() == 0.0);
  // An empty batch is fine.
  State empty(0, 3), empty_out(0, 3);
  CHECK_NOTHROW(m.eps(empty, 0.5, empty_out));
}

TEST_CASE("registry builds the analytic models from JSON", "[models][registry]") {
  diffsde::BuildContext ctx;
  ctx.schedule = vp();
  auto& registry = diffsde::model_registry();

  SECTION("defaults") {
    auto gauss = registry.create(json{{"name", "gaussian"}}, "model", ctx);
    REQUIRE(gauss);
    CHECK(gauss->name() == "gaussian");
    CHECK(gauss->dim() == 2);
    auto gmm = registry.create(json{{"name", "gmm"}}, "model", ctx);
    REQUIRE(gmm);
    CHECK(gmm->dim() == 2);
    // The default mixture is GmmModel::builtin_2d.
    const auto* as_gmm = dynamic_cast<const GmmModel*>(gmm.get());
    REQUIRE(as_gmm != nullptr);
    const GmmModel builtin = GmmModel::builtin_2d(vp());
    CHECK(as_gmm->weights().isApprox(builtin.weights()));
    CHECK(as_gmm->means() == builtin.means());
    CHECK(as_gmm->stds() == builtin.stds());
    // The defaults as `diffsde list` prints them (and docs/models.md shows them).
    const auto* entry = registry.find("gmm");
    REQUIRE(entry != nullptr);
    CHECK(entry->params.at(0).name == "weights");
    CHECK(entry->params.at(0).default_value.dump() == "[0.25,0.35,0.4]");
    CHECK(entry->params.at(1).default_value.dump() == "[[-2.0,-1.0],[1.5,-1.5],[0.5,2.0]]");
    CHECK(entry->params.at(2).default_value.dump() == "[[0.4,0.3],[0.3,0.5],[0.5,0.35]]");
  }

  SECTION("explicit parameters") {
    auto gauss = registry.create(json::parse(R"({"name": "gaussian", "mean": [1, 2, 3], "std": [0.5]})"),
                                 "model", ctx);
    const auto* g = dynamic_cast<const GaussianModel*>(gauss.get());
    REQUIRE(g != nullptr);
    CHECK(g->dim() == 3);
    CHECK(g->std().isApprox(Eigen::Vector3d(0.5, 0.5, 0.5)));

    auto gmm = registry.create(
        json::parse(R"({"name": "gmm", "weights": [1, 3], "means": [[-1], [3]], "stds": [[0.5], [1]]})"),
        "model", ctx);
    const auto* m = dynamic_cast<const GmmModel*>(gmm.get());
    REQUIRE(m != nullptr);
    CHECK(m->dim() == 1);
    CHECK(m->weights()(1) == Approx(0.75));
    CHECK(m->data_covariance()(0, 0) == Approx(3.8125));
    // One shared row of stds.
    auto shared = registry.create(
        json::parse(R"({"name": "gmm", "weights": [1, 1], "means": [[0, 0], [2, 2]], "stds": [[0.3, 0.4]]})"),
        "model", ctx);
    const auto* s = dynamic_cast<const GmmModel*>(shared.get());
    REQUIRE(s != nullptr);
    CHECK(s->stds()(1, 1) == 0.4);
    // eps works through the base interface.
    State x = State::Zero(3, 2), out(3, 2);
    shared->eps(x, 0.5, out);
    CHECK(out.isFinite().all());
  }

  SECTION("errors name the JSON path") {
    auto fails_at = [&](const char* text, const std::string& path, const std::string& part) {
      INFO(text);
      try {
        registry.create(json::parse(text), "model", ctx);
        FAIL("no error");
      } catch (const diffsde::ConfigError& e) {
        CHECK(e.path() == path);
        CHECK_THAT(e.what(), Catch::Contains(part));
      }
    };
    fails_at(R"({"name": "gmm", "means": [[0, 0], [1, 1]]})", "model.means",
             "expected 3 rows (one per weight), got 2");
    fails_at(R"({"name": "gmm", "weights": [1, 1], "means": [[0, 0], [1]], "stds": [[1, 1]]})",
             "model.means", "row 1 has 1 entry, expected 2");
    fails_at(R"({"name": "gmm", "weights": [1, 1], "means": [[0, 0], [1, 1]]})", "model.stds",
             "expected 2 rows");
    fails_at(R"({"name": "gmm", "weights": [1, 1], "means": [[0], [1]], "stds": [[1, 1], [1, 1]]})",
             "model.stds", "row 0 has 2 entries, expected 1");
    fails_at(R"({"name": "gmm", "weights": [1, -2], "means": [[0], [1]], "stds": [[1], [1]]})",
             "model.weights", "must be > 0");
    fails_at(R"({"name": "gmm", "weights": [], "means": [], "stds": []})", "model.weights",
             "at least one");
    fails_at(R"({"name": "gmm", "weights": [1], "means": [[0]], "stds": [[0]]})", "model.stds",
             "must be > 0");
    fails_at(R"({"name": "gmm", "weights": [1], "means": [[]], "stds": [[]]})", "model.means",
             "empty");
    fails_at(R"({"name": "gaussian", "mean": [0, 0, 0]})", "model.std", "expected 3 entries");
    fails_at(R"({"name": "gaussian", "mean": [0], "std": [-1]})", "model.std", "must be > 0");
    fails_at(R"({"name": "gaussian", "mean": []})", "model.mean", "at least one");
    fails_at(R"({"name": "gaussian", "sd": [1, 1]})", "model.sd", "unknown parameter");
    fails_at(R"({"name": "gmm", "means": 3})", "model.means", "expected");
  }

  SECTION("a schedule is required") {
    CHECK_THROWS_WITH(registry.create(json{{"name", "gmm"}}, "model", diffsde::BuildContext{}),
                      Catch::Contains("schedule"));
    CHECK_THROWS_AS(registry.create(json{{"name", "gaussian"}}, "model", diffsde::BuildContext{}),
                    diffsde::ConfigError);
  }
}
