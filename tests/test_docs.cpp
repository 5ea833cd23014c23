// Every registered name has its section in docs/ ("## name" heading), with a parameter
// table that mentions each of its parameters. Solvers are held to more, since their pages
// carry tables a reader relies on (docs/solvers/README.md, "How solvers are documented"):
// one section per solver on the family pages docs/solvers/*.md, a parameter table with the
// registry's defaults, a trait table whose values are the traits of the solver made with its
// defaults, an example the registry accepts and a reference; and the catalogue
// docs/solvers/README.md lists every solver with the same traits.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "diffsde/grid.hpp"
#include "diffsde/model.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/solver.hpp"
#include "diffsde/sweep.hpp"

namespace {

using nlohmann::json;

const std::string kDocs = std::string(DIFFSDE_SOURCE_DIR) + "/docs/";

std::string read(const std::string& name) {
  std::ifstream in(kDocs + name);
  INFO("docs/" << name);
  REQUIRE(in.good());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The text of the section "## name" up to the next "## " heading.
std::string section(const std::string& doc, const std::string& name) {
  const std::string heading = "\n## " + name + "\n";
  const auto start = doc.find(heading);
  if (start == std::string::npos) return "";
  const auto end = doc.find("\n## ", start + heading.size());
  return doc.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

template <class T>
void check_documented(const diffsde::Registry<T>& registry, const std::string& file) {
  const std::string doc = read(file);
  for (const auto& entry : registry.entries()) {
    INFO(registry.kind() << " '" << entry.name << "' in docs/" << file);
    const std::string text = section(doc, entry.name);
    CHECK_FALSE(text.empty());
    for (const auto& p : entry.params) {
      INFO("parameter " << p.name);
      CHECK(text.find("`" + p.name + "`") != std::string::npos);
    }
  }
}

// --- Markdown tables -------------------------------------------------------------------

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

// The cells of a table row "| a | b |"; a '|' inside a backtick span (`|dt|`) is text.
std::vector<std::string> cells(const std::string& row) {
  std::string line = trim(row);
  if (!line.empty() && line.front() == '|') line.erase(0, 1);
  if (!line.empty() && line.back() == '|') line.pop_back();
  std::vector<std::string> out(1);
  bool code = false;
  for (char c : line) {
    if (c == '`') code = !code;
    if (c == '|' && !code) {
      out.emplace_back();
      continue;
    }
    out.back() += c;
  }
  for (auto& cell : out) cell = trim(cell);
  return out;
}

struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

// The tables of a text: runs of lines starting with '|' (outside ``` blocks) whose second
// line is the separator.
std::vector<Table> tables(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::vector<Table> out;
  bool fenced = false;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].rfind("```", 0) == 0) fenced = !fenced;
    if (fenced || lines[i].rfind("|", 0) != 0) continue;
    std::size_t j = i;
    while (j < lines.size() && lines[j].rfind("|", 0) == 0) ++j;
    if (j - i >= 2 && lines[i + 1].find("---") != std::string::npos) {
      Table t;
      t.header = cells(lines[i]);
      for (std::size_t k = i + 2; k < j; ++k) t.rows.push_back(cells(lines[k]));
      out.push_back(std::move(t));
    }
    i = j;
  }
  return out;
}

std::vector<Table> tables_with_header(const std::string& text, const std::vector<std::string>& header) {
  std::vector<Table> out;
  for (auto& t : tables(text))
    if (t.header == header) out.push_back(std::move(t));
  return out;
}

// --- Trait values ----------------------------------------------------------------------

// A trait cell's value: "not declared", or its first word; what follows is explanation.
std::string leading_value(const std::string& cell) {
  if (cell.rfind("not declared", 0) == 0) return "not declared";
  return cell.substr(0, cell.find(' '));
}

