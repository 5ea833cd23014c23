// Sweeps: parsing and validation, cells, references, metrics, results files and the run
// loop (see sweep.hpp and docs/sweeps.md).
#include "diffsde/sweep.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <limits>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include "diffsde/config.hpp"
#include "diffsde/data.hpp"
#include "diffsde/driver.hpp"
#include "diffsde/error.hpp"
#include "diffsde/grid.hpp"
#include "diffsde/io.hpp"
#include "diffsde/metrics.hpp"
#include "diffsde/noise.hpp"
#include "diffsde/npy.hpp"
#include "diffsde/problem.hpp"
#include "diffsde/solver.hpp"

namespace diffsde {

using nlohmann::json;
using nlohmann::ordered_json;

std::string to_string(ReferenceKind kind) { return kind == ReferenceKind::ode ? "ode" : "sde"; }

// ---------------------------------------------------------------------------
// Small helpers.

namespace {

const std::string kRoot = "sweep";

// 64-bit FNV-1a, as 16 hex digits: stable across runs, builds and machines.
std::string hash_hex(const std::string& bytes) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  std::ostringstream os;
  os << std::hex << std::setw(16) << std::setfill('0') << h;
  return os.str();
}

// A non-empty JSON array at `path` (a single value is not accepted: lists are explicit).
const json& non_empty_array(const json& v, const std::string& path) {
  if (!v.is_array()) throw ConfigError(path, "expected an array, got " + json_type_name(v));
  if (v.empty()) throw ConfigError(path, "must not be empty");
  return v;
}

std::vector<long> step_list(const json& v, const std::string& path) {
  std::vector<long> out;
  for (std::size_t i = 0; i < non_empty_array(v, path).size(); ++i) {
    const auto p = join_path(path, i);
    const auto s = non_negative_integer(v[i], p);
    if (s < 1 || s > 100000000ull) throw ConfigError(p, "must be between 1 and 100000000");
    if (std::find(out.begin(), out.end(), static_cast<long>(s)) != out.end()) throw ConfigError(p, "repeats a value");
    out.push_back(static_cast<long>(s));
  }
  return out;
}

std::vector<double> tolerance_list(const json& v, const std::string& path) {
  std::vector<double> out;
  for (std::size_t i = 0; i < non_empty_array(v, path).size(); ++i) {
    const auto p = join_path(path, i);
    if (!v[i].is_number()) throw ConfigError(p, "expected a number, got " + json_type_name(v[i]));
    const double tol = v[i].get<double>();
    if (!(tol > 0) || !std::isfinite(tol)) throw ConfigError(p, "must be a finite number > 0");
    if (std::find(out.begin(), out.end(), tol) != out.end()) throw ConfigError(p, "repeats a value");
    out.push_back(tol);
  }
  return out;
}

// A value of a parameter, in one canonical JSON form per type, so that equal settings
// give equal cell keys (0 and 0.0 for a number, 3 and 3.0 for an integer).
json normalize_value(const json& v, ParamType type) {
  if (v.is_null()) return v;
  switch (type) {
    case ParamType::number: return json(v.get<double>());
    case ParamType::integer:
      return json(v.is_number_float() ? static_cast<long long>(v.get<double>()) : v.get<long long>());
    case ParamType::numbers: return json(v.get<std::vector<double>>());
    case ParamType::matrix: return json(v.get<std::vector<std::vector<double>>>());
    default: return v;
  }
}

// {"name", every parameter with its default filled in}, normalised; validates too.
template <class T>
json normalize(const Registry<T>& registry, const json& object, const std::string& path) {
  const std::string name = registry_name_of(object, path);
  const auto& entry = registry.get(name, join_path(path, "name"));
  const Params params(object.is_string() ? json{{"name", name}} : object, entry.params, path);
  json out = json::object();
  out["name"] = name;
  for (const auto& spec : entry.params) out[spec.name] = normalize_value(params.values().at(spec.name), spec.type);
  return out;
}

template <class T>
const ParamSpec* find_spec(const Registry<T>& registry, const std::string& name, const std::string& param) {
  const auto* entry = registry.find(name);
  if (entry == nullptr) return nullptr;
  for (const auto& spec : entry->params)
    if (spec.name == param) return &spec;
  return nullptr;
}

std::string format_value(const json& v) {
  if (v.is_number()) return format_double(v.get<double>());
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

// "name(k=v,...)" over the given parameters (none: just the name).
std::string label_of(const std::string& name, const json& given) {
  std::string params;
  for (const auto& item : given.items()) {
    if (item.key() == "name") continue;
    params += (params.empty() ? "" : ",") + item.key() + "=" + format_value(item.value());
  }
  return params.empty() ? name : name + "(" + params + ")";
}

// Runs fn(j) for the tasks j = next() < n on up to `threads` threads until next() gives
// j >= n; the first exception is rethrown after every thread has stopped.
void drain(int threads, long n, const std::function<long()>& next, const std::function<void(long)>& fn) {
  std::atomic<bool> stop{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto work = [&] {
    while (!stop.load()) {
      long j = 0;
      try {
        j = next();
        if (j >= n) return;
        fn(j);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        stop.store(true);
      }
    }
  };
  std::vector<std::thread> pool;
  for (int w = 1; w < std::max(threads, 1); ++w) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

// Runs fn(i) for i in [0, n) on up to `threads` threads (never more than n); the first
// exception thrown is rethrown after every thread has stopped.
void parallel_for(std::size_t n, int threads, const std::function<void(std::size_t)>& fn) {
  const int workers = static_cast<int>(std::min<std::size_t>(n, static_cast<std::size_t>(std::max(threads, 1))));
  if (workers <= 1) {
    for (std::size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<long> next{0};
  drain(workers, static_cast<long>(n), [&next] { return next.fetch_add(1); },
        [&fn](long i) { fn(static_cast<std::size_t>(i)); });
}

// SweepCell::cost. An adaptive method of order p with local error control takes about
// tolerance^(-1/p) steps; a fixed-step one exactly its grid's intervals.
double estimated_cost(const SolverTraits& traits, long n_steps, const json& normalized) {
  const double per_step = std::max(traits.evals_per_step, 1);
  if (!traits.adaptive) return per_step * static_cast<double>(std::max(n_steps, 1L));
  const auto rtol = normalized.find("rtol");
  const double tol =
      rtol != normalized.end() && rtol->is_number() && rtol->get<double>() > 0 ? rtol->get<double>() : 1e-3;
  const double order = std::isfinite(traits.order) && traits.order >= 1 ? traits.order : 1.0;
  return per_step * std::max({1.0, static_cast<double>(n_steps), std::pow(tol, -1.0 / order)});
}

const AnalyticModel& analytic_model(const MetricSetup& setup, const std::string& metric, const std::string& why) {
  const auto* analytic = dynamic_cast<const AnalyticModel*>(setup.model.get());
  if (analytic == nullptr)
    throw ConfigError(setup.path, metric + " needs an analytic model (gaussian, gmm) for " + why + "; model '" +
                                      setup.model->name() + "' has none");
  return *analytic;
}

}  // namespace

// ---------------------------------------------------------------------------
// Metrics.

namespace {

class PathErrorMetric final : public SweepMetric {
 public:
  std::string name() const override { return "path_error"; }
  bool uses_reference() const override { return true; }
  void prepare(const MetricSetup& setup) override {
    if (!setup.has_reference)
      throw ConfigError(setup.path, "path_error needs a reference solve (sweep.reference)");
  }
  void compute(const MetricInput& input, json& values) const override {
    if (input.reference == nullptr) return;
    const PathError e = path_error(input.samples, *input.reference);
    values["path_rms"] = e.rms;
    values["path_max"] = e.max;
  }
};

class LogLikelihoodMetric final : public SweepMetric {
 public:
  std::string name() const override { return "log_likelihood"; }
  void prepare(const MetricSetup& setup) override {
    analytic_model(setup, "log_likelihood", "its exact data density");
  }
  void compute(const MetricInput& input, json& values) const override {
    values["log_likelihood"] =
        mean_log_likelihood(dynamic_cast<const AnalyticModel&>(input.model), input.samples);
  }
};

class FrechetMetric final : public SweepMetric {
 public:
  std::string name() const override { return "frechet"; }
  void prepare(const MetricSetup& setup) override {
    analytic_model(setup, "frechet", "the exact data mean and covariance (for image models use "
                                     "feature_frechet, see docs/metrics.md)");
    if (setup.batch < 2) throw ConfigError(setup.path, "frechet needs a batch of at least 2 samples");
  }
  void compute(const MetricInput& input, json& values) const override {
    values["frechet"] = frechet_distance(input.samples, dynamic_cast<const AnalyticModel&>(input.model));
  }
};

class SlicedW2Metric final : public SweepMetric {
 public:
  explicit SlicedW2Metric(const Params& p) {
    projections_ = p.integer("projections");
    if (projections_ < 1 || projections_ > 100000) p.fail("projections", "must be between 1 and 100000");
    if (p.has("data_samples")) {
      data_samples_ = p.integer("data_samples");
      if (data_samples_ < 1 || data_samples_ > (1L << 26)) p.fail("data_samples", "must be between 1 and 2^26");
    }
    if (p.has("seed")) seed_ = non_negative_integer(p.value("seed"), p.path_of("seed"));
  }
  std::string name() const override { return "sliced_w2"; }
  void prepare(const MetricSetup& setup) override {
    const auto& model = analytic_model(setup, "sliced_w2", "exact data samples");
    const std::uint64_t seed = seed_.value_or(setup.seed);
    data_ = model.sample_data(data_samples_ > 0 ? data_samples_ : setup.batch, seed);
    directions_ = projection_directions(static_cast<int>(projections_), model.dim(), seed);
  }
  void compute(const MetricInput& input, json& values) const override {
    values["sliced_w2"] = sliced_wasserstein2(input.samples, data_, directions_);
  }

 private:
  long projections_ = 64, data_samples_ = 0;
  std::optional<std::uint64_t> seed_;
  State data_, directions_;
};

class MmdMetric final : public SweepMetric {
 public:
  explicit MmdMetric(const Params& p) {
    samples_ = p.integer("samples");
    if (samples_ < 3 || samples_ > 100000) p.fail("samples", "must be between 3 and 100000");
    if (p.has("bandwidth")) {
      bandwidth_ = p.number("bandwidth");
      if (!(bandwidth_ > 0)) p.fail("bandwidth", "must be > 0");
    }
    if (p.has("seed")) seed_ = non_negative_integer(p.value("seed"), p.path_of("seed"));
  }
  std::string name() const override { return "mmd"; }
  void prepare(const MetricSetup& setup) override {
    const auto& model = analytic_model(setup, "mmd", "exact data samples");
    n_ = std::min(samples_, setup.batch);
    if (n_ < 3) throw ConfigError(setup.path, "mmd needs a batch of at least 3 samples");
    data_ = model.sample_data(n_, seed_.value_or(setup.seed));
    h_ = bandwidth_ > 0 ? bandwidth_ : median_pairwise_distance(data_);
  }
  void compute(const MetricInput& input, json& values) const override {
    const MmdResult r = mmd2_rbf(input.samples.topRows(n_), data_, h_);
    values["mmd2"] = r.mmd2;
    values["mmd2_se"] = r.standard_error;
  }

 private:
  long samples_ = 1000, n_ = 0;
  double bandwidth_ = 0, h_ = 0;
  std::optional<std::uint64_t> seed_;
  State data_;
};

// The Fréchet distance in a classifier's feature space (image models): the Gaussian fit
// of the samples' features against that of the data set's features, embedded once.
class FeatureFrechetMetric final : public SweepMetric {
 public:
  explicit FeatureFrechetMetric(const Params& p) : path_(p.path()) {
    if (!p.has("classifier")) p.fail("classifier", "is required (a TorchScript classifier with a 'features' method)");
    options_.path = p.string("classifier");
    data_spec_ = p.value("data");
    if (!data_spec_.is_object()) p.fail("data", "must be an object ({\"name\": ...})");
    data_samples_ = p.integer("data_samples");
    if (data_samples_ < 2 || data_samples_ > (1L << 24)) p.fail("data_samples", "must be between 2 and 2^24");
    options_.max_batch = p.integer("max_batch");
    if (options_.max_batch < 1) p.fail("max_batch", "must be >= 1");
    options_.device = p.string("device");
    clip_ = p.boolean("clip");
    if (p.has("seed")) seed_ = non_negative_integer(p.value("seed"), p.path_of("seed"));
  }
  std::string name() const override { return "feature_frechet"; }
  void prepare(const MetricSetup& setup) override {
    if (setup.batch < 2) throw ConfigError(setup.path, "feature_frechet needs a batch of at least 2 samples");
    options_.path = resolve_path(setup.base_dir, options_.path);
    const BuildContext context{nullptr, setup.base_dir};
    const auto data = data_registry().create(data_spec_, join_path(path_, "data"), context);
    if (data->dim() != setup.model->dim())
      throw ConfigError(join_path(path_, "data"), "the data have " + std::to_string(data->dim()) +
                                                      " values per sample, the model " +
                                                      std::to_string(setup.model->dim()));
    State rows;
    if (const State* all = data->rows()) {
      rows = all->topRows(std::min<Eigen::Index>(data_samples_, all->rows()));
    } else {
      rows.resize(data_samples_, data->dim());
      data->batch(seed_.value_or(setup.seed), 0, rows);
    }
    try {
      features_ = load_feature_map(options_);
      data_fit_ = gaussian_fit(features_(rows));
    } catch (const IoError&) {
      throw;
    } catch (const Error& e) {
      throw ConfigError(join_path(path_, "classifier"), e.what());
    }
  }
  void compute(const MetricInput& input, json& values) const override {
    State x = input.samples;
    if (clip_) x = x.max(-1.0).min(1.0);
    values["feature_frechet"] = frechet_distance(gaussian_fit(features_(x)), data_fit_);
  }

 private:
  std::string path_;
  FeatureMapOptions options_;
  json data_spec_;
  long data_samples_ = 10000;
  bool clip_ = true;
  std::optional<std::uint64_t> seed_;
  FeatureMap features_;
  GaussianFit data_fit_;
};

void register_metrics(Registry<SweepMetric>& r) {
  auto simple = [](auto make) {
    return [make](const Params&, const BuildContext&) -> std::unique_ptr<SweepMetric> { return make(); };
  };
  r.add({"path_error",
         "RMS and max over all entries of (samples - reference), the reference solved from the same x_T and "
         "noise (path error for ODE solvers, strong error for SDE solvers on the Brownian path): path_rms, "
         "path_max",
         {},
         simple([] { return std::make_unique<PathErrorMetric>(); })});
  r.add({"log_likelihood", "mean exact data log-density log p_0 of the samples (analytic models): log_likelihood",
         {},
         simple([] { return std::make_unique<LogLikelihoodMetric>(); })});
  r.add({"frechet",
         "Fréchet distance between the Gaussian fit of the samples and the exact data mean and covariance "
         "(analytic models): frechet",
         {},
         simple([] { return std::make_unique<FrechetMetric>(); })});
  r.add({"sliced_w2",
         "sliced 2-Wasserstein distance to exact data samples (analytic models): sliced_w2",
         {{"projections", ParamType::integer, 64, "number of random directions"},
          {"data_samples", ParamType::integer, nullptr, "data samples drawn (default: the batch size)"},
          {"seed", ParamType::integer, nullptr, "seed of the data samples and directions (default: problem.seed)"}},
         [](const Params& p, const BuildContext&) -> std::unique_ptr<SweepMetric> {
           return std::make_unique<SlicedW2Metric>(p);
         }});
  r.add({"mmd",
         "unbiased MMD^2 with an RBF kernel between the first n samples and n exact data samples (analytic "
         "models): mmd2 and its standard error mmd2_se",
         {{"samples", ParamType::integer, 1000, "n: samples compared (at most the batch)"},
          {"bandwidth", ParamType::number, nullptr, "kernel bandwidth h (default: median heuristic on the data samples)"},
          {"seed", ParamType::integer, nullptr, "seed of the data samples (default: problem.seed)"}},
         [](const Params& p, const BuildContext&) -> std::unique_ptr<SweepMetric> {
           return std::make_unique<MmdMetric>(p);
         }});
  r.add({"feature_frechet",
         "Fréchet distance between Gaussian fits of the samples' and the data's features in a classifier's "
         "penultimate layer (image models; a classifier trained here on the same data, not FID): "
         "feature_frechet",
         {{"classifier", ParamType::string, nullptr, "TorchScript classifier with a 'features' method"},
          {"data", ParamType::json, json{{"name", "fashion_mnist"}, {"split", "test"}},
           "the data set compared against ({\"name\": ...})"},
          {"data_samples", ParamType::integer, 10000, "data rows embedded (the first ones of a file)"},
          {"clip", ParamType::boolean, true, "clip the samples to [-1, 1] before embedding them"},
          {"device", ParamType::string, "cpu", "where the classifier runs: cpu, cuda or cuda:N"},
          {"max_batch", ParamType::integer, 500, "rows per call of the classifier"},
          {"seed", ParamType::integer, nullptr, "seed of generated data (default: problem.seed)"}},
         [](const Params& p, const BuildContext&) -> std::unique_ptr<SweepMetric> {
           return std::make_unique<FeatureFrechetMetric>(p);
         }});
}

}  // namespace

Registry<SweepMetric>& metric_registry() {
  static Registry<SweepMetric> registry = [] {
    Registry<SweepMetric> r("metric");
    register_metrics(r);
    return r;
  }();
  return registry;
}

// ---------------------------------------------------------------------------
// The default sweep.

json default_sweep_config() {
  // configs/sweeps/default.json, embedded at build time (CMakeLists.txt).
  return json::parse(
#include "default_sweep.inc"
  );
}

// ---------------------------------------------------------------------------
// Parsing.

namespace {

struct GridEntry {
  json object;  // as given (an object)
  std::string path;
  bool has_steps = false;
  std::string label;
};

// The path of an error inside an expanded list: "sweep.solvers[2].eta" -> "...eta[1]".
ConfigError at_alternative(const ConfigError& e, const std::map<std::string, std::size_t>& chosen,
                           const std::string& path) {
  for (const auto& [key, index] : chosen)
    if (e.path() == join_path(path, key)) return ConfigError(join_path(e.path(), index), e.message());
  return e;
}

// True when `v`, given for a parameter of `type`, is a list of alternatives.
bool is_alternatives(const json& v, ParamType type) {
  if (!v.is_array()) return false;
  switch (type) {
    case ParamType::numbers: return !v.empty() && v[0].is_array();
    case ParamType::matrix: return !v.empty() && v[0].is_array() && !v[0].empty() && v[0][0].is_array();
    case ParamType::json: return false;
    default: return true;
  }
}

GridEntry parse_grid_entry(const json& v, const std::string& path, bool steps_allowed = false) {
  GridEntry g;
  g.path = path;
  g.object = v.is_string() ? json{{"name", v}} : v;
  if (!g.object.is_object()) throw ConfigError(path, "expected a grid object {\"name\": ...}, got " + json_type_name(v));
  const std::string name = registry_name_of(g.object, path);
  grid_registry().get(name, join_path(path, "name"));
  g.has_steps = find_spec(grid_registry(), name, "steps") != nullptr;
  if (g.has_steps && g.object.contains("steps") && !steps_allowed)
    throw ConfigError(join_path(path, "steps"), "step counts come from sweep.steps (or the solver entry's steps)");
  g.label = label_of(name, g.object);
  return g;
}

std::vector<GridEntry> parse_grid_list(const json& v, const std::string& path) {
  std::vector<GridEntry> out;
  for (std::size_t i = 0; i < non_empty_array(v, path).size(); ++i) out.push_back(parse_grid_entry(v[i], join_path(path, i)));
  return out;
}

struct Parser {
  explicit Parser(Sweep& s) : sweep(s) {}
  Sweep& sweep;
  BuildContext context;
  json metrics_normalized;
  std::vector<GridEntry> grids;
  std::vector<long> steps;
  std::vector<double> tolerances;
  std::vector<std::uint64_t> seeds;
  // (grid path, steps) -> times
  std::map<std::pair<std::string, long>, std::vector<double>> times_cache;
  // distinct (t_start, t_end) spans of the cells, with the first cell's path for errors
  std::map<std::pair<double, double>, std::string> spans;

  std::unique_ptr<NoiseSource> probe_noise(std::uint64_t first_sample = 0) const {
    if (sweep.brownian_tree)
      return std::make_unique<BrownianTreeNoise>(0, 0.0, sweep.schedule->t_max(), sweep.tree_depth, first_sample);
    return std::make_unique<PhiloxNoise>(0, first_sample);
  }

  void parse_problem(const json& section) {
    const std::string path = join_path(kRoot, "problem");
    if (!section.is_object()) throw ConfigError(path, "expected an object, got " + json_type_name(section));
    check_keys(section, {"schedule", "model", "batch", "seed", "init", "noise"}, path);
    ProblemRules rules;
    rules.keys = {"batch", "seed", "init", "noise"};
    rules.default_batch = sweep.batch;
    rules.noise_sources = {"philox", "brownian_tree"};
    const ProblemSpec spec = diffsde::parse_problem(section, path, rules, sweep.base_dir);
    const Problem problem = build_problem(spec);
    sweep.schedule = problem.schedule;
    sweep.model = problem.model;
    context = problem.context;
    sweep.batch = spec.batch;
    sweep.seed = spec.seed;
    if (!spec.init.empty()) sweep.init = problem_initial_state(spec, sweep.model->dim(), spec.seed);
    sweep.brownian_tree = problem_noise_name(spec, "brownian_tree") == "brownian_tree";
    sweep.tree_depth = problem_tree_depth(spec);
  }

  std::vector<double> times_of(const GridEntry& grid, long steps_value, const std::string& steps_path) {
    const auto key = std::make_pair(grid.path, grid.has_steps ? steps_value : 0L);
    auto it = times_cache.find(key);
    if (it != times_cache.end()) return it->second;
    json object = grid.object;
    if (grid.has_steps) object["steps"] = steps_value;
    std::vector<double> times;
    try {
      times = grid_registry().create(object, grid.path, context)->times(*sweep.schedule);
    } catch (const ConfigError& e) {
      const ConfigError full = e.path().rfind(grid.path, 0) == 0 ? e : e.prefixed(grid.path);
      if (grid.has_steps && full.path() == join_path(grid.path, "steps"))
        throw ConfigError(steps_path, full.message() + " (on " + grid.path + ")");
      throw full;
    }
    times_cache[key] = times;
    return times;
  }

  json normalized_grid(const GridEntry& grid, long steps_value) const {
    json object = grid.object;
    if (grid.has_steps) object["steps"] = steps_value;
    return normalize(grid_registry(), object, grid.path);
  }

  void parse_reference(const json& v) {
    const std::string path = join_path(kRoot, "reference");
    if (!v.is_object()) throw ConfigError(path, "expected an object, got " + json_type_name(v));
    if (v.contains("solver")) {
      check_keys(v, {"solver", "grid"}, path);
      add_reference(v, path, std::nullopt);
      return;
    }
    check_keys(v, {"ode", "sde"}, path);
    if (v.empty()) throw ConfigError(path, "needs \"solver\" and \"grid\", or \"ode\" and/or \"sde\" references");
    if (v.contains("ode")) add_reference(v.at("ode"), join_path(path, "ode"), ReferenceKind::ode);
    if (v.contains("sde")) add_reference(v.at("sde"), join_path(path, "sde"), ReferenceKind::sde);
  }

  void add_reference(const json& v, const std::string& path, std::optional<ReferenceKind> slot) {
    if (!v.is_object()) throw ConfigError(path, "expected an object {\"solver\": ..., \"grid\": ...}, got " + json_type_name(v));
    check_keys(v, {"solver", "grid"}, path);
    for (const char* key : {"solver", "grid"})
      if (!v.contains(key)) throw ConfigError(join_path(path, key), "is required");
    SweepReference ref;
    ref.path = path;
    const std::string spath = join_path(path, "solver");
    ref.solver = v.at("solver").is_string() ? json{{"name", v.at("solver")}} : v.at("solver");
    ref.solver_normalized = normalize(solver_registry(), v.at("solver"), spath);
    std::unique_ptr<Solver> solver;
    try {
      solver = solver_registry().create(v.at("solver"), spath, context);
    } catch (const ConfigError&) {
      throw;
    } catch (const Error& e) {
      throw ConfigError(spath, e.what());
    }
    const ReferenceKind kind = solver->traits().stochastic ? ReferenceKind::sde : ReferenceKind::ode;
    if (slot && *slot != kind)
      throw ConfigError(spath, "the " + to_string(*slot) + " reference must be " +
                                   (*slot == ReferenceKind::ode ? "deterministic" : "stochastic") + "; '" +
                                   ref.solver["name"].get<std::string>() + "' with these parameters is not");
    if (kind == ReferenceKind::sde && !sweep.brownian_tree)
      throw ConfigError(spath, "a stochastic reference needs problem.noise = brownian_tree, so that it sees the "
                               "cells' Brownian path");
    const std::string gpath = join_path(path, "grid");
    const GridEntry grid = parse_grid_entry(v.at("grid"), gpath, true);
    const std::string gname = grid.object["name"].get<std::string>();
    if (find_spec(grid_registry(), gname, "t_start") == nullptr || find_spec(grid_registry(), gname, "t_end") == nullptr)
      throw ConfigError(join_path(gpath, "name"), "must be a rule grid with t_start and t_end (they follow each cell's grid)");
    for (const char* key : {"t_start", "t_end"})
      if (grid.object.contains(key))
        throw ConfigError(join_path(gpath, key), "is set from each cell's grid; leave it out");
    ref.grid = grid.object;
    (kind == ReferenceKind::ode ? sweep.ode_reference : sweep.sde_reference) = ref;
  }

  void parse_metrics(const json* v) {
    json list = json::array();
    if (v != nullptr) {
      list = non_empty_array(*v, join_path(kRoot, "metrics"));
    } else {
      if (sweep.ode_reference || sweep.sde_reference) list.push_back("path_error");
      if (dynamic_cast<const AnalyticModel*>(sweep.model.get()) != nullptr)
        for (const char* name : {"log_likelihood", "frechet", "sliced_w2", "mmd"}) list.push_back(name);
      if (list.empty())
        throw ConfigError(join_path(kRoot, "metrics"), "is required: without a reference or an analytic model there "
                                                       "is no default metric");
    }
    json normalized = json::array();
    for (std::size_t i = 0; i < list.size(); ++i) {
      const std::string path = join_path(join_path(kRoot, "metrics"), i);
      json metric_json = normalize(metric_registry(), list[i], path);
      const std::string name = metric_json["name"].get<std::string>();
      if (std::find(sweep.metric_names.begin(), sweep.metric_names.end(), name) != sweep.metric_names.end())
        throw ConfigError(path, "metric '" + name + "' is listed twice");
      std::shared_ptr<SweepMetric> metric = metric_registry().create(list[i], path, context);
      MetricSetup setup{sweep.model, sweep.batch, sweep.seed, path, sweep.base_dir,
                        sweep.ode_reference.has_value() || sweep.sde_reference.has_value()};
      metric->prepare(setup);
      sweep.metric_names.push_back(name);
      sweep.metrics.push_back(std::move(metric));
      normalized.push_back(metric_json);
    }
    metrics_normalized = normalized;
  }

  // Creates a solver from `object`, turning construction errors into ConfigErrors at
  // `path` (list alternatives named by index).
  std::unique_ptr<Solver> make_solver(const json& object, const std::string& path,
                                      const std::map<std::string, std::size_t>& chosen) const {
    try {
      return solver_registry().create(object, path, context);
    } catch (const ConfigError& e) {
      throw at_alternative(e, chosen, path);
    } catch (const Error& e) {
      std::string which;
      for (const auto& [key, index] : chosen) which += (which.empty() ? " (with " : ", ") + join_path(key, index);
      throw ConfigError(path, e.what() + (which.empty() ? std::string() : which + ")"));
    }
  }

  void check_init(Solver& solver, const std::vector<double>& times, const std::string& solver_path,
                  const std::string& where) const {
    auto noise = probe_noise();
    SolverContext ctx(*sweep.schedule, *sweep.model, noise.get());
    const State x = State::Zero(1, sweep.model->dim());
    try {
      check_solver_grid(solver.traits(), *sweep.schedule, times);
      solver.init(ctx, x, times);
    } catch (const Error& e) {
      throw ConfigError(solver_path, "on " + where + ": " + e.what());
    }
  }

  void parse_solvers(const json& list) {
    const std::string lpath = join_path(kRoot, "solvers");
    std::map<std::string, std::string> keys;  // cell key -> path of its solver entry
    for (std::size_t i = 0; i < non_empty_array(list, lpath).size(); ++i) {
      const std::string path = join_path(lpath, i);
      const json entry = list[i].is_string() ? json{{"name", list[i]}} : list[i];
      if (!entry.is_object()) throw ConfigError(path, "expected a solver object {\"name\": ...}, got " + json_type_name(list[i]));
      const std::string name = registry_name_of(entry, path);
      const auto& reg = solver_registry().get(name, join_path(path, "name"));

      // Per-entry overrides of the sweep's lists.
      std::vector<GridEntry> entry_grids = grids;
      std::vector<long> entry_steps = steps;
      std::vector<double> entry_tols = tolerances;
      std::string steps_path = join_path(kRoot, "steps");
      if (entry.contains("grids")) entry_grids = parse_grid_list(entry.at("grids"), join_path(path, "grids"));
      if (entry.contains("steps")) {
        steps_path = join_path(path, "steps");
        entry_steps = step_list(entry.at("steps"), steps_path);
      }
      if (entry.contains("tolerances")) entry_tols = tolerance_list(entry.at("tolerances"), join_path(path, "tolerances"));
      if (entry_grids.empty()) throw ConfigError(join_path(kRoot, "grids"), "is required (a list of grids)");

      // The cross product of list-valued parameters (in key order).
      json fixed = json::object();
      std::vector<std::pair<std::string, json>> lists;
      for (const auto& item : entry.items()) {
        const std::string& key = item.key();
        if (key == "name" || key == "grids" || key == "steps" || key == "tolerances") continue;
        const ParamSpec* spec = nullptr;
        for (const auto& s : reg.params)
          if (s.name == key) spec = &s;
        if (spec != nullptr && is_alternatives(item.value(), spec->type)) {
          if (item.value().empty()) throw ConfigError(join_path(path, key), "an empty list of values");
          lists.emplace_back(key, item.value());
        } else {
          fixed[key] = item.value();  // unknown keys are reported by Params below
        }
      }
      std::size_t combinations = 1;
      for (const auto& l : lists) combinations *= l.second.size();
      for (std::size_t c = 0; c < combinations; ++c) {
        // Combination c, the last key varying fastest.
        json given = fixed;
        std::map<std::string, std::size_t> chosen;
        std::size_t rest = c;
        for (std::size_t k = lists.size(); k-- > 0;) {
          const std::size_t index = rest % lists[k].second.size();
          rest /= lists[k].second.size();
          given[lists[k].first] = lists[k].second[index];
          chosen[lists[k].first] = index;
        }
        expand_one(i, name, given, chosen, path, entry_grids, entry_steps, steps_path, entry_tols, keys);
      }
    }
  }

  void expand_one(std::size_t entry_index, const std::string& name, const json& given, const std::map<std::string, std::size_t>& chosen,
                  const std::string& path, const std::vector<GridEntry>& entry_grids,
                  const std::vector<long>& entry_steps, const std::string& steps_path,
                  const std::vector<double>& entry_tols, std::map<std::string, std::string>& keys) {
    json object = given;
    object["name"] = name;
    std::unique_ptr<Solver> solver = make_solver(object, path, chosen);
    const SolverTraits traits = solver->traits();
    const std::string label = label_of(name, given);

    // Variants by tolerance (adaptive solvers with rtol and atol, neither given).
    struct Variant {
      json object;
      std::optional<double> tolerance;
      std::unique_ptr<Solver> solver;
    };
    std::vector<Variant> variants;
    const bool tolerance_params = find_spec(solver_registry(), name, "rtol") != nullptr &&
                                  find_spec(solver_registry(), name, "atol") != nullptr;
    if (traits.adaptive && tolerance_params && !given.contains("rtol") && !given.contains("atol") &&
        !entry_tols.empty()) {
      for (double tol : entry_tols) {
        json o = object;
        o["rtol"] = tol;
        o["atol"] = tol;
        variants.push_back({o, tol, make_solver(o, path, chosen)});
      }
    } else {
      variants.push_back({object, std::nullopt, std::move(solver)});
    }
    if (!traits.adaptive && entry_steps.empty())
      throw ConfigError(path, "needs step counts: give sweep.steps or \"steps\" in this entry");

    for (auto& variant : variants) {
      const json normalized = normalize(solver_registry(), variant.object, path);
      for (std::size_t g = 0; g < entry_grids.size(); ++g) {
        const GridEntry& grid = entry_grids[g];
        std::vector<long> step_values = traits.adaptive ? std::vector<long>{1} : entry_steps;
        if (!grid.has_steps) step_values = {0};
        for (std::size_t s = 0; s < step_values.size(); ++s) {
          const std::vector<double> times = times_of(grid, step_values[s], join_path(steps_path, s));
          const long n_steps = static_cast<long>(times.size()) - 1;
          check_init(*variant.solver, times, path,
                     grid.path + " with " + std::to_string(n_steps) + " steps");
          spans.emplace(std::make_pair(times.front(), times.back()), grid.path);
          for (std::uint64_t seed : seeds) {
            SweepCell cell;
            cell.index = sweep.cells.size();
            cell.solver_entry = entry_index;
            cell.grid_entry = g;
            cell.solver = normalized;
            cell.solver_config = variant.object;
            cell.label = label;
            cell.grid = normalized_grid(grid, step_values[s]);
            cell.grid_label = grid.label;
            cell.steps = n_steps;
            cell.tolerance = variant.tolerance;
            cell.seed = seed;
            cell.stochastic = traits.stochastic;
            cell.adaptive = traits.adaptive;
            cell.order = traits.order;
            cell.strong_order = traits.strong_order;
            cell.times = times;
            cell.cost = estimated_cost(traits, n_steps, normalized);
            json identity = {{"solver", cell.solver}, {"grid", cell.grid}, {"seed", seed}};
            identity["tolerance"] = cell.tolerance ? json(*cell.tolerance) : json(nullptr);
            cell.key = hash_hex(identity.dump());
            auto [it, fresh] = keys.emplace(cell.key, path);
            if (!fresh)
              throw ConfigError(path, "repeats a cell of " + it->second + " (" + label + " on " + grid.path + ", " +
                                          std::to_string(n_steps) + " steps, seed " + std::to_string(seed) + ")");
            sweep.cells.push_back(std::move(cell));
          }
        }
      }
    }
  }

  // Every reference must run on every span of the cells of its kind.
  void check_references() {
    for (const auto kind : {ReferenceKind::ode, ReferenceKind::sde}) {
      const auto& ref = kind == ReferenceKind::ode ? sweep.ode_reference : sweep.sde_reference;
      if (!ref) continue;
      std::set<std::pair<double, double>> used;
      for (const auto& cell : sweep.cells)
        if (cell.stochastic == (kind == ReferenceKind::sde)) used.emplace(cell.times.front(), cell.times.back());
      for (const auto& span : used) {
        json grid = ref->grid;
        grid["t_start"] = span.first;
        grid["t_end"] = span.second;
        std::vector<double> times;
        const std::string where = "the span t = " + format_double(span.first) + " to " + format_double(span.second) +
                                  " of " + spans.at(span);
        try {
          times = grid_registry().create(grid, join_path(ref->path, "grid"), context)->times(*sweep.schedule);
        } catch (const ConfigError& e) {
          throw ConfigError(e.path(), e.message() + " (on " + where + ")");
        }
        auto solver = solver_registry().create(ref->solver, join_path(ref->path, "solver"), context);
        check_init(*solver, times, join_path(ref->path, "solver"), where);
        if (kind == ReferenceKind::sde) {
          // One sample through the whole reference: it must take all its noise from the path.
          auto noise = probe_noise();
          State x = State::Zero(1, sweep.model->dim());
          Summary summary;
          try {
            summary = integrate(*solver, *sweep.schedule, *sweep.model, times, x, noise.get());
          } catch (const Error& e) {
            throw ConfigError(join_path(ref->path, "solver"), "on " + where + ": " + e.what());
          }
          if (summary.draws > 0)
            throw ConfigError(join_path(ref->path, "solver"),
                              "the stochastic reference must take all its noise from the Brownian path, but '" +
                                  ref->solver["name"].get<std::string>() + "' draws independent normals");
        }
      }
    }
  }
};

}  // namespace

Sweep parse_sweep(const json& config, const std::string& base_dir) {
  Sweep sweep;
  sweep.config = config;
  sweep.base_dir = base_dir;
  if (!config.is_object()) throw ConfigError(kRoot, "the sweep must be a JSON object, got " + json_type_name(config));
  check_keys(config, {"description", "problem", "reference", "solvers", "grids", "steps", "tolerances", "seeds", "metrics"},
             kRoot);
  if (config.contains("description") && !config.at("description").is_string())
    throw ConfigError(join_path(kRoot, "description"), "expected a string");
  for (const char* key : {"problem", "solvers"})
    if (!config.contains(key)) throw ConfigError(join_path(kRoot, key), "is required");

  Parser parser(sweep);
  parser.parse_problem(config.at("problem"));
  if (config.contains("grids")) parser.grids = parse_grid_list(config.at("grids"), join_path(kRoot, "grids"));
  if (config.contains("steps")) parser.steps = step_list(config.at("steps"), join_path(kRoot, "steps"));
  if (config.contains("tolerances"))
    parser.tolerances = tolerance_list(config.at("tolerances"), join_path(kRoot, "tolerances"));
  if (config.contains("seeds")) {
    const std::string path = join_path(kRoot, "seeds");
    const json& v = non_empty_array(config.at("seeds"), path);
    for (std::size_t i = 0; i < v.size(); ++i) {
      const auto s = non_negative_integer(v[i], join_path(path, i));
      if (std::find(parser.seeds.begin(), parser.seeds.end(), s) != parser.seeds.end())
        throw ConfigError(join_path(path, i), "repeats a value");
      parser.seeds.push_back(s);
    }
  } else {
    parser.seeds = {0};
  }
  if (config.contains("reference")) parser.parse_reference(config.at("reference"));
  parser.parse_metrics(config.contains("metrics") ? &config.at("metrics") : nullptr);
  parser.parse_solvers(config.at("solvers"));
  parser.check_references();

  // The sweep's identity: everything a cell's result depends on besides the cell itself.
  const json& problem = config.at("problem");
  json identity = json::object();
  identity["schedule"] = normalize(schedule_registry(), problem.at("schedule"), "sweep.problem.schedule");
  identity["model"] = normalize(model_registry(), problem.at("model"), "sweep.problem.model");
  identity["batch"] = sweep.batch;
  identity["seed"] = sweep.seed;
  identity["init"] = nullptr;
  if (sweep.init) {
    const State& x = *sweep.init;
    identity["init"] = hash_hex(std::string(reinterpret_cast<const char*>(x.data()),
                                            static_cast<std::size_t>(x.size()) * sizeof(double)));
  }
  identity["noise"] = sweep.brownian_tree ? json{{"name", "brownian_tree"}, {"depth", sweep.tree_depth}}
                                          : json{{"name", "philox"}};
  for (const auto kind : {ReferenceKind::ode, ReferenceKind::sde}) {
    const auto& ref = kind == ReferenceKind::ode ? sweep.ode_reference : sweep.sde_reference;
    identity["reference"][to_string(kind)] =
        ref ? json{{"solver", ref->solver_normalized}, {"grid", normalize(grid_registry(), ref->grid, ref->path + ".grid")}}
            : json(nullptr);
  }
  identity["metrics"] = parser.metrics_normalized;
  sweep.hash = hash_hex(identity.dump());
  return sweep;
}

// ---------------------------------------------------------------------------
// Running cells and references.

State sweep_initial_state(const Sweep& sweep, std::uint64_t seed) {
  if (sweep.init) return *sweep.init;
  return initial_noise(seed, 0, sweep.batch, sweep.model->dim());
}

namespace {

std::unique_ptr<NoiseSource> make_noise(const Sweep& sweep, std::uint64_t seed, std::uint64_t first_sample) {
  if (sweep.brownian_tree)
    return std::make_unique<BrownianTreeNoise>(seed, 0.0, sweep.schedule->t_max(), sweep.tree_depth, first_sample);
  return std::make_unique<PhiloxNoise>(seed, first_sample);
}

}  // namespace

State run_reference(const Sweep& sweep, ReferenceKind kind, std::uint64_t seed, double t_start, double t_end,
                    int threads, int rank, int ranks, const Broadcast& broadcast) {
  if (ranks > 1 && !broadcast) throw Error("run_reference: several ranks need a broadcast");
  const auto& ref = kind == ReferenceKind::ode ? sweep.ode_reference : sweep.sde_reference;
  if (!ref) throw Error("run_reference: the sweep has no " + to_string(kind) + " reference");
  const BuildContext context{sweep.schedule, sweep.base_dir};
  json grid = ref->grid;
  grid["t_start"] = t_start;
  grid["t_end"] = t_end;
  const std::vector<double> times =
      grid_registry().create(grid, join_path(ref->path, "grid"), context)->times(*sweep.schedule);
  State x = sweep_initial_state(sweep, seed);
  const long chunks = (sweep.batch + kReferenceChunk - 1) / kReferenceChunk;
  std::vector<long> my_chunks;
  for (long c = 0; c < chunks; ++c)
    if (c % ranks == rank) my_chunks.push_back(c);
  parallel_for(my_chunks.size(), threads, [&](std::size_t j) {
    const long r0 = my_chunks[j] * kReferenceChunk;
    const long rows = std::min(kReferenceChunk, sweep.batch - r0);
    auto solver = solver_registry().create(ref->solver, join_path(ref->path, "solver"), context);
    auto noise = make_noise(sweep, seed, static_cast<std::uint64_t>(r0));
    State xc = x.middleRows(r0, rows);
    const Summary summary = integrate(*solver, *sweep.schedule, *sweep.model, times, xc, noise.get());
    if (kind == ReferenceKind::sde && summary.draws > 0)
      throw Error(ref->path + ": the stochastic reference drew independent normals instead of using the path");
    x.middleRows(r0, rows) = xc;
  });
  if (ranks > 1) {
    // Rows are contiguous (row-major), so a chunk is one block of doubles.
    for (long c = 0; c < chunks; ++c) {
      const long r0 = c * kReferenceChunk;
      const long rows = std::min(kReferenceChunk, sweep.batch - r0);
      broadcast(x.data() + r0 * x.cols(), static_cast<std::size_t>(rows * x.cols()), static_cast<int>(c % ranks));
    }
  }
  return x;
}

ordered_json run_cell(const Sweep& sweep, const SweepCell& cell, const State* reference) {
  const BuildContext context{sweep.schedule, sweep.base_dir};
  ordered_json line;
  line["key"] = cell.key;
  line["sweep"] = sweep.hash;
  line["cell"] = cell.index;
  line["label"] = cell.label;
  line["solver"] = cell.solver;
  line["grid_label"] = cell.grid_label;
  line["grid"] = cell.grid;
  line["steps"] = cell.steps;
  line["tolerance"] = cell.tolerance ? ordered_json(*cell.tolerance) : ordered_json(nullptr);
  line["seed"] = cell.seed;
  line["stochastic"] = cell.stochastic;
  line["adaptive"] = cell.adaptive;
  line["order"] = cell.order;
  line["strong_order"] = std::isfinite(cell.strong_order) ? ordered_json(cell.strong_order) : ordered_json(nullptr);

  State x = sweep_initial_state(sweep, cell.seed);
  auto solver = solver_registry().create(cell.solver_config, "solver", context);
  auto noise = make_noise(sweep, cell.seed, 0);
  Summary summary;
  std::string error;
  try {
    summary = integrate(*solver, *sweep.schedule, *sweep.model, cell.times, x, noise.get());
  } catch (const Error& e) {
    error = e.what();
  }
  line["status"] = error.empty() ? "ok" : "failed";
  if (!error.empty()) {
    line["error"] = error;
    return line;
  }
  line["nfe"] = summary.nfe;
  // Model evaluations per sample: NFE itself, except for solvers that step each sample on
  // its own, whose NFE counts every sample's evaluations.
  line["evals_per_sample"] = solver->traits().per_sample_steps
                                 ? static_cast<double>(summary.nfe) / static_cast<double>(sweep.batch)
                                 : static_cast<double>(summary.nfe);
  line["accepted"] = summary.accepted;
  line["rejected"] = summary.rejected;
  line["draws"] = summary.draws;
  line["seconds"] = summary.seconds;
  // A stochastic cell is on the reference's Brownian path when all its noise came from the
  // tree (no independent normal draws): only then is its strong error defined.
  const bool on_path = !cell.stochastic || (sweep.brownian_tree && summary.draws == 0);
  if (cell.stochastic) line["on_path"] = on_path;
  const State* used_reference = on_path ? reference : nullptr;
  line["reference"] = used_reference == nullptr ? ordered_json(nullptr)
                                                : ordered_json(cell.stochastic ? "sde" : "ode");
  json values = json::object();
  const MetricInput input{*sweep.model, x, used_reference};
  for (const auto& metric : sweep.metrics) metric->compute(input, values);
  ordered_json metrics = ordered_json::object();
  for (const auto& item : values.items()) metrics[item.key()] = item.value();
  line["metrics"] = metrics;
  return line;
}

// ---------------------------------------------------------------------------
// Results files.

ResultsFile read_results(const std::string& path) {
  const std::string text = read_file(path);
  ResultsFile out;
  std::size_t start = 0, line_number = 0;
  while (start < text.size()) {
    const std::size_t end = text.find('\n', start);
    if (end == std::string::npos) {
      out.torn_bytes = text.size() - start;
      break;
    }
    ++line_number;
    const std::string line = text.substr(start, end - start);
    if (line.find_first_not_of(" \t\r") != std::string::npos) {
      json j;
      try {
        j = json::parse(line);
      } catch (const json::parse_error&) {
        throw IoError(path, "line " + std::to_string(line_number) + " is not JSON (a results file has one JSON object per line)");
      }
      if (!j.is_object() || !j.contains("key") || !j["key"].is_string() || !j.contains("sweep") ||
          !j.contains("cell"))
        throw IoError(path, "line " + std::to_string(line_number) + " is not a sweep results line (no key, sweep or cell)");
      out.lines.push_back(std::move(j));
    }
    start = end + 1;
    out.complete_bytes = start;
  }
  return out;
}

std::vector<json> merge_results(const std::vector<std::string>& paths, std::ostream* log) {
  if (paths.empty()) throw Error("merge: no input files");
  std::vector<json> merged;
  std::map<std::string, std::size_t> seen;
  std::string sweep_hash, first_file;
  long conflicts = 0;
  for (const auto& path : paths) {
    const ResultsFile file = read_results(path);
    if (file.torn_bytes > 0 && log != nullptr)
      *log << path << ": ignored a torn last line (" << file.torn_bytes << " bytes)\n";
    for (std::size_t i = 0; i < file.lines.size(); ++i) {
      const json& line = file.lines[i];
      const std::string hash = line["sweep"].is_string() ? line["sweep"].get<std::string>() : "";
      if (sweep_hash.empty()) {
        sweep_hash = hash;
        first_file = path;
      } else if (hash != sweep_hash) {
        throw IoError(path, "line " + std::to_string(i + 1) + " belongs to another sweep (sweep " + hash + ", but " +
                                first_file + " has sweep " + sweep_hash + ")");
      }
      const std::string key = line["key"].get<std::string>();
      auto it = seen.find(key);
      if (it == seen.end()) {
        seen.emplace(key, merged.size());
        merged.push_back(line);
      } else {
        json a = merged[it->second], b = line;
        a.erase("seconds");
        b.erase("seconds");
        if (a != b) ++conflicts;
      }
    }
  }
  if (conflicts > 0 && log != nullptr)
    *log << "merge: " << conflicts << " cell(s) appear more than once with different results; kept the first\n";
  std::stable_sort(merged.begin(), merged.end(), [](const json& a, const json& b) {
    return a["cell"].get<long>() < b["cell"].get<long>();
  });
  return merged;
}

// ---------------------------------------------------------------------------
// The run loop.

namespace {

std::string rank_file(const std::string& out, int rank, int ranks) {
  return out + ".rank-" + std::to_string(rank) + "-of-" + std::to_string(ranks);
}

// Rank files left by an interrupted MPI run (any rank count).
std::vector<std::string> leftover_rank_files(const std::string& out) {
  namespace fs = std::filesystem;
  std::vector<std::string> found;
  const fs::path p(out);
  const fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  const std::string prefix = p.filename().string() + ".rank-";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) == 0 && name.find("-of-") != std::string::npos)
      found.push_back((p.parent_path() / name).string());
  }
  std::sort(found.begin(), found.end());
  return found;
}

// Appends whole lines to a file: one write per line, then the OS has it (a kill -9
// loses at most a line being written, which --resume ignores).
class LineAppender {
 public:
  explicit LineAppender(std::string path) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw IoError(path_, std::string("cannot open for appending: ") + std::strerror(errno));
  }
  ~LineAppender() {
    if (fd_ >= 0) ::close(fd_);
  }
  LineAppender(const LineAppender&) = delete;
  LineAppender& operator=(const LineAppender&) = delete;

  void append(const std::string& line) {
    std::lock_guard<std::mutex> lock(mutex_);
    const std::string bytes = line + "\n";
    std::size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw IoError(path_, std::string("write failed: ") + std::strerror(errno));
      }
      done += static_cast<std::size_t>(n);
    }
  }

