#include "diffsde/registry.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>
#include <vector>

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

namespace {

// Edit distance of the two names (insertions, deletions, substitutions and swaps of two
// neighbours: the optimal string alignment distance), '-' read as '_' and letters as lower case.
std::size_t name_distance(const std::string& a, const std::string& b) {
  auto norm = [](char c) { return c == '-' ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(c))); };
  const std::size_t n = a.size(), m = b.size();
  std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1));
  for (std::size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= n; ++i)
    for (std::size_t j = 1; j <= m; ++j) {
      const std::size_t cost = norm(a[i - 1]) == norm(b[j - 1]) ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && norm(a[i - 1]) == norm(b[j - 2]) && norm(a[i - 2]) == norm(b[j - 1]))
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[n][m];
}

}  // namespace

std::string nearest_name(const std::string& given, const std::vector<std::string>& known) {
  std::string best;
  std::size_t best_distance = 0;
  for (const auto& name : known) {
    const std::size_t d = name_distance(given, name);
    if (best.empty() || d < best_distance) {
      best = name;
      best_distance = d;
    }
  }
  // A likely typo: a third of the longer name at most (and at least one edit allowed).
  const std::size_t allowed = std::max<std::size_t>(1, std::max(given.size(), best.size()) / 3);
  return !best.empty() && best != given && best_distance <= allowed ? best : "";
}

std::string did_you_mean(const std::string& given, const std::vector<std::string>& known) {
  const std::string near = nearest_name(given, known);
  return near.empty() ? "" : " (did you mean '" + near + "'?)";
}

void check_keys(const json& object, const std::vector<std::string>& known, const std::string& path) {
  for (const auto& item : object.items()) {
    bool ok = false;
    for (const auto& k : known) ok = ok || k == item.key();
    if (ok) continue;
    std::string list;
    for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
    throw ConfigError(join_path(path, item.key()), "unknown key; known: " + list + did_you_mean(item.key(), known));
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
      std::vector<std::string> names;
      for (const auto& s : specs) names.push_back(s.name);
      throw ConfigError(join_path(path_, key), "unknown parameter" +
                                                   (known.empty() ? std::string(" (takes none)") : "; known: " + known) +
                                                   did_you_mean(key, names));
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

namespace {

// "line L, column C" of a byte offset into `text` (the offset of the character after the
// failing token, as nlohmann/json reports it).
std::string line_column(const std::string& text, std::size_t byte) {
  std::size_t line = 1, col = 1;
  for (std::size_t i = 0; i + 1 < byte && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(col);
}

// A first pass over a JSON text that builds nothing: it follows the JSON path of every value,
// so that what the DOM parser would pass over silently (a repeated key, whose last value
// wins) or report without a place (a number that overflows a double) is an error naming the
// path. A SAX handler for json::sax_parse.
class JsonChecker {
 public:
  using number_integer_t = json::number_integer_t;
  using number_unsigned_t = json::number_unsigned_t;
  using number_float_t = json::number_float_t;
  using string_t = json::string_t;
  using binary_t = json::binary_t;

  bool null() { return value(); }
  bool boolean(bool) { return value(); }
  bool number_integer(number_integer_t) { return value(); }
  bool number_unsigned(number_unsigned_t) { return value(); }
  bool number_float(number_float_t, const string_t&) { return value(); }
  bool string(string_t&) { return value(); }
  bool binary(binary_t&) { return value(); }
  bool start_object(std::size_t) { return open(true); }
  bool end_object() { return close(); }
  bool start_array(std::size_t) { return open(false); }
  bool end_array() { return close(); }
  bool key(string_t& k) {
    Frame& f = stack_.back();
    f.key = k;
    if (!f.keys.insert(k).second) {
      duplicate_ = path();
      return false;
    }
    return true;
  }
  bool parse_error(std::size_t byte, const std::string&, const nlohmann::detail::exception& e) {
    error_byte_ = byte;
    error_ = e.what();
    // The failing value has not been counted yet in an array.
    if (!stack_.empty() && !stack_.back().object) ++stack_.back().index;
    error_path_ = path();
    return false;
  }

  const std::string& duplicate() const { return duplicate_; }
  bool failed() const { return !error_.empty(); }
  std::size_t error_byte() const { return error_byte_; }
  const std::string& error() const { return error_; }
  const std::string& error_path() const { return error_path_; }

 private:
  struct Frame {
    bool object = false;
    std::string key;   // objects: the key of the value being read
    long index = -1;   // arrays: the index of the value being read
    std::set<std::string> keys;
  };

  bool value() {
    if (!stack_.empty() && !stack_.back().object) ++stack_.back().index;
    return true;
  }
  bool open(bool object) {
    value();
    stack_.push_back(Frame{object, {}, -1, {}});
    return true;
  }
  bool close() {
    stack_.pop_back();
    return true;
  }
  std::string path() const {
    std::string p;
    for (const Frame& f : stack_) {
      if (f.object && !f.keys.empty()) p = join_path(p, f.key);
      if (!f.object && f.index >= 0) p = join_path(p, static_cast<std::size_t>(f.index));
    }
    return p;
  }

  std::vector<Frame> stack_;
  std::string duplicate_, error_, error_path_;
  std::size_t error_byte_ = 0;
};

}  // namespace

nlohmann::json read_json_file(const std::string& path) {
  const std::string text = read_file(path);
  JsonChecker checker;
  json::sax_parse(text, &checker);
  if (!checker.duplicate().empty())
    throw IoError(path, "invalid JSON: the key " + checker.duplicate() +
                            " is given twice (only one value can hold)");
  if (checker.failed()) {
    const std::string& what = checker.error();
    const auto syntax = what.find("syntax error");
    const auto overflow = what.find("number overflow");
    if (overflow != std::string::npos)
      throw IoError(path, "invalid JSON at " + line_column(text, checker.error_byte()) + ": " +
                              what.substr(overflow) + " at " + checker.error_path() +
                              " (beyond the largest double)");
    throw IoError(path, "invalid JSON at " + line_column(text, checker.error_byte()) + ": " +
                            (syntax == std::string::npos ? what : what.substr(syntax)));
  }
  return json::parse(text);
}

}  // namespace diffsde
