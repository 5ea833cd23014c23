// Work-precision benchmark (not a test): every registered solver variant at 5/10/20/50
// steps on the built-in 2-D Gaussian mixture. Deterministic solvers: the error of the
// samples against a tight-tolerance pf_ode dopri5 solve from the same x_T. Stochastic
// solvers: the Fréchet distance between Gaussian fits of the samples and of the data.
// Both with NFE and the solver's own time per step, model time excluded.
//
//   diffsde_bench [--batch 4096] [--steps 5,10,20,50] [--solver NAME ...]
#include <CLI/CLI.hpp>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "diffsde/driver.hpp"
#include "diffsde/grid.hpp"
#include "diffsde/noise.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/scores/analytic.hpp"

using namespace diffsde;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// Forwards to a model and adds up the time spent in it.
class TimedModel final : public Model {
 public:
  explicit TimedModel(const Model& inner) : inner_(inner) {}
  std::string name() const override { return inner_.name(); }
  int dim() const override { return inner_.dim(); }
  void eps(const ConstStateRef& x, double t, StateRef out) const override {
    const auto start = Clock::now();
    inner_.eps(x, t, out);
    seconds_ += std::chrono::duration<double>(Clock::now() - start).count();
  }
  double seconds() const { return seconds_; }
  void reset() { seconds_ = 0; }

 private:
  const Model& inner_;
  mutable double seconds_ = 0;
};

// Fréchet distance between N(m1, C1) and N(m2, C2):
// |m1 - m2|^2 + tr(C1 + C2 - 2 (C2^1/2 C1 C2^1/2)^1/2).
double frechet(const Eigen::VectorXd& m1, const Eigen::MatrixXd& c1, const Eigen::VectorXd& m2,
               const Eigen::MatrixXd& c2) {
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> e2(c2);
  const Eigen::MatrixXd s2 = e2.operatorSqrt();
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> mid(s2 * c1 * s2);
  const double cross = mid.eigenvalues().cwiseMax(0).cwiseSqrt().sum();
  return (m1 - m2).squaredNorm() + c1.trace() + c2.trace() - 2 * cross;
}

std::string label(const json& config) {
  std::string s = config["name"].get<std::string>();
  std::string params;
  for (const auto& [k, v] : config.items()) {
    if (k == "name" || k == "lower_order_final") continue;
    params += (params.empty() ? "" : ",") + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  }
  return params.empty() ? s : s + "(" + params + ")";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"diffsde work-precision benchmark on the built-in 2-D Gaussian mixture"};
  long batch = 4096;
  std::vector<int> steps_list = {5, 10, 20, 50};
  std::vector<std::string> only;
  app.add_option("--batch", batch, "samples per run");
  app.add_option("--steps", steps_list, "step counts")->delimiter(',');
  app.add_option("--solver", only, "only these solver names");
  CLI11_PARSE(app, argc, argv);

  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel gmm = GmmModel::builtin_2d(schedule);
  TimedModel model(gmm);
  const double t_start = 1.0, t_end = 1e-3;
  State x_T(batch, 2);
  for (long j = 0; j < batch; ++j) philox_normals(0, NoiseStream::init, j, 0, x_T.row(j).data(), 2);

  // Reference: the PF-ODE to 1e-10 from the same x_T.
  State reference = x_T;
  auto dopri = solver_registry().create(json{{"name", "pf_ode"}, {"stepper", "dopri5"}, {"rtol", 1e-10}, {"atol", 1e-10}}, "reference");
  const Summary ref = integrate(*dopri, *schedule, gmm, {t_start, t_end}, reference, nullptr);
  const Eigen::VectorXd data_mean = gmm.data_mean();
  const Eigen::MatrixXd data_cov = gmm.data_covariance();

  std::printf("# built-in 2-D GMM, vp_linear, logSNR grid t = %g -> %g, batch %ld\n", t_start, t_end, batch);
  std::printf("# reference: pf_ode dopri5 rtol = atol = 1e-10 (%ld NFE)\n", ref.nfe);
  std::printf("# ODE solvers: RMS error vs reference | SDE solvers: Frechet distance of Gaussian fits to the data\n");
  std::printf("| solver | kind | steps | NFE | error | solver us/step |\n| --- | --- | --- | --- | --- | --- |\n");
  for (const auto& entry : solver_registry().entries()) {
    if (!only.empty() && std::find(only.begin(), only.end(), entry.name) == only.end()) continue;
    std::vector<json> configs;
    if (entry.variants.empty()) configs.push_back(json::object());
    for (const auto& v : entry.variants) configs.push_back(v);
    for (json config : configs) {
      config["name"] = entry.name;
      if (config.contains("lower_order_final")) config["lower_order_final"] = true;  // as used in practice
      const auto traits = solver_registry().create(config, "solver")->traits();
      for (int steps : steps_list) {
        auto solver = solver_registry().create(config, "solver");
        std::vector<double> times;
        try {
          times = traits.adaptive ? std::vector<double>{t_start, t_end}
                                  : LogSnrGrid({t_start, t_end, steps}).times(*schedule);
          if (entry.name == "pf_ode" && config.value("stepper", "") == "adams_bashforth_moulton")
            times = TimeUniformGrid({t_start, t_end, steps}).times(*schedule);
        } catch (const Error&) {
          continue;
        }
        State x = x_T;
        PhiloxNoise noise(1);
        model.reset();
        Summary s;
        try {
          s = integrate(*solver, *schedule, model, times, x, &noise);
        } catch (const Error& e) {
          std::printf("| %s | %s | %d | - | failed: %s | - |\n", label(config).c_str(),
                      traits.stochastic ? "SDE" : "ODE", steps, e.what());
          continue;
        }
        const double solver_seconds = std::max(0.0, s.seconds - model.seconds());
        double error;
        if (traits.stochastic) {
          const Eigen::MatrixXd m = x.matrix();
          const Eigen::VectorXd mean = m.colwise().mean().transpose();
          const Eigen::MatrixXd centered = m.rowwise() - mean.transpose();
          const Eigen::MatrixXd cov = centered.transpose() * centered / static_cast<double>(batch - 1);
          error = frechet(mean, cov, data_mean, data_cov);
        } else {
          error = std::sqrt((x - reference).square().mean());
        }
        std::printf("| %s | %s | %s | %ld | %.3e | %.1f |\n", label(config).c_str(),
                    traits.stochastic ? "SDE" : "ODE", traits.adaptive ? "adaptive" : std::to_string(steps).c_str(),
                    s.nfe, error, 1e6 * solver_seconds / std::max<long>(s.accepted + s.rejected, 1));
        if (traits.adaptive) break;  // one row: the default tolerance
      }
    }
  }
  return 0;
}
