// The probability-flow ODE under every odeint stepper, against exact answers.
//
// On Gaussian data N(mu, s^2) per axis the PF-ODE flow is known in closed form:
// z = (x - alpha mu) / sqrt(v), v = alpha^2 s^2 + sigma^2, is constant along it, so
//   x(t1) = alpha1 mu + sqrt(v1 / v0) (x(t0) - alpha0 mu).
// Fixed steppers must converge at their declared order; adaptive ones must meet their
// tolerance, tighten with it, and report accepted and rejected steps. A two-component
// mixture (no closed form) checks two unrelated methods against each other.
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "diffsde/driver.hpp"
#include "diffsde/error.hpp"
#include "diffsde/grid.hpp"
#include "diffsde/noise.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/scores/analytic.hpp"
#include "diffsde/solvers/pf_ode.hpp"
#include "support/exact.hpp"

using namespace diffsde;
using nlohmann::json;

namespace {

// Gaussian data on three axes (one narrow) with its exact flow (tests/support/exact.hpp).
struct GaussianProblem {
  std::shared_ptr<VpLinearSchedule> schedule = std::make_shared<VpLinearSchedule>(0.1, 20.0);
  Eigen::VectorXd mu = (Eigen::VectorXd(3) << 1.5, -0.7, 0.0).finished();
  Eigen::VectorXd sd = (Eigen::VectorXd(3) << 0.5, 1.3, 0.2).finished();
  GaussianModel model{schedule, mu, sd};
  test::GaussianProblem flow{schedule, {1.5, -0.7, 0.0}, {0.5, 1.3, 0.2}};

  State exact(const State& x, double t0, double t1) const { return flow.pf_ode_flow(x, t0, t1); }
};

State normals(long n, int dim, std::uint64_t seed) { return test::standard_normal_rows(n, dim, seed); }

PfOdeOptions with_stepper(PfOdeStepper stepper) {
  PfOdeOptions o;
  o.stepper = stepper;
  return o;
}

PfOdeOptions adaptive(PfOdeStepper stepper, double tol, double h_init = 0.01) {
  PfOdeOptions o;
  o.stepper = stepper;
  o.rtol = tol;
  o.atol = tol;
  o.h_init = h_init;
  return o;
}

double max_error(const State& a, const State& b) { return (a - b).abs().maxCoeff(); }

std::string what_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

// eps = NaN below t_bad, exact Gaussian eps above: a model that breaks down mid-run.
class BreaksBelow final : public Model {
 public:
  BreaksBelow(const Model& inner, double t_bad) : inner_(inner), t_bad_(t_bad) {}
  std::string name() const override { return "breaks_below"; }
  int dim() const override { return inner_.dim(); }
  void eps(const ConstStateRef& x, double t, StateRef out) const override {
    inner_.eps(x, t, out);
    if (t < t_bad_) out(0, 0) = std::numeric_limits<double>::quiet_NaN();
  }

 private:
  const Model& inner_;
  double t_bad_;
};

}  // namespace

