// Schedules against exact answers: closed forms evaluated independently (often in long
// double through other identities), series at t -> 0, finite differences, and the
// discrete DDPM products.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "diffsde/error.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"

using namespace diffsde;
using nlohmann::json;

namespace {

constexpr long double kPiL = 3.141592653589793238462643383279502884L;

double rel_err(double a, double b) {
  if (a == b) return 0;
  return std::fabs(a - b) / std::max(std::fabs(a), std::fabs(b));
}

// Exact linear-schedule log alpha_bar in long double.
long double linear_l(long double t, long double b0 = 0.1L, long double b1 = 20.0L) {
  return -(b0 * t + (b1 - b0) * t * t / 2);
}

// Exact cosine log alpha_bar, via cos(theta0 + d)/cos(theta0) = cos d - tan(theta0) sin d
// and cos d - 1 = -2 sin^2(d/2): full relative accuracy near t = 0.
long double cosine_l(long double t, long double s = 0.008L) {
  const long double theta0 = s / (1 + s) * kPiL / 2, d = t / (1 + s) * kPiL / 2;
  const long double sh = std::sin(d / 2);
  return 2 * std::log1p(-2 * sh * sh - std::tan(theta0) * std::sin(d));
}

// Exact lambda of a log alpha_bar, in long double.
long double lambda_of_l(long double l) { return (l - std::log(-std::expm1(l))) / 2; }

std::vector<std::unique_ptr<Schedule>> all_schedules() {
  std::vector<std::unique_ptr<Schedule>> out;
  out.push_back(std::make_unique<VpLinearSchedule>());
  out.push_back(std::make_unique<VpCosineSchedule>());
  out.push_back(std::make_unique<VpDiscreteSchedule>(VpDiscreteSchedule::linear()));
  return out;
}

}  // namespace

TEST_CASE("lambda <-> log alpha_bar conversions", "[schedule]") {
  CHECK(lambda_of_log_alpha_bar(0.0) == std::numeric_limits<double>::infinity());
  CHECK(log_alpha_bar_of_lambda(std::numeric_limits<double>::infinity()) == 0.0);
  // lambda = 0 is alpha_bar = 1/2.
  CHECK(rel_err(log_alpha_bar_of_lambda(0.0), -std::log(2.0)) < 1e-15);
  CHECK(std::fabs(lambda_of_log_alpha_bar(-std::log(2.0))) < 1e-15);
  // alpha_bar = sigmoid(2 lambda), compared with long double.
  for (double lam : {-40.0, -10.0, -1.0, -1e-3, 1e-3, 0.5, 3.0, 10.0, 40.0}) {
    const long double exact = -std::log1p(std::exp(-2.0L * lam));
    CHECK(rel_err(log_alpha_bar_of_lambda(lam), static_cast<double>(exact)) < 1e-14);
  }
  for (double l : {-1e-300, -1e-12, -1e-3, -0.5, -5.0, -30.0, -700.0}) {
    CHECK(rel_err(lambda_of_log_alpha_bar(l), static_cast<double>(lambda_of_l(l))) < 1e-14);
    CHECK(rel_err(log_alpha_bar_of_lambda(lambda_of_log_alpha_bar(l)), l) < 1e-13);
  }
}

TEST_CASE("alpha^2 + sigma^2 = 1 and at() agrees with the single functions", "[schedule]") {
  for (const auto& s : all_schedules()) {
    INFO(s->name());
    for (double t : {0.0, 1e-9, 1e-4, 0.01, 0.3, 0.7, 0.95, s->t_max()}) {
      INFO("t = " << t);
      const double a = s->alpha(t), sg = s->sigma(t);
      CHECK(std::fabs(a * a + sg * sg - 1.0) < 4e-16);
      CHECK(rel_err(s->alpha_bar(t), a * a) < 1e-15);
      const ScheduleAt at = s->at(t);
      CHECK(at.t == t);
      CHECK(at.log_alpha_bar == s->log_alpha_bar(t));
      CHECK(at.alpha == a);
      CHECK(at.sigma == sg);
      CHECK(at.lambda == s->lambda(t));
      CHECK(at.beta == s->beta(t));
    }
    CHECK(s->log_alpha_bar(0.0) == 0.0);
    CHECK(s->alpha_bar(0.0) == 1.0);
    CHECK(s->sigma(0.0) == 0.0);
    CHECK(s->lambda(0.0) == std::numeric_limits<double>::infinity());
    CHECK(s->t_of_log_alpha_bar(0.0) == 0.0);
    CHECK(s->t_of_lambda(std::numeric_limits<double>::infinity()) == 0.0);
  }
}