 private:
  std::string path_;
  int fd_ = -1;
  std::mutex mutex_;
};

void truncate_file(const std::string& path, std::size_t size) {
  if (::truncate(path.c_str(), static_cast<off_t>(size)) != 0)
    throw IoError(path, std::string("cannot truncate: ") + std::strerror(errno));
}

void check_lines(const ResultsFile& file, const Sweep& sweep, const std::string& path) {
  for (std::size_t i = 0; i < file.lines.size(); ++i) {
    const json& line = file.lines[i];
    if (line["sweep"] != sweep.hash)
      throw IoError(path, "line " + std::to_string(i + 1) + " belongs to another sweep (its problem, reference or "
                          "metrics differ: sweep " + line["sweep"].dump() + ", this one \"" + sweep.hash +
                          "\"); write to another file, or pass --force to start over");
  }
}

// Rank 0's work on the file before any cell runs.
void prepare_output(const Sweep& sweep, const std::string& out, const SweepRunOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const bool exists = fs::exists(out, ec);
  const auto leftovers = leftover_rank_files(out);
  if (!options.resume) {
    const bool has_cells = (exists && fs::file_size(out, ec) > 0) || !leftovers.empty();
    if (has_cells && !options.force)
      throw IoError(out, "already holds results; pass --resume to run only the missing cells, or --force to start over");
    for (const auto& f : leftovers) fs::remove(f, ec);
    write_file_atomic(out, "");
    return;
  }
  std::set<std::string> keys;
  if (exists) {
    const ResultsFile file = read_results(out);
    check_lines(file, sweep, out);
    for (const auto& line : file.lines) keys.insert(line["key"].get<std::string>());
    if (file.torn_bytes > 0) {
      truncate_file(out, file.complete_bytes);
      if (options.log != nullptr)
        *options.log << "resume: ignored a torn last line of " << out << " (" << file.torn_bytes << " bytes)\n";
    }
  } else {
    write_file_atomic(out, "");
  }
  if (leftovers.empty()) return;
  LineAppender appender(out);
  for (const auto& f : leftovers) {
    const ResultsFile file = read_results(f);
    check_lines(file, sweep, f);
    for (const auto& line : file.lines)
      if (keys.insert(line["key"].get<std::string>()).second) appender.append(line.dump());
    fs::remove(f, ec);
  }
}

