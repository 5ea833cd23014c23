// Likelihoods against exact answers: the analytic models' Jacobian-vector products
// (finite differences, the Laplacian of the exact log density), the PF-ODE likelihood
// (the exact log density at t_min, with the exact or the standard-normal prior), the
// Hutchinson estimator's error bars, the discretized decoder, the variational bound's
// terms (recomputed here from the posterior formulas and from their closed-form
// expectations on Gaussian data), and split independence.
#include <catch2/catch.hpp>
#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "diffsde/error.hpp"
#include "diffsde/likelihood.hpp"
#include "diffsde/likelihood_config.hpp"
#include "diffsde/noise.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/scores/analytic.hpp"
#include "diffsde/vlb.hpp"
#include "support/analytic_data.hpp"
#include "support/exact.hpp"
#include "support/fixtures.hpp"

using namespace diffsde;
using diffsde::test::gmm_data;
using diffsde::test::log_density;
using nlohmann::json;

namespace {

constexpr double kLog2Pi = 1.8378770664093454835606594728112;

std::shared_ptr<const Schedule> vp() { return std::make_shared<VpLinearSchedule>(); }

GaussianModel gaussian3(std::shared_ptr<const Schedule> s) {
  Eigen::VectorXd mean(3), sd(3);
  mean << 1.0, -0.5, 2.0;
  sd << 0.5, 1.5, 0.2;
  return GaussianModel(std::move(s), mean, sd);
}

// Rows drawn from a Gaussian model's data distribution (mean + std z).
State gaussian_data(const GaussianModel& m, long n, std::uint64_t seed) {
  State z = test::standard_normal_rows(n, m.dim(), seed);
  for (Eigen::Index r = 0; r < n; ++r)
    z.row(r) = m.mean().transpose().array() + m.std().transpose().array() * z.row(r);
  return z;
}

LikelihoodOptions tight(TraceMethod trace = TraceMethod::exact) {
  LikelihoodOptions o;
  o.ode.rtol = 1e-9;
  o.ode.atol = 1e-9;
  o.trace = trace;
  o.t_min = 1e-3;
  return o;
}

// A model without eps_jvp.
class PlainModel final : public Model {
 public:
  std::string name() const override { return "plain"; }
  int dim() const override { return 2; }
  void eps(const ConstStateRef& x, double, StateRef out) const override { out = 0.5 * x; }
};

}  // namespace

// ---------------------------------------------------------------------------------
// Jacobian-vector products

TEST_CASE("GaussianModel::eps_jvp is the diagonal sigma / var and matches finite differences") {
  const auto s = vp();
  const GaussianModel m = gaussian3(s);
  const State x = test::standard_normal_rows(5, 3, 1) * 2.0;
  const State v = test::standard_normal_rows(5, 3, 2);
  for (double t : {1e-3, 0.2, 0.7, 1.0}) {
    State eps(5, 3), jvp(5, 3), eps_ref(5, 3);
    m.eps_jvp(x, t, v, eps, jvp);
    m.eps(x, t, eps_ref);
    CHECK((eps == eps_ref).all());
    const double alpha = s->alpha(t), sigma = s->sigma(t);
    for (int j = 0; j < 3; ++j) {
      const double var = alpha * alpha * m.std()(j) * m.std()(j) + sigma * sigma;
      for (int r = 0; r < 5; ++r) CHECK(jvp(r, j) == Approx(sigma / var * v(r, j)).epsilon(1e-13));
    }
    State fd_eps(5, 3), fd(5, 3);
    eps_jvp_finite_difference(m, x, t, v, fd_eps, fd, 1e-5);
    CHECK(test::max_abs_diff(fd, jvp) < 1e-8);
  }
}

TEST_CASE(
    "GmmModel::eps_jvp matches finite differences, is symmetric, and its trace is -sigma times the "
    "Laplacian of log p_t") {
  const auto s = vp();
  const GmmModel m = test::test_gmm(s);
  const GmmModel builtin = GmmModel::builtin_2d(s);
  for (const GmmModel* model : {&m, &builtin}) {
    const State x = test::standard_normal_rows(7, 2, 3) * 1.5;
    const State u = test::standard_normal_rows(7, 2, 4);
    const State v = test::standard_normal_rows(7, 2, 5);
    for (double t : {1e-3, 0.05, 0.3, 0.9}) {
      INFO("t = " << t);
      State eps(7, 2), ju(7, 2), jv(7, 2), eps_ref(7, 2);
      model->eps_jvp(x, t, u, eps, ju);
      model->eps_jvp(x, t, v, eps, jv);
      model->eps(x, t, eps_ref);
      CHECK((eps == eps_ref).all());  // the same kernel as eps(), bit for bit
      // Central differences of eps along v.
      const double h = 1e-6;
      State xp = x + h * v, xm = x - h * v, ep(7, 2), em(7, 2);
      model->eps(xp, t, ep);
      model->eps(xm, t, em);
      const State fd = (ep - em) / (2 * h);
      CHECK(test::max_abs_diff(fd, jv) < 1e-6 * (1.0 + jv.abs().maxCoeff()));
      // u^T J v = v^T J u (J is sigma times a Hessian).
      for (int r = 0; r < 7; ++r)
        CHECK((u.row(r) * jv.row(r)).sum() == Approx((v.row(r) * ju.row(r)).sum()).epsilon(1e-10));
      // tr J = -sigma Laplacian of log p_t, the Laplacian by second differences of
      // log_density (a separate code path).
      const double sigma = s->sigma(t);
      const double hh = 1e-4;
      for (int r = 0; r < 7; ++r) {
        State e(2, 2), je(2, 2), row = x.row(r).replicate(2, 1);
        State unit = State::Zero(2, 2);
        unit(0, 0) = 1;
        unit(1, 1) = 1;
        model->eps_jvp(row, t, unit, e, je);
        double laplacian = 0;
        for (int j = 0; j < 2; ++j) {
          State pts = x.row(r).replicate(3, 1);
          pts(0, j) += hh;
          pts(2, j) -= hh;
          const BatchVector lp = log_density(*model, pts, t);
          laplacian += (lp(0) - 2 * lp(1) + lp(2)) / (hh * hh);
        }
        CHECK(je(0, 0) + je(1, 1) == Approx(-sigma * laplacian).epsilon(1e-5).margin(1e-6));
      }
    }
  }
}

