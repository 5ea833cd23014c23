// JSON-configured sweeps: one problem, lists of solvers (list-valued parameters expand
// into their cross product), grids, step counts (or tolerances for adaptive solvers) and
// seeds; every combination is a cell, an independent run whose result is one JSON line.
// docs/sweeps.md is the reference of the schema and of the results format.
//
//   {"problem": {"schedule": {...}, "model": {...}, "batch": 256, "seed": 0},
//    "reference": {"solver": {...}, "grid": {...}},
//    "solvers": [{"name": "ddim", "eta": [0, 1]}, {"name": "dpm_solver", "order": [2, 3]}],
//    "grids": [{"name": "logSNR", "t_start": 1, "t_end": 0.001}], "steps": [5, 10, 20],
//    "seeds": [0, 1], "metrics": ["path_error", "frechet"]}
//
// The whole sweep is validated when it is parsed (every error is a ConfigError naming its
// JSON path, e.g. "sweep.solvers[2].order"), so nothing runs while anything is wrong.
// Cell results depend only on the cell: x_T and the noise are keyed by (seed, sample), so
// the same cells come out bit for bit whatever the thread count, shard or rank.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "diffsde/progress.hpp"
#include "diffsde/model.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/state.hpp"

namespace diffsde {

// ---------------------------------------------------------------------------
// Metrics of a sweep: a small plug-in interface, made by name from the registry below.
// A metric for image models (the Fréchet distance in the feature space of a classifier
// trained on the same data) is one more entry: its prepare() loads the classifier and
// embeds the data set once, its compute() embeds the cell's samples and calls
// frechet_distance (metrics.hpp); register it with metric_registry().add(...).

struct MetricSetup {
  // The problem's model as the registry made it (beneath any conditioning or guidance
  // layer), for its exact densities and data.
  std::shared_ptr<const Model> model;
  // The run's per-sample inputs ("cond"); empty for an unconditional problem.
  std::shared_ptr<const Conditioning> cond;
  long batch = 0;           // samples per cell
  std::uint64_t seed = 0;   // the problem's seed (data samples, projections)
  std::string path;         // the metric's JSON path, for errors
  std::string base_dir;     // for relative file names
  bool has_reference = false;
};

struct MetricInput {
  const Model& model;       // MetricSetup::model
  const State& samples;     // the cell's samples at t_end
  const State* reference;   // the reference solve from the same x_T and noise, or null
  // The samples' rows with their inputs (conditional densities); null: unconditional.
  const ModelRows* rows = nullptr;
};

class SweepMetric {
 public:
  virtual ~SweepMetric() = default;
  virtual std::string name() const = 0;
  // True when compute() uses MetricInput::reference (the sweep then runs the reference).
  virtual bool uses_reference() const { return false; }
  // Called once before any cell runs; throws ConfigError at setup.path when the metric
  // cannot measure this problem (e.g. an analytic-only metric on a network model).
  virtual void prepare(const MetricSetup& /*setup*/) {}
  // Adds this metric's values (one or more numbers, keyed by their names) to `values`.
  // Called from several threads at once: must only read what prepare() made.
  virtual void compute(const MetricInput& input, nlohmann::json& values) const = 0;
};

// path_error, log_likelihood, frechet, sliced_w2, mmd, feature_frechet, accuracy, outside.
Registry<SweepMetric>& metric_registry();

// ---------------------------------------------------------------------------
// The parsed sweep.

enum class ReferenceKind { ode, sde };
std::string to_string(ReferenceKind kind);

struct SweepReference {
  nlohmann::json solver;             // as given: {"name", params...}
  nlohmann::json solver_normalized;  // every parameter, defaults filled in
  nlohmann::json grid;    // normalised; t_start and t_end are set to each cell's span
  std::string path;       // "sweep.reference" or "sweep.reference.ode"
};

struct SweepCell {
  std::size_t index = 0;       // position in the sweep's expansion order
  std::string key;             // 16 hex digits: hash of solver, grid, steps/tolerance, seed
  std::size_t solver_entry = 0, grid_entry = 0;
  nlohmann::json solver;       // normalised {"name", every parameter}
  nlohmann::json solver_config;  // as the sweep sets it (list values chosen), for the registry
  std::string label;           // "ddim(eta=0.5)": the name and the parameters the sweep set
  nlohmann::json grid;         // normalised, with steps
  std::string grid_label;      // "logSNR(t_end=0.001,t_start=1)"
  long steps = 0;              // grid intervals
  std::optional<double> tolerance;  // adaptive solvers: rtol = atol = tolerance
  std::uint64_t seed = 0;
  bool stochastic = false, adaptive = false;
  double order = 0, strong_order = 0;  // declared (strong_order NaN where undefined)
  std::vector<double> times;
  // The network as this cell's grid calls it (a `diffusers` grid: at diffusers' timesteps,
  // RetimedModel, under the problem's conditioning layers); null: Sweep::model.
  std::shared_ptr<const Model> model;
  // Estimated model evaluations per sample: steps x evaluations per step; adaptive
  // solvers, evaluations per step x tolerance^(-1/order) (rtol, default included). Only
  // the order in which run_sweep hands out cells (costliest first) depends on it.
  double cost = 0;
};

struct Sweep {
  nlohmann::json config;       // as given
  std::string base_dir;
  std::string hash;            // 16 hex digits: problem, references and metrics
  std::shared_ptr<const Schedule> schedule;
  // The model integrated (with conditioning, guidance and thresholding layers), the
  // registry's model beneath them and the run's inputs (Problem in problem.hpp).
  std::shared_ptr<const Model> model;
  std::shared_ptr<const Model> base_model;
  std::shared_ptr<const Conditioning> cond;
  long batch = 256;
  std::uint64_t seed = 0;
  std::optional<State> init;   // x_T for every seed, from problem.init
  bool brownian_tree = true;   // noise: Brownian tree on [0, t_max] (else Philox)
  int tree_depth = 20;
  std::optional<SweepReference> ode_reference, sde_reference;
  std::vector<std::string> metric_names;
  std::vector<std::shared_ptr<SweepMetric>> metrics;
  std::vector<SweepCell> cells;
};

// The default sweep: configs/sweeps/default.json, embedded at build time. Every
// registered solver on the built-in 2-D Gaussian mixture at 5, 10, 20 and 50 steps.
nlohmann::json default_sweep_config();

// Parses and validates the whole sweep (solvers built and initialised on every grid they
// will run on); ConfigError with the JSON path ("sweep.solvers[2].order"), IoError for
// files.
Sweep parse_sweep(const nlohmann::json& config, const std::string& base_dir = "");

// x_T of a seed (problem.init, or standard normals from the init stream scaled by the
// schedule's prior_std at t_start: sigma(t_start) on ve and edm, 1 otherwise).
State sweep_initial_state(const Sweep& sweep, std::uint64_t seed, double t_start);

// Runs one cell; `reference` is the matching reference solve (null: none). Returns its
// results line (an object); a run that breaks down gives status "failed" and the error.
nlohmann::ordered_json run_cell(const Sweep& sweep, const SweepCell& cell, const State* reference);

// Sends `count` doubles from rank `root` to every rank (MPI_Bcast), in place.
using Broadcast = std::function<void(double* data, std::size_t count, int root)>;

// The reference solve of `kind` for a seed on [t_start, t_end]: rows are integrated in
// fixed chunks of kReferenceChunk (in parallel on `threads`), with the noise of their own
// sample indices, so the result does not depend on the thread count. With ranks > 1,
// rank r integrates the chunks c with c % ranks == r and `broadcast` shares them; every
// rank must then make the same calls.
constexpr long kReferenceChunk = 256;
// `progress`, when given, is called as chunks finish with (rows done, rows) of this rank.
State run_reference(const Sweep& sweep, ReferenceKind kind, std::uint64_t seed, double t_start, double t_end,
                    int threads = 1, int rank = 0, int ranks = 1, const Broadcast& broadcast = {},
                    const std::function<void(long, long)>& progress = {});

// ---------------------------------------------------------------------------
// Results files: one JSON object per line.

struct ResultsFile {
  std::vector<nlohmann::json> lines;  // the complete lines, parsed
  std::size_t complete_bytes = 0;     // bytes up to the end of the last complete line
  std::size_t torn_bytes = 0;         // bytes of a torn last line (no newline), ignored
};

// Reads a results file; a torn last line is ignored (counted in torn_bytes); a complete
// line that is not a results object is an IoError naming the file and line.
ResultsFile read_results(const std::string& path);

// Merges results files: every line must belong to the same sweep (IoError otherwise);
// a cell present in several files is kept once (the first). Lines come out in cell
// order. Returns the merged lines.
std::vector<nlohmann::json> merge_results(const std::vector<std::string>& paths, std::ostream* log = nullptr);

// ---------------------------------------------------------------------------
// Running a sweep into a results file.

struct SweepRunOptions {
  int threads = 1;                  // cells run side by side
  int shard = 0, shards = 1;        // this job runs the cells with index % shards == shard
  bool resume = false;              // keep the cells already in the file, run the rest
  bool force = false;               // start over even if the file has cells
  // Processes working on one file (MPI ranks): each takes the next pending cell from a
  // counter shared by all ranks (next_task). Rank 0 appends to the file, rank r > 0 to
  // FILE.rank-r-of-K, which rank 0 folds into the file at the end (and at the start of a
  // resumed run).
  int rank = 0, ranks = 1;
  // With ranks > 1: true when every rank passes true (a collective); used as a barrier
  // that also tells every rank whether rank 0's file work succeeded.
  std::function<bool(bool)> all_ok;
  // With ranks > 1: shares the reference chunks, each integrated by one rank.
  Broadcast broadcast;
  // With ranks > 1: 0, 1, 2, ... across all ranks together (an atomic fetch-and-add on a
  // counter that starts at 0 after the references). Called by one thread at a time.
  std::function<long()> next_task;
  // Progress of the reference solves and the cells on stderr (progress.hpp): a bar on a
  // terminal, plain lines in a log, or none; only rank 0 of a run on one rank reports.
  ProgressStyle progress = ProgressStyle::quiet;
  std::ostream* log = nullptr;      // one-line messages (what runs, what was skipped)
};

struct SweepRunSummary {
  long cells = 0;          // in the sweep
  long in_shard = 0;       // in this shard
  long already_done = 0;   // found in the file
  long ran = 0;            // by this process
  long failed = 0;         // of those, with status "failed"
  double seconds = 0;
};

SweepRunSummary run_sweep(const Sweep& sweep, const std::string& out_path, const SweepRunOptions& options);

}  // namespace diffsde
