// diffusers' conventions: the `diffusers` grid against transcriptions of its schedulers'
// set_timesteps written here, and whole runs translated from scheduler configs against
// transcriptions of DPMSolverMultistepScheduler, EulerDiscreteScheduler and DDIMScheduler's
// step loops (float64, the same analytic network of the timestep, the same x_T).
#include <catch2/catch.hpp>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "diffsde/config.hpp"
#include "diffsde/diffusers_config.hpp"
#include "diffsde/error.hpp"
#include "diffsde/grid.hpp"
#include "diffsde/prediction_model.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/sweep.hpp"
#include "support/diffusers_reference.hpp"
#include "support/diffusers_runs.hpp"
#include "support/exact.hpp"

using namespace diffsde;
using namespace diffsde::test;
using nlohmann::json;

namespace {

std::vector<double> linear_betas(long n, double a = 1e-4, double b = 0.02) { return lin(a, b, n); }

DiffusersGrid::Table grid_table(const json& grid, const std::shared_ptr<const Schedule>& schedule) {
  auto g = grid_registry().create(grid, "grid", BuildContext{schedule, ""});
  const auto* d = dynamic_cast<const DiffusersGrid*>(g.get());
  REQUIRE(d != nullptr);
  return d->table(*schedule);
}

double rel(double a, double b) { return std::fabs(a - b) / std::max(std::fabs(b), 1e-300); }

}  // namespace

TEST_CASE("diffusers grid: known timesteps of diffusers' spacings", "[diffusers]") {
  auto sch = std::make_shared<VpDiscreteSchedule>(VpDiscreteSchedule::linear());
  SECTION("DDIM leading with steps_offset 1 (Stable Diffusion)") {
    const auto tab = grid_table({{"name", "diffusers"}, {"family", "ddim"}, {"steps", 10}, {"timestep_spacing", "leading"},
                                 {"steps_offset", 1}, {"set_alpha_to_one", false}},
                                sch);
    const std::vector<double> expected = {901, 801, 701, 601, 501, 401, 301, 201, 101, 1};
    CHECK(tab.timesteps == expected);
    REQUIRE(tab.times.size() == 11);
    for (std::size_t i = 0; i < 10; ++i) CHECK(tab.times[i] == (expected[i] + 1) / 1000);
    CHECK(tab.times.back() == 1.0 / 1000);  // alpha_bar_0, not 1
  }
  SECTION("DPMSolverMultistep linspace") {
    const auto tab = grid_table({{"name", "diffusers"}, {"steps", 10}}, sch);
    const std::vector<double> expected = {999, 899, 799, 699, 599, 500, 400, 300, 200, 100};
    CHECK(tab.timesteps == expected);
    CHECK(tab.times.back() == 0.0);
    CHECK(tab.model_times == tab.times);
  }
  SECTION("trailing, every family") {
    for (const char* family : {"ddim", "dpm_solver", "euler"}) {
      const auto tab = grid_table({{"name", "diffusers"}, {"family", family}, {"steps", 10}, {"timestep_spacing", "trailing"}}, sch);
      const std::vector<double> expected = {999, 899, 799, 699, 599, 499, 399, 299, 199, 99};
      CHECK(tab.timesteps == expected);
    }
  }
  SECTION("Euler linspace keeps fractional timesteps") {
    const auto tab = grid_table({{"name", "diffusers"}, {"family", "euler"}, {"steps", 4}}, sch);
    CHECK(tab.timesteps == std::vector<double>{999, 666, 333, 0});
    const auto tab7 = grid_table({{"name", "diffusers"}, {"family", "euler"}, {"steps", 7}}, sch);
    CHECK(tab7.timesteps[1] == Approx(832.5).epsilon(1e-15));
    // Its sigma interpolates the table's sigmas linearly; its time is the time of that sigma.
    const double s832 = std::sqrt(std::expm1(-sch->log_alpha_bars()[832])), s833 = std::sqrt(std::expm1(-sch->log_alpha_bars()[833]));
    CHECK(rel(tab7.sigmas[1], 0.5 * (s832 + s833)) < 1e-14);
    CHECK(rel(std::exp(-sch->lambda(tab7.times[1])), tab7.sigmas[1]) < 1e-12);
    CHECK(tab7.model_times[1] == (832.5 + 1) / 1000);
  }
}

