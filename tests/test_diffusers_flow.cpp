// diffusers' FlowMatchEulerDiscreteScheduler (SD3, Flux): whole runs translated from
// scheduler configs against a transcription of its __init__, set_timesteps (static and
// dynamic shifting) and step, written here from diffusers' public source in double
// precision. The network is the analytic mixture's velocity eps - x0 at sigma (pure noise at
// sigma = 1, where x0 is the data mean), and both runs start from the same x_T.
#include <catch2/catch.hpp>

#include <Eigen/Dense>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "diffsde/config.hpp"
#include "diffsde/diffusers_config.hpp"
#include "diffsde/error.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/scores/analytic.hpp"
#include "support/diffusers_runs.hpp"

using namespace diffsde;
using namespace diffsde::test;
using nlohmann::json;

namespace {

struct FlowSettings {
  double shift = 1.0;
  bool dynamic = false;
  double mu = 0.0;
  std::string type = "exponential";
  long n_train = 1000;
};

// __init__ and set_timesteps: the sigmas, then 0.
std::vector<double> flow_sigmas(const FlowSettings& f, long n) {
  const auto shifted = [&](double s) {
    if (!f.dynamic) return f.shift * s / (1 + (f.shift - 1) * s);
    if (f.type == "exponential") return std::exp(f.mu) / (std::exp(f.mu) + (1 / s - 1));
    return f.mu / (f.mu + (1 / s - 1));
  };
  const double N = static_cast<double>(f.n_train);
  // __init__: sigmas = linspace(1, N, N)[::-1] / N, shifted unless dynamic.
  const double sigma_max = f.dynamic ? 1.0 : f.shift * 1.0 / (1 + (f.shift - 1) * 1.0);
  const double sigma_min = f.dynamic ? 1.0 / N : f.shift * (1.0 / N) / (1 + (f.shift - 1) * (1.0 / N));
  std::vector<double> sig;
  for (double ts : lin(sigma_max * N, sigma_min * N, n)) sig.push_back(shifted(ts / N));
  sig.push_back(0.0);
  return sig;
}

// The mixture's velocity eps - x0 at sigma (alpha = 1 - sigma on flow with shift 1).
State velocity(const GmmModel& model, const State& x, double sigma) {
  if (sigma == 1.0) {  // pure noise: eps = x, x0 = E[x0] = sum_k w_k mean_k
    const Eigen::RowVectorXd mean = (model.means().transpose() * model.weights()).transpose();
    return x - (State::Ones(x.rows(), 1).matrix() * mean).array();
  }
  State eps(x.rows(), x.cols());
  model.eps(x, sigma, eps);
  const State x0 = (x - sigma * eps) / (1 - sigma);
  return eps - x0;
}

json flow_config(const FlowSettings& f, long steps) {
  json sc = {{"_class_name", "FlowMatchEulerDiscreteScheduler"}, {"shift", f.shift},
             {"use_dynamic_shifting", f.dynamic}, {"num_train_timesteps", f.n_train}};
  if (f.type != "exponential") sc["time_shift_type"] = f.type;
  json config = base_config(sc, steps);
  if (f.dynamic) config["mu"] = f.mu;
  return config;
}

std::string error_path(const json& config) {
  try {
    build_sample_job(parse_sample_config(expand_scheduler_config(config, "")));
  } catch (const ConfigError& e) {
    return e.path();
  }
  return "(none)";
}

}  // namespace

