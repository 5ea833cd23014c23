// The PF-ODE likelihood on the general schedules (ve, subvp, edm, flow) against exact
// answers: with the exact marginal density at t_max in place of the prior, the change of
// variables gives the exact log p_{t_min} of Gaussian and mixture data to the solver's
// tolerance; x(t_max) is the exact Gaussian flow; the reported prior is
// N(0, prior_std(t_max)^2 I), recomputed here; Hutchinson estimates lie within their error
// bars; and the ends where the ODE cannot run (flow's t = 1) and the VP-only bound are refused
// with their JSON paths.
#include <catch2/catch.hpp>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "diffsde/error.hpp"
#include "diffsde/likelihood.hpp"
#include "diffsde/likelihood_config.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/scores/analytic.hpp"
#include "support/analytic_data.hpp"
#include "support/exact.hpp"

using namespace diffsde;
using diffsde::test::gmm_data;
using diffsde::test::log_density;
using nlohmann::json;

namespace {

constexpr double kPi = 3.14159265358979323846;

struct Case {
  std::string label;
  std::shared_ptr<const Schedule> schedule;
  double t_min, t_max;
  double prior_std;  // the prior's standard deviation at t_max, written out here
};

std::vector<Case> cases() {
  return {{"ve", std::make_shared<VeSchedule>(0.01, 50.0), 1e-3, 1.0, 50.0},
          {"subvp", std::make_shared<SubVpSchedule>(0.1, 20.0), 1e-3, 1.0, 1.0},
          {"edm", std::make_shared<EdmSchedule>(0.002, 80.0), 0.002, 80.0, 80.0},
          {"flow", std::make_shared<FlowSchedule>(1.0), 1e-3, 0.999, 1.0},
          {"flow shift 3", std::make_shared<FlowSchedule>(3.0), 1e-3, 0.99, 1.0}};
}

const Eigen::Vector3d kMean(1.0, -0.5, 2.0), kStd(0.5, 1.5, 0.2);

State gaussian_data(long n, std::uint64_t seed) {
  State z = test::standard_normal_rows(n, 3, seed);
  for (Eigen::Index r = 0; r < n; ++r) z.row(r) = kMean.transpose().array() + kStd.transpose().array() * z.row(r);
  return z;
}

LikelihoodOptions tight(const Case& c, TraceMethod trace = TraceMethod::exact) {
  LikelihoodOptions o;
  o.ode.rtol = 1e-9;
  o.ode.atol = 1e-9;
  o.trace = trace;
  o.t_min = c.t_min;
  o.t_max = c.t_max;
  return o;
}

// log N(x; 0, s^2 I) of each row, written out.
BatchVector isotropic_log_density(const State& x, double s) {
  BatchVector out(x.rows());
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    double q = 0;
    for (Eigen::Index j = 0; j < x.cols(); ++j) q += x(r, j) * x(r, j);
    out(r) = -0.5 * q / (s * s) - 0.5 * static_cast<double>(x.cols()) * std::log(2 * kPi * s * s);
  }
  return out;
}

std::string config_path(const json& config) {
  return test::config_error_path([&] { build_likelihood_job(parse_likelihood_config(config)); });
}

}  // namespace

TEST_CASE("PF-ODE exact-trace likelihood of Gaussian data is exact on ve, subvp, edm, flow") {
  for (const Case& c : cases()) {
    INFO(c.label);
    const GaussianModel m(c.schedule, kMean, kStd);
    const State x = gaussian_data(6, 21);
    const LikelihoodOptions o = tight(c);
    const LikelihoodResult r = pf_ode_likelihood(m, *c.schedule, x, o);
    CHECK(r.t_max == c.t_max);
    // With the exact p_{t_max} in place of the prior the change of variables is exact.
    const BatchVector exact_t_min = log_density(m, x, c.t_min);
    const BatchVector exact_end = log_density(m, r.x_T, c.t_max);
    // The reported prior is N(0, prior_std^2 I) at x(t_max), and nll = -(prior + D).
    const BatchVector prior = isotropic_log_density(r.x_T, c.prior_std);
    // Per axis z = (x - alpha mu)/sqrt(alpha^2 sd^2 + sigma^2) is constant along the flow.
    const ScheduleAt a0 = c.schedule->at(c.t_min), a1 = c.schedule->at(c.t_max);
    for (Eigen::Index i = 0; i < x.rows(); ++i) {
      INFO("row " << i << ": nll " << r.nll(i) << ", exact " << -exact_t_min(i));
      CHECK(exact_end(i) + r.delta_logp(i) == Approx(exact_t_min(i)).margin(1e-6));
      CHECK(r.prior_logp(i) == Approx(prior(i)).epsilon(1e-13));
      CHECK(r.nll(i) == Approx(-(prior(i) + r.delta_logp(i))).epsilon(1e-13));
      // The prior differs from p_{t_max} by a little on these ends (ve: the data's mean and
      // spread against sigma_max = 50, up to 0.03 nats here): a loose check that the prior's
      // scale is the right one (N(0, I) on ve would be off by thousands of nats).
      CHECK(r.nll(i) == Approx(-exact_t_min(i)).margin(0.1));
      for (int j = 0; j < 3; ++j) {
        const double s0 = std::sqrt(a0.alpha * a0.alpha * kStd(j) * kStd(j) + a0.sigma * a0.sigma);
        const double s1 = std::sqrt(a1.alpha * a1.alpha * kStd(j) * kStd(j) + a1.sigma * a1.sigma);
        const double flowed = a1.alpha * kMean(j) + s1 / s0 * (x(i, j) - a0.alpha * kMean(j));
        CHECK(r.x_T(i, j) == Approx(flowed).epsilon(1e-6).margin(1e-6 * s1));
      }
    }
  }
}

