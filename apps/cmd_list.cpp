// `diffsde list [KIND] [--json]`: the registered solvers, schedules, grids, models and sweep
// metrics.
#include <cmath>
#include <iomanip>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "commands.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/solver.hpp"
#include "diffsde/sweep.hpp"

namespace diffsde::cli {

namespace {

using nlohmann::json;

json spec_json(const ParamSpec& s) {
  json j = {{"name", s.name}, {"type", to_string(s.type)}, {"default", s.default_value},
            {"description", s.description}};
  if (!s.choices.empty()) j["choices"] = s.choices;
  return j;
}

template <class T>
json entries_json(const Registry<T>& registry) {
  json out = json::array();
  for (const auto& e : registry.entries()) {
    json params = json::object();
    json specs = json::array();
    for (const auto& s : e.params) {
      params[s.name] = s.default_value;
      specs.push_back(spec_json(s));
    }
    out.push_back({{"kind", registry.kind()}, {"name", e.name}, {"description", e.description},
                   {"params", params}, {"param_specs", specs}});
  }
  return out;
}

json solver_entries_json() {
  json out = entries_json(solver_registry());
  for (auto& j : out) {
    const auto traits = solver_registry().create_default(j["name"].get<std::string>())->traits();
    j["stochastic"] = traits.stochastic;
    j["order"] = traits.order;
    j["strong_order"] = std::isnan(traits.strong_order) ? json(nullptr) : json(traits.strong_order);
    j["evals_per_step"] = traits.evals_per_step;
    j["adaptive"] = traits.adaptive;
    j["batch_coupled"] = traits.batch_coupled;
    j["per_sample_steps"] = traits.per_sample_steps;
    if (!traits.noise_use.empty()) j["noise_use"] = traits.noise_use;
  }
  return out;
}

void print_entries(const json& entries, const std::string& heading) {
  std::cout << heading << "\n";
  for (const auto& e : entries) {
    std::cout << "  " << e["name"].get<std::string>() << " — " << e["description"].get<std::string>()
              << "\n";
    if (e.contains("stochastic")) {
      std::cout << "      " << (e["stochastic"].get<bool>() ? "stochastic" : "deterministic")
                << ", order " << e["order"].dump();
      if (!e["strong_order"].is_null()) std::cout << ", strong order " << e["strong_order"].dump();
      std::cout << ", " << e["evals_per_step"].dump() << " evaluation(s) per step"
                << (e["adaptive"].get<bool>() ? ", adaptive" : "")
                << (e["per_sample_steps"].get<bool>() ? " per sample" : "")
                << (e["batch_coupled"].get<bool>() ? ", batch-coupled (one thread)" : "") << "\n";
    }
    for (const auto& s : e["param_specs"]) {
      std::cout << "      " << std::left << std::setw(14) << s["name"].get<std::string>() << " "
                << std::setw(11) << s["type"].get<std::string>() << " default "
                << (s["default"].is_null() ? std::string("(none)") : s["default"].dump()) << "  "
                << s["description"].get<std::string>();
      if (s.contains("choices")) std::cout << " (" << s["choices"].dump() << ")";
      std::cout << "\n";
    }
  }
}

int run_list(const std::string& kind, bool as_json) {
  json all = json::array();
  auto add = [&](const json& entries) {
    for (const auto& e : entries) all.push_back(e);
  };
  const bool every = kind.empty();
  if (every || kind == "solvers") add(solver_entries_json());
  if (every || kind == "schedules") add(entries_json(schedule_registry()));
  if (every || kind == "grids") add(entries_json(grid_registry()));
  if (every || kind == "models") add(entries_json(model_registry()));
  if (every || kind == "metrics") add(entries_json(metric_registry()));
  if (as_json) {
    std::cout << all.dump(2) << "\n";
    return 0;
  }
  for (const char* k : {"solver", "schedule", "grid", "model", "metric"}) {
    json part = json::array();
    for (const auto& e : all)
      if (e["kind"] == k) part.push_back(e);
    if (!part.empty()) print_entries(part, std::string(k) + "s:");
  }
  return 0;
}

}  // namespace

void add_list_command(CLI::App& app, Commands& commands) {
  auto* list = app.add_subcommand("list", "List the registered solvers, schedules, grids, models and sweep metrics");
  auto kind = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  list->add_option("kind", *kind, "What to list")
      ->check(CLI::IsMember({"solvers", "schedules", "grids", "models", "metrics"}));
  list->add_flag("--json", *as_json, "Print a JSON array");
  commands.push_back({list, [kind, as_json] { return run_list(*kind, *as_json); }});
}

}  // namespace diffsde::cli
