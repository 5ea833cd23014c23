// k-diffusion's DPM-Solver samplers (dpm_fast, dpm_adaptive) against a transcription of
// k-diffusion's own loops written here in its variables (x_ve = x / alpha, tk = -log sigma_ve,
// float64), on analytic models: the samples agree to 1e-8 relative, the adaptive runs take the
// same accepted and rejected steps, and with eta > 0 the same noise draws replayed from one
// Philox stream. Also: the orders lists, convergence against the exact Gaussian PF-ODE flow,
// denoise-to-zero, and refused parameters.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "diffsde/driver.hpp"
#include "diffsde/error.hpp"
#include "diffsde/grid.hpp"
#include "diffsde/noise.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/scores/analytic.hpp"
#include "diffsde/solvers/k_dpm.hpp"
#include "support/exact.hpp"
#include "support/fixtures.hpp"

using namespace diffsde;
using nlohmann::json;

namespace {

// ---- The transcription: k-diffusion's DPMSolver in (x_ve, tk), independent of the solvers.

// k-diffusion's model seen through its eps: the VP model at the time whose lambda is tk, on
// the VP point alpha x_ve (sigma_ve = sigma/alpha, so eps is the same in both frames).
struct KModel {
  const Schedule& schedule;
  const Model& model;
  long calls = 0;
  State eps(const State& x_ve, double tk) {
    const double t = schedule.t_of_lambda(tk);
    const State x = schedule.alpha(t) * x_ve;
    State out(x.rows(), x.cols());
    model.eps(x, t, out);
    ++calls;
    return out;
  }
};

double sigma_of(double tk) { return std::exp(-tk); }

// k-diffusion's eps_cache: one evaluation per key within a step.
using EpsCache = std::map<std::string, State>;
const State& cached_eps(KModel& m, EpsCache& cache, const std::string& key, const State& x, double tk) {
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, m.eps(x, tk)).first;
  return it->second;
}

State dpm_1(KModel& m, EpsCache& c, const State& x, double t, double t_next) {
  const double h = t_next - t;
  const State& eps = cached_eps(m, c, "eps", x, t);
  return x - sigma_of(t_next) * std::expm1(h) * eps;
}

State dpm_2(KModel& m, EpsCache& c, const State& x, double t, double t_next, double r1 = 0.5) {
  const double h = t_next - t;
  const State eps = cached_eps(m, c, "eps", x, t);
  const double s1 = t + r1 * h;
  const State u1 = x - sigma_of(s1) * std::expm1(r1 * h) * eps;
  const State eps_r1 = cached_eps(m, c, "eps_r1", u1, s1);
  return x - sigma_of(t_next) * std::expm1(h) * eps - sigma_of(t_next) / (2 * r1) * std::expm1(h) * (eps_r1 - eps);
}

State dpm_3(KModel& m, EpsCache& c, const State& x, double t, double t_next) {
  const double r1 = 1.0 / 3.0, r2 = 2.0 / 3.0;
  const double h = t_next - t;
  const State eps = cached_eps(m, c, "eps", x, t);
  const double s1 = t + r1 * h, s2 = t + r2 * h;
  const State u1 = x - sigma_of(s1) * std::expm1(r1 * h) * eps;
  const State eps_r1 = cached_eps(m, c, "eps_r1", u1, s1);
  const State u2 = x - sigma_of(s2) * std::expm1(r2 * h) * eps -
                   sigma_of(s2) * (r2 / r1) * (std::expm1(r2 * h) / (r2 * h) - 1) * (eps_r1 - eps);
  const State eps_r2 = cached_eps(m, c, "eps_r2", u2, s2);
  return x - sigma_of(t_next) * std::expm1(h) * eps - sigma_of(t_next) / r2 * (std::expm1(h) / h - 1) * (eps_r2 - eps);
}

// get_ancestral_step(sigma_from, sigma_to, eta) -> (sigma_down, sigma_up).
std::pair<double, double> ancestral_step(double from, double to, double eta) {
  if (eta == 0) return {to, 0.0};
  const double up = std::min(to, eta * std::sqrt(to * to * (from * from - to * to) / (from * from)));
  return {std::sqrt(to * to - up * up), up};
}