TEST_CASE("Models without eps_jvp say so, naming the model") {
  const PlainModel plain;
  CHECK_FALSE(plain.has_jvp());
  State x = State::Ones(1, 2), out(1, 2), jvp(1, 2);
  CHECK_THROWS_WITH(plain.eps_jvp(x, 0.5, x, out, jvp), Catch::Contains("'plain'"));
  CHECK_THROWS_WITH(pf_ode_likelihood(plain, VpLinearSchedule(), x, LikelihoodOptions{}),
                    Catch::Contains("'plain'") && Catch::Contains("finite_difference"));
  // The finite-difference fallback works for it: eps = x / 2 has J = I / 2, trace 1.
  LikelihoodOptions o = tight();
  o.jvp = JvpMethod::finite_difference;
  const LikelihoodResult r = pf_ode_likelihood(plain, VpLinearSchedule(), x, o);
  CHECK(std::isfinite(r.nll(0)));
}

// ---------------------------------------------------------------------------------
// PF-ODE likelihood

TEST_CASE("PF-ODE exact-trace NLL on Gaussian data matches the exact log density") {
  const auto s = vp();
  const GaussianModel m = gaussian3(s);
  const State x = gaussian_data(m, 6, 11);
  const LikelihoodOptions o = tight();
  const LikelihoodResult r = pf_ode_likelihood(m, *s, x, o);
  const BatchVector exact_t_min = log_density(m, x, o.t_min);
  const BatchVector exact_0 = log_density(m, x, 0.0);
  // With the exact p_1 in place of N(0, I), the change of variables is exact: the
  // only error is the solver's.
  const BatchVector exact_prior = log_density(m, r.x_T, r.t_max);
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    INFO("row " << i << ": nll " << r.nll(i) << ", exact " << -exact_t_min(i));
    CHECK(exact_prior(i) + r.delta_logp(i) == Approx(exact_t_min(i)).margin(1e-6));
    // N(0, I) differs from p_1 by O(alpha(1) |mean| |x_T|) (vp_linear: alpha(1) = e^-5.025).
    CHECK(r.nll(i) == Approx(-exact_t_min(i)).margin(0.1));
    CHECK(r.nll(i) == Approx(-exact_0(i)).margin(0.1));
    CHECK(exact_prior(i) + r.delta_logp(i) == Approx(exact_0(i)).margin(1e-2));  // O(t_min)
    CHECK(r.nll_stderr(i) == 0.0);
    CHECK(r.bpd(i) == Approx(r.nll(i) / (3 * std::log(2.0))).epsilon(1e-14));
    CHECK(r.nfe[static_cast<std::size_t>(i)] > 10);
  }
  // x(t_max) is the exact flow of the data.
  const test::GaussianProblem problem{s, {1.0, -0.5, 2.0}, {0.5, 1.5, 0.2}};
  CHECK(test::max_abs_diff(r.x_T, problem.pf_ode_flow(x, o.t_min, r.t_max)) < 1e-6);
}

TEST_CASE("PF-ODE exact-trace NLL on mixture data matches the exact log density") {
  const auto s = vp();
  const GmmModel m = GmmModel::builtin_2d(s);
  const State x = gmm_data(m, 8, 12);
  const LikelihoodOptions o = tight();
  const LikelihoodResult r = pf_ode_likelihood(m, *s, x, o);
  const BatchVector exact_t_min = log_density(m, x, o.t_min);
  const BatchVector exact_prior = log_density(m, r.x_T, r.t_max);
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    INFO("row " << i);
    CHECK(exact_prior(i) + r.delta_logp(i) == Approx(exact_t_min(i)).margin(1e-5));
    CHECK(r.nll(i) == Approx(-exact_t_min(i)).margin(5e-3));
  }
}