TEST_CASE("FlowMatchEulerDiscreteScheduler configs against the transcription of its step", "[diffusers][flow]") {
  std::vector<FlowSettings> cases(6);
  cases[1].shift = 3.0;
  cases[2].shift = 0.5;
  cases[3].dynamic = true;
  cases[3].mu = 1.15;
  cases[4].dynamic = true;
  cases[4].mu = 0.6;
  cases[4].type = "linear";
  cases[5].shift = 3.0;
  cases[5].n_train = 500;
  for (const FlowSettings& f : cases)
    for (const long steps : {1L, 4L, 28L}) {
      INFO("shift " << f.shift << " dynamic " << f.dynamic << " mu " << f.mu << " " << f.type << " N " << f.n_train
                    << " steps " << steps);
      const json config = flow_config(f, steps);
      const json native = expand_scheduler_config(config, "");
      CHECK(native["schedule"]["name"] == "flow");
      CHECK(native["solver"]["name"] == "ddim");
      SampleJob job = build_sample_job(parse_sample_config(native));
      const State x_T = job.x;
      run_sample_job(job);
      const auto& model = dynamic_cast<const GmmModel&>(*job.model);
      const auto sig = flow_sigmas(f, steps);
      State x = x_T;
      for (long i = 0; i < steps; ++i) {
        const auto k = static_cast<std::size_t>(i);
        x = x + (sig[k + 1] - sig[k]) * velocity(model, x, sig[k]);
      }
      CHECK(max_rel(job.x, x) < 1e-8);
      CHECK((job.x - x_T).abs().maxCoeff() > 0.1);
    }
}

TEST_CASE("FlowMatchEulerDiscreteScheduler: the native config, a network's settings, and what is refused at its key",
          "[diffusers][flow]") {
  FlowSettings f;
  f.shift = 3.0;
  const json native = expand_scheduler_config(flow_config(f, 28), "");
  CHECK(native["grid"]["name"] == "shift");
  CHECK(native["grid"]["shift"] == 3.0);
  CHECK(native["grid"]["t_start"] == 1.0);
  CHECK(native["grid"]["t_end"] == 0.0);
  CHECK(native["grid"]["steps"] == 28);
  // A network predicts the velocity and takes sigma times num_train_timesteps.
  json with_net = flow_config(f, 28);
  with_net["model"] = {{"name", "torchscript"}, {"path", "net.pt"}};
  const json net = expand_scheduler_config(with_net, "")["model"];
  CHECK(net["prediction"] == "velocity");
  CHECK(net["time_input"] == "continuous");
  CHECK(net["time_scale"] == 1000.0);
  with_net["model"]["time_input"] = "discrete";
  CHECK(error_path(with_net) == "model.time_input");

  const auto path_of = [&](const json& extra, const json& top = json::object()) {
    json config = flow_config(f, 10);
    config["scheduler_config"].update(extra);
    config.update(top);
    return error_path(config);
  };
  CHECK(path_of({{"use_dynamic_shifting", true}}) == "mu");
  CHECK(path_of(json::object(), {{"mu", 1.0}}) == "mu");
  CHECK(path_of({{"use_dynamic_shifting", true}, {"time_shift_type", "linear"}}, {{"mu", -1.0}}) == "mu");
  CHECK(path_of({{"use_karras_sigmas", true}}) == "scheduler_config.use_karras_sigmas");
  CHECK(path_of({{"invert_sigmas", true}}) == "scheduler_config.invert_sigmas");
  CHECK(path_of({{"shift_terminal", 0.1}}) == "scheduler_config.shift_terminal");
  CHECK(path_of({{"stochastic_sampling", true}}) == "scheduler_config.stochastic_sampling");
  CHECK(path_of({{"shift", 0.0}}) == "scheduler_config.shift");
  CHECK(path_of({{"time_shift_type", "cubic"}}) == "scheduler_config.time_shift_type");
  CHECK(path_of({{"timestep_spacing", "linspace"}}) == "scheduler_config.timestep_spacing");
  // mu belongs with a scheduler config, and with this class.
  CHECK(error_path(json{{"mu", 1.0}, {"model", {{"name", "gmm"}}}}) == "mu");
  json ddim = base_config({{"_class_name", "DDIMScheduler"}}, 10);
  ddim["mu"] = 1.0;
  CHECK(error_path(ddim) == "mu");
  // The grid's own checks: the shift rule refuses shift <= 0 at its key.
  json grid_config = json::parse(R"({"schedule": {"name": "flow"}, "model": {"name": "gmm"},
      "grid": {"name": "shift", "shift": -1, "t_start": 1, "t_end": 0, "steps": 4}, "solver": {"name": "ddim"}})");
  CHECK(error_path(grid_config) == "grid.shift");
}
