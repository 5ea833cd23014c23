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
#include "diffsde/diffusers_config.hpp"
#include "diffsde/error.hpp"
#include "diffsde/image.hpp"
#include "diffsde/io.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/npy.hpp"
#include "diffsde/progress.hpp"
#include "diffsde/provenance.hpp"

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
               const std::string& summary_path, bool print_config, int threads,
               std::string grid_path, bool quiet) {
  json config_json = config_path.empty() ? default_sample_config() : read_json_file(config_path);
  if (threads >= 0) config_json["threads"] = threads;
  const std::string base_dir = config_path.empty() ? "" : parent_dir(config_path);
  // The files the config names (before a scheduler config is expanded into native keys).
  const std::vector<std::string> inputs =
      config_input_files(config_json, base_dir, config_path.empty() ? std::vector<std::string>{} : std::vector<std::string>{config_path});
  // diffusers' scheduler_config becomes the native schedule, grid and solver.
  {
    std::vector<std::string> notes;
    try {
      config_json = expand_scheduler_config(config_json, config_path.empty() ? "" : parent_dir(config_path), &notes);
    } catch (const ConfigError& e) {
      throw ConfigError(e.path(), e.message() + (config_path.empty() ? "" : " (in " + config_path + ")"));
    }
    for (const auto& note : notes) std::cerr << "note: " << note << "\n";
  }
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
  // Image models: a PNG grid of the samples, beside the .npy unless --grid says where.
  const std::vector<int> shape = job.model->shape();
  const bool image = shape.size() == 3 && (shape[0] == 1 || shape[0] == 3);
  if (!grid_path.empty() && !image)
    throw ConfigError("--grid", "needs an image model (per-sample shape [1 or 3, H, W]); this model's "
                                "shape has " + std::to_string(shape.size()) + " axes");
  if (grid_path.empty() && image && !out_path.empty()) {
    const auto dot = out_path.rfind('.');
    const auto slash = out_path.rfind('/');
    grid_path = (dot != std::string::npos && (slash == std::string::npos || dot > slash) ? out_path.substr(0, dot)
                                                                                          : out_path) + ".png";
  }
  // Every output can be written: checked before the run, not found out after it.
  for (const std::string& path : {out_path, out_path.empty() ? out_path : out_path + ".json", summary_path, grid_path})
    if (!path.empty()) check_writable(path);
  std::cout << "sampling " << job.x.rows() << " x " << job.x.cols() << " with " << job.solver->traits().name
            << " on " << job.schedule->name() << ", " << job.grid->name() << " grid of "
            << job.times.size() - 1 << " steps from t = " << job.times.front()
            << " to t = " << job.times.back() << (config_path.empty() ? " (embedded default config)" : "")
            << (config.threads != 1 ? ", threads " + std::to_string(config.threads) : "") << "\n";
  ProgressReporter reporter("sampling", progress_style(quiet), std::cerr);
  const auto steps_text = [](long done, long all) { return std::to_string(done) + "/" + std::to_string(all) + " steps"; };
  // What produced the samples, hashed before the run (an input changed during it is not
  // what ran).
  const json provenance = provenance_json(with_defaults(config_json), inputs);
  const Summary summary = run_sample_job(job, {}, [&](const Progress& p) {
    reporter.update(p.steps > 0 ? static_cast<double>(p.step) / static_cast<double>(p.steps) : 1.0,
                    steps_text(p.step, p.steps));
    return true;
  });
  reporter.finish(steps_text(summary.steps, summary.steps));
  json s = summary_json(job, summary);
  s["provenance"] = provenance;
  if (!out_path.empty()) {
    write_npy(out_path, job.x);
    write_npy_sidecar(out_path, provenance, {static_cast<long>(job.x.rows()), static_cast<long>(job.x.cols())});
  }
  if (!summary_path.empty()) write_file_atomic(summary_path, s.dump(2) + "\n");
  if (!grid_path.empty()) write_png_grid(grid_path, job.x, shape);

  std::cout << summary.brief_report() << "\n";
  if (summary.network_rows != static_cast<long long>(job.x.rows()) * summary.nfe)
    std::cout << "network rows evaluated: " << summary.network_rows << " (guidance: conditional and unconditional)\n";
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
  if (!out_path.empty()) std::cout << "wrote " << out_path << "\nwrote " << out_path << ".json (its provenance)\n";
  if (!summary_path.empty()) std::cout << "wrote " << summary_path << "\n";
  if (!grid_path.empty()) std::cout << "wrote " << grid_path << " (a grid of the samples)\n";
  return 0;
}

}  // namespace

void add_sample_command(CLI::App& app, Commands& commands) {
  auto* sample = app.add_subcommand("sample", "Sample from a JSON config (or the embedded default)");
  struct Options {
    std::string config_path, out_path, summary_path, grid_path;
    bool print_config = false, quiet = false;
    int threads = -1;  // -1: the config's
  };
  auto o = std::make_shared<Options>();
  sample->add_option("config", o->config_path, "Config file (JSON); omitted: the embedded default");
  sample->add_option("--out", o->out_path, "Write the samples (float64 .npy, batch x dim) here");
  sample->add_option("--summary", o->summary_path, "Write the run summary (JSON) here");
  sample->add_flag("--print-config", o->print_config, "Print the config that would run, then exit");
  sample->add_option("--grid", o->grid_path,
                     "Image models: write the PNG grid of the samples here (default: beside --out)");
  sample->add_option("--threads", o->threads,
                     "Threads to integrate the batch on (0: all cores); overrides the config's "
                     "`threads`. The samples do not depend on it")
      ->check(CLI::Range(0, DriverOptions::kMaxThreads));
  sample->add_flag("--quiet", o->quiet,
                   "No progress on stderr (otherwise a bar on a terminal, a line every 10 s in a log)");
  commands.push_back({sample, [o] {
                        return run_sample(o->config_path, o->out_path, o->summary_path,
                                          o->print_config, o->threads, o->grid_path, o->quiet);
                      }});
}

}  // namespace diffsde::cli
