// `diffsde sample [CONFIG] [--out X.npy] [--summary S.json] [--print-config]`.
#include <algorithm>
#include <iomanip>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "commands.hpp"
#include "diffsde/config.hpp"
#include "diffsde/error.hpp"
#include "diffsde/io.hpp"
#include "diffsde/npy.hpp"

namespace diffsde::cli {

namespace {

using nlohmann::json;

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

void add_sample_command(CLI::App& app, Commands& commands) {
  auto* sample = app.add_subcommand("sample", "Sample from a JSON config (or the embedded default)");
  struct Options {
    std::string config_path, out_path, summary_path;
    bool print_config = false;
  };
  auto o = std::make_shared<Options>();
  sample->add_option("config", o->config_path, "Config file (JSON); omitted: the embedded default");
  sample->add_option("--out", o->out_path, "Write the samples (float64 .npy, batch x dim) here");
  sample->add_option("--summary", o->summary_path, "Write the run summary (JSON) here");
  sample->add_flag("--print-config", o->print_config, "Print the config that would run, then exit");
  commands.push_back({sample, [o] {
                        return run_sample(o->config_path, o->out_path, o->summary_path, o->print_config);
                      }});
}

}  // namespace diffsde::cli