TEST_CASE("diffusers grid: against the transcription of set_timesteps", "[diffusers]") {
  for (const long N : {1000L, 200L}) {
    const auto betas = linear_betas(N, 0.00085, 0.012);
    auto sch = std::make_shared<VpDiscreteSchedule>(betas);
    const RefTable ref = ref_table(betas);
    for (const long S : {1L, 3L, 7L, 10L, 25L, 50L}) {
      for (const char* spacing : {"linspace", "leading", "trailing"}) {
        for (const char* rule : {"timesteps", "karras", "exponential", "lu_lambdas"}) {
          INFO("N " << N << " steps " << S << " " << spacing << " " << rule);
          std::vector<double> ts, sig;
          // dpm_solver family
          ref_dpm_timesteps(ref, S, spacing, 0, rule, "zero", ts, sig);
          json g = {{"name", "diffusers"}, {"steps", S}, {"timestep_spacing", spacing}, {"sigmas", rule}};
          bool repeats = false;
          for (std::size_t i = 1; i < ts.size(); ++i) repeats = repeats || ts[i] == ts[i - 1];
          if (repeats) {
            CHECK_THROWS_AS(grid_table(g, sch), ConfigError);
          } else {
            const auto tab = grid_table(g, sch);
            REQUIRE(tab.timesteps.size() == ts.size());
            for (std::size_t i = 0; i < ts.size(); ++i) CHECK(tab.timesteps[i] == ts[i]);
            REQUIRE(tab.sigmas.size() == sig.size());
            for (std::size_t i = 0; i < sig.size(); ++i) CHECK(std::fabs(tab.sigmas[i] - sig[i]) <= 1e-13 * sig[i]);
            // The steps' times carry those sigmas; the network runs at the timesteps.
            for (std::size_t i = 0; i + 1 < sig.size(); ++i) {
              CHECK(rel(std::exp(-sch->lambda(tab.times[i])), sig[i]) < 1e-11);
              CHECK(std::fabs(tab.model_times[i] - (ts[i] + 1) / static_cast<double>(N)) < 1e-15);
            }
            CHECK(tab.times.back() == 0.0);
          }
          // euler family
          ref_euler_timesteps(ref, S, spacing, 0, rule, ts, sig);
          g["family"] = "euler";
          const auto tab = grid_table(g, sch);
          REQUIRE(tab.timesteps.size() == ts.size());
          for (std::size_t i = 0; i < ts.size(); ++i) CHECK(std::fabs(tab.timesteps[i] - ts[i]) < 1e-9);
          for (std::size_t i = 0; i < sig.size(); ++i) CHECK(std::fabs(tab.sigmas[i] - sig[i]) <= 1e-13 * sig[i]);
          for (std::size_t i = 0; i + 1 < sig.size(); ++i)
            CHECK(rel(std::exp(-sch->lambda(tab.times[i])), sig[i]) < 1e-11);
        }
      }
    }
  }
}

TEST_CASE("diffusers grid: what diffsde cannot follow is refused at the key", "[diffusers]") {
  auto sch = std::make_shared<VpDiscreteSchedule>(VpDiscreteSchedule::linear());
  const auto path = [&](const json& g) {
    return diffsde::test::config_error_path([&] {
      try {
        grid_table(g, sch);
      } catch (const ConfigError& e) {
        throw e.prefixed("grid");
      }
    });
  };
  // DDIM steps T -> T - N // S, which is not the next linspace timestep.
  CHECK(path({{"name", "diffusers"}, {"family", "ddim"}, {"steps", 10}}) == "grid.timestep_spacing");
  CHECK(path({{"name", "diffusers"}, {"family", "ddim"}, {"steps", 3}, {"timestep_spacing", "trailing"}}) ==
        "grid.timestep_spacing");
  // Timesteps beyond the table (diffusers would index past its end).
  CHECK(path({{"name", "diffusers"}, {"family", "ddim"}, {"steps", 10}, {"timestep_spacing", "leading"}, {"steps_offset", 100}}) ==
        "grid.steps_offset");
  CHECK(path({{"name", "diffusers"}, {"steps", 1001}}) == "grid.steps");
  // Rounded Karras timesteps that repeat (diffusers issue 12771: squaredcos with Karras).
  CHECK(path({{"name", "diffusers"}, {"steps", 400}, {"sigmas", "karras"}}) == "grid.sigmas");
  // Another schedule: no table to index.
  auto lin_sch = std::make_shared<VpLinearSchedule>();
  CHECK_THROWS_WITH(grid_table({{"name", "diffusers"}}, lin_sch), Catch::Contains("vp_discrete"));
  // Keys of the other family.
  CHECK(diffsde::test::config_error_path([] {
          grid_registry().create({{"name", "diffusers"}, {"family", "ddim"}, {"final_sigmas_type", "zero"}}, "grid");
        }) == "grid.final_sigmas_type");
}

// ---------------------------------------------------------------------------
// Whole runs from scheduler configs (support/diffusers_runs.hpp).

