// Metrics against exact answers: closed forms for Gaussians, hand-computed quantile
// integrals, identities (a set against itself or a shifted copy), and the exact data
// samplers of the analytic models.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include <Eigen/Dense>

#include "diffsde/error.hpp"
#include "diffsde/metrics.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/scores/analytic.hpp"
#include "support/exact.hpp"

using namespace diffsde;

namespace {

State rows(std::initializer_list<std::initializer_list<double>> values) {
  State s(static_cast<Eigen::Index>(values.size()), static_cast<Eigen::Index>(values.begin()->size()));
  Eigen::Index i = 0;
  for (const auto& row : values) {
    Eigen::Index j = 0;
    for (double v : row) s(i, j++) = v;
    ++i;
  }
  return s;
}

std::shared_ptr<const Schedule> linear() { return std::make_shared<VpLinearSchedule>(); }

GaussianModel gaussian(Eigen::VectorXd mean, Eigen::VectorXd std) {
  return GaussianModel(linear(), std::move(mean), std::move(std));
}

}  // namespace

TEST_CASE("path_error is the RMS and the max over all entries") {
  const State x = rows({{1, 2}, {3, 4}});
  const State r = rows({{1, 0}, {0, 4}});
  const PathError e = path_error(x, r);
  CHECK(e.rms == Approx(std::sqrt((0 + 4 + 9 + 0) / 4.0)).epsilon(1e-15));
  CHECK(e.max == 3.0);
  CHECK(path_error(x, x).rms == 0.0);
  CHECK_THROWS_AS(path_error(x, rows({{1, 2}})), Error);
}

TEST_CASE("mean_log_likelihood is the mean exact data log-density") {
  Eigen::VectorXd mean(2), std(2);
  mean << 1, -1;
  std << 0.5, 2;
  const GaussianModel model = gaussian(mean, std);
  const State x = rows({{1, -1}, {2, 0}});
  // log N(x; m, s^2) per axis = -0.5 log(2 pi) - log s - (x - m)^2 / (2 s^2).
  auto logn = [](double x, double m, double s) {
    return -0.5 * std::log(2 * M_PI) - std::log(s) - (x - m) * (x - m) / (2 * s * s);
  };
  const double expected =
      0.5 * (logn(1, 1, 0.5) + logn(-1, -1, 2) + logn(2, 1, 0.5) + logn(0, -1, 2));
  CHECK(mean_log_likelihood(model, x) == Approx(expected).epsilon(1e-14));
}

TEST_CASE("Gaussian fits and the PSD square root") {
  const State x = rows({{0, 0}, {2, 0}, {0, 2}, {2, 2}});
  const GaussianFit fit = gaussian_fit(x);
  CHECK(fit.mean(0) == 1.0);
  CHECK(fit.mean(1) == 1.0);
  // Unbiased: sum of squares 4 over n - 1 = 3.
  CHECK(fit.covariance(0, 0) == Approx(4.0 / 3.0));
  CHECK(fit.covariance(0, 1) == Approx(0.0).margin(1e-15));
  CHECK_THROWS_AS(gaussian_fit(rows({{1, 2}})), Error);

  Eigen::MatrixXd a(2, 2);
  a << 4, 1, 1, 3;
  const Eigen::MatrixXd s = sqrtm_psd(a);
  CHECK((s * s - a).cwiseAbs().maxCoeff() < 1e-14);
  CHECK((s - s.transpose()).cwiseAbs().maxCoeff() < 1e-15);
}

