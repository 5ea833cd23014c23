// Conditioning and guidance against exact answers: the labelled mixture's eps and density per
// class (an independent transcription of the mixture formulas), the exact PF-ODE flow of a
// one-component class, the guided eps formula in the eps, x0 and v spaces, the rescale and
// thresholding formulas on constructed inputs, and per-sample inputs that give the same
// samples whatever the split (threads, first_sample shards, batched or two-call guidance).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "diffsde/conditioning.hpp"
#include "diffsde/config.hpp"
#include "diffsde/driver.hpp"
#include "diffsde/error.hpp"
#include "diffsde/grid.hpp"
#include "diffsde/noise.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/scores/analytic.hpp"
#include "diffsde/scores/guidance.hpp"

using namespace diffsde;
using nlohmann::json;

namespace {

bool bitwise_equal(const State& a, const State& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(double) * static_cast<std::size_t>(a.size())) == 0;
}

// Three 2-D components; class 0 = {0}, class 1 = {1, 2}, class 2 = {0, 2} (shared component).
std::shared_ptr<GmmModel> labelled(std::shared_ptr<const Schedule> schedule) {
  Eigen::VectorXd w(3);
  w << 0.25, 0.35, 0.40;
  Eigen::MatrixXd m(3, 2), s(3, 2);
  m << -2.0, -1.0, 1.5, -1.5, 0.5, 2.0;
  s << 0.40, 0.30, 0.30, 0.50, 0.50, 0.35;
  return std::make_shared<GmmModel>(std::move(schedule), w, m, s, std::vector<std::vector<int>>{{0}, {1, 2}, {0, 2}});
}

// The mixture of `members` at time t, written out: eps = sigma sum_k r_k (x - alpha mu_k) / v_k
// and log p = log sum_k w_k N(x; alpha mu_k, v_k), with r_k the posterior weights.
struct Mixture {
  std::vector<double> w;
  std::vector<std::vector<double>> mu, sd;
};
Mixture members(const std::vector<int>& ks) {
  const double W[3] = {0.25, 0.35, 0.40};
  const double M[3][2] = {{-2.0, -1.0}, {1.5, -1.5}, {0.5, 2.0}};
  const double S[3][2] = {{0.40, 0.30}, {0.30, 0.50}, {0.50, 0.35}};
  Mixture out;
  for (int k : ks) {
    out.w.push_back(W[k]);
    out.mu.push_back({M[k][0], M[k][1]});
    out.sd.push_back({S[k][0], S[k][1]});
  }
  return out;
}
void exact(const Mixture& mix, const Schedule& sch, double t, const double* x, double* eps, double* logp) {
  const double a = sch.alpha(t), s = sch.sigma(t);
  std::vector<double> l(mix.w.size());
  double wsum = 0;
  for (double w : mix.w) wsum += w;
  for (std::size_t k = 0; k < mix.w.size(); ++k) {
    l[k] = std::log(mix.w[k] / wsum);
    for (int j = 0; j < 2; ++j) {
      const double v = a * a * mix.sd[k][j] * mix.sd[k][j] + s * s;
      const double d = x[j] - a * mix.mu[k][j];
      l[k] += -0.5 * (d * d / v + std::log(2 * M_PI * v));
    }
  }
  const double lmax = *std::max_element(l.begin(), l.end());
  double z = 0;
  for (double lk : l) z += std::exp(lk - lmax);
  *logp = lmax + std::log(z);
  for (int j = 0; j < 2; ++j) {
    double g = 0;
    for (std::size_t k = 0; k < mix.w.size(); ++k) {
      const double v = a * a * mix.sd[k][j] * mix.sd[k][j] + s * s;
      g += std::exp(l[k] - *logp) * (x[j] - a * mix.mu[k][j]) / v;
    }
    eps[j] = s * g;
  }
}

std::shared_ptr<const Conditioning> labels(std::vector<std::int64_t> y) {
  auto c = std::make_shared<Conditioning>();
  c->add(ModelInput::ints("y", {}, std::move(y)));
  return c;
}

State some_x(long n) {
  State x(n, 2);
  for (long r = 0; r < n; ++r) {
    x(r, 0) = -2.5 + 0.9 * static_cast<double>(r);
    x(r, 1) = 1.7 - 0.6 * static_cast<double>(r);
  }
  return x;
}

}  // namespace

