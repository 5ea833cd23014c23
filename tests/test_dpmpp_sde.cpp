// The stochastic DPM-Solver++ family (dpmpp_2m_sde, dpmpp_3m_sde, dpmpp_2s_ancestral,
// dpmpp_sde) against exact answers and against k-diffusion's updates written out here
// independently, in its own variables (sigma_ve = sigma/alpha, x_ve = x/alpha):
//  - the ancestral split and the first multistep step against the generalized DDIM step;
//  - whole runs against the sigma_ve-form reference, draw for draw;
//  - eta = 0: convergence orders on the exact Gaussian PF-ODE flow (time- and logSNR grids);
//  - eta > 0: on Gaussian data every step is affine in x and the draws, so the output law is
//    exactly Gaussian; the reference run on affine forms of the draws gives its mean and
//    variance exactly, which 40,000 samples must match; the law approaches the true marginal
//    as the steps grow (weak order 1); strong error on one Brownian-tree path;
//  - final step to t = 0, NFE and draw counts, configuration errors.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cstdio>
#include <cmath>
#include <functional>
#include <memory>
#include <vector>

#include "diffsde/driver.hpp"
#include "diffsde/error.hpp"
#include "diffsde/grid.hpp"
#include "diffsde/noise.hpp"
#include "diffsde/npy.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/scores/analytic.hpp"
#include "diffsde/solvers/ddim.hpp"
#include "diffsde/solvers/dpmpp_sde.hpp"
#include "support/exact.hpp"
#include "support/fixtures.hpp"

using namespace diffsde;
using nlohmann::json;

namespace {

// ---------------------------------------------------------------------------------------
// A scalar Gaussian as an affine form c + sum_k a_k xi_k of independent standard normals.
struct Affine {
  double c = 0;
  std::vector<double> a;
  double mean() const { return c; }
  double variance() const {
    double v = 0;
    for (double x : a) v += x * x;
    return v;
  }
};
Affine operator+(const Affine& x, const Affine& y) {
  Affine out;
  out.c = x.c + y.c;
  out.a.assign(std::max(x.a.size(), y.a.size()), 0.0);
  for (std::size_t k = 0; k < x.a.size(); ++k) out.a[k] += x.a[k];
  for (std::size_t k = 0; k < y.a.size(); ++k) out.a[k] += y.a[k];
  return out;
}
Affine operator*(double s, const Affine& x) {
  Affine out = x;
  out.c *= s;
  for (double& v : out.a) v *= s;
  return out;
}
Affine operator-(const Affine& x, const Affine& y) { return x + (-1.0) * y; }

// ---------------------------------------------------------------------------------------
// k-diffusion's samplers, transcribed to sigma_ve variables: x_ve = x/alpha, denoise(x_ve, t)
// is the data prediction at the VP time t, noise() the next standard normal. Here
// sv = sigma/alpha = exp(-lambda) and t(sv) = t_of_lambda(-log sv). The input and output are
// VP states.
template <class V>
struct Reference {
  const Schedule& sch;
  std::function<V(const V&, double)> denoise;
  std::function<V()> noise;

  double sv(double t) const { return t == 0 ? 0.0 : sch.sigma(t) / sch.alpha(t); }
  double t_of_sv(double s) const { return sch.t_of_lambda(-std::log(s)); }
  // (sigma_down, sigma_up) of the ancestral step (Karras et al. 2022).
  std::pair<double, double> ancestral(double from, double to, double eta) const {
    if (eta == 0) return {to, 0.0};
    const double up = std::min(to, eta * std::sqrt(to * to * (from * from - to * to) / (from * from)));
    return {std::sqrt(to * to - up * up), up};
  }

  V run_2m(V x, const std::vector<double>& times, double eta, bool heun) const {
    x = (1 / sch.alpha(times.front())) * x;
    V old = x;
    bool have_old = false;
    double h_last = 0;
    for (std::size_t i = 0; i + 1 < times.size(); ++i) {
      const double s = sv(times[i]), s_next = sv(times[i + 1]);
      const V d = denoise(x, times[i]);
      double h = 0;
      if (s_next == 0) {
        x = d;
      } else {
        h = std::log(s) - std::log(s_next);
        const double eh = eta * h, e = -std::expm1(-h - eh);
        x = (s_next / s * std::exp(-eh)) * x + e * d;
        if (have_old) {
          const double r = h_last / h;
          const double c = heun ? 1 - e / (h + eh) : 0.5 * e;  // (e^{-u} - 1)/u + 1, u = h + eh
          x = x + (c / r) * (d - old);
        }
        if (eta > 0) x = x + (s_next * std::sqrt(-std::expm1(-2 * eh))) * noise();
      }
      old = d;
      have_old = true;
      h_last = h;
    }
    return sch.alpha(times.back()) * x;
  }

