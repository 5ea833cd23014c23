// Converters between eps, x0, v and score predictions: known values, round trips
// and aliasing.
#include <catch2/catch.hpp>
#include <cmath>
#include <random>

#include "diffsde/error.hpp"
#include "diffsde/parameterization.hpp"

using diffsde::Prediction;
using diffsde::State;

namespace {

State random_state(Eigen::Index rows, Eigen::Index cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.5);
  State s(rows, cols);
  for (Eigen::Index i = 0; i < rows; ++i)
    for (Eigen::Index j = 0; j < cols; ++j) s(i, j) = normal(rng);
  return s;
}

double max_abs_diff(const State& a, const State& b) { return (a - b).abs().maxCoeff(); }

// (alpha, sigma) on the VP circle, from near the data to near pure noise.
std::vector<std::pair<double, double>> vp_points() {
  std::vector<std::pair<double, double>> out;
  for (double theta : {1e-3, 0.1, 0.5, 0.7853981633974483, 1.2, 1.5})
    out.emplace_back(std::cos(theta), std::sin(theta));
  return out;
}

}  // namespace

TEST_CASE("prediction names convert both ways", "[parameterization]") {
  for (auto p : {Prediction::eps, Prediction::x0, Prediction::v, Prediction::score, Prediction::velocity})
    CHECK(diffsde::prediction_from_string(diffsde::to_string(p)) == p);
  CHECK(diffsde::to_string(Prediction::x0) == "x0");
  CHECK_THROWS_AS(diffsde::prediction_from_string("noise"), diffsde::Error);
  CHECK_THROWS_WITH(diffsde::prediction_from_string("EPS"),
                    Catch::Contains("unknown prediction 'EPS'") && Catch::Contains("eps, x0, v, score, velocity"));
  CHECK(diffsde::to_string(Prediction::velocity) == "velocity");
}

TEST_CASE("converters give hand-computed values", "[parameterization]") {
  // alpha = 0.6, sigma = 0.8 (0.36 + 0.64 = 1).
  const double alpha = 0.6, sigma = 0.8;
  State x(1, 2), eps(1, 2);
  x << 1.0, 2.0;
  eps << 0.5, -1.0;
  State out(1, 2);

  // x0 = (x - sigma eps) / alpha = (1 - 0.4, 2 + 0.8) / 0.6 = (1, 14/3).
  diffsde::x0_from_eps(x, eps, alpha, sigma, out);
  CHECK(out(0, 0) == Approx(1.0).epsilon(1e-15));
  CHECK(out(0, 1) == Approx(14.0 / 3.0).epsilon(1e-15));
  const State x0 = out;

  // eps = (x - alpha x0) / sigma recovers (0.5, -1).
  diffsde::eps_from_x0(x, x0, alpha, sigma, out);
  CHECK(out(0, 0) == Approx(0.5).epsilon(1e-14));
  CHECK(out(0, 1) == Approx(-1.0).epsilon(1e-14));

  // score = -eps / sigma = (-0.625, 1.25).
  diffsde::score_from_eps(eps, sigma, out);
  CHECK(out(0, 0) == Approx(-0.625).epsilon(1e-15));
  CHECK(out(0, 1) == Approx(1.25).epsilon(1e-15));
  diffsde::eps_from_score(out, sigma, out);
  CHECK(out(0, 0) == Approx(0.5).epsilon(1e-15));
  CHECK(out(0, 1) == Approx(-1.0).epsilon(1e-15));

  // v = alpha eps - sigma x0 = (0.3 - 0.8, -0.6 - 3.7333..) = (-0.5, -13/3)
  //   = (eps - sigma x) / alpha = ((0.5 - 0.8) / 0.6, (-1 - 1.6) / 0.6).
  diffsde::v_from_eps(x, eps, alpha, sigma, out);
  CHECK(out(0, 0) == Approx(-0.5).epsilon(1e-14));
  CHECK(out(0, 1) == Approx(-13.0 / 3.0).epsilon(1e-14));
  // eps = sigma x + alpha v = (0.8 - 0.3, 1.6 - 2.6).
  diffsde::eps_from_v(x, out, alpha, sigma, out);
  CHECK(out(0, 0) == Approx(0.5).epsilon(1e-14));
  CHECK(out(0, 1) == Approx(-1.0).epsilon(1e-14));
}

