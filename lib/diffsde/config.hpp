// The JSON configuration of a sampling run, validated up front: every error names its
// JSON path (and file), and nothing runs while anything is wrong.
//
//   {"schedule": {"name": "vp_linear"}, "model": {"name": "gmm", ...},
//    "grid": {"name": "time_uniform", "steps": 50, "t_start": 1, "t_end": 1e-3},
//    "solver": {"name": "euler_maruyama"}, "batch": 16, "seed": 0,
//    "init": "x_T.npy", "noise": "draws.npy", "threads": 2}
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "diffsde/driver.hpp"
#include "diffsde/grid.hpp"
#include "diffsde/model.hpp"
#include "diffsde/noise.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/solver.hpp"

namespace diffsde {

// A parsed (and type-checked) sampling configuration.
struct SampleConfig {
  nlohmann::json schedule, model, grid, solver;
  long batch = 16;
  std::uint64_t seed = 0;
  // Global index of the first sample of the batch (for splitting a run: the same
  // samples come out whatever the split).
  std::uint64_t first_sample = 0;
  // .npy of x_T (batch x dim, VP coordinates at t_start); empty: x_T ~ N(0, I) from
  // the seed's init stream.
  std::string init;
  // Noise source: {"name": "philox"} (default), {"name": "brownian_tree", "depth": 20}
  // (on the grid's time span), {"name": "replay", "path": "draws.npy"}; a bare string
  // is the path of a replay file.
  nlohmann::json noise;
  // Threads to integrate the batch on (DriverOptions::threads; 0: all cores). The
  // samples do not depend on it.
  int threads = 1;
  // Relative file names are resolved against this folder (the config file's).
  std::string base_dir;
};

// The embedded default: the built-in 2-D Gaussian mixture sampled with Euler–Maruyama.
nlohmann::json default_sample_config();

// Checks the top-level keys and types; ConfigError with the JSON path otherwise.
SampleConfig parse_sample_config(const nlohmann::json& config, const std::string& base_dir = "");

// Everything a run needs, built and validated.
struct SampleJob {
  SampleConfig config;
  std::shared_ptr<const Schedule> schedule;
  std::shared_ptr<const Model> model;
  std::unique_ptr<Grid> grid;
  std::vector<double> times;
  std::unique_ptr<Solver> solver;
  std::unique_ptr<NoiseSource> noise;
  State x;  // x_T
};

// Builds every object and reads the input files. Throws ConfigError (path) or IoError
// (file) before anything runs.
SampleJob build_sample_job(const SampleConfig& config);

// Runs the job: job.x becomes the samples at t_end.
Summary run_sample_job(SampleJob& job, const std::vector<Observer*>& observers = {});

// Standard-normal x_T for samples first_sample .. first_sample + batch - 1.
State initial_noise(std::uint64_t seed, std::uint64_t first_sample, long batch, int dim);

// Summary (and, for analytic models, sample statistics against the exact data
// distribution) as JSON.
nlohmann::json summary_json(const SampleJob& job, const Summary& summary);

}  // namespace diffsde