TEST_CASE("Every pf_ode stepper gives the exact log density to its accuracy") {
  const auto s = vp();
  const GmmModel m = test::test_gmm(s);
  const State x = gmm_data(m, 3, 13);
  const BatchVector exact_t_min = log_density(m, x, 1e-3);
  for (PfOdeStepper stepper : all_pf_ode_steppers()) {
    LikelihoodOptions o = tight();
    o.ode.stepper = stepper;
    o.ode.rtol = o.ode.atol = 1e-8;
    o.steps = stepper == PfOdeStepper::euler ? 4000 : 400;
    const LikelihoodResult r = pf_ode_likelihood(m, *s, x, o);
    const BatchVector exact_prior = log_density(m, r.x_T, r.t_max);
    const double tolerance = stepper == PfOdeStepper::euler ? 2e-2 : 1e-4;
    for (Eigen::Index i = 0; i < x.rows(); ++i) {
      INFO(to_string(stepper) << ", row " << i);
      CHECK(exact_prior(i) + r.delta_logp(i) == Approx(exact_t_min(i)).margin(tolerance));
    }
  }
}

TEST_CASE("Hutchinson estimates lie within their error bars, which shrink like 1/sqrt(K)") {
  const auto s = vp();
  const GmmModel m = GmmModel::builtin_2d(s);
  const State x = gmm_data(m, 20, 14);
  const LikelihoodResult exact = pf_ode_likelihood(m, *s, x, tight());
  for (ProbeDistribution distribution :
       {ProbeDistribution::rademacher, ProbeDistribution::gaussian}) {
    LikelihoodOptions o = tight(TraceMethod::hutchinson);
    o.distribution = distribution;
    o.probes = 16;
    const LikelihoodResult r = pf_ode_likelihood(m, *s, x, o);
    double z2 = 0;
    for (Eigen::Index i = 0; i < x.rows(); ++i) {
      INFO(to_string(distribution) << " row " << i << ": " << r.nll(i) << " +- " << r.nll_stderr(i)
                                   << ", exact trace " << exact.nll(i));
      REQUIRE(r.nll_stderr(i) > 0);
      const double z = (r.nll(i) - exact.nll(i)) / r.nll_stderr(i);
      CHECK(std::fabs(z) < 4.5);
      z2 += z * z;
      // The mean and standard error are those of the per-probe values.
      CHECK(r.probe_nll.row(i).mean() == Approx(r.nll(i)).epsilon(1e-14));
    }
    // The standardized errors have about unit variance (t with 15 dof: 1.15).
    INFO("mean z^2 = " << z2 / 20);
    CHECK(z2 / 20 > 0.3);
    CHECK(z2 / 20 < 3.0);
  }
  // 1/sqrt(K): K = 4 -> 64 shrinks the mean standard error about 4 times.
  LikelihoodOptions o4 = tight(TraceMethod::hutchinson), o64 = o4;
  o4.probes = 4;
  o64.probes = 64;
  const double se4 = pf_ode_likelihood(m, *s, x, o4).nll_stderr.mean();
  const double se64 = pf_ode_likelihood(m, *s, x, o64).nll_stderr.mean();
  INFO("se(K=4) = " << se4 << ", se(K=64) = " << se64);
  CHECK(se4 / se64 > 3.0);
  CHECK(se4 / se64 < 5.3);
}

TEST_CASE("Rademacher probes are exact for a diagonal Jacobian; Gaussian probes are not") {
  const auto s = vp();
  const GaussianModel m = gaussian3(s);
  const State x = gaussian_data(m, 4, 15);
  const LikelihoodResult exact = pf_ode_likelihood(m, *s, x, tight());
  LikelihoodOptions o = tight(TraceMethod::hutchinson);
  o.probes = 5;
  const LikelihoodResult rad = pf_ode_likelihood(m, *s, x, o);
  o.distribution = ProbeDistribution::gaussian;
  const LikelihoodResult gauss = pf_ode_likelihood(m, *s, x, o);
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    // v^T diag(J) v = tr J when v_j^2 = 1; only the ODE's rounding differs.
    CHECK(rad.nll(i) == Approx(exact.nll(i)).margin(1e-7));
    CHECK(rad.nll_stderr(i) < 1e-7);
    CHECK(gauss.nll_stderr(i) > 1e-3);
  }
}

TEST_CASE("Per-sample results do not depend on the batch, the split or the threads, bit for bit") {
  const auto s = vp();
  const GmmModel m = GmmModel::builtin_2d(s);
  const State x = gmm_data(m, 6, 16);
  for (TraceMethod trace : {TraceMethod::exact, TraceMethod::hutchinson}) {
    LikelihoodOptions o;
    o.trace = trace;
    o.seed = 7;
    const LikelihoodResult all = pf_ode_likelihood(m, *s, x, o);
    LikelihoodOptions o2 = o;
    o2.threads = 2;
    const LikelihoodResult threaded = pf_ode_likelihood(m, *s, x, o2);
    CHECK((threaded.nll == all.nll).all());
    CHECK((threaded.nll_stderr == all.nll_stderr).all());
    CHECK(threaded.nfe == all.nfe);
    for (Eigen::Index i = 0; i < x.rows(); ++i) {
      LikelihoodOptions one = o;
      one.first_sample = static_cast<std::uint64_t>(i);
      const LikelihoodResult r = pf_ode_likelihood(m, *s, x.row(i), one);
      CHECK(r.nll(0) == all.nll(i));
      CHECK(r.nll_stderr(0) == all.nll_stderr(i));
      CHECK(r.nfe[0] == all.nfe[static_cast<std::size_t>(i)]);
    }
    // A different seed gives other probes (Hutchinson only).
    LikelihoodOptions o3 = o;
    o3.seed = 8;
    const LikelihoodResult other = pf_ode_likelihood(m, *s, x, o3);
    if (trace == TraceMethod::hutchinson)
      CHECK((other.nll != all.nll).any());
    else
      CHECK((other.nll == all.nll).all());
  }
}