TEST_CASE("The labelled mixture gives each row the exact eps and log-density of its class", "[conditioning]") {
  auto sch = std::make_shared<VpLinearSchedule>();
  const auto gmm = labelled(sch);
  const std::vector<std::int64_t> y = {0, 1, 2, -1, 1, 0, 2};
  const auto cond = labels(y);
  const State x = some_x(static_cast<long>(y.size()));
  const std::vector<std::vector<int>> classes = {{0}, {1, 2}, {0, 2}, {0, 1, 2}};
  for (double t : {1e-3, 0.1, 0.5, 1.0}) {
    ModelRows rows;
    rows.inputs = cond.get();
    State eps(x.rows(), 2);
    BatchVector logp(x.rows());
    gmm->eps_rows(x, t, rows, eps);
    gmm->log_density_rows(x, t, rows, logp);
    for (Eigen::Index r = 0; r < x.rows(); ++r) {
      const auto& ks = classes[static_cast<std::size_t>(y[static_cast<std::size_t>(r)] < 0 ? 3 : y[static_cast<std::size_t>(r)])];
      double e[2], lp;
      exact(members(ks), *sch, t, &x(r, 0), e, &lp);
      CHECK(eps(r, 0) == Approx(e[0]).epsilon(1e-12).margin(1e-14));
      CHECK(eps(r, 1) == Approx(e[1]).epsilon(1e-12).margin(1e-14));
      CHECK(logp(r) == Approx(lp).epsilon(1e-12));
    }
    // Without inputs, and with label -1, the whole mixture, bit for bit.
    State plain(x.rows(), 2), none(x.rows(), 2);
    gmm->eps(x, t, plain);
    gmm->eps_rows(x, t, ModelRows{}, none);
    CHECK(bitwise_equal(plain, none));
  }
  // A shared label and row offsets (input_row0) pick the right rows.
  ModelRows rows;
  rows.inputs = cond.get();
  rows.input_row0 = 1;
  State e3(3, 2), e3_ref(3, 2);
  gmm->eps_rows(x.middleRows(1, 3), 0.3, rows, e3);
  const State x3 = x.middleRows(1, 3);
  for (Eigen::Index r = 0; r < 3; ++r) {
    const std::int64_t c = y[static_cast<std::size_t>(r + 1)];
    const Model& m = c < 0 ? static_cast<const Model&>(*gmm) : gmm->class_model(static_cast<int>(c));
    m.eps(x3.middleRows(r, 1), 0.3, e3_ref.middleRows(r, 1));
  }
  CHECK(bitwise_equal(e3, e3_ref));
  CHECK_THROWS_WITH(gmm->class_model(3), Catch::Contains("class 3 does not exist"));
}

TEST_CASE("Labelled mixture: bad classes and labels are refused by name", "[conditioning]") {
  auto sch = std::make_shared<VpLinearSchedule>();
  Eigen::VectorXd w = Eigen::VectorXd::Ones(2);
  Eigen::MatrixXd m = Eigen::MatrixXd::Zero(2, 1), s = Eigen::MatrixXd::Ones(2, 1);
  CHECK_THROWS_WITH(GmmModel(sch, w, m, s, {{0}, {}}), Catch::Contains("classes[1] is empty"));
  CHECK_THROWS_WITH(GmmModel(sch, w, m, s, {{0, 2}}), Catch::Contains("classes[0] names component 2"));
  CHECK_THROWS_WITH(GmmModel(sch, w, m, s, {{1, 1}}), Catch::Contains("twice"));
  const GmmModel g(sch, w, m, s, {{0}, {1}});
  REQUIRE(g.inputs().size() == 1);
  Conditioning bad;
  bad.add(ModelInput::ints("y", {}, {0, 2}));
  std::string input;
  CHECK_THAT(check_conditioning(g.inputs(), bad, 2, &input), Catch::Contains("label 2 (row 1) is out of range"));
  CHECK(input == "y");
  Conditioning shaped;
  shaped.add(ModelInput::ints("y", {2}, {0, 1}));
  CHECK_THAT(check_conditioning(g.inputs(), shaped, 1), Catch::Contains("per-sample shape (2,)"));
  Conditioning floats;
  floats.add(ModelInput::floats("y", {}, {0.0}));
  CHECK_THAT(check_conditioning(g.inputs(), floats, 1), Catch::Contains("is float64, the model takes int64"));
  Conditioning rows;
  rows.add(ModelInput::ints("y", {}, {0, 1, 0}));
  CHECK_THAT(check_conditioning(g.inputs(), rows, 2), Catch::Contains("has 3 rows; expected 2"));
  Conditioning other;
  other.add(ModelInput::ints("label", {}, {0}));
  CHECK_THAT(check_conditioning(g.inputs(), other, 2), Catch::Contains("has no input 'label'"));
  CHECK_THAT(check_conditioning({}, other, 2), Catch::Contains("takes no conditioning"));
  CHECK_THROWS_WITH(ModelInput::ints("y", {}, {}), Catch::Contains("has no rows"));
  CHECK_THROWS_WITH(ModelInput::floats("e", {3}, {1, 2}), Catch::Contains("not a whole number of rows"));
  Conditioning twice;
  twice.add(ModelInput::ints("y", {}, {0}));
  CHECK_THROWS_WITH(twice.add(ModelInput::ints("y", {}, {1})), Catch::Contains("given twice"));
}

