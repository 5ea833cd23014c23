// Work-precision benchmark (not a test): every registered solver variant at 5/10/20/50
// steps on the built-in 2-D Gaussian mixture. Deterministic solvers: the error of the
// samples against a tight-tolerance pf_ode dopri5 solve from the same x_T. Stochastic
// solvers: the Fréchet distance between Gaussian fits of the samples and of the data.
// Both with NFE and the solver's own time per step, model time excluded.
//
//   diffsde_bench [--batch 4096] [--steps 5,10,20,50] [--solver NAME ...]
//   diffsde_bench --throughput   first-order solvers against a hand-written loop
//   diffsde_bench --scaling [--solver NAME ...] [--repeats 5]
//                 every registered solver (defaults): samples x steps per second at batch
//                 1, 256 and 65,536, and at 65,536 on 1 and 2 threads side by side
//   diffsde_bench --scaling --batches 4096[,...] [--solver NAME ...] [--repeats 5]
//                 the same on one thread at the given batch sizes only
//   diffsde_bench --fixed-costs [--batches 4096,256] [--steps 5] [--repeats 5]
//                 ddim and dpm_solver at order 1: the solver's own time in init() and per
//                 step, model time excluded, a fresh solver per run
#include <CLI/CLI.hpp>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
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

// A hand-written first-order loop for comparison: DDIM(eta = 0) on the same mixture, with
// the step's coefficients computed once per step and eps computed sample by sample with
// std::exp (log-sum-exp over the components).
void reference_ddim_loop(const GmmModel& gmm, const Schedule& schedule, const std::vector<double>& times,
                         State& x) {
  const Eigen::Index K = gmm.weights().size();
  const Eigen::VectorXd log_w = gmm.weights().array().log();
  std::vector<double> logit(static_cast<std::size_t>(K));
  for (std::size_t i = 0; i + 1 < times.size(); ++i) {
    const ScheduleAt s = schedule.at(times[i]), t = schedule.at(times[i + 1]);
    const double cx = t.alpha / s.alpha, ceps = -t.sigma * std::expm1(t.lambda - s.lambda);
    // Per component and axis: variance and constants at time s.
    Eigen::MatrixXd mean = s.alpha * gmm.means(), var(K, 2);
    for (Eigen::Index k = 0; k < K; ++k)
      for (int j = 0; j < 2; ++j)
        var(k, j) = s.alpha * s.alpha * gmm.stds()(k, j) * gmm.stds()(k, j) + s.sigma * s.sigma;
    Eigen::VectorXd log_norm(K);
    for (Eigen::Index k = 0; k < K; ++k) log_norm[k] = log_w[k] - 0.5 * std::log(var(k, 0) * var(k, 1));
    for (Eigen::Index r = 0; r < x.rows(); ++r) {
      const double x0 = x(r, 0), x1 = x(r, 1);
      double m = -1e300;
      for (Eigen::Index k = 0; k < K; ++k) {
        const double d0 = x0 - mean(k, 0), d1 = x1 - mean(k, 1);
        logit[static_cast<std::size_t>(k)] = log_norm[k] - 0.5 * (d0 * d0 / var(k, 0) + d1 * d1 / var(k, 1));
        m = std::max(m, logit[static_cast<std::size_t>(k)]);
      }
      double z = 0, e0 = 0, e1 = 0;
      for (Eigen::Index k = 0; k < K; ++k) {
        const double w = std::exp(logit[static_cast<std::size_t>(k)] - m);
        z += w;
        e0 += w * (x0 - mean(k, 0)) / var(k, 0);
        e1 += w * (x1 - mean(k, 1)) / var(k, 1);
      }
      // eps = -sigma * score = sigma * sum_k r_k (x - mean_k) / var_k
      x(r, 0) = cx * x0 + ceps * s.sigma * e0 / z;
      x(r, 1) = cx * x1 + ceps * s.sigma * e1 / z;
    }
  }
}

