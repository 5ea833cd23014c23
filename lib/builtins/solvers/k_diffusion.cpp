// Registry entries of the k-diffusion / EDM samplers: euler, euler_ancestral, heun, dpm2,
// dpm2_ancestral and lms.
#include <limits>
#include <memory>

#include "diffsde/solvers/k_diffusion.hpp"
#include "entry.hpp"

namespace diffsde::builtin {

namespace {

const ParamSpec kEta{"eta", ParamType::number, 1.0,
                     "ancestral stochasticity, >= 0: sigma_up = eta * (the DDPM posterior std); 0 = deterministic"};
const ParamSpec kSNoise{"s_noise", ParamType::number, 1.0, "scale of the added noise, >= 0 (1 = exact)"};

KDiffusionAncestralOptions ancestral_options(const Params& p) {
  KDiffusionAncestralOptions o;
  o.eta = p.number("eta");
  o.s_noise = p.number("s_noise");
  return checked(p, o);
}

std::unique_ptr<Solver> make_heun(const Params& p) {
  KDiffusionHeun::Options o;
  o.s_churn = p.number("s_churn");
  o.s_tmin = p.number("s_tmin");
  o.s_tmax = p.has("s_tmax") ? p.number("s_tmax") : std::numeric_limits<double>::infinity();
  o.s_noise = p.number("s_noise");
  return std::make_unique<KDiffusionHeun>(checked(p, o));
}

std::unique_ptr<Solver> make_lms(const Params& p) {
  KDiffusionLms::Options o;
  o.order = int_param(p, "order");
  return std::make_unique<KDiffusionLms>(checked(p, o));
}

}  // namespace

void register_k_diffusion(Registry<Solver>& registry) {
  using nlohmann::json;
  registry.add({"euler",
                "k-diffusion / EDM Euler step in sigma_ve = sigma/alpha (first order; equals ddim eta = 0)",
                {},
                [](const Params&, const BuildContext&) -> std::unique_ptr<Solver> {
                  return std::make_unique<KDiffusionEuler>();
                }});
  registry.add({"euler_ancestral",
                "k-diffusion Euler ancestral: Euler to sigma_down, then noise sigma_up (equals ddim with "
                "the same eta at s_noise = 1)",
                {kEta, kSNoise},
                [](const Params& p, const BuildContext&) -> std::unique_ptr<Solver> {
                  return std::make_unique<KDiffusionEulerAncestral>(ancestral_options(p));
                },
                {{{"eta", 1.0}}, {{"eta", 0.5}}}});
  registry.add({"heun",
                "EDM Algorithm 2: Heun's second-order method in sigma_ve with optional churn "
                "(stochastic when s_churn > 0)",
                {{"s_churn", ParamType::number, 0.0, "churn: gamma = min(s_churn/steps, sqrt(2) - 1), >= 0"},
                 {"s_tmin", ParamType::number, 0.0, "churn only where sigma_ve >= s_tmin"},
                 {"s_tmax", ParamType::number, nullptr, "churn only where sigma_ve <= s_tmax (infinity when not given)"},
                 kSNoise},
                [](const Params& p, const BuildContext&) { return make_heun(p); },
                {json::object(), {{"s_churn", 10.0}}}});
  registry.add({"dpm2",
                "k-diffusion DPM-Solver-2-like step: midpoint in log sigma_ve (second order, 2 evaluations "
                "per step; the final step to 0 is Euler)",
                {},
                [](const Params&, const BuildContext&) -> std::unique_ptr<Solver> {
                  return std::make_unique<KDiffusionDpm2>();
                }});
  registry.add({"dpm2_ancestral",
                "k-diffusion DPM-2 ancestral: dpm2 to sigma_down, then noise sigma_up",
                {kEta, kSNoise},
                [](const Params& p, const BuildContext&) -> std::unique_ptr<Solver> {
                  return std::make_unique<KDiffusionDpm2Ancestral>(ancestral_options(p));
                }});
  registry.add({"lms",
                "k-diffusion linear multistep in sigma_ve, coefficients from the exact integral of the "
                "Lagrange basis over each variable step",
                {{"order", ParamType::integer, 4, "order, 1 to 4 (the first order - 1 steps use lower orders)"}},
                [](const Params& p, const BuildContext&) { return make_lms(p); },
                {{{"order", 1}}, {{"order", 2}}, {{"order", 3}}, {{"order", 4}}}});
}

}  // namespace diffsde::builtin
