// diffusers' DEISMultistepScheduler and its ports of k-diffusion's samplers (Heun, KDPM2,
// KDPM2Ancestral, LMS): whole runs translated from scheduler configs against
// transcriptions of each class's set_timesteps and step, written here from diffusers'
// public source in double precision (the same analytic network of the timestep, the same
// x_T, and for the ancestral class the same normal draws).
#include <catch2/catch.hpp>

#include <Eigen/Dense>
#include <array>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "diffsde/config.hpp"
#include "diffsde/diffusers_config.hpp"
#include "diffsde/driver.hpp"
#include "diffsde/error.hpp"
#include "diffsde/npy.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/solvers/deis.hpp"
#include "diffsde/solvers/unipc.hpp"
#include "diffsde/sweep.hpp"
#include "support/diffusers_reference.hpp"
#include "support/diffusers_runs.hpp"

using namespace diffsde;
using namespace diffsde::test;
using nlohmann::json;

namespace {

struct Reference {
  Network net;
  RefTable tab;
  State x;  // diffsde's x_T (VP scale)
};

Reference reference(const json& config) {
  const json native = expand_scheduler_config(config, "");
  Reference r{network(native["schedule"]), {}, build_sample_job(parse_sample_config(native)).x};
  r.tab = ref_table(dynamic_cast<const VpDiscreteSchedule&>(*r.net.schedule).betas());
  return r;
}

// torch.lerp(log a, log b, 0.5).exp(), with log 0 = -inf giving 0.
double log_midpoint(double a, double b) {
  if (!(a > 0) || !(b > 0)) return 0.0;
  return std::exp(std::log(b) - (std::log(b) - std::log(a)) * 0.5);
}

// The samples at t = 0 are in both codes' scale (alpha = 1 there). diffsde's x_T is the VP
// noise z; diffusers' VE-scaled latents are z sqrt(sigma_max^2 + 1).
State ve_start(const State& z, double sigma_max) { return z * std::sqrt(sigma_max * sigma_max + 1); }

// The analytic network called as diffusers' pipelines call it: on scale_model_input's
// x / sqrt(sigma^2 + 1) at the given (fractional) timestep.
State net_ve(const Network& net, const State& x, double sigma, double timestep) {
  return net(x / std::sqrt(sigma * sigma + 1), timestep);
}

// The two-call classes' arrays: a[0], then each later value twice (diffusers'
// torch.cat([a[:1], a[1:].repeat_interleave(2), a[-1:]])).
std::vector<double> interleave(const std::vector<double>& a) {
  std::vector<double> e{a.front()};
  for (std::size_t j = 1; j < a.size(); ++j) e.insert(e.end(), {a[j], a[j]});
  e.push_back(a.back());
  return e;
}

// diffusers' sigma rule names as the transcription's set_timesteps takes them.
std::string rule_of(const json& sc) {
  if (sc.value("use_karras_sigmas", false)) return "karras";
  if (sc.value("use_exponential_sigmas", false)) return "exponential";
  return "timesteps";
}


}  // namespace

TEST_CASE("HeunDiscreteScheduler configs against the transcription of its step", "[diffusers]") {
  for (const char* spacing : {"linspace", "leading", "trailing"}) {
    for (const char* rule : {"timesteps", "karras", "exponential"}) {
      for (const long steps : {1L, 2L, 9L}) {
        INFO("spacing " << spacing << " sigmas " << rule << " steps " << steps);
        json sc = {{"_class_name", "HeunDiscreteScheduler"}, {"beta_schedule", "scaled_linear"},
                   {"timestep_spacing", spacing}, {"steps_offset", std::string(spacing) == "leading" ? 1 : 0}};
        if (std::string(rule) != "timesteps") sc[std::string("use_") + rule + "_sigmas"] = true;
        if (std::string(rule) != "timesteps" && steps == 1) continue;  // diffusers: one sigma, max = min
        const json config = base_config(sc, steps);
        const State got = run_translated(config);
        Reference ref = reference(config);
        std::vector<double> ts, sig;
        ref_euler_timesteps(ref.tab, steps, spacing, std::string(spacing) == "leading" ? 1 : 0, rule_of(sc), ts, sig);
        // set_timesteps: sigmas [s0, s1, s1, ..., s_{n-1}, s_{n-1}, 0], timesteps [t0, t1, t1, ...].
        std::vector<double> S{sig.front()}, T{ts.front()};
        for (std::size_t j = 1; j + 1 < sig.size(); ++j) S.insert(S.end(), {sig[j], sig[j]});
        S.push_back(0.0);
        for (std::size_t j = 1; j < ts.size(); ++j) T.insert(T.end(), {ts[j], ts[j]});
        State x = ve_start(ref.x, sig.front());
        bool first = true;
        State saved, prev_d;
        double dt = 0;
        for (std::size_t idx = 0; idx < T.size(); ++idx) {
          const double sigma = first ? S[idx] : S[idx - 1];
          const double sigma_next = first ? S[idx + 1] : S[idx];
          const State out = net_ve(ref.net, x, S[idx], T[idx]);
          const State x0 = x - (first ? sigma : sigma_next) * out;
          if (first) {
            prev_d = (x - x0) / sigma;
            dt = sigma_next - sigma;
            saved = x;
            x = x + prev_d * dt;
            first = false;
          } else {
            const State d = ((x - x0) / sigma_next + prev_d) / 2;
            x = saved + d * dt;
            first = true;
          }
        }
        CHECK(max_rel(got, x) < 1e-8);
      }
    }
  }
}