TEST_CASE("pf_ode: fixed steppers converge at their declared order on the exact Gaussian flow") {
  const GaussianProblem p;
  const double t_start = 1.0, t_end = 1e-2;
  const State x_T = normals(32, 3, 1);
  const State x_exact = p.exact(x_T, t_start, t_end);

  struct Case {
    PfOdeStepper stepper;
    std::vector<int> steps;
  };
  // Refinements in the asymptotic range (the narrow axis, s = 0.2, makes the flow change
  // quickly near t_end, so coarse uniform grids are pre-asymptotic), with the finest error
  // well above rounding: errors run 1e-2 .. 8e-4 (euler), 2e-5 .. 2e-10 (rk4) and
  // 2e-6 .. 4e-11 (adams_bashforth_moulton).
  const std::vector<Case> cases = {
      {PfOdeStepper::euler, {80, 160, 320, 640, 1280}},
      {PfOdeStepper::rk4, {40, 80, 160, 320, 640}},
      {PfOdeStepper::adams_bashforth_moulton, {160, 320, 640, 1280, 2560}},
  };
  for (const Case& c : cases) {
    std::vector<double> hs, errors;
    for (int steps : c.steps) {
      PfOdeSolver solver(with_stepper(c.stepper));
      State x = x_T;
      const auto times = TimeUniformGrid({t_start, t_end, steps}).times(*p.schedule);
      const Summary s = integrate(solver, *p.schedule, p.model, times, x, nullptr);
      const long expected_nfe = c.stepper == PfOdeStepper::adams_bashforth_moulton
                                    ? 2L * steps + 6  // three RK4 start-up steps
                                    : solver.traits().evals_per_step * static_cast<long>(steps);
      CHECK(s.nfe == expected_nfe);
      CHECK(s.accepted == steps);
      CHECK(s.rejected == 0);
      hs.push_back((t_start - t_end) / steps);
      errors.push_back(max_error(x, x_exact));
    }
    const double declared = PfOdeSolver(with_stepper(c.stepper)).traits().order;
    const double slope = test::log_log_slope(hs, errors);
    INFO(to_string(c.stepper) << ": declared order " << declared << ", observed " << slope
                              << "; errors " << errors.front() << " ... " << errors.back());
    CHECK(slope == Approx(declared).margin(0.2));
    CHECK(errors.back() > 1e3 * std::numeric_limits<double>::epsilon());  // not rounding-bound
  }
}

TEST_CASE("pf_ode: adaptive steppers meet and follow their tolerance") {
  const GaussianProblem p;
  const double t_start = 1.0, t_end = 1e-3;
  const State x_T = normals(32, 3, 2);
  const State x_exact = p.exact(x_T, t_start, t_end);

  for (PfOdeStepper stepper : {PfOdeStepper::cash_karp54, PfOdeStepper::dopri5,
                               PfOdeStepper::fehlberg78, PfOdeStepper::bulirsch_stoer}) {
    std::vector<double> errors;
    for (double tol : {1e-4, 1e-6, 1e-8}) {
      PfOdeSolver solver(adaptive(stepper, tol));
      CHECK(solver.traits().adaptive);
      State x = x_T;
      const Summary s = integrate(solver, *p.schedule, p.model, {t_start, t_end}, x, nullptr);
      const double err = max_error(x, x_exact);
      INFO(to_string(stepper) << " tol " << tol << ": error " << err << "; " << s.brief_report());
      // The controller bounds local errors; the global error on this tame problem stays
      // within a small multiple of the tolerance (it is relative to |x| ~ 1 .. 3 here).
      CHECK(err < 30 * tol);
      CHECK(s.steps == 1);
      CHECK(s.accepted >= 1);
      // Evaluations per attempted step, from the stepper's tableau.
      const long attempts = s.accepted + s.rejected;
      switch (stepper) {
        case PfOdeStepper::cash_karp54: CHECK(s.nfe == 6 * attempts); break;
        case PfOdeStepper::dopri5: CHECK(s.nfe == 6 * attempts + 1); break;  // FSAL
        case PfOdeStepper::fehlberg78: CHECK(s.nfe == 13 * attempts); break;
        default: CHECK(s.nfe >= 7 * attempts); break;  // bulirsch_stoer: columns 0, 1 at least
      }
      errors.push_back(err);
    }
    INFO(to_string(stepper) << " errors " << errors[0] << " " << errors[1] << " " << errors[2]);
    CHECK(errors[1] < errors[0]);
    CHECK(errors[2] < errors[1]);
    CHECK(errors[2] < 1e-2 * errors[0]);
  }
}

