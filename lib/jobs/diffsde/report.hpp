// Reports of sweep results: a table (solver configurations x steps, one metric), the
// fitted convergence order of each configuration (least-squares slope of log metric
// against log NFE), and a work-precision plot (metric vs NFE, log-log) drawn by gnuplot.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace diffsde {

struct ReportPoint {
  double nfe = 0;    // model evaluations per sample (evals_per_sample), mean over the seeds
  double value = 0;  // mean over the seeds of the metric
  int seeds = 0;     // cells averaged
  bool failed = false;  // a cell of this point failed
};

struct ReportRow {
  std::string label;         // configuration: solver label, plus the grid when the file has several
  bool adaptive = false;     // points keyed by tolerance instead of steps
  bool stochastic = false;
  double declared_order = 0;  // for path metrics: ODE order or strong order; NaN otherwise
  // Keyed by steps (fixed-step solvers) or by tolerance (adaptive; 0 = default tolerance).
  std::map<double, ReportPoint> points;
  double fitted_order = 0;   // -slope of log value vs log NFE; NaN with < 2 usable points
  bool has_values() const;
};

struct Report {
  std::string metric;
  std::vector<ReportRow> rows;  // in the order their first cell appears in the sweep
  int seeds = 0;                // distinct seeds in the file
  std::string grid;             // the grid label most cells use (rows on other grids name theirs)
};

// Names of the metric values in the lines, in order of appearance (objects of values,
// such as feature_frechet_classes, are left out).
std::vector<std::string> report_metric_names(const std::vector<nlohmann::json>& lines);
// path_rms when present, otherwise the first metric.
std::string default_report_metric(const std::vector<nlohmann::json>& lines);

// Error when no line has the metric (the message lists the ones present).
Report make_report(const std::vector<nlohmann::json>& lines, const std::string& metric);

// Least-squares slope of log(value) on log(nfe) over the points with finite value > 0;
// NaN with fewer than two distinct NFE.
double fit_log_log_slope(const std::vector<double>& nfe, const std::vector<double>& value);

// The tables as text: fixed-step configurations x steps, then adaptive ones x tolerance.
std::string format_report(const Report& report);

// The full path of `program` found on PATH, or "" when it is not there.
std::string find_program(const std::string& program);

// Draws the work-precision plot (metric vs NFE, log-log, one line per configuration with
// values) into `png_path` with gnuplot: data and script go to a temp folder, the PNG to a
// temp file beside png_path that is renamed into place. Error when gnuplot is missing
// or fails (an existing png_path is then left as it was).
void write_work_precision_plot(const Report& report, const std::string& png_path,
                               const std::string& gnuplot = "gnuplot");

}  // namespace diffsde
