// The diffsde command line: list the registries, sample from a JSON config.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "diffsde/config.hpp"
#include "diffsde/error.hpp"
#include "diffsde/io.hpp"
#include "diffsde/npy.hpp"
#include "diffsde/registry.hpp"

namespace {

using nlohmann::json;
using namespace diffsde;

// Exit codes: 0 ok, 1 a failed run (numerical breakdown), 2 bad input (config, files,
// command line).
constexpr int kExitRunFailed = 1;
constexpr int kExitBadInput = 2;

json spec_json(const ParamSpec& s) {
  json j = {{"name", s.name}, {"type", to_string(s.type)}, {"default", s.default_value},
            {"description", s.description}};
  if (!s.choices.empty()) j["choices"] = s.choices;
  return j;
}

template <class T>
json entries_json(const Registry<T>& registry) {
  json out = json::array();
  for (const auto& e : registry.entries()) {
    json params = json::object();
    json specs = json::array();
    for (const auto& s : e.params) {
      params[s.name] = s.default_value;
      specs.push_back(spec_json(s));
    }
    out.push_back({{"kind", registry.kind()}, {"name", e.name}, {"description", e.description},
                   {"params", params}, {"param_specs", specs}});
  }
  return out;
}

json solver_entries_json() {
  json out = entries_json(solver_registry());
  for (auto& j : out) {
    const auto traits = solver_registry().create_default(j["name"].get<std::string>())->traits();
    j["stochastic"] = traits.stochastic;
    j["order"] = traits.order;
    j["strong_order"] = std::isnan(traits.strong_order) ? json(nullptr) : json(traits.strong_order);
    j["evals_per_step"] = traits.evals_per_step;
    j["adaptive"] = traits.adaptive;
    if (!traits.noise_use.empty()) j["noise_use"] = traits.noise_use;
  }
  return out;
}

void print_entries(const json& entries, const std::string& heading) {
  std::cout << heading << "\n";
  for (const auto& e : entries) {
    std::cout << "  " << e["name"].get<std::string>() << " — " << e["description"].get<std::string>()
              << "\n";
    if (e.contains("stochastic")) {
      std::cout << "      " << (e["stochastic"].get<bool>() ? "stochastic" : "deterministic")
                << ", order " << e["order"].dump();
      if (!e["strong_order"].is_null()) std::cout << ", strong order " << e["strong_order"].dump();
      std::cout << ", " << e["evals_per_step"].dump() << " evaluation(s) per step"
                << (e["adaptive"].get<bool>() ? ", adaptive" : "") << "\n";
    }
    for (const auto& s : e["param_specs"]) {
      std::cout << "      " << std::left << std::setw(14) << s["name"].get<std::string>() << " "
                << std::setw(11) << s["type"].get<std::string>() << " default "
                << (s["default"].is_null() ? std::string("(none)") : s["default"].dump()) << "  "
                << s["description"].get<std::string>();
      if (s.contains("choices")) std::cout << " (" << s["choices"].dump() << ")";
      std::cout << "\n";
    }
  }
}

int run_list(const std::string& kind, bool as_json) {
  json all = json::array();
  auto add = [&](const json& entries) {
    for (const auto& e : entries) all.push_back(e);
  };
  const bool every = kind.empty();
  if (every || kind == "solvers") add(solver_entries_json());
  if (every || kind == "schedules") add(entries_json(schedule_registry()));
  if (every || kind == "grids") add(entries_json(grid_registry()));
  if (every || kind == "models") add(entries_json(model_registry()));
  if (as_json) {
    std::cout << all.dump(2) << "\n";
    return 0;
  }
  for (const char* k : {"solver", "schedule", "grid", "model"}) {
    json part = json::array();
    for (const auto& e : all)
      if (e["kind"] == k) part.push_back(e);
    if (!part.empty()) print_entries(part, std::string(k) + "s:");
  }
  return 0;
}

std::string format_vector(const json& v) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(3) << "[";
  for (std::size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i].get<double>();
  os << "]";
  return os.str();
}