TEST_CASE("pf_ode: a large first step is rejected and the summary counts it") {
  const GaussianProblem p;
  const State x_T = normals(8, 3, 3);
  for (PfOdeStepper stepper : {PfOdeStepper::cash_karp54, PfOdeStepper::dopri5,
                               PfOdeStepper::fehlberg78, PfOdeStepper::bulirsch_stoer}) {
    // h_init spans the whole interval: the first attempt is far off at tol 1e-8.
    PfOdeSolver solver(adaptive(stepper, 1e-8, 1.0));
    State x = x_T;
    const Summary s = integrate(solver, *p.schedule, p.model, {1.0, 1e-2}, x, nullptr);
    INFO(to_string(stepper) << ": " << s.brief_report());
    CHECK(s.rejected >= 1);
    CHECK(s.accepted >= 2);
    CHECK(max_error(x, p.exact(x_T, 1.0, 1e-2)) < 1e-6);
    const std::string report = s.brief_report();
    CHECK(report.find(std::to_string(s.rejected) + " rejected") != std::string::npos);
    CHECK(report.find(std::to_string(s.accepted) + " accepted") != std::string::npos);
    CHECK(report.find(std::to_string(s.nfe) + " NFE") != std::string::npos);
  }
}

TEST_CASE("pf_ode: adaptive steppers land exactly on every output time") {
  const GaussianProblem p;
  const State x_T = normals(8, 3, 4);
  const std::vector<double> times = {1.0, 0.7, 0.5, 0.2, 0.05, 1e-2};
  for (PfOdeStepper stepper : {PfOdeStepper::dopri5, PfOdeStepper::bulirsch_stoer}) {
    PfOdeSolver solver(adaptive(stepper, 1e-9));
    State x = x_T;
    TrajectoryObserver trajectory;
    const Summary s = integrate(solver, *p.schedule, p.model, times, x, nullptr, {&trajectory});
    CHECK(s.steps == 5);
    REQUIRE(trajectory.times() == times);
    for (std::size_t i = 1; i < times.size(); ++i) {
      INFO(to_string(stepper) << " at t = " << times[i]);
      CHECK(max_error(trajectory.states()[i], p.exact(x_T, 1.0, times[i])) < 1e-7);
    }
  }
}

TEST_CASE("pf_ode: integrating forwards in time returns to the start") {
  const GaussianProblem p;
  const State x0 = normals(16, 3, 5);
  // Data-side start at t = 1e-2, forwards to t = 1 (as likelihoods need) and back.
  for (PfOdeStepper stepper : all_pf_ode_steppers()) {
    const bool is_adaptive_stepper = is_adaptive(stepper);
    const PfOdeOptions o = is_adaptive_stepper ? adaptive(stepper, 1e-9) : with_stepper(stepper);
    const std::vector<double> up = is_adaptive_stepper
                                       ? std::vector<double>{1e-2, 1.0}
                                       : TimeUniformGrid({1e-2, 1.0, 400}).times(*p.schedule);
    const std::vector<double> down(up.rbegin(), up.rend());
    PfOdeSolver solver(o);
    State x = x0;
    integrate(solver, *p.schedule, p.model, up, x, nullptr);
    const double forward_error = max_error(x, p.exact(x0, 1e-2, 1.0));
    integrate(solver, *p.schedule, p.model, down, x, nullptr);
    const double round_trip_error = max_error(x, x0);
    INFO(to_string(stepper) << ": forward error " << forward_error << ", round trip "
                            << round_trip_error);
    // Euler at 400 steps is only first-order accurate; the rest are near the tolerance.
    const double bound = stepper == PfOdeStepper::euler ? 1e-1 : 1e-6;
    CHECK(forward_error < bound);
    CHECK(round_trip_error < 2 * bound);
  }
}

