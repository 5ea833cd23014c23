#include "diffsde/config.hpp"

#include <cmath>

#include "diffsde/error.hpp"
#include "diffsde/io.hpp"
#include "diffsde/npy.hpp"
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

const std::vector<std::string> kSampleKeys = {"schedule", "model", "grid",  "solver",
                                              "batch",    "seed",  "first_sample", "init",
                                              "noise",    "threads"};

const std::vector<ParamSpec>& noise_specs(const std::string& name) {
  static const std::vector<ParamSpec> none;
  static const std::vector<ParamSpec> tree = {
      {"depth", ParamType::integer, 20,
       "levels of Brownian-bridge bisection; W is linear below 2^-depth of the span"}};
  static const std::vector<ParamSpec> replay = {
      {"path", ParamType::string, nullptr, ".npy of standard normals, shape (draws, batch, dim)"}};
  if (name == "brownian_tree") return tree;
  if (name == "replay") return replay;
  return none;
}

}  // namespace

SampleConfig parse_sample_config(const json& config, const std::string& base_dir) {
  if (!config.is_object()) throw ConfigError("", "the configuration must be a JSON object");
  for (const auto& [key, value] : config.items()) {
    bool known = false;
    for (const auto& k : kSampleKeys) known = known || k == key;
    if (!known) {
      std::string list;
      for (const auto& k : kSampleKeys) list += (list.empty() ? "" : ", ") + k;
      throw ConfigError(key, "unknown key; known: " + list);
    }
  }
  SampleConfig out;
  out.base_dir = base_dir;
  for (const char* key : {"schedule", "model", "grid", "solver"}) {
    if (!config.contains(key)) throw ConfigError(key, "is required");
    const json& v = config.at(key);
    if (!v.is_object() && !v.is_string())
      throw ConfigError(key, "expected an object {\"name\": ..., parameters...}");
  }
  out.schedule = config.at("schedule");
  out.model = config.at("model");
  out.grid = config.at("grid");
  out.solver = config.at("solver");
  if (config.contains("batch")) {
    const auto b = non_negative_integer(config.at("batch"), "batch");
    if (b < 1 || b > (1ull << 31)) throw ConfigError("batch", "must be between 1 and 2^31");
    out.batch = static_cast<long>(b);
  }
  if (config.contains("seed")) out.seed = non_negative_integer(config.at("seed"), "seed");
  if (config.contains("first_sample"))
    out.first_sample = non_negative_integer(config.at("first_sample"), "first_sample");
  if (config.contains("threads")) {
    const auto n = non_negative_integer(config.at("threads"), "threads");
    if (n > static_cast<std::uint64_t>(DriverOptions::kMaxThreads))
      throw ConfigError("threads", "must be between 0 (all cores) and " +
                                       std::to_string(DriverOptions::kMaxThreads));
    out.threads = static_cast<int>(n);
  }
  if (config.contains("init")) {
    const json& v = config.at("init");
    if (!v.is_string()) throw ConfigError("init", "expected the path of a .npy file");
    out.init = v.get<std::string>();
  }
  if (config.contains("noise")) {
    const json& v = config.at("noise");
    if (v.is_string()) {
      out.noise = json{{"name", "replay"}, {"path", v}};
    } else if (v.is_object()) {
      out.noise = v;
    } else {
      throw ConfigError("noise", "expected a .npy path or an object {\"name\": ...}");
    }
    const std::string name = registry_name_of(out.noise, "noise");
    if (name != "philox" && name != "brownian_tree" && name != "replay")
      throw ConfigError("noise.name", "unknown noise source '" + name +
                                          "'; known: philox, brownian_tree, replay");
    Params(out.noise, noise_specs(name), "noise");  // checks keys and types now
  }
  return out;
}

State initial_noise(std::uint64_t seed, std::uint64_t first_sample, long batch, int dim) {
  State x(batch, dim);
  for (long r = 0; r < batch; ++r)
    philox_normals(seed, NoiseStream::init, first_sample + static_cast<std::uint64_t>(r), 0,
                   x.row(r).data(), dim);
  return x;
}

SampleJob build_sample_job(const SampleConfig& config) {
  SampleJob job;
  job.config = config;
  std::shared_ptr<Schedule> schedule = schedule_registry().create(config.schedule, "schedule");
  job.schedule = schedule;
  const BuildContext context{job.schedule, config.base_dir};
  job.model = model_registry().create(config.model, "model", context);
  job.grid = grid_registry().create(config.grid, "grid", context);
  try {
    job.times = job.grid->times(*job.schedule);
  } catch (const ConfigError& e) {
    throw e.prefixed("grid");
  }
  job.solver = solver_registry().create(config.solver, "solver", context);
  const int dim = job.model->dim();

  if (!config.init.empty()) {
    const std::string path = resolve_path(config.base_dir, config.init);
    job.x = read_npy_state(path);
    if (job.x.rows() != config.batch || job.x.cols() != dim)
      throw IoError(path, "init must have shape (" + std::to_string(config.batch) + ", " +
                              std::to_string(dim) + ") = (batch, model dim), got (" +
                              std::to_string(job.x.rows()) + ", " + std::to_string(job.x.cols()) + ")");
  } else {
    job.x = initial_noise(config.seed, config.first_sample, config.batch, dim);
  }

  const std::string noise = config.noise.is_null() ? "philox" : registry_name_of(config.noise, "noise");
  if (noise == "philox") {
    job.noise = std::make_unique<PhiloxNoise>(config.seed, config.first_sample);
  } else if (noise == "brownian_tree") {
    const Params p(config.noise, noise_specs(noise), "noise");
    const long depth = p.integer("depth");
    if (depth < 1 || depth > 30) p.fail("depth", "must be between 1 and 30");
    const double lo = std::min(job.times.front(), job.times.back());
    const double hi = std::max(job.times.front(), job.times.back());
    job.noise = std::make_unique<BrownianTreeNoise>(config.seed, lo, hi, static_cast<int>(depth),
                                                    config.first_sample);
  } else {
    const Params p(config.noise, noise_specs(noise), "noise");
    auto replay = ReplayNoise::from_npy(resolve_path(config.base_dir, p.string("path")));
    job.noise = std::move(replay);
  }
  return job;
}

Summary run_sample_job(SampleJob& job, const std::vector<Observer*>& observers) {
  DriverOptions options;
  options.threads = job.config.threads;
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
  const auto* analytic = dynamic_cast<const AnalyticModel*>(job.model.get());
  if (analytic != nullptr && job.x.rows() > 1) {
    const Eigen::MatrixXd x = job.x.matrix();
    const Eigen::VectorXd mean = x.colwise().mean().transpose();
    const Eigen::MatrixXd centered = x.rowwise() - mean.transpose();
    const Eigen::MatrixXd cov = centered.transpose() * centered / static_cast<double>(x.rows() - 1);
    BatchVector logp(job.x.rows());
    analytic->log_density(job.x, 0.0, logp);
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