TEST_CASE("Guided eps is eps_u + s (eps_c - eps_u), the same in the eps, x0 and v spaces", "[conditioning]") {
  auto sch = std::make_shared<VpLinearSchedule>();
  const auto gmm = labelled(sch);
  const std::vector<std::int64_t> y = {0, 1, 2, 1, 0};
  const auto cond = labels(y);
  const State x = some_x(5);
  for (double s : {0.0, 1.0, 2.5, 7.5}) {
    GuidanceOptions o;
    o.scale = s;
    const GuidedModel guided(gmm, sch, cond, nullptr, o, 5);
    for (double t : {0.02, 0.4, 0.9}) {
      State g(5, 2);
      guided.eps(x, t, g);
      for (Eigen::Index r = 0; r < 5; ++r) {
        double ec[2], eu[2], lp;
        exact(members(y[static_cast<std::size_t>(r)] == 0 ? std::vector<int>{0}
                      : y[static_cast<std::size_t>(r)] == 1 ? std::vector<int>{1, 2}
                                                            : std::vector<int>{0, 2}),
              *sch, t, &x(r, 0), ec, &lp);
        exact(members({0, 1, 2}), *sch, t, &x(r, 0), eu, &lp);
        for (int j = 0; j < 2; ++j) CHECK(g(r, j) == Approx(eu[j] + s * (ec[j] - eu[j])).epsilon(1e-11).margin(1e-13));
      }
      for (Prediction space : {Prediction::x0, Prediction::v}) {
        GuidanceOptions os = o;
        os.space = space;
        State gs(5, 2);
        GuidedModel(gmm, sch, cond, nullptr, os, 5).eps(x, t, gs);
        CHECK((gs - g).abs().maxCoeff() <= 1e-11 * std::max(1.0, g.abs().maxCoeff()));
      }
      // One batched call (2B rows) and two calls give the same bits.
      GuidanceOptions two = o;
      two.batched = false;
      State g2(5, 2);
      GuidedModel(gmm, sch, cond, nullptr, two, 5).eps(x, t, g2);
      CHECK(bitwise_equal(g, g2));
      CHECK(guided.network_rows(5, t) == (s == 1.0 || s == 0.0 ? 5 : 10));
    }
  }
  // Outside the interval: the conditional model alone.
  GuidanceOptions o;
  o.scale = 5;
  o.t_lo = 0.3;
  o.t_hi = 0.6;
  const GuidedModel guided(gmm, sch, cond, nullptr, o, 5);
  State g(5, 2), c(5, 2);
  ModelRows rows;
  rows.inputs = cond.get();
  for (double t : {0.1, 0.8}) {
    guided.eps(x, t, g);
    gmm->eps_rows(x, t, rows, c);
    CHECK(bitwise_equal(g, c));
    CHECK(guided.network_rows(5, t) == 5);
  }
  guided.eps(x, 0.45, g);
  CHECK(!bitwise_equal(g, c));
  CHECK_THROWS_WITH(GuidedModel(std::make_shared<GmmModel>(GmmModel::builtin_2d(sch)), sch, cond, nullptr, o, 5),
                    Catch::Contains("needs a conditional model"));
  GuidanceOptions bad;
  bad.rescale = 1.5;
  std::string error, option;
  CHECK(!bad.is_valid(&error, &option));
  CHECK(option == "rescale");
}

