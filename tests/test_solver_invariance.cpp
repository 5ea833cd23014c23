// Registry-wide invariances:
//  - grid independence: every solver gives the same result, bit for bit, on a rule grid
//    and on a custom grid listing the same times;
//  - schedule independence of the exponential-integrator family: their steps depend only
//    on alpha and sigma at the grid times, so on two different schedules with grids at
//    the same lambda values they agree to rounding.
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

State run(const json& config, std::shared_ptr<const Schedule> schedule, const std::vector<double>& times,
          const State& x_T) {
  const GmmModel model = GmmModel::builtin_2d(schedule);
  auto solver = solver_registry().create(config, "solver");
  PhiloxNoise noise(17);
  State x = x_T;
  integrate(*solver, *schedule, model, times, x, &noise);
  return x;
}

}  // namespace

TEST_CASE("Every solver gives the same samples on a rule grid and on the same times listed") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const State x_T = test::standard_normal_rows(16, 2, 3);
  for (const auto& grid : {json{{"name", "time_uniform"}, {"steps", 12}, {"t_end", 1e-2}},
                           json{{"name", "logSNR"}, {"steps", 9}, {"t_end", 1e-3}}}) {
    const auto times = grid_registry().create(grid, "grid")->times(*schedule);
    const auto custom = grid_registry().create(json{{"name", "custom"}, {"t", times}}, "grid")->times(*schedule);
    for (const json& config : test::all_solver_variants()) {
      INFO(config.dump() << " on " << grid.dump());
      State a, b;
      try {
        a = run(config, schedule, times, x_T);
      } catch (const Error&) {
        // A solver that refuses this grid (a uniform-step method on a logSNR grid) must
        // refuse the listed times too.
        CHECK_THROWS_AS(run(config, schedule, custom, x_T), Error);
        continue;
      }
      b = run(config, schedule, custom, x_T);
      CHECK(a.allFinite());
      CHECK((a == b).all());
    }
  }
}

TEST_CASE("Exponential integrators do not depend on the schedule, only on lambda at the grid") {
  // Same lambda grid on vp_linear and on vp_cosine.
  std::shared_ptr<const Schedule> linear = std::make_shared<VpLinearSchedule>();
  std::shared_ptr<const Schedule> cosine = std::make_shared<VpCosineSchedule>();
  const auto t_linear = LogSnrGrid({0.99, 1e-2, 10}).times(*linear);
  std::vector<double> t_cosine;
  for (double t : t_linear) t_cosine.push_back(cosine->t_of_lambda(linear->lambda(t)));
  const State x_T = test::standard_normal_rows(16, 2, 4);
  int compared = 0;
  for (const json& config : test::all_solver_variants()) {
    const std::string name = config["name"];
    const bool exponential = name == "ddim" || name == "ddpm" || name == "dpm_solver" || name == "unipc" ||
                             name == "deis" || name.rfind("dpmpp_", 0) == 0;
    if (!exponential) continue;
    ++compared;
    INFO(config.dump());
    const State a = run(config, linear, t_linear, x_T);
    const State b = run(config, cosine, t_cosine, x_T);
    CHECK(test::max_abs_diff(a, b) < 1e-9 * (1 + a.abs().maxCoeff()));
  }
  CHECK(compared >= 2);
}
