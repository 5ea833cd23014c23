// Encoding (data to noise through the PF-ODE run forwards) and decoding (see encode.hpp).
#include "diffsde/encode.hpp"

#include <algorithm>
#include <cmath>

#include "diffsde/error.hpp"
#include "diffsde/npy.hpp"

namespace diffsde {

using nlohmann::json;

std::vector<double> encoding_times(const std::vector<double>& times) {
  return std::vector<double>(times.rbegin(), times.rend());
}

void check_solver_encodes(const SolverTraits& traits, const std::string& path) {
  if (traits.stochastic)
    throw ConfigError(path, traits.name + " is stochastic (it draws noise along the reverse SDE), so it cannot "
                                          "encode: encoding integrates the probability-flow ODE forwards and "
                                          "needs a deterministic solver (e.g. ddim, dpm_solver, unipc, heun, "
                                          "pf_ode; ddim and the ancestral samplers with eta = 0)");
  if (traits.needs_decreasing_grid)
    throw ConfigError(path, traits.name + " runs only from noise to data (a decreasing grid), so it cannot "
                                          "encode; use a deterministic solver that also runs forwards (e.g. "
                                          "ddim, dpm_solver, unipc, heun, pf_ode)");
}

Summary encode(Solver& solver, const Schedule& schedule, const Model& model, const std::vector<double>& times,
               State& x, const std::vector<Observer*>& observers, const DriverOptions& options) {
  check_solver_encodes(solver.traits());
  return integrate(solver, schedule, model, encoding_times(times), x, nullptr, observers, options);
}

Summary decode(Solver& solver, const Schedule& schedule, const Model& model, const std::vector<double>& times,
               State& x, const std::vector<Observer*>& observers, const DriverOptions& options) {
  check_solver_encodes(solver.traits());
  return integrate(solver, schedule, model, times, x, nullptr, observers, options);
}

State read_npy_rows(const std::string& path) {
  const NpyArray a = read_npy(path);
  if (a.shape.empty()) throw IoError(path, "expected an array of shape (rows, ...), got a scalar");
  const std::size_t rows = a.shape[0];
  if (rows == 0) throw IoError(path, "has no rows");
  std::size_t cols = 1;
  for (std::size_t k = 1; k < a.shape.size(); ++k) cols *= a.shape[k];
  if (cols == 0) throw IoError(path, "has no values per row");
  State x(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
  std::copy(a.data.begin(), a.data.end(), x.data());  // both row-major
  return x;
}

void check_rows(const State& x, int dim, const std::string& name) {
  if (x.rows() < 1) throw IoError(name, "has no rows");
  if (x.cols() != dim)
    throw IoError(name, "has " + std::to_string(x.cols()) + " values per row, the model's dim is " +
                            std::to_string(dim));
  if (x.allFinite()) return;
  for (Eigen::Index r = 0; r < x.rows(); ++r)
    for (Eigen::Index c = 0; c < x.cols(); ++c)
      if (!std::isfinite(x(r, c)))
        throw IoError(name, "row " + std::to_string(r) + ", column " + std::to_string(c) + " is not finite (" +
                                format_double(x(r, c)) + ")");
}

namespace {

// The sampling job for a batch of `rows` given rows (x_T or data), the config's own
// x_T source ignored.
SampleJob job_for_rows(SampleConfig config, long rows) {
  config.init.clear();
  config.batch = std::max(rows, 1L);
  return build_sample_job(config);
}

}  // namespace

SampleJob build_encode_job(SampleConfig config, const State& data, const std::string& data_name) {
  SampleJob job = job_for_rows(std::move(config), static_cast<long>(data.rows()));
  const SolverTraits traits = job.solver->traits();
  check_solver_encodes(traits, "solver");
  const std::vector<double> times = encoding_times(job.times);
  try {
    check_solver_grid(traits, *job.schedule, times);
  } catch (const Error& e) {
    throw ConfigError("grid", std::string("encoding runs the grid from t_end up to t_start: ") + e.what());
  }
  // The solver's own checks, on the reversed grid, on one row (as build_sample_job does).
  SolverContext probe(*job.schedule, *job.model, nullptr);
  try {
    job.solver->init(probe, State::Zero(1, job.model->dim()), times);
  } catch (const ConfigError&) {
    throw;
  } catch (const Error& e) {
    throw ConfigError("solver", std::string("encoding (the grid reversed): ") + e.what());
  }
  check_rows(data, job.model->dim(), data_name);
  job.x = data;
  return job;
}

SampleJob build_decode_job(SampleConfig config, const State& latents, const std::string& latents_name) {
  SampleJob job = job_for_rows(std::move(config), static_cast<long>(latents.rows()));
  check_rows(latents, job.model->dim(), latents_name);
  job.x = latents;
  return job;
}

EncodeResult run_encode_job(SampleJob& job, bool reconstruct, const std::vector<Observer*>& observers,
                            const std::function<bool(const Progress&)>& progress) {
  EncodeResult result;
  result.data = job.x;
  DriverOptions options;
  options.threads = job.config.threads;
  const long passes = reconstruct ? 2 : 1;
  if (progress)
    options.progress = [&](const Progress& p) {
      Progress q = p;
      q.steps = passes * p.steps;
      return progress(q);
    };
  result.summary = encode(*job.solver, *job.schedule, *job.model, job.times, job.x, observers, options);
  result.latents = job.x;
  if (reconstruct) {
    result.reconstruction = job.x;
    if (progress)
      options.progress = [&](const Progress& p) {
        Progress q = p;
        q.step = p.steps + p.step;
        q.steps = 2 * p.steps;
        return progress(q);
      };
    result.decode_summary = decode(*job.solver, *job.schedule, *job.model, job.times, result.reconstruction, {}, options);
    result.reconstructed = true;
    const State diff = (result.reconstruction - result.data).abs();
    result.max_error = diff.maxCoeff();
    result.rms_error = std::sqrt(diff.square().mean());
  }
  return result;
}

json encode_summary_json(const SampleJob& job, const EncodeResult& result) {
  const Summary& s = result.summary;
  const double n = static_cast<double>(result.latents.size());
  const double mean = n > 0 ? result.latents.mean() : 0.0;
  const double sd = n > 1 ? std::sqrt((result.latents - mean).square().sum() / (n - 1)) : 0.0;
  json out = {{"solver", s.solver},
              {"schedule", job.schedule->name()},
              {"model", job.model->name()},
              {"grid", job.grid->name()},
              {"steps", s.steps},
              {"nfe", s.nfe},
              {"network_rows", s.network_rows},
              {"accepted", s.accepted},
              {"rejected", s.rejected},
              {"seconds", s.seconds},
              {"threads", s.threads},
              {"t_start", s.t_start},
              {"t_end", s.t_end},
              {"batch", result.latents.rows()},
              {"dim", result.latents.cols()},
              {"latent_mean", mean},
              {"latent_std", sd}};
  if (result.reconstructed)
    out["reconstruction"] = {{"max_abs_error", result.max_error},
                             {"rms_error", result.rms_error},
                             {"nfe", result.decode_summary.nfe},
                             {"seconds", result.decode_summary.seconds}};
  return out;
}

}  // namespace diffsde