TEST_CASE("pf_ode: a two-component mixture gives the same flow under dopri5 and rk4") {
  auto schedule = std::make_shared<VpLinearSchedule>(0.1, 20.0);
  Eigen::VectorXd weights(2);
  weights << 0.3, 0.7;
  Eigen::MatrixXd means(2, 2), stds(2, 2);
  means << -1.5, 0.5,  //
      1.0, -1.0;
  stds << 0.4, 0.6,  //
      0.5, 0.3;
  const GmmModel model(schedule, weights, means, stds);
  const State x_T = normals(64, 2, 6);
  const double t_start = 1.0, t_end = 1e-2;

  PfOdeSolver dopri5(adaptive(PfOdeStepper::dopri5, 1e-10));
  State x_dopri5 = x_T;
  const Summary s = integrate(dopri5, *schedule, model, {t_start, t_end}, x_dopri5, nullptr);

  PfOdeSolver rk4(with_stepper(PfOdeStepper::rk4));
  State x_rk4 = x_T;
  integrate(rk4, *schedule, model, TimeUniformGrid({t_start, t_end, 2000}).times(*schedule), x_rk4,
            nullptr);
  const double diff = max_error(x_dopri5, x_rk4);
  INFO("dopri5 vs rk4 (2000 steps): " << diff << "; dopri5 " << s.brief_report());
  CHECK(diff < 1e-7);
  // The samples moved to the data: the flow is not trivially the identity.
  CHECK(max_error(x_dopri5, x_T) > 0.5);

  // Under the mixture the flow is nonlinear, so the output is not an affine image of the
  // input; two different methods still agree, rk4 halving its step converging at order 4.
  PfOdeSolver rk4_coarse(with_stepper(PfOdeStepper::rk4));
  State x_coarse = x_T;
  integrate(rk4_coarse, *schedule, model, TimeUniformGrid({t_start, t_end, 100}).times(*schedule),
            x_coarse, nullptr);
  PfOdeSolver rk4_mid(with_stepper(PfOdeStepper::rk4));
  State x_mid = x_T;
  integrate(rk4_mid, *schedule, model, TimeUniformGrid({t_start, t_end, 200}).times(*schedule),
            x_mid, nullptr);
  const double ratio = max_error(x_coarse, x_dopri5) / max_error(x_mid, x_dopri5);
  INFO("rk4 error ratio 100 -> 200 steps: " << ratio);
  CHECK(std::log2(ratio) == Approx(4).margin(0.5));
}

TEST_CASE("pf_ode: a state changed between steps restarts multistep history and FSAL") {
  // Calling step() directly: after the first interval, the state is replaced. The history
  // (ABM) and the stored derivative (dopri5) belong to the old state and must not be reused.
  const GaussianProblem p;
  const State x_a = normals(8, 3, 7), x_b = normals(8, 3, 8);
  for (PfOdeStepper stepper : {PfOdeStepper::adams_bashforth_moulton, PfOdeStepper::dopri5}) {
    const PfOdeOptions o = is_adaptive(stepper) ? adaptive(stepper, 1e-9) : with_stepper(stepper);
    const auto times = TimeUniformGrid({1.0, 1e-2, 600}).times(*p.schedule);
    PfOdeSolver solver(o);
    SolverContext context(*p.schedule, p.model, nullptr);
    State x = x_a;
    solver.init(context, x, times);
    for (std::size_t i = 0; i + 1 < times.size(); ++i) {
      if (i == 300) x = x_b;
      solver.step(context, i, times[i], times[i + 1], x);
    }
    INFO(to_string(stepper));
    CHECK(max_error(x, p.exact(x_b, times[300], times.back())) < 1e-7);
  }
}

TEST_CASE("pf_ode: a solver object runs again on another batch size") {
  const GaussianProblem p;
  for (PfOdeStepper stepper : all_pf_ode_steppers()) {
    PfOdeSolver solver(is_adaptive(stepper) ? adaptive(stepper, 1e-9) : with_stepper(stepper));
    const auto times = is_adaptive(stepper) ? std::vector<double>{1.0, 1e-2}
                                            : TimeUniformGrid({1.0, 1e-2, 200}).times(*p.schedule);
    for (long n : {5, 17, 1}) {
      const State x_T = normals(n, 3, 9);
      State x = x_T;
      integrate(solver, *p.schedule, p.model, times, x, nullptr);
      INFO(to_string(stepper) << ", batch " << n);
      CHECK(max_error(x, p.exact(x_T, 1.0, 1e-2)) < (stepper == PfOdeStepper::euler ? 5e-2 : 1e-6));
    }
  }
}