TEST_CASE("round trips eps <-> x0 <-> v <-> score on the VP circle", "[parameterization]") {
  const State x = random_state(37, 3, 1);
  const State eps = random_state(37, 3, 2);
  State x0(37, 3), v(37, 3), score(37, 3), back(37, 3);
  for (const auto& [alpha, sigma] : vp_points()) {
    INFO("alpha = " << alpha << ", sigma = " << sigma);
    // Errors scale with the conditioning of the conversion (1/alpha, 1/sigma).
    const double tol = 1e-13 * (1.0 + 1.0 / alpha) * (1.0 + 1.0 / sigma) * 10.0;

    diffsde::x0_from_eps(x, eps, alpha, sigma, x0);
    CHECK(max_abs_diff(x, alpha * x0 + sigma * eps) <= tol);  // x = alpha x0 + sigma eps
    diffsde::eps_from_x0(x, x0, alpha, sigma, back);
    CHECK(max_abs_diff(back, eps) <= tol);

    diffsde::v_from_eps(x, eps, alpha, sigma, v);
    CHECK(max_abs_diff(v, alpha * eps - sigma * x0) <= tol);
    diffsde::eps_from_v(x, v, alpha, sigma, back);
    CHECK(max_abs_diff(back, eps) <= tol);

    diffsde::score_from_eps(eps, sigma, score);
    CHECK(max_abs_diff(score, -eps / sigma) <= tol);
    diffsde::eps_from_score(score, sigma, back);
    CHECK(max_abs_diff(back, eps) <= tol);

    // to_eps from each kind.
    diffsde::to_eps(Prediction::eps, x, eps, alpha, sigma, back);
    CHECK(max_abs_diff(back, eps) == 0.0);
    diffsde::to_eps(Prediction::x0, x, x0, alpha, sigma, back);
    CHECK(max_abs_diff(back, eps) <= tol);
    diffsde::to_eps(Prediction::v, x, v, alpha, sigma, back);
    CHECK(max_abs_diff(back, eps) <= tol);
    diffsde::to_eps(Prediction::score, x, score, alpha, sigma, back);
    CHECK(max_abs_diff(back, eps) <= tol);
  }
}

TEST_CASE("to_eps may write over its prediction", "[parameterization]") {
  const double alpha = std::cos(0.9), sigma = std::sin(0.9);
  const State x = random_state(19, 4, 3);
  const State pred = random_state(19, 4, 4);
  for (auto kind : {Prediction::eps, Prediction::x0, Prediction::v, Prediction::score}) {
    INFO("kind " << diffsde::to_string(kind));
    State expected(19, 4);
    diffsde::to_eps(kind, x, pred, alpha, sigma, expected);
    State in_place = pred;
    diffsde::to_eps(kind, x, in_place, alpha, sigma, in_place);
    CHECK(max_abs_diff(in_place, expected) == 0.0);
  }
  // A block of rows of a larger state works in place too.
  State big = random_state(30, 4, 5);
  State expected_block(10, 4);
  diffsde::to_eps(Prediction::v, x.topRows(10), big.middleRows(5, 10), alpha, sigma, expected_block);
  const State untouched_head = big.topRows(5);
  diffsde::to_eps(Prediction::v, x.topRows(10), big.middleRows(5, 10), alpha, sigma,
                  big.middleRows(5, 10));
  CHECK(max_abs_diff(big.middleRows(5, 10), expected_block) == 0.0);
  CHECK(max_abs_diff(big.topRows(5), untouched_head) == 0.0);
}

