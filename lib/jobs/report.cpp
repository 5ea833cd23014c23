// Reports of sweep results (see report.hpp and docs/sweeps.md).
#include "diffsde/report.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <limits>
#include <set>
#include <sstream>

#include "diffsde/error.hpp"
#include "diffsde/io.hpp"

extern char** environ;

namespace diffsde {

using nlohmann::json;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

bool is_path_metric(const std::string& metric) { return metric.rfind("path_", 0) == 0; }

std::string sci(double v) {
  std::ostringstream os;
  os << std::scientific << std::setprecision(3) << v;
  return os.str();
}

std::string pad(const std::string& s, std::size_t width, bool left = false) {
  if (s.size() >= width) return s;
  return left ? s + std::string(width - s.size(), ' ') : std::string(width - s.size(), ' ') + s;
}

std::string order_text(double v) {
  if (!std::isfinite(v)) return "-";
  std::ostringstream os;
  os << std::fixed << std::setprecision(2) << v;
  return os.str();
}

std::string key_text(double key, bool adaptive) {
  if (!adaptive) return std::to_string(static_cast<long>(key));
  if (key == 0) return "default";
  std::ostringstream os;
  os << std::setprecision(3) << key;
  return "tol " + os.str();
}

}  // namespace

bool ReportRow::has_values() const {
  for (const auto& [key, p] : points)
    if (p.seeds > 0 || p.failed) return true;
  return false;
}

std::vector<std::string> report_metric_names(const std::vector<json>& lines) {
  std::vector<std::string> names;
  for (const auto& line : lines) {
    if (!line.contains("metrics") || !line["metrics"].is_object()) continue;
    for (const auto& item : line["metrics"].items())  // not objects (feature_frechet_classes)
      if (!item.value().is_structured() && std::find(names.begin(), names.end(), item.key()) == names.end())
        names.push_back(item.key());
  }
  return names;
}

std::string default_report_metric(const std::vector<json>& lines) {
  const auto names = report_metric_names(lines);
  if (names.empty()) return "";
  if (std::find(names.begin(), names.end(), "path_rms") != names.end()) return "path_rms";
  return names.front();
}

double fit_log_log_slope(const std::vector<double>& nfe, const std::vector<double>& value) {
  std::vector<double> lx, ly;
  for (std::size_t i = 0; i < nfe.size() && i < value.size(); ++i) {
    if (!(value[i] > 0) || !std::isfinite(value[i]) || !(nfe[i] > 0)) continue;
    lx.push_back(std::log(nfe[i]));
    ly.push_back(std::log(value[i]));
  }
  if (std::set<double>(lx.begin(), lx.end()).size() < 2) return kNaN;
  const double n = static_cast<double>(lx.size());
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (std::size_t i = 0; i < lx.size(); ++i) {
    sx += lx[i];
    sy += ly[i];
    sxx += lx[i] * lx[i];
    sxy += lx[i] * ly[i];
  }
  return (n * sxy - sx * sy) / (n * sxx - sx * sx);
}