  // d2_weight = 1 is k-diffusion's (and DPM-Solver's) weight of D2, which makes the method
  // second order only; diffsde uses 2, the Taylor weight of D2 = h^2 x0''/2 (see the docs).
  V run_3m(V x, const std::vector<double>& times, double eta, double d2_weight = 2) const {
    x = (1 / sch.alpha(times.front())) * x;
    V d1 = x, d2 = x;
    int have = 0;
    double h1 = 0, h2 = 0;
    for (std::size_t i = 0; i + 1 < times.size(); ++i) {
      const double s = sv(times[i]), s_next = sv(times[i + 1]);
      const V d = denoise(x, times[i]);
      double h = 0;
      if (s_next == 0) {
        x = d;
      } else {
        h = std::log(s) - std::log(s_next);
        const double he = h * (eta + 1);
        x = std::exp(-he) * x + (-std::expm1(-he)) * d;
        const double p2 = std::expm1(-he) / he + 1, p3 = p2 / he - 0.5;
        if (have >= 2) {
          const double r0 = h1 / h, r1 = h2 / h;
          const V e0 = (1 / r0) * (d - d1), e1 = (1 / r1) * (d1 - d2);
          const V D1 = e0 + (r0 / (r0 + r1)) * (e0 - e1);
          const V D2 = (1 / (r0 + r1)) * (e0 - e1);
          x = x + p2 * D1 - (d2_weight * p3) * D2;
        } else if (have == 1) {
          x = x + (p2 * h / h1) * (d - d1);
        }
        if (eta > 0) x = x + (s_next * std::sqrt(-std::expm1(-2 * h * eta))) * noise();
      }
      d2 = d1;
      d1 = d;
      have = std::min(have + 1, 2);
      h2 = h1;
      h1 = h;
    }
    return sch.alpha(times.back()) * x;
  }

  V run_2s_ancestral(V x, const std::vector<double>& times, double eta) const {
    x = (1 / sch.alpha(times.front())) * x;
    for (std::size_t i = 0; i + 1 < times.size(); ++i) {
      const double s = sv(times[i]), s_next = sv(times[i + 1]);
      const V d = denoise(x, times[i]);
      const auto [down, up] = ancestral(s, s_next, eta);
      if (down == 0) {
        x = d;
      } else {
        const double lam = -std::log(s), h = -std::log(down) - lam, mid = lam + h / 2;
        const V x2 = (std::exp(-mid) / s) * x + (-std::expm1(-h / 2)) * d;
        const V d2 = denoise(x2, sch.t_of_lambda(mid));
        x = (down / s) * x + (-std::expm1(-h)) * d2;
      }
      if (s_next > 0 && eta > 0) x = x + up * noise();
    }
    return sch.alpha(times.back()) * x;
  }

  // Noise: the end of the step uses the normalised increment over the whole step of a
  // Brownian path in the clock sigma_ve, whose increment over the first part is the
  // intermediate point's draw (k-diffusion's Brownian-tree noise_sampler(sigma, sigma_next)).
  V run_sde(V x, const std::vector<double>& times, double eta, double r) const {
    x = (1 / sch.alpha(times.front())) * x;
    for (std::size_t i = 0; i + 1 < times.size(); ++i) {
      const double s = sv(times[i]), s_next = sv(times[i + 1]);
      const V d = denoise(x, times[i]);
      if (s_next == 0) {
        x = d;  // k-diffusion's Euler step to sigma = 0: x + (x - d)/s (0 - s) = d
        continue;
      }
      const double lam = -std::log(s), h = -std::log(s_next) - lam, mid = lam + r * h;
      const double t_mid = sch.t_of_lambda(mid);
      const double fac = 1 / (2 * r);
      auto [down1, up1] = ancestral(s, std::exp(-mid), eta);
      V x2 = (down1 / s) * x + (-std::expm1(lam + std::log(down1))) * d;
      V z1 = x, z2 = x;
      if (eta > 0) {
        z1 = noise();
        z2 = noise();
        x2 = x2 + up1 * z1;
      }
      const V d2 = denoise(x2, t_mid);
      auto [down2, up2] = ancestral(s, s_next, eta);
      const V dd = (1 - fac) * d + fac * d2;
      x = (down2 / s) * x + (-std::expm1(lam + std::log(down2))) * dd;
      if (eta > 0) {
        const double s_mid = std::exp(-mid);
        const double w1 = std::sqrt(s - s_mid), w2 = std::sqrt(s_mid - s_next);
        x = x + (up2 / std::sqrt(s - s_next)) * (w1 * z1 + w2 * z2);
      }
    }
    return sch.alpha(times.back()) * x;
  }

