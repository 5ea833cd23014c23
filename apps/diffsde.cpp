// The diffsde command line: each subcommand is in its own cmd_*.cpp file.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <new>
#include <string>
#include <vector>
#include <exception>
#include <iostream>

#include "commands.hpp"
#include "diffsde/error.hpp"
#include "diffsde/registry.hpp"
#ifdef DIFFSDE_HAVE_TORCH
#include "diffsde/scores/torch_model.hpp"
#endif

int main(int argc, char** argv) {
  using namespace diffsde;
  using namespace diffsde::cli;
  CLI::App app{"diffsde: diffusion-model sampling as numerical integration of the VP-SDE"};
  app.require_subcommand(1);

#ifdef DIFFSDE_HAVE_TORCH
  enable_torch_models();
#endif
  // --version: the version and the build's options (CUDA is asked for only then).
  app.set_version_flag("--version", [] {
    std::string version = std::string("diffsde ") + DIFFSDE_VERSION + "\nLibTorch: ";
#ifdef DIFFSDE_HAVE_TORCH
    version += std::string("yes (CUDA: ") + (torch_cuda_available() ? "available" : "not available") + ")";
#else
    version += "no";
#endif
#ifdef DIFFSDE_HAVE_MPI
    version += "\nMPI: yes";
#else
    version += "\nMPI: no";
#endif
    return version;
  });

  Commands commands;
  add_list_command(app, commands);
  add_sample_command(app, commands);
  add_likelihood_command(app, commands);
  add_encode_command(app, commands);
  add_decode_command(app, commands);
  add_train_command(app, commands);
  add_sweep_command(app, commands);
  add_merge_command(app, commands);
  add_report_command(app, commands);

  // An unknown command: say so and suggest the nearest (CLI11 would only say that a
  // subcommand is required).
  if (argc > 1 && argv[1][0] != '-') {
    std::vector<std::string> names;
    for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) names.push_back(sub->get_name());
    if (std::find(names.begin(), names.end(), argv[1]) == names.end()) {
      std::string list;
      for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
      std::cerr << "diffsde: unknown command '" << argv[1] << "'" << did_you_mean(argv[1], names)
                << "; commands: " << list << "\n";
      return kExitBadInput;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : kExitBadInput;
  }
  try {
    for (const auto& command : commands)
      if (command.app->parsed()) return command.run();
  } catch (const ConfigError& e) {
    std::cerr << "diffsde: config error: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const IoError& e) {
    std::cerr << "diffsde: file error: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const NumericalError& e) {
    std::cerr << "diffsde: run failed at " << e.what() << "\n";
    return kExitRunFailed;
  } catch (const std::bad_alloc&) {
    std::cerr << "diffsde: run failed: out of memory (a smaller batch, fewer threads, or a split run needs less)\n";
    return kExitRunFailed;
  } catch (const std::exception& e) {
    std::cerr << "diffsde: error: " << e.what() << "\n";
    return kExitRunFailed;
  }
  return 0;
}