TEST_CASE("KDPM2DiscreteScheduler configs against the transcription of its step", "[diffusers]") {
  for (const char* spacing : {"linspace", "leading", "trailing"}) {
    for (const char* rule : {"timesteps", "exponential", "karras"}) {
      for (const long steps : {1L, 3L, 12L}) {
        if (std::string(rule) != "timesteps" && steps == 1) continue;
        INFO("spacing " << spacing << " sigmas " << rule << " steps " << steps);
        json sc = {{"_class_name", "KDPM2DiscreteScheduler"}, {"timestep_spacing", spacing}};
        if (std::string(rule) != "timesteps") sc[std::string("use_") + rule + "_sigmas"] = true;
        const json config = base_config(sc, steps);
        const State got = run_translated(config);
        Reference ref = reference(config);
        std::vector<double> ts, sig;
        ref_euler_timesteps(ref.tab, steps, spacing, 0, rule_of(sc), ts, sig);
        if (std::string(rule) == "karras")  // KDPM2 rounds its Karras timesteps
          for (double& t : ts) t = rnd(t);
        const std::size_t n = ts.size();
        // sigmas_interpol[j]: between sigma_j and sigma_{j-1} in log sigma (j >= 1).
        std::vector<double> interpol(n + 1, 0.0);
        for (std::size_t j = 1; j <= n; ++j) interpol[j] = log_midpoint(sig[j], sig[j - 1]);
        const std::vector<double> S = interleave(sig), I = interleave(interpol);
        std::vector<double> T{ts.front()};
        for (std::size_t j = 1; j < n; ++j) T.insert(T.end(), {ref_sigma_to_t(interpol[j], ref.tab.log_sigmas), ts[j]});
        State x = ve_start(ref.x, sig.front());
        State saved;
        bool first = true;
        for (std::size_t idx = 0; idx < T.size(); ++idx) {
          const double sigma = first ? S[idx] : S[idx - 1];
          const double sigma_interpol = first ? I[idx + 1] : I[idx];
          const double sigma_next = first ? S[idx + 1] : S[idx];
          const State out = net_ve(ref.net, x, first ? S[idx] : I[idx], T[idx]);
          const double sigma_input = first ? sigma : sigma_interpol;
          const State d = (x - (x - sigma_input * out)) / sigma_input;
          if (first) {
            saved = x;
            x = x + d * (sigma_interpol - sigma);
            first = false;
          } else {
            x = saved + d * (sigma_next - sigma);
            first = true;
          }
        }
        CHECK(max_rel(got, x) < 1e-8);
      }
    }
  }
}

TEST_CASE("KDPM2AncestralDiscreteScheduler configs against the transcription of its step, with the same draws",
          "[diffusers]") {
  const long batch = 5, dim = 2;
  for (const char* spacing : {"linspace", "trailing"}) {
    for (const long steps : {2L, 10L}) {
      INFO("spacing " << spacing << " steps " << steps);
      // The draws of the steps that add noise (all but the last, which ends at sigma 0).
      const std::string file = "kdpm2a_noise_" + std::string(spacing) + std::to_string(steps) + ".npy";
      const NpyArray draws = write_draws(file, static_cast<std::size_t>(steps - 1), batch, dim,
                                         static_cast<unsigned long>(steps));
      const json sc = {{"_class_name", "KDPM2AncestralDiscreteScheduler"}, {"timestep_spacing", spacing}};
      json config = base_config(sc, steps);
      config["noise"] = file;
      const State got = run_translated(config);
      Reference ref = reference(config);
      std::vector<double> ts, sig;
      ref_euler_timesteps(ref.tab, steps, spacing, 0, "timesteps", ts, sig);
      const std::size_t n = ts.size();
      std::vector<double> up(n + 1, 0.0), down(n + 1, 0.0), interpol(n + 1, 0.0);
      for (std::size_t j = 0; j < n; ++j) {
        const double s = sig[j], sn = sig[j + 1];
        up[j] = std::sqrt(sn * sn * (s * s - sn * sn) / (s * s));
        down[j] = std::sqrt(sn * sn - up[j] * up[j]);
        interpol[j] = log_midpoint(s, down[j]);
      }
      interpol[n - 1] = 0.0;
      const std::vector<double> S = interleave(sig), I = interleave(interpol), U = interleave(up),
                                D = interleave(down);
      std::vector<double> T{ts.front()};
      for (std::size_t j = 0; j + 1 < n; ++j)
        T.insert(T.end(), {ref_sigma_to_t(interpol[j], ref.tab.log_sigmas), ts[j + 1]});
      State x = ve_start(ref.x, sig.front());
      State saved;
      bool first = true;
      std::size_t drawn = 0;
      for (std::size_t idx = 0; idx < T.size(); ++idx) {
        const double sigma = first ? S[idx] : S[idx - 1];
        const double sigma_interpol = first ? I[idx] : I[idx - 1];
        const State out = net_ve(ref.net, x, first ? S[idx] : I[idx - 1], T[idx]);
        const double sigma_input = first ? sigma : sigma_interpol;
        const State d = (x - (x - sigma_input * out)) / sigma_input;
        if (first) {
          saved = x;
          x = x + d * (sigma_interpol - sigma);
          first = false;
        } else {
          const State z = draw(draws, drawn, batch, dim);
          ++drawn;
          x = saved + d * (D[idx - 1] - sigma) + z * U[idx - 1];
          first = true;
        }
      }
      CHECK(drawn == static_cast<std::size_t>(steps - 1));
      CHECK(max_rel(got, x) < 1e-8);
      std::remove(file.c_str());
    }
  }
}

TEST_CASE("LMSDiscreteScheduler configs against the transcription of its step (order 4)", "[diffusers]") {
  // Gauss-Legendre on 4 points: exact for the cubic Lagrange basis, as scipy's quad is to
  // rounding.
  const std::array<double, 4> gx = {-0.8611363115940526, -0.3399810435848563, 0.3399810435848563, 0.8611363115940526};
  const std::array<double, 4> gw = {0.3478548451374538, 0.6521451548625461, 0.6521451548625461, 0.3478548451374538};
  for (const char* spacing : {"linspace", "leading", "trailing"}) {
    for (const char* rule : {"timesteps", "karras"}) {
      for (const long steps : {1L, 3L, 5L, 14L}) {
        if (std::string(rule) != "timesteps" && steps == 1) continue;
        INFO("spacing " << spacing << " sigmas " << rule << " steps " << steps);
        json sc = {{"_class_name", "LMSDiscreteScheduler"}, {"beta_schedule", "scaled_linear"},
                   {"beta_start", 0.00085}, {"beta_end", 0.012}, {"timestep_spacing", spacing}};
        if (std::string(rule) == "karras") sc["use_karras_sigmas"] = true;
        const json config = base_config(sc, steps);
        const State got = run_translated(config);
        Reference ref = reference(config);
        std::vector<double> ts, sig;
        ref_euler_timesteps(ref.tab, steps, spacing, 0, rule_of(sc), ts, sig);
        State x = ve_start(ref.x, sig.front());
        std::vector<State> derivatives;
        for (std::size_t i = 0; i < ts.size(); ++i) {
          const double s = sig[i];
          const State out = net_ve(ref.net, x, s, ts[i]);
          derivatives.push_back((x - (x - s * out)) / s);
          if (derivatives.size() > 4) derivatives.erase(derivatives.begin());
          const std::size_t order = std::min<std::size_t>(i + 1, 4);
          State next = x;
          for (std::size_t c = 0; c < order; ++c) {
            // int over [sigma_i, sigma_{i+1}] of prod_{k != c} (tau - sigma_{i-k}) / (sigma_{i-c} - sigma_{i-k}).
            const double a = sig[i], b = sig[i + 1];
            double integral = 0;
            for (std::size_t q = 0; q < 4; ++q) {
              const double tau = 0.5 * (b - a) * gx[q] + 0.5 * (a + b);
              double prod = 1;
              for (std::size_t k = 0; k < order; ++k)
                if (k != c) prod *= (tau - sig[i - k]) / (sig[i - c] - sig[i - k]);
              integral += gw[q] * prod;
            }
            integral *= 0.5 * (b - a);
            next += integral * derivatives[derivatives.size() - 1 - c];
          }
          x = next;
        }
        CHECK(max_rel(got, x) < 1e-8);
      }
    }
  }
}

