// Params validation and registries: every error names its JSON path.
#include <catch2/catch.hpp>

#include "diffsde/registry.hpp"
#include "diffsde/solver.hpp"
#include "support/exact.hpp"

using diffsde::ConfigError;
using diffsde::Params;
using diffsde::ParamSpec;
using diffsde::ParamType;
using nlohmann::json;

namespace {

const std::vector<ParamSpec> kSpecs = {
    {"x", ParamType::number, 1.5, "a number"},
    {"n", ParamType::integer, 3, "an integer"},
    {"flag", ParamType::boolean, false, "a bool"},
    {"mode", ParamType::string, "a", "a choice", {"a", "b"}},
    {"list", ParamType::numbers, json::array({1, 2}), "numbers"},
    {"mat", ParamType::matrix, nullptr, "a matrix, optional"},
    {"req", ParamType::number, nullptr, "required when used"},
};


}  // namespace

TEST_CASE("Params fills defaults and reads given values") {
  const Params p(json{{"name", "thing"}, {"x", 2.5}, {"mode", "b"}, {"n", 4.0}}, kSpecs, "solver");
  CHECK(p.number("x") == 2.5);
  CHECK(p.integer("n") == 4);
  CHECK_FALSE(p.boolean("flag"));
  CHECK(p.string("mode") == "b");
  CHECK(p.numbers("list") == std::vector<double>{1, 2});
  CHECK(p.given("x"));
  CHECK_FALSE(p.given("flag"));
  CHECK(p.has("flag"));
  CHECK_FALSE(p.has("mat"));
  CHECK(diffsde::test::config_error_path([&] { p.number("req"); }) == "solver.req");
  CHECK(diffsde::test::config_error_path([&] { p.fail("x", "must be small"); }) == "solver.x");
  try {
    p.fail("x", "must be small");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()) == "solver.x: must be small");
  }
}

TEST_CASE("Params rejects unknown keys and wrong types, naming the path") {
  auto make = [](const json& j) { return [j] { Params(j, kSpecs, "sweep.solvers[2]"); }; };
  CHECK(diffsde::test::config_error_path(make({{"y", 1}})) == "sweep.solvers[2].y");
  CHECK(diffsde::test::config_error_path(make({{"x", "one"}})) == "sweep.solvers[2].x");
  CHECK(diffsde::test::config_error_path(make({{"x", true}})) == "sweep.solvers[2].x");
  CHECK(diffsde::test::config_error_path(make({{"n", 2.5}})) == "sweep.solvers[2].n");
  CHECK(diffsde::test::config_error_path(make({{"flag", 1}})) == "sweep.solvers[2].flag");
  CHECK(diffsde::test::config_error_path(make({{"mode", "c"}})) == "sweep.solvers[2].mode");
  CHECK(diffsde::test::config_error_path(make({{"list", json::array({1, "2"})}})) == "sweep.solvers[2].list[1]");
  CHECK(diffsde::test::config_error_path(make({{"list", 1}})) == "sweep.solvers[2].list");
  CHECK(diffsde::test::config_error_path(make({{"mat", json::array({json::array({1}), 2})}})) == "sweep.solvers[2].mat[1]");
  CHECK(diffsde::test::config_error_path(make({{"mat", json::array({json::array({1, "x"})})}})) == "sweep.solvers[2].mat[0][1]");
  CHECK(diffsde::test::config_error_path([] { Params(json::array(), kSpecs, "grid"); }) == "grid");
  CHECK(diffsde::test::config_error_path(make({{"x", 1}, {"n", 2}})) == "(none)");
}

namespace {
struct Thing {
  virtual ~Thing() = default;
  double value = 0;
};
}  // namespace