TEST_CASE("DPMSolverMultistepScheduler configs against the transcription of its step", "[diffusers]") {
  struct Case {
    long steps;
    bool karras;
    std::string final_type;
    long order;
  };
  for (const Case& c : {Case{10, true, "zero", 2}, Case{20, false, "zero", 2}, Case{8, false, "sigma_min", 2},
                        Case{16, true, "sigma_min", 2}, Case{10, true, "sigma_min", 2}, Case{6, true, "zero", 1},
                        Case{12, false, "zero", 3}, Case{18, true, "zero", 3}, Case{9, true, "sigma_min", 3},
                        Case{20, false, "sigma_min", 3}}) {
    INFO("steps " << c.steps << " karras " << c.karras << " final " << c.final_type << " order " << c.order);
    const json sc = {{"_class_name", "DPMSolverMultistepScheduler"}, {"beta_schedule", "linear"},
                     {"use_karras_sigmas", c.karras}, {"final_sigmas_type", c.final_type}, {"solver_order", c.order}};
    const json config = base_config(sc, c.steps);
    const State got = run_translated(config);

    const json native = expand_scheduler_config(config, "");
    const Network net = network(native["schedule"]);
    const auto& d = dynamic_cast<const VpDiscreteSchedule&>(*net.schedule);
    const RefTable tab = ref_table(d.betas());
    std::vector<double> ts, sig;
    ref_dpm_timesteps(tab, c.steps, "linspace", 0, c.karras ? "karras" : "timesteps", c.final_type, ts, sig);
    State x = build_sample_job(parse_sample_config(native)).x;  // the same x_T
    x = ref_dpm_solver_multistep(x, ts, sig, c.order, c.final_type, net, ref_x0_from_eps);
    CHECK(max_rel(got, x) < 1e-8);
  }
}

