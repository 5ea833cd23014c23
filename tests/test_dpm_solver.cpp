// DPM-Solver, DPM-Solver++ and the adaptive DPM-Solver against exact answers: the Gaussian
// problem's PF-ODE flow (tests/support/exact.hpp) and DDIM(eta = 0) = DPM-Solver-1.
#include <catch2/catch.hpp>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "diffsde/driver.hpp"
#include "diffsde/error.hpp"
#include "diffsde/grid.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/scores/analytic.hpp"
#include "diffsde/solvers/dpm_solver.hpp"
#include "diffsde/solvers/dpm_solver_adaptive.hpp"
#include "support/exact.hpp"
#include "support/fixtures.hpp"

using namespace diffsde;
using nlohmann::json;

namespace {

// Gaussian data per axis: the PF-ODE flow is exact.
struct Gaussian {
  std::shared_ptr<VpLinearSchedule> schedule = std::make_shared<VpLinearSchedule>();
  test::GaussianProblem exact{schedule, {0.5, -1.0}, {0.6, 1.2}};
  GaussianModel model{schedule, Eigen::Vector2d(0.5, -1.0), Eigen::Vector2d(0.6, 1.2)};
};

// The 12 fixed-step variants (lower_order_final off).
std::vector<json> all_variants() {
  std::vector<json> out;
  for (int order : {1, 2, 3})
    for (const char* method : {"singlestep", "multistep"})
      for (const char* algorithm : {"dpmsolver", "dpmsolver++"})
        out.push_back({{"name", "dpm_solver"},
                       {"order", order},
                       {"method", method},
                       {"algorithm", algorithm},
                       {"lower_order_final", false}});
  return out;
}

// `steps` steps in lambda from t_start to t_end, of smoothly varying size (lambda(u) with
// u uniform and dlambda/du growing 1:3 along the run), except that the first `warmup` steps
// (taken at lower orders by a multistep method) are shrunk to ~ h^((order + 1)/2), so that
// their errors stay below the O(h^order) being measured. Varying steps matter: on the
// Gaussian problem, with exactly uniform steps in lambda, the O(h^3) global error of 3M
// nearly cancels and the run shows order 4.
std::vector<double> lambda_grid(const Schedule& schedule, double t_start, double t_end, int steps,
                                int warmup, int order) {
  const double l0 = schedule.lambda(t_start), l1 = schedule.lambda(t_end);
  const double span = l1 - l0, h = span / steps;
  const double tiny = span * std::pow(h / span, (order + 1) / 2.0);
  std::vector<double> t = {t_start};
  for (int i = 1; i <= warmup; ++i) t.push_back(schedule.t_of_lambda(l0 + i * tiny));
  const double start = l0 + warmup * tiny;
  const int rest = steps - warmup;
  for (int i = 1; i <= rest; ++i) {
    const double u = static_cast<double>(i) / rest;
    t.push_back(i == rest ? t_end : schedule.t_of_lambda(start + (l1 - start) * (u + u * u) / 2));
  }
  return t;
}

}  // namespace

TEST_CASE("dpm_solver of order 1 is DDIM(eta=0) for both algorithms and methods") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel model = test::test_gmm(schedule);
  const State x_T = test::standard_normal_rows(64, 2, 1);
  for (double t_end : {1e-3, 0.0}) {
    const auto times = LogSnrGrid({1.0, t_end, 12, 1e-3}).times(*schedule);
    State reference = x_T;
    integrate(*test::make_solver({{"name", "ddim"}}), *schedule, model, times, reference, nullptr);
    for (const char* method : {"singlestep", "multistep"})
      for (const char* algorithm : {"dpmsolver", "dpmsolver++"}) {
        State x = x_T;
        const Summary s =
            integrate(*test::make_solver({{"name", "dpm_solver"}, {"order", 1}, {"method", method}, {"algorithm", algorithm}}),
                      *schedule, model, times, x, nullptr);
        INFO(method << " " << algorithm << " t_end " << t_end);
        CHECK(s.nfe == 12);
        // The same first-order step (ddim_coefficients): equal to rounding.
        CHECK(test::max_abs_diff(x, reference) <= 1e-14 * (1 + reference.abs().maxCoeff()));
      }
  }
}

