// Registry entries of the stochastic DPM-Solver++ family: dpmpp_2m_sde, dpmpp_3m_sde,
// dpmpp_2s_ancestral and dpmpp_sde.
#include <algorithm>
#include <cmath>
#include <memory>

#include "diffsde/solvers/dpmpp_sde.hpp"
#include "entry.hpp"

namespace diffsde::builtin {

namespace {

const char* kEtaDoc =
    "stochasticity >= 0: 0 is the deterministic DPM-Solver++ ODE solver, 1 the reverse SDE";

}  // namespace

void register_dpmpp_sde(Registry<Solver>& registry) {
  using nlohmann::json;
  registry.add({"dpmpp_2m_sde",
                "SDE-DPM-Solver++(2M): second-order multistep in lambda with data prediction and "
                "noise scaled by eta (k-diffusion's sample_dpmpp_2m_sde); eta = 0 is DPM-Solver++(2M)",
                {{"eta", ParamType::number, 1.0,
                  "noise: the step solves dx = [f x - (1+eta)/2 g^2 score] dt + sqrt(eta) g dW; "
                  "0 = PF-ODE (DPM-Solver++(2M)), 1 = reverse SDE"},
                 {"solver_type", ParamType::string, "midpoint",
                  "second-order correction: midpoint or heun", {"midpoint", "heun"}},
                 {"orders", ParamType::numbers, json(nullptr),
                  "the order of each step, one per grid step, each 1 or 2 and at most its step number + 1 "
                  "(diffusers' lowering of the last step); unset: second order from the second step on"}},
                [](const Params& p, const BuildContext&) -> std::unique_ptr<Solver> {
                  Dpmpp2mSdeSolver::Options o;
                  o.eta = p.number("eta");
                  o.solver_type = dpmpp_solver_type_from_string(p.string("solver_type"));
                  o.orders = int_list_param(p, "orders", true);
                  return std::make_unique<Dpmpp2mSdeSolver>(checked(p, o));
                },
                {json{{"eta", 0.0}, {"solver_type", "midpoint"}}, json{{"eta", 0.0}, {"solver_type", "heun"}},
                 json{{"eta", 1.0}, {"solver_type", "midpoint"}}, json{{"eta", 1.0}, {"solver_type", "heun"}}}});
  registry.add({"dpmpp_3m_sde",
                "third-order multistep SDE-DPM-Solver++ (k-diffusion's sample_dpmpp_3m_sde); eta = 0 "
                "is DPM-Solver++(3M)",
                {{"eta", ParamType::number, 1.0, kEtaDoc}},
                [](const Params& p, const BuildContext&) -> std::unique_ptr<Solver> {
                  return std::make_unique<Dpmpp3mSdeSolver>(checked(p, DpmppOptions{p.number("eta")}));
                },
                {json{{"eta", 0.0}}, json{{"eta", 1.0}}}});
  registry.add({"dpmpp_2s_ancestral",
                "DPM-Solver++(2S) to the ancestral 'down' point, then ancestral noise "
                "(k-diffusion's sample_dpmpp_2s_ancestral); 2 evaluations per step",
                {{"eta", ParamType::number, 1.0,
                  "ancestral noise: sigma_up = eta sigma_t sqrt(1 - e^{-2h}) (capped at sigma_t); 0 = "
                  "deterministic DPM-Solver++(2S), 1 = DDPM's posterior noise"}},
                [](const Params& p, const BuildContext&) -> std::unique_ptr<Solver> {
                  return std::make_unique<Dpmpp2sAncestralSolver>(checked(p, DpmppOptions{p.number("eta")}));
                },
                {json{{"eta", 0.0}}, json{{"eta", 1.0}}}});
  registry.add({"dpmpp_sde",
                "DPM-Solver++ SDE: singlestep second order with an intermediate point at lambda_s + r h "
                "and ancestral noise at it and at the end (k-diffusion's sample_dpmpp_sde)",
                {{"eta", ParamType::number, 1.0,
                  "ancestral noise at both sub-steps: sigma_up = eta sigma_t sqrt(1 - e^{-2h}) (capped); "
                  "0 = deterministic DPM-Solver++(2S) with this r"},
                 {"r", ParamType::number, 0.5, "position of the intermediate point in (0, 1), as a fraction of h"},
                 {"sampler_draws", ParamType::boolean, false,
                  "the noise's draws are k-diffusion's noise sampler's two outputs per step, used as they are (a "
                  "replay of what a k-diffusion run's sampler returned; independent draws as its "
                  "default_noise_sampler); false: Brownian increments, the end's noise the whole step's"}},
                [](const Params& p, const BuildContext&) -> std::unique_ptr<Solver> {
                  DpmppSdeSolver::Options o;
                  o.eta = p.number("eta");
                  o.r = p.number("r");
                  o.sampler_draws = p.boolean("sampler_draws");
                  return std::make_unique<DpmppSdeSolver>(checked(p, o));
                },
                {json{{"eta", 0.0}, {"r", 0.5}}, json{{"eta", 0.0}, {"r", 0.3}}, json{{"eta", 1.0}, {"r", 0.5}},
                 json{{"eta", 1.0}, {"r", 0.5}, {"sampler_draws", true}}}});
}

}  // namespace diffsde::builtin
