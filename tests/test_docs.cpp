// Every registered name has its section in docs/ ("## name" heading), with a parameter
// table that mentions each of its parameters.
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "diffsde/grid.hpp"
#include "diffsde/model.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/solver.hpp"
#include "diffsde/sweep.hpp"

namespace {

std::string read(const std::string& name) {
  std::ifstream in(std::string(DIFFSDE_SOURCE_DIR) + "/docs/" + name);
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

}  // namespace

TEST_CASE("Every registered name is documented") {
  check_documented(diffsde::solver_registry(), "solvers.md");
  check_documented(diffsde::schedule_registry(), "schedules_and_grids.md");
  check_documented(diffsde::grid_registry(), "schedules_and_grids.md");
  check_documented(diffsde::model_registry(), "models.md");
  check_documented(diffsde::metric_registry(), "metrics.md");
}