TEST_CASE("Guidance rescale follows its formula; guided Jacobian products are those of the combination",
          "[conditioning]") {
  auto sch = std::make_shared<VpLinearSchedule>();
  // eps_c = x + 1 (label 1), eps_u = 2 x (label 0, the null label): a constructed model.
  InputSpec y;
  y.name = "y";
  y.classes = 2;
  y.has_null_label = true;
  y.null_label = 0;
  auto model = make_model(3, {y}, [](const ConstStateRef& x, double, const ModelRows& rows, StateRef out) {
    for (Eigen::Index r = 0; r < x.rows(); ++r) {
      const bool c = *rows.input("y")->int_row(rows.input_row0 + static_cast<long>(r)) == 1;
      out.row(r) = c ? (x.row(r) + 1.0).eval() : (2.0 * x.row(r)).eval();
    }
  });
  State x(2, 3);
  x << 0.5, -1.0, 2.0, 3.0, 0.1, -0.7;
  GuidanceOptions o;
  o.scale = 3;
  o.rescale = 0.7;
  const GuidedModel guided(model, sch, labels({1}), nullptr, o, 2);
  State g(2, 3);
  guided.eps(x, 0.5, g);
  for (Eigen::Index r = 0; r < 2; ++r) {
    const Eigen::ArrayXd ec = x.row(r).transpose() + 1.0, eu = 2.0 * x.row(r).transpose();
    const Eigen::ArrayXd cfg = eu + 3.0 * (ec - eu);
    auto sd = [](const Eigen::ArrayXd& v) { return std::sqrt((v - v.mean()).square().sum() / (v.size() - 1)); };
    const Eigen::ArrayXd want = 0.7 * (cfg * (sd(ec) / sd(cfg))) + 0.3 * cfg;
    for (int j = 0; j < 3; ++j) CHECK(g(r, j) == Approx(want(j)).epsilon(1e-14));
  }
  CHECK_FALSE(guided.has_jvp());

  // The analytic model's exact J v, combined: J_u + s (J_c - J_u).
  const auto gmm = labelled(sch);
  GuidanceOptions p;
  p.scale = 2;
  const GuidedModel gg(gmm, sch, labels({1, 2}), nullptr, p, 2);
  REQUIRE(gg.has_jvp());
  State xv = some_x(2), v(2, 2), e(2, 2), jv(2, 2);
  v << 1.0, -0.5, 0.25, 2.0;
  gg.eps_jvp(xv, 0.3, v, e, jv);
  State ec(2, 2), eu(2, 2), jc(2, 2), ju(2, 2);
  ModelRows rows;
  const auto c = labels({1, 2});
  rows.inputs = c.get();
  gmm->eps_jvp_rows(xv, 0.3, rows, v, ec, jc);
  gmm->eps_jvp(xv, 0.3, v, eu, ju);
  CHECK(((ju + 2.0 * (jc - ju)) - jv).abs().maxCoeff() < 1e-13);
  State ge(2, 2);
  gg.eps(xv, 0.3, ge);
  CHECK((ge - e).abs().maxCoeff() < 1e-14);
}