// The noise of k-diffusion's noise_sampler, drawn only where it is used (sigma_up > 0).
void add_noise(State& x, double su, double s_noise, NoiseSource* noise) {
  if (!(su > 0)) return;
  State z(x.rows(), x.cols());
  noise->normal(z);
  x += su * s_noise * z;
}

State reference_fast(KModel& m, State x, double t_start, double t_end, int nfe, double eta, double s_noise,
                     NoiseSource* noise) {
  const int steps = nfe / 3 + 1;
  std::vector<double> ts(static_cast<std::size_t>(steps) + 1);
  for (int i = 0; i <= steps; ++i) ts[static_cast<std::size_t>(i)] = t_start + (t_end - t_start) * i / steps;
  ts.back() = t_end;
  std::vector<int> orders;
  if (nfe % 3 == 0) {
    orders = std::vector<int>(static_cast<std::size_t>(steps - 2), 3);
    orders.push_back(2);
    orders.push_back(1);
  } else {
    orders = std::vector<int>(static_cast<std::size_t>(steps - 1), 3);
    orders.push_back(nfe % 3);
  }
  for (std::size_t i = 0; i < orders.size(); ++i) {
    EpsCache cache;
    const double t = ts[i], t_next = ts[i + 1];
    double t_next_ = t_next, su = 0;
    if (eta != 0) {
      const auto [sd, su0] = ancestral_step(sigma_of(t), sigma_of(t_next), eta);
      (void)su0;
      t_next_ = std::min(t_end, -std::log(sd));
      su = std::sqrt(sigma_of(t_next) * sigma_of(t_next) - sigma_of(t_next_) * sigma_of(t_next_));
    }
    cached_eps(m, cache, "eps", x, t);
    if (orders[i] == 1)
      x = dpm_1(m, cache, x, t, t_next_);
    else if (orders[i] == 2)
      x = dpm_2(m, cache, x, t, t_next_);
    else
      x = dpm_3(m, cache, x, t, t_next_);
    add_noise(x, su, s_noise, noise);
  }
  return x;
}

struct ReferencePid {
  double h, b1, b2, b3, accept_safety, eps = 1e-8;
  std::vector<double> errs;
  ReferencePid(double h_, double p, double i, double d, double order, double safety)
      : h(h_), b1((p + i + d) / order), b2(-(p + 2 * d) / order), b3(d / order), accept_safety(safety) {}
  bool propose_step(double error) {
    const double inv_error = 1 / (error + eps);
    if (errs.empty()) errs = {inv_error, inv_error, inv_error};
    errs[0] = inv_error;
    double factor = std::pow(errs[0], b1) * std::pow(errs[1], b2) * std::pow(errs[2], b3);
    factor = 1 + std::atan(factor - 1);
    const bool accept = factor >= accept_safety;
    if (accept) {
      errs[2] = errs[1];
      errs[1] = errs[0];
    }
    h *= factor;
    return accept;
  }
};

struct AdaptiveSettings {
  int order = 3;
  double rtol = 0.05, atol = 0.0078, h_init = 0.05, pcoeff = 0, icoeff = 1, dcoeff = 0, accept_safety = 0.81;
  double eta = 0, s_noise = 1;
  json config() const {
    return {{"name", "dpm_adaptive"}, {"order", order},   {"rtol", rtol},
            {"atol", atol},           {"h_init", h_init}, {"pcoeff", pcoeff},
            {"icoeff", icoeff},       {"dcoeff", dcoeff}, {"accept_safety", accept_safety},
            {"eta", eta},             {"s_noise", s_noise}};
  }
};

struct AdaptiveInfo {
  long nfe = 0, n_accept = 0, n_reject = 0;
};