TEST_CASE("Fréchet distance between Gaussians has its closed forms") {
  // 1-D: (m1 - m2)^2 + (s1 - s2)^2.
  Eigen::VectorXd m1(1), m2(1);
  Eigen::MatrixXd c1(1, 1), c2(1, 1);
  m1 << 0.5;
  m2 << -1;
  c1 << 4;
  c2 << 0.25;
  CHECK(frechet_distance(m1, c1, m2, c2) == Approx(1.5 * 1.5 + 1.5 * 1.5).epsilon(1e-14));

  // Commuting (diagonal) covariances: sum over axes of (s1 - s2)^2.
  Eigen::VectorXd a(3), b(3);
  a << 1, 2, 3;
  b << 0, 2, 5;
  Eigen::MatrixXd da = Eigen::Vector3d(1, 4, 9).asDiagonal(), db = Eigen::Vector3d(4, 4, 1).asDiagonal();
  CHECK(frechet_distance(a, da, b, db) == Approx((1 + 0 + 4) + (1 + 0 + 4)).epsilon(1e-13));

  // Non-commuting: tr (c2^1/2 c1 c2^1/2)^1/2 equals the sum of the square roots of the
  // eigenvalues of c1 c2 (real and non-negative), computed here independently.
  Eigen::MatrixXd p(2, 2), q(2, 2);
  p << 2.0, 0.7, 0.7, 0.5;
  q << 1.0, -0.4, -0.4, 3.0;
  const Eigen::VectorXcd ev = (p * q).eigenvalues();
  double cross = 0;
  for (Eigen::Index i = 0; i < ev.size(); ++i) cross += std::sqrt(ev(i).real());
  const Eigen::Vector2d u(0.3, -0.2), v(-0.1, 0.4);
  const double expected = (u - v).squaredNorm() + p.trace() + q.trace() - 2 * cross;
  CHECK(frechet_distance(u, p, v, q) == Approx(expected).epsilon(1e-12));
  // Symmetric in its arguments, 0 for equal Gaussians.
  CHECK(frechet_distance(v, q, u, p) == Approx(expected).epsilon(1e-12));
  CHECK(frechet_distance(u, p, u, p) == Approx(0.0).margin(1e-13));
}

TEST_CASE("Fréchet distance of sample sets: shifts, features, exact data moments") {
  const State x = test::standard_normal_rows(500, 3, 7);
  State shifted = x;
  shifted.col(0) += 0.5;
  shifted.col(2) -= 1.0;
  CHECK(frechet_distance(x, x) == Approx(0.0).margin(1e-12));
  // Same covariance: only the mean term remains.
  CHECK(frechet_distance(x, shifted) == Approx(0.25 + 1.0).epsilon(1e-10));
  // In a feature space: the identity map changes nothing; doubling scales by 4.
  CHECK(frechet_distance_features(x, shifted, [](const ConstStateRef& s) { return State(s); }) ==
        Approx(1.25).epsilon(1e-10));
  CHECK(frechet_distance_features(x, shifted, [](const ConstStateRef& s) { return State(2.0 * s); }) ==
        Approx(5.0).epsilon(1e-10));

  // Against the exact moments of the data: exact samples come close (the sampling error
  // of a d-dimensional fit is O(d / n)).
  const GmmModel gmm = GmmModel::builtin_2d(linear());
  CHECK(frechet_distance(gmm.sample_data(40000, 3), gmm) < 2e-3);
  State off = gmm.sample_data(40000, 3);
  off.col(1) += 1.0;
  // (1 + the sample mean error on axis 1)^2: the error has sd sqrt(2.8 / 40000) ~ 0.008.
  CHECK(frechet_distance(off, gmm) == Approx(1.0).margin(0.05));
}

TEST_CASE("1-D 2-Wasserstein by quantile matching") {
  std::vector<double> a{3, 1, 2}, b{2, 3, 1};
  CHECK(wasserstein2_squared_1d(a, b) == 0.0);
  a = {0, 1, 5};
  b = {0.5, 1.5, 5.5};
  CHECK(wasserstein2_squared_1d(a, b) == Approx(0.25).epsilon(1e-15));
  // Different sizes: {0, 1} and {0, 0, 1, 1} are the same distribution.
  a = {0, 1};
  b = {1, 0, 0, 1};
  CHECK(wasserstein2_squared_1d(a, b) == 0.0);
  // {0} against {0, 1}: half the mass moves by 1.
  a = {0};
  b = {0, 1};
  CHECK(wasserstein2_squared_1d(a, b) == Approx(0.5).epsilon(1e-15));
  // {0, 1, 2} against {0, 3}: quantile steps at 1/3, 1/2, 2/3 give
  // 0 + (1/2 - 1/3) 1 + (2/3 - 1/2) 4 + (1 - 2/3) 1 = 7/6.
  a = {0, 1, 2};
  b = {3, 0};
  CHECK(wasserstein2_squared_1d(a, b) == Approx(7.0 / 6.0).epsilon(1e-14));
}