// Samples x steps per second of a registered solver, best of `repeats`. One solver serves
// every repeat, so that the runs after the first find their work arrays allocated (fresh
// arrays cost page faults, ~20 us a page here, which would be timed as solver work).
double throughput(const json& config, const Schedule& schedule, const Model& model, long batch, int steps,
                  int repeats) {
  const auto times = TimeUniformGrid({1.0, 1e-3, steps}).times(schedule);
  State x_T(batch, 2);
  for (long j = 0; j < batch; ++j) philox_normals(0, NoiseStream::init, j, 0, x_T.row(j).data(), 2);
  double best = 1e300;
  auto solver = solver_registry().create(config, "solver");
  for (int r = 0; r < repeats; ++r) {
    PhiloxNoise noise(0);
    State x = x_T;
    best = std::min(best, integrate(*solver, schedule, model, times, x, &noise).seconds);
  }
  return static_cast<double>(batch) * steps / best;
}

void print_throughput() {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel gmm = GmmModel::builtin_2d(schedule);
  std::printf("# throughput on the built-in 2-D GMM, float64, one thread: M samples x steps / s\n");
  std::printf("| solver | batch 65536 | batch 1 |\n| --- | --- | --- |\n");
  for (const json& config : {json{{"name", "ddim"}}, json{{"name", "dpm_solver"}, {"order", 2}},
                             json{{"name", "euler_maruyama"}}, json{{"name", "ddpm"}}}) {
    if (solver_registry().find(config["name"]) == nullptr) continue;
    const double big = throughput(config, *schedule, gmm, 65536, 20, 3);
    const double one = throughput(config, *schedule, gmm, 1, 20000, 3);
    std::printf("| %s | %.1f | %.2f |\n", label(config).c_str(), big / 1e6, one / 1e6);
  }
  // The hand-written loop, same problem.
  for (long batch : {65536L, 1L}) {
    const int steps = batch == 1 ? 20000 : 20;
    const auto times = TimeUniformGrid({1.0, 1e-3, steps}).times(*schedule);
    State x_T(batch, 2);
    for (long j = 0; j < batch; ++j) philox_normals(0, NoiseStream::init, j, 0, x_T.row(j).data(), 2);
    double best = 1e300;
    for (int r = 0; r < 3; ++r) {
      State x = x_T;
      const auto start = Clock::now();
      reference_ddim_loop(gmm, *schedule, times, x);
      best = std::min(best, std::chrono::duration<double>(Clock::now() - start).count());
    }
    std::printf("%s%.2f", batch == 65536 ? "| hand-written DDIM loop (std::exp) | " : " | ",
                static_cast<double>(batch) * steps / best / 1e6);
  }
  std::printf(" |\n");
}

// Samples x steps per second of one solver configuration at one batch size and thread
// count, best of `repeats` runs (fewer once 2 s have been spent, more until 0.2 s
// have). Fixed-step solvers: batch x grid steps. Adaptive solvers (grid {1, 1e-3}):
// batch x step attempts, or, where each sample steps on its own, the attempts summed
// over the samples.
struct Rate {
  double samples_steps_per_second = 0;
  int threads = 1;  // threads the run used
  // Least CPU time (all threads) per sample x step: how much work the threads add, which
  // unlike the wall time does not depend on whether other processes hold the cores.
  double cpu_seconds_per_sample_step = 1e300;
};

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

Rate scaling_rate(const json& config, const Schedule& schedule, const Model& model, long batch,
                  int steps, int threads, int repeats) {
  auto solver = solver_registry().create(config, "solver");
  const SolverTraits traits = solver->traits();
  const std::vector<double> times = traits.adaptive
                                        ? std::vector<double>{1.0, 1e-3}
                                        : TimeUniformGrid({1.0, 1e-3, steps}).times(schedule);
  State x_T(batch, 2);
  for (long j = 0; j < batch; ++j)
    philox_normals(0, NoiseStream::init, static_cast<std::uint64_t>(j), 0, x_T.row(j).data(), 2);
  DriverOptions options;
  options.threads = threads;
  Integrator integrator(*solver, options);  // keeps its threads and work arrays between runs
  Rate best;
  double spent = 0;
  for (int r = 0; (r < repeats && spent < 2.0) || spent < 0.2; ++r) {
    // ggf needs a Brownian tree; the others draw Philox noise.
    PhiloxNoise philox(1);
    BrownianTreeNoise tree(1, 1e-3, 1.0, 20);
    NoiseSource& noise = config["name"] == "ggf" ? static_cast<NoiseSource&>(tree) : philox;
    State x = x_T;
    const double cpu0 = process_cpu_seconds();
    const Summary s = integrator.run(schedule, model, times, x, &noise);
    const double cpu = process_cpu_seconds() - cpu0;
    spent += s.seconds;
    double work = static_cast<double>(batch) * static_cast<double>(s.steps);
    if (traits.adaptive)
      work = static_cast<double>(s.accepted + s.rejected) *
             (traits.per_sample_steps ? 1.0 : static_cast<double>(batch));
    const double rate = work / std::max(s.seconds, 1e-12);
    if (rate > best.samples_steps_per_second) {
      best.samples_steps_per_second = rate;
      best.threads = s.threads;
    }
    best.cpu_seconds_per_sample_step = std::min(best.cpu_seconds_per_sample_step, cpu / work);
  }
  return best;
}