std::string format_number(double v) {
  if (std::isnan(v)) return "not declared";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// The canonical form of a documented value: yes, no, not declared, or a number as
// format_number writes it; anything else comes back as written (and matches nothing).
std::string canonical(const std::string& value) {
  if (value == "yes" || value == "no" || value == "not declared") return value;
  try {
    std::size_t used = 0;
    const double v = std::stod(value, &used);
    if (used == value.size()) return format_number(v);
  } catch (const std::exception&) {
  }
  return "'" + value + "' (not yes, no, not declared or a number)";
}

struct TraitRow {
  std::string name;
  std::function<std::string(const diffsde::SolverTraits&)> value;
  // Required for every solver; otherwise only where the value is not 0.
  bool always_required;
};

const std::vector<TraitRow>& trait_rows() {
  static const std::vector<TraitRow> rows = {
      {"stochastic", [](const auto& t) { return std::string(t.stochastic ? "yes" : "no"); }, true},
      {"order", [](const auto& t) { return format_number(t.order); }, true},
      {"strong order", [](const auto& t) { return format_number(t.strong_order); }, true},
      {"evaluations per step", [](const auto& t) { return format_number(t.evals_per_step); }, true},
      {"adaptive", [](const auto& t) { return std::string(t.adaptive ? "yes" : "no"); }, true},
      {"warm-up steps", [](const auto& t) { return format_number(t.warmup_steps); }, false},
  };
  return rows;
}

const TraitRow* find_trait_row(const std::string& name) {
  for (const auto& r : trait_rows())
    if (r.name == name) return &r;
  return nullptr;
}

// The traits a trait table or the catalogue shows, as one comparable string.
std::string trait_summary(const diffsde::SolverTraits& t) {
  std::string s;
  for (const auto& r : trait_rows()) s += r.name + "=" + r.value(t) + "; ";
  return s;
}

// --- Parameter tables ------------------------------------------------------------------

std::string without_backticks(std::string s) {
  s.erase(std::remove(s.begin(), s.end(), '`'), s.end());
  return s;
}

// How the type column starts for each parameter type.
bool type_matches(diffsde::ParamType type, const std::string& cell) {
  const std::string text = without_backticks(cell);
  const std::string word = text.substr(0, text.find(' '));
  switch (type) {
    case diffsde::ParamType::number:
      return word == "number";
    case diffsde::ParamType::integer:
      return word == "integer";
    case diffsde::ParamType::boolean:
      return word == "boolean";
    case diffsde::ParamType::string:
      return word == "string";
    case diffsde::ParamType::numbers:
      return word.rfind("number[", 0) == 0;
    case diffsde::ParamType::matrix:
      return word.rfind("number[][", 0) == 0;
    case diffsde::ParamType::json:
      return word == "json";
  }
  return false;
}

// The default column agrees with the registry: its first word (backticks and quotes
// removed) is the default value. Parameters without a default may say anything ("off").
bool default_matches(const json& value, const std::string& cell) {
  if (value.is_null()) return true;
  const std::string text = trim(without_backticks(cell));
  std::string word = text.substr(0, text.find(' '));
  if (word.size() >= 2 && word.front() == '"' && word.back() == '"') word = word.substr(1, word.size() - 2);
  if (value.is_string()) return word == value.get<std::string>();
  const json parsed = json::parse(word, nullptr, /*allow_exceptions=*/false);
  return !parsed.is_discarded() && parsed == value;
}

const std::vector<std::string> kParamHeader = {"parameter", "type", "description", "default"};
const std::vector<std::string> kTraitHeader = {"trait", "value"};

void check_parameter_table(const diffsde::RegistryEntry<diffsde::Solver>& entry, const std::string& text) {
  if (entry.params.empty()) {
    CHECK(text.find("Parameters: none.") != std::string::npos);
    CHECK(tables_with_header(text, kParamHeader).empty());
    return;
  }
  const auto found = tables_with_header(text, kParamHeader);
  INFO("parameter tables (| parameter | type | description | default |) in the section: " << found.size());
  REQUIRE(found.size() == 1);
  std::map<std::string, std::vector<std::string>> rows;
  for (const auto& row : found[0].rows) {
    INFO("parameter row " << row[0]);
    REQUIRE(row.size() == kParamHeader.size());
    const std::string name = row[0].size() > 2 && row[0].front() == '`' && row[0].back() == '`'
                                 ? row[0].substr(1, row[0].size() - 2)
                                 : row[0];
    const bool registered = std::any_of(entry.params.begin(), entry.params.end(),
                                        [&](const diffsde::ParamSpec& p) { return p.name == name; });
    CHECK(registered);                      // a row for a parameter the solver does not have
    CHECK(rows.emplace(name, row).second);  // one row per parameter
  }
  for (const auto& p : entry.params) {
    INFO("parameter `" << p.name << "`, registry default " << p.default_value.dump() << ", type "
                       << diffsde::to_string(p.type));
    CHECK(text.find("`" + p.name + "`") != std::string::npos);
    const auto it = rows.find(p.name);
    if (it == rows.end()) {
      FAIL_CHECK("no row for the parameter in the parameter table");
      continue;
    }
    INFO("documented type '" << it->second[1] << "', default '" << it->second[3] << "'");
    CHECK(type_matches(p.type, it->second[1]));
    CHECK(default_matches(p.default_value, it->second[3]));
  }
}

void check_trait_table(const diffsde::SolverTraits& traits, const std::string& text) {
  const auto found = tables_with_header(text, kTraitHeader);
  INFO("trait tables (| trait | value |) in the section: " << found.size());
  REQUIRE(found.size() == 1);
  std::map<std::string, std::string> documented;
  for (const auto& row : found[0].rows) {
    INFO("trait row '" << row[0] << "'");
    REQUIRE(row.size() == 2);
    CHECK(find_trait_row(row[0]) != nullptr);  // rows other than the known traits
    CHECK(documented.emplace(row[0], row[1]).second);
  }
  for (const auto& r : trait_rows()) {
    const std::string expected = r.value(traits);
    const auto it = documented.find(r.name);
    INFO("trait '" << r.name << "': the registry's value at the defaults is " << expected);
    if (it == documented.end()) {
      if (r.always_required || expected != "0") FAIL_CHECK("the trait table has no row '" << r.name << "'");
      continue;
    }
    INFO("documented: '" << it->second << "'");
    CHECK(canonical(leading_value(it->second)) == expected);
  }
}

// At least one ```json example whose "solver" names this solver, and every such example
// is accepted by the registry.
void check_examples(const std::string& name, const std::string& text) {
  int examples = 0;
  for (std::size_t pos = text.find("```json\n"); pos != std::string::npos;
       pos = text.find("```json\n", pos + 1)) {
    const auto begin = pos + 8;
    const auto end = text.find("```", begin);
    REQUIRE(end != std::string::npos);
    const std::string block = text.substr(begin, end - begin);
    INFO("example:\n" << block);
    const json config = json::parse(block, nullptr, /*allow_exceptions=*/false);
    REQUIRE_FALSE(config.is_discarded());
    if (!config.is_object() || !config.contains("solver")) continue;
    const json& solver = config["solver"];
    const std::string named = solver.is_string() ? solver.get<std::string>() : solver.value("name", "");
    if (named != name) continue;
    ++examples;
    CHECK_NOTHROW(diffsde::solver_registry().create(solver, "solver"));
  }
  CHECK(examples >= 1);
}

// docs/solvers/*.md but the catalogue, by file name.
std::map<std::string, std::string> solver_pages() {
  std::map<std::string, std::string> pages;
  for (const auto& f : std::filesystem::directory_iterator(kDocs + "solvers")) {
    const std::string file = f.path().filename().string();
    if (f.path().extension() == ".md" && file != "README.md") pages[file] = read("solvers/" + file);
  }
  return pages;
}

std::vector<std::string> headings(const std::string& doc) {
  std::vector<std::string> out;
  std::istringstream in(doc);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("## ", 0) == 0) out.push_back(trim(line.substr(3)));
  return out;
}