namespace {

// DEIS's log-rho integrals (the antiderivatives in its second- and third-order updates).
double ind2(double t, double b, double c) { return t * (-std::log(c) + std::log(t) - 1) / (std::log(b) - std::log(c)); }
double ind3(double t, double b, double c, double d) {
  const double lt = std::log(t), lc = std::log(c), ld = std::log(d), lb = std::log(b);
  return t * (lc * (ld - lt + 1) - ld * lt + ld + lt * lt - 2 * lt + 2) / ((lb - lc) * (lb - ld));
}

}  // namespace

TEST_CASE("DEISMultistepScheduler configs against the transcription of its step", "[diffusers]") {
  struct Case {
    long steps, order;
    bool karras, lower_order_final;
  };
  for (const Case& c : {Case{10, 2, false, true}, Case{10, 3, false, true}, Case{20, 3, false, true},
                        Case{7, 3, true, true}, Case{16, 3, true, true}, Case{12, 3, false, false},
                        Case{3, 1, false, true}, Case{5, 2, true, false}, Case{1, 3, false, true}}) {
    INFO("steps " << c.steps << " order " << c.order << " karras " << c.karras << " lof " << c.lower_order_final);
    const json sc = {{"_class_name", "DEISMultistepScheduler"}, {"solver_order", c.order},
                     {"use_karras_sigmas", c.karras}, {"lower_order_final", c.lower_order_final}};
    const json config = base_config(sc, c.steps);
    const State got = run_translated(config);
    Reference ref = reference(config);
    std::vector<double> ts, sig;
    // DPMSolverMultistep's timesteps, ending at the table's first sigma (Karras: the
    // repeated last Karras sigma, the same value).
    ref_dpm_timesteps(ref.tab, c.steps, "linspace", 0, c.karras ? "karras" : "timesteps", "sigma_min", ts, sig);
    const auto alpha_of = [](double s) { return 1 / std::sqrt(s * s + 1); };
    State x = ref.x;
    std::vector<State> outputs;
    long lower_order_nums = 0;
    const long n = static_cast<long>(ts.size());
    for (long i = 0; i < n; ++i) {
      const bool final_low = i == n - 1 && c.lower_order_final && n < 15;
      const bool second_low = i == n - 2 && c.lower_order_final && n < 15;
      const double a_s = alpha_of(sig[i]), s_s = sig[i] * a_s;
      const State out = ref.net(x, ts[i]);
      const State x0 = (x - s_s * out) / a_s;
      outputs.push_back((x - a_s * x0) / s_s);
      const double a_t = alpha_of(sig[i + 1]), s_t = sig[i + 1] * a_t;
      if (c.order == 1 || lower_order_nums < 1 || final_low) {
        const double h = (std::log(a_t) - std::log(s_t)) - (std::log(a_s) - std::log(s_s));
        x = (a_t / a_s) * x - (s_t * (std::exp(h) - 1.0)) * outputs.back();
      } else if (c.order == 2 || lower_order_nums < 2 || second_low) {
        const double rt = sig[i + 1], r0 = sig[i], r1 = sig[i - 1];
        const double c1 = ind2(rt, r0, r1) - ind2(r0, r0, r1), c2 = ind2(rt, r1, r0) - ind2(r0, r1, r0);
        x = a_t * (x / a_s + c1 * outputs[outputs.size() - 1] + c2 * outputs[outputs.size() - 2]);
      } else {
        const double rt = sig[i + 1], r0 = sig[i], r1 = sig[i - 1], r2 = sig[i - 2];
        const double c1 = ind3(rt, r0, r1, r2) - ind3(r0, r0, r1, r2);
        const double c2 = ind3(rt, r1, r2, r0) - ind3(r0, r1, r2, r0);
        const double c3 = ind3(rt, r2, r0, r1) - ind3(r0, r2, r0, r1);
        x = a_t * (x / a_s + c1 * outputs[outputs.size() - 1] + c2 * outputs[outputs.size() - 2] +
                   c3 * outputs[outputs.size() - 3]);
      }
      lower_order_nums = std::min(lower_order_nums + 1, c.order);
    }
    CHECK(max_rel(got, x) < 1e-8);
  }
}

TEST_CASE("deis: orders and lower_order_final choose each step's order", "[diffusers]") {
  DeisSolver::Options o;
  o.order = 3;
  o.lower_order_final = true;
  const DeisSolver lof(o);
  std::vector<int> got;
  for (std::size_t i = 0; i < 6; ++i) got.push_back(lof.step_order(i, 6));
  CHECK(got == std::vector<int>{1, 2, 3, 3, 2, 1});
  o.lower_order_final = false;
  o.orders = {1, 2, 3, 1};
  CHECK(DeisSolver(o).step_order(3, 4) == 1);
  std::string error, option;
  o.orders = {1, 3, 3};
  CHECK_FALSE(o.is_valid(&error, &option));
  CHECK(option == "orders");
  o.orders = {1, 4};
  CHECK_FALSE(o.is_valid(&error, &option));
  o.orders = {1, 2};
  o.lower_order_final = true;
  CHECK_FALSE(o.is_valid(&error, &option));
  CHECK(option == "lower_order_final");

  // Through the registry: an orders list the grid's length does not match is a config error
  // at `solver`, before any step; a wrong entry is one at its index.
  json config = {{"schedule", {{"name", "vp_linear"}}}, {"model", {{"name", "gmm"}}}, {"batch", 2}, {"seed", 1},
                 {"grid", {{"name", "logSNR"}, {"steps", 4}}},
                 {"solver", {{"name", "deis"}, {"order", 2}, {"orders", {1, 2, 2}}}}};
  try {
    build_sample_job(parse_sample_config(config));
    FAIL("expected a ConfigError");
  } catch (const ConfigError& e) {
    CHECK(e.path() == "solver");
  }
  config["solver"]["orders"] = {1, 2.5, 2, 2};
  try {
    build_sample_job(parse_sample_config(config));
    FAIL("expected a ConfigError");
  } catch (const ConfigError& e) {
    CHECK(e.path() == "solver.orders[1]");
  }
  // lower_order_final is the orders list it implies, bit for bit.
  config["solver"] = {{"name", "deis"}, {"order", 3}, {"lower_order_final", true}};
  SampleJob a = build_sample_job(parse_sample_config(config));
  run_sample_job(a);
  config["solver"] = {{"name", "deis"}, {"order", 3}, {"orders", {1, 2, 2, 1}}};
  SampleJob b = build_sample_job(parse_sample_config(config));
  run_sample_job(b);
  CHECK((a.x.array() == b.x.array()).all());
  config["solver"] = {{"name", "deis"}, {"order", 3}};
  SampleJob c = build_sample_job(parse_sample_config(config));
  run_sample_job(c);
  CHECK_FALSE((a.x.array() == c.x.array()).all());
}