TEST_CASE("Sliced 2-Wasserstein: 0 for identical sets, the shift in 1-D, exact for shifted sets") {
  const State x = test::standard_normal_rows(300, 1, 1);
  State shifted = x + 0.75;
  CHECK(sliced_wasserstein2(x, x, 16, 0) == 0.0);
  // In 1-D every direction is +-1, and W2 of a shifted copy is the shift.
  CHECK(sliced_wasserstein2(x, shifted, 16, 0) == Approx(0.75).epsilon(1e-12));

  // In 2-D each projection of a shifted copy is shifted by theta . c, so
  // SW2^2 = mean over the directions of (theta . c)^2.
  const State y = test::standard_normal_rows(300, 2, 2);
  const Eigen::RowVector2d c(0.6, -0.3);
  const State y_shifted = y.rowwise() + c.array();
  const State directions = projection_directions(32, 2, 5);
  double expected = 0;
  for (Eigen::Index l = 0; l < directions.rows(); ++l) {
    CHECK(directions.row(l).matrix().norm() == Approx(1.0).epsilon(1e-15));
    const double d = directions.row(l).matrix().dot(c);
    expected += d * d;
  }
  expected = std::sqrt(expected / 32);
  CHECK(sliced_wasserstein2(y, y_shifted, directions) == Approx(expected).epsilon(1e-10));
  // Directions are keyed by the seed.
  CHECK((projection_directions(32, 2, 5) == directions).all());
  CHECK(!(projection_directions(32, 2, 6) == directions).all());
  CHECK_THROWS_AS(sliced_wasserstein2(y, x, 4, 0), Error);
}

TEST_CASE("Median heuristic") {
  CHECK(median_pairwise_distance(rows({{0}, {1}, {3}})) == 2.0);
  // Distances 1, 3, 7, 2, 6, 4: the mean of the middle two.
  CHECK(median_pairwise_distance(rows({{0}, {1}, {3}, {7}})) == 3.5);
  CHECK(median_pairwise_distance(rows({{0, 0}, {3, 4}})) == 5.0);
}

