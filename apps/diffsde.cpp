// The diffsde command line: each subcommand is in its own cmd_*.cpp file.
#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>

#include "commands.hpp"
#include "diffsde/error.hpp"
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
  Commands commands;
  add_list_command(app, commands);
  add_sample_command(app, commands);
  add_likelihood_command(app, commands);
  add_train_command(app, commands);
  add_sweep_command(app, commands);
  add_merge_command(app, commands);
  add_report_command(app, commands);

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
  } catch (const std::exception& e) {
    std::cerr << "diffsde: error: " << e.what() << "\n";
    return kExitRunFailed;
  }
  return 0;
}
