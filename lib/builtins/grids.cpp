// Registry entries of the built-in time grids (lib/core/grid.hpp): JSON parameters in,
// validated (errors at the grid object's path), a grid out.
#include <algorithm>
#include <cmath>
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
           "before 1 (vp_cosine) or after 1 (edm: sigma_max), the schedule's t_max"},
          {"t_end", ParamType::number, 1e-3, "last time; 0 is allowed; when not given on edm, sigma_min"},
          {"steps", ParamType::integer, 50, "number of intervals (the grid has steps+1 times)"},
          {"t_last", ParamType::number, 1e-3,
           uses_t_last ? "when t_end is 0: the rule spaces steps-1 intervals down to t_last, "
                         "then one final step goes to 0"
                       : "ignored by this grid (used by logSNR, karras and shift when t_end is 0)"}};
}

// Reads and checks the span; errors get the grid object's full path.
GridSpan read_span(const Params& p, bool uses_t_last, const BuildContext& context) {
  GridSpan span;
  span.t_start = p.number("t_start");
  // Defaults follow the schedule's range: t_max (below 1 for vp_cosine, sigma_max for edm)
  // and, for edm whose t is sigma, t_end = sigma_min.
  if (!p.given("t_start") && context.schedule) span.t_start = std::min(span.t_start, context.schedule->t_max());
  if (!p.given("t_start") && context.schedule && context.schedule->t_max() > 1) span.t_start = context.schedule->t_max();
  span.t_end = p.number("t_end");
  if (!p.given("t_end") && context.schedule) span.t_end = std::max(span.t_end, context.schedule->t_min());
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

  auto shift_specs = span_specs(true);
  shift_specs.push_back({"shift", ParamType::number, 1.0,
                         "t = shift u / (1 + (shift - 1) u) with u uniform (SD3 uses 3); > 1 crowds times near t = 1"});
  registry.add({"shift",
                "flow matching's resolution shift: uniform in u, t = shift u / (1 + (shift - 1) u) (SD3, Flux; "
                "diffusers' flow-matching sigmas)",
                shift_specs, [](const Params& p, const BuildContext& context) -> std::unique_ptr<Grid> {
                  const double shift = p.number("shift");
                  if (!(shift > 0) || !std::isfinite(shift)) p.fail("shift", "must be finite and > 0, got " + format_double(shift));
                  return std::make_unique<ShiftGrid>(read_span(p, true, context), shift);
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

  registry.add(
      {"diffusers",
       "the timesteps and sigmas of diffusers' schedulers on a vp_discrete schedule (timestep_spacing, steps_offset, "
       "Karras/exponential/beta sigmas, final_sigmas_type), by scheduler family",
       {{"steps", ParamType::integer, 50, "num_inference_steps"},
        {"family", ParamType::string, "dpm_solver",
         "whose set_timesteps: ddim (DDIM, DDPM), dpm_solver (DPMSolverMultistep/Singlestep, UniPC, DEIS) or euler "
         "(Euler, EulerAncestral, LMS)",
         {"ddim", "dpm_solver", "euler"}},
        {"timestep_spacing", ParamType::string, "linspace", "diffusers' timestep_spacing",
         {"linspace", "leading", "trailing"}},
        {"steps_offset", ParamType::integer, 0, "added to the leading timesteps"},
        {"sigmas", ParamType::json, "timesteps",
         "the steps' noise levels sigma/alpha: timesteps (those of the timesteps), karras, exponential, lu_lambdas, "
         "beta, or a list of sigmas (decreasing)"},
        {"timesteps", ParamType::numbers, nlohmann::json(nullptr), "given integer timesteps (decreasing), replacing the spacing"},
        {"final_sigmas_type", ParamType::string, "zero",
         "dpm_solver, euler: the last step ends at sigma 0 (t = 0) or at the first discrete step's sigma",
         {"zero", "sigma_min"}},
        {"set_alpha_to_one", ParamType::boolean, true,
         "ddim: the last step ends at alpha_bar = 1 (t = 0), or else at the first discrete step"},
        {"lambda_min_clipped", ParamType::number, nlohmann::json(nullptr),
         "dpm_solver: timesteps stop where lambda falls below this (unset: no clip)"},
        {"round_timesteps", ParamType::boolean, nlohmann::json(nullptr),
         "the network timesteps of Karras, exponential, beta, Lu or given sigmas rounded to integers (unset: "
         "the family's rule, fractional for euler, rounded otherwise; KDPM2's Karras timesteps are rounded)"}},
       [](const Params& p, const BuildContext&) -> std::unique_ptr<Grid> {
         DiffusersGridOptions o;
         const long steps = p.integer("steps");
         if (steps < 1 || steps > 100000000L) p.fail("steps", "must be between 1 and 100000000");
         o.steps = static_cast<int>(steps);
         o.family = p.string("family");
         o.timestep_spacing = p.string("timestep_spacing");
         o.steps_offset = p.integer("steps_offset");
         if (o.steps_offset < 0) p.fail("steps_offset", "must be >= 0");
         const nlohmann::json& sig = p.value("sigmas");
         if (sig.is_string()) {
           o.sigmas = sig.get<std::string>();
         } else if (sig.is_array()) {
           o.sigmas = "given";
           for (std::size_t i = 0; i < sig.size(); ++i) {
             if (!sig[i].is_number())
               throw ConfigError(join_path(p.path_of("sigmas"), i), "expected a number, got " + json_type_name(sig[i]));
             o.custom_sigmas.push_back(sig[i].get<double>());
           }
           if (o.custom_sigmas.empty()) p.fail("sigmas", "must not be empty");
         } else {
           p.fail("sigmas", "expected a rule's name or a list of sigmas, got " + json_type_name(sig));
         }
         if (p.has("timesteps")) {
           const auto v = p.numbers("timesteps");
           if (v.empty()) p.fail("timesteps", "must not be empty");
           for (std::size_t i = 0; i < v.size(); ++i) {
             if (v[i] != std::floor(v[i]) || !(std::abs(v[i]) < 1e15))
               throw ConfigError(join_path(p.path_of("timesteps"), i), "expected an integer timestep, got " + format_double(v[i]));
             o.custom_timesteps.push_back(static_cast<long>(v[i]));
           }
           if (p.given("steps")) p.fail("steps", "give either steps or timesteps, not both");
           o.steps = static_cast<int>(v.size());
           if (!o.custom_sigmas.empty()) p.fail("timesteps", "give either timesteps or a list of sigmas, not both");
         }
         if (!o.custom_sigmas.empty()) {
           if (p.given("steps")) p.fail("steps", "give either steps or a list of sigmas, not both");
           o.steps = static_cast<int>(o.custom_sigmas.size());
         }
         o.final_sigmas_type = p.string("final_sigmas_type");
         o.set_alpha_to_one = p.boolean("set_alpha_to_one");
         if (p.has("round_timesteps")) o.round_timesteps = p.boolean("round_timesteps");
         if (o.family == "ddim" && p.given("final_sigmas_type"))
           p.fail("final_sigmas_type", "belongs to the dpm_solver and euler families; the ddim family ends by set_alpha_to_one");
         if (o.family != "ddim" && p.given("set_alpha_to_one"))
           p.fail("set_alpha_to_one", "belongs to the ddim family; the others end by final_sigmas_type");
         if (p.has("lambda_min_clipped")) {
           if (o.family != "dpm_solver") p.fail("lambda_min_clipped", "belongs to the dpm_solver family");
           o.lambda_min_clipped = p.number("lambda_min_clipped");
         }
         auto grid = std::make_unique<DiffusersGrid>(o);
         return grid;
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