TEST_CASE("converters reject bad input", "[parameterization]") {
  const State x = random_state(4, 2, 6);
  State out(4, 2);
  const State wrong(3, 2);
  CHECK_THROWS_AS(diffsde::x0_from_eps(x, wrong, 0.6, 0.8, out), diffsde::Error);
  State wrong_out(4, 3);
  CHECK_THROWS_AS(diffsde::eps_from_x0(x, x, 0.6, 0.8, wrong_out), diffsde::Error);
  // Division by alpha = 0 or sigma = 0.
  CHECK_THROWS_WITH(diffsde::x0_from_eps(x, x, 0.0, 1.0, out), Catch::Contains("alpha"));
  CHECK_THROWS_WITH(diffsde::eps_from_x0(x, x, 1.0, 0.0, out), Catch::Contains("sigma"));
  CHECK_THROWS_AS(diffsde::score_from_eps(x, 0.0, out), diffsde::Error);
  // eps_from_v needs alpha^2 + sigma^2 = 1: passing alpha_bar for alpha is caught.
  CHECK_THROWS_WITH(diffsde::eps_from_v(x, x, 0.36, 0.8, out), Catch::Contains("alpha^2 + sigma^2"));
  CHECK_THROWS_AS(diffsde::to_eps(Prediction::v, x, x, 0.36, 0.8, out), diffsde::Error);
  // eps from a score is fine at sigma = 0 (t = 0): eps = 0.
  diffsde::eps_from_score(x, 0.0, out);
  CHECK(out.abs().maxCoeff() == 0.0);
}

TEST_CASE("velocity = eps - x0 converts exactly on any (alpha, sigma), alpha = 0 included", "[parameterization]") {
  // Data and noise given, x and the velocity built from them by hand.
  const State x0 = random_state(3, 4, 21), eps = random_state(3, 4, 22);
  const State velocity = eps - x0;
  // Flow (alpha = 1 - s, sigma = s), VE-like (alpha = 1, sigma > 1), VP and sub-VP points.
  for (auto [alpha, sigma] : std::vector<std::pair<double, double>>{
           {0.75, 0.25}, {1e-6, 1 - 1e-6}, {1.0, 30.0}, {0.6, 0.8}, {0.9, 0.19}, {0.999, 1e-4}}) {
    INFO("alpha = " << alpha << ", sigma = " << sigma);
    const State x = alpha * x0 + sigma * eps;
    State out(3, 4);
    diffsde::eps_from_velocity(x, velocity, alpha, sigma, out);
    CHECK(max_abs_diff(out, eps) < 1e-12 * (1 + 1 / (alpha + sigma)));
    diffsde::velocity_from_eps(x, eps, alpha, sigma, out);
    CHECK(max_abs_diff(out, velocity) < 1e-12 * (1 + sigma / alpha));
    // Through to_eps, in place.
    out = velocity;
    diffsde::to_eps(Prediction::velocity, x, out, alpha, sigma, out);
    CHECK(max_abs_diff(out, eps) < 1e-12 * (1 + 1 / (alpha + sigma)));
  }
  // Pure noise (alpha = 0, flow at t = 1): x = eps, and the velocity does not matter.
  const State x = eps;
  State out(3, 4);
  diffsde::eps_from_velocity(x, velocity, 0.0, 1.0, out);
  CHECK(max_abs_diff(out, eps) == 0);
  // The flow identity eps = x + (1 - s) velocity, hand-computed at s = 0.25.
  State xs(1, 1), vs(1, 1), e(1, 1);
  xs << 2.0;
  vs << 0.5;
  diffsde::eps_from_velocity(xs, vs, 0.75, 0.25, e);
  CHECK(e(0, 0) == 2.0 + 0.75 * 0.5);
  CHECK_THROWS_WITH(diffsde::eps_from_velocity(xs, vs, 0.0, 0.0, e), Catch::Contains("alpha + sigma"));
  CHECK_THROWS_WITH(diffsde::velocity_from_eps(xs, vs, 0.0, 1.0, e), Catch::Contains("alpha"));
}