TEST_CASE("The finite-difference fallback agrees with the exact JVPs to its accuracy") {
  const auto s = vp();
  const GmmModel m = test::test_gmm(s);
  const State x = gmm_data(m, 3, 17);
  const LikelihoodResult exact = pf_ode_likelihood(m, *s, x, tight());
  LikelihoodOptions o = tight();
  o.jvp = JvpMethod::finite_difference;
  const LikelihoodResult fd = pf_ode_likelihood(m, *s, x, o);
  for (Eigen::Index i = 0; i < x.rows(); ++i) CHECK(fd.nll(i) == Approx(exact.nll(i)).margin(1e-5));
}

TEST_CASE("Invalid likelihood options are rejected with the field named") {
  const auto s = vp();
  const GaussianModel m = gaussian3(s);
  const State x = gaussian_data(m, 1, 1);
  LikelihoodOptions o;
  o.t_min = 0;
  CHECK_THROWS_WITH(pf_ode_likelihood(m, *s, x, o), Catch::Contains("t_min"));
  o = LikelihoodOptions{};
  o.trace = TraceMethod::hutchinson;
  o.probes = 1;
  CHECK_THROWS_WITH(pf_ode_likelihood(m, *s, x, o), Catch::Contains("probes"));
  o = LikelihoodOptions{};
  o.t_max = 2;
  CHECK_THROWS_WITH(pf_ode_likelihood(m, *s, x, o), Catch::Contains("t_max"));
  CHECK_THROWS_WITH(pf_ode_likelihood(m, *s, State::Zero(1, 2), LikelihoodOptions{}),
                    Catch::Contains("columns"));
}

// ---------------------------------------------------------------------------------
// Bits per dimension and 8-bit data

TEST_CASE("Bits per dimension and the 8-bit dequantization offset") {
  CHECK(bits_per_dim(10.0, 4, DataKind::continuous) == Approx(10.0 / (4 * std::log(2.0))));
  // Uniform density on [-1, 1]^d after dequantization: nll = d ln 2, i.e. 8 bits/dim on
  // the 256 levels (log2(127.5) + 1 = log2(255): the levels' bins cover 256/255 of it).
  CHECK(bits_per_dim(4 * std::log(2.0), 4, DataKind::image8) ==
        Approx(1.0 + std::log2(127.5)).epsilon(1e-14));
  CHECK(dequantization_offset_nats(784, DataKind::image8) == Approx(784 * std::log(127.5)));

  State levels(2, 3);
  levels << -1.0, 1.0, 0.0 / 127.5 - 1.0 + 128.0 / 127.5, 3.0 / 127.5 - 1.0, 254.0 / 127.5 - 1.0,
      -1.0;
  const std::vector<int> k = image8_levels(levels);
  CHECK(k == std::vector<int>{0, 255, 128, 3, 254, 0});
  const State y = dequantize_image8(levels, 3, 0);
  for (Eigen::Index r = 0; r < 2; ++r)
    for (Eigen::Index c = 0; c < 3; ++c) {
      CHECK(y(r, c) >= levels(r, c) - 1.0 / 255.0);
      CHECK(y(r, c) < levels(r, c) + 1.0 / 255.0);
    }
  // Keyed per sample: row 1 alone with first_sample 1 is the same.
  const State y1 = dequantize_image8(levels.row(1), 3, 1);
  CHECK((y1.row(0) == y.row(1)).all());
  State off = levels;
  off(1, 2) = 0.5;
  CHECK_THROWS_WITH(image8_levels(off), Catch::Contains("row 1, column 2"));

  // The dequantization noise is uniform on the bin: mean 0, variance (2/255)^2 / 12.
  State many = State::Constant(20000, 1, -1.0);
  const State u = dequantize_image8(many, 9, 0) - many;
  CHECK(std::fabs(u.mean()) < 5 * (2.0 / 255) / std::sqrt(12.0 * 20000));
  CHECK(u.square().mean() == Approx(std::pow(2.0 / 255, 2) / 12).epsilon(0.03));
}

TEST_CASE("PF-ODE on 8-bit data dequantizes and adds the offset") {
  const auto s = vp();
  Eigen::VectorXd mean(2), sd(2);
  mean << 0.1, -0.2;
  sd << 0.4, 0.3;
  const GaussianModel m(s, mean, sd);
  State x(3, 2);
  x << -1.0, 1.0, 20.0 / 127.5 - 1.0, 140.0 / 127.5 - 1.0, 128.0 / 127.5 - 1.0, 127.0 / 127.5 - 1.0;
  LikelihoodOptions o = tight();
  o.data = DataKind::image8;
  const LikelihoodResult r = pf_ode_likelihood(m, *s, x, o);
  CHECK((r.x == dequantize_image8(x, o.seed, 0)).all());
  const BatchVector exact = log_density(m, r.x, o.t_min);
  const BatchVector exact_prior = log_density(m, r.x_T, r.t_max);
  for (Eigen::Index i = 0; i < 3; ++i) {
    CHECK(exact_prior(i) + r.delta_logp(i) == Approx(exact(i)).margin(1e-5));
    CHECK(r.bpd(i) ==
          Approx((r.nll(i) + 2 * std::log(127.5)) / (2 * std::log(2.0))).epsilon(1e-14));
  }
}

