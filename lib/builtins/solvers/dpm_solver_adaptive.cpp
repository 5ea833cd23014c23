// Registry entry "dpm_solver_adaptive": DPM-Solver's embedded pairs with adaptive steps in lambda.
#include <memory>
#include <utility>

#include "diffsde/solvers/dpm_solver_adaptive.hpp"
#include "entry.hpp"

namespace diffsde::builtin {

void register_dpm_solver_adaptive(Registry<Solver>& registry) {
  RegistryEntry<Solver> entry;
  entry.name = "dpm_solver_adaptive";
  entry.description =
      "DPM-Solver with adaptive step size in lambda (Lu et al. 2022, Algorithm 4): embedded "
      "DPM-Solver-1/2 (order 2) or DPM-Solver-2/3 (order 3) pair";
  entry.params = {
      {"order", ParamType::integer, 3, "order of the higher method of the pair: 2 or 3"},
      {"algorithm", ParamType::string, "dpmsolver",
       "model output the steps expand: dpmsolver (noise prediction, as the paper) or "
       "dpmsolver++ (data prediction)",
       {"dpmsolver", "dpmsolver++"}},
      {"rtol", ParamType::number, 1e-5,
       "relative tolerance (the paper uses 0.05 for images in [-1, 1])"},
      {"atol", ParamType::number, 1e-5,
       "absolute tolerance (the paper uses 0.0078 for images in [-1, 1])"},
      {"h_init", ParamType::number, 0.05, "first trial step size in lambda"},
  };
  entry.make = [](const Params& p, const BuildContext&) -> std::unique_ptr<Solver> {
    DpmSolverAdaptive::Options o;
    o.order = int_param(p, "order");
    o.algorithm = dpm_algorithm_from_string(p.string("algorithm"));
    o.rtol = p.number("rtol");
    o.atol = p.number("atol");
    o.h_init = p.number("h_init");
    return std::make_unique<DpmSolverAdaptive>(checked(p, o));
  };
  for (int order : {2, 3})
    for (const char* algorithm : {"dpmsolver", "dpmsolver++"})
      entry.variants.push_back({{"order", order}, {"algorithm", algorithm}});
  registry.add(std::move(entry));
}

}  // namespace diffsde::builtin