  V run(const json& config, V x, const std::vector<double>& times) const {
    const std::string name = config.at("name");
    const double eta = config.value("eta", 1.0);
    if (name == "dpmpp_2m_sde") return run_2m(x, times, eta, config.value("solver_type", "midpoint") == "heun");
    if (name == "dpmpp_3m_sde") return run_3m(x, times, eta);
    if (name == "dpmpp_2s_ancestral") return run_2s_ancestral(x, times, eta);
    return run_sde(x, times, eta, config.value("r", 0.5));
  }
};

// The reference on states, with the model's data prediction and Philox draws.
Reference<State> state_reference(const Schedule& sch, const Model& model, PhiloxNoise& noise, long n, int dim) {
  return Reference<State>{
      sch,
      [&sch, &model](const State& x_ve, double t) {
        const double a = sch.alpha(t), s = sch.sigma(t);
        const State x = a * x_ve;
        State eps(x.rows(), x.cols());
        model.eps(x, t, eps);
        return State((x - s * eps) / a);
      },
      [&noise, n, dim]() {
        State z(n, dim);
        noise.normal(z);
        return z;
      }};
}

// The reference on affine forms for one axis of Gaussian data N(mu, sd^2): the exact data
// prediction E[x0 | x_t] = mu + alpha sd^2 (x - alpha mu)/v is affine in x; every noise() is a
// new independent standard normal.
Reference<Affine> affine_reference(const Schedule& sch, double mu, double sd, int& next_index) {
  return Reference<Affine>{
      sch,
      [&sch, mu, sd](const Affine& x_ve, double t) {
        const double a = sch.alpha(t), v = a * a * sd * sd - std::expm1(sch.log_alpha_bar(t));
        // x = a x_ve; x0 = mu + a sd^2 (x - a mu)/v
        Affine out = (a * a * sd * sd / v) * x_ve;
        out.c += mu - a * a * sd * sd * mu / v;
        return out;
      },
      [&next_index]() {
        Affine z;
        z.a.assign(static_cast<std::size_t>(next_index) + 1, 0.0);
        z.a[static_cast<std::size_t>(next_index++)] = 1;
        return z;
      }};
}

Affine standard_normal_form(int& next_index, double mean = 0, double sd = 1) {
  Affine z;
  z.c = mean;
  z.a.assign(static_cast<std::size_t>(next_index) + 1, 0.0);
  z.a[static_cast<std::size_t>(next_index++)] = sd;
  return z;
}

const std::vector<json>& all_configs() {
  static const std::vector<json> configs = {
      {{"name", "dpmpp_2m_sde"}, {"eta", 0.0}},
      {{"name", "dpmpp_2m_sde"}, {"eta", 0.0}, {"solver_type", "heun"}},
      {{"name", "dpmpp_2m_sde"}, {"eta", 1.0}},
      {{"name", "dpmpp_2m_sde"}, {"eta", 0.5}, {"solver_type", "heun"}},
      {{"name", "dpmpp_3m_sde"}, {"eta", 0.0}},
      {{"name", "dpmpp_3m_sde"}, {"eta", 1.0}},
      {{"name", "dpmpp_3m_sde"}, {"eta", 0.7}},
      {{"name", "dpmpp_2s_ancestral"}, {"eta", 0.0}},
      {{"name", "dpmpp_2s_ancestral"}, {"eta", 1.0}},
      {{"name", "dpmpp_2s_ancestral"}, {"eta", 0.6}},
      {{"name", "dpmpp_sde"}, {"eta", 0.0}},
      {{"name", "dpmpp_sde"}, {"eta", 1.0}},
      {{"name", "dpmpp_sde"}, {"eta", 0.8}, {"r", 0.3}},
  };
  return configs;
}

}  // namespace

TEST_CASE("dpmpp: the ancestral split is the generalized DDIM step with the same eta") {
  const VpLinearSchedule sch;
  for (auto [ts, tt] : {std::pair{1.0, 0.9}, {0.5, 0.499}, {0.2, 1e-3}, {1e-2, 1e-6}, {0.4, 0.0}}) {
    const ScheduleAt s = sch.at(ts), t = sch.at(tt);
    for (double eta : {0.0, 0.3, 1.0}) {
      INFO("s=" << ts << " t=" << tt << " eta=" << eta);
      const AncestralStep a = ancestral_step(s, t, eta);
      const DdimCoefficients c = ddim_coefficients(s, t, eta);
      // D = x0 = (x - sigma_s eps)/alpha_s: x_t = (a.x + a.x0/alpha_s) x - a.x0 sigma_s/alpha_s eps.
      CHECK(a.x + a.x0 / s.alpha == Approx(c.x).epsilon(1e-12));
      CHECK(-a.x0 * s.sigma / s.alpha == Approx(c.eps).epsilon(1e-9).margin(1e-300));
      CHECK(a.noise == Approx(c.noise).epsilon(1e-12).margin(1e-300));
    }
  }
  // eta > 1 on a long step: sigma_down = 0, capped as in k-diffusion (x_t = alpha_t D + sigma_t z).
  const AncestralStep a = ancestral_step(sch.at(0.9), sch.at(0.1), 3.0);
  CHECK(a.u == 1);
  CHECK(a.x == 0);
  CHECK(a.x0 == Approx(sch.alpha(0.1)));
  CHECK(a.noise == Approx(sch.sigma(0.1)));
}

TEST_CASE("dpmpp multistep: the first step is DDIM's; at eta = 1 draw for draw") {
  // With no history the multistep update is first order: at eta = 0 it is DPM-Solver++(1) =
  // DDIM(0), at eta = 1 SDE-DPM-Solver++(1), whose mean and noise are DDIM(1)'s (= DDPM's
  // posterior step). At other eta it is not DDIM(eta): its noise variance is
  // sigma_t^2 (1 - e^{-2 eta h}), DDIM's eta^2 sigma_t^2 (1 - e^{-2h}).
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel model = test::test_gmm(schedule);
  const State x_T = test::standard_normal_rows(32, 2, 1);
  for (const char* name : {"dpmpp_2m_sde", "dpmpp_3m_sde"}) {
    for (double eta : {0.0, 1.0}) {
      INFO(name << " eta " << eta);
      State a = x_T, b = x_T;
      PhiloxNoise na(4), nb(4);
      integrate(*test::make_solver({{"name", name}, {"eta", eta}}), *schedule, model, {0.8, 0.55}, a, &na);
      integrate(*test::make_solver({{"name", "ddim"}, {"eta", eta}}), *schedule, model, {0.8, 0.55}, b, &nb);
      CHECK(test::max_abs_diff(a, b) < 1e-12);
      CHECK(na.draws() == nb.draws());
    }
    State a = x_T, b = x_T;
    PhiloxNoise na(4), nb(4);
    integrate(*test::make_solver({{"name", name}, {"eta", 0.5}}), *schedule, model, {0.8, 0.55}, a, &na);
    integrate(*test::make_solver({{"name", "ddim"}, {"eta", 0.5}}), *schedule, model, {0.8, 0.55}, b, &nb);
    CHECK(test::max_abs_diff(a, b) > 1e-3);
  }
}

