// The conditioning keys of the problem section (problem.hpp): parsed by parse_problem,
// applied to the model by build_problem. Internal to diffsde::jobs.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "diffsde/problem.hpp"

namespace diffsde {

// Checks the form of "cond", "uncond", "guidance" and "thresholding" (those `rules`
// takes) and stores them in out; ConfigError at their JSON path.
void parse_conditioning(const nlohmann::json& section, const std::string& path, const ProblemRules& rules,
                        ProblemSpec& out);
// Reads the inputs (their .npy files too), checks them against problem.base_model's
// inputs and wraps problem.model with them, the guidance and the thresholding.
void condition_problem(const ProblemSpec& spec, Problem& problem);

}  // namespace diffsde