TEST_CASE("Dynamic thresholding and clipping of x0 follow the formulas", "[conditioning]") {
  ThresholdOptions o;
  o.ratio = 0.5;
  o.max = 2.0;
  // |x0| sorted: 0.2 0.5 1.5 2 3; the 0.5 quantile (rank 2) is 1.5, so s = 1.5.
  std::vector<double> v = {-3.0, 0.5, 2.0, -0.2, 1.5};
  threshold_x0(o, v.data(), 5);
  const std::vector<double> want = {-1.0, 0.5 / 1.5, 1.0, -0.2 / 1.5, 1.0};
  for (int j = 0; j < 5; ++j) CHECK(v[static_cast<std::size_t>(j)] == Approx(want[static_cast<std::size_t>(j)]).epsilon(1e-15));
  // ratio 0.9: rank 3.6 between 2 and 3 -> 2.6, clamped to max = 2.
  o.ratio = 0.9;
  v = {-3.0, 0.5, 2.0, -0.2, 1.5};
  threshold_x0(o, v.data(), 5);
  CHECK(v[0] == -1.0);
  CHECK(v[1] == Approx(0.25).epsilon(1e-15));
  o.max = 10;
  v = {-3.0, 0.5, 2.0, -0.2, 1.5};
  threshold_x0(o, v.data(), 5);
  CHECK(v[2] == Approx(2.0 / 2.6).epsilon(1e-15));
  // Values within [-1, 1]: s = 1 (the clamp's floor), x0 unchanged.
  v = {0.3, -0.9, 0.1};
  threshold_x0(o, v.data(), 3);
  CHECK(v == std::vector<double>{0.3, -0.9, 0.1});
  ThresholdOptions clip;
  clip.kind = ThresholdOptions::Kind::clip;
  clip.lo = -0.5;
  clip.hi = 1.0;
  v = {-3.0, 0.2, 4.0};
  threshold_x0(clip, v.data(), 3);
  CHECK(v == std::vector<double>{-0.5, 0.2, 1.0});

  // The model layer: eps' = (x - alpha x0') / sigma with x0' the thresholded x0.
  auto sch = std::make_shared<VpLinearSchedule>();
  auto model = make_model(4, [](const ConstStateRef& x, double, StateRef out) { out = -3.0 * x; });
  ThresholdOptions d;
  const ThresholdedModel tm(model, sch, d);
  State x(2, 4);
  x << 0.2, -0.5, 0.9, 0.1, 1.0, -2.0, 0.3, 0.05;
  const double t = 0.2, a = sch->alpha(t), s = sch->sigma(t);
  State e(2, 4);
  tm.eps(x, t, e);
  for (Eigen::Index r = 0; r < 2; ++r) {
    std::vector<double> x0(4);
    for (int j = 0; j < 4; ++j) x0[static_cast<std::size_t>(j)] = (x(r, j) - s * (-3.0 * x(r, j))) / a;
    threshold_x0(d, x0.data(), 4);
    for (int j = 0; j < 4; ++j) {
      CHECK(e(r, j) == Approx((x(r, j) - a * x0[static_cast<std::size_t>(j)]) / s).epsilon(1e-14));
      // x0 recovered from eps' is x0' to rounding (what a data-prediction solver uses).
      CHECK((x(r, j) - s * e(r, j)) / a == Approx(x0[static_cast<std::size_t>(j)]).epsilon(1e-12).margin(1e-14));
    }
  }
  ThresholdOptions bad;
  bad.ratio = 0;
  std::string error, option;
  CHECK(!bad.is_valid(&error, &option));
  CHECK(option == "ratio");
}

TEST_CASE("A one-component class flows exactly: guided scale 1 samples p(x | y) along the exact PF-ODE",
          "[conditioning]") {
  auto sch = std::make_shared<VpLinearSchedule>();
  const auto gmm = labelled(sch);
  const long n = 8;
  const auto cond = labels(std::vector<std::int64_t>(n, 0));  // class 0 = component 0 alone
  GuidanceOptions o;
  o.scale = 1;
  const auto guided = std::make_shared<GuidedModel>(gmm, sch, cond, nullptr, o, n);
  auto solver = solver_registry().create(json{{"name", "dpm_solver"}, {"order", 3}}, "solver");
  const std::vector<double> times = grid_registry()
                                         .create(json{{"name", "logSNR"}, {"steps", 200}, {"t_start", 1.0}, {"t_end", 1e-4}},
                                                 "grid", BuildContext{sch, ""})
                                         ->times(*sch);
  State x(n, 2);
  for (long r = 0; r < n; ++r) philox_normals(5, NoiseStream::init, static_cast<std::uint64_t>(r), 0, x.row(r).data(), 2);
  const State x_T = x;
  integrate(*solver, *sch, *guided, times, x, nullptr);
  // z = (x - alpha mu) / sqrt(alpha^2 s^2 + sigma^2) is constant along the flow of a Gaussian.
  const double mu[2] = {-2.0, -1.0}, sd[2] = {0.40, 0.30};
  const double a1 = sch->alpha(1.0), s1 = sch->sigma(1.0), a0 = sch->alpha(1e-4), s0 = sch->sigma(1e-4);
  for (long r = 0; r < n; ++r)
    for (int j = 0; j < 2; ++j) {
      const double z = (x_T(r, j) - a1 * mu[j]) / std::sqrt(a1 * a1 * sd[j] * sd[j] + s1 * s1);
      const double want = a0 * mu[j] + z * std::sqrt(a0 * a0 * sd[j] * sd[j] + s0 * s0);
      CHECK(x(r, j) == Approx(want).epsilon(2e-6).margin(2e-6));
    }
  // The unconditional mixture's flow ends elsewhere: the check above can fail.
  State xu = x_T;
  integrate(*solver, *sch, *gmm, times, xu, nullptr);
  CHECK((xu - x).abs().maxCoeff() > 0.1);
}