TEST_CASE("dpmpp: whole runs equal k-diffusion's updates in sigma_ve variables, draw for draw") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel model = test::test_gmm(schedule);
  const long n = 16;
  const State x_T = test::standard_normal_rows(n, 2, 2);
  // logSNR spacing down to 1e-3, then a final step to t = 0.
  const auto times = LogSnrGrid({1.0, 0.0, 12, 1e-3}).times(*schedule);
  for (json config : all_configs()) {
    for (const std::string& name_variant : {std::string("-"), std::string("heun")}) {
      if (name_variant == "heun" && config["name"] != "dpmpp_2m_sde") continue;
      if (name_variant == "heun") config["solver_type"] = "heun";
      INFO(config.dump());
      State x = x_T;
      PhiloxNoise noise(7), ref_noise(7);
      integrate(*test::make_solver(config), *schedule, model, times, x, &noise);
      const State y = state_reference(*schedule, model, ref_noise, n, 2).run(config, x_T, times);
      CHECK(test::max_abs_diff(x, y) < 1e-9 * (1 + y.abs().maxCoeff()));
      CHECK(noise.draws() == ref_noise.draws());
    }
  }
}

TEST_CASE("dpmpp_sde at r = 1/2 and eta = 0 is dpmpp_2s_ancestral at eta = 0") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel model = test::test_gmm(schedule);
  const auto times = TimeUniformGrid({1.0, 1e-3, 15}).times(*schedule);
  State a = test::standard_normal_rows(32, 2, 3), b = a;
  integrate(*test::make_solver({{"name", "dpmpp_sde"}, {"eta", 0}}), *schedule, model, times, a, nullptr);
  integrate(*test::make_solver({{"name", "dpmpp_2s_ancestral"}, {"eta", 0}}), *schedule, model, times, b, nullptr);
  CHECK(test::max_abs_diff(a, b) < 1e-11);
}

namespace {

// A grid of `steps` steps uniform in t or in lambda from t_start to t_end, whose first
// `warmup` steps are shrunk to span (h/span)^((order+1)/2) (as tests/test_solver_orders.cpp
// does), so that the multistep start-up at lower orders stays below the error measured.
std::vector<double> shrunk_grid(const Schedule& sch, double t_start, double t_end, int steps, int warmup,
                                double order, bool in_lambda) {
  auto to_u = [&](double t) { return in_lambda ? sch.lambda(t) : t; };
  auto to_t = [&](double u) { return in_lambda ? sch.t_of_lambda(u) : u; };
  const double u0 = to_u(t_start), u1 = to_u(t_end), span = u1 - u0;
  const double tiny = span * std::pow(1.0 / steps, (order + 1) / 2);
  std::vector<double> u = {u0};
  for (int i = 0; i < warmup; ++i) u.push_back(u.back() + tiny);
  const double start = u.back();
  const int rest = steps - warmup;
  for (int i = 1; i <= rest; ++i) u.push_back(i == rest ? u1 : start + (u1 - start) * i / rest);
  std::vector<double> t;
  for (std::size_t i = 0; i < u.size(); ++i)
    t.push_back(i == 0 ? t_start : i + 1 == u.size() ? t_end : to_t(u[i]));
  return t;
}

}  // namespace