TEST_CASE("UniPCMultistepScheduler configs against the transcription of its step", "[diffusers]") {
  struct Case {
    long steps, order;
    std::string variant;
    bool karras, lower_order_final;
    std::string final_type;
    std::vector<long> disable_corrector;
  };
  for (const Case& c : {Case{10, 2, "bh2", false, true, "zero", {}}, Case{12, 3, "bh1", false, true, "sigma_min", {}},
                        Case{9, 3, "bh2", false, false, "sigma_min", {}}, Case{7, 1, "bh2", true, true, "zero", {}},
                        Case{20, 2, "bh1", false, false, "sigma_min", {}},
                        Case{16, 3, "bh2", false, true, "sigma_min", {}},
                        // Karras sigmas ending at sigma_min: diffusers' zero-length last step and its corrector.
                        Case{10, 2, "bh2", true, true, "sigma_min", {}}, Case{8, 3, "bh1", true, true, "sigma_min", {}},
                        Case{18, 3, "bh2", true, true, "sigma_min", {}}, Case{5, 1, "bh2", true, true, "sigma_min", {}},
                        // Steps whose result is left uncorrected.
                        Case{10, 2, "bh2", false, true, "zero", {0, 3}}, Case{9, 3, "bh1", true, true, "sigma_min", {7}},
                        Case{12, 3, "bh2", false, true, "sigma_min", {1, 2, 10}}}) {
    INFO("steps " << c.steps << " order " << c.order << " " << c.variant << " karras " << c.karras << " lof "
                  << c.lower_order_final << " final " << c.final_type << " disabled " << c.disable_corrector.size());
    json sc = {{"_class_name", "UniPCMultistepScheduler"}, {"solver_order", c.order}, {"solver_type", c.variant},
               {"use_karras_sigmas", c.karras}, {"lower_order_final", c.lower_order_final},
               {"final_sigmas_type", c.final_type}};
    if (!c.disable_corrector.empty()) sc["disable_corrector"] = c.disable_corrector;
    const json config = base_config(sc, c.steps);
    const State got = run_translated(config);
    const json native = expand_scheduler_config(config, "");
    const Network net = network(native["schedule"]);
    const RefTable tab = ref_table(dynamic_cast<const VpDiscreteSchedule&>(*net.schedule).betas());
    std::vector<double> ts, sig;
    ref_dpm_timesteps(tab, c.steps, "linspace", 0, c.karras ? "karras" : "timesteps", c.final_type, ts, sig);
    // Karras sigmas end at the table's sigma_min, which sigma_last repeats: equal in
    // diffusers' float32 (a last step of length zero), in float64 only to the last bits.
    if (c.karras && c.final_type == "sigma_min") sig.back() = sig[sig.size() - 2];
    State x = build_sample_job(parse_sample_config(native)).x;
    const auto alpha_of = [](double s) { return 1 / std::sqrt(s * s + 1); };
    const auto lam = [&](double s) { return std::log(alpha_of(s)) - std::log(s * alpha_of(s)); };
    const bool bh2 = c.variant == "bh2";
    std::vector<State> outputs;  // model_outputs, newest last
    // The R matrix and b vector of UniPC's order conditions for h and the ratios rks.
    const auto conditions = [&](double h, const std::vector<double>& rks_in, long order, Eigen::MatrixXd& R,
                                Eigen::VectorXd& b, double& h_phi_1, double& B_h) {
      std::vector<double> rks = rks_in;
      rks.push_back(1.0);
      const double hh = -h;
      h_phi_1 = std::expm1(hh);
      double h_phi_k = h_phi_1 / hh - 1;
      double factorial = 1;
      B_h = bh2 ? std::expm1(hh) : hh;
      R.resize(order, static_cast<long>(rks.size()));
      b.resize(order);
      for (long k = 1; k <= order; ++k) {
        for (std::size_t j = 0; j < rks.size(); ++j) R(k - 1, static_cast<long>(j)) = std::pow(rks[j], k - 1);
        b(k - 1) = h_phi_k * factorial / B_h;
        factorial *= static_cast<double>(k + 1);
        h_phi_k = h_phi_k / hh - 1 / factorial;
      }
    };
    // multistep_uni_p_bh_update at step i (outputs.back() is m0 at sig[i]).
    const auto uni_p = [&](const State& xs, long i, long order) {
      const double st = sig[i + 1], s0 = sig[i];
      const double at = alpha_of(st), sgt = st * at, sg0 = s0 * alpha_of(s0);
      const double h = lam(st) - lam(s0);
      const State& m0 = outputs.back();
      std::vector<double> rks;
      std::vector<State> D1s;
      for (long k = 1; k < order; ++k) {
        const double rk = (lam(sig[i - k]) - lam(s0)) / h;
        rks.push_back(rk);
        D1s.push_back((outputs[outputs.size() - 1 - k] - m0) / rk);
      }
      Eigen::MatrixXd R;
      Eigen::VectorXd b;
      double h_phi_1 = 0, B_h = 0;
      conditions(h, rks, order, R, b, h_phi_1, B_h);
      State res = State::Zero(xs.rows(), xs.cols());
      if (!D1s.empty()) {
        Eigen::VectorXd rhos;
        if (order == 2) {
          rhos = Eigen::VectorXd::Constant(1, 0.5);
        } else {
          rhos = R.topLeftCorner(order - 1, order - 1).partialPivLu().solve(b.head(order - 1));
        }
        for (std::size_t k = 0; k < D1s.size(); ++k) res += rhos(static_cast<long>(k)) * D1s[k];
      }
      return State((sgt / sg0) * xs - (at * h_phi_1) * m0 - (at * B_h) * res);
    };
    // multistep_uni_c_bh_update at step i: corrects the sample the previous step made.
    const auto uni_c = [&](const State& model_t, const State& last, long i, long order) {
      const double st = sig[i], s0 = sig[i - 1];
      const double at = alpha_of(st), sgt = st * at, sg0 = s0 * alpha_of(s0);
      const double h = lam(st) - lam(s0);
      const State& m0 = outputs.back();
      std::vector<double> rks;
      std::vector<State> D1s;
      for (long k = 1; k < order; ++k) {
        const double rk = (lam(sig[i - (k + 1)]) - lam(s0)) / h;
        rks.push_back(rk);
        D1s.push_back((outputs[outputs.size() - 1 - k] - m0) / rk);
      }
      Eigen::MatrixXd R;
      Eigen::VectorXd b;
      double h_phi_1 = 0, B_h = 0;
      conditions(h, rks, order, R, b, h_phi_1, B_h);
      Eigen::VectorXd rhos = order == 1 ? Eigen::VectorXd::Constant(1, 0.5) : Eigen::VectorXd(R.partialPivLu().solve(b));
      State corr = State::Zero(last.rows(), last.cols());
      for (std::size_t k = 0; k < D1s.size(); ++k) corr += rhos(static_cast<long>(k)) * D1s[k];
      return State((sgt / sg0) * last - (at * h_phi_1) * m0 - (at * B_h) * (corr + rhos(order - 1) * (model_t - m0)));
    };
    const long n = static_cast<long>(ts.size());
    long lower_order_nums = 0, this_order = 0;
    State last_sample;
    for (long i = 0; i < n; ++i) {
      const double s0 = sig[i];
      const double a0 = alpha_of(s0);
      const State x0 = (x - s0 * a0 * net(x, ts[i])) / a0;
      const bool use_corrector = i > 0 && std::find(c.disable_corrector.begin(), c.disable_corrector.end(), i - 1) ==
                                              c.disable_corrector.end();
      if (use_corrector) x = uni_c(x0, last_sample, i, this_order);
      outputs.push_back(x0);
      long order = c.lower_order_final ? std::min(c.order, n - i) : c.order;
      this_order = std::min(order, lower_order_nums + 1);
      last_sample = x;
      x = uni_p(x, i, this_order);
      if (lower_order_nums < c.order) ++lower_order_nums;
    }
    CHECK(max_rel(got, x) < 1e-8);
  }
}

