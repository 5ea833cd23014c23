// Registry entries of the built-in time grids (lib/core/grid.hpp): JSON parameters in,
// validated (errors at the grid object's path), a grid out.
#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "diffsde/builtins.hpp"
#include "diffsde/error.hpp"
#include "diffsde/grid.hpp"
#include "diffsde/schedule.hpp"

namespace diffsde {

namespace builtin {

namespace {

// Every rule grid takes t_last, so that a sweep can switch grids without changing
// parameters; only the lambda- and sigma-spaced grids use it.
std::vector<ParamSpec> span_specs(bool uses_t_last) {
  return {{"t_start", ParamType::number, 1.0,
           "first time (the noise end when sampling); when not given and the schedule ends "
           "before 1 (vp_cosine), the schedule's t_max"},
          {"t_end", ParamType::number, 1e-3, "last time; 0 is allowed"},
          {"steps", ParamType::integer, 50, "number of intervals (the grid has steps+1 times)"},
          {"t_last", ParamType::number, 1e-3,
           uses_t_last ? "when t_end is 0: the rule spaces steps-1 intervals down to t_last, "
                         "then one final step goes to 0"
                       : "ignored by this grid (used by logSNR and karras when t_end is 0)"}};
}

// Reads and checks the span; errors get the grid object's full path.
GridSpan read_span(const Params& p, bool uses_t_last, const BuildContext& context) {
  GridSpan span;
  span.t_start = p.number("t_start");
  if (!p.given("t_start") && context.schedule) span.t_start = std::min(span.t_start, context.schedule->t_max());
  span.t_end = p.number("t_end");
  const long steps = p.integer("steps");
  if (steps < 1) p.fail("steps", "must be >= 1, got " + std::to_string(steps));
  if (steps > 100000000L) p.fail("steps", "must be <= 100000000, got " + std::to_string(steps));
  span.steps = static_cast<int>(steps);
  span.t_last = p.number("t_last");
  try {
    check_span(span, uses_t_last);
  } catch (const ConfigError& e) {
    throw e.prefixed(p.path());
  }
  return span;
}

template <class G>
RegistryEntry<Grid> span_entry(const std::string& name, const std::string& description,
                               bool uses_t_last) {
  return {name, description, span_specs(uses_t_last),
          [uses_t_last](const Params& p, const BuildContext& context) -> std::unique_ptr<Grid> {
            return std::make_unique<G>(read_span(p, uses_t_last, context));
          }};
}

}  // namespace

void register_grids(Registry<Grid>& registry) {
  registry.add(span_entry<TimeUniformGrid>("time_uniform", "uniform in t", false));
  registry.add(span_entry<LogSnrGrid>(
      "logSNR", "uniform in lambda = log(alpha/sigma) (DPM-Solver, Lu et al. 2022)", true));
  registry.add(span_entry<TimeQuadraticGrid>(
      "time_quadratic", "t = t_end + (t_start - t_end) u^2, u uniform: denser near t_end (DDIM)",
      false));

  auto karras_specs = span_specs(true);
  karras_specs.push_back({"rho", ParamType::number, 7.0, "exponent rho; larger crowds times near t_end"});
  registry.add({"karras",
                "uniform in sigma_ve^(1/rho), sigma_ve = sigma/alpha (EDM, Karras et al. 2022)",
                karras_specs, [](const Params& p, const BuildContext& context) -> std::unique_ptr<Grid> {
                  const double rho = p.number("rho");
                  if (!(rho > 0)) p.fail("rho", "must be > 0, got " + format_double(rho));
                  return std::make_unique<KarrasGrid>(read_span(p, true, context), rho);
                }});

  registry.add({"discrete_uniform",
                "every floor(N/steps)-th step of an N-step discrete schedule, at t = (n + 1)/N, then a final "
                "step to 0 (DDIM's 'uniform' skip)",
                {{"steps", ParamType::integer, 50, "number of intervals S (the last one goes to t = 0); 1 to N"},
                 {"num_steps", ParamType::integer, 1000, "number N of steps of the discrete schedule"}},
                [](const Params& p, const BuildContext&) -> std::unique_ptr<Grid> {
                  const long n = p.integer("num_steps");
                  if (n < 1 || n > 100000000L) p.fail("num_steps", "must be between 1 and 100000000");
                  const long steps = p.integer("steps");
                  if (steps < 1 || steps > n)
                    p.fail("steps", "must lie in [1, num_steps = " + std::to_string(n) + "], got " + std::to_string(steps));
                  return std::make_unique<DiscreteUniformGrid>(static_cast<int>(steps), static_cast<int>(n));
                }});

  registry.add({"custom",
                "an explicit list of times, strictly monotone, inside [0, t_max]",
                {{"t", ParamType::numbers, nlohmann::json(nullptr), "the times, required"}},
                [](const Params& p, const BuildContext&) -> std::unique_ptr<Grid> {
                  auto t = p.numbers("t");
                  try {
                    check_custom(t);
                  } catch (const ConfigError& e) {
                    throw e.prefixed(p.path());
                  }
                  return std::make_unique<CustomGrid>(std::move(t));
                }});
}

}  // namespace builtin

}  // namespace diffsde