TEST_CASE("MMD^2: 0 for a set against itself, null within its standard error, closed form for Gaussians") {
  const State x = test::standard_normal_rows(200, 2, 1);
  const MmdResult self = mmd2_rbf(x, x, 1.0);
  CHECK(self.mmd2 == 0.0);

  // Closed form in 1-D: E k = h / sqrt(h^2 + s) exp(-mu^2 / (2 (h^2 + s))), D ~ N(mu, s).
  Eigen::VectorXd m1(1), m2(1);
  Eigen::MatrixXd c1(1, 1), c2(1, 1);
  m1 << 0;
  m2 << 1;
  c1 << 1;
  c2 << 0.25;
  const double h = 0.8;
  auto ek = [h](double mu, double s) { return h / std::sqrt(h * h + s) * std::exp(-mu * mu / (2 * (h * h + s))); };
  const double closed = ek(0, 2) + ek(0, 0.5) - 2 * ek(-1, 1.25);
  CHECK(mmd2_rbf_gaussians(m1, c1, m2, c2, h) == Approx(closed).epsilon(1e-14));
  CHECK(mmd2_rbf_gaussians(m1, c1, m1, c1, h) == Approx(0.0).margin(1e-15));

  // Two independent samples of one distribution: the estimate is 0 within its error.
  Eigen::VectorXd mean(2), std(2);
  mean << 1, -1;
  std << 0.5, 2;
  const GaussianModel p = gaussian(mean, std);
  const State a = p.sample_data(1500, 11), b = p.sample_data(1500, 12);
  const double bandwidth = median_pairwise_distance(a);
  const MmdResult null = mmd2_rbf(a, b, bandwidth);
  CHECK(null.standard_error > 0);
  CHECK(std::abs(null.mmd2) < 4 * null.standard_error);

  // Two different Gaussians: the estimate matches the closed form within its error.
  Eigen::VectorXd mean2(2), std2(2);
  mean2 << 1.6, -1;
  std2 << 0.7, 1.4;
  const GaussianModel q = gaussian(mean2, std2);
  const State c = q.sample_data(1500, 13);
  const MmdResult diff = mmd2_rbf(a, c, bandwidth);
  const double exact = mmd2_rbf_gaussians(mean, p.data_covariance(), mean2, q.data_covariance(), bandwidth);
  INFO("estimate " << diff.mmd2 << " +- " << diff.standard_error << ", exact " << exact);
  CHECK(exact > 10 * diff.standard_error);
  CHECK(std::abs(diff.mmd2 - exact) < 4 * diff.standard_error);
  CHECK_THROWS_AS(mmd2_rbf(a, c.topRows(10), bandwidth), Error);
}

TEST_CASE("Exact data samples are keyed by seed and sample index and have the data's moments") {
  const GmmModel gmm = GmmModel::builtin_2d(linear());
  const State all = gmm.sample_data(10, 4);
  const State tail = gmm.sample_data(5, 4, 5);
  CHECK((all.bottomRows(5) == tail).all());
  CHECK(!(gmm.sample_data(10, 5) == all).all());

  Eigen::VectorXd mean(3), std(3);
  mean << 1, -1, 0;
  std << 0.5, 2, 1;
  const GaussianModel g = gaussian(mean, std);
  for (const AnalyticModel* m : {static_cast<const AnalyticModel*>(&gmm), static_cast<const AnalyticModel*>(&g)}) {
    const long n = 200000;
    const State x = m->sample_data(n, 9);
    const GaussianFit fit = gaussian_fit(x);
    const Eigen::VectorXd dm = m->data_mean();
    const Eigen::MatrixXd dc = m->data_covariance();
    for (Eigen::Index i = 0; i < dm.size(); ++i) {
      INFO(m->name() << " axis " << i);
      CHECK(std::abs(fit.mean(i) - dm(i)) < 5 * std::sqrt(dc(i, i) / static_cast<double>(n)));
      // Var of the sample variance <= E (x - m)^4 / n; 6 sd with a generous fourth moment.
      CHECK(std::abs(fit.covariance(i, i) - dc(i, i)) < 6 * dc(i, i) * std::sqrt(6.0 / static_cast<double>(n)));
    }
  }
  // The mixture's component frequencies follow the weights.
  const State x = gmm.sample_data(60000, 2);
  const Eigen::MatrixXd& means = gmm.means();
  std::vector<double> counts(3, 0);
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    Eigen::Index best = 0;
    double best_d = 1e300;
    for (Eigen::Index k = 0; k < 3; ++k) {
      const double d = (x.row(r).matrix() - means.row(k)).squaredNorm();
      if (d < best_d) {
        best_d = d;
        best = k;
      }
    }
    counts[static_cast<std::size_t>(best)] += 1;
  }
  for (Eigen::Index k = 0; k < 3; ++k) {
    const double w = gmm.weights()(k) / gmm.weights().sum();
    // Nearest-mean assignment is near-exact for these well-separated components.
    CHECK(counts[static_cast<std::size_t>(k)] / 60000.0 == Approx(w).margin(0.01));
  }
}

