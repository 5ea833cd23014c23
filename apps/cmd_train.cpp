// `diffsde train [CONFIG] --out model.pt [--print-config]`: trains a network (the
// LibTorch build only; without it the command says so and exits 2).
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "commands.hpp"
#include "diffsde/error.hpp"
#include "diffsde/io.hpp"
#include "diffsde/progress.hpp"
#include "diffsde/provenance.hpp"
#include "diffsde/registry.hpp"
#ifdef DIFFSDE_HAVE_TORCH
#include "diffsde/scores/train.hpp"
#endif

namespace diffsde::cli {

namespace {

using nlohmann::json;


struct Options {
  std::string config_path, out_path;
  bool print_config = false, quiet = false;
};

int run_train(const Options& o) {
#ifndef DIFFSDE_HAVE_TORCH
  (void)o;
  std::cerr << "diffsde: train needs LibTorch, and this program was built without it (install "
               "libtorch-dev and configure with -DDIFFSDE_WITH_TORCH=ON)\n";
  return kExitBadInput;
#else
  const json config = o.config_path.empty() ? default_train_config() : read_json_file(o.config_path);
  if (o.print_config) {
    std::cout << config.dump(2) << "\n";
    return 0;
  }
  if (o.out_path.empty()) throw ConfigError("--out", "is required (where to write the model, e.g. model.pt)");
  std::cout << "training " << (o.config_path.empty() ? "the embedded default config" : o.config_path) << " -> "
            << o.out_path << "\n" << std::flush;
  ProgressReporter reporter("training", progress_style(o.quiet), std::cerr);
  auto progress = [&reporter](const TrainProgress& p) {
    std::ostringstream counts;
    counts << "step " << p.step << "/" << p.steps << ", loss " << std::setprecision(4) << p.loss << ", "
           << std::setprecision(4) << p.samples_per_s << " samples/s";
    // The fraction of this run's steps (a resumed run starts past 0).
    reporter.update(p.steps > 0 ? static_cast<double>(p.step) / static_cast<double>(p.steps) : 1.0, counts.str());
  };
  const std::string base_dir = o.config_path.empty() ? "" : parent_dir(o.config_path);
  const json provenance = provenance_json(
      config, config_input_files(config, base_dir,
                                 o.config_path.empty() ? std::vector<std::string>{} : std::vector<std::string>{o.config_path}));
  const TrainResult r = train(config, base_dir, o.out_path, progress, provenance);
  reporter.finish("step " + std::to_string(r.steps) + "/" + std::to_string(r.steps));
  std::cout << "trained steps " << r.first_step << ".." << r.steps << " (" << r.parameters << " parameters) in "
            << std::setprecision(4) << r.seconds << " s, " << r.samples_per_s << " samples/s, final loss "
            << r.loss << "\n";
  if (r.test_accuracy >= 0) std::cout << "test accuracy " << r.test_accuracy << "\n";
  std::cout << "wrote " << r.model_path << " (EMA weights, TorchScript), " << r.state_path << ", "
            << r.loss_path << "\n";
  return 0;
#endif
}

}  // namespace

void add_train_command(CLI::App& app, Commands& commands) {
  auto* train = app.add_subcommand("train", "Train a network (Algorithm 1 of Ho et al. 2020, DDPM) or the feature "
                                            "classifier from a JSON config (LibTorch build)");
  auto o = std::make_shared<Options>();
  train->add_option("config", o->config_path, "Config file (JSON); omitted: the embedded 2-D example");
  train->add_option("--out", o->out_path, "Write the model (TorchScript) here; its .state and loss curve beside it");
  train->add_flag("--print-config", o->print_config, "Print the config that would run, then exit");
  train->add_flag("--quiet", o->quiet,
                  "No progress on stderr (otherwise a bar on a terminal, a line every 10 s in a log)");
  commands.push_back({train, [o] { return run_train(*o); }});
}

}  // namespace diffsde::cli
