// Schedules against exact answers: closed forms evaluated independently (often in long
// double through other identities), series at t -> 0, finite differences, and the
// discrete DDPM products.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cfloat>
#include <string>
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
  CHECK_THROWS_AS(VpDiscreteSchedule({1.0, 0.1}), Error);  // only the last beta may be 1
  CHECK_NOTHROW(VpDiscreteSchedule({0.1, 1.0}));
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
  fails_at({{"name", "vp_discrete"}, {"betas", {1.0, 0.5}}}, "schedule.betas[0]");
  fails_at({{"name", "vp_discrete"}, {"betas", json::array()}}, "schedule.betas");
  fails_at({{"name", "vp_discrete"}, {"betas", {0.1}}, {"num_steps", 10}}, "schedule.betas");
}

// --- diffusers' beta schedules, transcribed here from their definitions ----------------

namespace {

// numpy.linspace(start, stop, num): start + i (stop - start)/(num - 1), last value = stop.
std::vector<double> np_linspace(double start, double stop, int num) {
  std::vector<double> out;
  if (num == 1) return {start};
  const double step = (stop - start) / (num - 1);
  for (int i = 0; i < num; ++i) out.push_back(i * step + start);
  out.back() = stop;
  return out;
}

std::vector<double> ref_scaled_linear(double beta_start, double beta_end, int num) {
  std::vector<double> out;
  for (double r : np_linspace(std::sqrt(beta_start), std::sqrt(beta_end), num)) out.push_back(r * r);
  return out;
}

// diffusers' betas_for_alpha_bar with the cosine alpha_bar.
std::vector<double> ref_squaredcos_cap_v2(int num, double max_beta) {
  const double pi = 3.14159265358979323846;
  std::vector<double> out;
  for (int i = 0; i < num; ++i) {
    const double t1 = static_cast<double>(i) / num, t2 = static_cast<double>(i + 1) / num;
    const double c1 = std::cos((t1 + 0.008) / 1.008 * pi / 2), c2 = std::cos((t2 + 0.008) / 1.008 * pi / 2);
    out.push_back(std::min(1 - (c2 * c2) / (c1 * c1), max_beta));
  }
  return out;
}

std::vector<double> ref_sigmoid(double beta_start, double beta_end, int num) {
  std::vector<double> out;
  for (double x : np_linspace(-6.0, 6.0, num))
    out.push_back(1.0 / (1.0 + std::exp(-x)) * (beta_end - beta_start) + beta_start);
  return out;
}

// Lin et al. 2024, Algorithm 1 (enforce zero terminal SNR), step by step.
std::vector<double> ref_rescale_zero_snr(const std::vector<double>& betas) {
  const std::size_t N = betas.size();
  std::vector<double> alphas(N), sqrt_ab(N);
  for (std::size_t n = 0; n < N; ++n) alphas[n] = 1 - betas[n];
  double cumprod = 1;
  for (std::size_t n = 0; n < N; ++n) {
    cumprod *= alphas[n];
    sqrt_ab[n] = std::sqrt(cumprod);
  }
  const double first = sqrt_ab[0], last = sqrt_ab[N - 1];
  for (double& a : sqrt_ab) a -= last;
  for (double& a : sqrt_ab) a *= first / (first - last);
  std::vector<double> ab(N);
  for (std::size_t n = 0; n < N; ++n) ab[n] = sqrt_ab[n] * sqrt_ab[n];
  alphas[0] = ab[0];
  for (std::size_t n = 1; n < N; ++n) alphas[n] = ab[n] / ab[n - 1];
  std::vector<double> out(N);
  for (std::size_t n = 0; n < N; ++n) out[n] = 1 - alphas[n];
  return out;
}

// Equal to a few ulps.
void check_betas(const std::vector<double>& got, const std::vector<double>& expected) {
  REQUIRE(got.size() == expected.size());
  for (std::size_t n = 0; n < got.size(); ++n) {
    INFO("n = " << n << ": " << got[n] << " vs " << expected[n]);
    CHECK(rel_err(got[n], expected[n]) <= 4 * DBL_EPSILON);
  }
}

std::unique_ptr<Schedule> make(const json& params) {
  json j = params;
  j["name"] = "vp_discrete";
  return schedule_registry().create(j, "schedule");
}

const VpDiscreteSchedule& discrete(const std::unique_ptr<Schedule>& s) {
  const auto* d = dynamic_cast<const VpDiscreteSchedule*>(s.get());
  REQUIRE(d != nullptr);
  return *d;
}

}  // namespace