// "[name](file.md#anchor)" with lower-case letters, digits and '_' in name, file and
// anchor; false for anything else.
bool parse_link(const std::string& cell, std::string& name, std::string& file, std::string& anchor) {
  auto word = [](const std::string& w) {
    return !w.empty() && std::all_of(w.begin(), w.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    });
  };
  if (cell.size() < 2 || cell.front() != '[' || cell.back() != ')') return false;
  const std::size_t close = cell.find("](");
  const std::size_t hash = cell.find('#', close == std::string::npos ? 0 : close);
  if (close == std::string::npos || hash == std::string::npos) return false;
  name = cell.substr(1, close - 1);
  file = cell.substr(close + 2, hash - close - 2);
  anchor = cell.substr(hash + 1, cell.size() - hash - 2);
  const bool md = file.size() > 3 && file.compare(file.size() - 3, 3, ".md") == 0;
  return word(name) && md && word(file.substr(0, file.size() - 3)) && word(anchor);
}

std::set<std::string> backticked(const std::string& text) {
  std::set<std::string> out;
  // Every `...` span (no std::regex: GCC 12 warns inside <regex> under the sanitizers).
  for (std::size_t open = text.find('`'); open != std::string::npos;) {
    const std::size_t close = text.find('`', open + 1);
    if (close == std::string::npos) break;
    out.insert(text.substr(open + 1, close - open - 1));
    open = text.find('`', close + 1);
  }
  return out;
}

}  // namespace

TEST_CASE("Every registered name is documented") {
  check_documented(diffsde::schedule_registry(), "schedules_and_grids.md");
  check_documented(diffsde::grid_registry(), "schedules_and_grids.md");
  check_documented(diffsde::model_registry(), "models.md");
  check_documented(diffsde::metric_registry(), "metrics.md");
}