TEST_CASE("dpm_solver variants converge at their declared order on a grid in lambda") {
  const Gaussian g;
  const State x_T = test::standard_normal_rows(64, 2, 3);
  const double t_start = 1.0, t_end = 1e-3;
  const State x_exact = g.exact.pf_ode_flow(x_T, t_start, t_end);
  for (const json& config : all_variants()) {
    const auto traits = test::make_solver(config)->traits();
    std::vector<double> hs, errors;
    for (int steps : {40, 80, 160, 320}) {
      State x = x_T;
      const auto times = lambda_grid(*g.schedule, t_start, t_end, steps, traits.warmup_steps,
                                     static_cast<int>(traits.order));
      integrate(*test::make_solver(config), *g.schedule, g.model, times, x, nullptr);
      hs.push_back(1.0 / steps);
      errors.push_back(test::max_abs_diff(x, x_exact));
    }
    const double slope = test::log_log_slope(hs, errors);
    const double last = std::log2(errors[2] / errors[3]);
    INFO(config.dump() << ": observed order " << slope << " (last halving " << last
                       << "); errors " << errors[0] << " " << errors[1] << " " << errors[2]
                       << " " << errors[3]);
    CHECK(std::fabs(slope - traits.order) < 0.25);
    CHECK(std::fabs(last - traits.order) < 0.1);
  }
}

TEST_CASE("3M with the reference code's D2 weight is only second order") {
  // D2 ~ h^2 m''/2, so the h^3 phi_3 m'' term needs 2 g_3 D2; weighting D2 by g_3 (as
  // multistep_dpm_solver_third_update does) leaves an O(h^3) local error.
  const Gaussian g;
  const State x_T = test::standard_normal_rows(64, 2, 3);
  const State x_exact = g.exact.pf_ode_flow(x_T, 1.0, 1e-3);
  for (auto algorithm : {DpmAlgorithm::dpmsolver, DpmAlgorithm::dpmsolver_pp}) {
    std::vector<double> hs, fixed, reference;
    for (int steps : {40, 80, 160, 320}) {
      const auto times = lambda_grid(*g.schedule, 1.0, 1e-3, steps, 2, 3);
      for (bool ref : {false, true}) {
        DpmSolver::Options o;
        o.order = 3;
        o.algorithm = algorithm;
        o.lower_order_final = false;
        o.reference_3m = ref;
        DpmSolver solver(o);
        State x = x_T;
        integrate(solver, *g.schedule, g.model, times, x, nullptr);
        (ref ? reference : fixed).push_back(test::max_abs_diff(x, x_exact));
      }
      hs.push_back(1.0 / steps);
    }
    INFO(to_string(algorithm) << ": errors with 2 g_3 D2 " << fixed[0] << " " << fixed[1] << " "
                              << fixed[2] << " " << fixed[3] << ", with g_3 D2 " << reference[0]
                              << " " << reference[1] << " " << reference[2] << " " << reference[3]);
    CHECK(std::log2(fixed[2] / fixed[3]) == Approx(3).margin(0.1));
    CHECK(test::log_log_slope(hs, reference) == Approx(2).margin(0.15));
    CHECK(std::log2(reference[2] / reference[3]) == Approx(2).margin(0.1));
    CHECK(fixed[3] < 0.1 * reference[3]);
  }
}