TEST_CASE("DEIS, Heun, KDPM2 and LMS scheduler configs: what cannot be honoured is an error at the key",
          "[diffusers]") {
  const auto key_of = [](const json& sc) -> std::string {
    try {
      expand_scheduler_config(base_config(sc, 10), "");
    } catch (const ConfigError& e) {
      return e.path();
    }
    return "";
  };
  CHECK(key_of({{"_class_name", "KDPM2DiscreteScheduler"}, {"use_karras_sigmas", true}, {"use_beta_sigmas", true}}) ==
        "scheduler_config.use_beta_sigmas");
  CHECK(key_of({{"_class_name", "KDPM2AncestralDiscreteScheduler"}, {"prediction_type", "sample"}}) ==
        "scheduler_config.prediction_type");
  CHECK(key_of({{"_class_name", "HeunDiscreteScheduler"}, {"clip_sample", true}}) == "scheduler_config.clip_sample");
  CHECK(key_of({{"_class_name", "HeunDiscreteScheduler"}, {"rescale_betas_zero_snr", true}}) ==
        "scheduler_config.rescale_betas_zero_snr");
  CHECK(key_of({{"_class_name", "HeunDiscreteScheduler"}, {"beta_schedule", "exp"}}) ==
        "scheduler_config.beta_schedule");
  CHECK(key_of({{"_class_name", "LMSDiscreteScheduler"}, {"use_beta_sigmas", true}}) ==
        "scheduler_config.use_beta_sigmas");
  CHECK(key_of({{"_class_name", "DEISMultistepScheduler"}, {"use_exponential_sigmas", true}}) ==
        "scheduler_config.use_exponential_sigmas");
  CHECK(key_of({{"_class_name", "DEISMultistepScheduler"}, {"algorithm_type", "sde-dpmsolver++"}}) ==
        "scheduler_config.algorithm_type");
  CHECK(key_of({{"_class_name", "DEISMultistepScheduler"}, {"solver_order", 4}}) == "scheduler_config.solver_order");
  CHECK(key_of({{"_class_name", "DEISMultistepScheduler"}, {"use_flow_sigmas", true}}) ==
        "scheduler_config.use_flow_sigmas");
  // diffusers reads the DPM-Solver names as DEIS's own; so does the translation.
  CHECK(key_of({{"_class_name", "DEISMultistepScheduler"}, {"algorithm_type", "dpmsolver++"},
                {"solver_type", "midpoint"}}) == "");
  // The classes' own default betas (Stable Diffusion's range for the k-diffusion ports).
  const json heun = expand_scheduler_config(base_config({{"_class_name", "HeunDiscreteScheduler"}}, 10), "");
  CHECK(heun["schedule"]["beta_start"] == 0.00085);
  CHECK(heun["schedule"]["beta_end"] == 0.012);
  const json lms = expand_scheduler_config(base_config({{"_class_name", "LMSDiscreteScheduler"}}, 10), "");
  CHECK(lms["schedule"]["beta_start"] == 0.0001);
}

