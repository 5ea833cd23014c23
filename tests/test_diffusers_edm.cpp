// diffusers' EDM schedulers (EDMEulerScheduler, EDMDPMSolverMultistepScheduler): whole
// runs translated from scheduler configs against transcriptions of each class's
// set_timesteps, precondition_outputs and step, written here from diffusers' public source
// in double precision. The network is EDM's F of the analytic mixture (its exact
// denoiser D = x - sigma eps written as F = (D - c_skip x) / c_out), the same x_T, and for
// sde-dpmsolver++ the same normal draws.
#include <catch2/catch.hpp>

#include <Eigen/Dense>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "diffsde/config.hpp"
#include "diffsde/diffusers_config.hpp"
#include "diffsde/error.hpp"
#include "diffsde/npy.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "support/diffusers_runs.hpp"

using namespace diffsde;
using namespace diffsde::test;
using nlohmann::json;

namespace {

struct Settings {
  double sigma_min = 0.002, sigma_max = 80.0, sigma_data = 0.5, rho = 7.0;
  std::string sigma_schedule = "karras", final_type = "zero";
};

// set_timesteps: the ramp linspace(0, 1, N), Karras or exponential sigmas, then the final one.
std::vector<double> edm_sigmas(const Settings& s, long n) {
  std::vector<double> sig;
  if (s.sigma_schedule == "karras") {
    const double lo = std::pow(s.sigma_min, 1 / s.rho), hi = std::pow(s.sigma_max, 1 / s.rho);
    for (double r : lin(0, 1, n)) sig.push_back(std::pow(hi + r * (lo - hi), s.rho));
  } else {
    const auto l = lin(std::log(s.sigma_min), std::log(s.sigma_max), n);
    for (long i = n - 1; i >= 0; --i) sig.push_back(std::exp(l[static_cast<std::size_t>(i)]));
  }
  sig.push_back(s.final_type == "zero" ? 0.0 : s.sigma_min);
  return sig;
}

// The analytic mixture on the edm schedule, called as an EDM network: the denoiser
// precondition_outputs makes from its F.
struct Denoiser {
  std::shared_ptr<const Schedule> schedule;
  std::shared_ptr<Model> model;
  double sigma_data;
  State operator()(const State& x, double sigma) const {
    State eps(x.rows(), x.cols());
    model->eps(x, sigma, eps);  // t = sigma on edm
    const double q = sigma * sigma + sigma_data * sigma_data;
    const double c_skip = sigma_data * sigma_data / q, c_out = sigma * sigma_data / std::sqrt(q);
    const State f = ((x - sigma * eps) - c_skip * x) / c_out;  // the network's output
    return c_skip * x + c_out * f;                             // precondition_outputs
  }
};

json edm_scheduler(const std::string& cls, const Settings& s) {
  return {{"_class_name", cls},           {"sigma_min", s.sigma_min},           {"sigma_max", s.sigma_max},
          {"sigma_data", s.sigma_data},   {"sigma_schedule", s.sigma_schedule}, {"rho", s.rho},
          {"final_sigmas_type", s.final_type}};
}

// diffsde's run of the translated config, its x_T and the transcription's denoiser.
struct Run {
  State got, x_T;
  Denoiser denoiser;
};

Run run(const json& config, double sigma_data) {
  const json native = expand_scheduler_config(config, "");
  Run r;
  SampleJob job = build_sample_job(parse_sample_config(native));
  r.x_T = job.x;
  run_sample_job(job);
  r.got = job.x;
  r.denoiser.schedule = job.schedule;
  r.denoiser.model = model_registry().create(config.at("model"), "model", BuildContext{job.schedule, ""});
  r.denoiser.sigma_data = sigma_data;
  return r;
}


std::string error_path(const json& config) {
  try {
    const json native = expand_scheduler_config(config, "");
    build_sample_job(parse_sample_config(native));
  } catch (const ConfigError& e) {
    return e.path();
  }
  return "(none)";
}

}  // namespace

