// The driver's batch threads: a batch split into row blocks, each integrated on its own
// thread by its own copy of the solver, gives the one-thread samples bit for bit, for
// every registered solver and variant, on Philox and Brownian-tree noise, with uneven
// blocks; the summary's counts, the noise source's draw count, observers, errors and the
// config key `threads` behave as on one thread.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "diffsde/config.hpp"
#include "diffsde/driver.hpp"
#include "diffsde/error.hpp"
#include "diffsde/grid.hpp"
#include "diffsde/noise.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/scores/analytic.hpp"
#include "diffsde/solvers/euler_maruyama.hpp"
#include "diffsde/solvers/pf_ode.hpp"
#include "support/exact.hpp"
#include "support/orders.hpp"

using namespace diffsde;
using nlohmann::json;

namespace {

bool bitwise_equal(const State& a, const State& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(double) * static_cast<std::size_t>(a.size())) == 0;
}

struct Outcome {
  State x;
  Summary summary;
  std::uint64_t noise_draws = 0;
};

enum class NoiseKind { philox, tree };

std::unique_ptr<NoiseSource> make_noise(NoiseKind kind, std::uint64_t first_sample = 0) {
  if (kind == NoiseKind::tree)
    return std::make_unique<BrownianTreeNoise>(11, 1e-2, 1.0, 20, first_sample);
  return std::make_unique<PhiloxNoise>(11, first_sample);
}

Outcome run(const json& config, const Schedule& schedule, const Model& model,
            const std::vector<double>& times, const State& x_T, NoiseKind kind, int threads) {
  auto solver = solver_registry().create(config, "solver");
  auto noise = make_noise(kind);
  noise->skip(3);  // a run that does not start at draw 0
  Outcome out;
  out.x = x_T;
  DriverOptions options;
  options.threads = threads;
  out.summary = integrate(*solver, schedule, model, times, out.x, noise.get(), {}, options);
  out.noise_draws = noise->draws();
  return out;
}

// x <- x + (t1 - t0), and NaN in a sample that started at x_0 = 1000 once t0 < 0.45, or
// at x_0 = 2000 once t0 < 0.75: a failure that depends on the row, so each block fails
// at its own step.
class ValueNanSolver final : public Solver {
 public:
  SolverTraits traits() const override {
    SolverTraits t;
    t.name = "value_nan";
    return t;
  }
  std::unique_ptr<Solver> clone() const override { return std::make_unique<ValueNanSolver>(); }
  void init(SolverContext&, const State& x, const std::vector<double>&) override {
    eps_.resize(x.rows(), x.cols());
  }
  void step(SolverContext& context, std::size_t, double t0, double t1, State& x) override {
    context.eps(x, t0, eps_);
    x += t1 - t0;
    for (Eigen::Index r = 0; r < x.rows(); ++r) {
      const double trigger = std::round(x(r, 0) - (t1 - 1.0));  // the row's start value
      if ((trigger == 1000 && t0 < 0.45) || (trigger == 2000 && t0 < 0.75))
        x(r, 1) = std::numeric_limits<double>::quiet_NaN();
    }
  }

 private:
  State eps_;
};

// The same solver without clone(): cannot be split.
class NoCloneSolver final : public Solver {
 public:
  SolverTraits traits() const override {
    SolverTraits t;
    t.name = "no_clone";
    return t;
  }
  void step(SolverContext&, std::size_t, double t0, double t1, State& x) override {
    x += t1 - t0;
  }
};

class Zero final : public Model {
 public:
  std::string name() const override { return "zero"; }
  int dim() const override { return 2; }
  void eps(const ConstStateRef&, double, StateRef out) const override { out.setZero(); }
};

// Counts on_step calls and keeps the summary on_finish saw.
class Recorder final : public Observer {
 public:
  void on_step(long, double, const State&) override { ++steps; }
  void on_finish(const Summary& s) override { finished = s; }
  long steps = 0;
  Summary finished;
};

}  // namespace

TEST_CASE("Every registered solver can be cloned, and the clone has the same traits") {
  for (const json& config : test::all_solver_variants()) {
    INFO(config.dump());
    auto solver = solver_registry().create(config, "solver");
    auto copy = solver->clone();
    REQUIRE(copy != nullptr);
    const auto a = solver->traits(), b = copy->traits();
    CHECK(a.name == b.name);
    CHECK(a.order == b.order);
    CHECK(a.evals_per_step == b.evals_per_step);
    CHECK(a.noise_use == b.noise_use);
    CHECK(a.batch_coupled == b.batch_coupled);
  }
}