TEST_CASE("pf_ode: bad grids give clear errors") {
  const GaussianProblem p;
  State x = normals(2, 3, 10);

  SECTION("t_end = 0, where sigma = 0") {
    for (PfOdeStepper stepper : all_pf_ode_steppers()) {
      PfOdeSolver solver(with_stepper(stepper));
      const std::string what = what_of([&] {
        integrate(solver, *p.schedule, p.model, TimeUniformGrid({1.0, 0.0, 10}).times(*p.schedule),
                  x, nullptr);
      });
      INFO(what);
      CHECK(what.find("t_end = 0") != std::string::npos);
      CHECK(what.find("sigma") != std::string::npos);
    }
  }
  SECTION("t_start = 0 on an increasing grid") {
    PfOdeSolver solver;
    const std::string what = what_of([&] {
      integrate(solver, *p.schedule, p.model, {0.0, 0.5}, x, nullptr);
    });
    CHECK(what.find("t_start = 0") != std::string::npos);
  }
  SECTION("a grid that is not strictly monotone") {
    PfOdeSolver solver(with_stepper(PfOdeStepper::rk4));
    CHECK_THROWS_AS(integrate(solver, *p.schedule, p.model, {1.0, 0.5, 0.5, 0.1}, x, nullptr),
                    Error);
    CHECK_THROWS_AS(integrate(solver, *p.schedule, p.model, {1.0, 0.5, 0.7, 0.1}, x, nullptr),
                    Error);
  }
  SECTION("adams_bashforth_moulton on a non-uniform grid") {
    PfOdeSolver solver(with_stepper(PfOdeStepper::adams_bashforth_moulton));
    const auto times = TimeQuadraticGrid({1.0, 1e-2, 20}).times(*p.schedule);
    const std::string what =
        what_of([&] { integrate(solver, *p.schedule, p.model, times, x, nullptr); });
    INFO(what);
    CHECK(what.find("adams_bashforth_moulton needs a uniform grid") != std::string::npos);
    // while a uniform one is fine, also going forwards
    CHECK_NOTHROW(integrate(solver, *p.schedule, p.model,
                            TimeUniformGrid({1e-2, 1.0, 20}).times(*p.schedule), x, nullptr));
  }
}

TEST_CASE("pf_ode: a model that breaks down stops the run with the step and t") {
  // Fixed steppers: the driver finds the NaN after the step that met it. Adaptive ones: a
  // NaN error estimate counts as infinite, so the controller shrinks its steps towards
  // t = 0.3, where the model breaks, and stops with a step size underflow there.
  const GaussianProblem p;
  const BreaksBelow model(p.model, 0.3);
  for (PfOdeStepper stepper : all_pf_ode_steppers()) {
    PfOdeSolver solver(with_stepper(stepper));
    State x = normals(4, 3, 11);
    const auto times = is_adaptive(stepper) ? std::vector<double>{1.0, 0.6, 1e-2}
                                            : TimeUniformGrid({1.0, 1e-2, 20}).times(*p.schedule);
    INFO(to_string(stepper));
    try {
      integrate(solver, *p.schedule, model, times, x, nullptr);
      FAIL("no error");
    } catch (const NumericalError& e) {
      INFO(e.what());
      if (is_adaptive(stepper)) {
        CHECK(e.step() == 1);
        CHECK(std::string(e.what()).find("step size underflow at t = 0.3") != std::string::npos);
      } else {
        // The first step that evaluates below t = 0.3 (euler: only at its start).
        const auto i = static_cast<std::size_t>(e.step());
        REQUIRE(i >= 1);
        CHECK(e.t() == times[i]);
        CHECK(times[i - 1] > 0.3);
        CHECK(times[i + 1] < 0.3);
      }
    }
  }
}