TEST_CASE("Registry creates by name and lists the known names on a miss") {
  diffsde::Registry<Thing> registry("thing");
  registry.add({"alpha", "first", {{"value", ParamType::number, 1.0, "v"}},
                [](const Params& p, const diffsde::BuildContext&) {
                  auto t = std::make_unique<Thing>();
                  t->value = p.number("value");
                  return t;
                }});
  registry.add({"beta", "second", {}, [](const Params&, const diffsde::BuildContext&) {
                  return std::make_unique<Thing>();
                }});
  CHECK(registry.create(json{{"name", "alpha"}, {"value", 4}}, "thing")->value == 4);
  CHECK(registry.create(json("alpha"), "thing")->value == 1);
  CHECK(registry.create_default("alpha")->value == 1);
  CHECK(registry.names() == std::vector<std::string>{"alpha", "beta"});
  try {
    registry.create(json{{"name", "gamma"}}, "model");
    FAIL("no error");
  } catch (const ConfigError& e) {
    CHECK(e.path() == "model.name");
    CHECK(std::string(e.what()).find("known: alpha, beta") != std::string::npos);
  }
  CHECK(diffsde::test::config_error_path([&] { registry.create(json{{"value", 1}}, "model"); }) == "model.name");
  CHECK(diffsde::test::config_error_path([&] { registry.create(json{{"name", 3}}, "model"); }) == "model.name");
  CHECK(diffsde::test::config_error_path([&] { registry.create(json{{"name", "beta"}, {"value", 1}}, "m"); }) == "m.value");
  CHECK_THROWS_AS(registry.add({"alpha", "again", {}, nullptr}), diffsde::Error);
}

TEST_CASE("ConfigError paths join and prefix") {
  CHECK(diffsde::join_path("", "a") == "a");
  CHECK(diffsde::join_path("a", "b") == "a.b");
  CHECK(diffsde::join_path("a", std::size_t{3}) == "a[3]");
  CHECK(ConfigError("t[3]", "bad").prefixed("grid").path() == "grid.t[3]");
  CHECK(ConfigError("", "bad").prefixed("grid").path() == "grid");
  CHECK(std::string(ConfigError("t", "bad").prefixed("grid").what()) == "grid.t: bad");
}

TEST_CASE("The global registries hold the built-ins") {
  const auto& solvers = diffsde::solver_registry();
  REQUIRE(solvers.find("euler_maruyama") != nullptr);
  const auto traits = solvers.create_default("euler_maruyama")->traits();
  CHECK(traits.stochastic);
  CHECK(traits.order == 1);
  CHECK(traits.strong_order == 1);
  for (const char* name : {"vp_linear", "vp_cosine", "vp_discrete"})
    CHECK(diffsde::schedule_registry().find(name) != nullptr);
  for (const char* name : {"time_uniform", "logSNR", "time_quadratic", "karras", "custom"})
    CHECK(diffsde::grid_registry().find(name) != nullptr);
  for (const char* name : {"gaussian", "gmm"}) CHECK(diffsde::model_registry().find(name) != nullptr);
}

TEST_CASE("Unknown names suggest the nearest known one, only when near") {
  using diffsde::did_you_mean;
  using diffsde::nearest_name;
  const std::vector<std::string> known = {"euler", "euler_maruyama", "dpm_solver", "ddim", "heun"};
  CHECK(nearest_name("dpmsolver", known) == "dpm_solver");     // one deletion
  CHECK(nearest_name("dpm-solver", known) == "dpm_solver");    // '-' reads as '_'
  CHECK(nearest_name("eluer", known) == "euler");              // two neighbours swapped
  CHECK(nearest_name("DDIM", known) == "ddim");                // case
  CHECK(nearest_name("euler_maruyma", known) == "euler_maruyama");
  CHECK(nearest_name("xyz", known).empty());                   // nothing near
  CHECK(nearest_name("ddim", known).empty());                  // known already
  CHECK(nearest_name("sampler", {}).empty());
  CHECK(did_you_mean("haun", known) == " (did you mean 'heun'?)");  // one substitution
  CHECK(did_you_mean("hune", known).empty());  // two edits in a short name: too far
  CHECK(did_you_mean("zzzz", known).empty());
  try {
    diffsde::solver_registry().create(nlohmann::json{{"name", "dpmsolver"}}, "solver");
    FAIL("no error");
  } catch (const ConfigError& e) {
    CHECK(e.path() == "solver.name");
    CHECK(std::string(e.what()).find("(did you mean 'dpm_solver'?)") != std::string::npos);
  }
}
