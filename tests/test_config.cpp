// The sampling config: one test per kind of bad input, each naming its JSON path or
// file; and runs that do not depend on how the batch is split.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <filesystem>

#include "diffsde/config.hpp"
#include "diffsde/error.hpp"
#include "diffsde/npy.hpp"
#include "diffsde/registry.hpp"

using namespace diffsde;
using nlohmann::json;

namespace {

json good() {
  return json::parse(R"({"schedule":{"name":"vp_linear"},
    "model":{"name":"gmm","weights":[0.5,0.5],"means":[[-1,0],[1,0]],"stds":[[0.2,0.2],[0.2,0.2]]},
    "grid":{"name":"time_uniform","steps":20,"t_start":1,"t_end":1e-3},
    "solver":{"name":"euler_maruyama"},"batch":8,"seed":3})");
}

std::string config_error_path(const json& config, const std::string& base_dir = "") {
  try {
    build_sample_job(parse_sample_config(config, base_dir));
  } catch (const ConfigError& e) {
    return e.path();
  }
  return "(none)";
}

std::string io_error_file(const json& config, const std::string& base_dir = "") {
  try {
    build_sample_job(parse_sample_config(config, base_dir));
  } catch (const IoError& e) {
    return e.file();
  }
  return "(none)";
}

std::string temp_dir() {
  auto dir = std::filesystem::temp_directory_path() / ("diffsde_test_config_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir.string();
}

}  // namespace

TEST_CASE("A good config builds every piece") {
  SampleJob job = build_sample_job(parse_sample_config(good()));
  CHECK(job.x.rows() == 8);
  CHECK(job.x.cols() == 2);
  CHECK(job.times.size() == 21);
  CHECK(job.solver->traits().name == "euler_maruyama");
  const Summary s = run_sample_job(job);
  CHECK(s.nfe == 20);
  CHECK(job.x.allFinite());
  const json summary = summary_json(job, s);
  for (const char* key : {"nfe", "steps", "seconds", "accepted", "rejected", "sample_mean", "data_mean"})
    CHECK(summary.contains(key));
}

TEST_CASE("A grid without t_start starts at the schedule's t_max") {
  json c = good();
  c["schedule"] = json{{"name", "vp_cosine"}};
  c["grid"].erase("t_start");
  SampleJob job = build_sample_job(parse_sample_config(c));
  CHECK(job.times.front() == job.schedule->t_max());
  CHECK(job.times.front() < 1.0);
  c["grid"]["t_start"] = 1.0;  // given explicitly: beyond t_max is an error
  CHECK(config_error_path(c) == "grid.t_start");
}

TEST_CASE("The default config is valid") {
  const SampleConfig c = parse_sample_config(default_sample_config());
  CHECK(c.batch == 10000);
  CHECK(registry_name_of(c.model, "model") == "gmm");
}

