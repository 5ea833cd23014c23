#include "diffsde/registry.hpp"

#include <cmath>

#include "diffsde/io.hpp"

namespace diffsde {

using nlohmann::json;

std::string to_string(ParamType type) {
  switch (type) {
    case ParamType::number: return "number";
    case ParamType::integer: return "integer";
    case ParamType::boolean: return "bool";
    case ParamType::string: return "string";
    case ParamType::numbers: return "number[]";
    case ParamType::matrix: return "number[][]";
    case ParamType::json: return "json";
  }
  return "?";
}

std::string json_type_name(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a bool";
  if (v.is_number_integer() || v.is_number_unsigned()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  return "an object";
}

void check_keys(const json& object, const std::vector<std::string>& known, const std::string& path) {
  for (const auto& item : object.items()) {
    bool ok = false;
    for (const auto& k : known) ok = ok || k == item.key();
    if (ok) continue;
    std::string list;
    for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
    throw ConfigError(join_path(path, item.key()), "unknown key; known: " + list);
  }
}

namespace {

bool is_number(const json& v) { return v.is_number() && std::isfinite(v.get<double>()); }

// Checks v against the spec's type; throws ConfigError at `path`.
void check_type(const json& v, const ParamSpec& spec, const std::string& path) {
  auto fail = [&](const std::string& expected) {
    throw ConfigError(path, "expected " + expected + ", got " + json_type_name(v));
  };
  switch (spec.type) {
    case ParamType::number:
      if (!v.is_number()) fail("a number");
      if (!is_number(v)) throw ConfigError(path, "must be finite");
      break;
    case ParamType::integer:
      if (v.is_number_float()) {
        const double d = v.get<double>();
        if (d != std::floor(d) || std::fabs(d) > 9e15) fail("an integer");
      } else if (!v.is_number_integer() && !v.is_number_unsigned()) {
        fail("an integer");
      }
      break;
    case ParamType::boolean:
      if (!v.is_boolean()) fail("true or false");
      break;
    case ParamType::string:
      if (!v.is_string()) fail("a string");
      if (!spec.choices.empty()) {
        const auto s = v.get<std::string>();
        bool ok = false;
        std::string list;
        for (const auto& c : spec.choices) {
          ok = ok || c == s;
          list += (list.empty() ? "" : ", ") + c;
        }
        if (!ok) throw ConfigError(path, "'" + s + "' is not one of: " + list);
      }
      break;
    case ParamType::numbers:
      if (!v.is_array()) fail("an array of numbers");
      for (std::size_t i = 0; i < v.size(); ++i) {
        if (!v[i].is_number()) throw ConfigError(join_path(path, i), "expected a number, got " + json_type_name(v[i]));
        if (!is_number(v[i])) throw ConfigError(join_path(path, i), "must be finite");
      }
      break;
    case ParamType::matrix:
      if (!v.is_array()) fail("an array of arrays of numbers");
      for (std::size_t i = 0; i < v.size(); ++i) {
        const auto row_path = join_path(path, i);
        if (!v[i].is_array()) throw ConfigError(row_path, "expected an array of numbers, got " + json_type_name(v[i]));
        for (std::size_t j = 0; j < v[i].size(); ++j) {
          if (!v[i][j].is_number())
            throw ConfigError(join_path(row_path, j), "expected a number, got " + json_type_name(v[i][j]));
          if (!is_number(v[i][j])) throw ConfigError(join_path(row_path, j), "must be finite");
        }
      }
      break;
    case ParamType::json:
      break;
  }
}

}  // namespace

std::uint64_t non_negative_integer(const json& v, const std::string& path) {
  if (v.is_number_unsigned()) return v.get<std::uint64_t>();
  if (v.is_number_integer()) {
    if (v.get<long long>() < 0) throw ConfigError(path, "must be >= 0");
    return static_cast<std::uint64_t>(v.get<long long>());
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (d >= 0 && d == std::floor(d) && d < 9e15) return static_cast<std::uint64_t>(d);
  }
  throw ConfigError(path, "expected a non-negative integer, got " + json_type_name(v));
}

Params::Params(const json& object, const std::vector<ParamSpec>& specs, std::string path)
    : values_(json::object()), path_(std::move(path)) {
  if (!object.is_object()) throw ConfigError(path_, "expected an object, got " + json_type_name(object));
  for (const auto& [key, v] : object.items()) {
    if (key == "name") continue;
    const ParamSpec* spec = nullptr;
    for (const auto& s : specs)
      if (s.name == key) spec = &s;
    if (spec == nullptr) {
      std::string known;
      for (const auto& s : specs) known += (known.empty() ? "" : ", ") + s.name;
      throw ConfigError(join_path(path_, key),
                        "unknown parameter" + (known.empty() ? std::string(" (takes none)") : "; known: " + known));
    }
    check_type(v, *spec, join_path(path_, key));
    values_[key] = v;
    given_[key] = true;
  }
  for (const auto& s : specs) {
    if (values_.contains(s.name)) continue;
    values_[s.name] = s.default_value;
    given_[s.name] = false;
  }
}

const json& Params::lookup(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw Error("internal: parameter '" + name + "' is not declared at " + path_);
  if (it->is_null()) throw ConfigError(path_of(name), "is required");
  return *it;
}

double Params::number(const std::string& name) const { return lookup(name).get<double>(); }
long Params::integer(const std::string& name) const {
  const auto& v = lookup(name);
  return v.is_number_float() ? static_cast<long>(v.get<double>()) : v.get<long>();
}
bool Params::boolean(const std::string& name) const { return lookup(name).get<bool>(); }
std::string Params::string(const std::string& name) const { return lookup(name).get<std::string>(); }
std::vector<double> Params::numbers(const std::string& name) const {
  return lookup(name).get<std::vector<double>>();
}
std::vector<std::vector<double>> Params::matrix(const std::string& name) const {
  return lookup(name).get<std::vector<std::vector<double>>>();
}
const json& Params::value(const std::string& name) const { return lookup(name); }

bool Params::has(const std::string& name) const {
  auto it = values_.find(name);
  return it != values_.end() && !it->is_null();
}

bool Params::given(const std::string& name) const {
  auto it = given_.find(name);
  return it != given_.end() && it->second;
}

void Params::fail(const std::string& name, const std::string& message) const {
  throw ConfigError(path_of(name), message);
}

std::string registry_name_of(const json& object, const std::string& path) {
  if (object.is_string()) return object.get<std::string>();
  if (!object.is_object()) throw ConfigError(path, "expected an object with a \"name\", got " + json_type_name(object));
  auto it = object.find("name");
  if (it == object.end()) throw ConfigError(join_path(path, "name"), "is required");
  if (!it->is_string()) throw ConfigError(join_path(path, "name"), "expected a string, got " + json_type_name(*it));
  return it->get<std::string>();
}

nlohmann::json read_json_file(const std::string& path) {
  const std::string text = read_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    // Turn the byte offset into line:column.
    std::size_t line = 1, col = 1;
    for (std::size_t i = 0; i + 1 < e.byte && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    std::string what = e.what();
    const auto pos = what.find("syntax error");
    throw IoError(path, "invalid JSON at line " + std::to_string(line) + ", column " +
                            std::to_string(col) + ": " +
                            (pos == std::string::npos ? what : what.substr(pos)));
  }
}

}  // namespace diffsde