TEST_CASE("Any thread count gives the one-thread samples bit for bit, for every solver") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel model = GmmModel::builtin_2d(schedule);
  const auto times = TimeUniformGrid({1.0, 1e-2, 12}).times(*schedule);
  int split_runs = 0;
  // 7 rows: blocks of 3 + 4 (2 threads) and 2 + 2 + 3 (3 threads); 601 rows cross the
  // mixture kernel's 256-row chunks at different offsets in every block.
  for (long batch : {7L, 601L}) {
    const State x_T = test::standard_normal_rows(batch, 2, 21);
    for (const json& config : test::all_solver_variants()) {
      const auto traits = solver_registry().create(config, "solver")->traits();
      for (NoiseKind kind : {NoiseKind::philox, NoiseKind::tree}) {
        if (config["name"] == "ggf" && kind != NoiseKind::tree) continue;  // needs the tree
        INFO(config.dump() << ", batch " << batch
                           << (kind == NoiseKind::tree ? ", brownian tree" : ", philox"));
        Outcome one;
        try {
          one = run(config, *schedule, model, times, x_T, kind, 1);
        } catch (const Error&) {  // a solver that refuses this grid refuses it on threads too
          CHECK_THROWS_AS(run(config, *schedule, model, times, x_T, kind, 2), Error);
          continue;
        }
        CHECK(one.summary.threads == 1);
        for (int threads : {2, 3, 0}) {
          INFO("threads " << threads);
          const Outcome many = run(config, *schedule, model, times, x_T, kind, threads);
          CHECK(bitwise_equal(many.x, one.x));
          CHECK(many.summary.steps == one.summary.steps);
          CHECK(many.summary.nfe == one.summary.nfe);
          CHECK(many.summary.accepted == one.summary.accepted);
          CHECK(many.summary.rejected == one.summary.rejected);
          CHECK(many.summary.draws == one.summary.draws);
          CHECK(many.noise_draws == one.noise_draws);
          if (traits.batch_coupled) {
            CHECK(many.summary.threads == 1);
          } else if (threads > 0) {
            CHECK(many.summary.threads == threads);
            ++split_runs;
          }
        }
      }
    }
  }
  CHECK(split_runs > 100);
}

TEST_CASE("Batch-coupled solvers are the documented ones") {
  // One step size for the whole batch (pf_ode's adaptive steppers, dpm_solver_adaptive,
  // dpm_adaptive, whose error norm is also over the batch) or batch-mean norms (pc with
  // score-SDE's batch_norms).
  std::vector<json> configs = test::all_solver_variants();
  for (const char* rule : {"sigma", "sample_norms", "batch_norms"})
    configs.push_back({{"name", "pc"}, {"step_size", rule}});
  for (const json& config : configs) {
    INFO(config.dump());
    const std::string name = config["name"];
    const bool expected =
        name == "dpm_solver_adaptive" ||
        name == "dpm_adaptive" ||
        (name == "pf_ode" && is_adaptive(pf_ode_stepper_from_string(config["stepper"]))) ||
        (name == "pc" && config.value("step_size", "sigma") == "batch_norms");
    CHECK(solver_registry().create(config, "solver")->traits().batch_coupled == expected);
  }
}

TEST_CASE("pc with batch_norms runs on one thread and gives the one-thread samples") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel model = GmmModel::builtin_2d(schedule);
  const auto times = TimeUniformGrid({1.0, 1e-2, 10}).times(*schedule);
  const State x_T = test::standard_normal_rows(9, 2, 2);
  const json config = {{"name", "pc"}, {"step_size", "batch_norms"}};
  const Outcome one = run(config, *schedule, model, times, x_T, NoiseKind::philox, 1);
  const Outcome two = run(config, *schedule, model, times, x_T, NoiseKind::philox, 2);
  CHECK(two.summary.threads == 1);
  CHECK(bitwise_equal(one.x, two.x));
}