TEST_CASE("EulerDiscreteScheduler configs against the transcription of its step", "[diffusers]") {
  for (const bool karras : {false, true}) {
    for (const char* spacing : {"linspace", "leading", "trailing"}) {
      INFO("karras " << karras << " spacing " << spacing);
      const long steps = 13;  // linspace: fractional timesteps
      const json sc = {{"_class_name", "EulerDiscreteScheduler"}, {"beta_schedule", "scaled_linear"},
                       {"beta_start", 0.00085}, {"beta_end", 0.012}, {"use_karras_sigmas", karras},
                       {"timestep_spacing", spacing}, {"steps_offset", std::string(spacing) == "leading" ? 1 : 0}};
      const json config = base_config(sc, steps);
      const State got = run_translated(config);
      const json native = expand_scheduler_config(config, "");
      const Network net = network(native["schedule"]);
      const RefTable tab = ref_table(dynamic_cast<const VpDiscreteSchedule&>(*net.schedule).betas());
      std::vector<double> ts, sig;
      ref_euler_timesteps(tab, steps, spacing, std::string(spacing) == "leading" ? 1 : 0, karras ? "karras" : "timesteps",
                          ts, sig);
      const State z = build_sample_job(parse_sample_config(native)).x;
      State x = z * std::sqrt(sig[0] * sig[0] + 1);  // diffsde's x_T in sigma scale (docs/interop.md, "The first sample")
      for (std::size_t i = 0; i < ts.size(); ++i) {
        const double s = sig[i];
        const State eps = net(x / std::sqrt(s * s + 1), ts[i]);  // scale_model_input
        const State x0 = x - s * eps;
        const State deriv = (x - x0) / s;
        x = x + deriv * (sig[i + 1] - s);
      }
      CHECK(max_rel(got, x) < 1e-8);
    }
  }
}

TEST_CASE("DDIMScheduler configs against the transcription of its step", "[diffusers]") {
  for (const bool clip : {false, true}) {
    INFO("clip_sample " << clip);
    const long steps = 20;
    const json sc = {{"_class_name", "DDIMScheduler"}, {"beta_schedule", "scaled_linear"}, {"beta_start", 0.00085},
                     {"beta_end", 0.012}, {"clip_sample", clip}, {"set_alpha_to_one", false},
                     {"steps_offset", 1}, {"timestep_spacing", "leading"}};
    const json config = base_config(sc, steps);
    const State got = run_translated(config);
    const json native = expand_scheduler_config(config, "");
    const Network net = network(native["schedule"]);
    const RefTable tab = ref_table(dynamic_cast<const VpDiscreteSchedule&>(*net.schedule).betas());
    State x = build_sample_job(parse_sample_config(native)).x;
    const long N = 1000, ratio = N / steps;
    for (long k = steps - 1; k >= 0; --k) {
      const long t = k * ratio + 1, prev = t - ratio;
      const double ab = tab.alphas_cumprod[t], ab_prev = prev >= 0 ? tab.alphas_cumprod[prev] : tab.alphas_cumprod[0];
      const State eps = net(x, static_cast<double>(t));
      State x0 = (x - std::sqrt(1 - ab) * eps) / std::sqrt(ab);
      if (clip) x0 = x0.cwiseMax(-1.0).cwiseMin(1.0);
      x = std::sqrt(ab_prev) * x0 + std::sqrt(1 - ab_prev) * eps;
    }
    CHECK(max_rel(got, x) < 1e-8);
  }
}

