// Registry entries of the built-in noise schedules (lib/core/schedule.hpp): JSON
// parameters in, validated, a schedule out.
#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "diffsde/builtins.hpp"
#include "diffsde/error.hpp"
#include "diffsde/schedule.hpp"

namespace diffsde {

namespace {
constexpr double kPi = 3.14159265358979323846;
}  // namespace

namespace builtin {

void register_schedules(Registry<Schedule>& registry) {
  using nlohmann::json;

  registry.add({"vp_linear",
                "Linear VP-SDE schedule beta(t) = beta0 + t (beta1 - beta0) (Song et al. 2021)",
                {{"beta0", ParamType::number, 0.1, "beta(0)"},
                 {"beta1", ParamType::number, 20.0, "beta(1)"}},
                [](const Params& p, const BuildContext&) -> std::unique_ptr<Schedule> {
                  const double beta0 = p.number("beta0"), beta1 = p.number("beta1");
                  if (!(beta0 > 0)) p.fail("beta0", "must be > 0, got " + format_double(beta0));
                  if (!(beta1 >= beta0))
                    p.fail("beta1", "must be >= beta0 = " + format_double(beta0) + ", got " + format_double(beta1));
                  return std::make_unique<VpLinearSchedule>(beta0, beta1);
                }});

  registry.add({"vp_cosine",
                "Cosine schedule alpha_bar = cos^2((t+s)/(1+s) pi/2)/cos^2(s/(1+s) pi/2), "
                "cut at t_max where beta = beta_max (Nichol & Dhariwal 2021)",
                {{"s", ParamType::number, 0.008, "offset s that keeps beta(0) away from 0"},
                 {"beta_max", ParamType::number, 999.0,
                  "cap on beta(t): the schedule ends at t_max where beta(t_max) = beta_max"}},
                [](const Params& p, const BuildContext&) -> std::unique_ptr<Schedule> {
                  const double s = p.number("s"), beta_max = p.number("beta_max");
                  if (!(s > 0)) p.fail("s", "must be > 0, got " + format_double(s));
                  const double beta_at_0 = kPi / (1.0 + s) * std::tan(s / (1.0 + s) * kPi / 2.0);
                  if (!(beta_max > beta_at_0))
                    p.fail("beta_max", "must be larger than beta(0) = " + format_double(beta_at_0) +
                                           ", got " + format_double(beta_max));
                  return std::make_unique<VpCosineSchedule>(s, beta_max);
                }});

  registry.add(
      {"vp_discrete",
       "Discrete DDPM schedule (Ho et al. 2020): betas_0..betas_{N-1}, log alpha_bar piecewise "
       "linear in t between the knots t_n = (n+1)/N; diffusers' beta schedules",
       {{"beta_schedule", ParamType::string, "linear",
         "how the betas are made, with the names of diffusers' DDPMScheduler",
         VpDiscreteSchedule::beta_schedule_names()},
        {"beta_start", ParamType::number, 1e-4,
         "first beta of the linspace (linear; sqrt of it for scaled_linear; sigmoid's lower end)"},
        {"beta_end", ParamType::number, 0.02, "last beta of the linspace (sigmoid's upper end)"},
        {"num_steps", ParamType::integer, 1000, "number N of discrete steps"},
        {"max_beta", ParamType::number, 0.999, "cap on the betas of squaredcos_cap_v2; in (0, 1]"},
        {"betas", ParamType::numbers, json(nullptr),
         "explicit betas, each in (0, 1) (the last may be 1); replaces beta_schedule/beta_start/"
         "beta_end/num_steps/max_beta"},
        {"trained_betas", ParamType::numbers, json(nullptr), "another name for betas (diffusers')"},
        {"rescale_betas_zero_snr", ParamType::boolean, false,
         "rescale the betas to zero terminal SNR (Lin et al. 2024, Algorithm 1): the last beta "
         "becomes 1"},
        {"final_alpha_bar", ParamType::number, json(nullptr),
         "replaces alpha_bar of the last step (the last beta is recomputed); in [0, alpha_bar "
         "of the step before)"}},
       [](const Params& p, const BuildContext&) -> std::unique_ptr<Schedule> {
         std::vector<double> betas;
         if (p.has("betas") && p.has("trained_betas"))
           p.fail("trained_betas", "give either betas or trained_betas (the same list), not both");
         const char* list = p.has("trained_betas") ? "trained_betas" : p.has("betas") ? "betas" : nullptr;
         const std::string beta_schedule = p.string("beta_schedule");
         if (list != nullptr) {
           for (const char* other : {"beta_schedule", "beta_start", "beta_end", "num_steps", "max_beta"})
             if (p.given(other))
               p.fail(list, std::string("give either ") + list +
                                " or beta_schedule/beta_start/beta_end/num_steps/max_beta, not both (" + other +
                                " is also set)");
           betas = p.numbers(list);
           if (betas.empty()) p.fail(list, "must not be empty");
           for (std::size_t n = 0; n < betas.size(); ++n) {
             const bool last = n + 1 == betas.size();
             if (!(betas[n] > 0 && (betas[n] < 1 || (last && betas[n] == 1))))
               throw ConfigError(join_path(p.path_of(list), n),
                                 "beta = " + format_double(betas[n]) +
                                     (last ? " is outside (0, 1]"
                                           : " is outside (0, 1) (only the last beta may be 1)"));
           }
         } else {
           const long num_steps = p.integer("num_steps");
           if (num_steps < 1) p.fail("num_steps", "must be >= 1, got " + std::to_string(num_steps));
           if (num_steps > 100000000L)
             p.fail("num_steps", "must be <= 100000000, got " + std::to_string(num_steps));
           const double max_beta = p.number("max_beta");
           if (beta_schedule == "squaredcos_cap_v2") {
             for (const char* unused : {"beta_start", "beta_end"})
               if (p.given(unused)) p.fail(unused, "is not used by beta_schedule squaredcos_cap_v2; leave it out");
             if (!(max_beta > 0 && max_beta <= 1))
               p.fail("max_beta", "must be in (0, 1], got " + format_double(max_beta));
           } else {
             if (p.given("max_beta"))
               p.fail("max_beta", "is used only by beta_schedule squaredcos_cap_v2, not by " + beta_schedule);
             const double beta_start = p.number("beta_start"), beta_end = p.number("beta_end");
             if (!(beta_start > 0 && beta_start < 1))
               p.fail("beta_start", "must be in (0, 1), got " + format_double(beta_start));
             if (!(beta_end > 0 && beta_end < 1))
               p.fail("beta_end", "must be in (0, 1), got " + format_double(beta_end));
           }
           betas = VpDiscreteSchedule::named(beta_schedule, p.number("beta_start"), p.number("beta_end"),
                                             static_cast<int>(num_steps), max_beta)
                       .betas();
         }
         if (p.boolean("rescale_betas_zero_snr")) {
           if (betas.size() < 2) p.fail("rescale_betas_zero_snr", "needs at least 2 steps");
           try {
             betas = VpDiscreteSchedule::rescale_zero_terminal_snr(betas);
           } catch (const Error& e) {
             p.fail("rescale_betas_zero_snr", e.what());
           }
         }
         if (p.has("final_alpha_bar")) {
           try {
             betas = VpDiscreteSchedule::with_final_alpha_bar(betas, p.number("final_alpha_bar"));
           } catch (const Error& e) {
             p.fail("final_alpha_bar", e.what());
           }
         }
         return std::make_unique<VpDiscreteSchedule>(std::move(betas));
       }});

  // Schedules that are not variance-preserving (alpha^2 + sigma^2 != 1): only solvers with
  // SolverTraits::any_schedule run on them (docs/math.md, "General (alpha, sigma)").
  const auto sigma_range = [](const Params& p) {
    const double sigma_min = p.number("sigma_min"), sigma_max = p.number("sigma_max");
    if (!(sigma_min > 0) || !std::isfinite(sigma_min))
      p.fail("sigma_min", "must be a finite number > 0, got " + format_double(sigma_min));
    if (!(sigma_max > sigma_min) || !std::isfinite(sigma_max))
      p.fail("sigma_max", "must be finite and > sigma_min = " + format_double(sigma_min) + ", got " +
                              format_double(sigma_max));
    return std::make_pair(sigma_min, sigma_max);
  };

  registry.add({"ve",
                "Score-SDE VE-SDE: alpha = 1, sigma(t) = sigma_min (sigma_max/sigma_min)^t on [0, 1] "
                "(Song et al. 2021)",
                {{"sigma_min", ParamType::number, 0.01, "sigma(0)"},
                 {"sigma_max", ParamType::number, 50.0, "sigma(1); the initial noise has this std"}},
                [sigma_range](const Params& p, const BuildContext&) -> std::unique_ptr<Schedule> {
                  const auto [sigma_min, sigma_max] = sigma_range(p);
                  return std::make_unique<VeSchedule>(sigma_min, sigma_max);
                }});

  registry.add({"subvp",
                "Score-SDE sub-VP SDE: alpha as vp_linear, sigma = 1 - alpha^2 (Song et al. 2021)",
                {{"beta0", ParamType::number, 0.1, "beta(0)"},
                 {"beta1", ParamType::number, 20.0, "beta(1)"}},
                [](const Params& p, const BuildContext&) -> std::unique_ptr<Schedule> {
                  const double beta0 = p.number("beta0"), beta1 = p.number("beta1");
                  if (!(beta0 > 0) || !std::isfinite(beta0))
                    p.fail("beta0", "must be a finite number > 0, got " + format_double(beta0));
                  if (!(beta1 >= beta0) || !std::isfinite(beta1))
                    p.fail("beta1", "must be finite and >= beta0 = " + format_double(beta0) + ", got " +
                                        format_double(beta1));
                  return std::make_unique<SubVpSchedule>(beta0, beta1);
                }});

  registry.add({"edm",
                "EDM: alpha = 1, sigma = t, t (the noise level) in [0, sigma_max]; grids run from "
                "sigma_max down to sigma_min by default (Karras et al. 2022)",
                {{"sigma_min", ParamType::number, 0.002, "default end of the grids (t_end)"},
                 {"sigma_max", ParamType::number, 80.0,
                  "largest t = sigma; default start of the grids; the initial noise has this std"}},
                [sigma_range](const Params& p, const BuildContext&) -> std::unique_ptr<Schedule> {
                  const auto [sigma_min, sigma_max] = sigma_range(p);
                  return std::make_unique<EdmSchedule>(sigma_min, sigma_max);
                }});

  registry.add({"flow",
                "Rectified flow / flow matching: alpha = 1 - s, sigma = s, s = shift t / (1 + (shift - 1) t) "
                "on [0, 1] (SD3, Flux); alpha = 0 at t = 1, so grids start below 1",
                {{"shift", ParamType::number, 1.0, "time shift of SD3 / Flux; > 0 (1: none)"}},
                [](const Params& p, const BuildContext&) -> std::unique_ptr<Schedule> {
                  const double shift = p.number("shift");
                  if (!(shift > 0) || !std::isfinite(shift))
                    p.fail("shift", "must be a finite number > 0, got " + format_double(shift));
                  return std::make_unique<FlowSchedule>(shift);
                }});
}

}  // namespace builtin

}  // namespace diffsde