TEST_CASE("dpm_solver evaluation counts and traits") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel model = test::test_gmm(schedule);
  const auto times = TimeUniformGrid({1.0, 1e-3, 10}).times(*schedule);
  const auto to_zero = TimeUniformGrid({1.0, 0.0, 10}).times(*schedule);
  for (int order : {1, 2, 3})
    for (bool lof : {false, true}) {
      State x = test::standard_normal_rows(8, 2, 4);
      const json single = {{"name", "dpm_solver"}, {"order", order}, {"method", "singlestep"},
                           {"lower_order_final", lof}};
      const json multi = {{"name", "dpm_solver"}, {"order", order}, {"method", "multistep"},
                          {"lower_order_final", lof}};
      INFO("order " << order << " lower_order_final " << lof);
      CHECK(integrate(*test::make_solver(single), *schedule, model, times, x, nullptr).nfe == 10 * order);
      CHECK(integrate(*test::make_solver(multi), *schedule, model, times, x, nullptr).nfe == 10);
      // The final step to t = 0 is first order: one evaluation.
      CHECK(integrate(*test::make_solver(single), *schedule, model, to_zero, x, nullptr).nfe == 9 * order + 1);
      CHECK(integrate(*test::make_solver(multi), *schedule, model, to_zero, x, nullptr).nfe == 10);
      const auto ts = test::make_solver(single)->traits(), tm = test::make_solver(multi)->traits();
      CHECK(ts.order == order);
      CHECK(ts.evals_per_step == order);
      CHECK(ts.warmup_steps == 0);
      CHECK(tm.order == order);
      CHECK(tm.evals_per_step == 1);
      CHECK(tm.warmup_steps == order - 1);
      CHECK_FALSE(ts.stochastic);
      CHECK_FALSE(tm.adaptive);
    }
  // Defaults: multistep, order 2, dpmsolver++, lower_order_final.
  const auto t = test::make_solver({{"name", "dpm_solver"}})->traits();
  CHECK(t.order == 2);
  CHECK(t.evals_per_step == 1);
}

TEST_CASE("Multistep warm-up and lower_order_final choose the step orders") {
  auto order_of = [](int order, DpmMethod method, bool lof, std::size_t steps) {
    DpmSolver::Options o;
    o.order = order;
    o.method = method;
    o.lower_order_final = lof;
    const DpmSolver solver(o);
    std::vector<int> orders;
    for (std::size_t i = 0; i < steps; ++i) orders.push_back(solver.step_order(i, steps));
    return orders;
  };
  CHECK(order_of(3, DpmMethod::multistep, true, 6) == std::vector<int>{1, 2, 3, 3, 2, 1});
  CHECK(order_of(3, DpmMethod::multistep, false, 6) == std::vector<int>{1, 2, 3, 3, 3, 3});
  CHECK(order_of(3, DpmMethod::multistep, true, 2) == std::vector<int>{1, 1});
  CHECK(order_of(2, DpmMethod::multistep, true, 4) == std::vector<int>{1, 2, 2, 1});
  CHECK(order_of(3, DpmMethod::singlestep, true, 3) == std::vector<int>{3, 3, 3});

  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel model = test::test_gmm(schedule);
  const State x_T = test::standard_normal_rows(32, 2, 5);
  for (const char* algorithm : {"dpmsolver", "dpmsolver++"}) {
    INFO(algorithm);
    // One step of any multistep order is the first-order step: DDIM.
    State ddim = x_T;
    integrate(*test::make_solver({{"name", "ddim"}}), *schedule, model, {1.0, 0.3}, ddim, nullptr);
    for (int order : {2, 3})
      for (bool lof : {false, true}) {
        State x = x_T;
        integrate(*test::make_solver({{"name", "dpm_solver"}, {"order", order}, {"algorithm", algorithm},
                         {"lower_order_final", lof}}),
                  *schedule, model, {1.0, 0.3}, x, nullptr);
        CHECK(test::max_abs_diff(x, ddim) <= 1e-14 * (1 + ddim.abs().maxCoeff()));
      }
    // Order 2 with lower_order_final: steps 1..N-2 as without it, the last step first
    // order, i.e. the run without the last time followed by one DDIM step.
    const auto times = TimeUniformGrid({1.0, 1e-2, 8}).times(*schedule);
    const std::vector<double> head(times.begin(), times.end() - 1);
    State a = x_T, b = x_T, c = x_T;
    integrate(*test::make_solver({{"name", "dpm_solver"}, {"algorithm", algorithm}, {"lower_order_final", true}}),
              *schedule, model, times, a, nullptr);
    integrate(*test::make_solver({{"name", "dpm_solver"}, {"algorithm", algorithm}, {"lower_order_final", false}}),
              *schedule, model, head, b, nullptr);
    integrate(*test::make_solver({{"name", "ddim"}}), *schedule, model, {head.back(), times.back()}, b, nullptr);
    integrate(*test::make_solver({{"name", "dpm_solver"}, {"algorithm", algorithm}, {"lower_order_final", false}}),
              *schedule, model, times, c, nullptr);
    CHECK(test::max_abs_diff(a, b) <= 1e-13 * (1 + b.abs().maxCoeff()));
    CHECK(test::max_abs_diff(a, c) > 1e-6);  // the final order matters
  }
}