TEST_CASE("scheduler configs: what cannot be honoured is an error at the key", "[diffusers]") {
  const auto path = [](const json& sc, long steps = 10) {
    return diffsde::test::config_error_path([&] { expand_scheduler_config(base_config(sc, steps), ""); });
  };
  CHECK(path({{"_class_name", "PNDMSchedulerX"}}) == "scheduler_config._class_name");
  CHECK(path({{"_class_name", "DDIMScheduler"}, {"no_such_key", 1}}) == "scheduler_config.no_such_key");
  CHECK(path({{"_class_name", "DPMSolverMultistepScheduler"}, {"solver_order", 4}}) == "scheduler_config.solver_order");
  CHECK(path({{"_class_name", "DPMSolverMultistepScheduler"}, {"algorithm_type", "sde-dpmsolver"}}) ==
        "scheduler_config.algorithm_type");
  CHECK(path({{"_class_name", "DPMSolverMultistepScheduler"}, {"variance_type", "learned_range"}}) ==
        "scheduler_config.variance_type");
  // diffusers' bh1 step to sigma 0 multiplies B(h) = -inf by a zero correction: not finite.
  CHECK(path({{"_class_name", "UniPCMultistepScheduler"}, {"solver_type", "bh1"}}) == "scheduler_config.solver_type");
  CHECK(path({{"_class_name", "UniPCMultistepScheduler"}, {"lower_order_final", false}}) ==
        "scheduler_config.lower_order_final");
  CHECK(path({{"_class_name", "UniPCMultistepScheduler"}, {"use_karras_sigmas", true}, {"final_sigmas_type", "sigma_min"},
              {"lower_order_final", false}}) == "scheduler_config.lower_order_final");
  CHECK(path({{"_class_name", "UniPCMultistepScheduler"}, {"disable_corrector", {1, -2}}}) ==
        "scheduler_config.disable_corrector[1]");
  CHECK(path({{"_class_name", "UniPCMultistepScheduler"}, {"disable_corrector", 3}}) ==
        "scheduler_config.disable_corrector");
  CHECK(path({{"_class_name", "EulerDiscreteScheduler"}, {"interpolation_type", "log_linear"}}) ==
        "scheduler_config.interpolation_type");
  CHECK(path({{"_class_name", "DDIMScheduler"}, {"prediction_type", "v_prediction"}}) ==
        "scheduler_config.prediction_type");  // gmm predicts eps
  CHECK(diffsde::test::config_error_path([] {
          expand_scheduler_config(json{{"scheduler_config", {{"_class_name", "DDIMScheduler"}}}}, "");
        }) == "steps");
  // What the timesteps refuse is reported at the scheduler config's key, or at "steps".
  CHECK(path({{"_class_name", "DDIMScheduler"}, {"timestep_spacing", "linspace"}}) ==
        "scheduler_config.timestep_spacing");
  CHECK(path({{"_class_name", "DDIMScheduler"}, {"timestep_spacing", "leading"}}, 2000) == "steps");
  CHECK(path({{"_class_name", "DDIMScheduler"}, {"timestep_spacing", "leading"}, {"steps_offset", 200}}) ==
        "scheduler_config.steps_offset");
  CHECK(path({{"_class_name", "DPMSolverMultistepScheduler"}, {"use_karras_sigmas", true}}, 400) == "scheduler_config");
  CHECK(path({{"_class_name", "DDIMScheduler"}}, 0) == "steps");
  // The translation as diffusers' from_config reads another class's config: foreign keys
  // are dropped with a note.
  std::vector<std::string> notes;
  const json pndm = {{"_class_name", "PNDMScheduler"}, {"skip_prk_steps", true}, {"beta_schedule", "scaled_linear"},
                     {"beta_start", 0.00085}, {"beta_end", 0.012}, {"set_alpha_to_one", false}, {"steps_offset", 1},
                     {"timestep_spacing", "leading"}};
  json config = base_config(pndm, 20);
  config["scheduler_class"] = "DPMSolverMultistepScheduler";
  const json native = expand_scheduler_config(config, "", &notes);
  CHECK(native["solver"]["name"] == "dpm_solver");
  CHECK(native["grid"]["steps_offset"] == 1);
  CHECK(notes.size() == 2);  // skip_prk_steps, set_alpha_to_one

  // Zero terminal SNR: DPM-Solver's class puts 2^-24 in place of alpha_bar = 0, DDIM's keeps
  // the 0, from which no solver can start: a trailing grid starting there is refused.
  CHECK(path({{"_class_name", "DPMSolverMultistepScheduler"}, {"rescale_betas_zero_snr", true}}) ==
        "scheduler_config.rescale_betas_zero_snr");  // DDPM's betas: alpha_bar_998 < 2^-24 once rescaled
  CHECK(path({{"_class_name", "DDIMScheduler"}, {"beta_start", 1.5}}) == "scheduler_config.beta_start");
  const json dpm_zero = {{"_class_name", "DPMSolverMultistepScheduler"}, {"rescale_betas_zero_snr", true},
                         {"timestep_spacing", "trailing"}, {"beta_schedule", "scaled_linear"},
                         {"beta_start", 0.00085}, {"beta_end", 0.012}};
  const json n1 = expand_scheduler_config(base_config(dpm_zero, 10), "");
  CHECK(n1["schedule"]["final_alpha_bar"] == 5.9604644775390625e-08);
  SampleJob zero_job = build_sample_job(parse_sample_config(n1));
  run_sample_job(zero_job);
  CHECK(zero_job.x.allFinite());
  json ddim_zero = {{"_class_name", "DDIMScheduler"}, {"rescale_betas_zero_snr", true}, {"timestep_spacing", "trailing"},
                    {"clip_sample", false}, {"beta_schedule", "scaled_linear"}, {"beta_start", 0.00085}, {"beta_end", 0.012}};
  const json n2 = expand_scheduler_config(base_config(ddim_zero, 10), "");
  CHECK_FALSE(n2["schedule"].contains("final_alpha_bar"));
  // DDIM keeps alpha_bar = 0 and starts there, from pure noise, with the model's own x0 (the
  // analytic mixture's posterior mean; an eps network is refused: tests/test_solver_guards.cpp).
  SampleJob ddim_job = build_sample_job(parse_sample_config(n2));
  CHECK(ddim_job.times.front() == 1.0);
  CHECK(ddim_job.schedule->alpha(1.0) == 0.0);
  run_sample_job(ddim_job);
  CHECK(ddim_job.x.allFinite());
}

