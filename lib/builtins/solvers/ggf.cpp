// Registry entry "ggf": the adaptive reverse-SDE solver of Jolicoeur-Martineau et al.
#include <memory>

#include "diffsde/solvers/ggf.hpp"
#include "entry.hpp"

namespace diffsde::builtin {

void register_ggf(Registry<Solver>& registry) {
  registry.add(
      {"ggf",
       "Adaptive reverse-SDE solver of Jolicoeur-Martineau et al. 2021 (Gotta Go Fast): "
       "Euler-Maruyama / stochastic improved Euler embedded pair, per-sample step sizes; needs "
       "brownian_tree noise",
       {{"rtol", ParamType::number, 0.05, "relative tolerance epsilon_rel"},
        {"atol", ParamType::number, 0.0039, "absolute tolerance epsilon_abs"},
        {"h_init", ParamType::number, 0.01, "first step size of every sample"},
        {"norm", ParamType::string, "l2", "error norm: l2 (scaled RMS) or linf", {"l2", "linf"}},
        {"safety", ParamType::number, 0.9, "safety factor theta"},
        {"exponent", ParamType::number, 0.9, "step-size exponent r: h_new = theta h E^-r"},
        {"max_steps", ParamType::integer, 100000,
         "step attempts per sample and grid interval before giving up (an Error)"}},
       [](const Params& p, const BuildContext&) -> std::unique_ptr<Solver> {
         GgfOptions o;
         o.rtol = p.number("rtol");
         o.atol = p.number("atol");
         o.h_init = p.number("h_init");
         o.norm = p.string("norm");
         o.safety = p.number("safety");
         o.exponent = p.number("exponent");
         o.max_steps = p.integer("max_steps");
         return std::make_unique<GgfSolver>(checked(p, o));
       },
       {nlohmann::json{{"norm", "l2"}}, nlohmann::json{{"norm", "linf"}}}});
}

}  // namespace diffsde::builtin
