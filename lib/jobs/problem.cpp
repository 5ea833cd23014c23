// The problem section shared by every command (see problem.hpp).
#include "diffsde/problem.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "diffsde/error.hpp"
#include "diffsde/io.hpp"
#include "diffsde/npy.hpp"
#include "problem_cond.hpp"

namespace diffsde {

using nlohmann::json;

namespace {

const std::vector<ParamSpec>& noise_specs(const std::string& name) {
  static const std::vector<ParamSpec> none;
  static const std::vector<ParamSpec> tree = {
      {"depth", ParamType::integer, 20,
       "levels of Brownian-bridge bisection; W is linear below 2^-depth of the span"}};
  static const std::vector<ParamSpec> replay = {
      {"path", ParamType::string, nullptr, ".npy of standard normals, shape (draws, batch, dim)"}};
  if (name == "brownian_tree") return tree;
  if (name == "replay") return replay;
  return none;
}

// "noise": a source's name, a replay file's path, or {"name": ..., params}; checked and
// returned as an object.
json parse_noise(const json& v, const std::string& path, const ProblemRules& rules) {
  const auto& sources = rules.noise_sources;
  const bool replay = std::find(sources.begin(), sources.end(), "replay") != sources.end();
  json object;
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (std::find(sources.begin(), sources.end(), s) != sources.end() || !replay)
      object = json{{"name", s}};
    else
      object = json{{"name", "replay"}, {"path", s}};
  } else if (v.is_object()) {
    object = v;
  } else {
    throw ConfigError(path, replay ? "expected a .npy path or an object {\"name\": ...}"
                                   : "expected a noise source's name or an object {\"name\": ...}");
  }
  const std::string name = registry_name_of(object, path);
  if (std::find(sources.begin(), sources.end(), name) == sources.end())
    throw ConfigError(join_path(path, "name"), "unknown noise source '" + name + "'; known: " + joined(sources) +
                                                     did_you_mean(name, sources));
  const Params p(object, noise_specs(name), path);  // unknown keys, types
  if (name == "brownian_tree") {
    const long depth = p.integer("depth");
    if (depth < 1 || depth > 30) p.fail("depth", "must be between 1 and 30");
  }
  if (name == "replay") p.string("path");  // required
  return object;
}

}  // namespace

ProblemSpec parse_problem(const json& section, const std::string& path, const ProblemRules& rules,
                          const std::string& base_dir) {
  ProblemSpec out;
  out.path = path;
  out.base_dir = base_dir;
  out.batch = rules.default_batch;
  for (const char* key : {"schedule", "model"}) {
    if (!section.contains(key)) throw ConfigError(join_path(path, key), "is required");
    const json& v = section.at(key);
    if (!v.is_object() && !v.is_string())
      throw ConfigError(join_path(path, key), "expected an object {\"name\": ..., parameters...}");
  }
  out.schedule = section.at("schedule");
  out.model = section.at("model");
  if (takes(rules, "batch") && section.contains("batch")) {
    const auto b = non_negative_integer(section.at("batch"), join_path(path, "batch"));
    if (b < 1 || b > (1ull << 31)) throw ConfigError(join_path(path, "batch"), "must be between 1 and 2^31");
    out.batch = static_cast<long>(b);
  }
  if (takes(rules, "seed") && section.contains("seed"))
    out.seed = non_negative_integer(section.at("seed"), join_path(path, "seed"));
  if (takes(rules, "first_sample") && section.contains("first_sample"))
    out.first_sample = non_negative_integer(section.at("first_sample"), join_path(path, "first_sample"));
  if (takes(rules, "init") && section.contains("init")) {
    const json& v = section.at("init");
    if (!v.is_string()) throw ConfigError(join_path(path, "init"), "expected the path of a .npy file");
    out.init = v.get<std::string>();
  }
  if (takes(rules, "noise") && section.contains("noise"))
    out.noise = parse_noise(section.at("noise"), join_path(path, "noise"), rules);
  parse_conditioning(section, path, rules, out);
  return out;
}