TEST_CASE("ggf's per-sample counts add up over the blocks") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel model = GmmModel::builtin_2d(schedule);
  const std::vector<double> times = {1.0, 0.5, 1e-2};
  const State x_T = test::standard_normal_rows(5, 2, 8);
  const Outcome one = run(json{{"name", "ggf"}}, *schedule, model, times, x_T, NoiseKind::tree, 1);
  const Outcome two = run(json{{"name", "ggf"}}, *schedule, model, times, x_T, NoiseKind::tree, 2);
  CHECK(two.summary.threads == 2);
  // Each sample's evaluations: the sum over samples is the one-thread count.
  long nfe = 0, accepted = 0, rejected = 0;
  for (Eigen::Index r = 0; r < x_T.rows(); ++r) {
    auto solver = solver_registry().create(json{{"name", "ggf"}}, "solver");
    BrownianTreeNoise tree(11, 1e-2, 1.0, 20, static_cast<std::uint64_t>(r));
    State x = x_T.row(r);
    const Summary s = integrate(*solver, *schedule, model, times, x, &tree);
    CHECK(bitwise_equal(x, State(one.x.row(r))));
    nfe += s.nfe;
    accepted += s.accepted;
    rejected += s.rejected;
  }
  CHECK(one.summary.nfe == nfe);
  CHECK(one.summary.accepted == accepted);
  CHECK(one.summary.rejected == rejected);
  CHECK(two.summary.nfe == nfe);
  CHECK(two.summary.accepted == accepted);
  CHECK(two.summary.rejected == rejected);
  CHECK(nfe > 2 * 5);
}

TEST_CASE("Observers see the whole batch at every step on any number of threads") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel model = GmmModel::builtin_2d(schedule);
  const auto times = TimeUniformGrid({1.0, 1e-2, 8}).times(*schedule);
  const State x_T = test::standard_normal_rows(11, 2, 4);
  for (const char* name : {"euler_maruyama", "dpm_solver", "ggf"}) {
    INFO(name);
    const NoiseKind kind = std::string(name) == "ggf" ? NoiseKind::tree : NoiseKind::philox;
    std::vector<TrajectoryObserver> trajectories(2);
    std::vector<Recorder> recorders(2);
    std::vector<State> finals;
    for (int k = 0; k < 2; ++k) {
      auto solver = solver_registry().create(json{{"name", name}}, "solver");
      auto noise = make_noise(kind);
      State x = x_T;
      DriverOptions options;
      options.threads = k == 0 ? 1 : 3;
      const Summary s = integrate(*solver, *schedule, model, times, x, noise.get(),
                                  {&trajectories[k], &recorders[k]}, options);
      CHECK(s.threads == options.threads);
      CHECK(recorders[k].finished.nfe == s.nfe);
      CHECK(recorders[k].finished.threads == s.threads);
      finals.push_back(x);
    }
    CHECK(bitwise_equal(finals[0], finals[1]));
    CHECK(trajectories[1].times() == trajectories[0].times());
    REQUIRE(trajectories[1].states().size() == times.size());
    REQUIRE(trajectories[0].states().size() == times.size());
    for (std::size_t i = 0; i < times.size(); ++i)
      CHECK(bitwise_equal(trajectories[1].states()[i], trajectories[0].states()[i]));
    CHECK(recorders[1].steps == recorders[0].steps);
    CHECK(recorders[1].finished.nfe == recorders[0].finished.nfe);
  }
}

TEST_CASE("Replayed noise gives each block its rows of every draw") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel model = GmmModel::builtin_2d(schedule);
  const auto times = TimeUniformGrid({1.0, 1e-2, 6}).times(*schedule);
  const long batch = 7;
  const State x_T = test::standard_normal_rows(batch, 2, 6);
  // The draws a Philox run makes, as a replay array (draws, batch * dim).
  State data(6, batch * 2);
  PhiloxNoise philox(5);
  for (Eigen::Index k = 0; k < data.rows(); ++k) {
    State d(batch, 2);
    philox.normal(d);
    data.row(k) = Eigen::Map<const Eigen::RowVectorXd>(d.data(), d.size()).array();
  }
  std::vector<State> results;
  for (int threads : {1, 2, 3}) {
    ReplayNoise replay(data, batch, 2, "draws.npy");
    EulerMaruyamaSolver solver;
    State x = x_T;
    DriverOptions options;
    options.threads = threads;
    const Summary s = integrate(solver, *schedule, model, times, x, &replay, {}, options);
    CHECK(s.threads == threads);
    CHECK(replay.draws() == 6);
    results.push_back(x);
  }
  PhiloxNoise again(5);
  EulerMaruyamaSolver solver;
  State x = x_T;
  integrate(solver, *schedule, model, times, x, &again);
  for (const State& r : results) CHECK(bitwise_equal(r, x));

  // A batch that does not match the file: one thread, and the one-thread error.
  ReplayNoise replay(data, batch, 2, "draws.npy");
  CHECK(replay.row_block(batch - 1, 0, 3) == nullptr);
  CHECK(replay.row_block(batch, 5, 3) == nullptr);
  State small = x_T.topRows(batch - 1);
  DriverOptions options;
  options.threads = 2;
  CHECK_THROWS_WITH(integrate(solver, *schedule, model, times, small, &replay, {}, options),
                    Catch::Contains("draws.npy") && Catch::Contains("(7, 2)"));
}