TEST_CASE("pf_ode: the registry entry with its parameters and variants") {
  const auto& registry = solver_registry();
  const auto* entry = registry.find("pf_ode");
  REQUIRE(entry != nullptr);
  // One variant per stepper, in the order of all_pf_ode_steppers().
  REQUIRE(entry->variants.size() == all_pf_ode_steppers().size());
  for (std::size_t i = 0; i < entry->variants.size(); ++i)
    CHECK(entry->variants[i] == json{{"stepper", to_string(all_pf_ode_steppers()[i])}});

  // Default: dopri5 with rtol = atol = 1e-6 and h_init = 0.01.
  const auto solver = registry.create_default("pf_ode");
  const auto* pf = dynamic_cast<const PfOdeSolver*>(solver.get());
  REQUIRE(pf != nullptr);
  CHECK(pf->options().stepper == PfOdeStepper::dopri5);
  CHECK(pf->options().rtol == 1e-6);
  CHECK(pf->options().atol == 1e-6);
  CHECK(pf->options().h_init == 0.01);

  struct Expect {
    const char* stepper;
    double order;
    int evals;
    bool adaptive;
  };
  for (const Expect& e :
       {Expect{"euler", 1, 1, false}, Expect{"rk4", 4, 4, false},
        Expect{"adams_bashforth_moulton", 4, 2, false}, Expect{"cash_karp54", 5, 6, true},
        Expect{"dopri5", 5, 6, true}, Expect{"fehlberg78", 8, 13, true},
        Expect{"bulirsch_stoer", 10, 31, true}}) {
    const auto traits =
        registry.create(json{{"name", "pf_ode"}, {"stepper", e.stepper}}, "solver")->traits();
    INFO(e.stepper);
    CHECK(traits.name == "pf_ode");
    CHECK_FALSE(traits.stochastic);
    CHECK(traits.order == e.order);
    CHECK(traits.evals_per_step == e.evals);
    CHECK(traits.adaptive == e.adaptive);
  }

  auto path_of = [&](const json& config) {
    try {
      registry.create(config, "sweep.solvers[1]");
    } catch (const ConfigError& e) {
      return e.path();
    }
    return std::string("(none)");
  };
  CHECK(path_of({{"name", "pf_ode"}, {"stepper", "rk45"}}) == "sweep.solvers[1].stepper");
  CHECK(path_of({{"name", "pf_ode"}, {"rtol", 0}}) == "sweep.solvers[1].rtol");
  CHECK(path_of({{"name", "pf_ode"}, {"atol", -1e-6}}) == "sweep.solvers[1].atol");
  CHECK(path_of({{"name", "pf_ode"}, {"h_init", 0}}) == "sweep.solvers[1].h_init");
  CHECK(path_of({{"name", "pf_ode"}, {"stepper", "rk4"}, {"rtol", 1e-3}}) ==
        "sweep.solvers[1].rtol");
  CHECK(path_of({{"name", "pf_ode"},
                 {"stepper", "bulirsch_stoer"},
                 {"rtol", 1e-3},
                 {"atol", 1e-9},
                 {"h_init", 0.1}}) == "(none)");

  CHECK(pf_ode_stepper_from_string("fehlberg78") == PfOdeStepper::fehlberg78);
  CHECK_THROWS_WITH(pf_ode_stepper_from_string("rk45"), Catch::Contains("known: euler, rk4"));
  CHECK_THROWS_AS(PfOdeSolver(adaptive(PfOdeStepper::dopri5, -1.0)), Error);
  std::string why;
  CHECK_FALSE(adaptive(PfOdeStepper::dopri5, 1e-6, 0.0).is_valid(&why));
  CHECK(why.find("h_init") != std::string::npos);
}
