// Registry entry "unipc": the UniPC predictor-corrector (B(h) form).
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "diffsde/solvers/unipc.hpp"
#include "entry.hpp"

namespace diffsde::builtin {

void register_unipc(Registry<Solver>& registry) {
  std::vector<nlohmann::json> variants;
  for (int order : {1, 2, 3})
    for (const char* variant : {"bh1", "bh2"})
      for (const char* prediction : {"data", "noise"})
        variants.push_back({{"order", order}, {"variant", variant}, {"prediction", prediction},
                            {"lower_order_final", false}});
  registry.add(
      {"unipc",
       "UniPC (Zhao et al. 2023): multistep UniP predictor and UniC corrector in lambda; the "
       "corrector reuses the next step's evaluation, so one evaluation per step; order + 1 "
       "with lower_order_final off, 2 with it on",
       {{"order", ParamType::integer, 2, "predictor order p (1, 2 or 3); with the corrector the method has order p + 1"},
        {"variant", ParamType::string, "bh1", "B(h) of the order conditions: bh1 (B = h) or bh2 (B = expm1(h))",
         {"bh1", "bh2"}},
        {"prediction", ParamType::string, "data", "model output the steps extrapolate: data (x0) or noise (eps)",
         {"data", "noise"}},
        {"lower_order_final", ParamType::boolean, true,
         "step i of N uses order min(order, N - i), stabilizing few-step runs; the last step is "
         "then first order, so the global order is 2"},
        {"orders", ParamType::numbers, nlohmann::json(nullptr),
         "the predictor order of each step, one per grid step, each in [1, order] and at most its step number "
         "+ 1; replaces lower_order_final"},
        {"final_corrector", ParamType::boolean, false,
         "one more evaluation at the grid's end and the corrector on the last step (diffusers' zero-length "
         "last step at sigma_min); no effect on a last step to sigma 0"},
        {"disable_corrector", ParamType::numbers, nlohmann::json(nullptr),
         "indices of the steps whose result the corrector leaves as predicted (diffusers' disable_corrector)"}},
       [](const Params& p, const BuildContext&) -> std::unique_ptr<Solver> {
         UniPcSolver::Options o;
         o.order = int_param(p, "order");
         o.variant = unipc_variant_from_string(p.string("variant"));
         o.prediction = unipc_prediction_from_string(p.string("prediction"));
         o.lower_order_final = p.boolean("lower_order_final");
         o.final_corrector = p.boolean("final_corrector");
         o.orders = int_list_param(p, "orders", true);
         if (p.has("orders") && p.given("lower_order_final"))
           p.fail("lower_order_final", "give either orders or lower_order_final, not both");
         o.disable_corrector = int_list_param(p, "disable_corrector", false);
         return std::make_unique<UniPcSolver>(checked(p, o));
       },
       variants});
}

}  // namespace diffsde::builtin
