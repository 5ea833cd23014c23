// Registry-wide: the grid requirements every solver declares in its traits
// (SolverTraits::needs_decreasing_grid, needs_positive_sigma_at_step_start) are the ones it
// gets. The driver refuses a grid that breaks one before init() and any model evaluation,
// naming the solver and the interval; a solver that does not ask for a decreasing grid runs
// forwards. A solver added to the registry is checked here the moment it is registered.
#include <catch2/catch.hpp>
#include <atomic>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "diffsde/driver.hpp"
#include "diffsde/error.hpp"
#include "diffsde/noise.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/sweep.hpp"
#include "support/orders.hpp"

using namespace diffsde;
using nlohmann::json;

namespace {

// A smooth, finite eps that counts its calls: a refused grid must cost none.
class CountingModel final : public Model {
 public:
  std::string name() const override { return "counting"; }
  int dim() const override { return 2; }
  void eps(const ConstStateRef& x, double /*t*/, StateRef out) const override {
    ++calls;
    out = 0.5 * x;
  }
  mutable std::atomic<long> calls{0};
};

// vp_linear delayed by `shift`: sigma = 0 on [0, shift], so a decreasing grid can have an
// interval that starts where sigma = 0 without leaving [0, 1].
class ShiftedSchedule final : public Schedule {
 public:
  explicit ShiftedSchedule(double shift) : shift_(shift) {}
  std::string name() const override { return "shifted_vp_linear"; }
  double beta(double t) const override { return t > shift_ ? base_.beta(t - shift_) : 0.0; }
  double log_alpha_bar(double t) const override { return base_.log_alpha_bar(t - shift_); }
  double t_of_log_alpha_bar(double l) const override { return shift_ + base_.t_of_log_alpha_bar(l); }

 private:
  VpLinearSchedule base_;
  double shift_;
};

// Runs `config` on `times` (a Brownian tree serves every solver, ggf included).
void run(const json& config, const Schedule& schedule, const CountingModel& model,
         const std::vector<double>& times, int threads) {
  auto solver = solver_registry().create(config, "solver");
  BrownianTreeNoise noise(5, 0.0, 1.0, 12);
  State x = State::Constant(4, 2, 0.3);
  DriverOptions options;
  options.threads = threads;
  integrate(*solver, schedule, model, times, x, &noise, {}, options);
  if (!x.allFinite()) throw Error("non-finite samples");
}

}  // namespace

TEST_CASE("A solver that needs a decreasing grid is refused on an increasing one, before any step") {
  const VpLinearSchedule schedule;
  int refused = 0, forwards = 0;
  for (const json& config : test::all_solver_variants()) {
    const SolverTraits traits = solver_registry().create(config, "solver")->traits();
    INFO(config.dump());
    if (traits.needs_decreasing_grid) {
      ++refused;
      for (int threads : {1, 2}) {
        INFO("threads " << threads);
        const CountingModel model;
        CHECK_THROWS_WITH(run(config, schedule, model, {0.5, 0.3, 0.4}, threads),
                          Catch::StartsWith(traits.name) &&
                              Catch::Contains("the grid must decrease (interval 1 from t = 0.3 to t = 0.4)"));
        CHECK(model.calls.load() == 0);
      }
      // The same message from the check alone, as a validator calls it.
      CHECK_THROWS_WITH(check_solver_grid(traits, schedule, {0.5, 0.3, 0.4}),
                        Catch::Contains("runs backwards in time: the grid must decrease (interval 1"));
    } else {
      // It runs forwards (an inversion); equal steps, for the steppers that need them.
      ++forwards;
      const CountingModel model;
      CHECK_NOTHROW(run(config, schedule, model, {0.1, 0.3, 0.5}, 1));
      CHECK(model.calls.load() > 0);
    }
  }
  // Both kinds exist: the stochastic samplers and the ODE solvers.
  CHECK(refused > 0);
  CHECK(forwards > 0);
}

TEST_CASE("A solver that needs sigma > 0 at step starts is refused on a step from sigma = 0, before any step") {
  const VpLinearSchedule vp;
  const ShiftedSchedule shifted(0.2);
  REQUIRE(shifted.sigma(0.2) == 0);
  REQUIRE(shifted.sigma(0.6) > 0);
  int refused = 0;
  for (const json& config : test::all_solver_variants()) {
    const SolverTraits traits = solver_registry().create(config, "solver")->traits();
    INFO(config.dump());
    // Every declared guard lets a grid end at sigma = 0; only where steps start matters.
    CHECK_NOTHROW(check_solver_grid(traits, vp, {1.0, 0.5, 0.0}));
    if (!traits.needs_positive_sigma_at_step_start) continue;
    ++refused;
    for (int threads : {1, 2}) {
      INFO("threads " << threads);
      // A decreasing grid whose interval 2 starts where sigma = 0.
      const CountingModel model;
      CHECK_THROWS_WITH(run(config, shifted, model, {1.0, 0.6, 0.2, 0.1}, threads),
                        Catch::StartsWith(traits.name) &&
                            Catch::Contains("cannot start a step at sigma = 0 (interval 2 from t = 0.2 to t = 0.1)"));
      CHECK(model.calls.load() == 0);
    }
    // A grid that starts at t = 0 (forwards): refused by whichever guard comes first.
    const CountingModel model;
    CHECK_THROWS_WITH(run(config, vp, model, {0.0, 0.25, 0.5}, 1),
                      Catch::StartsWith(traits.name) && Catch::Contains("interval 0 from t = 0 to t = 0.25"));
    CHECK(model.calls.load() == 0);
  }
  CHECK(refused > 0);
}