TEST_CASE("PF-ODE exact-trace likelihood of mixture data is exact on ve, subvp, edm, flow") {
  for (const Case& c : cases()) {
    INFO(c.label);
    const GmmModel m = GmmModel::builtin_2d(c.schedule);
    const State x = gmm_data(m, 6, 22);
    const LikelihoodResult r = pf_ode_likelihood(m, *c.schedule, x, tight(c));
    const BatchVector exact_t_min = log_density(m, x, c.t_min);
    const BatchVector exact_end = log_density(m, r.x_T, c.t_max);
    for (Eigen::Index i = 0; i < x.rows(); ++i) {
      INFO("row " << i);
      CHECK(exact_end(i) + r.delta_logp(i) == Approx(exact_t_min(i)).margin(1e-5));
      CHECK(r.nll(i) == Approx(-exact_t_min(i)).margin(2e-2));
    }
  }
}

TEST_CASE("Hutchinson likelihoods on ve, subvp, edm, flow lie within their error bars") {
  for (const Case& c : cases()) {
    INFO(c.label);
    const GmmModel m = GmmModel::builtin_2d(c.schedule);
    const State x = gmm_data(m, 12, 23);
    const LikelihoodResult exact = pf_ode_likelihood(m, *c.schedule, x, tight(c));
    LikelihoodOptions o = tight(c, TraceMethod::hutchinson);
    o.ode.rtol = o.ode.atol = 1e-8;
    o.distribution = ProbeDistribution::gaussian;
    o.probes = 16;
    const LikelihoodResult r = pf_ode_likelihood(m, *c.schedule, x, o);
    double z2 = 0;
    for (Eigen::Index i = 0; i < x.rows(); ++i) {
      INFO("row " << i << ": " << r.nll(i) << " +- " << r.nll_stderr(i) << ", exact trace " << exact.nll(i));
      REQUIRE(r.nll_stderr(i) > 1e-4);
      const double z = (r.nll(i) - exact.nll(i)) / r.nll_stderr(i);
      CHECK(std::fabs(z) < 4.5);
      z2 += z * z;
    }
    // The standardized errors have about unit variance (t with 15 dof: 1.15).
    INFO("mean z^2 = " << z2 / 12);
    CHECK(z2 / 12 > 0.2);
    CHECK(z2 / 12 < 3.5);
    // Rademacher probes are exact for the Gaussian model's diagonal Jacobian.
    const GaussianModel g(c.schedule, kMean, kStd);
    const State xg = gaussian_data(3, 24);
    const LikelihoodResult ge = pf_ode_likelihood(g, *c.schedule, xg, tight(c));
    LikelihoodOptions rad = tight(c, TraceMethod::hutchinson);
    rad.probes = 3;
    const LikelihoodResult gr = pf_ode_likelihood(g, *c.schedule, xg, rad);
    for (Eigen::Index i = 0; i < xg.rows(); ++i) CHECK(gr.nll(i) == Approx(ge.nll(i)).margin(1e-7));
  }
}

TEST_CASE("The likelihood's prior density: N(0, I) as before, and N(0, s^2 I)") {
  const State x = test::standard_normal_rows(4, 5, 3) * 2.0;
  const BatchVector two = isotropic_log_density(x, 2.0), one = isotropic_log_density(x, 1.0);
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    State row = x.row(r);
    CHECK(prior_log_density(row.data(), 5, 1.0) == standard_normal_log_density(row.data(), 5));
    CHECK(prior_log_density(row.data(), 5, 1.0) == Approx(one(r)).epsilon(1e-14));
    CHECK(prior_log_density(row.data(), 5, 2.0) == Approx(two(r)).epsilon(1e-14));
  }
}

TEST_CASE("Likelihood ends where alpha = 0 and the DDPM bound off VP are refused with their paths") {
  const auto flow = std::make_shared<FlowSchedule>(1.0);
  const GaussianModel m(flow, kMean, kStd);
  const State x = gaussian_data(1, 1);
  LikelihoodOptions o;  // t_max: the schedule's, 1
  CHECK_THROWS_WITH(pf_ode_likelihood(m, *flow, x, o), Catch::Contains("t_max") && Catch::Contains("alpha = 0"));
  o.t_max = 1.0;
  CHECK_THROWS_WITH(pf_ode_likelihood(m, *flow, x, o), Catch::Contains("t_max") && Catch::Contains("alpha = 0"));
  o.t_max = 0.999;
  CHECK(std::isfinite(pf_ode_likelihood(m, *flow, x, o).nll(0)));

  const json model = {{"name", "gmm"}};
  const json flow_config = {{"schedule", {{"name", "flow"}}}, {"model", model}};
  CHECK(config_path(flow_config) == "t_max");
  json at_one = flow_config;
  at_one["t_max"] = 1.0;
  CHECK(config_path(at_one) == "t_max");
  json below = flow_config;
  below["t_max"] = 0.999;
  CHECK(config_path(below) == "(none)");
  for (const char* name : {"ve", "subvp", "edm"}) {
    INFO(name);
    const json general = {{"schedule", {{"name", name}}}, {"model", model}};
    CHECK(config_path(general) == "(none)");
    json vlb = general;
    vlb["method"] = "vlb";
    vlb["vlb"] = {{"steps", 10}};
    CHECK(config_path(vlb) == "schedule");
  }
  // A zero-terminal-SNR discrete schedule has alpha = 0 at t = 1 too.
  const json zero_snr = {{"schedule", {{"name", "vp_discrete"}, {"num_steps", 100}, {"rescale_betas_zero_snr", true}}},
                         {"model", model}};
  CHECK(config_path(zero_snr) == "t_max");
}