State reference_adaptive(KModel& m, State x, double t_start, double t_end, const AdaptiveSettings& a,
                         NoiseSource* noise, AdaptiveInfo& info) {
  const bool forward = t_end > t_start;
  double s = t_start;
  State x_prev = x;
  ReferencePid pid(std::fabs(a.h_init) * (forward ? 1 : -1), a.pcoeff, a.icoeff, a.dcoeff,
                   a.eta != 0 ? 1.5 : a.order, a.accept_safety);
  while (forward ? s < t_end - 1e-5 : s > t_end + 1e-5) {
    EpsCache cache;
    const double t = forward ? std::min(t_end, s + pid.h) : std::max(t_end, s + pid.h);
    double t_ = t, su = 0;
    if (a.eta != 0) {
      const auto [sd, su0] = ancestral_step(sigma_of(s), sigma_of(t), a.eta);
      (void)su0;
      t_ = std::min(t_end, -std::log(sd));
      su = std::sqrt(sigma_of(t) * sigma_of(t) - sigma_of(t_) * sigma_of(t_));
    }
    cached_eps(m, cache, "eps", x, s);
    State x_low, x_high;
    if (a.order == 2) {
      x_low = dpm_1(m, cache, x, s, t_);
      x_high = dpm_2(m, cache, x, s, t_);
    } else {
      x_low = dpm_2(m, cache, x, s, t_, 1.0 / 3.0);
      x_high = dpm_3(m, cache, x, s, t_);
    }
    const State delta = (a.rtol * x_low.abs().max(x_prev.abs())).max(a.atol);
    const double error = std::sqrt(((x_low - x_high) / delta).square().sum()) / std::sqrt(double(x.size()));
    if (pid.propose_step(error)) {
      x_prev = x_low;
      x = x_high;
      add_noise(x, su, a.s_noise, noise);
      s = t;
      ++info.n_accept;
    } else {
      ++info.n_reject;
    }
    info.nfe += a.order;
  }
  return x;
}

// ---- Set-up shared by the parity tests.

struct Setup {
  std::shared_ptr<VpLinearSchedule> schedule = std::make_shared<VpLinearSchedule>();
  GmmModel model = test::test_gmm(schedule);
  double t_max = 1.0, t_min = 1e-3;
  State x_T = test::standard_normal_rows(24, 2, 7);
  double lambda_start() const { return schedule->lambda(t_max); }
  double lambda_end() const { return schedule->lambda(t_min); }
  // k-diffusion's ts as grid times: uniform in lambda, m steps.
  std::vector<double> lambda_grid(int m) const {
    std::vector<double> times;
    for (int i = 0; i <= m; ++i)
      times.push_back(i == 0   ? t_max
                      : i == m ? t_min
                               : schedule->t_of_lambda(lambda_start() + (lambda_end() - lambda_start()) * i / m));
    return times;
  }
  State to_ve(const State& x) const { return x / schedule->alpha(t_max); }
  State from_ve(const State& x_ve) const { return schedule->alpha(t_min) * x_ve; }
};

double relative(const State& a, const State& b) { return test::max_abs(a - b) / test::max_abs(b); }

Summary run(const json& config, const Setup& s, const std::vector<double>& times, State& x, NoiseSource* noise) {
  auto solver = test::make_solver(config);
  return integrate(*solver, *s.schedule, s.model, times, x, noise);
}

}  // namespace

TEST_CASE("dpm_fast_orders is k-diffusion's orders list") {
  CHECK(dpm_fast_orders(1) == std::vector<int>{1});
  CHECK(dpm_fast_orders(2) == std::vector<int>{2});
  CHECK(dpm_fast_orders(3) == std::vector<int>{2, 1});
  CHECK(dpm_fast_orders(4) == std::vector<int>{3, 1});
  CHECK(dpm_fast_orders(5) == std::vector<int>{3, 2});
  CHECK(dpm_fast_orders(6) == std::vector<int>{3, 2, 1});
  CHECK(dpm_fast_orders(10) == std::vector<int>{3, 3, 3, 1});
  CHECK(dpm_fast_orders(20) == std::vector<int>{3, 3, 3, 3, 3, 3, 2});
  for (int nfe = 1; nfe <= 40; ++nfe) {
    const auto orders = dpm_fast_orders(nfe);
    int sum = 0;
    for (int o : orders) sum += o;
    CHECK(sum == nfe);
    CHECK(orders.size() == static_cast<std::size_t>(nfe / 3 + 1));
  }
  CHECK_THROWS_AS(dpm_fast_orders(0), Error);
}