TEST_CASE("vp_discrete: diffusers' beta schedules against their formulas", "[schedule]") {
  // Stable Diffusion's training schedule.
  check_betas(VpDiscreteSchedule::scaled_linear(0.00085, 0.012, 1000).betas(),
              ref_scaled_linear(0.00085, 0.012, 1000));
  CHECK(rel_err(VpDiscreteSchedule::scaled_linear(0.00085, 0.012, 1000).betas().back(), 0.012) < 1e-15);
  check_betas(VpDiscreteSchedule::squaredcos_cap_v2(1000).betas(), ref_squaredcos_cap_v2(1000, 0.999));
  CHECK(VpDiscreteSchedule::squaredcos_cap_v2(1000).betas().back() == 0.999);  // capped
  check_betas(VpDiscreteSchedule::sigmoid(1e-4, 0.02, 1000).betas(), ref_sigmoid(1e-4, 0.02, 1000));
  for (int N : {1, 2, 7}) {
    INFO("N = " << N);
    check_betas(VpDiscreteSchedule::named("linear", 1e-4, 0.02, N).betas(), np_linspace(1e-4, 0.02, N));
    check_betas(VpDiscreteSchedule::named("scaled_linear", 0.00085, 0.012, N).betas(),
                ref_scaled_linear(0.00085, 0.012, N));
    check_betas(VpDiscreteSchedule::named("squaredcos_cap_v2", 0, 0, N).betas(), ref_squaredcos_cap_v2(N, 0.999));
    check_betas(VpDiscreteSchedule::named("squaredcos_cap_v2", 0, 0, N, 0.3).betas(), ref_squaredcos_cap_v2(N, 0.3));
    check_betas(VpDiscreteSchedule::named("sigmoid", 1e-4, 0.02, N).betas(), ref_sigmoid(1e-4, 0.02, N));
  }
  // max_beta = 1: the last cosine beta rounds to 1 (alpha_bar(1) = cos(pi/2)^2 ~ 4e-33).
  CHECK(VpDiscreteSchedule::squaredcos_cap_v2(7, 1.0).betas().back() == 1.0);
  CHECK_THROWS_AS(VpDiscreteSchedule::squaredcos_cap_v2(7, 0.0), Error);
  CHECK_THROWS_AS(VpDiscreteSchedule::squaredcos_cap_v2(7, 1.5), Error);
  CHECK_THROWS_WITH(VpDiscreteSchedule::named("cosine", 1e-4, 0.02, 7), Catch::Contains("squaredcos_cap_v2"));

  // The registry makes the same schedules; the defaults are unchanged, bit for bit.
  check_betas(discrete(make({{"beta_schedule", "scaled_linear"}, {"beta_start", 0.00085}, {"beta_end", 0.012},
                             {"num_steps", 1000}}))
                  .betas(),
              ref_scaled_linear(0.00085, 0.012, 1000));
  check_betas(discrete(make({{"beta_schedule", "squaredcos_cap_v2"}, {"num_steps", 7}, {"max_beta", 0.5}})).betas(),
              ref_squaredcos_cap_v2(7, 0.5));
  check_betas(discrete(make({{"beta_schedule", "sigmoid"}, {"num_steps", 7}})).betas(), ref_sigmoid(1e-4, 0.02, 7));
  CHECK(discrete(make(json::object())).betas() == VpDiscreteSchedule::linear(1e-4, 0.02, 1000).betas());
  CHECK(discrete(make({{"beta_schedule", "linear"}})).betas() == VpDiscreteSchedule::linear().betas());
  CHECK(discrete(make({{"trained_betas", {0.1, 0.5}}})).betas() == std::vector<double>{0.1, 0.5});
}

