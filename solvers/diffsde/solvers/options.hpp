// What the solvers' options structs share. Every solver with parameters has a plain
// `Options` struct with defaults and one validation,
//   bool is_valid(std::string* error = nullptr, std::string* option = nullptr) const;
// its constructor throws Error("<solver>: " + error) through check_options(), and its
// registry entry (lib/builtins/solvers/) reports the same failure as a ConfigError at the
// JSON path of `option`. No JSON here: the solvers sit on the core only.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "diffsde/error.hpp"

namespace diffsde {

// Reports a bad option from is_valid and returns false. With `option`, *option is the
// option's parameter name and *error what is wrong with it ("must be >= 0"), for a message
// at its JSON path; without, *error is one sentence that names the option (`sentence`, by
// default "<name> <message>"), as a constructor's Error needs.
inline bool invalid_option(std::string* error, std::string* option, const std::string& name,
                           const std::string& message, const std::string& sentence = {}) {
  if (option != nullptr) *option = name;
  if (error != nullptr)
    *error = option != nullptr ? message : sentence.empty() ? name + " " + message : sentence;
  return false;
}

// A per-step order list (`orders`): each entry in [1, max_order] and at most its step number
// + 1 (step i has i + 1 model outputs to use). `what` names those outputs in the message.
inline bool valid_step_orders(const std::vector<int>& orders, int max_order, const std::string& what,
                              std::string* error, std::string* option) {
  for (std::size_t i = 0; i < orders.size(); ++i) {
    if (orders[i] < 1 || orders[i] > max_order)
      return invalid_option(error, option, "orders",
                            "entry " + std::to_string(i) + " is " + std::to_string(orders[i]) +
                                ": each must lie in [1, order = " + std::to_string(max_order) + "]");
    if (static_cast<std::size_t>(orders[i]) > i + 1)
      return invalid_option(error, option, "orders",
                            "entry " + std::to_string(i) + " is " + std::to_string(orders[i]) + ", but step " +
                                std::to_string(i) + " has only " + std::to_string(i + 1) + " " + what + " to use");
  }
  return true;
}

// Throws Error("<solver>: <sentence>") unless options.is_valid(): the constructors' check.
template <class Options>
void check_options(const Options& options, const std::string& solver) {
  std::string error;
  if (!options.is_valid(&error)) throw Error(solver + ": " + error);
}

}  // namespace diffsde