TEST_CASE("DPMSolverMultistepScheduler with sde-dpmsolver++ or solver_type heun against the transcription of its step",
          "[diffusers]") {
  struct Case {
    std::string algorithm, solver_type;
    long steps, order;
    bool karras;
    std::string final_type;
  };
  const long batch = 5, dim = 2;
  for (const Case& c : {Case{"sde-dpmsolver++", "midpoint", 10, 2, false, "zero"},
                        Case{"sde-dpmsolver++", "heun", 12, 2, true, "zero"},
                        Case{"sde-dpmsolver++", "midpoint", 8, 2, false, "sigma_min"},
                        Case{"sde-dpmsolver++", "midpoint", 20, 2, true, "sigma_min"},
                        Case{"sde-dpmsolver++", "midpoint", 6, 1, false, "zero"},
                        Case{"dpmsolver++", "heun", 9, 2, false, "sigma_min"},
                        Case{"dpmsolver++", "heun", 16, 2, true, "zero"}}) {
    INFO(c.algorithm << " " << c.solver_type << " steps " << c.steps << " order " << c.order << " karras " << c.karras
                     << " final " << c.final_type);
    const bool sde = c.algorithm == "sde-dpmsolver++";
    const json sc = {{"_class_name", "DPMSolverMultistepScheduler"}, {"algorithm_type", c.algorithm},
                     {"solver_type", c.solver_type}, {"solver_order", c.order}, {"use_karras_sigmas", c.karras},
                     {"final_sigmas_type", c.final_type}};
    json config = base_config(sc, c.steps);
    // One draw per step; none on a final step to sigma 0 (diffusers' draw there is multiplied
    // by sigma_t = 0). The grid leaves out the zero-length step of Karras sigmas ending at
    // sigma_min, whose draw diffusers also multiplies by 0.
    const std::size_t real_steps = static_cast<std::size_t>(c.steps) - ((c.final_type == "zero" || c.karras) ? 1 : 0);
    const std::string file = "dpm_sde_noise.npy";
    const NpyArray draws = write_draws(file, real_steps, batch, dim, static_cast<unsigned long>(c.steps * 7 + c.order));
    if (sde) config["noise"] = file;
    const State got = run_translated(config);
    Reference ref = reference(config);
    std::vector<double> ts, sig;
    ref_dpm_timesteps(ref.tab, c.steps, "linspace", 0, c.karras ? "karras" : "timesteps", c.final_type, ts, sig);
    // Karras sigmas end at the table's sigma_min, which sigma_last repeats: equal in
    // diffusers' float32, a step of length zero (in float64 they differ in the last bits,
    // and sqrt(1 - e^{-2h}) of a tiny negative h is not finite).
    if (c.karras && c.final_type == "sigma_min") sig.back() = sig[sig.size() - 2];
    const auto alpha_of = [](double s) { return 1 / std::sqrt(s * s + 1); };
    const auto lambda_of = [&](double s) { return std::log(alpha_of(s)) - std::log(s * alpha_of(s)); };
    State x = ref.x;
    std::vector<State> m;  // data predictions, newest last
    long lower_order_nums = 0;
    const long n = static_cast<long>(ts.size());
    for (long i = 0; i < n; ++i) {
      const bool final_low = i == n - 1 && ((n < 15) || c.final_type == "zero");  // lower_order_final default true
      const double a_s = alpha_of(sig[i]), s_s = sig[i] * a_s;
      const State out = ref.net(x, ts[i]);
      m.push_back((x - s_s * out) / a_s);
      const double a_t = alpha_of(sig[i + 1]), s_t = sig[i + 1] * a_t;
      const double h = lambda_of(sig[i + 1]) - lambda_of(sig[i]);
      const State z = sde && static_cast<std::size_t>(i) < real_steps ? draw(draws, static_cast<std::size_t>(i), batch, dim)
                                                                      : State(State::Zero(batch, dim));
      const State& d0 = m.back();
      if (c.order == 1 || lower_order_nums < 1 || final_low) {
        if (sde)
          x = (s_t / s_s * std::exp(-h)) * x + (a_t * (1 - std::exp(-2.0 * h))) * d0 +
              s_t * std::sqrt(1.0 - std::exp(-2 * h)) * z;
        else
          x = (s_t / s_s) * x - (a_t * (std::exp(-h) - 1.0)) * d0;
      } else {
        const double h0 = lambda_of(sig[i]) - lambda_of(sig[i - 1]);
        const State d1 = (1.0 / (h0 / h)) * (d0 - m[m.size() - 2]);
        if (sde && c.solver_type == "midpoint")
          x = (s_t / s_s * std::exp(-h)) * x + (a_t * (1 - std::exp(-2.0 * h))) * d0 +
              0.5 * (a_t * (1 - std::exp(-2.0 * h))) * d1 + s_t * std::sqrt(1.0 - std::exp(-2 * h)) * z;
        else if (sde)
          x = (s_t / s_s * std::exp(-h)) * x + (a_t * (1 - std::exp(-2.0 * h))) * d0 +
              (a_t * ((1.0 - std::exp(-2.0 * h)) / (-2.0 * h) + 1.0)) * d1 + s_t * std::sqrt(1.0 - std::exp(-2 * h)) * z;
        else
          x = (s_t / s_s) * x - (a_t * (std::exp(-h) - 1.0)) * d0 + (a_t * ((std::exp(-h) - 1.0) / h + 1.0)) * d1;
      }
      lower_order_nums = std::min(lower_order_nums + 1, c.order);
    }
    CHECK(max_rel(got, x) < 1e-8);
    std::remove(file.c_str());
  }
  // Third order has no SDE form in diffusers; heun at order 3 mixes forms.
  const auto key_of = [](const json& sc) -> std::string {
    try {
      expand_scheduler_config(base_config(sc, 10), "");
    } catch (const ConfigError& e) {
      return e.path();
    }
    return "";
  };
  CHECK(key_of({{"_class_name", "DPMSolverMultistepScheduler"}, {"algorithm_type", "sde-dpmsolver++"},
                {"solver_order", 3}}) == "scheduler_config.solver_order");
  CHECK(key_of({{"_class_name", "DPMSolverMultistepScheduler"}, {"solver_type", "heun"}, {"solver_order", 3}}) ==
        "scheduler_config.solver_type");
  CHECK(key_of({{"_class_name", "DPMSolverMultistepScheduler"}, {"algorithm_type", "sde-dpmsolver"}}) ==
        "scheduler_config.algorithm_type");
}


TEST_CASE("EulerAncestralDiscreteScheduler configs against the transcription of its step, with the same draws",
          "[diffusers]") {
  const long batch = 5, dim = 2;
  for (const char* spacing : {"linspace", "leading", "trailing"}) {
    for (const long steps : {1L, 4L, 15L}) {
      INFO("spacing " << spacing << " steps " << steps);
      const std::string file = "euler_a_noise.npy";
      // A draw at every step but the last, whose sigma_up is 0.
      const NpyArray draws = write_draws(file, static_cast<std::size_t>(std::max(steps - 1, 1L)), batch, dim,
                                         static_cast<unsigned long>(steps));
      const json sc = {{"_class_name", "EulerAncestralDiscreteScheduler"}, {"beta_schedule", "scaled_linear"},
                       {"beta_start", 0.00085}, {"beta_end", 0.012}, {"timestep_spacing", spacing},
                       {"steps_offset", std::string(spacing) == "leading" ? 1 : 0}};
      json config = base_config(sc, steps);
      config["noise"] = file;
      const State got = run_translated(config);
      Reference ref = reference(config);
      std::vector<double> ts, sig;
      ref_euler_timesteps(ref.tab, steps, spacing, std::string(spacing) == "leading" ? 1 : 0, "timesteps", ts, sig);
      State x = ve_start(ref.x, sig.front());
      for (std::size_t i = 0; i < ts.size(); ++i) {
        const double s = sig[i], s_to = sig[i + 1];
        const State out = net_ve(ref.net, x, s, ts[i]);
        const State x0 = x - s * out;
        const double up = std::sqrt(s_to * s_to * (s * s - s_to * s_to) / (s * s));
        const double down = std::sqrt(s_to * s_to - up * up);
        x = x + (x - x0) / s * (down - s);
        if (i + 1 < ts.size()) x += draw(draws, i, batch, dim) * up;
      }
      CHECK(max_rel(got, x) < 1e-8);
      std::remove(file.c_str());
    }
  }
}

