// Registries: schedules, grids, models and solvers are made by name from JSON
// parameters. Each entry declares its parameters (name, type, default, description),
// which drives validation, `diffsde list` and the docs. This is the JSON layer: the core
// (lib/core) knows no JSON; the entries translate JSON into the core's objects.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "diffsde/error.hpp"

namespace diffsde {

class Schedule;
class Grid;
class Model;
class Solver;

enum class ParamType { number, integer, boolean, string, numbers, matrix, json };
std::string to_string(ParamType type);

struct ParamSpec {
  std::string name;
  ParamType type;
  // Default value; null means "optional, not set unless given".
  nlohmann::json default_value;
  std::string description;
  // For strings: the allowed values (empty = any).
  std::vector<std::string> choices = {};
};

// "a bool", "an integer", "a number", "a string", "an array", "an object" or "null",
// for messages.
std::string json_type_name(const nlohmann::json& v);

// Every key of `object` must be one of `known`; otherwise ConfigError at PATH.key:
// "unknown key; known: a, b, c".
void check_keys(const nlohmann::json& object, const std::vector<std::string>& known, const std::string& path);

// The known name nearest to `given` (edit distance, ignoring case, '-' and '_' as one),
// or "" when none is near enough to be a likely typo; for "did you mean" hints.
std::string nearest_name(const std::string& given, const std::vector<std::string>& known);
// " (did you mean 'NAME'?)" for nearest_name, or "".
std::string did_you_mean(const std::string& given, const std::vector<std::string>& known);

// A JSON value that must be a non-negative integer (seeds, counts); 3.0 is accepted,
// -1, 2.5 and "3" are ConfigErrors at `path` that say what was given.
std::uint64_t non_negative_integer(const nlohmann::json& v, const std::string& path);

// The validated parameters of one JSON object, with the object's JSON path for errors.
// Construction checks every given key against the specs (unknown keys, wrong JSON
// types, values outside `choices`) and fills in defaults.
class Params {
 public:
  Params(const nlohmann::json& object, const std::vector<ParamSpec>& specs, std::string path);

  double number(const std::string& name) const;
  long integer(const std::string& name) const;
  bool boolean(const std::string& name) const;
  std::string string(const std::string& name) const;
  std::vector<double> numbers(const std::string& name) const;
  std::vector<std::vector<double>> matrix(const std::string& name) const;
  const nlohmann::json& value(const std::string& name) const;
  // True when the parameter was given or has a non-null default.
  bool has(const std::string& name) const;
  // True when the parameter was given explicitly in the JSON.
  bool given(const std::string& name) const;

  // Throws ConfigError at PATH.name.
  [[noreturn]] void fail(const std::string& name, const std::string& message) const;
  const std::string& path() const { return path_; }
  std::string path_of(const std::string& name) const { return join_path(path_, name); }
  // The effective values (defaults filled in), without "name".
  const nlohmann::json& values() const { return values_; }

 private:
  const nlohmann::json& lookup(const std::string& name) const;
  nlohmann::json values_;
  std::map<std::string, bool> given_;
  std::string path_;
};

// What factories may need beyond their own parameters.
struct BuildContext {
  // The run's schedule (models are bound to it).
  std::shared_ptr<const Schedule> schedule;
  // Folder against which relative file names in the config are resolved.
  std::string base_dir;
};

template <class T>
struct RegistryEntry {
  std::string name;
  std::string description;
  std::vector<ParamSpec> params;
  std::function<std::unique_ptr<T>(const Params&, const BuildContext&)> make;
  // Parameter sets (JSON objects without "name") that exercise the entry's distinct
  // behaviours, e.g. each `stepper` of `pf_ode`. The registry-wide tests loop over them
  // (empty: the defaults only), so a listed variant is tested the moment it is listed.
  std::vector<nlohmann::json> variants = {};
};

template <class T>
class Registry {
 public:
  explicit Registry(std::string kind) : kind_(std::move(kind)) {}

  const std::string& kind() const { return kind_; }

  void add(RegistryEntry<T> entry) {
    if (find(entry.name) != nullptr) throw Error("duplicate " + kind_ + " name: " + entry.name);
    entries_.push_back(std::move(entry));
  }

  const RegistryEntry<T>* find(const std::string& name) const {
    for (const auto& e : entries_)
      if (e.name == name) return &e;
    return nullptr;
  }

  // The entry for `name`, or a ConfigError at `path` listing the known names.
  const RegistryEntry<T>& get(const std::string& name, const std::string& path) const {
    if (const auto* e = find(name)) return *e;
    std::string known;
    for (const auto& n : names()) known += (known.empty() ? "" : ", ") + n;
    throw ConfigError(path, "unknown " + kind_ + " '" + name + "'; known: " + known + did_you_mean(name, names()));
  }

  std::vector<std::string> names() const;
  const std::vector<RegistryEntry<T>>& entries() const { return entries_; }

  // Makes an object from {"name": ..., params...} (or a bare name); `path` is the
  // object's JSON path, used in every error.
  std::unique_ptr<T> create(const nlohmann::json& object, const std::string& path,
                            const BuildContext& context = {}) const {
    const auto& entry = get(name_of(object, path), join_path(path, "name"));
    // A bare string is a name with all defaults.
    Params params(object.is_string() ? nlohmann::json{{"name", object}} : object, entry.params, path);
    return entry.make(params, context);
  }

  // Makes an object by name with all defaults.
  std::unique_ptr<T> create_default(const std::string& name, const BuildContext& context = {}) const {
    return create(nlohmann::json{{"name", name}}, kind_, context);
  }

 private:
  static std::string name_of(const nlohmann::json& object, const std::string& path);
  std::string kind_;
  std::vector<RegistryEntry<T>> entries_;
};

std::string registry_name_of(const nlohmann::json& object, const std::string& path);

template <class T>
std::string Registry<T>::name_of(const nlohmann::json& object, const std::string& path) {
  return registry_name_of(object, path);
}

template <class T>
std::vector<std::string> Registry<T>::names() const {
  std::vector<std::string> out;
  for (const auto& e : entries_) out.push_back(e.name);
  return out;
}

// Parses a JSON file; IoError with the file, line and column on a syntax error.
nlohmann::json read_json_file(const std::string& path);

// The global registries, filled with the built-in entries on first use. They are
// defined by the built-ins target (diffsde::builtins, lib/builtins), which a program
// links to get them; entries of its own may be added with add().
Registry<Schedule>& schedule_registry();
Registry<Grid>& grid_registry();
Registry<Model>& model_registry();
Registry<Solver>& solver_registry();

}  // namespace diffsde