TEST_CASE("EDMEulerScheduler configs against the transcription of its step", "[diffusers][edm]") {
  for (const char* schedule : {"karras", "exponential"})
    for (const char* final_type : {"zero", "sigma_min"})
      for (const long steps : {2L, 5L, 18L}) {
        Settings s;
        s.sigma_schedule = schedule;
        s.final_type = final_type;
        s.sigma_data = steps == 5 ? 1.0 : 0.5;
        s.sigma_max = steps == 18 ? 14.6 : 80.0;
        s.rho = steps == 18 ? 5.0 : 7.0;
        INFO(schedule << " final " << final_type << " steps " << steps);
        const Run r = run(base_config(edm_scheduler("EDMEulerScheduler", s), steps), s.sigma_data);
        const auto sig = edm_sigmas(s, steps);
        State x = r.x_T;
        for (long i = 0; i < steps; ++i) {
          const double sigma = sig[static_cast<std::size_t>(i)];
          const State d = r.denoiser(x, sigma);
          x = x + (x - d) / sigma * (sig[static_cast<std::size_t>(i) + 1] - sigma);
        }
        CHECK(max_rel(r.got, x) < 1e-8);
        CHECK((r.got - r.x_T).abs().maxCoeff() > 1);  // it moved
      }
}

TEST_CASE("EDMDPMSolverMultistepScheduler configs against the transcription of its step", "[diffusers][edm]") {
  struct Case {
    std::string algorithm, solver_type, schedule, final_type;
    long steps, order;
    bool lower_order_final, euler_at_final;
  };
  const long batch = 5, dim = 2;
  for (const Case& c : {Case{"dpmsolver++", "midpoint", "karras", "zero", 10, 2, true, false},
                        Case{"dpmsolver++", "midpoint", "karras", "zero", 20, 3, true, false},
                        Case{"dpmsolver++", "midpoint", "exponential", "zero", 7, 3, false, false},
                        Case{"dpmsolver++", "midpoint", "karras", "sigma_min", 9, 2, true, false},
                        Case{"dpmsolver++", "midpoint", "karras", "sigma_min", 18, 2, true, true},
                        Case{"dpmsolver++", "midpoint", "exponential", "sigma_min", 12, 3, true, false},
                        Case{"dpmsolver++", "midpoint", "karras", "zero", 6, 1, true, false},
                        Case{"dpmsolver++", "heun", "karras", "zero", 11, 2, true, false},
                        Case{"sde-dpmsolver++", "midpoint", "karras", "zero", 10, 2, true, false},
                        Case{"sde-dpmsolver++", "heun", "exponential", "zero", 16, 2, true, false},
                        Case{"sde-dpmsolver++", "midpoint", "karras", "sigma_min", 8, 2, false, true}}) {
    INFO(c.algorithm << " " << c.solver_type << " " << c.schedule << " final " << c.final_type << " steps " << c.steps
                     << " order " << c.order << " lower_order_final " << c.lower_order_final << " euler_at_final "
                     << c.euler_at_final);
    Settings s;
    s.sigma_schedule = c.schedule;
    s.final_type = c.final_type;
    json sc = edm_scheduler("EDMDPMSolverMultistepScheduler", s);
    sc.update({{"algorithm_type", c.algorithm},
               {"solver_type", c.solver_type},
               {"solver_order", c.order},
               {"lower_order_final", c.lower_order_final},
               {"euler_at_final", c.euler_at_final}});
    json config = base_config(sc, c.steps);
    const bool sde = c.algorithm == "sde-dpmsolver++";
    // One draw per step with noise: none on a final step to sigma 0 (where diffusers' draw is
    // multiplied by sigma_t = 0), none on the final step of length zero to sigma_min (left out).
    const std::size_t real_steps = static_cast<std::size_t>(c.steps) - 1;
    const std::string file = "edm_dpm_noise.npy";
    const NpyArray draws = write_draws(file, real_steps, batch, dim, static_cast<unsigned long>(c.steps * 11 + c.order));
    if (sde) config["noise"] = file;
    const Run r = run(config, s.sigma_data);
    std::remove(file.c_str());
    auto sig = edm_sigmas(s, c.steps);
    // The last Karras or exponential sigma and the final sigma_min are equal in diffusers'
    // float32: a step of length zero (in float64 they may differ in the last bits, and
    // sqrt(1 - e^{-2h}) of a tiny negative h is not finite).
    if (c.final_type == "sigma_min") sig.back() = sig[sig.size() - 2];
    // _sigma_to_alpha_sigma_t: alpha_t = 1, sigma_t = sigma; lambda = -log sigma.
    const auto lambda_of = [](double sg) { return -std::log(sg); };
    State x = r.x_T;
    std::vector<State> m;  // data predictions, newest last
    long lower_order_nums = 0;
    const long n = c.steps;
    for (long i = 0; i < n; ++i) {
      const auto k = static_cast<std::size_t>(i);
      const bool lower_final =
          i == n - 1 && (c.euler_at_final || (c.lower_order_final && n < 15) || c.final_type == "zero");
      const bool lower_second = i == n - 2 && c.lower_order_final && n < 15;
      m.push_back(r.denoiser(x, sig[k]));
      const double s_s = sig[k], s_t = sig[k + 1];
      const double h = lambda_of(s_t) - lambda_of(s_s);
      const State z = sde && k < real_steps ? draw(draws, k, batch, dim) : State(State::Zero(batch, dim));
      const State& d0 = m.back();
      const long order = (c.order == 1 || lower_order_nums < 1 || lower_final) ? 1
                         : (c.order == 2 || lower_order_nums < 2 || lower_second) ? 2
                                                                                   : 3;
      if (order == 1) {
        if (sde)
          x = (s_t / s_s * std::exp(-h)) * x + (1 - std::exp(-2.0 * h)) * d0 + s_t * std::sqrt(1.0 - std::exp(-2 * h)) * z;
        else
          x = (s_t / s_s) * x - (std::exp(-h) - 1.0) * d0;
      } else if (order == 2) {
        const double h0 = lambda_of(s_s) - lambda_of(sig[k - 1]);
        const State d1 = (1.0 / (h0 / h)) * (d0 - m[m.size() - 2]);
        if (sde && c.solver_type == "midpoint")
          x = (s_t / s_s * std::exp(-h)) * x + (1 - std::exp(-2.0 * h)) * d0 + 0.5 * (1 - std::exp(-2.0 * h)) * d1 +
              s_t * std::sqrt(1.0 - std::exp(-2 * h)) * z;
        else if (sde)
          x = (s_t / s_s * std::exp(-h)) * x + (1 - std::exp(-2.0 * h)) * d0 +
              ((1.0 - std::exp(-2.0 * h)) / (-2.0 * h) + 1.0) * d1 + s_t * std::sqrt(1.0 - std::exp(-2 * h)) * z;
        else if (c.solver_type == "midpoint")
          x = (s_t / s_s) * x - (std::exp(-h) - 1.0) * d0 - 0.5 * (std::exp(-h) - 1.0) * d1;
        else
          x = (s_t / s_s) * x - (std::exp(-h) - 1.0) * d0 + ((std::exp(-h) - 1.0) / h + 1.0) * d1;
      } else {
        const double h0 = lambda_of(s_s) - lambda_of(sig[k - 1]), h1 = lambda_of(sig[k - 1]) - lambda_of(sig[k - 2]);
        const double r0 = h0 / h, r1 = h1 / h;
        const State& m1 = m[m.size() - 2];
        const State& m2 = m[m.size() - 3];
        const State d10 = (1.0 / r0) * (d0 - m1), d11 = (1.0 / r1) * (m1 - m2);
        const State d1 = d10 + (r0 / (r0 + r1)) * (d10 - d11);
        const State d2 = (1.0 / (r0 + r1)) * (d10 - d11);
        x = (s_t / s_s) * x - (std::exp(-h) - 1.0) * d0 + ((std::exp(-h) - 1.0) / h + 1.0) * d1 -
            ((std::exp(-h) - 1.0 + h) / (h * h) - 0.5) * d2;
      }
      lower_order_nums = std::min(lower_order_nums + 1, c.order);
    }
    REQUIRE(x.allFinite());
    CHECK(max_rel(r.got, x) < 1e-8);
  }
}