TEST_CASE("Config errors name their JSON path") {
  auto with = [](const std::string& key, const json& value) {
    json c = good();
    c[key] = value;
    return c;
  };
  auto without = [](const std::string& key) {
    json c = good();
    c.erase(key);
    return c;
  };
  json c;
  CHECK(config_error_path(with("sovler", 1)) == "sovler");                    // unknown key
  CHECK(config_error_path(without("model")) == "model");                      // missing section
  CHECK(config_error_path(with("grid", 3)) == "grid");                        // wrong type
  CHECK(config_error_path(with("batch", -1)) == "batch");                     // bad value
  CHECK(config_error_path(with("batch", 0)) == "batch");
  CHECK(config_error_path(with("batch", "8")) == "batch");
  CHECK(config_error_path(with("seed", 1.5)) == "seed");
  CHECK(config_error_path(with("init", 3)) == "init");
  CHECK(config_error_path(with("noise", 3)) == "noise");
  CHECK(config_error_path(with("noise", json{{"name", "white"}})) == "noise.name");
  CHECK(config_error_path(with("noise", json{{"name", "brownian_tree"}, {"depth", 40}})) == "noise.depth");
  CHECK(config_error_path(with("noise", json{{"name", "brownian_tree"}, {"deep", 4}})) == "noise.deep");
  CHECK(config_error_path(with("solver", json{{"name", "nope"}})) == "solver.name");       // unknown name
  CHECK(config_error_path(with("solver", json{{"name", "euler_maruyama"}, {"eta", 1}})) == "solver.eta");
  CHECK(config_error_path(with("schedule", json{{"name", "vp_linear"}, {"beta0", "x"}})) == "schedule.beta0");
  CHECK(config_error_path(with("schedule", json{{"nom", "vp_linear"}})) == "schedule.name");
  c = good();
  c["grid"]["steps"] = 0;
  CHECK(config_error_path(c) == "grid.steps");
  c = good();
  c["grid"]["t_start"] = 2.0;  // beyond the schedule's range
  CHECK(config_error_path(c) == "grid.t_start");
  c = good();
  c["grid"] = json{{"name", "custom"}, {"t", {1.0, 0.5, 0.7}}};  // not monotone
  CHECK(config_error_path(c).rfind("grid.t", 0) == 0);
  c = good();
  c["model"]["means"] = json::array({json::array({-1, 0})});  // one row for two weights
  CHECK(config_error_path(c) == "model.means");
  c = good();
  c["model"]["stds"][0][1] = "wide";
  CHECK(config_error_path(c) == "model.stds[0][1]");
  CHECK_THROWS_AS(parse_sample_config(json::array()), ConfigError);
}

TEST_CASE("File errors name the file") {
  const std::string dir = temp_dir();
  json c = good();
  c["init"] = "missing.npy";
  CHECK(io_error_file(c, dir) == dir + "/missing.npy");
  // x_T of the wrong shape.
  write_npy(dir + "/small.npy", State::Zero(3, 2));
  c["init"] = "small.npy";
  CHECK(io_error_file(c, dir) == dir + "/small.npy");
  // Replayed noise that is not 3-D.
  c = good();
  c["noise"] = "small.npy";
  CHECK(io_error_file(c, dir) == dir + "/small.npy");
  std::filesystem::remove_all(dir);
}

TEST_CASE("Samples do not depend on how the batch is split") {
  json whole = good();
  whole["batch"] = 8;
  SampleJob all = build_sample_job(parse_sample_config(whole));
  run_sample_job(all);
  for (int first : {0, 3, 5}) {
    json part = good();
    part["batch"] = 8 - first;
    part["first_sample"] = first;
    SampleJob job = build_sample_job(parse_sample_config(part));
    run_sample_job(job);
    // Bit for bit.
    CHECK((job.x == all.x.bottomRows(8 - first)).all());
  }
}

TEST_CASE("Replayed noise reproduces a Philox run draw for draw") {
  const std::string dir = temp_dir();
  // Write the Philox draws the run would make, as a (draws, batch, dim) file.
  const long batch = 8, dim = 2, steps = 20;
  NpyArray draws;
  draws.shape = {static_cast<std::size_t>(steps), static_cast<std::size_t>(batch), static_cast<std::size_t>(dim)};
  PhiloxNoise philox(3);
  State d(batch, dim);
  for (long k = 0; k < steps; ++k) {
    philox.normal(d);
    for (long r = 0; r < batch; ++r)
      for (long j = 0; j < dim; ++j) draws.data.push_back(d(r, j));
  }
  write_npy(dir + "/draws.npy", draws);
  SampleJob a = build_sample_job(parse_sample_config(good()));
  run_sample_job(a);
  json c = good();
  c["noise"] = "draws.npy";
  SampleJob b = build_sample_job(parse_sample_config(c, dir));
  run_sample_job(b);
  CHECK((a.x == b.x).all());
  std::filesystem::remove_all(dir);
}