TEST_CASE("Per-sample inputs give the same samples whatever the threads, shards and guidance calls",
          "[conditioning]") {
  auto sch = std::make_shared<VpLinearSchedule>();
  const auto gmm = labelled(sch);
  const long n = 9;
  std::vector<std::int64_t> y;
  for (long r = 0; r < n; ++r) y.push_back(r % 4 == 3 ? -1 : r % 3);
  const std::vector<double> times =
      grid_registry().create(json{{"name", "time_uniform"}, {"steps", 12}, {"t_end", 1e-3}}, "grid", BuildContext{sch, ""})->times(*sch);
  auto run = [&](long first, long count, int threads, bool batched, const std::string& solver_name) {
    std::vector<std::int64_t> part(y.begin() + first, y.begin() + first + count);
    GuidanceOptions o;
    o.scale = 2.5;
    o.batched = batched;
    const GuidedModel guided(gmm, sch, labels(part), nullptr, o, count, static_cast<std::uint64_t>(first));
    auto solver = solver_registry().create(json{{"name", solver_name}}, "solver");
    State x(count, 2);
    for (long r = 0; r < count; ++r)
      philox_normals(1, NoiseStream::init, static_cast<std::uint64_t>(first + r), 0, x.row(r).data(), 2);
    std::unique_ptr<NoiseSource> noise;
    if (solver_name == "ggf")
      noise = std::make_unique<BrownianTreeNoise>(4, 1e-3, 1.0, 20, static_cast<std::uint64_t>(first));
    else
      noise = std::make_unique<PhiloxNoise>(4, static_cast<std::uint64_t>(first));
    DriverOptions d;
    d.threads = threads;
    const Summary summary = integrate(*solver, *sch, guided, times, x, noise.get(), {}, d);
    // Two network rows per row evaluated (ggf evaluates one sample at a time and counts
    // its evaluations over the samples).
    CHECK(summary.network_rows == 2 * (solver_name == "ggf" ? 1 : count) * summary.nfe);
    return x;
  };
  for (const char* name : {"euler_maruyama", "ddim", "dpmpp_2m_sde", "ggf"}) {
    INFO(name);  // ggf steps each sample on its own, calling the model row by row
    const State whole = run(0, n, 1, true, name);
    CHECK(bitwise_equal(whole, run(0, n, 2, true, name)));
    CHECK(bitwise_equal(whole, run(0, n, 3, false, name)));
    State joined(n, 2);
    joined.topRows(4) = run(0, 4, 1, true, name);
    joined.bottomRows(5) = run(4, 5, 2, true, name);
    CHECK(bitwise_equal(whole, joined));
  }
}

TEST_CASE("A model from a function sees its rows' global sample indices and inputs", "[conditioning]") {
  // eps = 0 except column 0 = the global sample index and column 1 = the label: one Euler
  // step of the PF-ODE moves each row by a known multiple of them.
  InputSpec y;
  y.name = "y";
  auto model = make_model(2, {y}, [](const ConstStateRef& x, double, const ModelRows& rows, StateRef out) {
    for (Eigen::Index r = 0; r < x.rows(); ++r) {
      out(r, 0) = static_cast<double>(rows.sample(static_cast<long>(r)));
      out(r, 1) = static_cast<double>(*rows.input("y")->int_row(rows.input_row0 + static_cast<long>(r)));
    }
  });
  auto sch = std::make_shared<VpLinearSchedule>();
  const long n = 7;
  std::vector<std::int64_t> lab;
  for (long r = 0; r < n; ++r) lab.push_back(10 + r);
  const ConditionedModel cm(model, labels(lab), n, 100);
  auto solver = solver_registry().create(json{{"name", "ddim"}}, "solver");
  const std::vector<double> times = {0.5, 0.4};
  for (int threads : {1, 3}) {
    State x = State::Zero(n, 2);
    DriverOptions d;
    d.threads = threads;
    integrate(*solver, *sch, cm, times, x, nullptr, {}, d);
    // DDIM from x = 0: x1 = sigma1 eps - alpha1 / alpha0 sigma0 eps = c eps, c the same for all rows.
    const double c = x(0, 0) / 100.0;
    REQUIRE(c != 0.0);
    for (long r = 0; r < n; ++r) {
      CHECK(x(r, 0) == Approx(c * static_cast<double>(100 + r)).epsilon(1e-14));
      CHECK(x(r, 1) == Approx(c * static_cast<double>(10 + r)).epsilon(1e-14));
    }
  }
  // Without inputs a conditional function model still runs its function (rows empty).
  auto plain = make_model(1, [](const ConstStateRef& x, double t, StateRef out) { out = x * t; });
  State x1(1, 1), o1(1, 1);
  x1 << 2.0;
  plain->eps(x1, 0.25, o1);
  CHECK(o1(0, 0) == 0.5);
  CHECK_THROWS_WITH(make_model(0, [](const ConstStateRef&, double, StateRef) {}), Catch::Contains("dim must be >= 1"));
}