Problem build_problem(const ProblemSpec& spec) {
  Problem problem;
  std::shared_ptr<Schedule> schedule = schedule_registry().create(spec.schedule, join_path(spec.path, "schedule"));
  problem.schedule = schedule;
  problem.context = BuildContext{problem.schedule, spec.base_dir};
  problem.base_model = model_registry().create(spec.model, join_path(spec.path, "model"), problem.context);
  problem.model = problem.base_model;
  condition_problem(spec, problem);
  return problem;
}

ModelRows Problem::rows() const {
  ModelRows r;
  r.inputs = cond && !cond->empty() ? cond.get() : nullptr;
  return r;
}

std::uint64_t available_memory_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  std::uint64_t value = 0;
  std::string unit;
  while (meminfo >> key >> value >> unit)
    if (key == "MemAvailable:") return value * 1024;  // kB
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page) : 0;
}

void check_batch_memory(long batch, int dim, const std::string& path) {
  const double per_array = 8.0 * static_cast<double>(batch) * static_cast<double>(dim);
  const double least = 2 * per_array, estimate = 4 * per_array;
  const auto available = static_cast<double>(available_memory_bytes());
  if (available <= 0 || least <= available) return;
  const auto gib = [](double bytes) {
    std::ostringstream os;
    os.precision(3);
    os << bytes / (1024.0 * 1024.0 * 1024.0) << " GiB";
    return os.str();
  };
  throw ConfigError(path, std::to_string(batch) + " samples of " + std::to_string(dim) +
                              " values need at least " + gib(least) + " (about " + gib(estimate) +
                              " with a solver's work arrays, 8 bytes a value), and " + gib(available) +
                              " of memory is available: split the run (first_sample, or sweep shards) or use "
                              "a smaller batch");
}

State initial_noise(std::uint64_t seed, std::uint64_t first_sample, long batch, int dim) {
  State x(batch, dim);
  for (long r = 0; r < batch; ++r)
    philox_normals(seed, NoiseStream::init, first_sample + static_cast<std::uint64_t>(r), 0,
                   x.row(r).data(), dim);
  return x;
}

State problem_initial_state(const ProblemSpec& spec, int dim, std::uint64_t seed) {
  if (spec.init.empty()) return initial_noise(seed, spec.first_sample, spec.batch, dim);
  const std::string file = resolve_path(spec.base_dir, spec.init);
  State x = read_npy_state(file);
  if (x.rows() != spec.batch || x.cols() != dim)
    throw IoError(file, "init must have shape (" + std::to_string(spec.batch) + ", " + std::to_string(dim) +
                            ") = (batch, model dim), got (" + std::to_string(x.rows()) + ", " +
                            std::to_string(x.cols()) + ")");
  return x;
}

std::string problem_noise_name(const ProblemSpec& spec, const std::string& default_name) {
  return spec.noise.is_null() ? default_name : spec.noise.at("name").get<std::string>();
}

int problem_tree_depth(const ProblemSpec& spec) {
  if (spec.noise.is_object() && spec.noise.contains("depth"))
    return static_cast<int>(Params(spec.noise, noise_specs("brownian_tree"), join_path(spec.path, "noise")).integer("depth"));
  return 20;
}

std::unique_ptr<NoiseSource> make_problem_noise(const ProblemSpec& spec, const std::string& default_name,
                                                std::uint64_t seed, double t_lo, double t_hi) {
  const std::string name = problem_noise_name(spec, default_name);
  if (name == "brownian_tree")
    return std::make_unique<BrownianTreeNoise>(seed, t_lo, t_hi, problem_tree_depth(spec), spec.first_sample);
  if (name == "replay") {
    const Params p(spec.noise, noise_specs(name), join_path(spec.path, "noise"));
    return ReplayNoise::from_npy(resolve_path(spec.base_dir, p.string("path")));
  }
  return std::make_unique<PhiloxNoise>(seed, spec.first_sample);
}

}  // namespace diffsde