TEST_CASE("Row blocks of a noise source give the source's rows of every draw") {
  const long batch = 9;
  for (NoiseKind kind : {NoiseKind::philox, NoiseKind::tree}) {
    auto whole = make_noise(kind, 40);
    whole->skip(2);
    auto low = whole->row_block(batch, 0, 4);
    auto high = whole->row_block(batch, 4, 5);
    REQUIRE(low != nullptr);
    REQUIRE(high != nullptr);
    CHECK(low->draws() == 2);
    State all(batch, 3), split(batch, 3);
    for (int k = 0; k < 3; ++k) {
      whole->normal(all);
      low->normal(split.topRows(4));
      high->normal(split.bottomRows(5));
      CHECK(bitwise_equal(all, split));
      whole->brownian(0.7, 0.3, all);
      low->brownian(0.7, 0.3, split.topRows(4));
      high->brownian(0.7, 0.3, split.bottomRows(5));
      CHECK(bitwise_equal(all, split));
    }
  }
}

TEST_CASE("A split run fails where the one-thread run fails, naming the same step and sample") {
  const VpLinearSchedule schedule;
  const Zero model;
  const auto times = TimeUniformGrid({1.0, 0.1, 9}).times(schedule);  // 1, .9, ..., .1
  State x_T = State::Zero(10, 2);
  x_T(7, 0) = 1000;  // NaN once t0 < 0.45: step 6 (t0 = 0.4)
  x_T(2, 0) = 1000;
  x_T(9, 0) = 2000;  // NaN once t0 < 0.75: step 3 (t0 = 0.7), in the last block(s)
  x_T(8, 0) = 2000;
  std::vector<std::string> messages;
  for (int threads : {1, 2, 3, 10}) {
    ValueNanSolver solver;
    State x = x_T;
    DriverOptions options;
    options.threads = threads;
    try {
      integrate(solver, schedule, model, times, x, nullptr, {}, options);
      FAIL("no NumericalError");
    } catch (const NumericalError& e) {
      CHECK(e.step() == 3);
      messages.push_back(e.what());
    }
  }
  CHECK(messages[0].find("sample 8") != std::string::npos);
  for (const auto& m : messages) CHECK(m == messages[0]);

  // Without the rows that fail first, the first failure is at step 6, in sample 2.
  x_T(9, 0) = 0;
  x_T(8, 0) = 0;
  for (int threads : {1, 3}) {
    ValueNanSolver solver;
    State x = x_T;
    DriverOptions options;
    options.threads = threads;
    try {
      integrate(solver, schedule, model, times, x, nullptr, {}, options);
      FAIL("no NumericalError");
    } catch (const NumericalError& e) {
      CHECK(e.step() == 6);
      CHECK(std::string(e.what()).find("sample 2 ") != std::string::npos);
    }
  }
}