int run_sample(const std::string& config_path, const std::string& out_path,
               const std::string& summary_path, bool print_config) {
  const json config_json = config_path.empty() ? default_sample_config() : read_json_file(config_path);
  if (print_config) {
    std::cout << config_json.dump(2) << "\n";
    return 0;
  }
  SampleConfig config;
  SampleJob job;
  try {
    config = parse_sample_config(config_json, config_path.empty() ? "" : parent_dir(config_path));
    job = build_sample_job(config);
  } catch (const ConfigError& e) {
    throw ConfigError(e.path(), e.message() + (config_path.empty() ? "" : " (in " + config_path + ")"));
  }
  std::cout << "sampling " << job.x.rows() << " x " << job.x.cols() << " with " << job.solver->traits().name
            << " on " << job.schedule->name() << ", " << job.grid->name() << " grid of "
            << job.times.size() - 1 << " steps from t = " << job.times.front()
            << " to t = " << job.times.back() << (config_path.empty() ? " (embedded default config)" : "")
            << "\n";
  const Summary summary = run_sample_job(job);
  const json s = summary_json(job, summary);
  if (!out_path.empty()) write_npy(out_path, job.x);
  if (!summary_path.empty()) write_file_atomic(summary_path, s.dump(2) + "\n");

  std::cout << summary.brief_report() << "\n";
  const double rate = static_cast<double>(job.x.rows()) * static_cast<double>(summary.steps) /
                      std::max(summary.seconds, 1e-12);
  std::cout << "throughput: " << std::setprecision(3) << rate / 1e6 << " M samples x steps / s\n";
  if (s.contains("sample_mean")) {
    std::cout << "sample mean " << format_vector(s["sample_mean"]) << "  exact data mean "
              << format_vector(s["data_mean"]) << "\n";
    const auto& sc = s["sample_covariance"];
    const auto& dc = s["data_covariance"];
    for (std::size_t i = 0; i < sc.size(); ++i)
      std::cout << (i == 0 ? "sample cov  " : "            ")
                << (sc[i].is_array() ? format_vector(sc[i]) : format_vector(json::array({sc[i]})))
                << (i == 0 ? "  exact data cov  " : "                  ")
                << (dc[i].is_array() ? format_vector(dc[i]) : format_vector(json::array({dc[i]}))) << "\n";
    std::cout << "mean exact data log-density of the samples: " << std::setprecision(4)
              << s["mean_log_density"].get<double>() << "\n";
  }
  if (!out_path.empty()) std::cout << "wrote " << out_path << "\n";
  if (!summary_path.empty()) std::cout << "wrote " << summary_path << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"diffsde: diffusion-model sampling as numerical integration of the VP-SDE"};
  app.require_subcommand(1);

  auto* list = app.add_subcommand("list", "List the registered solvers, schedules, grids and models");
  std::string list_kind;
  bool list_json = false;
  list->add_option("kind", list_kind, "What to list")
      ->check(CLI::IsMember({"solvers", "schedules", "grids", "models"}));
  list->add_flag("--json", list_json, "Print a JSON array");

  auto* sample = app.add_subcommand("sample", "Sample from a JSON config (or the embedded default)");
  std::string config_path, out_path, summary_path;
  bool print_config = false;
  sample->add_option("config", config_path, "Config file (JSON); omitted: the embedded default");
  sample->add_option("--out", out_path, "Write the samples (float64 .npy, batch x dim) here");
  sample->add_option("--summary", summary_path, "Write the run summary (JSON) here");
  sample->add_flag("--print-config", print_config, "Print the config that would run, then exit");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : kExitBadInput;
  }
  try {
    if (list->parsed()) return run_list(list_kind, list_json);
    if (sample->parsed()) return run_sample(config_path, out_path, summary_path, print_config);
  } catch (const ConfigError& e) {
    std::cerr << "diffsde: config error: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const IoError& e) {
    std::cerr << "diffsde: file error: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const NumericalError& e) {
    std::cerr << "diffsde: run failed at " << e.what() << "\n";
    return kExitRunFailed;
  } catch (const std::exception& e) {
    std::cerr << "diffsde: error: " << e.what() << "\n";
    return kExitRunFailed;
  }
  return 0;
}