TEST_CASE("vp_discrete: rescaling to zero terminal SNR (Lin et al. 2024)", "[schedule]") {
  for (const json& params :
       {json{{"beta_schedule", "scaled_linear"}, {"beta_start", 0.00085}, {"beta_end", 0.012}, {"num_steps", 1000}},
        json{{"num_steps", 7}}, json{{"beta_schedule", "squaredcos_cap_v2"}, {"num_steps", 7}},
        json{{"beta_schedule", "sigmoid"}, {"num_steps", 7}}, json{{"betas", {0.1, 0.2, 0.3}}}}) {
    INFO(params.dump());
    const auto original_ptr = make(params);
    const auto& original = discrete(original_ptr);
    json with = params;
    with["rescale_betas_zero_snr"] = true;
    const auto rescaled_ptr = make(with);
    const auto& rescaled = discrete(rescaled_ptr);
    const int N = rescaled.num_steps();
    REQUIRE(N == original.num_steps());

    check_betas(rescaled.betas(), ref_rescale_zero_snr(original.betas()));
    CHECK(rescaled.betas().back() == 1.0);
    CHECK(rescaled.zero_terminal_snr());
    CHECK(rescaled.log_alpha_bars().back() == -std::numeric_limits<double>::infinity());
    CHECK(rescaled.alpha_bar(1.0) == 0.0);
    // The first alpha_bar keeps its value.
    CHECK(rel_err(std::exp(rescaled.log_alpha_bars()[0]), std::exp(original.log_alpha_bars()[0])) < 1e-15);
    // sqrt(alpha_bar) is an affine function of the original one: c (a_n - a_last), with
    // c = a_0/(a_0 - a_last).
    const double a0 = std::exp(0.5 * original.log_alpha_bars()[0]);
    const double a_last = std::exp(0.5 * original.log_alpha_bars().back());
    const double c = a0 / (a0 - a_last);
    for (int n = 0; n < N; ++n) {
      INFO("n = " << n);
      const double expected = c * (std::exp(0.5 * original.log_alpha_bars()[n]) - a_last);
      const double got = std::exp(0.5 * rescaled.log_alpha_bars()[n]);
      if (n == N - 1)
        CHECK(got == 0.0);
      else
        CHECK(rel_err(got, expected) < 1e-10);
    }
  }
  CHECK_THROWS_AS(VpDiscreteSchedule::rescale_zero_terminal_snr({0.1}), Error);
}

TEST_CASE("vp_discrete: final_alpha_bar replaces the last step's alpha_bar", "[schedule]") {
  const double tiny = std::ldexp(1.0, -24);  // diffusers' choice with zero terminal SNR
  const auto s_ptr = make({{"beta_schedule", "scaled_linear"}, {"beta_start", 0.00085}, {"beta_end", 0.012},
                           {"num_steps", 1000}, {"rescale_betas_zero_snr", true}, {"final_alpha_bar", tiny}});
  const auto& s = discrete(s_ptr);
  CHECK(rel_err(s.log_alpha_bars().back(), std::log(tiny)) < 1e-14);
  CHECK_FALSE(s.zero_terminal_snr());
  CHECK(rel_err(s.alpha_bar(1.0), tiny) < 1e-13);
  CHECK(std::isfinite(s.lambda(1.0)));
  // The other betas are those of the rescaled schedule.
  const auto& rescaled = VpDiscreteSchedule::rescale_zero_terminal_snr(
      VpDiscreteSchedule::scaled_linear(0.00085, 0.012, 1000).betas());
  for (std::size_t n = 0; n + 1 < rescaled.size(); ++n) CHECK(s.betas()[n] == rescaled[n]);

  // Without rescaling, and for one step.
  const auto two = make({{"betas", {0.5, 0.1}}, {"final_alpha_bar", 0.25}});
  CHECK(rel_err(two->alpha_bar(1.0), 0.25) < 1e-15);
  CHECK(rel_err(two->alpha_bar(0.5), 0.5) < 1e-15);
  const auto one = make({{"num_steps", 1}, {"final_alpha_bar", 0.0}});
  CHECK(discrete(one).betas().back() == 1.0);
  CHECK(one->alpha_bar(1.0) == 0.0);
}