// --scaling with --batches: samples x steps per second at the given batch sizes on one
// thread (20 steps; adaptive solvers their own), best of `repeats`.
void print_scaling_batches(const std::vector<std::string>& only, const std::vector<long>& batches, int repeats) {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel gmm = GmmModel::builtin_2d(schedule);
  std::printf("# samples x steps per second (M) on the built-in 2-D GMM, float64, one thread, time_uniform grid "
              "t = 1 -> 1e-3 of 20 steps (adaptive: their own steps, per sample for ggf); best of >= %d runs\n",
              repeats);
  std::printf("| solver |");
  for (long b : batches) std::printf(" batch %ld |", b);
  std::printf("\n| --- |");
  for (std::size_t i = 0; i < batches.size(); ++i) std::printf(" --- |");
  std::printf("\n");
  for (const auto& entry : solver_registry().entries()) {
    if (!only.empty() && std::find(only.begin(), only.end(), entry.name) == only.end()) continue;
    std::printf("| %s |", entry.name.c_str());
    for (long b : batches)
      std::printf(" %.3f |", scaling_rate(json{{"name", entry.name}}, *schedule, gmm, b, 20, 1, repeats)
                                      .samples_steps_per_second / 1e6);
    std::printf("\n");
    std::fflush(stdout);
  }
}

void print_scaling(const std::vector<std::string>& only, int repeats) {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel gmm = GmmModel::builtin_2d(schedule);
  std::printf("# samples x steps per second (M) on the built-in 2-D GMM, float64, time_uniform "
              "grid t = 1 -> 1e-3;\n# batch 1: 20000 steps, 256: 1000 steps, 65536: 20 steps "
              "(adaptive: their own steps); best of >= %d runs\n",
              repeats);
  std::printf("| solver | batch 1 | batch 256 | batch 65536, 1 thread | batch 65536, 2 threads | "
              "2 / 1 threads | CPU time 2 / 1 threads |\n| --- | --- | --- | --- | --- | --- | --- |\n");
  for (const auto& entry : solver_registry().entries()) {
    if (!only.empty() && std::find(only.begin(), only.end(), entry.name) == only.end()) continue;
    const json config = {{"name", entry.name}};
    try {
      const Rate one = scaling_rate(config, *schedule, gmm, 1, 20000, 1, repeats);
      const Rate mid = scaling_rate(config, *schedule, gmm, 256, 1000, 1, repeats);
      const Rate big1 = scaling_rate(config, *schedule, gmm, 65536, 20, 1, repeats);
      const Rate big2 = scaling_rate(config, *schedule, gmm, 65536, 20, 2, repeats);
      std::printf("| %s | %.2f | %.1f | %.1f | %.1f%s | %.2f | %.2f |\n", entry.name.c_str(),
                  one.samples_steps_per_second / 1e6, mid.samples_steps_per_second / 1e6,
                  big1.samples_steps_per_second / 1e6, big2.samples_steps_per_second / 1e6,
                  big2.threads == 1 ? " (1 thread: batch-coupled)" : "",
                  big2.samples_steps_per_second / big1.samples_steps_per_second,
                  big2.cpu_seconds_per_sample_step / big1.cpu_seconds_per_sample_step);
    } catch (const Error& e) {
      std::printf("| %s | failed: %s | | | | | |\n", entry.name.c_str(), e.what());
    }
    std::fflush(stdout);
  }
}

