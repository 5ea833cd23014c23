// diffusers' scheduler configs (scheduler_config.json) as native configs: the schedule,
// the grid and the solver that diffusers' scheduler class with those settings computes
// (docs/interop.md). A key whose value diffsde cannot honour is a ConfigError naming it.
//
//   {"scheduler_config": "model/scheduler/scheduler_config.json", "steps": 25,
//    "model": {...}, ...}
//
// becomes {"schedule": {"name": "vp_discrete", ...}, "grid": {"name": "diffusers", ...},
// "solver": {...}, "model": {...}, ...}; a "schedule", "grid" or "solver" given beside
// "scheduler_config" replaces the translated one (a different solver on diffusers'
// schedule and grid), and "scheduler_class" names another class to read the config as
// (diffusers' from_config), whose foreign keys are then dropped with a note.
#pragma once

#include <nlohmann/json.hpp>
#include <limits>
#include <string>
#include <vector>

namespace diffsde {

// The scheduler classes translate_scheduler_config knows.
const std::vector<std::string>& diffusers_scheduler_classes();

struct SchedulerTranslation {
  nlohmann::json schedule, grid, solver;
  // {"ratio", "max"} when the config asks for dynamic thresholding; null otherwise.
  nlohmann::json thresholding;
  // diffusers' prediction_type as diffsde's model "prediction" (eps, x0, v, velocity).
  std::string prediction = "eps";
  // Whether the config names prediction_type (an analytic model predicts eps, and a config
  // that says otherwise is refused); the flow-matching classes' velocity is implicit.
  bool prediction_given = false;
  // Further settings of a network model: EDM's {"preconditioning": "edm", "sigma_data": sd},
  // flow matching's {"time_input": "continuous", "time_scale": N}; null otherwise (a
  // network then takes diffusers' integer timesteps, "time_input": "discrete").
  nlohmann::json network;
  // The noise source the class's sampler needs (DPMSolverSDEScheduler: a Brownian tree);
  // null when any will do.
  nlohmann::json noise;
  // Keys dropped because the class does not take them (only with a class override).
  std::vector<std::string> dropped;
};

// Translates one scheduler config (an object) for `steps` inference steps. `path` is the
// JSON path of the config for errors ("scheduler_config"); `class_override`, when not
// empty, replaces its _class_name.
// `mu`: the value diffusers' pipelines pass to set_timesteps with use_dynamic_shifting
// (Flux); NaN when not given.
SchedulerTranslation translate_scheduler_config(const nlohmann::json& config, long steps, const std::string& path,
                                                const std::string& class_override = "",
                                                double mu = std::numeric_limits<double>::quiet_NaN());

// A sample config with "scheduler_config" (a path, relative to base_dir, or an object) and
// "steps" rewritten as the native config; any other config is returned unchanged.
// ConfigError at the key (with the file's name where one was read).
// Notes (keys dropped under a class override) are appended to *notes when given.
nlohmann::json expand_scheduler_config(const nlohmann::json& config, const std::string& base_dir,
                                       std::vector<std::string>* notes = nullptr);

// A sweep's problem section with "scheduler_config": its schedule (unless the section
// gives one), thresholding and the network's prediction and time input come from the
// file; the sweep's own grids and solvers are used as they are. `path` is the section's
// JSON path for errors.
nlohmann::json expand_problem_scheduler_config(const nlohmann::json& problem, const std::string& base_dir,
                                               const std::string& path);

}  // namespace diffsde
