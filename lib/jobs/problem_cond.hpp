// The conditioning keys of the problem section (problem.hpp): parsed by parse_problem,
// applied to the model by build_problem; and the helpers both files use. Internal to
// diffsde::jobs.
#pragma once

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "diffsde/problem.hpp"

namespace diffsde {

// Whether the command's rules take the problem key `key`.
inline bool takes(const ProblemRules& rules, const std::string& key) {
  return std::find(rules.keys.begin(), rules.keys.end(), key) != rules.keys.end();
}

// "a, b, c".
inline std::string joined(const std::vector<std::string>& names) {
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
  return list;
}

// Checks the form of "cond", "uncond", "guidance" and "thresholding" (those `rules`
// takes) and stores them in out; ConfigError at their JSON path.
void parse_conditioning(const nlohmann::json& section, const std::string& path, const ProblemRules& rules,
                        ProblemSpec& out);
// Reads the inputs (their .npy files too), checks them against problem.base_model's
// inputs and wraps problem.model with them, the guidance and the thresholding.
void condition_problem(const ProblemSpec& spec, Problem& problem);

}  // namespace diffsde
