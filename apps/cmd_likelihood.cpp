// `diffsde likelihood CONFIG.json --data X.npy --out nll.jsonl [--summary S.json]
//  [--first I] [--count N]`: per-row negative log-likelihoods (PF-ODE) or variational
// bounds (VLB), one JSON line per data row, and a summary.
#include <algorithm>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "commands.hpp"
#include "diffsde/error.hpp"
#include "diffsde/io.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/likelihood.hpp"
#include "diffsde/likelihood_config.hpp"
#include "diffsde/npy.hpp"
#include "diffsde/progress.hpp"
#include "diffsde/provenance.hpp"
#include "diffsde/vlb.hpp"

namespace diffsde::cli {

namespace {

using nlohmann::json;

constexpr double kLn2 = 0.69314718055994530941723212145818;

// Rows first .. first + count - 1 of the data file, each row flattened (an image array
// (n, C, H, W) gives rows of C H W values).
State read_data(const std::string& path, int dim, long first, long count) {
  const NpyArray a = read_npy(path);
  if (a.shape.empty()) throw IoError(path, "expected an array of shape (rows, ...), got a scalar");
  const std::size_t rows = a.shape[0];
  std::size_t cols = 1;
  for (std::size_t k = 1; k < a.shape.size(); ++k) cols *= a.shape[k];
  if (a.shape.size() == 1) cols = 1;
  if (cols != static_cast<std::size_t>(dim))
    throw IoError(path, "has " + std::to_string(cols) + " values per row, the model's dim is " +
                            std::to_string(dim));
  if (first < 0 || static_cast<std::size_t>(first) > rows)
    throw IoError(path, "--first " + std::to_string(first) + " is beyond its " +
                            std::to_string(rows) + " rows");
  const std::size_t available = rows - static_cast<std::size_t>(first);
  const std::size_t n =
      count < 0 ? available : std::min<std::size_t>(available, static_cast<std::size_t>(count));
  State x(static_cast<Eigen::Index>(n), dim);
  for (std::size_t r = 0; r < n; ++r)
    for (int c = 0; c < dim; ++c)
      x(static_cast<Eigen::Index>(r), c) =
          a.data[(static_cast<std::size_t>(first) + r) * cols + static_cast<std::size_t>(c)];
  if (!x.isFinite().all()) {
    for (Eigen::Index r = 0; r < x.rows(); ++r)
      for (Eigen::Index c = 0; c < x.cols(); ++c)
        if (!std::isfinite(x(r, c)))
          throw IoError(path, "row " + std::to_string(first + r) + ", column " + std::to_string(c) +
                                  " is not finite");
  }
  return x;
}

// Mean and standard error of the mean over rows.
std::pair<double, double> mean_stderr(const BatchVector& v) {
  const double n = static_cast<double>(v.size());
  if (v.size() == 0) return {std::numeric_limits<double>::quiet_NaN(), 0.0};
  const double mean = v.mean();
  if (v.size() < 2) return {mean, 0.0};
  const double var = (v - mean).square().sum() / (n - 1);
  return {mean, std::sqrt(var / n)};
}

// A JSON number, or null where it is not finite (JSON has no NaN).
json number(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

json numbers(const double* v, Eigen::Index n) {
  json a = json::array();
  for (Eigen::Index i = 0; i < n; ++i) a.push_back(number(v[i]));
  return a;
}

int run_likelihood(const std::string& config_path, const std::string& data_path,
                   const std::string& out_path, const std::string& summary_path, long first,
                   long count, bool quiet) {
  const json config_json = read_json_file(config_path);
  LikelihoodJob job;
  try {
    job = build_likelihood_job(parse_likelihood_config(config_json, parent_dir(config_path)));
  } catch (const ConfigError& e) {
    throw ConfigError(e.path(), e.message() + " (in " + config_path + ")");
  }
  // Every output can be written: checked before the run, not found out after it.
  for (const std::string& path : {out_path, summary_path})
    if (!path.empty()) check_writable(path);
  const LikelihoodConfig& config = job.config;
  const int dim = job.model->dim();
  const State data = read_data(data_path, dim, first, count);
  if (config.data == DataKind::image8) {
    try {
      image8_levels(data);
    } catch (const Error& e) {
      throw IoError(data_path,
                    std::string("data_kind image8: ") + e.what() + " (rows counted from --first)");
    }
  }
  const auto* analytic = dynamic_cast<const AnalyticModel*>(job.model.get());
  const auto first_sample = static_cast<std::uint64_t>(first);
  try {
    bind_likelihood_data(job, static_cast<long>(data.rows()), first_sample);
  } catch (const ConfigError& e) {
    throw ConfigError(e.path(), e.message() + " (in " + config_path + ")");
  }
  // Each row's exact density given its inputs (a labelled mixture: its class's).
  ModelRows data_rows;
  data_rows.inputs = job.cond && !job.cond->empty() ? job.cond.get() : nullptr;

  std::cout << "likelihood (" << to_string(config.method) << ") of " << data.rows() << " rows of "
            << data_path << " (dim " << dim << ") under " << job.model->name() << " on "
            << job.schedule->name() << "\n";

  const json provenance = provenance_json(with_defaults(config_json),
                                         config_input_files(config_json, parent_dir(config_path), {config_path, data_path}));
  std::ostringstream lines;
  json summary = {{"method", to_string(config.method)},
                  {"model", job.model->name()},
                  {"schedule", job.schedule->name()},
                  {"data", data_path},
                  {"data_kind", to_string(config.data)},
                  {"first", first},
                  {"rows", data.rows()},
                  {"dim", dim},
                  {"seed", config.seed}};
  BatchVector nll, se, bpd, bpd_se, nfe;
  double seconds = 0;
  BatchVector exact(data.rows());
  bool has_exact = analytic != nullptr && config.data == DataKind::continuous;
  if (has_exact) {
    analytic->log_density_rows(data, 0.0, data_rows, exact);
    exact = -exact;
  }

  ProgressReporter reporter("likelihood", progress_style(quiet), std::cerr);
  const auto rows_text = [](long done, long rows) { return std::to_string(done) + "/" + std::to_string(rows) + " rows"; };
  const auto report = [&](double fraction, long done, long rows) { reporter.update(fraction, rows_text(done, rows)); };
  if (config.method == LikelihoodMethod::pf_ode) {
    LikelihoodOptions o = config.pf_ode;
    o.first_sample = first_sample;
    o.cond = job.cond;
    o.progress = report;
    const LikelihoodResult r = pf_ode_likelihood(*job.model, *job.schedule, data, o);
    BatchVector exact_t_min(data.rows());
    if (has_exact) {
      analytic->log_density_rows(data, r.t_min, data_rows, exact_t_min);
      exact_t_min = -exact_t_min;
    }
    nll = r.nll;
    se = r.nll_stderr;
    bpd = r.bpd;
    bpd_se = r.bpd_stderr;
    nfe.resize(data.rows());
    for (Eigen::Index i = 0; i < data.rows(); ++i) {
      nfe(i) = static_cast<double>(r.nfe[static_cast<std::size_t>(i)]);
      json line = {{"index", first + i},
                   {"nll", number(r.nll(i))},
                   {"stderr", number(r.nll_stderr(i))},
                   {"bpd", number(r.bpd(i))},
                   {"bpd_stderr", number(r.bpd_stderr(i))},
                   {"nfe", r.nfe[static_cast<std::size_t>(i)]},
                   {"steps", r.accepted[static_cast<std::size_t>(i)]},
                   {"rejected", r.rejected[static_cast<std::size_t>(i)]},
                   {"prior_logp", number(r.prior_logp(i))},
                   {"delta_logp", number(r.delta_logp(i))}};
      if (has_exact) {
        line["exact_nll"] = number(exact(i));
        line["exact_nll_t_min"] = number(exact_t_min(i));
      }
      lines << line.dump() << "\n";
    }
    seconds = r.seconds;
    reporter.finish(rows_text(static_cast<long>(data.rows()), static_cast<long>(data.rows())));
    summary["solver"] = {{"stepper", to_string(o.ode.stepper)},
                         {"rtol", o.ode.rtol},
                         {"atol", o.ode.atol},
                         {"steps", o.steps}};
    summary["t_min"] = r.t_min;
    summary["t_max"] = r.t_max;
    summary["trace"] = {{"method", to_string(o.trace)}, {"jvp", to_string(o.jvp)}};
    if (o.trace == TraceMethod::hutchinson) {
      summary["trace"]["probes"] = o.probes;
      summary["trace"]["distribution"] = to_string(o.distribution);
    }
    if (has_exact) summary["mean_exact_nll_t_min"] = number(exact_t_min.mean());
  } else {
    VlbOptions o = config.vlb;
    o.first_sample = first_sample;
    o.cond = job.cond;
    o.progress = report;
    const VlbResult r = variational_bound(*job.model, *job.schedule, data, o);
    nll = r.total;
    se = r.total_stderr;
    bpd = r.bpd;
    bpd_se = r.bpd_stderr;
    nfe = BatchVector::Constant(data.rows(), static_cast<double>(r.nfe_per_sample));
    const long N = r.chain.steps();
    const double per_dim = dim * kLn2;
    for (Eigen::Index i = 0; i < data.rows(); ++i) {
      json line = {{"index", first + i},
                   {"nll", number(r.total(i))},
                   {"stderr", number(r.total_stderr(i))},
                   {"bpd", number(r.bpd(i))},
                   {"bpd_stderr", number(r.bpd_stderr(i))},
                   {"nfe", r.nfe_per_sample},
                   {"L_T", number(r.prior_term(i))},
                   {"L_0", number(r.decoder_term(i))},
                   {"L_0_stderr", number(r.decoder_stderr(i))}};
      if (has_exact) line["exact_nll"] = number(exact(i));
      if (o.per_term) {
        line["terms"] = numbers(&r.terms(i, 0), N + 1);
        line["terms_stderr"] = numbers(&r.terms_stderr(i, 0), N + 1);
      }
      lines << line.dump() << "\n";
    }
    seconds = r.seconds;
    reporter.finish(rows_text(static_cast<long>(data.rows()), static_cast<long>(data.rows())));
    summary["vlb"] = {{"steps", N},
                      {"variance", to_string(o.variance)},
                      {"draws", o.draws},
                      {"decoder", config.data == DataKind::image8 ? "discretized" : "gaussian"}};
    json terms_bpd = json::array(), terms_bpd_se = json::array();
    for (std::size_t k = 0; k < r.term_mean.size(); ++k) {
      terms_bpd.push_back(number(r.term_mean[k] / per_dim));
      terms_bpd_se.push_back(number(r.term_mean_stderr[k] / per_dim));
    }
    summary["terms_bpd"] = terms_bpd;  // L_0, L_1, ..., L_{N-1}, L_T
    summary["terms_bpd_stderr"] = terms_bpd_se;
    summary["L_T_bpd"] = number(r.term_mean.back() / per_dim);
    summary["L_0_bpd"] = number(r.term_mean.front() / per_dim);
  }

  const auto [mean_nll, mean_nll_se] = mean_stderr(nll);
  const auto [mean_bpd, mean_bpd_se] = mean_stderr(bpd);
  const double n = std::max<double>(1.0, static_cast<double>(data.rows()));
  summary["mean_nll"] = number(mean_nll);
  summary["mean_nll_stderr"] = number(mean_nll_se);
  summary["mean_bpd"] = number(mean_bpd);
  summary["mean_bpd_stderr"] = number(mean_bpd_se);
  summary["estimator_bpd_stderr"] = number(std::sqrt(bpd_se.square().sum()) / n);
  summary["mean_nfe"] = number(nfe.size() ? nfe.mean() : 0.0);
  summary["seconds"] = seconds;
  if (has_exact) {
    const auto [mean_exact, mean_exact_se] = mean_stderr(exact);
    summary["mean_exact_nll"] = number(mean_exact);
    summary["mean_exact_bpd"] = number(mean_exact / (dim * kLn2));
    summary["mean_gap_nll"] = number((nll - exact).mean());
    summary["mean_gap_nll_stderr"] = number(mean_stderr(nll - exact).second);
    (void)mean_exact_se;
  }

  write_file_atomic(out_path, lines.str());
  summary["provenance"] = provenance;
  if (!summary_path.empty()) write_file_atomic(summary_path, summary.dump(2) + "\n");

  std::cout << std::setprecision(5) << "mean " << mean_bpd << " +- " << mean_bpd_se
            << " bits/dim (nll " << mean_nll << " +- " << mean_nll_se << " nats; estimator "
            << "stderr " << summary["estimator_bpd_stderr"].get<double>() << " bits/dim), "
            << std::setprecision(4) << summary["mean_nfe"].get<double>() << " NFE/row, " << seconds
            << " s\n";
  if (has_exact)
    std::cout << std::setprecision(6) << "exact: mean nll "
              << summary["mean_exact_nll"].get<double>() << " nats ("
              << summary["mean_exact_bpd"].get<double>() << " bits/dim); mean gap "
              << summary["mean_gap_nll"].get<double>() << " +- "
              << summary["mean_gap_nll_stderr"].get<double>() << " nats\n";
  std::cout << "wrote " << out_path << "\n";
  if (!summary_path.empty()) std::cout << "wrote " << summary_path << "\n";
  return 0;
}

}  // namespace

void add_likelihood_command(CLI::App& app, Commands& commands) {
  auto* cmd = app.add_subcommand(
      "likelihood", "Per-row NLL and bits/dim: PF-ODE likelihood or the DDPM variational bound");
  struct Options {
    std::string config_path, data_path, out_path, summary_path;
    long first = 0, count = -1;
    bool quiet = false;
  };
  auto o = std::make_shared<Options>();
  cmd->add_option("config", o->config_path, "Config file (JSON)")->required();
  cmd->add_option("--data", o->data_path, "Data (.npy, rows x dim, or (rows, C, H, W))")
      ->required();
  cmd->add_option("--out", o->out_path, "Write one JSON line per row here (.jsonl)")->required();
  cmd->add_option("--summary", o->summary_path, "Write the summary (JSON) here");
  cmd->add_option("--first", o->first, "First data row (its global index keys the noise)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--count", o->count, "Number of rows (default: all from --first)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--quiet", o->quiet,
                "No progress on stderr (otherwise a bar on a terminal, a line every 10 s in a log)");
  commands.push_back({cmd, [o] {
                        return run_likelihood(o->config_path, o->data_path, o->out_path,
                                              o->summary_path, o->first, o->count, o->quiet);
                      }});
}

}  // namespace diffsde::cli