TEST_CASE("A sweep refuses a grid that breaks a solver's guard when it is parsed") {
  json sweep = json::parse(R"({
    "problem": {"schedule": "vp_linear", "model": "gmm", "batch": 4, "seed": 3},
    "solvers": ["ddim", "euler_maruyama"],
    "grids": [{"name": "time_uniform", "t_start": 0.1, "t_end": 0.9}],
    "steps": [4], "seeds": [0]
  })");
  try {
    parse_sweep(sweep);
    FAIL("an increasing grid for euler_maruyama was accepted");
  } catch (const ConfigError& e) {
    CHECK(e.path() == "sweep.solvers[1]");
    CHECK_THAT(e.what(), Catch::Contains("euler_maruyama with noise runs backwards in time: the grid must decrease"));
  }
  // ddim (eta = 0) runs forwards, but not from t = 0.
  sweep["solvers"] = {"ddim"};
  CHECK_NOTHROW(parse_sweep(sweep));
  sweep["grids"][0]["t_start"] = 0;
  try {
    parse_sweep(sweep);
    FAIL("a grid starting at t = 0 for ddim was accepted");
  } catch (const ConfigError& e) {
    CHECK(e.path() == "sweep.solvers[0]");
    CHECK_THAT(e.what(), Catch::Contains("ddim cannot start a step at sigma = 0 (interval 0 from t = 0"));
  }
}

TEST_CASE("No solver starts a step where alpha = 0 (a zero-terminal-SNR schedule at t = 1)") {
  // Rescaled to zero terminal SNR: the last beta is 1, so alpha(1) = 0 and lambda(1) = -inf.
  const VpDiscreteSchedule zero_snr(
      VpDiscreteSchedule::rescale_zero_terminal_snr(VpDiscreteSchedule::linear(1e-4, 0.02, 10).betas()));
  REQUIRE(zero_snr.alpha(1.0) == 0);
  // The same with diffusers' fix: alpha_bar of the last step set to 2^-24.
  const VpDiscreteSchedule fixed(VpDiscreteSchedule::with_final_alpha_bar(zero_snr.betas(), std::ldexp(1.0, -24)));
  REQUIRE(fixed.alpha(1.0) > 0);
  for (const json& config : test::all_solver_variants()) {
    const SolverTraits traits = solver_registry().create(config, "solver")->traits();
    INFO(config.dump());
    const CountingModel model;
    // An eps model says nothing of x0 there: refused for every solver, naming why.
    CHECK_THROWS_WITH(run(config, zero_snr, model, {1.0, 0.6, 0.2}, 1),
                      Catch::StartsWith(traits.name) &&
                          Catch::Contains("(interval 0 from t = 1 to t = 0.6): alpha = 0 there (zero terminal SNR), "
                                          "lambda = -inf") &&
                          Catch::Contains(traits.starts_from_pure_noise ? "needs a model that predicts x0 itself"
                                                                        : "cannot take a first step from pure noise") &&
                          Catch::Contains("final_alpha_bar"));
    CHECK(model.calls.load() == 0);
    // Below the last step, or with final_alpha_bar, the grid is accepted; so is a grid
    // that ends at alpha = 0 (no step starts there).
    CHECK_NOTHROW(check_solver_grid(traits, zero_snr, {0.9, 0.6, 0.2}));
    CHECK_NOTHROW(check_solver_grid(traits, fixed, {1.0, 0.6, 0.2}));
    if (!traits.needs_decreasing_grid) CHECK_NOTHROW(check_solver_grid(traits, zero_snr, {0.2, 0.6, 1.0}));
    // The offending interval is named wherever it is.
    if (!traits.needs_decreasing_grid)
      CHECK_THROWS_WITH(check_solver_grid(traits, zero_snr, {0.2, 0.6, 1.0, 0.9}),
                        Catch::Contains("interval 2 from t = 1 to t = 0.9") &&
                            Catch::Contains("only a grid's first time may be"));
  }
}
