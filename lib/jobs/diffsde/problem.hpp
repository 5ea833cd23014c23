// The problem section shared by every command (sample, sweep, likelihood, and whatever
// comes next): the schedule, the model, the batch, the seed, the first sample's index,
// x_T from a file and the noise source. One parser with one set of messages, each naming
// the JSON path (and the file where one is read).
//
//   sample:      the keys at the top level of the config ("batch", "seed", ...)
//   sweep:       "problem": {"schedule", "model", "batch", "seed", "init", "noise", ...}
//   likelihood:  the keys "schedule", "model" and "seed" at the top level, ...
//
// Conditioning (every command): "cond": {NAME: VALUE} gives the model's inputs (VALUE: a
// number or list shared by every sample, a list of one label per sample, or a .npy path),
// "uncond" the unconditional ones for guidance, "guidance": {"scale", "interval",
// "interval_sigma", "rescale", "batched", "space"} and "thresholding": {"ratio", "max"} or
// {"clip": [lo, hi]} wrap the model (scores/diffsde/scores/guidance.hpp).
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "diffsde/conditioning.hpp"
#include "diffsde/model.hpp"
#include "diffsde/noise.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/state.hpp"

namespace diffsde {

// What a command accepts in its problem section. Keys it does not list are not parsed
// here (the command's own key check reports them).
struct ProblemRules {
  // The optional keys the command takes besides the required "schedule" and "model":
  // any of "batch", "seed", "first_sample", "init", "noise".
  std::vector<std::string> keys = {"batch", "seed",  "first_sample", "init",        "noise",
                                   "cond",  "uncond", "guidance",    "thresholding"};
  long default_batch = 16;
  // Noise sources "noise" may name: philox, brownian_tree, replay. A bare string is the
  // name of one of them, or else (where replay is allowed) the path of a replay file.
  std::vector<std::string> noise_sources = {"philox", "brownian_tree", "replay"};
};

// The parsed (type- and range-checked) problem section.
struct ProblemSpec {
  nlohmann::json schedule, model;  // as given: {"name": ..., params} or a bare name
  long batch = 16;
  std::uint64_t seed = 0;
  // Global index of the first sample of the batch (for splitting a run: the same
  // samples come out whatever the split).
  std::uint64_t first_sample = 0;
  // .npy of x_T (batch x dim, at t_start); empty: x_T ~ N(0, I) from the seed's init
  // stream.
  std::string init;
  // {"name": "philox"}, {"name": "brownian_tree", "depth": 20} or {"name": "replay",
  // "path": "draws.npy"}; null: the command's default.
  nlohmann::json noise;
  // Conditioning, as given (objects; null when absent). Checked for form here, against
  // the model's inputs by build_problem.
  nlohmann::json cond, uncond, guidance, thresholding;
  // JSON path of the section ("" for the top level), for the errors of later steps.
  std::string path;
  // Relative file names are resolved against this folder (the config file's).
  std::string base_dir;
};

// Checks `section`'s problem keys (those of `rules`); ConfigError at PATH.key otherwise.
ProblemSpec parse_problem(const nlohmann::json& section, const std::string& path,
                          const ProblemRules& rules = {}, const std::string& base_dir = "");

// The schedule and the model, made by the global registries (errors at PATH.schedule
// and PATH.model), and the context for making the grid, solver and metrics.
struct Problem {
  std::shared_ptr<const Schedule> schedule;
  // The model to integrate: the registry's model, wrapped with the conditioning, guidance
  // and thresholding the spec gives (the registry's model itself when it gives none).
  std::shared_ptr<const Model> model;
  // The registry's model (for the exact densities of an analytic one).
  std::shared_ptr<const Model> base_model;
  // The run's inputs (row i: sample i of the batch); empty without "cond".
  std::shared_ptr<const Conditioning> cond;
  BuildContext context;
  // The rows of the whole batch as the base model sees them (with the conditional inputs),
  // for exact conditional densities.
  ModelRows rows() const;
};
Problem build_problem(const ProblemSpec& spec);
// For a grid whose network times differ from its times (Grid::model_times non-empty):
// problem.model becomes the registry's model evaluated at those times (RetimedModel),
// under the same conditioning, guidance and thresholding layers. Nothing changes when
// model_times is empty.
void retime_problem(const ProblemSpec& spec, Problem& problem, const std::vector<double>& times,
                    const std::vector<double>& model_times);

// Memory a run of `batch` samples of `dim` values holds at least: the state and one model
// output, 8 bytes a value; a solver's work arrays and history add about as much again per
// array (the estimate reported counts 4 arrays). A ConfigError at `path` when even the
// least is more than the memory available (MemAvailable in /proc/meminfo, else the
// physical memory), before anything is allocated.
void check_batch_memory(long batch, int dim, const std::string& path);
// Bytes of memory available to this process now (0 when unknown).
std::uint64_t available_memory_bytes();

// Standard-normal x_T for samples first_sample .. first_sample + batch - 1 (the init
// stream of `seed`).
State initial_noise(std::uint64_t seed, std::uint64_t first_sample, long batch, int dim);

// x_T of the problem: its init file (which must have shape (batch, dim); IoError naming
// the file otherwise) or initial_noise(seed, first_sample, batch, dim).
State problem_initial_state(const ProblemSpec& spec, int dim, std::uint64_t seed);

// The noise source named by spec.noise (or by `default_name` when it names none) for
// samples first_sample.. of `seed`; a Brownian tree spans [t_lo, t_hi].
std::unique_ptr<NoiseSource> make_problem_noise(const ProblemSpec& spec, const std::string& default_name,
                                                std::uint64_t seed, double t_lo, double t_hi);

// The depth of the problem's Brownian tree (its "depth", or the default 20).
int problem_tree_depth(const ProblemSpec& spec);
// The name of the problem's noise source, or `default_name` when it names none.
std::string problem_noise_name(const ProblemSpec& spec, const std::string& default_name);

}  // namespace diffsde