TEST_CASE("t -> lambda -> t and t -> log alpha_bar -> t round trips", "[schedule]") {
  for (const auto& s : all_schedules()) {
    INFO(s->name());
    std::vector<double> ts = {1e-8, 1e-6, 1e-3, 0.5, std::min(1.0, s->t_max())};
    if (s->name() == "vp_cosine") {
      ts.push_back(s->t_max() - 1e-6);
      ts.push_back(0.99);
    }
    for (double t : ts) {
      INFO("t = " << t);
      CHECK(rel_err(s->t_of_lambda(s->lambda(t)), t) < 1e-12);
      CHECK(rel_err(s->t_of_log_alpha_bar(s->log_alpha_bar(t)), t) < 1e-12);
    }
  }
}

TEST_CASE("vp_linear matches its closed form, including near t = 0", "[schedule]") {
  const VpLinearSchedule s;  // beta0 = 0.1, beta1 = 20
  CHECK(s.beta0() == 0.1);
  CHECK(s.beta1() == 20.0);
  CHECK(s.name() == "vp_linear");
  CHECK(s.t_max() == 1.0);
  CHECK(rel_err(s.log_alpha_bar(1.0), -10.05) < 1e-15);
  CHECK(rel_err(s.beta(1.0), 20.0) < 1e-15);
  CHECK(rel_err(s.beta(0.5), 10.05) < 1e-15);
  for (double t : {1e-12, 1e-10, 1e-8, 1e-5, 1e-3, 0.1, 0.5, 1.0}) {
    INFO("t = " << t);
    const long double l = linear_l(t);
    CHECK(rel_err(s.log_alpha_bar(t), static_cast<double>(l)) < 1e-15);
    CHECK(rel_err(s.sigma(t), static_cast<double>(std::sqrt(-std::expm1(l)))) < 1e-15);
    CHECK(rel_err(s.lambda(t), static_cast<double>(lambda_of_l(l))) < 1e-14);
    CHECK(rel_err(s.alpha(t), static_cast<double>(std::exp(l / 2))) < 1e-15);
  }
  // Series at t -> 0: sigma^2 = beta0 t + O(t^2).
  for (double t : {1e-14, 1e-12, 1e-10}) {
    const double sg = s.sigma(t);
    CHECK(rel_err(sg * sg, 0.1 * t) < 200 * t);
  }
  // Constant beta (beta1 == beta0): l = -beta0 t, inverse t = -l/beta0.
  const VpLinearSchedule c(2.0, 2.0);
  for (double t : {1e-9, 0.25, 1.0}) {
    CHECK(rel_err(c.log_alpha_bar(t), -2.0 * t) < 1e-15);
    CHECK(rel_err(c.t_of_log_alpha_bar(-2.0 * t), t) < 1e-15);
    CHECK(c.beta(t) == 2.0);
  }
  // The quadratic's inverse at an exact value: l = -10.05 is t = 1.
  CHECK(rel_err(s.t_of_log_alpha_bar(-10.05), 1.0) < 1e-15);
  // Invalid parameters.
  CHECK_THROWS_AS(VpLinearSchedule(0.0, 20.0), Error);
  CHECK_THROWS_AS(VpLinearSchedule(1.0, 0.5), Error);
}

TEST_CASE("beta = -d/dt log alpha_bar (central finite difference)", "[schedule]") {
  const VpLinearSchedule lin;
  const VpCosineSchedule cosine;
  for (const Schedule* s : {static_cast<const Schedule*>(&lin), static_cast<const Schedule*>(&cosine)}) {
    INFO(s->name());
    for (double t : {0.01, 0.1, 0.3, 0.5, 0.8, 0.9, 0.99}) {
      INFO("t = " << t);
      const double h = 1e-6;
      const double fd = -(s->log_alpha_bar(t + h) - s->log_alpha_bar(t - h)) / (2 * h);
      CHECK(rel_err(s->beta(t), fd) < 1e-6);
    }
  }
  // The discrete schedule: l is linear on each segment, so the difference inside a
  // segment is exact up to rounding.
  const auto d = VpDiscreteSchedule::linear();
  const int N = d.num_steps();
  for (int n : {0, 1, 10, 500, 998, 999}) {
    const double t = (n + 0.5) / N, h = 0.25 / N;
    const double fd = -(d.log_alpha_bar(t + h) - d.log_alpha_bar(t - h)) / (2 * h);
    CHECK(rel_err(d.beta(t), fd) < 1e-9);
  }
}

