#include "diffsde/config.hpp"

#include <algorithm>
#include <cmath>

#include "diffsde/error.hpp"
#include "diffsde/registry.hpp"

namespace diffsde {

using nlohmann::json;

json default_sample_config() {
  return json::parse(R"({
    "schedule": {"name": "vp_linear", "beta0": 0.1, "beta1": 20},
    "model": {"name": "gmm"},
    "grid": {"name": "time_uniform", "t_start": 1, "t_end": 0.001, "steps": 500},
    "solver": {"name": "euler_maruyama"},
    "batch": 10000,
    "seed": 0
  })");
}

namespace {

const std::vector<std::string> kSampleKeys = {"schedule", "model",  "grid",     "solver",
                                              "batch",    "seed",   "first_sample", "init",
                                              "noise",    "threads", "cond",   "uncond",
                                              "guidance", "thresholding"};

}  // namespace

SampleConfig parse_sample_config(const json& config, const std::string& base_dir) {
  if (!config.is_object()) throw ConfigError("", "the configuration must be a JSON object");
  check_keys(config, kSampleKeys, "");
  for (const char* key : {"schedule", "model", "grid", "solver"}) {
    if (!config.contains(key)) throw ConfigError(key, "is required");
    const json& v = config.at(key);
    if (!v.is_object() && !v.is_string())
      throw ConfigError(key, "expected an object {\"name\": ..., parameters...}");
  }
  SampleConfig out;
  static_cast<ProblemSpec&>(out) = parse_problem(config, "", ProblemRules{}, base_dir);
  out.grid = config.at("grid");
  out.solver = config.at("solver");
  if (config.contains("threads")) {
    const auto n = non_negative_integer(config.at("threads"), "threads");
    if (n > static_cast<std::uint64_t>(DriverOptions::kMaxThreads))
      throw ConfigError("threads", "must be between 0 (all cores) and " +
                                       std::to_string(DriverOptions::kMaxThreads));
    out.threads = static_cast<int>(n);
  }
  return out;
}

SampleJob build_sample_job(const SampleConfig& config) {
  SampleJob job;
  job.config = config;
  Problem problem = build_problem(config);
  job.schedule = problem.schedule;
  job.base_model = problem.base_model;
  job.cond = problem.cond;
  const BuildContext& context = problem.context;
  job.grid = grid_registry().create(config.grid, "grid", context);
  std::vector<double> model_times;
  try {
    job.times = job.grid->times(*job.schedule);
    model_times = job.grid->model_times(*job.schedule);
  } catch (const ConfigError& e) {
    throw e.prefixed("grid");
  }
  retime_problem(config, problem, job.times, model_times);
  job.model = problem.model;
  job.solver = solver_registry().create(config.solver, "solver", context);
  check_batch_memory(config.batch, job.model->dim(), "batch");
  job.x = problem_initial_state(config, job.model->dim(), config.seed);
  // Initial noise (not a given init) at the prior's scale: sigma(t_start) on ve and edm.
  if (config.init.empty() && !job.times.empty()) {
    const double scale = job.schedule->prior_std(job.times.front());
    if (scale != 1) job.x *= scale;
  }
  job.noise = make_problem_noise(config, "philox", config.seed, std::min(job.times.front(), job.times.back()),
                                 std::max(job.times.front(), job.times.back()));
  // The solver against the grid and the noise before any step, as a sweep checks its cells:
  // the guards its traits declare and its own checks in init, on one row.
  SolverContext probe(*job.schedule, *job.model, job.noise.get());
  try {
    check_solver_grid(job.solver->traits(), *job.schedule, job.times, job.model.get());
    job.solver->init(probe, State::Zero(1, job.model->dim()), job.times);
  } catch (const ConfigError&) {
    throw;
  } catch (const Error& e) {
    throw ConfigError("solver", e.what());
  }
  return job;
}

Summary run_sample_job(SampleJob& job, const std::vector<Observer*>& observers,
                       const std::function<bool(const Progress&)>& progress) {
  DriverOptions options;
  options.threads = job.config.threads;
  options.progress = progress;
  return integrate(*job.solver, *job.schedule, *job.model, job.times, job.x, job.noise.get(),
                   observers, options);
}

nlohmann::json summary_json(const SampleJob& job, const Summary& summary) {
  json out = {{"solver", summary.solver},
              {"schedule", job.schedule->name()},
              {"model", job.model->name()},
              {"grid", job.grid->name()},
              {"steps", summary.steps},
              {"nfe", summary.nfe},
              {"network_rows", summary.network_rows},
              {"accepted", summary.accepted},
              {"rejected", summary.rejected},
              {"draws", summary.draws},
              {"seconds", summary.seconds},
              {"threads", summary.threads},
              {"t_start", summary.t_start},
              {"t_end", summary.t_end},
              {"batch", job.x.rows()},
              {"dim", job.x.cols()},
              {"seed", job.config.seed}};
  // The exact densities are those of the registry's model; with conditioning, each
  // sample's log-density is that of its own inputs (a labelled mixture: its class).
  const auto* analytic = dynamic_cast<const AnalyticModel*>(job.base_model ? job.base_model.get() : job.model.get());
  if (analytic != nullptr && job.x.rows() > 1) {
    const Eigen::MatrixXd x = job.x.matrix();
    const Eigen::VectorXd mean = x.colwise().mean().transpose();
    const Eigen::MatrixXd centered = x.rowwise() - mean.transpose();
    const Eigen::MatrixXd cov = centered.transpose() * centered / static_cast<double>(x.rows() - 1);
    BatchVector logp(job.x.rows());
    ModelRows rows;
    rows.inputs = job.cond && !job.cond->empty() ? job.cond.get() : nullptr;
    analytic->log_density_rows(job.x, 0.0, rows, logp);
    auto to_json = [](const Eigen::MatrixXd& m) {
      json a = json::array();
      for (Eigen::Index i = 0; i < m.rows(); ++i) {
        json row = json::array();
        for (Eigen::Index j = 0; j < m.cols(); ++j) row.push_back(m(i, j));
        a.push_back(m.cols() == 1 ? row[0] : row);
      }
      return a;
    };
    out["sample_mean"] = to_json(mean);
    out["data_mean"] = to_json(analytic->data_mean());
    out["sample_covariance"] = to_json(cov);
    out["data_covariance"] = to_json(analytic->data_covariance());
    out["mean_log_density"] = logp.mean();
  }
  return out;
}

}  // namespace diffsde
