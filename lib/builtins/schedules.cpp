// Registry entries of the built-in noise schedules (lib/core/schedule.hpp): JSON
// parameters in, validated, a schedule out.
#include <cmath>
#include <memory>
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
       "linear in t between the knots t_n = (n+1)/N",
       {{"beta_start", ParamType::number, 1e-4, "first beta of linspace(beta_start, beta_end, num_steps)"},
        {"beta_end", ParamType::number, 0.02, "last beta of the linspace"},
        {"num_steps", ParamType::integer, 1000, "number N of discrete steps"},
        {"betas", ParamType::numbers, json(nullptr),
         "explicit betas, each in (0, 1); replaces beta_start/beta_end/num_steps"}},
       [](const Params& p, const BuildContext&) -> std::unique_ptr<Schedule> {
         if (p.has("betas")) {
           for (const char* other : {"beta_start", "beta_end", "num_steps"})
             if (p.given(other))
               p.fail("betas", std::string("give either betas or beta_start/beta_end/num_steps, not "
                                           "both (") + other + " is also set)");
           const std::vector<double> betas = p.numbers("betas");
           if (betas.empty()) p.fail("betas", "must not be empty");
           for (std::size_t n = 0; n < betas.size(); ++n)
             if (!(betas[n] > 0 && betas[n] < 1))
               throw ConfigError(join_path(p.path_of("betas"), n),
                                 "beta = " + format_double(betas[n]) + " is outside (0, 1)");
           return std::make_unique<VpDiscreteSchedule>(betas);
         }
         const double beta_start = p.number("beta_start"), beta_end = p.number("beta_end");
         const long num_steps = p.integer("num_steps");
         if (!(beta_start > 0 && beta_start < 1))
           p.fail("beta_start", "must be in (0, 1), got " + format_double(beta_start));
         if (!(beta_end > 0 && beta_end < 1))
           p.fail("beta_end", "must be in (0, 1), got " + format_double(beta_end));
         if (num_steps < 1) p.fail("num_steps", "must be >= 1, got " + std::to_string(num_steps));
         if (num_steps > 100000000L)
           p.fail("num_steps", "must be <= 100000000, got " + std::to_string(num_steps));
         return std::make_unique<VpDiscreteSchedule>(
             VpDiscreteSchedule::linear(beta_start, beta_end, static_cast<int>(num_steps)));
       }});
}

}  // namespace builtin

}  // namespace diffsde