TEST_CASE("dpmpp at eta = 0 converges at its declared ODE order on the exact flow") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const test::GaussianProblem problem{schedule, {0.5, -1.0}, {0.6, 1.2}};
  const GaussianModel model(schedule, (Eigen::VectorXd(2) << 0.5, -1.0).finished(),
                            (Eigen::VectorXd(2) << 0.6, 1.2).finished());
  const State x_T = test::standard_normal_rows(64, 2, 4);
  const double t_start = 1.0, t_end = 1e-2;
  const State x_exact = problem.pf_ode_flow(x_T, t_start, t_end);
  const std::vector<json> configs = {
      {{"name", "dpmpp_2m_sde"}, {"eta", 0}, {"solver_type", "midpoint"}},
      {{"name", "dpmpp_2m_sde"}, {"eta", 0}, {"solver_type", "heun"}},
      {{"name", "dpmpp_3m_sde"}, {"eta", 0}},
      {{"name", "dpmpp_2s_ancestral"}, {"eta", 0}},
      {{"name", "dpmpp_sde"}, {"eta", 0}, {"r", 0.5}},
      {{"name", "dpmpp_sde"}, {"eta", 0}, {"r", 0.3}},
  };
  for (const bool in_lambda : {false, true}) {
    for (const json& config : configs) {
      const SolverTraits traits = test::make_solver(config)->traits();
      REQUIRE_FALSE(traits.stochastic);
      std::vector<double> hs, errors;
      // Fine grids: on the logSNR grid the third-order method's rate approaches 3 from above
      // (3.9, 3.6, 3.4, 3.2, 3.1 per doubling from 40 steps).
      for (int steps : {160, 320, 640, 1280}) {
        State x = x_T;
        const auto times = shrunk_grid(*schedule, t_start, t_end, steps, traits.warmup_steps, traits.order, in_lambda);
        const Summary summary = integrate(*test::make_solver(config), *schedule, model, times, x, nullptr);
        CHECK(summary.nfe == steps * traits.evals_per_step);
        hs.push_back(1.0 / steps);
        errors.push_back((x - x_exact).abs().maxCoeff());
      }
      const double slope = test::log_log_slope(hs, errors);
      INFO(config.dump() << (in_lambda ? " logSNR" : " time_uniform") << ": declared " << traits.order
                         << ", observed " << slope << "; errors " << errors[0] << " " << errors[1] << " "
                         << errors[2] << " " << errors[3]);
      CHECK(std::fabs(slope - traits.order) < 0.25);
    }
  }
}

TEST_CASE("dpmpp_3m_sde: k-diffusion's weight of D2 is second order, the Taylor weight third") {
  // DPM-Solver's third-order multistep update (and k-diffusion's 3M) adds
  // alpha_t h phi_3(-h) D2 with D2 = (D1_0 - D1_1)/(r0 + r1), which estimates h^2 x0''/2, where
  // the Taylor expansion of the exact integral needs alpha_t h^3 phi_3(-h) x0'' = 2 alpha_t h
  // phi_3(-h) D2. The reference with either weight, on the exact flow, logSNR grid:
  auto schedule = std::make_shared<VpLinearSchedule>();
  const test::GaussianProblem problem{schedule, {0.5, -1.0}, {0.6, 1.2}};
  const GaussianModel model(schedule, (Eigen::VectorXd(2) << 0.5, -1.0).finished(),
                            (Eigen::VectorXd(2) << 0.6, 1.2).finished());
  const State x_T = test::standard_normal_rows(16, 2, 8);
  const State x_exact = problem.pf_ode_flow(x_T, 1.0, 1e-2);
  PhiloxNoise unused(0);
  const auto ref = state_reference(*schedule, model, unused, 16, 2);
  std::vector<double> hs, kd_errors, errors;
  for (int steps : {160, 320, 640, 1280, 2560}) {
    const auto times = shrunk_grid(*schedule, 1.0, 1e-2, steps, 2, 3, true);
    hs.push_back(1.0 / steps);
    kd_errors.push_back((ref.run_3m(x_T, times, 0.0, 1.0) - x_exact).abs().maxCoeff());
    State x = x_T;
    integrate(*test::make_solver({{"name", "dpmpp_3m_sde"}, {"eta", 0}}), *schedule, model, times, x, nullptr);
    errors.push_back((x - x_exact).abs().maxCoeff());
  }
  const double kd_slope = test::log_log_slope(hs, kd_errors), slope = test::log_log_slope(hs, errors);
  INFO("k-diffusion weight: slope " << kd_slope << ", errors " << kd_errors[0] << " " << kd_errors[2] << " "
                                    << kd_errors[4] << "; diffsde: slope " << slope << ", errors " << errors[0]
                                    << " " << errors[2] << " " << errors[4]);
  CHECK(kd_slope == Approx(2).margin(0.15));
  CHECK(slope == Approx(3).margin(0.25));
}

TEST_CASE("dpmpp with eta > 0: the output law on Gaussian data is the exact law of the chain") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const double mu[2] = {1.2, -0.4}, sd[2] = {0.5, 0.9};
  const GaussianModel model(schedule, (Eigen::VectorXd(2) << mu[0], mu[1]).finished(),
                            (Eigen::VectorXd(2) << sd[0], sd[1]).finished());
  const auto times = LogSnrGrid({1.0, 0.0, 15, 1e-3}).times(*schedule);
  const long n = 40000;
  const State x_T = test::standard_normal_rows(n, 2, 5);
  for (const json& config : all_configs()) {
    if (config["eta"] == 0.0) continue;
    INFO(config.dump());
    State x = x_T;
    PhiloxNoise noise(5);
    integrate(*test::make_solver(config), *schedule, model, times, x, &noise);
    for (int axis = 0; axis < 2; ++axis) {
      int next = 0;
      const auto ref = affine_reference(*schedule, mu[axis], sd[axis], next);
      const Affine law = ref.run(config, standard_normal_form(next), times);
      const double m = law.mean(), v = law.variance();
      const Eigen::ArrayXd col = x.col(axis);
      const double sm = col.mean(), sv = (col - sm).square().sum() / (n - 1);
      INFO("axis " << axis << ": exact chain N(" << m << ", " << v << "), samples N(" << sm << ", " << sv << ")");
      CHECK(std::fabs(sm - m) < 5 * std::sqrt(v / n));
      CHECK(std::fabs(sv - v) < 5 * v * std::sqrt(2.0 / n));
    }
  }
}