TEST_CASE("dpm_fast reproduces k-diffusion's sample_dpm_fast to 1e-8") {
  const Setup s;
  double worst = 0;
  for (int nfe : {4, 5, 6, 10, 11, 12, 20, 30}) {
    INFO("nfe " << nfe << " (orders ending in " << dpm_fast_orders(nfe).back() << ")");
    KModel km{*s.schedule, s.model};
    const State ref = s.from_ve(reference_fast(km, s.to_ve(s.x_T), s.lambda_start(), s.lambda_end(), nfe, 0, 1, nullptr));
    const int m = nfe / 3 + 1;
    State x = s.x_T;
    const Summary sum = run({{"name", "dpm_fast"}, {"nfe", nfe}}, s, s.lambda_grid(m), x, nullptr);
    const double err = relative(x, ref);
    INFO("relative difference " << err);
    CHECK(err < 1e-8);
    CHECK(sum.nfe == nfe);
    CHECK(km.calls == nfe);
    worst = std::max(worst, err);
    // Without nfe: 3 m - 1 evaluations over the m steps.
    if (nfe % 3 == 2) {
      State y = s.x_T;
      run({{"name", "dpm_fast"}}, s, s.lambda_grid(m), y, nullptr);
      CHECK(test::max_abs(y - x) == 0.0);
    }
  }
  // The logsnr grid is k-diffusion's ts too.
  KModel km{*s.schedule, s.model};
  const State ref = s.from_ve(reference_fast(km, s.to_ve(s.x_T), s.lambda_start(), s.lambda_end(), 15, 0, 1, nullptr));
  State x = s.x_T;
  run({{"name", "dpm_fast"}, {"nfe", 15}}, s, LogSnrGrid({s.t_max, s.t_min, 6}).times(*s.schedule), x, nullptr);
  CHECK(relative(x, ref) < 1e-8);
  WARN("dpm_fast parity: worst relative difference " << worst);
}

TEST_CASE("dpm_fast with eta > 0 reproduces k-diffusion draw for draw") {
  const Setup s;
  double worst = 0;
  for (double eta : {0.5, 1.0, 3.0}) {
    for (int nfe : {9, 10, 14}) {
      INFO("eta " << eta << ", nfe " << nfe);
      KModel km{*s.schedule, s.model};
      PhiloxNoise replay(21);
      const State ref =
          s.from_ve(reference_fast(km, s.to_ve(s.x_T), s.lambda_start(), s.lambda_end(), nfe, eta, 0.9, &replay));
      PhiloxNoise noise(21);
      State x = s.x_T;
      const Summary sum = run({{"name", "dpm_fast"}, {"nfe", nfe}, {"eta", eta}, {"s_noise", 0.9}}, s,
                              s.lambda_grid(nfe / 3 + 1), x, &noise);
      INFO("relative difference " << relative(x, ref));
      CHECK(relative(x, ref) < 1e-8);
      CHECK(sum.nfe == nfe);
      // One draw per step but the last (sigma_up = 0 there), the same in both.
      CHECK(sum.draws == replay.draws());
      CHECK(replay.draws() == static_cast<std::uint64_t>(nfe / 3));
      worst = std::max(worst, relative(x, ref));
    }
  }
  WARN("dpm_fast eta > 0 parity: worst relative difference " << worst);
  CHECK(test::make_solver({{"name", "dpm_fast"}, {"eta", 1}})->traits().stochastic);
  CHECK_FALSE(test::make_solver({{"name", "dpm_fast"}})->traits().stochastic);
}

