// Registry entries of k-diffusion's DPM-Solver samplers: dpm_fast and dpm_adaptive.
#include <memory>
#include <utility>

#include "diffsde/solvers/k_dpm.hpp"
#include "entry.hpp"

namespace diffsde::builtin {

namespace {

const ParamSpec kEta{"eta", ParamType::number, 0.0,
                     "ancestral noise, >= 0: sigma_up = eta * (the DDPM posterior std), as k-diffusion's "
                     "get_ancestral_step; 0 = deterministic"};
const ParamSpec kSNoise{"s_noise", ParamType::number, 1.0, "scale of the added noise, >= 0"};

std::unique_ptr<Solver> make_fast(const Params& p) {
  KDiffusionDpmFast::Options o;
  if (p.has("nfe")) {
    o.nfe = int_param(p, "nfe");
    if (o.nfe < 1) p.fail("nfe", "must be >= 1, got " + std::to_string(p.integer("nfe")));
  }
  o.eta = p.number("eta");
  o.s_noise = p.number("s_noise");
  return std::make_unique<KDiffusionDpmFast>(checked(p, o));
}

std::unique_ptr<Solver> make_adaptive(const Params& p) {
  KDiffusionDpmAdaptive::Options o;
  o.order = int_param(p, "order");
  o.rtol = p.number("rtol");
  o.atol = p.number("atol");
  o.h_init = p.number("h_init");
  o.pcoeff = p.number("pcoeff");
  o.icoeff = p.number("icoeff");
  o.dcoeff = p.number("dcoeff");
  o.accept_safety = p.number("accept_safety");
  o.eta = p.number("eta");
  o.s_noise = p.number("s_noise");
  return std::make_unique<KDiffusionDpmAdaptive>(checked(p, o));
}

}  // namespace

void register_k_dpm(Registry<Solver>& registry) {
  RegistryEntry<Solver> fast;
  fast.name = "dpm_fast";
  fast.description =
      "k-diffusion's DPM-Solver-fast (sample_dpm_fast): one singlestep DPM-Solver step per grid interval, "
      "orders 3, ..., 3 then (2, 1), 1 or 2 from the budget nfe; on a logSNR grid, k-diffusion's steps";
  fast.params = {
      {"nfe", ParamType::integer, nullptr,
       "k-diffusion's budget n, >= 1: the grid must have floor(nfe/3) + 1 steps ending at sigma > 0 "
       "(not given: 3 steps - 1, orders 3, ..., 3, 2)"},
      kEta,
      kSNoise,
  };
  fast.make = [](const Params& p, const BuildContext&) { return make_fast(p); };
  registry.add(std::move(fast));

  RegistryEntry<Solver> adaptive;
  adaptive.name = "dpm_adaptive";
  adaptive.description =
      "k-diffusion's DPM-Solver-12/23 with a PID step-size controller in lambda (sample_dpm_adaptive): "
      "embedded pair, error RMS over the batch, k-diffusion's defaults";
  adaptive.params = {
      {"order", ParamType::integer, 3, "order of the higher method of the pair: 2 or 3"},
      {"rtol", ParamType::number, 0.05, "relative tolerance (k-diffusion's default, for images in [-1, 1])"},
      {"atol", ParamType::number, 0.0078, "absolute tolerance (k-diffusion's default, for images in [-1, 1])"},
      {"h_init", ParamType::number, 0.05, "first trial step size in lambda"},
      {"pcoeff", ParamType::number, 0.0, "PID controller: proportional coefficient, >= 0"},
      {"icoeff", ParamType::number, 1.0, "PID controller: integral coefficient, >= 0"},
      {"dcoeff", ParamType::number, 0.0, "PID controller: derivative coefficient, >= 0"},
      {"accept_safety", ParamType::number, 0.81, "an attempt is accepted when the controller's factor is >= this"},
      kEta,
      kSNoise,
  };
  adaptive.make = [](const Params& p, const BuildContext&) { return make_adaptive(p); };
  // Tight tolerances for the registry-wide tests (error against the exact flow).
  for (int order : {2, 3}) adaptive.variants.push_back({{"order", order}, {"rtol", 1e-6}, {"atol", 1e-6}});
  registry.add(std::move(adaptive));
}

}  // namespace diffsde::builtin
