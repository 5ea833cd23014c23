// The subcommands of the `diffsde` command line. Each lives in its own file and adds
// itself through one add_*_command function; main() parses, then runs the chosen one.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <vector>

namespace diffsde::cli {

// Exit codes: 0 ok, 1 a failed run (numerical breakdown), 2 bad input (config, files,
// command line).
constexpr int kExitRunFailed = 1;
constexpr int kExitBadInput = 2;

struct Command {
  CLI::App* app;              // the parsed subcommand
  std::function<int()> run;   // runs it; returns the exit code, throws diffsde errors
};
using Commands = std::vector<Command>;

void add_list_command(CLI::App& app, Commands& commands);    // cmd_list.cpp
void add_sample_command(CLI::App& app, Commands& commands);  // cmd_sample.cpp
void add_likelihood_command(CLI::App& app, Commands& commands);  // cmd_likelihood.cpp
void add_encode_command(CLI::App& app, Commands& commands);  // cmd_encode.cpp
void add_decode_command(CLI::App& app, Commands& commands);  // cmd_encode.cpp
void add_train_command(CLI::App& app, Commands& commands);   // cmd_train.cpp
void add_sweep_command(CLI::App& app, Commands& commands);   // cmd_sweep.cpp
void add_merge_command(CLI::App& app, Commands& commands);   // cmd_sweep.cpp
void add_report_command(CLI::App& app, Commands& commands);  // cmd_report.cpp

}  // namespace diffsde::cli
