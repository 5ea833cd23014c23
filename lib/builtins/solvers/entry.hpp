// What the solver registry entries (lib/builtins/solvers/*.cpp) share: the JSON side of the
// solvers' options structs (solvers/diffsde/solvers/options.hpp). Private to the built-ins.
#pragma once

#include <algorithm>
#include <limits>
#include <string>

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

// `options` if options.is_valid(), the solver's one validation; otherwise its failure as a
// ConfigError at the offending parameter's JSON path (PATH.option: message).
template <class Options>
const Options& checked(const Params& params, const Options& options) {
  std::string error, option;
  if (options.is_valid(&error, &option)) return options;
  throw ConfigError(params.path_of(option), as_given(params, option, error));
}

}  // namespace diffsde::builtin
