// `diffsde report results.jsonl [--metric NAME] [--plot plot.png]`: the table of one metric
// (configurations x steps), the fitted convergence orders, and a work-precision plot.
#include <iostream>
#include <memory>
#include <string>

#include "commands.hpp"
#include "diffsde/error.hpp"
#include "diffsde/report.hpp"
#include "diffsde/sweep.hpp"

namespace diffsde::cli {

namespace {

int run_report(const std::string& path, std::string metric, const std::string& plot) {
  const ResultsFile file = read_results(path);
  if (file.torn_bytes > 0) std::cerr << path << ": ignored a torn last line (" << file.torn_bytes << " bytes)\n";
  if (file.lines.empty()) throw IoError(path, "holds no results");
  if (metric.empty()) metric = default_report_metric(file.lines);
  Report report;
  try {
    report = make_report(file.lines, metric);
  } catch (const Error& e) {
    throw ConfigError("--metric", e.what());
  }
  std::cout << format_report(report);
  if (!plot.empty()) {
    write_work_precision_plot(report, plot);
    std::cout << "wrote " << plot << "\n";
  }
  return 0;
}

}  // namespace

void add_report_command(CLI::App& app, Commands& commands) {
  auto* cmd = app.add_subcommand("report", "Table, convergence orders and work-precision plot of sweep results");
  struct Options {
    std::string path, metric, plot;
  };
  auto o = std::make_shared<Options>();
  cmd->add_option("results", o->path, "Results file of `diffsde sweep` (JSON lines)")->required();
  cmd->add_option("--metric", o->metric, "Metric to tabulate (default: path_rms when present, else the first)");
  cmd->add_option("--plot", o->plot, "Write a work-precision plot (PNG, drawn by gnuplot) here");
  commands.push_back({cmd, [o] { return run_report(o->path, o->metric, o->plot); }});
}

}  // namespace diffsde::cli