TEST_CASE("DDPMScheduler configs against the transcription of its step, with the same draws", "[diffusers]") {
  const long batch = 5, dim = 2;
  struct Case {
    std::string variance, spacing;
    long offset, steps;
  };
  for (const Case& c : {Case{"fixed_small", "leading", 1, 10}, Case{"fixed_large", "leading", 1, 10},
                        Case{"fixed_small", "trailing", 0, 8}, Case{"fixed_large", "trailing", 0, 20},
                        Case{"fixed_small", "leading", 0, 25}, Case{"fixed_large", "leading", 0, 5}}) {
    INFO(c.variance << " " << c.spacing << " offset " << c.offset << " steps " << c.steps);
    const std::string file = "ddpm_noise.npy";
    const NpyArray draws = write_draws(file, static_cast<std::size_t>(c.steps), batch, dim, 11);
    const json sc = {{"_class_name", "DDPMScheduler"}, {"variance_type", c.variance}, {"timestep_spacing", c.spacing},
                     {"steps_offset", c.offset}, {"clip_sample", false}};
    json config = base_config(sc, c.steps);
    config["noise"] = file;
    const State got = run_translated(config);
    Reference ref = reference(config);
    const long N = static_cast<long>(ref.tab.alphas_cumprod.size()), ratio = N / c.steps;
    std::vector<long> ts;
    if (c.spacing == "leading") {
      for (long k = c.steps - 1; k >= 0; --k) ts.push_back(k * ratio + c.offset);
    } else {
      for (double v : arange_float(static_cast<double>(N), 0, -static_cast<double>(N) / static_cast<double>(c.steps)))
        ts.push_back(static_cast<long>(rnd(v)) - 1);
    }
    State x = ref.x;
    std::size_t drawn = 0;
    for (const long t : ts) {
      const long prev = t - ratio;
      const double a_t = ref.tab.alphas_cumprod[static_cast<std::size_t>(t)];
      const double a_prev = prev >= 0 ? ref.tab.alphas_cumprod[static_cast<std::size_t>(prev)] : 1.0;
      const double beta_t = 1 - a_t, beta_prev = 1 - a_prev;
      const double cur_alpha = a_t / a_prev, cur_beta = 1 - cur_alpha;
      const State eps = ref.net(x, static_cast<double>(t));
      const State x0 = (x - std::sqrt(beta_t) * eps) / std::sqrt(a_t);
      x = (std::sqrt(a_prev) * cur_beta / beta_t) * x0 + (std::sqrt(cur_alpha) * beta_prev / beta_t) * x;
      if (t > 0) {
        double variance = (1 - a_prev) / (1 - a_t) * cur_beta;
        variance = std::max(variance, 1e-20);
        if (c.variance == "fixed_large") variance = cur_beta;
        // diffsde draws only where the noise is not zero (fixed_small's last step has none).
        if (variance > 1e-20) x += std::sqrt(variance) * draw(draws, drawn++, batch, dim);
      }
    }
    CHECK(max_rel(got, x) < 1e-8);
    std::remove(file.c_str());
  }
}

TEST_CASE("unipc: orders, final_corrector and disable_corrector", "[diffusers]") {
  UniPcSolver::Options o;
  std::string error, option;
  o.orders = {1, 3};
  CHECK_FALSE(o.is_valid(&error, &option));
  CHECK(option == "orders");
  o.orders = {};
  o.disable_corrector = {2, -1};
  CHECK_FALSE(o.is_valid(&error, &option));
  CHECK(option == "disable_corrector");

  json config = {{"schedule", {{"name", "vp_linear"}}}, {"model", {{"name", "gmm"}}}, {"batch", 3}, {"seed", 2},
                 {"grid", {{"name", "logSNR"}, {"steps", 6}, {"t_end", 1e-3}}},
                 {"solver", {{"name", "unipc"}, {"order", 2}}}};
  const auto run = [&](const json& solver) {
    config["solver"] = solver;
    SampleJob job = build_sample_job(parse_sample_config(config));
    const Summary summary = run_sample_job(job);
    return std::make_pair(job.x, summary.nfe);
  };
  const auto plain = run({{"name", "unipc"}, {"order", 2}});
  const auto final = run({{"name", "unipc"}, {"order", 2}, {"final_corrector", true}});
  CHECK(final.second == plain.second + 1);  // one more evaluation, at the grid's end
  CHECK((final.first - plain.first).cwiseAbs().maxCoeff() > 1e-8);
  // lower_order_final is the orders list it implies, bit for bit.
  const auto listed = run({{"name", "unipc"}, {"order", 2}, {"orders", {1, 2, 2, 2, 2, 1}}});
  CHECK((listed.first.array() == plain.first.array()).all());
  // A disabled corrector leaves its step's prediction: the same evaluations, another sample.
  const auto disabled = run({{"name", "unipc"}, {"order", 2}, {"disable_corrector", {0, 1, 2, 3, 4}}});
  CHECK(disabled.second == plain.second);
  CHECK((disabled.first - plain.first).cwiseAbs().maxCoeff() > 1e-8);
  config["solver"] = {{"name", "unipc"}, {"orders", {1, 2}}};
  try {
    build_sample_job(parse_sample_config(config));
    FAIL("expected a ConfigError");
  } catch (const ConfigError& e) {
    CHECK(e.path() == "solver");
  }
}

