// Registry-wide: every deterministic solver, in every variant its registry entry lists,
// converges at its declared order on the Gaussian problem, whose PF-ODE flow is exact:
// per axis z = (x - alpha mu) / sqrt(alpha^2 s^2 + sigma^2) is constant along it. A solver
// added to the registry is checked here the moment it is registered.
#include <catch2/catch.hpp>
#include <cmath>
#include <memory>

#include "diffsde/driver.hpp"
#include "diffsde/grid.hpp"
#include "diffsde/noise.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/scores/analytic.hpp"
#include "support/exact.hpp"
#include "support/orders.hpp"

using namespace diffsde;
using nlohmann::json;

namespace {

// The problem of both order tests (support/orders.hpp).
using Problem = test::OrderProblem;

std::vector<double> order_test_grid(const Problem& p, int steps, const SolverTraits& traits) {
  return test::order_test_grid(*p.schedule, p.t_start, p.t_end, steps, traits.warmup_steps, traits.order);
}

}  // namespace

TEST_CASE("Every deterministic fixed-step solver converges at its declared order") {
  const Problem p;
  const GaussianModel& model = p.model;
  const State x_T = test::standard_normal_rows(64, 2, 1);
  const State x_exact = p.exact.pf_ode_flow(x_T, p.t_start, p.t_end);

  int tested = 0;
  for (const auto& entry : solver_registry().entries()) {
    for (const json& config : test::solver_variants(entry)) {
      const auto traits = solver_registry().create(config, "solver")->traits();
      if (traits.stochastic || traits.adaptive) continue;
      ++tested;
      std::vector<double> hs, errors;
      for (int steps : {40, 80, 160, 320}) {
        auto solver = solver_registry().create(config, "solver");
        State x = x_T;
        integrate(*solver, *p.schedule, model, order_test_grid(p, steps, traits), x, nullptr);
        hs.push_back((p.t_start - p.t_end) / steps);
        errors.push_back((x - x_exact).abs().maxCoeff());
      }
      const double slope = test::log_log_slope(hs, errors);
      INFO(config.dump() << ": declared order " << traits.order << ", observed " << slope
                         << "; errors " << errors[0] << " " << errors[1] << " " << errors[2] << " "
                         << errors[3]);
      CHECK(std::fabs(slope - traits.order) < 0.25 + 0.05 * traits.order);
    }
  }
  CHECK(tested >= 3);
}

TEST_CASE("Every adaptive solver meets its tolerance on the exact problem") {
  const Problem p;
  const GaussianModel& model = p.model;
  const State x_T = test::standard_normal_rows(16, 2, 2);
  const State x_exact = p.exact.pf_ode_flow(x_T, p.t_start, p.t_end);
  for (const auto& entry : solver_registry().entries()) {
    for (const json& config : test::solver_variants(entry)) {
      const auto traits = solver_registry().create(config, "solver")->traits();
      if (traits.stochastic || !traits.adaptive) continue;
      // Their default tolerances (1e-6 or tighter) must give an error within a small
      // multiple of themselves on this smooth problem.
      auto solver = solver_registry().create(config, "solver");
      State x = x_T;
      const Summary s = integrate(*solver, *p.schedule, model, {p.t_start, p.t_end}, x, nullptr);
      INFO(config.dump() << ": error " << (x - x_exact).abs().maxCoeff() << ", " << s.brief_report());
      CHECK((x - x_exact).abs().maxCoeff() < 1e-4);
      CHECK(s.accepted > 0);
      CHECK(s.nfe > s.accepted);
    }
  }
}