TEST_CASE("dpm_adaptive reproduces k-diffusion's sample_dpm_adaptive, accepted and rejected steps included") {
  const Setup s;
  long rejections = 0;
  double worst = 0;
  for (int order : {2, 3}) {
    for (double tol : {0.0, 1e-4}) {  // 0: k-diffusion's defaults
      for (double h_init : {0.05, 2.0}) {
        AdaptiveSettings a;
        a.order = order;
        a.h_init = h_init;
        if (tol > 0) a.rtol = a.atol = tol;
        INFO(a.config().dump());
        KModel km{*s.schedule, s.model};
        AdaptiveInfo info;
        const State ref =
            s.from_ve(reference_adaptive(km, s.to_ve(s.x_T), s.lambda_start(), s.lambda_end(), a, nullptr, info));
        State x = s.x_T;
        const Summary sum = run(a.config(), s, {s.t_max, s.t_min}, x, nullptr);
        const double err = relative(x, ref);
        INFO("relative difference " << err << "; k-diffusion " << info.n_accept << " accepted, " << info.n_reject
                                    << " rejected; ours " << sum.accepted << ", " << sum.rejected);
        CHECK(err < 1e-8);
        CHECK(sum.accepted == info.n_accept);
        CHECK(sum.rejected == info.n_reject);
        // eps at the step start is reused after a rejection; k-diffusion evaluates it again.
        CHECK(sum.nfe == info.nfe - info.n_reject);
        CHECK(km.calls == info.nfe);
        rejections += info.n_reject;
        worst = std::max(worst, err);
      }
    }
  }
  CHECK(rejections > 0);  // the rejected branch was compared
  WARN("dpm_adaptive parity: worst relative difference " << worst << ", " << rejections << " rejections");
}

TEST_CASE("dpm_adaptive with PID coefficients and eta > 0 reproduces k-diffusion draw for draw") {
  const Setup s;
  double worst = 0;
  long rejections = 0;
  for (int order : {2, 3}) {
    for (double eta : {0.0, 0.7, 1.0}) {
      AdaptiveSettings a;
      a.order = order;
      a.pcoeff = 0.1;
      a.icoeff = 0.8;
      a.dcoeff = 0.05;
      a.accept_safety = 0.9;
      a.rtol = a.atol = 1e-3;
      a.eta = eta;
      a.s_noise = 1.1;
      INFO(a.config().dump());
      KModel km{*s.schedule, s.model};
      PhiloxNoise replay(33);
      AdaptiveInfo info;
      const State ref =
          s.from_ve(reference_adaptive(km, s.to_ve(s.x_T), s.lambda_start(), s.lambda_end(), a, &replay, info));
      PhiloxNoise noise(33);
      State x = s.x_T;
      const Summary sum = run(a.config(), s, {s.t_max, s.t_min}, x, &noise);
      INFO("relative difference " << relative(x, ref));
      CHECK(relative(x, ref) < 1e-8);
      CHECK(sum.accepted == info.n_accept);
      CHECK(sum.rejected == info.n_reject);
      CHECK(sum.draws == replay.draws());
      if (eta > 0) CHECK(replay.draws() > 0);
      worst = std::max(worst, relative(x, ref));
      rejections += info.n_reject;
    }
  }
  WARN("dpm_adaptive PID and eta > 0 parity: worst relative difference " << worst << ", " << rejections
                                                                        << " rejections");
}

