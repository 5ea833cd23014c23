// Registry entries of the built-in models: "gaussian" and "gmm" (analytic data
// distributions bound to the run's schedule, scores/) and "torchscript" (its factory is set
// by diffsde::torch).
#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "diffsde/model.hpp"
#include "diffsde/builtins.hpp"
#include "diffsde/scores/analytic.hpp"
#include "diffsde/scores/torch_model.hpp"

namespace diffsde {

namespace {

using nlohmann::json;

std::shared_ptr<const Schedule> schedule_of(const Params& params, const BuildContext& ctx,
                                            const std::string& model) {
  if (!ctx.schedule)
    throw ConfigError(params.path(), "the " + model +
                                         " model needs a schedule (BuildContext::schedule is not set)");
  return ctx.schedule;
}

// "1 row", "3 rows"; "1 entry", "2 entries".
std::string count(std::size_t n, const std::string& one, const std::string& many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// A rectangular K x dim matrix from params.matrix(name); errors name the JSON path.
// `rows_for` explains what the expected row count is ("one per weight").
Eigen::MatrixXd rectangular(const Params& params, const std::string& name, std::size_t rows,
                            const std::string& rows_for, std::size_t cols) {
  const auto m = params.matrix(name);
  const std::string given = params.given(name) ? "" : " (the default)";
  if (m.size() != rows)
    params.fail(name, "expected " + count(rows, "row", "rows") + " (" + rows_for + "), got " +
                          std::to_string(m.size()) + given);
  Eigen::MatrixXd out(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
  for (std::size_t k = 0; k < rows; ++k) {
    if (m[k].size() != cols)
      params.fail(name, "row " + std::to_string(k) + " has " + count(m[k].size(), "entry", "entries") +
                            ", expected " + std::to_string(cols) + " (the data dimension)" + given);
    for (std::size_t j = 0; j < cols; ++j)
      out(static_cast<Eigen::Index>(k), static_cast<Eigen::Index>(j)) = m[k][j];
  }
  return out;
}

std::unique_ptr<Model> make_gaussian(const Params& params, const BuildContext& ctx) {
  auto schedule = schedule_of(params, ctx, "gaussian");
  const auto mean = params.numbers("mean");
  auto std = params.numbers("std");
  if (mean.empty()) params.fail("mean", "must have at least one entry (the data dimension)");
  if (std.size() == 1 && mean.size() > 1) std.assign(mean.size(), std.front());
  if (std.size() != mean.size())
    params.fail("std", "expected " + count(mean.size(), "entry", "entries") +
                           " (one per mean entry) or 1 (shared by all axes), got " +
                           std::to_string(std.size()) + (params.given("std") ? "" : " (the default)"));
  for (std::size_t j = 0; j < std.size(); ++j)
    if (!(std[j] > 0.0))
      params.fail("std", "entry " + std::to_string(j) + " must be > 0, got " + json(std[j]).dump());
  Eigen::VectorXd m = Eigen::Map<const Eigen::VectorXd>(mean.data(), static_cast<Eigen::Index>(mean.size()));
  Eigen::VectorXd s = Eigen::Map<const Eigen::VectorXd>(std.data(), static_cast<Eigen::Index>(std.size()));
  return std::make_unique<GaussianModel>(std::move(schedule), std::move(m), std::move(s));
}

std::unique_ptr<Model> make_gmm(const Params& params, const BuildContext& ctx) {
  auto schedule = schedule_of(params, ctx, "gmm");
  const auto weights = params.numbers("weights");
  if (weights.empty()) params.fail("weights", "must have at least one entry (one per component)");
  for (std::size_t k = 0; k < weights.size(); ++k)
    if (!(weights[k] > 0.0))
      params.fail("weights", "entry " + std::to_string(k) + " must be > 0, got " +
                                 json(weights[k]).dump());
  const auto raw_means = params.matrix("means");
  const std::size_t dim = raw_means.empty() ? 0 : raw_means.front().size();
  if (dim == 0 && !raw_means.empty()) params.fail("means", "row 0 is empty (the data dimension must be >= 1)");
  const Eigen::MatrixXd means = rectangular(params, "means", weights.size(), "one per weight", dim);

  // stds: K x dim, or a single row shared by every component.
  Eigen::MatrixXd stds;
  if (params.matrix("stds").size() == 1 && weights.size() > 1) {
    const Eigen::MatrixXd row = rectangular(params, "stds", 1, "one per weight, or one shared", dim);
    stds = row.replicate(static_cast<Eigen::Index>(weights.size()), 1);
  } else {
    stds = rectangular(params, "stds", weights.size(), "one per weight, or one shared", dim);
  }
  for (Eigen::Index k = 0; k < stds.rows(); ++k)
    for (Eigen::Index j = 0; j < stds.cols(); ++j)
      if (!(stds(k, j) > 0.0))
        params.fail("stds", "entry [" + std::to_string(k) + "][" + std::to_string(j) +
                                "] must be > 0, got " + json(stds(k, j)).dump());
  // classes: [[components of class 0], [of class 1], ...]
  std::vector<std::vector<int>> classes;
  if (params.has("classes")) {
    const json& c = params.value("classes");
    if (!c.is_array() || c.empty())
      params.fail("classes", "expected a non-empty list of lists of component indices, e.g. [[0], [1, 2]]");
    for (std::size_t k = 0; k < c.size(); ++k) {
      const std::string at = "class " + std::to_string(k) + " ";
      if (!c[k].is_array() || c[k].empty())
        params.fail("classes", at + "must be a non-empty list of component indices, got " + c[k].dump());
      std::vector<int> members;
      for (const json& m : c[k]) {
        if (!m.is_number_integer() || m.get<long>() < 0 || m.get<long>() >= static_cast<long>(weights.size()))
          params.fail("classes", at + "names " + m.dump() + "; the components are 0 .. " +
                                     std::to_string(weights.size() - 1));
        if (std::find(members.begin(), members.end(), m.get<int>()) != members.end())
          params.fail("classes", at + "names component " + m.dump() + " twice");
        members.push_back(m.get<int>());
      }
      classes.push_back(std::move(members));
    }
  }
  Eigen::VectorXd w = Eigen::Map<const Eigen::VectorXd>(weights.data(), static_cast<Eigen::Index>(weights.size()));
  return std::make_unique<GmmModel>(std::move(schedule), std::move(w), means, std::move(stds), std::move(classes));
}

json matrix_json(const Eigen::MatrixXd& m) {
  json rows = json::array();
  for (Eigen::Index k = 0; k < m.rows(); ++k) {
    json row = json::array();
    for (Eigen::Index j = 0; j < m.cols(); ++j) row.push_back(m(k, j));
    rows.push_back(std::move(row));
  }
  return rows;
}

ModelFactory& torchscript_factory() {
  static ModelFactory factory;
  return factory;
}

std::unique_ptr<Model> make_torchscript(const Params& params, const BuildContext& ctx) {
  if (!torchscript_factory())
    throw ConfigError(params.path_of("name"),
                      "this program was built without LibTorch, so TorchScript models are not "
                      "available (install libtorch-dev and configure with -DDIFFSDE_WITH_TORCH=ON; "
                      "applications call diffsde::enable_torch_models() from diffsde::torch)");
  return torchscript_factory()(params, ctx);
}

}  // namespace

void set_torchscript_factory(ModelFactory factory) { torchscript_factory() = std::move(factory); }
bool torch_models_enabled() { return static_cast<bool>(torchscript_factory()); }

namespace builtin {

void register_models(Registry<Model>& registry) {
  registry.add({"gaussian",
                "Diagonal Gaussian data N(mean, diag(std^2)); exact eps, score and log density at "
                "every t",
                {{"mean", ParamType::numbers, json::array({1.0, -1.0}),
                  "data mean, one entry per axis (its length is the data dimension)"},
                 {"std", ParamType::numbers, json::array({0.5, 2.0}),
                  "data standard deviation per axis (> 0); one value is shared by all axes"}},
                make_gaussian});

  // The defaults are the built-in 2-D mixture, so {"name": "gmm"} is GmmModel::builtin_2d.
  const GmmModel builtin = GmmModel::builtin_2d(std::make_shared<VpLinearSchedule>());
  json weights = json::array();
  for (Eigen::Index k = 0; k < builtin.weights().size(); ++k) weights.push_back(builtin.weights()(k));
  registry.add({"gmm",
                "Mixture of diagonal Gaussians sum_k w_k N(means[k], diag(stds[k]^2)); exact eps, "
                "score and log density at every t",
                {{"weights", ParamType::numbers, weights,
                  "component weights (> 0; normalised to sum to 1), one per component"},
                 {"means", ParamType::matrix, matrix_json(builtin.means()),
                  "component means, K x dim (one row per weight)"},
                 {"stds", ParamType::matrix, matrix_json(builtin.stds()),
                  "component standard deviations (> 0), K x dim, or 1 x dim shared by all "
                  "components"},
                 {"classes", ParamType::json, nullptr,
                  "labelled mixture: [[components of class 0], [of class 1], ...]; the model then "
                  "takes the input y (an int64 class per sample, -1: the whole mixture), and class "
                  "c's law is its components' mixture"}},
                make_gmm});

  registry.add({"torchscript",
                "A TorchScript network file predicting eps, x0, v or velocity (or EDM's F) from (x (B, *shape), t (B,)) and "
                "its declared inputs; needs the LibTorch build",
                {{"path", ParamType::string, nullptr, "the TorchScript file (.pt)"},
                 {"shape", ParamType::numbers, nullptr,
                  "per-sample shape, e.g. [1, 28, 28]; unset: from the file's diffsde.json metadata"},
                 {"device", ParamType::string, "cpu", "where the network runs: cpu, cuda or cuda:N"},
                 {"dtype", ParamType::string, "float32", "the network's dtype",
                  {"float32", "float64"}},
                 {"time_input", ParamType::string, nullptr,
                  "what the network takes as t: continuous t, or the discrete index t N - 1 of a "
                  "DDPM-trained network; unset: metadata, else continuous",
                  {"continuous", "discrete"}},
                 {"time_scale", ParamType::number, 1.0,
                  "continuous time input: the network takes t time_scale (diffusers' flow-matching networks "
                  "take sigma times num_train_timesteps)"},
                 {"discrete_steps", ParamType::integer, nullptr,
                  "N for discrete time input; unset: the vp_discrete schedule's N, else metadata"},
                 {"prediction", ParamType::string, nullptr,
                  "what the network predicts (converted to eps): eps, x0, v (alpha eps - sigma x0) or "
                  "velocity (eps - x0, flow matching); unset: metadata, else eps",
                  {"eps", "x0", "v", "velocity"}},
                 {"preconditioning", ParamType::string, "none",
                  "edm: the network is EDM's F, called on c_in x with time c_noise = log(sigma)/4 and "
                  "combined as D = c_skip x + c_out F (prediction v: c_out negated)",
                  {"none", "edm"}},
                 {"sigma_data", ParamType::number, 0.5, "EDM preconditioning's data standard deviation"},
                 {"max_batch", ParamType::integer, 0,
                  "evaluate larger batches in chunks of this many rows (0: whole batch)"},
                 {"threads", ParamType::integer, 0,
                  "LibTorch intra-op threads (0: LibTorch's default)"},
                 {"inputs", ParamType::json, nullptr,
                  "the inputs forward takes after x and t, passed by name: [{\"name\": \"y\", "
                  "\"type\": \"int64\" | \"float64\", \"shape\": [] (-1: any length), \"classes\": 10, "
                  "\"null\": 10, \"optional\": false}, ...]; unset: the file's metadata, else none"}},
                make_torchscript});
}

}  // namespace builtin

}  // namespace diffsde