TEST_CASE("prediction_type: an analytic model's eps as x0, v or score, back to eps", "[diffusers]") {
  // The raw model returns the mixture's exact eps converted to another prediction (by the
  // identities x = alpha x0 + sigma eps, v = alpha eps - sigma x0, score = -eps/sigma);
  // with_prediction must give the mixture's eps back, at the step's time also when the
  // raw model runs at another one.
  auto sch = std::make_shared<VpDiscreteSchedule>(VpDiscreteSchedule::linear());
  std::shared_ptr<const Model> gmm = model_registry().create(json{{"name", "gmm"}}, "model", BuildContext{sch, ""});
  State x(6, 2);
  for (long r = 0; r < 6; ++r) x.row(r) << 0.3 * static_cast<double>(r) - 1.0, 0.7 - 0.2 * static_cast<double>(r);
  for (const Prediction kind : {Prediction::eps, Prediction::x0, Prediction::v, Prediction::score}) {
    auto raw = make_model(2, [&, kind](const ConstStateRef& xs, double t, StateRef out) {
      State e(xs.rows(), xs.cols());
      gmm->eps(xs, t, e);
      const double a = sch->alpha(t), s = sch->sigma(t);
      if (kind == Prediction::eps) out = e;
      if (kind == Prediction::x0) out = (xs - s * e) / a;
      if (kind == Prediction::v) out = a * e - s * (xs - s * e) / a;
      if (kind == Prediction::score) out = -e / s;
    });
    const auto model = with_prediction(raw, sch, kind);
    INFO(to_string(kind));
    for (const double t : {0.01, 0.3, 0.77, 1.0}) {
      State got(6, 2), want(6, 2);
      model->eps(x, t, got);
      gmm->eps(x, t, want);
      CHECK(max_rel(got, want) < 1e-12);
    }
    // Raw output from t_net, converted at t.
    const double t = 0.5, t_net = 0.52;
    State got(6, 2), e_net(6, 2);
    model->eps_rows_retimed(x, t, t_net, ModelRows{}, got);
    gmm->eps(x, t_net, e_net);
    const double an = sch->alpha(t_net), sn = sch->sigma(t_net), a = sch->alpha(t), s = sch->sigma(t);
    State want = e_net;
    if (kind == Prediction::x0) want = (x - a * ((x - sn * e_net) / an)) / s;
    if (kind == Prediction::v) want = s * x + a * (an * e_net - sn * (x - sn * e_net) / an);
    if (kind == Prediction::score) want = s * e_net / sn;
    CHECK(max_rel(got, want) < 1e-12);
  }
}

