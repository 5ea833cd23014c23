// `diffsde encode CONFIG --data X.npy --out z.npy [--summary S.json] [--reconstruct]`: data
// to noise through the PF-ODE run forwards over the config's grid reversed, and
// `diffsde decode CONFIG --latents z.npy --out X.npy [--summary S.json]`: the sampler
// started from the given latents.
#include <functional>
#include <iomanip>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "commands.hpp"
#include "diffsde/config.hpp"
#include "diffsde/diffusers_config.hpp"
#include "diffsde/encode.hpp"
#include "diffsde/error.hpp"
#include "diffsde/io.hpp"
#include "diffsde/npy.hpp"
#include "diffsde/progress.hpp"
#include "diffsde/provenance.hpp"
#include "diffsde/registry.hpp"

namespace diffsde::cli {

namespace {

using nlohmann::json;

// The config file as a sampling config (diffusers' scheduler_config translated as `sample`
// does); ConfigErrors name the file.
SampleConfig read_sample_config(const std::string& config_path, int threads) {
  json config_json = read_json_file(config_path);
  if (threads >= 0) config_json["threads"] = threads;
  try {
    std::vector<std::string> notes;
    config_json = expand_scheduler_config(config_json, parent_dir(config_path), &notes);
    for (const auto& note : notes) std::cerr << "note: " << note << "\n";
    return parse_sample_config(config_json, parent_dir(config_path));
  } catch (const ConfigError& e) {
    throw ConfigError(e.path(), e.message() + " (in " + config_path + ")");
  }
}

// What produced an output: the config as run (defaults filled in), the config file and the
// data or latents file, and the build.
json provenance_of(const std::string& config_path, const std::string& data_path, int threads) {
  json raw = read_json_file(config_path);
  if (threads >= 0) raw["threads"] = threads;
  const auto inputs = config_input_files(raw, parent_dir(config_path), {config_path, data_path});
  return provenance_json(with_defaults(expand_scheduler_config(raw, parent_dir(config_path))), inputs);
}

template <class Build>
SampleJob build_job(const std::string& config_path, Build build) {
  try {
    return build();
  } catch (const ConfigError& e) {
    throw ConfigError(e.path(), e.message() + " (in " + config_path + ")");
  }
}

// Progress of a run's steps on stderr (progress.hpp).
std::function<bool(const Progress&)> report_steps(ProgressReporter& reporter) {
  return [&reporter](const Progress& p) {
    reporter.update(p.steps > 0 ? static_cast<double>(p.step) / static_cast<double>(p.steps) : 1.0,
                    std::to_string(p.step) + "/" + std::to_string(p.steps) + " steps");
    return true;
  };
}

int run_encode(const std::string& config_path, const std::string& data_path, const std::string& out_path,
               const std::string& summary_path, bool reconstruct, int threads, bool quiet) {
  const SampleConfig config = read_sample_config(config_path, threads);
  const State data = read_npy_rows(data_path);
  SampleJob job = build_job(config_path, [&] { return build_encode_job(config, data, data_path); });
  // Every output can be written: checked before the run, not found out after it.
  for (const std::string& path : {out_path, out_path + ".json", summary_path})
    if (!path.empty()) check_writable(path);
  const json provenance = provenance_of(config_path, data_path, threads);
  std::cout << "encoding " << data.rows() << " x " << data.cols() << " rows of " << data_path << " with "
            << job.solver->traits().name << " on " << job.schedule->name() << ", " << job.grid->name()
            << " grid reversed: " << job.times.size() - 1 << " steps from t = " << job.times.back()
            << " up to t = " << job.times.front() << "\n";
  ProgressReporter reporter(reconstruct ? "encoding and decoding" : "encoding", progress_style(quiet), std::cerr);
  const EncodeResult result = run_encode_job(job, reconstruct, {}, report_steps(reporter));
  const long all = (reconstruct ? 2 : 1) * static_cast<long>(job.times.size() - 1);
  reporter.finish(std::to_string(all) + "/" + std::to_string(all) + " steps");
  json summary = encode_summary_json(job, result);
  summary["provenance"] = provenance;
  write_npy(out_path, result.latents);
  write_npy_sidecar(out_path, provenance, {static_cast<long>(result.latents.rows()), static_cast<long>(result.latents.cols())});
  if (!summary_path.empty()) write_file_atomic(summary_path, summary.dump(2) + "\n");

  std::cout << result.summary.brief_report() << "\n";
  std::cout << std::setprecision(4) << "latents: mean " << summary["latent_mean"].get<double>() << ", std "
            << summary["latent_std"].get<double>() << " (over all values)\n";
  if (result.reconstructed)
    std::cout << std::setprecision(3) << "reconstruction (data -> noise -> data, " << result.decode_summary.nfe
              << " NFE): max abs error " << result.max_error << ", rms error " << result.rms_error << "\n";
  std::cout << "wrote " << out_path << "\n";
  if (!summary_path.empty()) std::cout << "wrote " << summary_path << "\n";
  return 0;
}

int run_decode(const std::string& config_path, const std::string& latents_path, const std::string& out_path,
               const std::string& summary_path, int threads, bool quiet) {
  const SampleConfig config = read_sample_config(config_path, threads);
  const State latents = read_npy_rows(latents_path);
  SampleJob job = build_job(config_path, [&] { return build_decode_job(config, latents, latents_path); });
  for (const std::string& path : {out_path, out_path + ".json", summary_path})
    if (!path.empty()) check_writable(path);
  const json provenance = provenance_of(config_path, latents_path, threads);
  const SolverTraits traits = job.solver->traits();
  std::cout << "decoding " << latents.rows() << " x " << latents.cols() << " latents of " << latents_path
            << " with " << traits.name << " on " << job.schedule->name() << ", " << job.grid->name() << " grid of "
            << job.times.size() - 1 << " steps from t = " << job.times.front() << " to t = " << job.times.back()
            << "\n";
  if (traits.stochastic)
    std::cout << "note: " << traits.name << " is stochastic: it samples from the latents, it does not invert "
              << "an encoding\n";
  ProgressReporter reporter("decoding", progress_style(quiet), std::cerr);
  const Summary summary = run_sample_job(job, {}, report_steps(reporter));
  reporter.finish(std::to_string(summary.steps) + "/" + std::to_string(summary.steps) + " steps");
  write_npy(out_path, job.x);
  write_npy_sidecar(out_path, provenance, {static_cast<long>(job.x.rows()), static_cast<long>(job.x.cols())});
  json summary_out = summary_json(job, summary);
  summary_out["provenance"] = provenance;
  if (!summary_path.empty()) write_file_atomic(summary_path, summary_out.dump(2) + "\n");
  std::cout << summary.brief_report() << "\n";
  std::cout << "wrote " << out_path << "\n";
  if (!summary_path.empty()) std::cout << "wrote " << summary_path << "\n";
  return 0;
}

}  // namespace

void add_encode_command(CLI::App& app, Commands& commands) {
  auto* cmd = app.add_subcommand(
      "encode", "Data to noise: the probability-flow ODE from the grid's data end up to its noise end");
  struct Options {
    std::string config_path, data_path, out_path, summary_path;
    bool reconstruct = false, quiet = false;
    int threads = -1;
  };
  auto o = std::make_shared<Options>();
  cmd->add_option("config", o->config_path, "Config file (JSON, as for sample)")->required();
  cmd->add_option("--data", o->data_path, "Data (.npy, rows x dim, or (rows, C, H, W))")->required();
  cmd->add_option("--out", o->out_path, "Write the latents x(t_start) here (float64 .npy, rows x dim)")->required();
  cmd->add_option("--summary", o->summary_path, "Write the run summary (JSON) here");
  cmd->add_flag("--reconstruct", o->reconstruct,
                "Decode the latents back and report the max and RMS error of data -> noise -> data");
  cmd->add_option("--threads", o->threads, "Threads to integrate the batch on (0: all cores); overrides the config's")
      ->check(CLI::Range(0, DriverOptions::kMaxThreads));
  cmd->add_flag("--quiet", o->quiet,
                "No progress on stderr (otherwise a bar on a terminal, a line every 10 s in a log)");
  commands.push_back({cmd, [o] {
                        return run_encode(o->config_path, o->data_path, o->out_path, o->summary_path,
                                          o->reconstruct, o->threads, o->quiet);
                      }});
}

void add_decode_command(CLI::App& app, Commands& commands) {
  auto* cmd = app.add_subcommand("decode", "Noise to data: the sampler started from given latents");
  struct Options {
    std::string config_path, latents_path, out_path, summary_path;
    bool quiet = false;
    int threads = -1;
  };
  auto o = std::make_shared<Options>();
  cmd->add_option("config", o->config_path, "Config file (JSON, as for sample)")->required();
  cmd->add_option("--latents", o->latents_path, "Latents x(t_start) (.npy, rows x dim)")->required();
  cmd->add_option("--out", o->out_path, "Write the decoded data here (float64 .npy, rows x dim)")->required();
  cmd->add_option("--summary", o->summary_path, "Write the run summary (JSON) here");
  cmd->add_option("--threads", o->threads, "Threads to integrate the batch on (0: all cores); overrides the config's")
      ->check(CLI::Range(0, DriverOptions::kMaxThreads));
  cmd->add_flag("--quiet", o->quiet,
                "No progress on stderr (otherwise a bar on a terminal, a line every 10 s in a log)");
  commands.push_back({cmd, [o] {
                        return run_decode(o->config_path, o->latents_path, o->out_path, o->summary_path,
                                          o->threads, o->quiet);
                      }});
}

}  // namespace diffsde::cli
