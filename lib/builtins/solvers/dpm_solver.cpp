// Registry entry "dpm_solver": DPM-Solver and DPM-Solver++, orders 1-3, singlestep or multistep.
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
      {"algorithm", ParamType::string, "dpmsolver++",
       "model output the method expands: dpmsolver (noise prediction eps) or dpmsolver++ "
       "(data prediction x0)",
       {"dpmsolver", "dpmsolver++"}},
      {"lower_order_final", ParamType::boolean, true,
       "multistep: the order drops to the number of steps left (the last step is first "
       "order); no effect on singlestep"},
  };
  entry.make = [](const Params& p, const BuildContext&) -> std::unique_ptr<Solver> {
    DpmSolver::Options o;
    o.order = int_param(p, "order");
    o.method = dpm_method_from_string(p.string("method"));
    o.algorithm = dpm_algorithm_from_string(p.string("algorithm"));
    o.lower_order_final = p.boolean("lower_order_final");
    return std::make_unique<DpmSolver>(checked(p, o));
  };
  for (int order : {1, 2, 3})
    for (const char* method : {"singlestep", "multistep"})
      for (const char* algorithm : {"dpmsolver", "dpmsolver++"})
        entry.variants.push_back({{"order", order},
                                  {"method", method},
                                  {"algorithm", algorithm},
                                  {"lower_order_final", false}});
  registry.add(std::move(entry));
}

}  // namespace diffsde::builtin