TEST_CASE("PNDMScheduler configs (skip_prk_steps) against the transcription of its step_plms", "[diffusers]") {
  for (const long steps : {1L, 2L, 3L, 5L, 20L}) {
    INFO("steps " << steps);
    // Stable Diffusion 1.x's scheduler config.
    const json sc = {{"_class_name", "PNDMScheduler"}, {"beta_schedule", "scaled_linear"}, {"beta_start", 0.00085},
                     {"beta_end", 0.012}, {"num_train_timesteps", 1000}, {"set_alpha_to_one", false},
                     {"skip_prk_steps", true}, {"steps_offset", 1}, {"timestep_spacing", "leading"}};
    const json config = base_config(sc, steps);
    const State got = run_translated(config);
    const json native = expand_scheduler_config(config, "");
    const Network net = network(native["schedule"]);
    const RefTable tab = ref_table(dynamic_cast<const VpDiscreteSchedule&>(*net.schedule).betas());
    State sample = build_sample_job(parse_sample_config(native)).x;
    const long N = 1000, ratio = N / steps;
    // set_timesteps: _timesteps = arange(S) * ratio + offset; plms_timesteps =
    // [_t[:-1], _t[-2:-1], _t[-1:]] reversed (the second timestep twice).
    std::vector<long> base;
    for (long k = 0; k < steps; ++k) base.push_back(k * ratio + 1);
    std::vector<long> plms;
    if (steps > 1) {
      for (long k = 0; k + 1 < steps; ++k) plms.push_back(base[k]);
      plms.push_back(base[steps - 2]);
    }
    plms.push_back(base[steps - 1]);
    std::reverse(plms.begin(), plms.end());
    const auto prev_sample = [&](const State& x, long t, long prev, const State& e) {
      const double a_t = tab.alphas_cumprod[t], a_prev = prev >= 0 ? tab.alphas_cumprod[prev] : tab.alphas_cumprod[0];
      const double b_t = 1 - a_t, b_prev = 1 - a_prev;
      const double coeff = std::sqrt(a_prev / a_t);
      const double denom = a_t * std::sqrt(b_prev) + std::sqrt(a_t * b_t * a_prev);
      return State(coeff * x - (a_prev - a_t) * e / denom);
    };
    std::vector<State> ets;
    State cur_sample;
    long counter = 0;
    for (const long ts : plms) {
      const State model_output = net(sample, static_cast<double>(ts));
      long timestep = ts, prev = ts - ratio;
      if (counter != 1) {
        if (ets.size() > 3) ets.erase(ets.begin(), ets.end() - 3);
        ets.push_back(model_output);
      } else {
        prev = ts;
        timestep = ts + ratio;
      }
      State e = model_output;
      if (ets.size() == 1 && counter == 0) {
        cur_sample = sample;
      } else if (ets.size() == 1 && counter == 1) {
        e = (model_output + ets.back()) / 2.0;
        sample = cur_sample;
      } else if (ets.size() == 2) {
        e = (3.0 * ets[1] - ets[0]) / 2.0;
      } else if (ets.size() == 3) {
        e = (23.0 * ets[2] - 16.0 * ets[1] + 5.0 * ets[0]) / 12.0;
      } else {
        const std::size_t n = ets.size();
        e = (55.0 * ets[n - 1] - 59.0 * ets[n - 2] + 37.0 * ets[n - 3] - 9.0 * ets[n - 4]) / 24.0;
      }
      sample = prev_sample(sample, timestep, prev, e);
      ++counter;
    }
    CHECK(max_rel(got, sample) < 1e-8);
  }
  // PNDM's pseudo Runge-Kutta warm-up needs four steps (tests/test_diffusers_k.cpp runs it).
  CHECK(diffsde::test::config_error_path([] {
          expand_scheduler_config(base_config({{"_class_name", "PNDMScheduler"}}, 3), "");
        }) == "scheduler_config.skip_prk_steps");
}

TEST_CASE("A sweep's problem takes a scheduler config: its schedule, the sweep's own grids and solvers",
          "[diffusers]") {
  const json sweep_json = {
      {"problem",
       {{"scheduler_config", {{"_class_name", "DPMSolverMultistepScheduler"}, {"beta_schedule", "scaled_linear"},
                              {"beta_start", 0.00085}, {"beta_end", 0.012}}},
        {"model", {{"name", "gmm"}}},
        {"batch", 4}}},
      {"solvers", json::array({{{"name", "dpm_solver"}}, {{"name", "pndm"}}})},
      {"grids", json::array({{{"name", "diffusers"}, {"timestep_spacing", "trailing"}}})},
      {"steps", {10, 20}}};
  const Sweep sweep = parse_sweep(sweep_json, "");
  const auto& d = dynamic_cast<const VpDiscreteSchedule&>(*sweep.schedule);
  REQUIRE(d.num_steps() == 1000);
  CHECK(d.betas().front() == Approx(0.00085).epsilon(1e-12));
  CHECK(d.betas().back() == Approx(0.012).epsilon(1e-12));
  CHECK(d.betas()[500] != Approx(0.00085 + 0.5 * (0.012 - 0.00085)).epsilon(1e-6));  // not linear
  CHECK(sweep.cells.size() == 4);
  // Errors name the key inside the problem.
  json bad = sweep_json;
  bad["problem"]["scheduler_config"]["algorithm_type"] = "sde-dpmsolver";
  CHECK(diffsde::test::config_error_path([&] { parse_sweep(bad, ""); }) ==
        "sweep.problem.scheduler_config.algorithm_type");
}
