// Sweeps: the default sweep, parsing and validation (schema, problem, references, metrics),
// the expansion of the solver list into cells, cell keys and the sweep hash (see sweep.hpp
// and docs/sweeps.md).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iomanip>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "diffsde/scores/guidance.hpp"
#include "diffsde/driver.hpp"
#include "diffsde/diffusers_config.hpp"
#include "diffsde/error.hpp"
#include "diffsde/grid.hpp"
#include "diffsde/problem.hpp"
#include "diffsde/solver.hpp"
#include "diffsde/sweep.hpp"
#include "sweep_internal.hpp"

namespace diffsde {

using nlohmann::json;
using sweep_internal::make_noise;

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

// A digest of a conditioning's names, types, shapes and values.
std::string conditioning_hash(const Conditioning& cond) {
  std::string bytes;
  for (const auto& in : cond.inputs()) {
    bytes += in.name() + "|" + in.shape_text() + "|" + std::to_string(in.rows()) + "|";
    if (in.type() == InputType::int64)
      bytes.append(reinterpret_cast<const char*>(in.int_values().data()), in.int_values().size() * sizeof(std::int64_t));
    else
      bytes.append(reinterpret_cast<const char*>(in.float_values().data()), in.float_values().size() * sizeof(double));
  }
  return hash_hex(bytes);
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

}  // namespace

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
  // The network as each (grid, steps) calls it, where that is not the problem's model.
  std::map<std::pair<std::string, long>, std::shared_ptr<const Model>> model_cache;
  ProblemSpec problem_spec;
  Problem problem_built;
  // distinct (t_start, t_end) spans of the cells, with the first cell's path for errors
  std::map<std::pair<double, double>, std::string> spans;

  json conditioning_identity = json::object();

  void parse_problem(const json& section) {
    const std::string path = join_path(kRoot, "problem");
    if (!section.is_object()) throw ConfigError(path, "expected an object, got " + json_type_name(section));
    check_keys(section, {"schedule", "model", "batch", "seed", "init", "noise", "cond", "uncond", "guidance", "thresholding"},
               path);
    ProblemRules rules;
    rules.keys = {"batch", "seed", "init", "noise", "cond", "uncond", "guidance", "thresholding"};
    rules.default_batch = sweep.batch;
    rules.noise_sources = {"philox", "brownian_tree"};
    const ProblemSpec spec = diffsde::parse_problem(section, path, rules, sweep.base_dir);
    const Problem problem = build_problem(spec);
    problem_spec = spec;
    problem_built = problem;
    sweep.schedule = problem.schedule;
    sweep.model = problem.model;
    sweep.base_model = problem.base_model;
    sweep.cond = problem.cond;
    // The conditioning layers are part of the problem's identity (by content, so that a
    // .npy file's values count, not its name); absent, the identity is as before them.
    if (!spec.cond.is_null()) conditioning_identity["cond"] = conditioning_hash(*problem.cond);
    if (const auto* guided = dynamic_cast<const GuidedModel*>(problem.model.get())) {
      conditioning_identity["uncond"] = conditioning_hash(guided->unconditional());
      conditioning_identity["guidance"] = spec.guidance;
    }
    if (!spec.thresholding.is_null()) conditioning_identity["thresholding"] = spec.thresholding;
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
      const auto made = grid_registry().create(object, grid.path, context);
      times = made->times(*sweep.schedule);
      // As `diffsde sample`: the network where the grid calls it (RetimedModel).
      const std::vector<double> model_times = made->model_times(*sweep.schedule);
      if (!model_times.empty()) {
        Problem retimed = problem_built;
        retime_problem(problem_spec, retimed, times, model_times);
        model_cache[key] = retimed.model;
      }
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
      MetricSetup setup{sweep.base_model ? sweep.base_model : sweep.model, sweep.cond, sweep.batch, sweep.seed, path, sweep.base_dir,
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
    auto noise = make_noise(sweep, 0, 0);
    SolverContext ctx(*sweep.schedule, *sweep.model, noise.get());
    const State x = State::Zero(1, sweep.model->dim());
    try {
      check_solver_grid(solver.traits(), *sweep.schedule, times, sweep.model.get());
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
            const auto retimed = model_cache.find(std::make_pair(grid.path, grid.has_steps ? step_values[s] : 0L));
            if (retimed != model_cache.end()) cell.model = retimed->second;
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
          auto noise = make_noise(sweep, 0, 0);
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

Sweep parse_sweep(const json& given, const std::string& base_dir) {
  // diffusers' scheduler_config in the problem gives its schedule and the network's
  // settings; the rest reads the expanded problem.
  json config = given;
  if (config.is_object() && config.contains("problem"))
    config["problem"] = expand_problem_scheduler_config(given.at("problem"), base_dir, join_path(kRoot, "problem"));
  Sweep sweep;
  sweep.config = given;
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
  for (const auto& item : parser.conditioning_identity.items()) identity[item.key()] = item.value();
  sweep.hash = hash_hex(identity.dump());
  return sweep;
}

}  // namespace diffsde