TEST_CASE("PNDMScheduler with its pseudo Runge-Kutta warm-up against the transcription of step_prk and step_plms",
          "[diffusers]") {
  for (const long steps : {4L, 5L, 10L, 50L}) {
    for (const long offset : {0L, 1L}) {
      INFO("steps " << steps << " steps_offset " << offset);
      // diffusers' defaults otherwise: linear betas, leading spacing, set_alpha_to_one false.
      const json sc = {{"_class_name", "PNDMScheduler"}, {"steps_offset", offset}};
      const json config = base_config(sc, steps);
      const State got = run_translated(config);
      Reference ref = reference(config);
      const long N = 1000, ratio = N / steps, half = N / steps / 2;
      std::vector<long> base;  // _timesteps, ascending
      for (long k = 0; k < steps; ++k) base.push_back(k * ratio + offset);
      // prk_timesteps: the last four, each twice, plus (0, half); all but the last twice
      // more, less the ends; reversed. plms_timesteps: all but the last three, reversed.
      std::vector<long> rep;
      for (std::size_t k = base.size() - 4; k < base.size(); ++k) rep.insert(rep.end(), {base[k], base[k] + half});
      rep.pop_back();
      std::vector<long> twice;
      for (long v : rep) twice.insert(twice.end(), {v, v});
      std::vector<long> prk(twice.begin() + 1, twice.end() - 1);
      std::reverse(prk.begin(), prk.end());
      std::vector<long> plms(base.begin(), base.end() - 3);
      std::reverse(plms.begin(), plms.end());
      REQUIRE(prk.size() == 12);
      const auto prev_sample = [&](const State& x, long t, long prev, const State& e) {
        const double a_t = ref.tab.alphas_cumprod[static_cast<std::size_t>(t)];
        const double a_prev = prev >= 0 ? ref.tab.alphas_cumprod[static_cast<std::size_t>(prev)] : ref.tab.alphas_cumprod[0];
        const double b_t = 1 - a_t, b_prev = 1 - a_prev;
        const double denom = a_t * std::sqrt(b_prev) + std::sqrt(a_t * b_t * a_prev);
        return State(std::sqrt(a_prev / a_t) * x - (a_prev - a_t) * e / denom);
      };
      State sample = ref.x, cur_sample;
      State cur_model_output = State::Zero(sample.rows(), sample.cols());
      std::vector<State> ets;
      long counter = 0;
      std::vector<long> all = prk;
      all.insert(all.end(), plms.begin(), plms.end());
      for (const long ts : all) {
        State e = ref.net(sample, static_cast<double>(ts));
        if (counter < static_cast<long>(prk.size())) {  // step_prk
          const long prev = ts - (counter % 2 ? 0 : half);
          const long timestep = prk[static_cast<std::size_t>(counter / 4 * 4)];
          if (counter % 4 == 0) {
            cur_model_output += e / 6.0;
            ets.push_back(e);
            cur_sample = sample;
          } else if (counter % 4 == 1 || counter % 4 == 2) {
            cur_model_output += e / 3.0;
          } else {
            e = cur_model_output + e / 6.0;
            cur_model_output.setZero();
          }
          sample = prev_sample(cur_sample, timestep, prev, e);
        } else {  // step_plms
          if (ets.size() > 3) ets.erase(ets.begin(), ets.end() - 3);
          ets.push_back(e);
          const std::size_t n = ets.size();
          const State combined = (55.0 * ets[n - 1] - 59.0 * ets[n - 2] + 37.0 * ets[n - 3] - 9.0 * ets[n - 4]) / 24.0;
          sample = prev_sample(sample, ts, ts - ratio, combined);
        }
        ++counter;
      }
      CHECK(max_rel(got, sample) < 1e-8);
    }
  }
}

TEST_CASE("scheduler configs: each class's own default timestep_spacing", "[diffusers]") {
  // Stable Diffusion 1.x's scheduler file names no spacing: PNDM (and DDIM, DDPM) space
  // "leading" by default, the other classes "linspace".
  const json sd15 = {{"_class_name", "PNDMScheduler"}, {"beta_schedule", "scaled_linear"}, {"beta_start", 0.00085},
                     {"beta_end", 0.012}, {"set_alpha_to_one", false}, {"skip_prk_steps", true}, {"steps_offset", 1}};
  CHECK(expand_scheduler_config(base_config(sd15, 50), "")["grid"]["timestep_spacing"] == "leading");
  CHECK(expand_scheduler_config(base_config({{"_class_name", "DDIMScheduler"}}, 50), "")["grid"]["timestep_spacing"] ==
        "leading");
  CHECK(expand_scheduler_config(base_config({{"_class_name", "DDPMScheduler"}}, 50), "")["grid"]["timestep_spacing"] ==
        "leading");
  for (const char* cls : {"EulerDiscreteScheduler", "DPMSolverMultistepScheduler", "UniPCMultistepScheduler",
                          "HeunDiscreteScheduler", "LMSDiscreteScheduler", "DEISMultistepScheduler"})
    CHECK(expand_scheduler_config(base_config({{"_class_name", cls}}, 10), "")["grid"]["timestep_spacing"] ==
          "linspace");
  // Read as DPMSolverMultistepScheduler (from_config), the file's classes' default is not
  // carried over: the spacing is the reading class's own.
  json as_dpm = base_config(sd15, 20);
  as_dpm["scheduler_class"] = "DPMSolverMultistepScheduler";
  CHECK(expand_scheduler_config(as_dpm, "")["grid"]["timestep_spacing"] == "linspace");
}

TEST_CASE("DPMSolverSDEScheduler configs against the transcription of its step, with its noise sampler's draws",
          "[diffusers]") {
  const long batch = 5, dim = 2;
  for (const char* rule : {"timesteps", "karras"}) {
    for (const long steps : {2L, 7L, 20L}) {
      INFO("sigmas " << rule << " steps " << steps);
      // Two noise-sampler calls per step, but none on the last (to sigma 0, first order).
      const std::string file = "dpmsolver_sde_noise.npy";
      const NpyArray draws = write_draws(file, static_cast<std::size_t>(2 * (steps - 1)), batch, dim, 21);
      json sc = {{"_class_name", "DPMSolverSDEScheduler"}, {"beta_schedule", "scaled_linear"},
                 {"noise_sampler_seed", nullptr}};
      if (std::string(rule) == "karras") sc["use_karras_sigmas"] = true;
      json config = base_config(sc, steps);
      config["noise"] = file;  // a replay file: the sampler's outputs (sampler_draws)
      const json native = expand_scheduler_config(config, "");
      CHECK(native["solver"]["sampler_draws"] == true);
      const State got = run_translated(config);
      Reference ref = reference(config);
      std::vector<double> ts, sig;
      ref_euler_timesteps(ref.tab, steps, "linspace", 0, rule_of(sc), ts, sig);
      State x = ve_start(ref.x, sig.front());
      std::size_t k = 0;
      for (std::size_t i = 0; i < ts.size(); ++i) {
        const double s = sig[i], s_next = sig[i + 1];
        const State x0 = x - s * net_ve(ref.net, x, s, ts[i]);
        if (s_next == 0) {
          x = x + (x - x0) / s * (s_next - s);
          continue;
        }
        const double t = -std::log(s), t_next = -std::log(s_next), t_mid = t + (t_next - t) * 0.5;
        const double s_mid = std::exp(-t_mid);
        const auto ancestral = [&](double from, double to, const State& start, const State& x0_pred, std::size_t draw_k) {
          const double up = std::min(to, std::sqrt(to * to * (from * from - to * to) / (from * from)));
          const double down = std::sqrt(to * to - up * up);
          const double anc = -std::log(down);
          return State((std::exp(-anc) / from) * start - std::expm1(t - anc) * x0_pred + draw(draws, draw_k, batch, dim) * up);
        };
        // First order to the midpoint; then from the step's start with the midpoint's x0.
        const State x_mid = ancestral(s, s_mid, x, x0, k++);
        const State x0_mid = x_mid - s_mid * net_ve(ref.net, x_mid, s_mid, ref_sigma_to_t(s_mid, ref.tab.log_sigmas));
        x = ancestral(s, s_next, x, x0_mid, k++);
      }
      CHECK(k == static_cast<std::size_t>(2 * (steps - 1)));
      CHECK(max_rel(got, x) < 1e-8);
      std::remove(file.c_str());
    }
  }
  // Without a replay file the class's Brownian-tree noise; a torchsde seed is refused.
  const json plain = expand_scheduler_config(base_config({{"_class_name", "DPMSolverSDEScheduler"}}, 10), "");
  CHECK(plain["noise"] == "brownian_tree");
  CHECK_FALSE(plain["solver"].contains("sampler_draws"));
  try {
    expand_scheduler_config(base_config({{"_class_name", "DPMSolverSDEScheduler"}, {"noise_sampler_seed", 3}}, 10), "");
    FAIL("expected a ConfigError");
  } catch (const ConfigError& e) {
    CHECK(e.path() == "scheduler_config.noise_sampler_seed");
  }
}