TEST_CASE("dpmpp with eta > 0: the chain's law approaches the true marginal at weak order >= 1") {
  // Pure arithmetic on the exact law of the chain (the affine reference, itself checked
  // against sampling above), started from the exact marginal at t = 1.
  const VpLinearSchedule schedule;
  const double mu = 0.3, sd = 0.6, t_end = 1e-2;
  const double v_end = schedule.alpha_bar(t_end) * sd * sd - std::expm1(schedule.log_alpha_bar(t_end));
  const double m_end = schedule.alpha(t_end) * mu;
  const double v_start = schedule.alpha_bar(1.0) * sd * sd - std::expm1(schedule.log_alpha_bar(1.0));
  for (const json& config : all_configs()) {
    if (config["eta"] == 0.0) continue;
    std::vector<double> hs, errors;
    for (int steps : {25, 50, 100, 200}) {
      int next = 0;
      const auto ref = affine_reference(schedule, mu, sd, next);
      const Affine x_T = standard_normal_form(next, schedule.alpha(1.0) * mu, std::sqrt(v_start));
      const Affine law = ref.run(config, x_T, TimeUniformGrid({1.0, t_end, steps}).times(schedule));
      hs.push_back(1.0 / steps);
      errors.push_back(std::fabs(law.mean() - m_end) + std::fabs(law.variance() - v_end));
    }
    const double slope = test::log_log_slope(hs, errors);
    INFO(config.dump() << ": weak errors " << errors[0] << " " << errors[1] << " " << errors[2] << " "
                       << errors[3] << ", slope " << slope);
    CHECK(test::make_solver(config)->traits().order == 1);
    CHECK(slope > 0.9);
    CHECK(errors.back() < errors.front() / 4);
  }
}

TEST_CASE("dpmpp with eta = 1 converges strongly on one Brownian-tree path") {
  // eta = 1 discretizes the reverse SDE itself; its noise comes from the tree's increments.
  auto schedule = std::make_shared<VpLinearSchedule>();
  const double t_lo = 1e-3, t_hi = 1.0;
  const test::GaussianProblem problem{schedule, {0.8}, {0.5}};
  const GaussianModel model(schedule, Eigen::VectorXd::Constant(1, 0.8), Eigen::VectorXd::Constant(1, 0.5));
  const int depth = 10;
  const State x_T = test::standard_normal_rows(200, 1, 6);
  const State x_exact = problem.reverse_sde_on_path(x_T, BrownianTreeNoise(3, t_lo, t_hi, depth), t_hi, t_lo, depth);
  for (const char* name : {"dpmpp_2m_sde", "dpmpp_3m_sde", "dpmpp_2s_ancestral", "dpmpp_sde"}) {
    std::vector<double> hs, errors;
    for (int steps : {16, 32, 64, 128}) {
      BrownianTreeNoise noise(3, t_lo, t_hi, depth);
      State x = x_T;
      integrate(*test::make_solver({{"name", name}, {"eta", 1}}), *schedule, model,
                TimeUniformGrid({t_hi, t_lo, steps}).times(*schedule), x, &noise);
      hs.push_back(1.0 / steps);
      errors.push_back(test::rms_diff(x, x_exact));
    }
    const double slope = test::log_log_slope(hs, errors);
    INFO(name << ": strong errors " << errors[0] << " " << errors[1] << " " << errors[2] << " " << errors[3]
              << ", slope " << slope);
    CHECK(slope > 0.5);
    CHECK(errors.back() < errors.front() / 3);
  }
}

TEST_CASE("dpmpp: a final step to t = 0 returns the data prediction, without NaN") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const double mu = 1.2, sd = 0.4;
  const GaussianModel model(schedule, Eigen::VectorXd::Constant(1, mu), Eigen::VectorXd::Constant(1, sd));
  const State x_s = test::standard_normal_rows(8, 1, 12);
  const double a = schedule->alpha(0.5), v = a * a * sd * sd + 1 - a * a;
  const State expected = mu + a * sd * sd * (x_s - a * mu) / v;  // E[x0 | x_s]
  for (const json& config : all_configs()) {
    INFO(config.dump());
    State y = x_s;
    PhiloxNoise noise(1);
    const Summary summary = integrate(*test::make_solver(config), *schedule, model, {0.5, 0.0}, y, &noise);
    CHECK(test::max_abs_diff(y, expected) < 1e-12);
    CHECK(summary.nfe == 1);
    CHECK(summary.draws == 0);
  }
  // Whole runs to t = 0 on every schedule, from its t_max, stay finite.
  for (const json& sched : {json{{"name", "vp_linear"}}, json{{"name", "vp_cosine"}}, json{{"name", "vp_discrete"}}}) {
    std::shared_ptr<const Schedule> s = schedule_registry().create(sched, "schedule");
    const GmmModel gmm = test::test_gmm(s);
    for (const auto& times : {TimeUniformGrid({s->t_max(), 0.0, 25}).times(*s),
                              LogSnrGrid({s->t_max(), 0.0, 25, 1e-3}).times(*s)}) {
      for (const json& config : all_configs()) {
        INFO(sched.dump() << " " << config.dump());
        State x = test::standard_normal_rows(8, 2, 13);
        PhiloxNoise noise(2);
        CHECK_NOTHROW(integrate(*test::make_solver(config), *s, gmm, times, x, &noise));
        CHECK(x.allFinite());
      }
    }
  }
  // eta > 1 caps the ancestral noise at sigma_t (k-diffusion) and stays finite.
  for (const char* name : {"dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde"}) {
    State x = test::standard_normal_rows(8, 1, 14);
    PhiloxNoise noise(3);
    CHECK_NOTHROW(integrate(*test::make_solver({{"name", name}, {"eta", 4}}), *schedule, model,
                            TimeUniformGrid({1.0, 0.0, 10}).times(*schedule), x, &noise));
    CHECK(x.allFinite());
  }
}