// "[#####.....] 37/96 cells, 0:12 elapsed, ETA 0:20" on stderr, redrawn in place. The bar
// and the ETA go by the cells' estimated cost (SweepCell::cost, at least 1 per cell), not
// their count, since the costliest cells run first.
class ProgressBar {
 public:
  ProgressBar(bool enabled, long total, double total_cost)
      : enabled_(enabled && total > 0), total_(total), total_cost_(total_cost), start_(Clock::now()) {
    draw();
  }
  void tick(double cost) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++done_;
    done_cost_ += cost;
    draw();
    if (enabled_ && done_ == total_) std::cerr << "\n";
  }

 private:
  using Clock = std::chrono::steady_clock;
  static std::string clock_text(double seconds) {
    const long s = static_cast<long>(seconds + 0.5);
    std::ostringstream os;
    os << s / 60 << ":" << std::setw(2) << std::setfill('0') << s % 60;
    return os.str();
  }
  void draw() const {
    if (!enabled_) return;
    const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
    const int width = 30;
    const double fraction = std::min(done_cost_ / total_cost_, 1.0);
    const int filled = static_cast<int>(width * fraction);
    std::ostringstream os;
    os << "\r[" << std::string(static_cast<std::size_t>(filled), '#')
       << std::string(static_cast<std::size_t>(width - filled), '.') << "] " << done_ << "/" << total_
       << " cells, " << clock_text(elapsed) << " elapsed";
    if (done_ > 0 && done_ < total_) os << ", ETA " << clock_text(elapsed / fraction * (1.0 - fraction));
    os << "   ";
    std::cerr << os.str() << std::flush;
  }
  bool enabled_;
  long total_, done_ = 0;
  double total_cost_, done_cost_ = 0;
  Clock::time_point start_;
  std::mutex mutex_;
};

}  // namespace

