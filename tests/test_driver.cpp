// The driver: observers (the denoised prediction too), counts, the progress and cancel
// callback, and a NaN/Inf stop that names the step and t.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "diffsde/driver.hpp"
#include "diffsde/error.hpp"
#include "diffsde/grid.hpp"
#include "diffsde/noise.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/solvers/euler_maruyama.hpp"

using namespace diffsde;

namespace {

// eps = 0 until t drops below t_bad, NaN after.
class PoisonModel final : public Model {
 public:
  explicit PoisonModel(double t_bad) : t_bad_(t_bad) {}
  std::string name() const override { return "poison"; }
  int dim() const override { return 3; }
  void eps(const ConstStateRef& x, double t, StateRef out) const override {
    out.setZero();
    if (t < t_bad_) out(x.rows() - 1, 1) = std::numeric_limits<double>::quiet_NaN();
  }

 private:
  double t_bad_;
};

// A deterministic solver that counts its calls: x <- x + (t1 - t0).
class ShiftSolver final : public Solver {
 public:
  SolverTraits traits() const override {
    SolverTraits t;
    t.name = "shift";
    return t;
  }
  void step(SolverContext& context, std::size_t, double t0, double t1, State& x) override {
    State eps(x.rows(), x.cols());
    context.eps(x, t0, eps);
    x += t1 - t0;
  }
};

}  // namespace

TEST_CASE("integrate walks the grid, counts evaluations and feeds observers") {
  const VpLinearSchedule schedule;
  const PoisonModel model(-1.0);  // never poisons
  const std::vector<double> times = {1.0, 0.75, 0.5, 0.25};
  State x = State::Zero(4, 3);
  ShiftSolver solver;
  TrajectoryObserver trajectory;
  const Summary s = integrate(solver, schedule, model, times, x, nullptr, {&trajectory});
  CHECK(s.steps == 3);
  CHECK(s.nfe == 3);
  CHECK(s.accepted == 3);
  CHECK(s.rejected == 0);
  CHECK(s.draws == 0);
  CHECK(s.solver == "shift");
  CHECK(s.t_start == 1.0);
  CHECK(s.t_end == 0.25);
  CHECK((x == -0.75).all());
  REQUIRE(trajectory.times() == times);
  REQUIRE(trajectory.states().size() == 4);
  CHECK((trajectory.states()[2] == -0.5).all());
  CHECK(s.brief_report().find("shift: 3 steps, 3 NFE") == 0);
}

TEST_CASE("A non-finite state stops the run with the step and t named") {
  const VpLinearSchedule schedule;
  const PoisonModel model(0.5);
  const auto times = TimeUniformGrid({1.0, 0.2, 4}).times(schedule);  // 1, .8, .6, .4, .2
  State x = State::Zero(5, 3);
  PhiloxNoise noise(1);
  EulerMaruyamaSolver solver;
  try {
    integrate(solver, schedule, model, times, x, &noise);
    FAIL("no NumericalError");
  } catch (const NumericalError& e) {
    // eps is NaN from t = 0.4 < 0.5 on: step 3 (0-based) starts there.
    CHECK(e.step() == 3);
    CHECK(e.t() == Approx(0.4));
    const std::string what = e.what();
    INFO(what);
    CHECK(what.find("step 3 (t = " + format_double(times[3]) + "): ") == 0);
    CHECK(what.find("sample 4") != std::string::npos);
  }
}

TEST_CASE("integrate rejects what cannot run") {
  const VpLinearSchedule schedule;
  const PoisonModel model(-1.0);
  EulerMaruyamaSolver solver;
  State x = State::Zero(2, 3);
  CHECK_THROWS_AS(integrate(solver, schedule, model, {1.0, 0.5}, x, nullptr), Error);  // no noise
  PhiloxNoise noise(0);
  State wrong = State::Zero(2, 2);
  CHECK_THROWS_AS(integrate(solver, schedule, model, {1.0, 0.5}, wrong, &noise), Error);  // dim
  CHECK_THROWS_AS(integrate(solver, schedule, model, {1.0}, x, &noise), Error);           // grid
}

TEST_CASE("Running out of replayed noise names the step") {
  const VpLinearSchedule schedule;
  const PoisonModel model(-1.0);
  ReplayNoise noise(State::Zero(2, 2 * 3), 2, 3, "draws.npy");
  EulerMaruyamaSolver solver;
  State x = State::Zero(2, 3);
  try {
    integrate(solver, schedule, model, {1.0, 0.9, 0.8, 0.7}, x, &noise);
    FAIL("no error");
  } catch (const NumericalError& e) {
    CHECK(e.step() == 2);
    CHECK(std::string(e.what()).find("draws.npy") != std::string::npos);
  }
}