TEST_CASE("vp_cosine matches cos^2 and its t_max has beta = beta_max", "[schedule]") {
  const VpCosineSchedule s;  // s = 0.008, beta_max = 999
  CHECK(s.name() == "vp_cosine");
  CHECK(s.s() == 0.008);
  // t_max from beta(t_max) = 999: pi/(1+s) tan(theta) = 999.
  CHECK(rel_err(s.beta(s.t_max()), 999.0) < 1e-12);
  CHECK(std::fabs(s.t_max() - 0.997998) < 1e-6);
  // alpha_bar = f(t)/f(0), f = cos^2((t+s)/(1+s) pi/2), directly in long double.
  const long double th0 = 0.008L / 1.008L * kPiL / 2;
  for (double t : {0.05, 0.2, 0.5, 0.75, 0.9, 0.99}) {
    INFO("t = " << t);
    const long double c = std::cos((t + 0.008L) / 1.008L * kPiL / 2) / std::cos(th0);
    CHECK(rel_err(s.alpha_bar(t), static_cast<double>(c * c)) < 1e-13);
    // beta = pi/(1+s) tan(theta).
    CHECK(rel_err(s.beta(t), static_cast<double>(kPiL / 1.008L *
                                                 std::tan((t + 0.008L) / 1.008L * kPiL / 2))) < 1e-13);
  }
  // Near t = 0: an independent identity keeps full relative accuracy.
  for (double t : {1e-12, 1e-8, 1e-5, 1e-3, 0.5}) {
    INFO("t = " << t);
    const long double l = cosine_l(t);
    CHECK(rel_err(s.log_alpha_bar(t), static_cast<double>(l)) < 1e-14);
    CHECK(rel_err(s.sigma(t), static_cast<double>(std::sqrt(-std::expm1(l)))) < 1e-14);
    CHECK(rel_err(s.lambda(t), static_cast<double>(lambda_of_l(l))) < 1e-14);
  }
  // Series: log alpha_bar = -beta(0) t + O(t^2), beta(0) = pi/(1+s) tan(theta0).
  const double beta0 = static_cast<double>(kPiL / 1.008L * std::tan(th0));
  CHECK(rel_err(s.beta(0.0), beta0) < 1e-14);
  CHECK(rel_err(s.log_alpha_bar(1e-12), -beta0 * 1e-12) < 1e-10);
  // Where alpha_bar reaches 0 (t = 1), the inverse returns 1.
  CHECK(rel_err(s.t_of_log_alpha_bar(-std::numeric_limits<double>::infinity()), 1.0) < 1e-15);
  CHECK_THROWS_AS(VpCosineSchedule(0.0), Error);
  CHECK_THROWS_AS(VpCosineSchedule(0.008, 0.01), Error);  // below beta(0)
  // A different cap: beta(t_max) = 50.
  const VpCosineSchedule capped(0.008, 50.0);
  CHECK(rel_err(capped.beta(capped.t_max()), 50.0) < 1e-12);
}

TEST_CASE("vp_discrete: knots are the DDPM cumulative products", "[schedule]") {
  const auto s = VpDiscreteSchedule::linear(1e-4, 0.02, 1000);
  CHECK(s.name() == "vp_discrete");
  const int N = s.num_steps();
  REQUIRE(N == 1000);
  // numpy.linspace(1e-4, 0.02, 1000).
  CHECK(s.betas().front() == 1e-4);
  CHECK(s.betas().back() == 0.02);
  for (int i = 0; i < N; ++i)
    CHECK(std::fabs(s.betas()[i] - (1e-4L + i * (0.02L - 1e-4L) / 999)) < 1e-17);

  CHECK(s.alpha_bar(0.0) == 1.0);
  CHECK(s.beta(0.0) == -N * std::log1p(-1e-4));
  long double prod = 1;
  for (int n = 0; n < N; ++n) {
    prod *= 1 - static_cast<long double>(s.betas()[n]);
    const double t = s.t_of_step(n);
    CHECK(t == static_cast<double>(n + 1) / N);
    CHECK(rel_err(s.log_alpha_bars()[n], static_cast<double>(std::log(prod))) < 1e-13);
    CHECK(rel_err(s.alpha_bar(t), static_cast<double>(prod)) < 1e-13);
    CHECK(s.t_of_log_alpha_bar(s.log_alpha_bars()[n]) == t);
    // At a knot, beta is that of the segment on its left (segment n).
    CHECK(rel_err(s.beta(t), -N * std::log1p(-s.betas()[n])) < 1e-15);
  }
  CHECK(s.t_of_step(N - 1) == 1.0);
  // Piecewise linear in between: the midpoint is the mean of its knots.
  for (int n : {0, 1, 499, 999}) {
    const double left = n == 0 ? 0.0 : s.log_alpha_bars()[n - 1];
    const double mid = 0.5 * (left + s.log_alpha_bars()[n]);
    CHECK(rel_err(s.log_alpha_bar((n + 0.5) / N), mid) < 1e-14);
    CHECK(rel_err(s.t_of_log_alpha_bar(mid), (n + 0.5) / N) < 1e-13);
  }
}