TEST_CASE("A final dpm_solver step to t = 0 is the first-order x0 step, without NaN") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel model = test::test_gmm(schedule);
  const State x_T = test::standard_normal_rows(32, 2, 6);
  const auto times = LogSnrGrid({1.0, 0.0, 10, 1e-3}).times(*schedule);
  REQUIRE(times.back() == 0.0);
  const std::vector<double> head(times.begin(), times.end() - 1);
  for (const json& config : all_variants()) {
    INFO(config.dump());
    State a = x_T, b = x_T;
    REQUIRE_NOTHROW(integrate(*test::make_solver(config), *schedule, model, times, a, nullptr));
    CHECK(a.allFinite());
    integrate(*test::make_solver(config), *schedule, model, head, b, nullptr);
    integrate(*test::make_solver({{"name", "ddim"}}), *schedule, model, {head.back(), 0.0}, b, nullptr);
    CHECK(test::max_abs_diff(a, b) <= 1e-13 * (1 + b.abs().maxCoeff()));
  }
}

TEST_CASE("dpm_solver stays finite on grids spanning every schedule's range") {
  for (const json& sched : {json{{"name", "vp_linear"}}, json{{"name", "vp_cosine"}},
                            json{{"name", "vp_discrete"}}}) {
    std::shared_ptr<const Schedule> schedule = schedule_registry().create(sched, "schedule");
    const GmmModel model = test::test_gmm(schedule);
    const auto times = TimeUniformGrid({schedule->t_max(), 0.0, 25}).times(*schedule);
    for (json config : all_variants()) {
      config["lower_order_final"] = true;
      State x = test::standard_normal_rows(8, 2, 7);
      INFO(sched.dump() << " " << config.dump());
      CHECK_NOTHROW(integrate(*test::make_solver(config), *schedule, model, times, x, nullptr));
      CHECK(x.allFinite());
    }
  }
}

TEST_CASE("dpm_solver depends on the grid's times only") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel model = test::test_gmm(schedule);
  const auto uniform = TimeUniformGrid({1.0, 1e-3, 15}).times(*schedule);
  const auto custom = CustomGrid(uniform).times(*schedule);
  REQUIRE(custom == uniform);
  const auto grid = grid_registry().create(
      json{{"name", "time_uniform"}, {"t_start", 1.0}, {"t_end", 1e-3}, {"steps", 15}}, "grid");
  const auto custom2 = grid_registry().create(json{{"name", "custom"}, {"t", uniform}}, "grid");
  for (const json& config : all_variants()) {
    State a = test::standard_normal_rows(16, 2, 8), b = a;
    integrate(*test::make_solver(config), *schedule, model, grid->times(*schedule), a, nullptr);
    integrate(*test::make_solver(config), *schedule, model, custom2->times(*schedule), b, nullptr);
    INFO(config.dump());
    CHECK((a == b).all());
  }
}

TEST_CASE("A multistep run restarts its history on a new run") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel model = test::test_gmm(schedule);
  const auto times = TimeUniformGrid({1.0, 1e-2, 10}).times(*schedule);
  auto solver = test::make_solver({{"name", "dpm_solver"}, {"order", 3}});
  State a = test::standard_normal_rows(16, 2, 9), b = a;
  integrate(*solver, *schedule, model, times, a, nullptr);
  integrate(*solver, *schedule, model, times, b, nullptr);
  CHECK((a == b).all());
}