namespace {

// Keeps every step's denoised prediction and the time of its evaluation.
class DenoisedObserver final : public Observer {
 public:
  bool wants_denoised() const override { return true; }
  void on_denoised(long step, double t_eval, const State& x0) override {
    CHECK(step == static_cast<long>(x0s.size()));
    t.push_back(t_eval);
    x0s.push_back(x0);
  }
  std::vector<double> t;
  std::vector<State> x0s;
};

// eps = 0.3 x + 0.1 t: smooth, and rows independent.
std::shared_ptr<Model> linear_model() {
  return make_model(3, [](const ConstStateRef& x, double t, StateRef out) { out = 0.3 * x + 0.1 * t; });
}

}  // namespace

TEST_CASE("The progress callback sees every step and can cancel the run after any of them", "[driver]") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const auto model = linear_model();
  const std::vector<double> times = TimeUniformGrid({1.0, 1e-3, 8}).times(*schedule);
  State x_T(5, 3);
  for (Eigen::Index r = 0; r < 5; ++r) x_T.row(r) << 0.1 * r, -0.2, 0.5 - 0.1 * r;
  for (int threads : {1, 2}) {
    INFO("threads " << threads);
    ShiftSolver solver;  // one evaluation per step
    TrajectoryObserver trajectory;
    State x = x_T;
    std::vector<Progress> seen;
    DriverOptions options;
    options.threads = threads;
    options.progress = [&](const Progress& p) {
      seen.push_back(p);
      return true;
    };
    integrate(solver, *schedule, *model, times, x, nullptr, {&trajectory}, options);
    REQUIRE(seen.size() == 8);
    for (std::size_t i = 0; i < seen.size(); ++i) {
      CHECK(seen[i].step == static_cast<long>(i) + 1);
      CHECK(seen[i].steps == 8);
      CHECK(seen[i].t == times[i + 1]);
      CHECK(seen[i].nfe == static_cast<long>(i) + 1);
      CHECK(seen[i].seconds >= 0);
    }
    // Cancelled after 3 steps: x is the state after them, and nothing more ran.
    State y = x_T;
    long calls = 0;
    options.progress = [&](const Progress& p) {
      ++calls;
      return p.step < 3;
    };
    try {
      integrate(solver, *schedule, *model, times, y, nullptr, {}, options);
      FAIL("no Cancelled thrown");
    } catch (const Cancelled& c) {
      CHECK(c.step() == 2);
      CHECK(c.t() == times[3]);
      CHECK_THAT(c.what(), Catch::Contains("cancelled after step 2"));
    }
    CHECK(calls == 3);
    CHECK((y - trajectory.states()[3]).abs().maxCoeff() == 0.0);
  }
}

TEST_CASE("Observers that want it see the denoised prediction of each step's first evaluation", "[driver]") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const auto model = linear_model();
  const std::vector<double> times = TimeUniformGrid({1.0, 1e-3, 6}).times(*schedule);
  State x_T(4, 3);
  for (Eigen::Index r = 0; r < 4; ++r) x_T.row(r) << 1.0 - 0.3 * r, 0.2 * r, -0.7;
  std::vector<State> first;
  for (int threads : {1, 3}) {
    INFO("threads " << threads);
    EulerMaruyamaSolver solver;
    PhiloxNoise noise(3);
    TrajectoryObserver trajectory;
    DenoisedObserver denoised;
    State x = x_T;
    DriverOptions options;
    options.threads = threads;
    integrate(solver, *schedule, *model, times, x, &noise, {&trajectory, &denoised}, options);
    REQUIRE(denoised.x0s.size() == 6);
    for (std::size_t i = 0; i < 6; ++i) {
      // Euler–Maruyama evaluates eps once, at the step's start.
      CHECK(denoised.t[i] == times[i]);
      const State& xi = trajectory.states()[i];
      State eps(xi.rows(), xi.cols());
      model->eps(xi, times[i], eps);
      const State want = (xi - schedule->sigma(times[i]) * eps) / schedule->alpha(times[i]);
      CHECK((denoised.x0s[i] - want).abs().maxCoeff() <= 1e-14 * (1.0 + want.abs().maxCoeff()));
    }
    if (first.empty()) {
      first = denoised.x0s;
    } else {
      for (std::size_t i = 0; i < 6; ++i) CHECK((first[i] - denoised.x0s[i]).abs().maxCoeff() == 0.0);
    }
  }
}
