// Registry entry "pf_ode": the probability-flow ODE under the odeint steppers of
// odeint_integrator.hpp's table (its texts name the table's rows, so a new row shows up).
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "diffsde/solvers/pf_ode.hpp"
#include "entry.hpp"

namespace diffsde::builtin {

namespace {

// The names of the steppers whose row passes `keep`, joined by ", " and the last by `last_sep`.
template <class Keep>
std::string joined_names(Keep keep, const std::string& last_sep = ", ") {
  std::vector<std::string> names;
  for (const OdeintStepperInfo& row : odeint_steppers())
    if (keep(row)) names.emplace_back(row.name);
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i)
    out += (i == 0 ? "" : i + 1 == names.size() ? last_sep : ", ") + names[i];
  return out;
}

bool is_fixed(const OdeintStepperInfo& row) { return !row.adaptive; }
bool is_adaptive_row(const OdeintStepperInfo& row) { return row.adaptive; }

}  // namespace

void register_pf_ode(Registry<Solver>& registry) {
  std::vector<std::string> choices;
  std::vector<nlohmann::json> variants;
  for (const OdeintStepperInfo& row : odeint_steppers()) {
    choices.emplace_back(row.name);
    variants.push_back(nlohmann::json{{"stepper", row.name}});
  }
  // The texts below name the steppers from the table, so that a new row shows up in them.
  const std::string fixed = joined_names(is_fixed);
  const std::string adaptive = joined_names(is_adaptive_row);
  std::string uniform_note;
  for (const OdeintStepperInfo& row : odeint_steppers())
    if (row.uniform_grid_reason != nullptr)
      uniform_note += " (" + std::string(row.name) + " needs a uniform grid)";
  RegistryEntry<Solver> entry;
  entry.name = "pf_ode";
  entry.description =
      "Probability-flow ODE dx/dt = -beta/2 x + beta/(2 sigma) eps(x, t) under a Boost.Odeint "
      "stepper: fixed (" + fixed + ") or adaptive (" + adaptive + ")";
  entry.params = {
      {"stepper", ParamType::string, "dopri5",
       "odeint stepper; " + joined_names(is_fixed, " and ") + " take one step per grid interval" +
           uniform_note + ", the others choose their own steps between the grid times",
       choices},
      {"rtol", ParamType::number, 1e-6, "relative tolerance of the adaptive steppers"},
      {"atol", ParamType::number, 1e-6, "absolute tolerance of the adaptive steppers"},
      {"h_init", ParamType::number, 0.01, "first trial |dt| of the adaptive steppers"},
  };
  entry.make = [adaptive](const Params& params, const BuildContext&) -> std::unique_ptr<Solver> {
    PfOdeOptions o;
    o.stepper = pf_ode_stepper_from_string(params.string("stepper"));
    o.rtol = params.number("rtol");
    o.atol = params.number("atol");
    o.h_init = params.number("h_init");
    if (!is_adaptive(o.stepper))
      for (const char* name : {"rtol", "atol", "h_init"})
        if (params.given(name))
          params.fail(name,
                      "only the adaptive steppers (" + adaptive + ") use it; stepper '" +
                          to_string(o.stepper) + "' takes one step per grid interval");
    return std::make_unique<PfOdeSolver>(checked(params, o));
  };
  entry.variants = std::move(variants);
  registry.add(std::move(entry));
}


}  // namespace diffsde::builtin