// ---------------------------------------------------------------------------------
// The variational bound

TEST_CASE("The discrete chain: a vp_discrete schedule's own betas, or a respaced schedule") {
  const VpDiscreteSchedule ddpm = VpDiscreteSchedule::linear(1e-4, 0.02, 1000);
  const VlbChain c = vlb_chain(ddpm, 0, VlbVariance::beta_tilde);
  REQUIRE(c.steps() == 1000);
  for (int n = 1; n <= 1000; n += 111) {
    CHECK(c.beta[static_cast<std::size_t>(n)] == ddpm.betas()[static_cast<std::size_t>(n - 1)]);
    CHECK(c.tau[static_cast<std::size_t>(n)] == Approx(n / 1000.0).epsilon(1e-15));
  }
  // beta_tilde_n = (1 - alpha_bar_{n-1}) / (1 - alpha_bar_n) beta_n, from the products.
  double ab_prev = 1.0, ab = 1.0;
  for (int n = 1; n <= 5; ++n) {
    ab_prev = ab;
    ab *= 1.0 - ddpm.betas()[static_cast<std::size_t>(n - 1)];
    if (n > 1)
      CHECK(c.beta_tilde[static_cast<std::size_t>(n)] ==
            Approx((1 - ab_prev) / (1 - ab) * ddpm.betas()[static_cast<std::size_t>(n - 1)])
                .epsilon(1e-10));
  }
  CHECK(c.beta_tilde[1] == 0.0);
  CHECK(c.variance[1] == c.beta_tilde[2]);  // the clipped decoder variance
  const VlbChain large = vlb_chain(ddpm, 0, VlbVariance::beta);
  CHECK(large.variance[1] == ddpm.betas()[0]);

  const VpLinearSchedule linear;
  const VlbChain r = vlb_chain(linear, 10, VlbVariance::beta_tilde);
  double log_ab = 0;
  for (int n = 1; n <= 10; ++n) {
    log_ab += std::log1p(-r.beta[static_cast<std::size_t>(n)]);
    CHECK(log_ab == Approx(linear.log_alpha_bar(n / 10.0)).epsilon(1e-12));
  }
  CHECK_THROWS_WITH(vlb_chain(linear, 0, VlbVariance::beta), Catch::Contains("steps"));
}

TEST_CASE("gaussian_kl is the KL divergence of two isotropic Gaussians") {
  for (double vq : {0.01, 0.5, 1.0}) {
    for (double vp_ : {0.02, 0.5, 3.0}) {
      const double sq = 0.7;
      const int d = 3;
      const double reference =
          d * (0.5 * std::log(vp_ / vq) + vq / (2 * vp_) - 0.5) + sq / (2 * vp_);
      CHECK(gaussian_kl(vq, vp_, sq, d) == Approx(reference).epsilon(1e-12));
    }
  }
  CHECK(gaussian_kl(0.3, 0.3, 0.0, 5) == 0.0);
}

TEST_CASE("The discretized decoder's bins are a probability distribution over the 256 levels") {
  const double inf = std::numeric_limits<double>::infinity();
  auto naive = [&](int k, double mean, double sd) {
    const double x = k / 127.5 - 1.0;
    const double lo = k == 0 ? -inf : (x - 1.0 / 255 - mean) / sd;
    const double hi = k == 255 ? inf : (x + 1.0 / 255 - mean) / sd;
    return 0.5 * std::erfc(-hi / std::sqrt(2.0)) - 0.5 * std::erfc(-lo / std::sqrt(2.0));
  };
  for (double mean : {-1.2, -1.0, -0.3, 0.0, 0.004, 0.77, 1.0, 3.0}) {
    for (double sd : {1e-4, 1e-3, 0.01, 0.2, 1.0, 10.0}) {
      INFO("mean " << mean << ", sd " << sd);
      double total = 0;
      for (int k = 0; k < 256; ++k) {
        const double lp = discretized_gaussian_log_prob(k, mean, sd);
        CHECK(lp <= 1e-15);
        total += std::exp(lp);
        const double p = naive(k, mean, sd);
        if (p > 1e-3) CHECK(std::exp(lp) == Approx(p).epsilon(1e-9));
      }
      CHECK(total == Approx(1.0).epsilon(1e-12));
    }
  }
  // Deep tails stay finite and match the asymptotic log Q(z) ~ -z^2/2 - log(z sqrt(2 pi)).
  const double lp = discretized_gaussian_log_prob(255, -1.0, 0.01);  // z = (1 - 1/255 + 1) / 0.01
  const double z = (2.0 - 1.0 / 255) / 0.01;
  CHECK(std::isfinite(lp));
  CHECK(lp == Approx(-0.5 * z * z - std::log(z) - 0.5 * kLog2Pi).epsilon(1e-8));
  CHECK_THROWS(discretized_gaussian_log_prob(256, 0.0, 1.0));
}