TEST_CASE("dpm_solver_adaptive meets its tolerance and counts its steps") {
  const Gaussian g;
  const State x_T = test::standard_normal_rows(16, 2, 10);
  const std::vector<double> times = {1.0, 0.5, 0.1, 1e-2, 1e-3};
  for (int order : {2, 3})
    for (const char* algorithm : {"dpmsolver", "dpmsolver++"}) {
      std::vector<double> errors;
      for (double tol : {1e-3, 1e-5, 1e-7}) {
        State x = x_T;
        TrajectoryObserver trajectory;
        const Summary s =
            integrate(*test::make_solver({{"name", "dpm_solver_adaptive"}, {"order", order}, {"algorithm", algorithm},
                             {"rtol", tol}, {"atol", tol}}),
                      *g.schedule, g.model, times, x, nullptr, {&trajectory});
        double error = 0;  // at every grid time, which it lands on exactly
        REQUIRE(trajectory.times() == times);
        for (std::size_t i = 1; i < times.size(); ++i)
          error = std::max(error, test::max_abs_diff(trajectory.states()[i],
                                                     g.exact.pf_ode_flow(x_T, 1.0, times[i])));
        INFO("order " << order << " " << algorithm << " tol " << tol << ": error " << error
                      << ", " << s.brief_report());
        CHECK(error < 5 * tol);
        CHECK(s.accepted >= 4);
        // eps at the start of each accepted step, order - 1 more per attempt.
        CHECK(s.nfe == s.accepted + (order - 1) * (s.accepted + s.rejected));
        errors.push_back(error);
      }
      CHECK(errors[1] < errors[0]);
      CHECK(errors[2] < errors[1]);
    }
}

TEST_CASE("dpm_solver_adaptive rejects steps that are too large") {
  const Gaussian g;
  State x = test::standard_normal_rows(16, 2, 11);
  const State x_exact = g.exact.pf_ode_flow(x, 1.0, 1e-2);
  const Summary s = integrate(*test::make_solver({{"name", "dpm_solver_adaptive"}, {"h_init", 5.0}}), *g.schedule,
                              g.model, {1.0, 1e-2}, x, nullptr);
  INFO(s.brief_report());
  CHECK(s.rejected > 0);
  CHECK(s.nfe == s.accepted + 2 * (s.accepted + s.rejected));
  CHECK(test::max_abs_diff(x, x_exact) < 1e-4);
  const auto t = test::make_solver({{"name", "dpm_solver_adaptive"}})->traits();
  CHECK(t.adaptive);
  CHECK(t.order == 3);
  CHECK(t.evals_per_step == 3);
}

TEST_CASE("dpm_solver_adaptive refuses a grid time at t = 0") {
  const Gaussian g;
  State x = test::standard_normal_rows(4, 2, 12);
  CHECK_THROWS_AS(integrate(*test::make_solver({{"name", "dpm_solver_adaptive"}}), *g.schedule, g.model,
                            {1.0, 0.0}, x, nullptr),
                  Error);
}

TEST_CASE("dpm_solver configuration errors name their path") {
  using test::config_error_path;
  auto path = [](const json& j) { return config_error_path([&] { test::make_solver(j); }); };
  CHECK(path({{"name", "dpm_solver"}, {"order", 0}}) == "solver.order");
  CHECK(path({{"name", "dpm_solver"}, {"order", 4}}) == "solver.order");
  CHECK(path({{"name", "dpm_solver"}, {"order", 2.5}}) == "solver.order");
  CHECK(path({{"name", "dpm_solver"}, {"method", "onestep"}}) == "solver.method");
  CHECK(path({{"name", "dpm_solver"}, {"algorithm", "dpmsolver+"}}) == "solver.algorithm");
  CHECK(path({{"name", "dpm_solver"}, {"lower_order_final", "yes"}}) == "solver.lower_order_final");
  CHECK(path({{"name", "dpm_solver_adaptive"}, {"order", 1}}) == "solver.order");
  CHECK(path({{"name", "dpm_solver_adaptive"}, {"rtol", -1}}) == "solver.rtol");
  CHECK(path({{"name", "dpm_solver_adaptive"}, {"atol", 0}}) == "solver.atol");
  CHECK(path({{"name", "dpm_solver_adaptive"}, {"h_init", 0}}) == "solver.h_init");
  CHECK(path({{"name", "dpm_solver_adaptive"}, {"method", "multistep"}}) == "solver.method");
  CHECK_THROWS_AS(DpmSolver(DpmSolver::Options{4}), Error);
}