TEST_CASE("EDM scheduler configs: the native config, and what cannot be honoured at its key", "[diffusers][edm]") {
  Settings s;
  const json native = expand_scheduler_config(base_config(edm_scheduler("EDMDPMSolverMultistepScheduler", s), 10), "");
  CHECK(native["schedule"] == json{{"name", "edm"}, {"sigma_min", 0.002}, {"sigma_max", 80.0}});
  CHECK(native["grid"]["name"] == "karras");
  CHECK(native["grid"]["t_end"] == 0.0);
  CHECK(native["grid"]["t_last"] == 0.002);
  CHECK(native["solver"]["name"] == "dpm_solver");
  CHECK(native["solver"]["orders"] == json::array({1, 2, 2, 2, 2, 2, 2, 2, 2, 1}));
  // A network model gets EDM's preconditioning; an analytic model predicts eps already.
  json with_net = base_config(edm_scheduler("EDMEulerScheduler", s), 10);
  with_net["model"] = {{"name", "torchscript"}, {"path", "net.pt"}};
  const json expanded = expand_scheduler_config(with_net, "");
  CHECK(expanded["model"]["preconditioning"] == "edm");
  CHECK(expanded["model"]["sigma_data"] == 0.5);
  CHECK(expanded["model"]["prediction"] == "eps");
  CHECK_FALSE(expanded["model"].contains("time_input"));
  with_net["model"]["sigma_data"] = 1.0;
  CHECK(error_path(with_net) == "model.sigma_data");

  const auto path_of = [&](const std::string& cls, const json& extra, long steps = 10) {
    json sc = edm_scheduler(cls, s);
    sc.update(extra);
    return error_path(base_config(sc, steps));
  };
  CHECK(path_of("EDMEulerScheduler", {{"sigma_schedule", "linear"}}) == "scheduler_config.sigma_schedule");
  CHECK(path_of("EDMEulerScheduler", {{"prediction_type", "sample"}}) == "scheduler_config.prediction_type");
  CHECK(path_of("EDMEulerScheduler", {{"sigma_max", 0.001}}) == "scheduler_config.sigma_max");
  CHECK(path_of("EDMEulerScheduler", {{"sigma_data", 0}}) == "scheduler_config.sigma_data");
  CHECK(path_of("EDMEulerScheduler", {{"solver_order", 2}}) == "scheduler_config.solver_order");
  CHECK(path_of("EDMEulerScheduler", {{"final_sigmas_type", "sigma_min"}}, 1) == "steps");
  CHECK(path_of("EDMDPMSolverMultistepScheduler", {{"algorithm_type", "dpmsolver"}}) ==
        "scheduler_config.algorithm_type");
  CHECK(path_of("EDMDPMSolverMultistepScheduler", {{"algorithm_type", "sde-dpmsolver++"}, {"solver_order", 3}}) ==
        "scheduler_config.solver_order");
  // An analytic model cannot take the v-prediction form.
  CHECK(path_of("EDMEulerScheduler", {{"prediction_type", "v_prediction"}}) == "scheduler_config.prediction_type");
  // diffusers reads deis as dpmsolver++ and logrho as midpoint.
  json sc = edm_scheduler("EDMDPMSolverMultistepScheduler", s);
  sc.update({{"algorithm_type", "deis"}, {"solver_type", "logrho"}});
  CHECK(expand_scheduler_config(base_config(sc, 10), "")["solver"]["algorithm"] == "dpmsolver++");
}