// The solver's own time in init() and per step (model time excluded), each call timed on
// its own, best of `repeats` runs with a fresh solver each (so init's allocations are timed
// as a user's first run pays them). Grid: logSNR, t = 1 -> 1e-3.
void print_fixed_costs(const std::vector<json>& configs, const std::vector<long>& batches, int steps,
                       int repeats) {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel gmm = GmmModel::builtin_2d(schedule);
  TimedModel model(gmm);
  const auto times = LogSnrGrid({1.0, 1e-3, steps}).times(*schedule);
  std::printf("# solver's own time on the built-in 2-D GMM (model time excluded), logSNR grid of %d steps,\n"
              "# fresh solver per run, best of %d runs: init() and the mean step, in us\n",
              steps, repeats);
  std::printf("| solver | batch | init us | first step us | mean step us |\n| --- | --- | --- | --- | --- |\n");
  for (long batch : batches) {
    State x_T(batch, 2);
    for (long j = 0; j < batch; ++j)
      philox_normals(0, NoiseStream::init, static_cast<std::uint64_t>(j), 0, x_T.row(j).data(), 2);
    for (const json& config : configs) {
      double best_init = 1e300, best_first = 1e300, best_mean = 1e300;
      for (int r = 0; r < repeats; ++r) {
        auto solver = solver_registry().create(config, "solver");
        PhiloxNoise noise(1);
        SolverContext context(*schedule, model, &noise);
        State x = x_T;
        model.reset();
        auto start = Clock::now();
        solver->init(context, x, times);
        const double init = std::chrono::duration<double>(Clock::now() - start).count() - model.seconds();
        double first = 0, total = 0;
        for (std::size_t i = 0; i + 1 < times.size(); ++i) {
          model.reset();
          start = Clock::now();
          solver->step(context, i, times[i], times[i + 1], x);
          const double s = std::chrono::duration<double>(Clock::now() - start).count() - model.seconds();
          if (i == 0) first = s;
          total += s;
        }
        best_init = std::min(best_init, init);
        best_first = std::min(best_first, first);
        best_mean = std::min(best_mean, total / steps);
      }
      std::printf("| %s | %ld | %.1f | %.1f | %.1f |\n", label(config).c_str(), batch, 1e6 * best_init,
                  1e6 * best_first, 1e6 * best_mean);
      std::fflush(stdout);
    }
  }
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
  bool throughput_only = false;
  app.add_flag("--throughput", throughput_only, "print samples x steps per second instead");
  bool scaling = false;
  int repeats = 5;
  app.add_flag("--scaling", scaling,
               "every solver's samples x steps per second at batch 1, 256 and 65536, and 1 vs 2 "
               "threads at 65536");
  app.add_option("--repeats", repeats, "--scaling: runs per figure (the best is printed)");
  bool fixed_costs = false;
  std::vector<long> fixed_batches = {4096, 256};
  app.add_flag("--fixed-costs", fixed_costs,
               "ddim and dpm_solver at order 1: the solver's own time in init() and per step "
               "(--steps N, default 5; --repeats)");
  auto* batches_option = app.add_option("--batches", fixed_batches,
                                        "--fixed-costs and --scaling: these batch sizes (--scaling: one thread)")
                             ->delimiter(',');
  CLI11_PARSE(app, argc, argv);
  const bool batches_given = batches_option->count() > 0;
  if (throughput_only) {
    print_throughput();
    return 0;
  }
  if (scaling && batches_given) {
    print_scaling_batches(only, fixed_batches, std::max(1, repeats));
    return 0;
  }
  if (scaling) {
    print_scaling(only, std::max(1, repeats));
    return 0;
  }
  if (fixed_costs) {
    std::vector<json> configs;
    for (const char* algorithm : {"dpmsolver", "dpmsolver++"})
      for (const char* method : {"singlestep", "multistep"})
        configs.push_back(json{{"name", "dpm_solver"}, {"algorithm", algorithm}, {"method", method}, {"order", 1}});
    configs.insert(configs.begin(), json{{"name", "ddim"}});
    print_fixed_costs(configs, fixed_batches, steps_list.size() == 1 ? steps_list[0] : 5, std::max(1, repeats));
    return 0;
  }

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
        // Adaptive SDE solvers re-use the Brownian path of a rejected step: a tree.
        PhiloxNoise philox(1);
        BrownianTreeNoise tree(1, t_end, t_start, 20);
        NoiseSource& noise = traits.stochastic && traits.adaptive ? static_cast<NoiseSource&>(tree) : philox;
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