SweepRunSummary run_sweep(const Sweep& sweep, const std::string& out, const SweepRunOptions& options) {
  if (options.threads < 1 || options.threads > 1024) throw Error("run_sweep: threads must be between 1 and 1024");
  if (options.shards < 1 || options.shard < 0 || options.shard >= options.shards)
    throw Error("run_sweep: the shard must be i/n with 0 <= i < n");
  if (options.ranks < 1 || options.rank < 0 || options.rank >= options.ranks)
    throw Error("run_sweep: the rank must lie in [0, ranks)");
  if (options.ranks > 1 && (!options.all_ok || !options.broadcast || !options.next_task))
    throw Error("run_sweep: several ranks need all_ok, broadcast and next_task");
  const auto start = std::chrono::steady_clock::now();
  auto sync = [&](bool ok) { return options.ranks > 1 ? options.all_ok(ok) : ok; };

  // 1. Rank 0 prepares the file (folds in what an interrupted run left).
  std::exception_ptr error;
  if (options.rank == 0) {
    try {
      prepare_output(sweep, out, options);
    } catch (...) {
      error = std::current_exception();
    }
  }
  if (!sync(!error)) {
    if (error) std::rethrow_exception(error);
    throw Error("rank 0 could not prepare " + out);
  }

  // 2. Everyone reads the same file and so finds the same pending cells.
  std::set<std::string> done;
  for (const auto& line : read_results(out).lines) done.insert(line["key"].get<std::string>());
  sync(true);  // nobody appends before everyone has read

  SweepRunSummary summary;
  summary.cells = static_cast<long>(sweep.cells.size());
  std::vector<const SweepCell*> pending;
  for (const auto& cell : sweep.cells) {
    if (cell.index % static_cast<std::size_t>(options.shards) != static_cast<std::size_t>(options.shard)) continue;
    ++summary.in_shard;
    if (done.count(cell.key) != 0) {
      ++summary.already_done;
      continue;
    }
    pending.push_back(&cell);
  }
  // Costliest cells first: the threads (and ranks) then finish together, with the short
  // cells filling in at the end. Results do not depend on the order; ties keep cell order,
  // so every rank sees the same list.
  std::stable_sort(pending.begin(), pending.end(),
                   [](const SweepCell* a, const SweepCell* b) { return a->cost > b->cost; });

  // 3. The references the pending cells need: (kind, seed, t_start, t_end). Every rank
  //    makes the same calls, each integrating its share of the chunks.
  using RefKey = std::tuple<int, std::uint64_t, double, double>;
  std::map<RefKey, State> references;
  bool uses_reference = false;
  for (const auto& m : sweep.metrics) uses_reference = uses_reference || m->uses_reference();
  auto ref_key = [](const SweepCell& c) {
    return RefKey{c.stochastic ? 1 : 0, c.seed, c.times.front(), c.times.back()};
  };
  if (uses_reference) {
    for (const SweepCell* c : pending)
      if (c->stochastic ? sweep.sde_reference.has_value() : sweep.ode_reference.has_value())
        references.emplace(ref_key(*c), State());
    for (auto& [key, state] : references)
      state = run_reference(sweep, std::get<0>(key) == 1 ? ReferenceKind::sde : ReferenceKind::ode, std::get<1>(key),
                            std::get<2>(key), std::get<3>(key), options.threads, options.rank, options.ranks,
                            options.broadcast);
  }

  // 4. The cells, side by side; each line is appended the moment its cell is done.
  const std::string my_file = options.rank == 0 ? out : rank_file(out, options.rank, options.ranks);
  {
    LineAppender appender(my_file);
    double total_cost = 0;
    for (const SweepCell* c : pending) total_cost += c->cost;
    ProgressBar progress(options.progress && options.rank == 0 && options.ranks == 1, static_cast<long>(pending.size()),
                         total_cost);
    std::atomic<long> failed{0}, ran{0};
    // Threads (and, through next_task, ranks) take the next pending cell as they finish one,
    // so long and short cells balance out.
    std::atomic<long> local_next{0};
    std::mutex next_mutex;
    auto next = [&]() -> long {
      if (options.ranks == 1) return local_next.fetch_add(1);
      std::lock_guard<std::mutex> lock(next_mutex);
      return options.next_task();
    };
    drain(options.threads, static_cast<long>(pending.size()), next, [&](long j) {
      const SweepCell& cell = *pending[static_cast<std::size_t>(j)];
      const State* reference = nullptr;
      auto it = references.find(ref_key(cell));
      if (it != references.end()) reference = &it->second;
      const ordered_json line = run_cell(sweep, cell, reference);
      if (line["status"] != "ok") ++failed;
      appender.append(line.dump());
      ++ran;
      progress.tick(cell.cost);
    });
    summary.ran = ran.load();
    summary.failed = failed.load();
  }

  // 5. Rank 0 folds the other ranks' lines into the file.
  if (options.ranks > 1) {
    sync(true);
    if (options.rank == 0) {
      LineAppender appender(out);
      for (int r = 1; r < options.ranks; ++r) {
        const std::string f = rank_file(out, r, options.ranks);
        const ResultsFile file = read_results(f);
        for (const auto& line : file.lines) appender.append(line.dump());
        std::remove(f.c_str());
      }
    }
    sync(true);
  }
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace diffsde