TEST_CASE("vp_discrete: explicit betas and validation", "[schedule]") {
  const VpDiscreteSchedule s({0.1, 0.5, 0.2});
  CHECK(s.num_steps() == 3);
  CHECK(rel_err(s.alpha_bar(1.0 / 3), 0.9) < 1e-15);
  CHECK(rel_err(s.alpha_bar(2.0 / 3), 0.45) < 1e-15);
  CHECK(rel_err(s.alpha_bar(1.0), 0.36) < 1e-15);
  CHECK(rel_err(s.beta(0.5), -3 * std::log(0.5)) < 1e-15);
  CHECK(rel_err(s.beta(2.0 / 3), -3 * std::log(0.5)) < 1e-15);
  CHECK(rel_err(s.beta(0.7), -3 * std::log(0.8)) < 1e-15);
  // One step: log alpha_bar = t log(1 - b).
  const auto one = VpDiscreteSchedule::linear(0.3, 0.3, 1);
  CHECK(rel_err(one.log_alpha_bar(0.25), 0.25 * std::log(0.7)) < 1e-15);
  CHECK(rel_err(one.t_of_lambda(one.lambda(0.25)), 0.25) < 1e-14);

  CHECK_THROWS_AS(VpDiscreteSchedule({}), Error);
  CHECK_THROWS_AS(VpDiscreteSchedule({0.1, 1.0}), Error);
  CHECK_THROWS_AS(VpDiscreteSchedule({0.0}), Error);
  CHECK_THROWS_AS(VpDiscreteSchedule({-0.1}), Error);
  CHECK_THROWS_WITH(VpDiscreteSchedule({0.1, 1.5}), Catch::Contains("betas[1]"));
  CHECK_THROWS_AS(VpDiscreteSchedule::linear(1e-4, 0.02, 0), Error);
}

TEST_CASE("schedules from the registry", "[schedule][registry]") {
  auto& reg = schedule_registry();
  for (const char* name : {"vp_linear", "vp_cosine", "vp_discrete"}) REQUIRE(reg.find(name) != nullptr);

  auto lin = reg.create(json{{"name", "vp_linear"}, {"beta1", 10.0}}, "schedule");
  CHECK(lin->name() == "vp_linear");
  CHECK(rel_err(lin->log_alpha_bar(1.0), -(0.1 + 9.9 / 2)) < 1e-15);

  auto cosine = reg.create_default("vp_cosine");
  CHECK(rel_err(cosine->beta(cosine->t_max()), 999.0) < 1e-12);

  auto disc = reg.create_default("vp_discrete");
  const auto* d = dynamic_cast<const VpDiscreteSchedule*>(disc.get());
  REQUIRE(d != nullptr);
  CHECK(d->num_steps() == 1000);
  CHECK(d->betas().back() == 0.02);

  auto expl = reg.create(json{{"name", "vp_discrete"}, {"betas", {0.1, 0.5}}}, "schedule");
  CHECK(rel_err(expl->alpha_bar(1.0), 0.45) < 1e-15);

  auto fails_at = [&](const json& j, const std::string& path) {
    INFO(j.dump());
    try {
      reg.create(j, "schedule");
      FAIL("no error");
    } catch (const ConfigError& e) {
      CHECK(e.path() == path);
    }
  };
  fails_at({{"name", "vp_linear"}, {"beta2", 1.0}}, "schedule.beta2");
  fails_at({{"name", "vp_quadratic"}}, "schedule.name");
  fails_at({{"name", "vp_linear"}, {"beta0", 0.0}}, "schedule.beta0");
  fails_at({{"name", "vp_linear"}, {"beta0", 5.0}, {"beta1", 1.0}}, "schedule.beta1");
  fails_at({{"name", "vp_cosine"}, {"s", -0.1}}, "schedule.s");
  fails_at({{"name", "vp_cosine"}, {"beta_max", 0.001}}, "schedule.beta_max");
  fails_at({{"name", "vp_discrete"}, {"num_steps", 0}}, "schedule.num_steps");
  fails_at({{"name", "vp_discrete"}, {"beta_end", 1.0}}, "schedule.beta_end");
  fails_at({{"name", "vp_discrete"}, {"beta_start", 0.0}}, "schedule.beta_start");
  fails_at({{"name", "vp_discrete"}, {"betas", {0.1, 1.5}}}, "schedule.betas[1]");
  fails_at({{"name", "vp_discrete"}, {"betas", json::array()}}, "schedule.betas");
  fails_at({{"name", "vp_discrete"}, {"betas", {0.1}}, {"num_steps", 10}}, "schedule.betas");
}