TEST_CASE("A sweep runs a diffusers grid with the network at diffusers' timesteps, as sample does", "[diffusers]") {
  const json sc = {{"_class_name", "EulerDiscreteScheduler"}, {"beta_schedule", "scaled_linear"},
                   {"beta_start", 0.00085}, {"beta_end", 0.012}};
  // Karras sigmas (fractional network timesteps) and trailing integer timesteps, with dpm2,
  // whose midpoints lie between the nodes.
  for (const json& grid : {json{{"name", "diffusers"}, {"family", "euler"}, {"sigmas", "karras"}},
                           json{{"name", "diffusers"}, {"family", "euler"}, {"timestep_spacing", "trailing"}}}) {
    INFO(grid.dump());
    const json sweep_json = {{"problem", {{"scheduler_config", sc}, {"model", {{"name", "gmm"}}}, {"batch", 4}, {"seed", 5}}},
                             {"solvers", json::array({{{"name", "dpm2"}}})},
                             {"grids", json::array({grid})},
                             {"steps", {6}}};
    const Sweep sweep = parse_sweep(sweep_json, "");
    REQUIRE(sweep.cells.size() == 1);
    const SweepCell& cell = sweep.cells.front();
    REQUIRE(cell.model != nullptr);
    State x = sweep_initial_state(sweep, cell.seed, cell.times.front());
    auto solver = solver_registry().create(json{{"name", "dpm2"}}, "solver");
    integrate(*solver, *sweep.schedule, *cell.model, cell.times, x, nullptr);

    json sample_grid = grid;
    sample_grid["steps"] = 6;
    json config = {{"scheduler_config", sc}, {"steps", 6}, {"grid", sample_grid}, {"solver", {{"name", "dpm2"}}},
                   {"model", {{"name", "gmm"}}}, {"batch", 4}, {"seed", static_cast<long>(cell.seed)}};
    const State sampled = run_translated(config);
    CHECK((x.array() == sampled.array()).all());
  }
}

TEST_CASE("LCMScheduler configs against the transcription of its step, with the same draws", "[diffusers]") {
  const long batch = 5, dim = 2;
  struct Case {
    long steps, original;
    bool clip;
  };
  for (const Case& c : {Case{1, 50, false}, Case{4, 50, false}, Case{8, 50, true}, Case{7, 30, false}}) {
    INFO("steps " << c.steps << " original_inference_steps " << c.original << " clip " << c.clip);
    const std::string file = "lcm_noise.npy";
    const NpyArray draws = write_draws(file, static_cast<std::size_t>(std::max(c.steps - 1, 1L)), batch, dim, 31);
    const json sc = {{"_class_name", "LCMScheduler"}, {"original_inference_steps", c.original},
                     {"clip_sample", c.clip}, {"clip_sample_range", 0.8}};
    json config = base_config(sc, c.steps);
    config["noise"] = file;
    const State got = run_translated(config);
    Reference ref = reference(config);
    // set_timesteps: the distillation schedule k - 1, .., N - 1, reversed, at
    // floor(linspace(0, original, steps, endpoint=False)).
    const long N = 1000, k = N / c.original;
    std::vector<long> origin;
    for (long j = c.original; j >= 1; --j) origin.push_back(j * k - 1);
    std::vector<long> ts;
    const double step = static_cast<double>(c.original) / static_cast<double>(c.steps);
    for (long i = 0; i < c.steps; ++i) ts.push_back(origin[static_cast<std::size_t>(std::floor(static_cast<double>(i) * step))]);
    if (c.steps == 4 && c.original == 50) CHECK(ts == std::vector<long>{999, 759, 499, 259});
    State x = ref.x;
    for (std::size_t i = 0; i < ts.size(); ++i) {
      const long t = ts[i], prev = i + 1 < ts.size() ? ts[i + 1] : t;
      const double a_t = ref.tab.alphas_cumprod[static_cast<std::size_t>(t)];
      const double a_prev = ref.tab.alphas_cumprod[static_cast<std::size_t>(prev)];
      const double scaled = static_cast<double>(t) * 10.0;
      const double c_skip = 0.25 / (scaled * scaled + 0.25), c_out = scaled / std::sqrt(scaled * scaled + 0.25);
      State x0 = (x - std::sqrt(1 - a_t) * ref.net(x, static_cast<double>(t))) / std::sqrt(a_t);
      if (c.clip) x0 = x0.cwiseMax(-0.8).cwiseMin(0.8);
      const State denoised = c_out * x0 + c_skip * x;
      x = i + 1 < ts.size() ? State(std::sqrt(a_prev) * denoised + std::sqrt(1 - a_prev) * draw(draws, i, batch, dim))
                            : denoised;
    }
    CHECK(max_rel(got, x) < 1e-8);
    std::remove(file.c_str());
  }
  const auto key_of = [](const json& sc, long steps) -> std::string {
    try {
      expand_scheduler_config(base_config(sc, steps), "");
    } catch (const ConfigError& e) {
      return e.path();
    }
    return "";
  };
  CHECK(key_of({{"_class_name", "LCMScheduler"}}, 51) == "scheduler_config.original_inference_steps");
  CHECK(key_of({{"_class_name", "LCMScheduler"}, {"original_inference_steps", 0}}, 4) ==
        "scheduler_config.original_inference_steps");
  CHECK(key_of({{"_class_name", "LCMScheduler"}, {"timestep_scaling", -1}}, 4) == "scheduler_config.timestep_scaling");
}