Report make_report(const std::vector<json>& lines, const std::string& metric) {
  const auto names = report_metric_names(lines);
  if (std::find(names.begin(), names.end(), metric) == names.end()) {
    std::string known;
    for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
    throw Error("no cell has the metric '" + metric + "'; the file has: " + (known.empty() ? "(none)" : known));
  }
  Report report;
  report.metric = metric;
  // The grid most cells use goes in the report's header; rows on other grids name theirs.
  std::map<std::string, long> grids;
  std::set<std::uint64_t> seeds;
  for (const auto& line : lines) {
    ++grids[line.value("grid_label", "")];
    if (line.contains("seed") && line["seed"].is_number()) seeds.insert(line["seed"].get<std::uint64_t>());
  }
  report.seeds = static_cast<int>(seeds.size());
  for (const auto& [grid, count] : grids)
    if (report.grid.empty() || count > grids[report.grid]) report.grid = grid;

  // Lines in cell order, grouped into rows by configuration.
  std::vector<const json*> ordered;
  for (const auto& line : lines) ordered.push_back(&line);
  std::stable_sort(ordered.begin(), ordered.end(),
                   [](const json* a, const json* b) { return (*a)["cell"].get<long>() < (*b)["cell"].get<long>(); });
  std::map<std::string, std::size_t> row_of;
  std::map<std::pair<std::size_t, double>, std::pair<double, double>> sums;  // (row, key) -> (nfe, value) sums
  for (const json* line_ptr : ordered) {
    const json& line = *line_ptr;
    const bool adaptive = line.value("adaptive", false) && line.contains("tolerance");
    // A row on another grid names it: by its name when that differs from the common grid's.
    const std::string grid = line.value("grid_label", std::string());
    const std::string grid_name = grid.substr(0, grid.find('('));
    const std::string label =
        line.value("label", std::string("?")) +
        (grid == report.grid ? "" : " @ " + (grid_name != report.grid.substr(0, report.grid.find('(')) ? grid_name : grid));
    const std::string row_key = label + (adaptive ? "|adaptive" : "");
    auto it = row_of.find(row_key);
    if (it == row_of.end()) {
      ReportRow row;
      row.label = label;
      row.adaptive = adaptive;
      row.stochastic = line.value("stochastic", false);
      row.declared_order = kNaN;
      if (is_path_metric(metric)) {
        const json& declared = row.stochastic ? line["strong_order"] : line["order"];
        if (declared.is_number()) row.declared_order = declared.get<double>();
      }
      it = row_of.emplace(row_key, report.rows.size()).first;
      report.rows.push_back(row);
    }
    ReportRow& row = report.rows[it->second];
    double key = 0;
    if (adaptive) {
      key = line["tolerance"].is_number() ? line["tolerance"].get<double>() : 0.0;
    } else {
      key = line.contains("steps") && line["steps"].is_number() ? line["steps"].get<double>() : 0.0;
    }
    ReportPoint& point = row.points[key];
    if (line.value("status", std::string("ok")) != "ok") {
      point.failed = true;
      continue;
    }
    const json& metrics = line["metrics"];
    if (!metrics.is_object() || !metrics.contains(metric) || !metrics[metric].is_number()) continue;
    auto& s = sums[{it->second, key}];
    s.first += line.contains("evals_per_sample") ? line.value("evals_per_sample", 0.0) : line.value("nfe", 0.0);
    s.second += metrics[metric].get<double>();
    ++point.seeds;
  }
  for (auto& [rk, s] : sums) {
    ReportPoint& p = report.rows[rk.first].points[rk.second];
    p.nfe = s.first / p.seeds;
    p.value = s.second / p.seeds;
  }
  for (auto& row : report.rows) {
    std::vector<double> nfe, value;
    for (const auto& [key, p] : row.points) {
      if (p.seeds == 0 || p.failed) continue;
      nfe.push_back(p.nfe);
      value.push_back(p.value);
    }
    row.fitted_order = -fit_log_log_slope(nfe, value);
  }
  return report;
}

std::string format_report(const Report& report) {
  std::ostringstream os;
  const bool path = is_path_metric(report.metric);
  for (const bool adaptive : {false, true}) {
    std::vector<const ReportRow*> rows;
    std::set<double> keys;
    std::vector<std::string> without;
    for (const auto& row : report.rows) {
      if (row.adaptive != adaptive) continue;
      bool any = false;
      for (const auto& [key, p] : row.points) any = any || p.seeds > 0 || p.failed;
      if (!any) {
        without.push_back(row.label);
        continue;
      }
      rows.push_back(&row);
      for (const auto& [key, p] : row.points) keys.insert(key);
    }
    if (rows.empty() && without.empty()) continue;
    std::size_t width = 13;
    for (const auto* r : rows) width = std::max(width, r->label.size() + 2);
    os << report.metric << (adaptive ? " by tolerance (adaptive solvers; NFE in brackets)" : " by steps")
       << (report.seeds > 1 ? ", mean over " + std::to_string(report.seeds) + " seeds" : "")
       << (report.grid.empty() ? "" : ", grid " + report.grid + " unless named") << "\n";
    const std::size_t col = adaptive ? 20 : 11;
    os << pad("configuration", width, true);
    for (double k : keys) os << pad(key_text(k, adaptive), col);
    os << pad("order", 8) << (path ? pad("declared", 10) : "") << "\n";
    for (const auto* r : rows) {
      os << pad(r->label, width, true);
      for (double k : keys) {
        auto it = r->points.find(k);
        std::string text = "-";
        if (it != r->points.end()) {
          if (it->second.failed)
            text = "fail";
          else if (it->second.seeds > 0)
            text = sci(it->second.value) +
                   (adaptive ? " [" + std::to_string(static_cast<long>(std::lround(it->second.nfe))) + "]" : "");
        }
        os << pad(text, col);
      }
      os << pad(order_text(r->fitted_order), 8);
      if (path) os << pad(order_text(r->declared_order), 10);
      os << "\n";
    }
    if (!without.empty()) {
      os << "no " << report.metric << " for:";
      for (std::size_t i = 0; i < without.size(); ++i) os << (i == 0 ? " " : ", ") << without[i];
      os << (path ? " (stochastic solvers that draw their own normals are off the reference's Brownian path; "
                    "compare them with a distribution metric)"
                  : "")
         << "\n";
    }
    os << "\n";
  }
  os << "order: -slope of the least-squares fit of log " << report.metric << " against log NFE"
     << (path ? "; declared: the solver's ODE order, or its strong order for SDE solvers" : "") << "\n";
  return os.str();
}