TEST_CASE("fraction_outside counts the entries outside [lo, hi], the ends inside") {
  const State x = rows({{-1.5, -1, 0}, {1, 1.25, 0.5}});
  CHECK(fraction_outside(x, -1, 1) == 2.0 / 6.0);
  CHECK(fraction_outside(x, -2, 2) == 0.0);
  CHECK(fraction_outside(x, 0.25, 0.75) == 5.0 / 6.0);
  CHECK_THROWS_AS(fraction_outside(x, 1, 1), Error);
  CHECK_THROWS_AS(fraction_outside(State(0, 2), -1, 1), Error);
}

TEST_CASE("classifier_accuracy takes the argmax of each row, skipping negative labels") {
  // Argmax per row: 0, 2, 1, 0 (the first of the equal maxima), 2.
  const State logits = rows({{3, 1, 2}, {0, 1, 5}, {-1, 4, 2}, {7, 7, 1}, {0, 0, 0.5}});
  ClassifierAccuracy r = classifier_accuracy(logits, {0, 2, 0, 0, 2});
  CHECK(r.counted == 5);
  CHECK(r.accuracy == 4.0 / 5.0);
  r = classifier_accuracy(logits, {-1, 1, 1, -1, 0});
  CHECK(r.counted == 3);
  CHECK(r.accuracy == 1.0 / 3.0);
  r = classifier_accuracy(logits, {-1, -1, -1, -1, -1});
  CHECK(r.counted == 0);
  CHECK(std::isnan(r.accuracy));
  CHECK_THROWS_WITH(classifier_accuracy(logits, {0, 3, 0, 0, 0}), Catch::Contains("label 3"));
  CHECK_THROWS_AS(classifier_accuracy(logits, {0, 1}), Error);
}

TEST_CASE("Fréchet distance by class: each class against its own fit, small classes left out") {
  // Class 0 and class 1 data, and samples that are shifted copies of them.
  const State data0 = rows({{0, 0}, {1, 0}, {0, 2}, {1, 2}});
  const State data1 = rows({{5, 5}, {6, 7}, {4, 4}});
  State data(7, 2);
  data << data1.row(0), data0.row(0), data0.row(1), data1.row(1), data0.row(2), data0.row(3), data1.row(2);
  const std::vector<std::int64_t> data_labels = {1, 0, 0, 1, 0, 0, 1};
  const auto fits = gaussian_fits_by_class(data, data_labels);
  REQUIRE(fits.size() == 2);
  CHECK((fits.at(0).covariance - gaussian_fit(data0).covariance).cwiseAbs().maxCoeff() == 0.0);
  CHECK((fits.at(1).mean - gaussian_fit(data1).mean).cwiseAbs().maxCoeff() == 0.0);

  // Samples: class 0 shifted by (0.5, -1), class 1 shifted by (2, 0), one sample of class 2
  // (too few: left out) and one without a label.
  State x(9, 2);
  x << data0.row(0), data1.row(0), data0.row(1), data0.row(2), data1.row(1), data0.row(3), data1.row(2), 9, 9, 8, 8;
  const Eigen::RowVector2d shift0(0.5, -1), shift1(2, 0);
  for (int i : {0, 2, 3, 5}) x.row(i) += shift0.array();
  for (int i : {1, 4, 6}) x.row(i) += shift1.array();
  const std::vector<std::int64_t> labels = {0, 1, 0, 0, 1, 0, 1, 2, -1};
  const auto d = frechet_distance_by_class(x, labels, fits);
  REQUIRE(d.size() == 2);
  CHECK(d.at(0) == Approx(shift0.squaredNorm()).epsilon(1e-12));
  CHECK(d.at(1) == Approx(shift1.squaredNorm()).epsilon(1e-12));

  // A class with 2 samples and no fit is an error that names it.
  const std::vector<std::int64_t> with_class_3 = {0, 1, 0, 0, 1, 0, 1, 3, 3};
  CHECK_THROWS_WITH(frechet_distance_by_class(x, with_class_3, fits), Catch::Contains("class 3"));
  CHECK_THROWS_AS(gaussian_fits_by_class(x, {0, 1}), Error);
}