TEST_CASE("Without noise both run backwards (an inversion, from sigma_min up to sigma_max) as k-diffusion") {
  const Setup s;
  const double alpha_min = s.schedule->alpha(s.t_min), alpha_max = s.schedule->alpha(s.t_max);
  const State x_0 = 0.5 * s.x_T;
  for (int nfe : {6, 10, 14}) {
    INFO("dpm_fast, nfe " << nfe);
    KModel km{*s.schedule, s.model};
    const State ref =
        alpha_max * reference_fast(km, x_0 / alpha_min, s.lambda_end(), s.lambda_start(), nfe, 0, 1, nullptr);
    std::vector<double> times = s.lambda_grid(nfe / 3 + 1);
    std::reverse(times.begin(), times.end());
    State x = x_0;
    run({{"name", "dpm_fast"}, {"nfe", nfe}}, s, times, x, nullptr);
    CHECK(relative(x, ref) < 1e-8);
  }
  for (int order : {2, 3}) {
    AdaptiveSettings a;
    a.order = order;
    a.rtol = a.atol = 1e-3;
    INFO(a.config().dump());
    KModel km{*s.schedule, s.model};
    AdaptiveInfo info;
    const State ref =
        alpha_max * reference_adaptive(km, x_0 / alpha_min, s.lambda_end(), s.lambda_start(), a, nullptr, info);
    State x = x_0;
    const Summary sum = run(a.config(), s, {s.t_min, s.t_max}, x, nullptr);
    CHECK(relative(x, ref) < 1e-8);
    CHECK(sum.accepted == info.n_accept);
    CHECK(sum.rejected == info.n_reject);
    CHECK(info.n_accept > 1);
  }
  // With noise, the grid must decrease (k-diffusion: "eta must be 0 for reverse sampling").
  CHECK(test::make_solver({{"name", "dpm_fast"}, {"eta", 1}})->traits().needs_decreasing_grid);
  CHECK(test::make_solver({{"name", "dpm_adaptive"}, {"eta", 1}})->traits().needs_decreasing_grid);
  CHECK_FALSE(test::make_solver({{"name", "dpm_adaptive"}})->traits().needs_decreasing_grid);
}

TEST_CASE("dpm_fast converges at its order as nfe grows (exact Gaussian PF-ODE flow)") {
  auto schedule = std::make_shared<VpLinearSchedule>(0.1, 20.0);
  const test::GaussianProblem exact{schedule, {0.5, -1.0}, {0.6, 1.2}};
  const GaussianModel model{schedule, Eigen::Vector2d(0.5, -1.0), Eigen::Vector2d(0.6, 1.2)};
  const double t0 = 1.0, t1 = 0.05;
  const State x_T = test::standard_normal_rows(32, 2, 3);
  const State x_exact = exact.pf_ode_flow(x_T, t0, t1);
  // nfe = 3 m - 1: orders 3, ..., 3, 2 (order 3); nfe = 3 m - 2: 3, ..., 3, 1 (order 2).
  for (const auto& [offset, order] : {std::pair<int, double>{1, 3.0}, std::pair<int, double>{2, 2.0}}) {
    std::vector<double> hs, errors;
    for (int m : {8, 16, 32, 64}) {
      const int nfe = 3 * m - offset;
      auto solver = test::make_solver({{"name", "dpm_fast"}, {"nfe", nfe}});
      CHECK(solver->traits().order == order);
      State x = x_T;
      integrate(*solver, *schedule, model, LogSnrGrid({t0, t1, m}).times(*schedule), x, nullptr);
      hs.push_back(1.0 / nfe);
      errors.push_back((x - x_exact).abs().maxCoeff());
    }
    const double slope = test::log_log_slope(hs, errors);
    INFO("order " << order << ": slope " << slope << "; errors " << errors[0] << " " << errors[1] << " " << errors[2]
                  << " " << errors[3]);
    CHECK(std::fabs(slope - order) < 0.3);
    CHECK(errors[3] < errors[0]);
  }
}

