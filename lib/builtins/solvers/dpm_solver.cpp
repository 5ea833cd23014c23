// Registry entry "dpm_solver": DPM-Solver and DPM-Solver++, orders 1-3, singlestep or multistep.
#include <algorithm>
#include <cmath>
#include <memory>
#include <utility>

#include "diffsde/solvers/dpm_solver.hpp"
#include "entry.hpp"

namespace diffsde::builtin {

void register_dpm_solver(Registry<Solver>& registry) {
  RegistryEntry<Solver> entry;
  entry.name = "dpm_solver";
  entry.description =
      "DPM-Solver / DPM-Solver++ (Lu et al. 2022): exponential integrator in lambda of order "
      "1-3, singlestep or multistep, noise (dpmsolver) or data (dpmsolver++) prediction";
  entry.params = {
      {"order", ParamType::integer, 2, "order of the method: 1, 2 or 3"},
      {"method", ParamType::string, "multistep",
       "singlestep (order evaluations per step at lambda fractions 1/2 or 1/3, 2/3) or "
       "multistep (one evaluation per step, history of previous outputs)",
       {"singlestep", "multistep"}},
      {"stages", ParamType::string, "lambda",
       "singlestep: lambda (the stages at lambda fractions inside each grid interval) or grid (the "
       "stages are the grid times, one evaluation per step, in runs of orders 1, 2, .., order: "
       "diffusers' DPMSolverSinglestepScheduler)",
       {"lambda", "grid"}},
      {"algorithm", ParamType::string, "dpmsolver++",
       "model output the method expands: dpmsolver (noise prediction eps) or dpmsolver++ "
       "(data prediction x0)",
       {"dpmsolver", "dpmsolver++"}},
      {"lower_order_final", ParamType::boolean, true,
       "multistep: the order drops to the number of steps left (the last step is first "
       "order); singlestep with grid stages: the order list ends in a shorter run (diffusers' "
       "get_order_list); no effect on singlestep with lambda stages"},
      {"orders", ParamType::numbers, nlohmann::json(nullptr),
       "the order of each step, one per grid step, each in [1, order]; multistep: at most its step number + 1 "
       "(diffusers' lowering rules, DPM-Solver's order lists); singlestep with grid stages: runs 1, 2, .., k "
       "(diffusers' order_list); replaces lower_order_final"},
      {"coefficients", ParamType::string, "corrected",
       "third-order multistep: corrected (2 g_3 D2, order 3) or published (g_3 D2, as DPM-Solver's and "
       "diffusers' code; observed order 2)",
       {"corrected", "published"}},
  };
  entry.make = [](const Params& p, const BuildContext&) -> std::unique_ptr<Solver> {
    DpmSolver::Options o;
    o.order = int_param(p, "order");
    o.method = dpm_method_from_string(p.string("method"));
    o.stages = dpm_stages_from_string(p.string("stages"));
    o.algorithm = dpm_algorithm_from_string(p.string("algorithm"));
    o.lower_order_final = p.boolean("lower_order_final");
    o.reference_3m = p.string("coefficients") == "published";
    o.orders = int_list_param(p, "orders", true);
    if (p.has("orders") && p.given("lower_order_final"))
      p.fail("lower_order_final", "give either orders or lower_order_final, not both");
    return std::make_unique<DpmSolver>(checked(p, o));
  };
  for (int order : {1, 2, 3})
    for (const char* method : {"singlestep", "multistep"})
      for (const char* algorithm : {"dpmsolver", "dpmsolver++"})
        entry.variants.push_back({{"order", order},
                                  {"method", method},
                                  {"algorithm", algorithm},
                                  {"lower_order_final", false}});
  // Grid stages: orders 1 and 2 (order 3's runs end in a first-order step whenever the order
  // tests' step counts are not multiples of 3; tests/test_diffusers_singlestep.cpp fits it).
  for (int order : {1, 2})
    for (const char* algorithm : {"dpmsolver", "dpmsolver++"})
      entry.variants.push_back({{"order", order},
                                {"method", "singlestep"},
                                {"stages", "grid"},
                                {"algorithm", algorithm},
                                {"lower_order_final", false}});
  registry.add(std::move(entry));
}

}  // namespace diffsde::builtin