std::string find_program(const std::string& program) {
  if (program.find('/') != std::string::npos) return ::access(program.c_str(), X_OK) == 0 ? program : "";
  const char* path = std::getenv("PATH");
  if (path == nullptr) return "";
  std::stringstream ss(path);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) dir = ".";
    const std::string full = dir + "/" + program;
    if (::access(full.c_str(), X_OK) == 0 && !std::filesystem::is_directory(full)) return full;
  }
  return "";
}

namespace {

// A gnuplot single-quoted string ('' stands for ').
std::string gp_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

// A temp folder removed on scope exit.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "diffsde-plot-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw Error(std::string("cannot make a temp folder: ") + std::strerror(errno));
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace

void write_work_precision_plot(const Report& report, const std::string& png_path, const std::string& gnuplot) {
  const std::string program = find_program(gnuplot);
  if (program.empty())
    throw Error("gnuplot not found on PATH, so no plot was made (install gnuplot-nox; scripts/install-deps.sh does)");
  TempDir tmp;
  const std::string data_path = tmp.path() + "/data.dat";
  const std::string script_path = tmp.path() + "/plot.gp";
  const std::string log_path = tmp.path() + "/gnuplot.log";
  const std::string out_tmp = png_path + ".tmp." + std::to_string(::getpid()) + ".png";

  std::ostringstream data, plot;
  int block = 0;
  for (const auto& row : report.rows) {
    std::vector<std::pair<double, double>> xy;
    for (const auto& [key, p] : row.points)
      if (p.seeds > 0 && !p.failed && p.value > 0 && std::isfinite(p.value) && p.nfe > 0) xy.emplace_back(p.nfe, p.value);
    if (xy.empty()) continue;
    std::sort(xy.begin(), xy.end());
    if (block > 0) data << "\n\n";
    data << std::setprecision(17);
    for (const auto& [x, y] : xy) data << x << " " << y << "\n";
    plot << (block > 0 ? ", \\\n     " : "") << gp_quote(data_path) << " index " << block
         << " using 1:2 with linespoints lw 1.5 lt " << (block % 8) + 1 << " dt " << (block / 8) % 5 + 1 << " pt "
         << (block % 13) + 1 << " title " << gp_quote(row.label);
    ++block;
  }
  if (block == 0) throw Error("nothing to plot: no cell has a positive value of " + report.metric);
  std::ostringstream script;
  script << "set terminal pngcairo size 1500,900 noenhanced font 'sans,10'\n"
         << "set output " << gp_quote(out_tmp) << "\n"
         << "set logscale xy\n"
         << "set format y '%.0e'\n"
         << "set grid xtics ytics mxtics mytics\n"
         << "set xlabel 'NFE (model evaluations per sample)'\n"
         << "set ylabel " << gp_quote(report.metric) << "\n"
         << "set title " << gp_quote("work-precision: " + report.metric + " against NFE") << "\n"
         << "set key outside right top font ',8' spacing 0.9\n"
         << "plot " << plot.str() << "\n";
  write_file_atomic(data_path, data.str());
  write_file_atomic(script_path, script.str());

  // gnuplot SCRIPT, its output and errors to the log.
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  std::vector<char*> argv = {const_cast<char*>(program.c_str()), const_cast<char*>(script_path.c_str()), nullptr};
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw Error("cannot run " + program + ": " + std::strerror(rc));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  std::error_code ec;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !std::filesystem::exists(out_tmp, ec)) {
    std::string log;
    try {
      log = read_file(log_path);
    } catch (const Error&) {
    }
    std::filesystem::remove(out_tmp, ec);
    throw Error("gnuplot failed to draw " + png_path + (log.empty() ? std::string() : ": " + log));
  }
  if (std::rename(out_tmp.c_str(), png_path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::filesystem::remove(out_tmp, ec);
    throw IoError(png_path, "cannot rename the plot into place: " + why);
  }
}

}  // namespace diffsde
