// The JSON configuration of a sampling run, validated up front: every error names its
// JSON path (and file), and nothing runs while anything is wrong.
//
//   {"schedule": {"name": "vp_linear"}, "model": {"name": "gmm", ...},
//    "grid": {"name": "time_uniform", "steps": 50, "t_start": 1, "t_end": 1e-3},
//    "solver": {"name": "euler_maruyama"}, "batch": 16, "seed": 0,
//    "init": "x_T.npy", "noise": "draws.npy", "threads": 2}
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "diffsde/driver.hpp"
#include "diffsde/grid.hpp"
#include "diffsde/model.hpp"
#include "diffsde/noise.hpp"
#include "diffsde/problem.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/solver.hpp"

namespace diffsde {

// A parsed (and type-checked) sampling configuration: the problem (schedule, model,
// batch, seed, first_sample, init, noise; see problem.hpp), then the grid, the solver
// and the threads. The noise source defaults to philox; a Brownian tree spans the grid.
struct SampleConfig : ProblemSpec {
  nlohmann::json grid, solver;
  // Threads to integrate the batch on (DriverOptions::threads; 0: all cores). The
  // samples do not depend on it.
  int threads = 1;
};

// The embedded default: the built-in 2-D Gaussian mixture sampled with Euler–Maruyama.
nlohmann::json default_sample_config();

// Checks the top-level keys and types; ConfigError with the JSON path otherwise.
SampleConfig parse_sample_config(const nlohmann::json& config, const std::string& base_dir = "");

// Everything a run needs, built and validated.
struct SampleJob {
  SampleConfig config;
  std::shared_ptr<const Schedule> schedule;
  // The model integrated (with its conditioning, guidance and thresholding layers), the
  // registry's model beneath them, and the run's inputs (Problem in problem.hpp).
  std::shared_ptr<const Model> model;
  std::shared_ptr<const Model> base_model;
  std::shared_ptr<const Conditioning> cond;
  std::unique_ptr<Grid> grid;
  std::vector<double> times;
  std::unique_ptr<Solver> solver;
  std::unique_ptr<NoiseSource> noise;
  State x;  // x_T
};

// Builds every object and reads the input files. Throws ConfigError (path) or IoError
// (file) before anything runs.
SampleJob build_sample_job(const SampleConfig& config);

// Runs the job: job.x becomes the samples at t_end. `progress`, when given, is called after
// every grid interval (DriverOptions::progress; returning false cancels the run).
Summary run_sample_job(SampleJob& job, const std::vector<Observer*>& observers = {},
                       const std::function<bool(const Progress&)>& progress = {});

// Summary (and, for analytic models, sample statistics against the exact data
// distribution) as JSON.
nlohmann::json summary_json(const SampleJob& job, const Summary& summary);

}  // namespace diffsde
