// Registry entry "ipndm": improved PNDM with variable-step Adams–Bashforth weights.
#include <memory>

#include "diffsde/solvers/ipndm.hpp"
#include "entry.hpp"

namespace diffsde::builtin {

void register_ipndm(Registry<Solver>& registry) {
  registry.add({"ipndm",
                "improved PNDM (Zhang & Chen 2023): Adams–Bashforth combination of the last "
                "`order` eps values in the DDIM transfer, with variable-step weights in "
                "rho = sigma/alpha (the classic iPNDM weights on rho-uniform steps); order 1 = DDIM",
                {{"order", ParamType::integer, 4, "order of the method and number of eps values used: 1 to 4"}},
                [](const Params& p, const BuildContext&) -> std::unique_ptr<Solver> {
                  IpndmSolver::Options o;
                  o.order = int_param(p, "order");
                  return std::make_unique<IpndmSolver>(checked(p, o));
                },
                {{{"order", 1}}, {{"order", 2}}, {{"order", 3}}, {{"order", 4}}}});
}

}  // namespace diffsde::builtin