TEST_CASE("vp_discrete: with a last beta of 1, alpha is linear in t on the last segment", "[schedule]") {
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<double> sd = VpDiscreteSchedule::rescale_zero_terminal_snr(
      VpDiscreteSchedule::scaled_linear(0.00085, 0.012, 1000).betas());
  for (const std::vector<double>& betas : {sd, std::vector<double>{0.1, 0.3, 1.0}, std::vector<double>{1.0}}) {
    const VpDiscreteSchedule s(betas);
    const int N = s.num_steps();
    INFO("N = " << N);
    REQUIRE(s.zero_terminal_snr());
    const double t_knot = N == 1 ? 0.0 : s.t_of_step(N - 2);
    const double l_knot = N == 1 ? 0.0 : s.log_alpha_bars()[N - 2];
    const double alpha_knot = std::exp(0.5 * l_knot);
    // Continuity at the last knot, and alpha(t) = alpha_knot (N - t N) after it.
    CHECK(s.log_alpha_bar(t_knot) == l_knot);
    const double just_after = std::nextafter(t_knot, 1.0);
    CHECK(std::fabs(s.log_alpha_bar(just_after) - l_knot) < 1e-12);
    for (double f : {1e-9, 0.001, 0.25, 0.5, 0.9, 0.999999}) {
      const double t = t_knot + f / N;
      INFO("t = " << t);
      CHECK(std::fabs(s.alpha(t) - alpha_knot * (1 - f)) < 1e-12 * alpha_knot);
      // Round trip t -> log alpha_bar -> t.
      CHECK(std::fabs(s.t_of_log_alpha_bar(s.log_alpha_bar(t)) - t) < 1e-12);
      CHECK(std::fabs(s.t_of_lambda(s.lambda(t)) - t) < 1e-12);
      // beta = -d/dt log alpha_bar = 2N/(N - tN), N - tN = 1 - f.
      CHECK(rel_err(s.beta(t), 2.0 * N / (1 - f)) < 1e-6);
    }
    // The end: alpha = 0, sigma = 1, lambda = -inf, beta = +inf; no NaN anywhere.
    CHECK(s.log_alpha_bar(1.0) == -inf);
    CHECK(s.alpha(1.0) == 0.0);
    CHECK(s.sigma(1.0) == 1.0);
    CHECK(s.lambda(1.0) == -inf);
    CHECK(s.beta(1.0) == inf);
    CHECK(s.t_of_log_alpha_bar(-inf) == 1.0);
    CHECK(s.t_of_lambda(-inf) == 1.0);
    const ScheduleAt at = s.at(1.0);
    CHECK(at.alpha == 0.0);
    CHECK(at.sigma == 1.0);
    CHECK(at.lambda == -inf);
    CHECK(at.beta == inf);
    CHECK(at.log_alpha_bar == -inf);
    for (int i = 0; i <= 4000; ++i) {
      const double t = 1.25 * i / 4000.0;
      const ScheduleAt a = s.at(t);
      INFO("t = " << t);
      CHECK_FALSE((std::isnan(a.log_alpha_bar) || std::isnan(a.alpha) || std::isnan(a.sigma) ||
                   std::isnan(a.lambda) || std::isnan(a.beta)));
      CHECK_FALSE(std::isnan(s.t_of_log_alpha_bar(a.log_alpha_bar)));
    }
  }
}

TEST_CASE("vp_discrete: diffusers' parameters from the registry, and their errors", "[schedule][registry]") {
  auto fails_at = [](const json& params, const std::string& path, const std::string& text = "") {
    INFO(params.dump());
    try {
      make(params);
      FAIL("no error");
    } catch (const ConfigError& e) {
      CHECK(e.path() == path);
      CHECK_THAT(e.what(), Catch::Contains(text));
    }
  };
  fails_at({{"beta_schedule", "cosine"}}, "schedule.beta_schedule",
           "linear, scaled_linear, squaredcos_cap_v2, sigmoid");
  fails_at({{"beta_schedule", "squaredcos_cap_v2"}, {"beta_start", 1e-4}}, "schedule.beta_start");
  fails_at({{"beta_schedule", "squaredcos_cap_v2"}, {"beta_end", 0.02}}, "schedule.beta_end");
  fails_at({{"beta_schedule", "squaredcos_cap_v2"}, {"max_beta", 0.0}}, "schedule.max_beta");
  fails_at({{"beta_schedule", "squaredcos_cap_v2"}, {"max_beta", 1.5}}, "schedule.max_beta");
  fails_at({{"beta_schedule", "scaled_linear"}, {"max_beta", 0.5}}, "schedule.max_beta");
  fails_at({{"beta_schedule", "scaled_linear"}, {"beta_end", 1.0}}, "schedule.beta_end");
  fails_at({{"betas", {0.1}}, {"trained_betas", {0.1}}}, "schedule.trained_betas");
  fails_at({{"trained_betas", {0.1}}, {"beta_schedule", "linear"}}, "schedule.trained_betas");
  fails_at({{"trained_betas", {0.1, 1.5}}}, "schedule.trained_betas[1]");
  fails_at({{"trained_betas", json::array()}}, "schedule.trained_betas");
  fails_at({{"num_steps", 1}, {"rescale_betas_zero_snr", true}}, "schedule.rescale_betas_zero_snr");
  fails_at({{"final_alpha_bar", -0.1}}, "schedule.final_alpha_bar");
  fails_at({{"betas", {0.5, 0.1}}, {"final_alpha_bar", 0.5}}, "schedule.final_alpha_bar", "[0, 0.5)");
  fails_at({{"num_steps", 1}, {"final_alpha_bar", 1.0}}, "schedule.final_alpha_bar");
  fails_at({{"final_alpha_bar", "small"}}, "schedule.final_alpha_bar");
  // Explicit betas ending in 1, and rescaling them.
  CHECK(make({{"trained_betas", {0.1, 1.0}}})->alpha_bar(1.0) == 0.0);
  CHECK(make({{"betas", {0.1, 0.2}}, {"rescale_betas_zero_snr", true}})->alpha_bar(1.0) == 0.0);
}