TEST_CASE("Every solver's section has its parameters, its registry traits, an example and a reference") {
  const auto pages = solver_pages();
  REQUIRE_FALSE(pages.empty());
  const auto& registry = diffsde::solver_registry();
  for (const auto& [file, doc] : pages)
    for (const auto& heading : headings(doc)) {
      INFO("docs/solvers/" << file << ": '## " << heading << "' is not a registered solver");
      CHECK(registry.find(heading) != nullptr);
    }
  for (const auto& entry : registry.entries()) {
    INFO("solver '" << entry.name << "'");
    std::string text, where;
    int sections = 0;
    for (const auto& [file, doc] : pages) {
      const std::string s = section(doc, entry.name);
      if (s.empty()) continue;
      ++sections;
      text = s;
      where = file;
    }
    INFO("sections '## " << entry.name << "' in docs/solvers/*.md: " << sections);
    REQUIRE(sections == 1);
    INFO("in docs/solvers/" << where);
    check_parameter_table(entry, text);
    check_trait_table(registry.create_default(entry.name)->traits(), text);
    check_examples(entry.name, text);
    CHECK(text.find("Reference") != std::string::npos);
  }
}

TEST_CASE("The solver catalogue lists every solver with its registry traits") {
  const auto pages = solver_pages();
  const std::string doc = read("solvers/README.md");
  std::vector<Table> catalogue;
  for (auto& t : tables(doc))
    if (!t.header.empty() && t.header[0] == "solver") catalogue.push_back(std::move(t));
  INFO("tables whose first column is 'solver' in docs/solvers/README.md: " << catalogue.size());
  REQUIRE(catalogue.size() == 1);
  const Table& table = catalogue[0];
  std::map<std::string, std::size_t> column;
  for (std::size_t i = 0; i < table.header.size(); ++i) column[table.header[i]] = i;
  for (const char* required :
       {"stochastic", "order", "strong order", "evaluations per step", "adaptive", "varies with"}) {
    INFO("catalogue column '" << required << "'");
    REQUIRE(column.count(required) == 1);
  }

  const auto& registry = diffsde::solver_registry();
  std::set<std::string> listed;
  for (const auto& row : table.rows) {
    INFO("catalogue row '" << row[0] << "'");
    REQUIRE(row.size() == table.header.size());
    std::string name, file, anchor;
    REQUIRE(parse_link(row[0], name, file, anchor));
    CHECK(anchor == name);
    CHECK(listed.insert(name).second);  // one row per solver
    const auto* entry = registry.find(name);
    REQUIRE(entry != nullptr);  // a row for a name the registry does not have
    const auto page = pages.find(file);
    REQUIRE(page != pages.end());
    CHECK_FALSE(section(page->second, name).empty());  // the link leads to the section

    const diffsde::SolverTraits defaults = registry.create_default(name)->traits();
    for (const auto& r : trait_rows()) {
      if (column.count(r.name) == 0) continue;
      const std::string cell = row[column[r.name]];
      INFO("trait '" << r.name << "': documented '" << cell << "', registry " << r.value(defaults));
      CHECK(canonical(leading_value(cell)) == r.value(defaults));
    }

    // "varies with": parameters of the solver, among them one that each variant whose
    // traits differ from the defaults' sets to a value other than its default.
    const std::set<std::string> varies = backticked(row[column["varies with"]]);
    for (const auto& v : varies) {
      INFO("'varies with' names `" << v << "`");
      CHECK(std::any_of(entry->params.begin(), entry->params.end(),
                        [&](const diffsde::ParamSpec& p) { return p.name == v; }));
    }
    for (const json& variant : entry->variants) {
      json config = variant;
      config["name"] = name;
      const auto traits = registry.create(config, "solver")->traits();
      if (trait_summary(traits) == trait_summary(defaults)) continue;
      bool named = false;
      for (const auto& p : entry->params)
        if (variant.contains(p.name) && variant[p.name] != p.default_value && varies.count(p.name) > 0)
          named = true;
      INFO("variant " << variant.dump() << " has traits " << trait_summary(traits) << "against the defaults' "
                      << trait_summary(defaults) << "and 'varies with' names none of its changed parameters");
      CHECK(named);
    }
  }
  for (const auto& name : registry.names()) {
    INFO("solver '" << name << "' has no row in the catalogue of docs/solvers/README.md");
    CHECK(listed.count(name) == 1);
  }
}