TEST_CASE("Solvers without clone() and small batches run on fewer threads") {
  const VpLinearSchedule schedule;
  const Zero model;
  const std::vector<double> times = {1.0, 0.5, 0.25};
  DriverOptions options;
  options.threads = 4;
  NoCloneSolver no_clone;
  State x = State::Zero(8, 2);
  CHECK(integrate(no_clone, schedule, model, times, x, nullptr, {}, options).threads == 1);
  CHECK((x == -0.75).all());
  ValueNanSolver solver;
  State three = State::Zero(3, 2);
  CHECK(integrate(solver, schedule, model, times, three, nullptr, {}, options).threads == 3);
  CHECK((three == -0.75).all());
  State one = State::Zero(1, 2);
  CHECK(integrate(solver, schedule, model, times, one, nullptr, {}, options).threads == 1);
  options.threads = -1;
  CHECK_THROWS_WITH(integrate(solver, schedule, model, times, one, nullptr, {}, options),
                    Catch::Contains("threads must be between 0"));
  options.threads = DriverOptions::kMaxThreads + 1;
  CHECK_FALSE(options.is_valid());
}

TEST_CASE("The sample config's threads key: validated, and the samples do not depend on it") {
  json config = json::parse(R"({"schedule":{"name":"vp_linear"},"model":{"name":"gmm"},
    "grid":{"name":"time_uniform","steps":15,"t_start":1,"t_end":1e-3},
    "solver":{"name":"euler_maruyama"},"batch":13,"seed":4})");
  CHECK(parse_sample_config(config).threads == 1);
  SampleJob one = build_sample_job(parse_sample_config(config));
  const Summary s1 = run_sample_job(one);
  config["threads"] = 2;
  SampleJob two = build_sample_job(parse_sample_config(config));
  CHECK(two.config.threads == 2);
  const Summary s2 = run_sample_job(two);
  CHECK(s1.threads == 1);
  CHECK(s2.threads == 2);
  CHECK(bitwise_equal(one.x, two.x));
  CHECK(summary_json(two, s2)["threads"] == 2);
  config["threads"] = 0;
  CHECK(parse_sample_config(config).threads == 0);
  for (const json& bad : {json(-1), json(2.5), json("two"), json(DriverOptions::kMaxThreads + 1)}) {
    config["threads"] = bad;
    INFO(bad.dump());
    CHECK(test::config_error_path([&] { parse_sample_config(config); }) == "threads");
  }
}

TEST_CASE("A reused Integrator gives what fresh integrate calls give, run after run") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel model = GmmModel::builtin_2d(schedule);
  const auto times = TimeUniformGrid({1.0, 1e-2, 9}).times(*schedule);
  for (const char* name : {"euler_maruyama", "dpm_solver", "ggf"}) {
    INFO(name);
    const NoiseKind kind = std::string(name) == "ggf" ? NoiseKind::tree : NoiseKind::philox;
    auto solver = solver_registry().create(json{{"name", name}}, "solver");
    DriverOptions options;
    options.threads = 3;
    Integrator integrator(*solver, options);
    // Batches that change size between runs, and one too small to split three ways.
    for (long batch : {10L, 10L, 4L, 2L, 17L}) {
      INFO("batch " << batch);
      const State x_T = test::standard_normal_rows(batch, 2, static_cast<std::uint64_t>(batch));
      auto noise = make_noise(kind);
      State x = x_T;
      const Summary s = integrator.run(*schedule, model, times, x, noise.get());
      CHECK(s.threads == std::min<long>(3, batch));
      auto fresh_solver = solver_registry().create(json{{"name", name}}, "solver");
      auto fresh_noise = make_noise(kind);
      State y = x_T;
      const Summary f = integrate(*fresh_solver, *schedule, model, times, y, fresh_noise.get());
      CHECK(bitwise_equal(x, y));
      CHECK(s.nfe == f.nfe);
      CHECK(s.accepted == f.accepted);
      CHECK(noise->draws() == fresh_noise->draws());
    }
  }
  // A run that fails leaves the integrator usable.
  const VpLinearSchedule vp;
  const Zero zero;
  ValueNanSolver solver;
  DriverOptions options;
  options.threads = 2;
  Integrator integrator(solver, options);
  const auto grid = TimeUniformGrid({1.0, 0.1, 9}).times(vp);
  State bad = State::Zero(4, 2);
  bad(3, 0) = 1000;
  CHECK_THROWS_AS(integrator.run(vp, zero, grid, bad, nullptr), NumericalError);
  State good = State::Zero(4, 2);
  const Summary s = integrator.run(vp, zero, grid, good, nullptr);
  CHECK(s.threads == 2);
  CHECK(s.nfe == 9);
  CHECK((good - (0.1 - 1.0)).abs().maxCoeff() < 1e-12);
}