namespace {

// The bound's terms recomputed draw by draw from the documented noise keys: x_n =
// sqrt(ab_n) x0 + sqrt(1 - ab_n) z, the posterior q(x_{n-1} | x_n, x0) = N(mu_tilde,
// beta_tilde_n) with mu_tilde = sqrt(ab_{n-1}) beta_n / (1 - ab_n) x0 + sqrt(1 - beta_n)
// (1 - ab_{n-1}) / (1 - ab_n) x_n (the DDPM posterior of Ho et al. 2020), and the model's N(mu, sigma_n^2).
// Returns (mean, standard error) over the draws of term n - 1 for data row r.
std::pair<double, double> recomputed_term(const Model& m, const VlbChain& c, const State& x0,
                                          long r, long n, int draws, std::uint64_t seed,
                                          DataKind kind) {
  const int d = m.dim();
  const auto ns = static_cast<std::size_t>(n);
  const double ab = std::exp(c.log_alpha_bar[ns]);
  const double ab_prev = std::exp(c.log_alpha_bar[ns - 1]);
  const double beta = c.beta[ns];
  std::vector<double> values;
  for (int j = 0; j < draws; ++j) {
    State z(1, d), xn(1, d), eps(1, d);
    philox_normals(seed, NoiseStream::vlb, static_cast<std::uint64_t>(r),
                   static_cast<std::uint32_t>((n - 1) * draws + j), z.data(), d);
    xn = std::sqrt(ab) * x0.row(r) + std::sqrt(1 - ab) * z;
    m.eps(xn, c.tau[ns], eps);
    const State mu = (xn - beta / std::sqrt(1 - ab) * eps) / std::sqrt(1 - beta);
    const double var_p = c.variance[ns];
    double value = 0;
    if (n == 1) {
      for (int k = 0; k < d; ++k) {
        if (kind == DataKind::continuous) {
          value +=
              0.5 * (kLog2Pi + std::log(var_p)) + std::pow(x0(r, k) - mu(0, k), 2) / (2 * var_p);
        } else {
          const double x = x0(r, k), sd = std::sqrt(var_p);
          const double hi =
              x > 1 - 1e-9 ? 1.0
                           : 0.5 * std::erfc(-(x + 1.0 / 255 - mu(0, k)) / (sd * std::sqrt(2.0)));
          const double lo =
              x < -1 + 1e-9 ? 0.0
                            : 0.5 * std::erfc(-(x - 1.0 / 255 - mu(0, k)) / (sd * std::sqrt(2.0)));
          value -= std::log(hi - lo);
        }
      }
    } else {
      const State mu_tilde = std::sqrt(ab_prev) * beta / (1 - ab) * x0.row(r) +
                             std::sqrt(1 - beta) * (1 - ab_prev) / (1 - ab) * xn;
      const double var_q = c.beta_tilde[ns];
      const double sq = (mu_tilde - mu).square().sum();
      value = d * (0.5 * std::log(var_p / var_q) + var_q / (2 * var_p) - 0.5) + sq / (2 * var_p);
    }
    values.push_back(value);
  }
  double mean = 0;
  for (double v : values) mean += v / draws;
  double ss = 0;
  for (double v : values) ss += (v - mean) * (v - mean);
  return {mean, std::sqrt(ss / (draws - 1) / draws)};
}

}  // namespace

TEST_CASE("Each VLB term matches its closed form recomputed from the posterior, draw by draw") {
  for (DataKind kind : {DataKind::continuous, DataKind::image8}) {
    const auto s =
        std::make_shared<VpDiscreteSchedule>(VpDiscreteSchedule::linear(1e-4, 0.02, 200));
    Eigen::VectorXd mean(2), sd(2);
    mean << 0.2, -0.4;
    sd << 0.3, 0.5;
    const GaussianModel m(s, mean, sd);
    State x0(3, 2);
    x0 << -1.0, 51.0 / 127.5 - 1.0, 100.0 / 127.5 - 1.0, 1.0, 2.0 / 127.5 - 1.0, 3.0 / 127.5 - 1.0;
    if (kind == DataKind::continuous) x0(0, 0) = -0.83;
    VlbOptions o;
    o.data = kind;
    o.draws = 5;
    o.seed = 0;
    o.per_term = true;
    const VlbResult r = variational_bound(m, *s, x0, o);
    REQUIRE(r.terms.cols() == 201);
    for (long row = 0; row < 3; ++row) {
      for (long n : {1L, 2L, 3L, 50L, 199L, 200L}) {
        INFO(to_string(kind) << " row " << row << " term " << n - 1);
        const auto [mean_ref, se_ref] = recomputed_term(m, r.chain, x0, row, n, 5, 0, kind);
        CHECK(r.terms(row, n - 1) == Approx(mean_ref).epsilon(1e-9).margin(1e-12));
        CHECK(r.terms_stderr(row, n - 1) == Approx(se_ref).epsilon(1e-6).margin(1e-12));
      }
      // L_T = KL(N(sqrt(ab_N) x0, 1 - ab_N) || N(0, 1)) per axis.
      const double ab = std::exp(r.chain.log_alpha_bar.back());
      double l_t = 0;
      for (int k = 0; k < 2; ++k)
        l_t += 0.5 * (ab * x0(row, k) * x0(row, k) + (1 - ab) - 1 - std::log(1 - ab));
      CHECK(r.terms(row, 200) == Approx(l_t).epsilon(1e-9));
      CHECK(r.prior_term(row) == r.terms(row, 200));
      CHECK(r.total(row) == Approx(r.terms.row(row).sum()).epsilon(1e-12));
      CHECK(r.bpd(row) == Approx(r.total(row) / (2 * std::log(2.0))).epsilon(1e-12));
    }
  }
}