TEST_CASE("dpm_fast on a grid ending at t = 0 ends with the denoise-to-zero step; dpm_adaptive refuses t = 0") {
  const Setup s;
  for (const json& config : {json{{"name", "dpm_fast"}}, json{{"name", "dpm_fast"}, {"nfe", 12}}}) {
    INFO(config.dump());
    std::vector<double> times = s.lambda_grid(config.value("nfe", 12) / 3 + 1);
    State a = s.x_T;
    const Summary sa = run(config, s, times, a, nullptr);
    // x0 = (x - sigma eps) / alpha at the last positive time.
    State eps(a.rows(), a.cols());
    s.model.eps(a, s.t_min, eps);
    const State x0 = (a - s.schedule->sigma(s.t_min) * eps) / s.schedule->alpha(s.t_min);
    times.push_back(0.0);
    State b = s.x_T;
    const Summary sb = run(config, s, times, b, nullptr);
    CHECK(test::max_abs(b - x0) < 1e-12 * test::max_abs(x0));
    CHECK(sb.nfe == sa.nfe + 1);
  }
  State x = s.x_T;
  CHECK_THROWS_WITH(run({{"name", "dpm_adaptive"}}, s, {1.0, 1e-3, 0.0}, x, nullptr),
                    Catch::Contains("dpm_adaptive: grid time t[2] = 0 has sigma = 0"));
  CHECK_THROWS_WITH(run({{"name", "dpm_adaptive"}}, s, {1.0, 0.0}, x, nullptr),
                    Catch::Contains("dpm_adaptive: grid time t[1] = 0"));
}

TEST_CASE("dpm_fast and dpm_adaptive refuse bad parameters, naming them") {
  using test::config_error_path;
  auto path = [](const json& config) { return config_error_path([&] { test::make_solver(config); }); };
  CHECK(path({{"name", "dpm_fast"}, {"nfe", 0}}) == "solver.nfe");
  CHECK(path({{"name", "dpm_fast"}, {"nfe", -3}}) == "solver.nfe");
  CHECK(path({{"name", "dpm_fast"}, {"eta", -0.5}}) == "solver.eta");
  CHECK(path({{"name", "dpm_fast"}, {"s_noise", -1}}) == "solver.s_noise");
  CHECK(path({{"name", "dpm_fast"}, {"order", 2}}) == "solver.order");  // no such parameter
  CHECK(path({{"name", "dpm_adaptive"}, {"order", 1}}) == "solver.order");
  CHECK(path({{"name", "dpm_adaptive"}, {"order", 4}}) == "solver.order");
  CHECK(path({{"name", "dpm_adaptive"}, {"rtol", -1}}) == "solver.rtol");
  CHECK(path({{"name", "dpm_adaptive"}, {"atol", 0}}) == "solver.atol");
  CHECK(path({{"name", "dpm_adaptive"}, {"h_init", 0}}) == "solver.h_init");
  CHECK(path({{"name", "dpm_adaptive"}, {"pcoeff", -1}}) == "solver.pcoeff");
  CHECK(path({{"name", "dpm_adaptive"}, {"icoeff", -1}}) == "solver.icoeff");
  CHECK(path({{"name", "dpm_adaptive"}, {"dcoeff", -0.1}}) == "solver.dcoeff");
  CHECK(path({{"name", "dpm_adaptive"}, {"icoeff", 0}}) == "solver.icoeff");  // p + i + d = 0
  CHECK(path({{"name", "dpm_adaptive"}, {"accept_safety", 0}}) == "solver.accept_safety");
  CHECK(path({{"name", "dpm_adaptive"}, {"eta", -1}}) == "solver.eta");
  CHECK(path({{"name", "dpm_adaptive"}, {"s_noise", -1}}) == "solver.s_noise");
  // The options structs give the same verdicts to C++ callers.
  KDiffusionDpmAdaptive::Options o;
  o.order = 5;
  std::string error, option;
  CHECK_FALSE(o.is_valid(&error, &option));
  CHECK(option == "order");
  CHECK_THROWS_WITH(KDiffusionDpmAdaptive(o), Catch::Contains("dpm_adaptive: order"));
  KDiffusionDpmFast::Options f;
  f.eta = -1;
  CHECK_THROWS_WITH(KDiffusionDpmFast(f), Catch::Contains("dpm_fast: eta"));

  // A budget that does not fit the grid is refused before any evaluation, naming nfe.
  const Setup s;
  State x = s.x_T;
  CHECK_THROWS_WITH(run({{"name", "dpm_fast"}, {"nfe", 20}}, s, s.lambda_grid(5), x, nullptr),
                    Catch::Contains("dpm_fast: nfe = 20") && Catch::Contains("7 steps") &&
                        Catch::Contains("has 5"));
}