TEST_CASE("dpmpp: NFE, draws and traits") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel model = test::test_gmm(schedule);
  const int N = 10;
  const auto to_zero = TimeUniformGrid({1.0, 0.0, N}).times(*schedule);
  const auto to_small = TimeUniformGrid({1.0, 1e-3, N}).times(*schedule);
  struct Expect {
    json config;
    int evals, draws_per_step, warmup;
    double order;
    bool stochastic;
  };
  for (const Expect& e : {Expect{{{"name", "dpmpp_2m_sde"}}, 1, 1, 1, 1, true},
                          Expect{{{"name", "dpmpp_2m_sde"}, {"eta", 0}}, 1, 0, 1, 2, false},
                          Expect{{{"name", "dpmpp_3m_sde"}}, 1, 1, 2, 1, true},
                          Expect{{{"name", "dpmpp_3m_sde"}, {"eta", 0}}, 1, 0, 2, 3, false},
                          Expect{{{"name", "dpmpp_2s_ancestral"}}, 2, 1, 0, 1, true},
                          Expect{{{"name", "dpmpp_2s_ancestral"}, {"eta", 0}}, 2, 0, 0, 2, false},
                          Expect{{{"name", "dpmpp_sde"}}, 2, 2, 0, 1, true},
                          Expect{{{"name", "dpmpp_sde"}, {"eta", 0}}, 2, 0, 0, 2, false}}) {
    INFO(e.config.dump());
    const SolverTraits traits = test::make_solver(e.config)->traits();
    CHECK(traits.name == e.config["name"]);
    CHECK(traits.evals_per_step == e.evals);
    CHECK(traits.warmup_steps == e.warmup);
    CHECK(traits.order == e.order);
    CHECK(traits.stochastic == e.stochastic);
    CHECK(traits.noise_use.empty() == !e.stochastic);
    State x = test::standard_normal_rows(4, 2, 15);
    PhiloxNoise noise(4);
    Summary s = integrate(*test::make_solver(e.config), *schedule, model, to_small, x, &noise);
    CHECK(s.nfe == N * e.evals);
    CHECK(s.draws == static_cast<std::uint64_t>(N * e.draws_per_step));
    // The final step to t = 0 costs one evaluation and no draw.
    x = test::standard_normal_rows(4, 2, 15);
    PhiloxNoise noise2(4);
    s = integrate(*test::make_solver(e.config), *schedule, model, to_zero, x, &noise2);
    CHECK(s.nfe == (N - 1) * e.evals + 1);
    CHECK(s.draws == static_cast<std::uint64_t>((N - 1) * e.draws_per_step));
  }
  // A Brownian tree answers brownian() without counting draws.
  State x = test::standard_normal_rows(4, 2, 15);
  BrownianTreeNoise tree(1, 0.0, 1.0, 12);
  const Summary s = integrate(*test::make_solver({{"name", "dpmpp_sde"}}), *schedule, model, to_small, x, &tree);
  CHECK(s.draws == 0);
  CHECK(s.nfe == 2 * N);
}

TEST_CASE("dpmpp: configuration errors name their paths") {
  CHECK(test::config_error_path([] { test::make_solver({{"name", "dpmpp_2m_sde"}, {"eta", -0.1}}); }) == "solver.eta");
  CHECK(test::config_error_path([] { test::make_solver({{"name", "dpmpp_3m_sde"}, {"eta", -1}}); }) == "solver.eta");
  CHECK(test::config_error_path([] { test::make_solver({{"name", "dpmpp_2s_ancestral"}, {"eta", -1}}); }) == "solver.eta");
  CHECK(test::config_error_path([] { test::make_solver({{"name", "dpmpp_sde"}, {"eta", -1}}); }) == "solver.eta");
  CHECK(test::config_error_path([] { test::make_solver({{"name", "dpmpp_2m_sde"}, {"solver_type", "rk4"}}); }) ==
        "solver.solver_type");
  for (double r : {0.0, 1.0, 1.5, -0.2})
    CHECK(test::config_error_path([r] { test::make_solver({{"name", "dpmpp_sde"}, {"r", r}}); }) == "solver.r");
  CHECK(test::config_error_path([] { test::make_solver({{"name", "dpmpp_2m_sde"}, {"eta", "one"}}); }) == "solver.eta");
  CHECK(test::config_error_path([] { test::make_solver({{"name", "dpmpp_sde"}, {"solver_type", "heun"}}); }) ==
        "solver.solver_type");
  // With noise the grid must decrease; at eta = 0 an increasing grid is an ODE inversion.
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GaussianModel model(schedule, Eigen::VectorXd::Zero(1), Eigen::VectorXd::Ones(1));
  State x = State::Zero(2, 1);
  PhiloxNoise noise(0);
  CHECK_THROWS_AS(integrate(*test::make_solver({{"name", "dpmpp_2m_sde"}}), *schedule, model, {0.1, 0.5}, x, &noise), Error);
  CHECK_THROWS_AS(integrate(*test::make_solver({{"name", "dpmpp_sde"}}), *schedule, model, {0.1, 0.5}, x, &noise), Error);
}