namespace {

// E over x_n ~ q(x_n | x0) of term n - 1 (n >= 2) for Gaussian data N(m, s^2) with the
// exact eps: eps - eps_theta = (1 - sigma^2/v) z - sigma alpha (x0 - m) / v per axis,
// v = ab s^2 + 1 - ab, so E|eps - eps_theta|^2 is in closed form.
double expected_kl(const GaussianModel& m, const VlbChain& c, const double* x0, long n) {
  const auto ns = static_cast<std::size_t>(n);
  const double ab = std::exp(c.log_alpha_bar[ns]), beta = c.beta[ns];
  double e2 = 0;
  for (int k = 0; k < m.dim(); ++k) {
    const double v = ab * m.std()(k) * m.std()(k) + 1 - ab;
    e2 +=
        std::pow(1 - (1 - ab) / v, 2) + (1 - ab) * ab * std::pow(x0[k] - m.mean()(k), 2) / (v * v);
  }
  const double var_p = c.variance[ns], var_q = c.beta_tilde[ns];
  const double rho = var_q / var_p;
  return 0.5 *
         (m.dim() * (rho - 1 - std::log(rho)) + beta * beta / ((1 - beta) * (1 - ab) * var_p) * e2);
}

}  // namespace

TEST_CASE("VLB terms on Gaussian data agree with their exact expectations within the error bars") {
  const auto s = vp();
  const GaussianModel m = gaussian3(s);
  const State x0 = gaussian_data(m, 4, 21);
  for (VlbVariance variance : {VlbVariance::beta_tilde, VlbVariance::beta}) {
    VlbOptions o;
    o.steps = 50;
    o.variance = variance;
    o.draws = 64;  // the terms are skewed (squared norms): few draws understate their spread
    o.per_term = true;
    const VlbResult r = variational_bound(m, *s, x0, o);
    for (long row = 0; row < 4; ++row) {
      double expected_total = r.terms(row, 0) + r.terms(row, 50);  // L_0 and L_T: not recomputed
      double var_total = r.terms_stderr(row, 0) * r.terms_stderr(row, 0);
      for (long n = 2; n <= 50; ++n) {
        const double e = expected_kl(m, r.chain, &x0(row, 0), n);
        INFO(to_string(variance) << " row " << row << " term " << n - 1 << ": "
                                 << r.terms(row, n - 1) << " +- " << r.terms_stderr(row, n - 1)
                                 << ", expected " << e);
        CHECK(std::fabs(r.terms(row, n - 1) - e) < 5 * r.terms_stderr(row, n - 1) + 1e-12);
        expected_total += e;
        var_total += r.terms_stderr(row, n - 1) * r.terms_stderr(row, n - 1);
      }
      CHECK(std::fabs(r.total(row) - expected_total) < 5 * std::sqrt(var_total));
      CHECK(r.total_stderr(row) == Approx(std::sqrt(var_total)).epsilon(1e-9));
    }
  }
}

TEST_CASE("The VLB bounds the exact NLL of Gaussian data and tightens as the steps grow") {
  // With sigma_n^2 = beta_n the expected gap closes like 1/N: 1.0, 0.14 and 0.015 nats at
  // N = 10, 100, 1000 on this problem (with beta_tilde it levels off near 1.4 nats: the
  // first steps' variance is too small; docs/likelihood.md has both).
  const auto s = vp();
  const GaussianModel m = gaussian3(s);
  const State x0 = gaussian_data(m, 500, 22);
  const BatchVector exact = -log_density(m, x0, 0.0);
  double previous_gap = 0, previous_se = 0;
  for (long steps : {10L, 100L, 1000L}) {
    VlbOptions o;
    o.steps = steps;
    o.variance = VlbVariance::beta;
    o.draws = 32;
    const VlbResult r = variational_bound(m, *s, x0, o);
    const BatchVector gap = r.total - exact;
    const double mean_gap = gap.mean();
    const double se = std::sqrt((gap - mean_gap).square().sum() / (gap.size() - 1) / gap.size());
    INFO("N = " << steps << ": mean VLB - NLL = " << mean_gap << " +- " << se << " nats");
    if (steps < 1000)
      CHECK(mean_gap > 4 * se);  // clearly above
    else
      CHECK(mean_gap > -3 * se);  // the gap (0.015) is below the noise: consistent with >= 0
    if (steps > 10) CHECK(previous_gap - mean_gap > 3 * std::hypot(se, previous_se));
    previous_gap = mean_gap;
    previous_se = se;
    CHECK(r.nfe_per_sample == steps * 32);
  }
}