TEST_CASE("Guidance from two models equals guidance from one model with its null input", "[conditioning]") {
  auto sch = std::make_shared<VpLinearSchedule>();
  const auto gmm = labelled(sch);  // label -1: the whole mixture
  auto whole = std::make_shared<GmmModel>(GmmModel::builtin_2d(sch));  // the same mixture, no classes
  const auto cond = labels({0, 1, 2, 1});
  const State x = some_x(4);
  GuidanceOptions o;
  o.scale = 3.5;
  o.batched = false;
  const GuidedModel one(gmm, sch, cond, nullptr, o, 4);
  const GuidedModel two(gmm, whole, sch, cond, o, 4);
  for (double t : {0.05, 0.5, 0.95}) {
    State a(4, 2), b(4, 2);
    one.eps(x, t, a);
    two.eps(x, t, b);
    CHECK(bitwise_equal(a, b));
    CHECK(two.network_rows(4, t) == 8);
  }
  CHECK(&two.unconditional_model() == whole.get());
  // The unconditional model gets no inputs, so it must need none.
  InputSpec y;
  y.name = "y";
  auto needs_y = make_model(2, {y}, [](const ConstStateRef&, double, const ModelRows&, StateRef out) { out.setZero(); });
  CHECK_THROWS_WITH(GuidedModel(gmm, needs_y, sch, cond, o, 4),
                    Catch::Contains("unconditional model input 'y'") && Catch::Contains("is required"));
}

TEST_CASE("Guided scale 1 on a one-component class: the reverse SDE's samples follow its Gaussian law",
          "[conditioning]") {
  // Euler–Maruyama on 400 steps: the class's law N(mu, diag(sd^2)) within standard errors
  // (the sample mean within 4 standard errors, the variance within 10%), while the
  // unconditional mixture's mean is far from it.
  auto sch = std::make_shared<VpLinearSchedule>();
  const auto gmm = labelled(sch);
  const long n = 4000;
  GuidanceOptions o;
  o.scale = 1;
  const GuidedModel guided(gmm, sch, labels(std::vector<std::int64_t>(n, 0)), nullptr, o, n);
  auto solver = solver_registry().create(json{{"name", "euler_maruyama"}}, "solver");
  const std::vector<double> times =
      grid_registry().create(json{{"name", "time_uniform"}, {"steps", 400}, {"t_end", 1e-3}}, "grid", BuildContext{sch, ""})->times(*sch);
  State x(n, 2);
  for (long r = 0; r < n; ++r) philox_normals(9, NoiseStream::init, static_cast<std::uint64_t>(r), 0, x.row(r).data(), 2);
  PhiloxNoise noise(9);
  DriverOptions d;
  d.threads = 2;
  integrate(*solver, *sch, guided, times, x, &noise, {}, d);
  const double mu[2] = {-2.0, -1.0}, sd[2] = {0.40, 0.30};
  const double a = sch->alpha(1e-3), s = sch->sigma(1e-3);
  for (int j = 0; j < 2; ++j) {
    const double var = a * a * sd[j] * sd[j] + s * s;  // the law at t_end
    const double mean = x.col(j).mean();
    const double sample_var = (x.col(j) - mean).square().sum() / static_cast<double>(n - 1);
    CHECK(std::fabs(mean - a * mu[j]) < 4.0 * std::sqrt(var / static_cast<double>(n)));
    CHECK(sample_var == Approx(var).epsilon(0.1));
  }
}