TEST_CASE("dpmpp at eta = 0 inverts: a forward run returns to its start") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GaussianModel model(schedule, Eigen::VectorXd::Constant(1, 0.3), Eigen::VectorXd::Constant(1, 0.7));
  const State x0 = test::standard_normal_rows(8, 1, 16);
  for (const char* name : {"dpmpp_2m_sde", "dpmpp_3m_sde", "dpmpp_2s_ancestral", "dpmpp_sde"}) {
    State x = x0;
    auto up = TimeUniformGrid({0.05, 0.9, 400}).times(*schedule);
    integrate(*test::make_solver({{"name", name}, {"eta", 0}}), *schedule, model, up, x, nullptr);
    std::reverse(up.begin(), up.end());
    integrate(*test::make_solver({{"name", name}, {"eta", 0}}), *schedule, model, up, x, nullptr);
    INFO(name);
    CHECK(test::max_abs_diff(x, x0) < 1e-4);
  }
}

TEST_CASE("dpmpp_sde with sampler_draws and replayed draws is k-diffusion's run whose noise sampler returned them") {
  // With sampler_draws, replayed draws are what the reference sampler returned: at step k,
  // draw 2k is noise_sampler(sigma, sigma_mid) and draw 2k + 1 is noise_sampler(sigma,
  // sigma_next), used as they are (by default the draws are Brownian increments, combined
  // into the end's noise; see the test above).
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel model = test::test_gmm(schedule);
  const long n = 6, dim = 2;
  const State x_T = test::standard_normal_rows(n, dim, 5);
  const auto times = LogSnrGrid({1.0, 0.0, 10, 1e-3}).times(*schedule);
  const std::size_t noisy_steps = times.size() - 2;  // all but the final step to t = 0
  NpyArray draws;
  draws.shape = {2 * noisy_steps, static_cast<std::size_t>(n), static_cast<std::size_t>(dim)};
  const State all = test::standard_normal_rows(static_cast<long>(2 * noisy_steps) * n, dim, 9);
  for (long r = 0; r < all.rows(); ++r)
    for (long c = 0; c < dim; ++c) draws.data.push_back(all(r, c));
  const std::string file = "dpmpp_sde_replay.npy";
  write_npy(file, draws);
  for (const double eta : {1.0, 0.6}) {
    for (const double r : {0.5, 0.3}) {
      INFO("eta " << eta << " r " << r);
      auto noise = ReplayNoise::from_npy(file);
      State x = x_T;
      integrate(*test::make_solver({{"name", "dpmpp_sde"}, {"eta", eta}, {"r", r}, {"sampler_draws", true}}),
                *schedule, model, times, x, noise.get());
      CHECK(noise->available() == 2 * noisy_steps);

      // k-diffusion's sample_dpmpp_sde in sigma_ve = sigma/alpha and x_ve = x/alpha.
      const auto sv = [&](double t) { return schedule->sigma(t) / schedule->alpha(t); };
      const auto denoise = [&](const State& x_ve, double t) {
        const double a = schedule->alpha(t), sg = schedule->sigma(t);
        State eps(x_ve.rows(), x_ve.cols());
        model.eps(a * x_ve, t, eps);
        return State((a * x_ve - sg * eps) / a);
      };
      const auto ancestral = [&](double from, double to) {
        const double up = std::min(to, eta * std::sqrt(to * to * (from * from - to * to) / (from * from)));
        return std::make_pair(std::sqrt(to * to - up * up), up);
      };
      const auto draw = [&](std::size_t k) { return State(all.middleRows(static_cast<long>(k) * n, n)); };
      State y = x_T / schedule->alpha(times.front());
      std::size_t k = 0;
      for (std::size_t i = 0; i + 1 < times.size(); ++i) {
        const double s = sv(times[i]), s_next = sv(times[i + 1]);
        const State d = denoise(y, times[i]);
        if (s_next == 0) {
          y = d;
          continue;
        }
        const double t = -std::log(s), h = -std::log(s_next) - t, mid = t + h * r, fac = 1 / (2 * r);
        auto [down1, up1] = ancestral(s, std::exp(-mid));
        State y2 = (down1 / s) * y - (down1 / s - 1) * d;
        y2 += draw(k++) * up1;
        const State d2 = denoise(y2, schedule->t_of_lambda(mid));
        auto [down2, up2] = ancestral(s, s_next);
        const State dd = (1 - fac) * d + fac * d2;
        y = (down2 / s) * y - (down2 / s - 1) * dd;
        y += draw(k++) * up2;
      }
      y *= schedule->alpha(times.back());
      CHECK(k == 2 * noisy_steps);
      CHECK(test::max_abs_diff(x, y) < 1e-9 * (1 + y.abs().maxCoeff()));
    }
  }
  std::remove(file.c_str());
}