TEST_CASE("VLB results do not depend on the batch or the split, bit for bit") {
  const auto s = std::make_shared<VpDiscreteSchedule>(VpDiscreteSchedule::linear(1e-4, 0.02, 100));
  const GmmModel m = GmmModel::builtin_2d(s);
  const State x0 = gmm_data(m, 5, 23);
  VlbOptions o;
  o.seed = 3;
  const VlbResult all = variational_bound(m, *s, x0, o);
  VlbOptions small = o;
  small.batch = 3;  // one sample (4 draws) per call, and a chunk split mid-draws
  const VlbResult chunked = variational_bound(m, *s, x0, small);
  CHECK((chunked.total == all.total).all());
  CHECK((chunked.total_stderr == all.total_stderr).all());
  for (Eigen::Index i = 0; i < x0.rows(); ++i) {
    VlbOptions one = o;
    one.first_sample = static_cast<std::uint64_t>(i);
    const VlbResult r = variational_bound(m, *s, x0.row(i), one);
    CHECK(r.total(0) == all.total(i));
    CHECK(r.total_stderr(0) == all.total_stderr(i));
  }
}

TEST_CASE("Invalid VLB options are rejected") {
  const auto s = vp();
  const GaussianModel m = gaussian3(s);
  const State x0 = gaussian_data(m, 1, 1);
  VlbOptions o;
  CHECK_THROWS_WITH(variational_bound(m, *s, x0, o), Catch::Contains("steps"));
  o.steps = 10;
  o.draws = 1;
  CHECK_THROWS_WITH(variational_bound(m, *s, x0, o), Catch::Contains("draws"));
  o.draws = 2;
  o.data = DataKind::image8;
  CHECK_THROWS_WITH(variational_bound(m, *s, x0, o), Catch::Contains("8-bit"));
}

// ---------------------------------------------------------------------------------
// Configuration

TEST_CASE("Likelihood configs: defaults, sections, and errors that name their JSON path") {
  const json base = {{"schedule", {{"name", "vp_linear"}}}, {"model", {{"name", "gmm"}}}};
  const LikelihoodConfig c = parse_likelihood_config(base);
  CHECK(c.method == LikelihoodMethod::pf_ode);
  CHECK(c.pf_ode.ode.stepper == PfOdeStepper::dopri5);
  CHECK(c.pf_ode.trace == TraceMethod::exact);
  CHECK(c.pf_ode.t_min == 1e-5);

  json h = base;
  h["trace"] = {{"method", "hutchinson"}, {"probes", 32}, {"distribution", "gaussian"}};
  h["solver"] = {{"name", "pf_ode"}, {"stepper", "rk4"}, {"steps", 50}};
  h["seed"] = 5;
  const LikelihoodConfig ch = parse_likelihood_config(h);
  CHECK(ch.pf_ode.probes == 32);
  CHECK(ch.pf_ode.distribution == ProbeDistribution::gaussian);
  CHECK(ch.pf_ode.ode.stepper == PfOdeStepper::rk4);
  CHECK(ch.pf_ode.steps == 50);
  CHECK(ch.pf_ode.seed == 5);

  auto path_of = [&](json config) {
    return test::config_error_path([&] { build_likelihood_job(parse_likelihood_config(config)); });
  };
  json bad = base;
  bad["tracee"] = json::object();
  CHECK(path_of(bad) == "tracee");
  bad = base;
  bad["trace"] = {{"method", "hutchinson"}, {"probes", 1}};
  CHECK(path_of(bad) == "trace.probes");
  bad = base;
  bad["trace"] = {{"method", "exact"}, {"probes", 4}};
  CHECK(path_of(bad) == "trace.probes");
  bad = base;
  bad["trace"] = {{"distribution", "uniform"}};
  CHECK(path_of(bad) == "trace.distribution");
  bad = base;
  bad["solver"] = {{"stepper", "rk4"}, {"rtol", 1e-3}};
  CHECK(path_of(bad) == "solver.rtol");
  bad = base;
  bad["solver"] = {{"stepper", "rk45"}};
  CHECK(path_of(bad) == "solver.stepper");
  bad = base;
  bad["solver"] = {{"name", "ddim"}};
  CHECK(path_of(bad) == "solver.name");
  bad = base;
  bad["t_min"] = -1;
  CHECK(path_of(bad) == "t_min");
  bad = base;
  bad["t_max"] = 3;
  CHECK(path_of(bad) == "t_max");
  bad = base;
  bad["method"] = "vlb";
  CHECK(path_of(bad) == "vlb.steps");  // required on a continuous schedule
  bad["trace"] = json::object();
  CHECK(path_of(bad) == "trace");  // only used by pf_ode
  bad = base;
  bad["vlb"] = {{"steps", 10}};
  CHECK(path_of(bad) == "vlb");  // only used by vlb
  bad = base;
  bad["method"] = "vlb";
  bad["vlb"] = {{"steps", 10}, {"draws", 1}};
  CHECK(path_of(bad) == "vlb.draws");
  bad["vlb"] = {{"steps", 10}, {"variance", "large"}};
  CHECK(path_of(bad) == "vlb.variance");
  bad = base;
  bad["data_kind"] = "image16";
  CHECK(path_of(bad) == "data_kind");

  json vlb = base;
  vlb["schedule"] = {{"name", "vp_discrete"}, {"num_steps", 100}};
  vlb["method"] = "vlb";
  const LikelihoodJob job = build_likelihood_job(parse_likelihood_config(vlb));
  CHECK(job.config.vlb.steps == 0);  // the schedule's own 100 steps
  CHECK(vlb_chain(*job.schedule, 0, VlbVariance::beta).steps() == 100);
}
