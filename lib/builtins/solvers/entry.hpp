// What the solver registry entries (lib/builtins/solvers/*.cpp) share: the JSON side of the
// solvers' options structs (solvers/diffsde/solvers/options.hpp). Private to the built-ins.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "diffsde/registry.hpp"

namespace diffsde::builtin {

inline int clamp_to_int(long value) {
  return static_cast<int>(std::clamp<long>(value, std::numeric_limits<int>::min(),
                                           std::numeric_limits<int>::max()));
}

// An integer parameter for an int field. JSON integers are longs; one beyond int's range is
// clamped, which keeps it outside every int option's valid range (orders, step counts), so
// is_valid still rejects it.
inline int int_param(const Params& params, const std::string& name) {
  return clamp_to_int(params.integer(name));
}

// is_valid's message about `option` as the user should read it: where the option is an
// integer clamped by int_param, the clamped value it shows becomes the value given.
inline std::string as_given(const Params& params, const std::string& option, std::string message) {
  const auto it = params.values().find(option);
  if (it == params.values().end() || !it->is_number()) return message;
  const long given = params.integer(option);
  if (clamp_to_int(given) == given) return message;
  const std::string shown = std::to_string(clamp_to_int(given));
  const auto at = message.rfind(shown);
  if (at != std::string::npos) message.replace(at, shown.size(), std::to_string(given));
  return message;
}

// A list of integers (per-step orders, step indices): empty when not given; each entry must be
// an integer (a ConfigError at its index otherwise) and is clamped to [-1, 1e9] for is_valid
// to judge; `non_empty`: a given empty list is an error.
inline std::vector<int> int_list_param(const Params& params, const std::string& name, bool non_empty) {
  std::vector<int> out;
  if (!params.has(name)) return out;
  const auto v = params.numbers(name);
  if (v.empty() && non_empty) params.fail(name, "must not be empty");
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] != std::floor(v[i]))
      throw ConfigError(join_path(params.path_of(name), i), "expected an integer, got " + format_double(v[i]));
    out.push_back(static_cast<int>(std::max(-1.0, std::min(v[i], 1e9))));
  }
  return out;
}

// `options` if options.is_valid(), the solver's one validation; otherwise its failure as a
// ConfigError at the offending parameter's JSON path (PATH.option: message).
template <class Options>
const Options& checked(const Params& params, const Options& options) {
  std::string error, option;
  if (options.is_valid(&error, &option)) return options;
  throw ConfigError(params.path_of(option), as_given(params, option, error));
}

}  // namespace diffsde::builtin
