// The driver: observers, counts, and a NaN/Inf stop that names the step and t.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "diffsde/driver.hpp"
#include "diffsde/error.hpp"
#include "diffsde/grid.hpp"
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
