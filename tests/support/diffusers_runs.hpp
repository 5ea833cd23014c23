// Whole runs of translated scheduler configs, and the pieces of the transcriptions that
// several parity test files share: EulerDiscreteScheduler's set_timesteps (which Heun,
// KDPM2 and LMS copy) and the analytic "network" of a timestep. Header-only, test use only.
#pragma once

#include <Eigen/Dense>
#include <cmath>
#include <memory>
#include <random>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "diffsde/config.hpp"
#include "diffsde/diffusers_config.hpp"
#include "diffsde/npy.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "support/diffusers_reference.hpp"

namespace diffsde::test {

// EulerDiscreteScheduler.set_timesteps (linear interpolation).
inline void ref_euler_timesteps(const RefTable& tab, long S, const std::string& spacing, long offset, const std::string& rule,
                         std::vector<double>& ts, std::vector<double>& sig) {
  const long N = static_cast<long>(tab.alphas_cumprod.size());
  ts.clear();
  sig.clear();
  if (spacing == "linspace") {
    auto v = lin(0, static_cast<double>(N - 1), S);
    for (long i = S - 1; i >= 0; --i) ts.push_back(v[i]);
  } else if (spacing == "leading") {
    const long ratio = N / S;
    for (long i = S - 1; i >= 0; --i) ts.push_back(rnd(static_cast<double>(i * ratio)) + static_cast<double>(offset));
  } else {
    for (double v : arange_float(static_cast<double>(N), 0, -static_cast<double>(N) / static_cast<double>(S)))
      ts.push_back(rnd(v) - 1);
  }
  if (rule != "timesteps") {
    const double smin = tab.sigmas_table.front(), smax = tab.sigmas_table.back(), rho = 7;
    ts.clear();
    const auto ramp = lin(0, 1, S);
    for (long i = 0; i < S; ++i) {
      const double s = rule == "karras"
                           ? std::pow(std::pow(smax, 1 / rho) + ramp[i] * (std::pow(smin, 1 / rho) - std::pow(smax, 1 / rho)), rho)
                           : std::exp(lin(std::log(smax), std::log(smin), S)[i]);
      sig.push_back(s);
      ts.push_back(ref_sigma_to_t(s, tab.log_sigmas));
    }
  } else {
    for (double t : ts) sig.push_back(ref_interp(t, tab.sigmas_table));
  }
  sig.push_back(0.0);
}

// ---------------------------------------------------------------------------
// Whole runs from scheduler configs.

// The sample job a config with "scheduler_config" makes, run.
inline State run_translated(const nlohmann::json& config) {
  const nlohmann::json native = expand_scheduler_config(config, "");
  SampleJob job = build_sample_job(parse_sample_config(native));
  run_sample_job(job);
  return job.x;
}

inline nlohmann::json base_config(const nlohmann::json& scheduler, long steps) {
  return {{"scheduler_config", scheduler}, {"steps", steps}, {"model", {{"name", "gmm"}}}, {"batch", 5}, {"seed", 3}};
}

// The network of the transcriptions: the analytic model's eps at timestep tau's time.
struct Network {
  std::shared_ptr<const Schedule> schedule;
  std::shared_ptr<Model> model;
  long n;
  State operator()(const State& x, double tau) const {
    State out(x.rows(), x.cols());
    model->eps(x, (tau + 1) / static_cast<double>(n), out);
    return out;
  }
};

inline Network network(const nlohmann::json& schedule_json) {
  Network net;
  auto s = schedule_registry().create(schedule_json, "schedule");
  net.schedule = std::shared_ptr<const Schedule>(std::move(s));
  net.model = model_registry().create(nlohmann::json{{"name", "gmm"}}, "model", BuildContext{net.schedule, ""});
  net.n = dynamic_cast<const VpDiscreteSchedule&>(*net.schedule).num_steps();
  return net;
}

// Standard normals in the layout of a replay file (draws, batch, dim), written to `file`.
inline NpyArray write_draws(const std::string& file, std::size_t count, long batch, long dim, unsigned long seed) {
  NpyArray draws;
  draws.shape = {count, static_cast<std::size_t>(batch), static_cast<std::size_t>(dim)};
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  for (std::size_t k = 0; k < count * static_cast<std::size_t>(batch * dim); ++k) draws.data.push_back(normal(rng));
  write_npy(file, draws);
  return draws;
}

// Draw k of a replay array, batch x dim.
inline State draw(const NpyArray& draws, std::size_t k, long batch, long dim) {
  State z(batch, dim);
  for (long b = 0; b < batch; ++b)
    for (long d = 0; d < dim; ++d)
      z(b, d) = draws.data[(k * static_cast<std::size_t>(batch) + static_cast<std::size_t>(b)) *
                               static_cast<std::size_t>(dim) +
                           static_cast<std::size_t>(d)];
  return z;
}

inline double max_rel(const State& a, const State& b) { return ((a - b).abs() / b.abs().max(1e-3)).maxCoeff(); }

}  // namespace diffsde::test
