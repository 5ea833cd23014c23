// Sweeps: validation with JSON paths, cross-product expansion, results that do not depend
// on threads, shards or interruptions, the results files, and the report's orders.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "diffsde/error.hpp"
#include "diffsde/io.hpp"
#include "diffsde/metrics.hpp"
#include "diffsde/npy.hpp"
#include "diffsde/report.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/scores/analytic.hpp"
#include "diffsde/sweep.hpp"
#include "support/exact.hpp"

using namespace diffsde;
using nlohmann::json;

namespace {

// A folder of its own per test case, removed at the end.
struct Scratch {
  std::string dir;
  Scratch() {
    static int counter = 0;
    dir = (std::filesystem::temp_directory_path() /
           ("diffsde-test-sweep-" + std::to_string(::getpid()) + "-" + std::to_string(counter++)))
              .string();
    std::filesystem::create_directories(dir);
  }
  ~Scratch() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::string file(const std::string& name) const { return dir + "/" + name; }
};

json small_sweep() {
  return json::parse(R"({
    "problem": {"schedule": "vp_linear", "model": "gmm", "batch": 40, "seed": 3},
    "reference": {"ode": {"solver": {"name": "pf_ode", "rtol": 1e-9, "atol": 1e-9},
                          "grid": {"name": "time_uniform", "steps": 1}},
                  "sde": {"solver": "euler_maruyama", "grid": {"name": "logSNR", "steps": 300}}},
    "solvers": [{"name": "ddim", "eta": [0, 1]}, {"name": "dpm_solver", "order": [2, 3]},
                "euler_maruyama", "stochastic_heun", {"name": "pf_ode", "stepper": "dopri5"}],
    "grids": [{"name": "logSNR", "t_end": 0.001}],
    "steps": [4, 8], "tolerances": [1e-3, 1e-5], "seeds": [0, 1]
  })");
}

// The step counts each solver label runs at.
std::map<std::string, std::set<long>> steps_by_label(const Sweep& sweep) {
  std::map<std::string, std::set<long>> out;
  for (const auto& c : sweep.cells) out[c.label].insert(c.steps);
  return out;
}

// Results by cell key, timings removed.
std::map<std::string, json> cells_of(const std::string& path) {
  std::map<std::string, json> out;
  for (json line : read_results(path).lines) {
    line.erase("seconds");
    out[line["key"].get<std::string>()] = line;
  }
  return out;
}

std::string path_of_error(const json& config) {
  return test::config_error_path([&] { parse_sweep(config); });
}

}  // namespace

TEST_CASE("Schema errors name their JSON path") {
  const json good = small_sweep();
  CHECK(path_of_error(good) == "(none)");
  auto with = [&](const std::function<void(json&)>& edit) {
    json j = good;
    edit(j);
    return path_of_error(j);
  };
  CHECK(with([](json& j) { j["solverz"] = 1; }) == "sweep.solverz");
  CHECK(with([](json& j) { j.erase("problem"); }) == "sweep.problem");
  CHECK(with([](json& j) { j["problem"]["batch"] = 0; }) == "sweep.problem.batch");
  CHECK(with([](json& j) { j["problem"]["model"] = {{"name", "gmm"}, {"means", {{0, 0}}}}; }) ==
        "sweep.problem.model.means");
  CHECK(with([](json& j) { j["problem"]["noise"] = "white"; }) == "sweep.problem.noise.name");
  CHECK(with([](json& j) { j["solvers"][2] = {{"name", "dpm_solver"}, {"order", 7}}; }) == "sweep.solvers[2].order");
  // A bad alternative of a list is named by its index.
  CHECK(with([](json& j) { j["solvers"][1]["order"] = {2, 9}; }) == "sweep.solvers[1].order[1]");
  CHECK(with([](json& j) { j["solvers"][0]["eta"] = json::array(); }) == "sweep.solvers[0].eta");
  CHECK(with([](json& j) { j["solvers"][0]["etta"] = 1; }) == "sweep.solvers[0].etta");
  CHECK(with([](json& j) { j["solvers"][3] = "nope"; }) == "sweep.solvers[3].name");
  CHECK(with([](json& j) { j["steps"] = {4, 0}; }) == "sweep.steps[1]");
  CHECK(with([](json& j) { j["steps"] = {4, 4}; }) == "sweep.steps[1]");
  CHECK(with([](json& j) { j["tolerances"] = {1e-3, -1}; }) == "sweep.tolerances[1]");
  CHECK(with([](json& j) { j["seeds"] = {0, -1}; }) == "sweep.seeds[1]");
  CHECK(with([](json& j) { j["grids"][0]["name"] = "logSNRR"; }) == "sweep.grids[0].name");
  CHECK(with([](json& j) { j["grids"][0]["steps"] = 3; }) == "sweep.grids[0].steps");
  CHECK(with([](json& j) { j["grids"][0]["t_end"] = 5; }) == "sweep.grids[0].t_end");
  CHECK(with([](json& j) { j["metrics"] = {"frechet", "wasserstein"}; }) == "sweep.metrics[1].name");
  CHECK(with([](json& j) { j["metrics"] = {"frechet", "frechet"}; }) == "sweep.metrics[1]");
  CHECK(with([](json& j) { j["metrics"] = {{{"name", "mmd"}, {"samples", 1}}}; }) == "sweep.metrics[0].samples");
  CHECK(with([](json& j) { j.erase("reference"); j["metrics"] = {"path_error"}; }) == "sweep.metrics[0]");
  CHECK(with([](json& j) { j["metrics"] = {{{"name", "feature_frechet"}}}; }) == "sweep.metrics[0].classifier");
  CHECK(with([](json& j) {
          j["metrics"] = {{{"name", "feature_frechet"}, {"classifier", "c.pt"}, {"data", {{"name", "gmm"}}}, {"clip", 1}}};
        }) == "sweep.metrics[0].clip");
  CHECK(with([](json& j) { j["reference"]["ode"]["solver"] = "euler_maruyama"; }) == "sweep.reference.ode.solver");
  CHECK(with([](json& j) { j["reference"]["ode"]["grid"]["t_end"] = 0.1; }) == "sweep.reference.ode.grid.t_end");
  CHECK(with([](json& j) { j["reference"]["sde"]["solver"] = "ddpm"; }) == "sweep.reference.sde.solver");
  // Solver-on-grid problems are found up front: Adams-Bashforth-Moulton needs equal steps.
  CHECK(with([](json& j) { j["solvers"][4] = {{"name", "pf_ode"}, {"stepper", "adams_bashforth_moulton"}}; }) ==
        "sweep.solvers[4]");
  CHECK(with([](json& j) { j["problem"]["noise"] = "philox"; j["reference"].erase("sde"); j["solvers"][4] = "ggf"; }) ==
        "sweep.solvers[4]");
  // The same cell twice.
  CHECK(with([](json& j) { j["solvers"].push_back({{"name", "ddim"}, {"eta", 0.0}}); }) == "sweep.solvers[5]");
  // An ODE reference cannot reach t = 0.
  CHECK(with([](json& j) { j["grids"][0]["t_end"] = 0; j["solvers"].erase(4); }) == "sweep.reference.ode.solver");
}

TEST_CASE("feature_frechet without LibTorch stops at the classifier before anything runs") {
  // These test programs do not link LibTorch, so no feature-map loader is installed.
  REQUIRE_FALSE(feature_maps_enabled());
  json j = small_sweep();
  j["metrics"] = {{{"name", "feature_frechet"}, {"classifier", "c.pt"}, {"data", {{"name", "gmm"}}}}};
  try {
    parse_sweep(j);
    FAIL("no error");
  } catch (const ConfigError& e) {
    CHECK(e.path() == "sweep.metrics[0].classifier");
    CHECK_THAT(e.what(), Catch::Contains("LibTorch"));
  }
}

TEST_CASE("List-valued parameters expand into their cross product") {
  json j = json::parse(R"({
    "problem": {"schedule": "vp_linear", "model": "gaussian", "batch": 8},
    "solvers": [{"name": "dpm_solver", "order": [1, 2, 3], "method": ["singlestep", "multistep"]},
                {"name": "ddim", "clip_x0": [-3, 3]},
                {"name": "ddim", "eta": 0.5, "clip_x0": [[-3, 3], [-4, 4]]},
                {"name": "pf_ode", "stepper": "dopri5"},
                {"name": "pf_ode", "stepper": "dopri5", "rtol": 1e-4, "grids": [{"name": "time_uniform"}]},
                {"name": "euler", "steps": [3], "grids": ["time_uniform", "logSNR"]}],
    "grids": [{"name": "logSNR"}, {"name": "time_quadratic"}],
    "steps": [5, 10], "tolerances": [1e-3, 1e-6], "seeds": [0, 7],
    "metrics": ["frechet"]
  })");
  const Sweep sweep = parse_sweep(j);
  // dpm_solver: 6 configurations x 2 grids x 2 steps x 2 seeds = 48; ddim with one clip
  // range: 8; ddim with two: 16; dopri5 by tolerance: 2 x 2 grids x 2 seeds = 8; dopri5 with
  // its own rtol: 1 x 1 grid x 2 seeds = 2; euler on its own grids and steps: 2 x 1 x 2 = 4.
  REQUIRE(sweep.cells.size() == 48 + 8 + 16 + 8 + 2 + 4);
  std::set<std::string> keys;
  for (const auto& c : sweep.cells) keys.insert(c.key);
  CHECK(keys.size() == sweep.cells.size());
  for (std::size_t i = 0; i < sweep.cells.size(); ++i) CHECK(sweep.cells[i].index == i);

  // The last key (in key order) varies fastest, then grids, steps, seeds.
  CHECK(sweep.cells[0].label == "dpm_solver(method=singlestep,order=1)");
  CHECK(sweep.cells[0].grid_label == "logSNR");
  CHECK(sweep.cells[0].steps == 5);
  CHECK(sweep.cells[0].seed == 0);
  CHECK(sweep.cells[1].seed == 7);
  CHECK(sweep.cells[2].steps == 10);
  CHECK(sweep.cells[4].grid_label == "time_quadratic");
  CHECK(sweep.cells[8].label == "dpm_solver(method=singlestep,order=2)");
  CHECK(sweep.cells[24].label == "dpm_solver(method=multistep,order=1)");
  // Parameters are recorded with every default filled in, in canonical types.
  CHECK(sweep.cells[8].solver["order"] == 2);
  CHECK(sweep.cells[8].solver["algorithm"] == "dpmsolver++");
  // A number list for a number[] parameter is one value; a list of them, alternatives.
  CHECK(sweep.cells[48].label == "ddim(clip_x0=[-3,3])");
  CHECK(sweep.cells[56].label == "ddim(clip_x0=[-3,3],eta=0.5)");
  CHECK(sweep.cells[64].label == "ddim(clip_x0=[-4,4],eta=0.5)");
  // Adaptive solvers run once per tolerance (rtol = atol = tolerance) on a 1-step grid.
  const SweepCell& tol = sweep.cells[72];
  CHECK(tol.label == "pf_ode(stepper=dopri5)");
  CHECK(tol.adaptive);
  REQUIRE(tol.tolerance.has_value());
  CHECK(*tol.tolerance == 1e-3);
  CHECK(tol.solver["rtol"] == 1e-3);
  CHECK(tol.solver["atol"] == 1e-3);
  CHECK(tol.steps == 1);
  CHECK(*sweep.cells[74].tolerance == 1e-3);  // tolerance, then grid, steps and seed
  CHECK(sweep.cells[74].grid_label == "time_quadratic");
  CHECK(*sweep.cells[76].tolerance == 1e-6);
  // ...unless the entry sets a tolerance itself.
  CHECK_FALSE(sweep.cells[80].tolerance.has_value());
  CHECK(sweep.cells[80].solver["rtol"] == 1e-4);
  CHECK(sweep.cells[80].grid_label == "time_uniform");
  CHECK(sweep.cells[82].label == "euler");
  CHECK(sweep.cells[82].steps == 3);

  // 0 and 0.0 are one setting: the same key.
  json a = j, b = j;
  a["solvers"] = {{{"name", "ddim"}, {"eta", 0}}};
  b["solvers"] = {{{"name", "ddim"}, {"eta", 0.0}}};
  CHECK(parse_sweep(a).cells[0].key == parse_sweep(b).cells[0].key);
  CHECK(parse_sweep(a).hash == parse_sweep(b).hash);
  // The sweep's hash covers the problem, not the solver list.
  b["problem"]["batch"] = 9;
  CHECK(parse_sweep(a).hash != parse_sweep(b).hash);
}

TEST_CASE("Results are identical for 1 and 2 threads, and for two shards merged") {
  Scratch scratch;
  const Sweep sweep = parse_sweep(small_sweep());
  SweepRunOptions one;
  const auto s1 = run_sweep(sweep, scratch.file("one.jsonl"), one);
  CHECK(s1.ran == static_cast<long>(sweep.cells.size()));
  CHECK(s1.failed == 0);
  SweepRunOptions two;
  two.threads = 2;
  run_sweep(sweep, scratch.file("two.jsonl"), two);
  const auto reference = cells_of(scratch.file("one.jsonl"));
  REQUIRE(reference.size() == sweep.cells.size());
  CHECK(cells_of(scratch.file("two.jsonl")) == reference);

  for (int shard = 0; shard < 2; ++shard) {
    SweepRunOptions o;
    o.shard = shard;
    o.shards = 2;
    o.threads = 2;
    const auto s = run_sweep(sweep, scratch.file("shard" + std::to_string(shard) + ".jsonl"), o);
    CHECK(s.in_shard == static_cast<long>(sweep.cells.size()) / 2);
  }
  const auto merged = merge_results({scratch.file("shard1.jsonl"), scratch.file("shard0.jsonl")});
  REQUIRE(merged.size() == sweep.cells.size());
  std::map<std::string, json> m;
  for (json line : merged) {
    CHECK(line["cell"] == m.size());  // merged lines come in cell order
    line.erase("seconds");
    m[line["key"].get<std::string>()] = line;
  }
  CHECK(m == reference);

  // What the lines hold.
  for (const auto& [key, line] : reference) {
    CHECK(line["status"] == "ok");
    CHECK(line["sweep"] == sweep.hash);
    for (const char* k : {"label", "solver", "grid", "steps", "seed", "nfe", "accepted", "rejected", "metrics"})
      CHECK(line.contains(k));
    if (line["stochastic"] == false || line["on_path"] == true) {
      CHECK(line["metrics"].contains("path_rms"));
      CHECK(line["metrics"]["path_max"].get<double>() >= line["metrics"]["path_rms"].get<double>());
    }
    for (const char* k : {"log_likelihood", "frechet", "sliced_w2", "mmd2", "mmd2_se"}) CHECK(line["metrics"].contains(k));
  }
}

TEST_CASE("Cells run costliest first: estimated evaluations per sample, ties in cell order") {
  Scratch scratch;
  const Sweep sweep = parse_sweep(json::parse(R"({
    "problem": {"schedule": "vp_linear", "model": "gmm", "batch": 8, "seed": 1},
    "solvers": ["ddim", {"name": "dpm_solver", "order": 3, "method": "singlestep", "steps": [6]},
                {"name": "pf_ode", "stepper": "dopri5", "tolerances": [1e-5]},
                {"name": "pf_ode", "stepper": "rk4", "steps": [3]}],
    "grids": [{"name": "logSNR", "t_end": 0.001}],
    "steps": [5, 40, 12], "seeds": [0, 1]
  })"));
  // ddim at 5, 40, 12 steps; singlestep dpm_solver-3 (3 evaluations per step) at 6; dopri5 at
  // one tolerance; rk4 (4 per step) at 3; 2 seeds each.
  REQUIRE(sweep.cells.size() == 12);
  std::map<std::string, std::set<double>> costs;
  for (const auto& c : sweep.cells) costs[c.label].insert(c.cost);
  CHECK(costs["ddim"] == std::set<double>{5, 40, 12});
  CHECK(costs["dpm_solver(method=singlestep,order=3)"] == std::set<double>{18});
  CHECK(costs["pf_ode(stepper=rk4)"] == std::set<double>{12});
  // dopri5: 6 evaluations per step (FSAL), order 5, about tol^(-1/5) = 10 steps.
  REQUIRE(costs["pf_ode(stepper=dopri5)"].size() == 1);
  CHECK(*costs["pf_ode(stepper=dopri5)"].begin() == Approx(60).epsilon(1e-12));

  run_sweep(sweep, scratch.file("order.jsonl"), {});
  const auto lines = read_results(scratch.file("order.jsonl")).lines;
  REQUIRE(lines.size() == sweep.cells.size());
  std::vector<long> order;
  for (const auto& line : lines) order.push_back(line["cell"].get<long>());
  // Cells: ddim 5/40/12 (0-5, seeds inner), dpm_solver (6, 7), dopri5 (8, 9), rk4 (10, 11).
  CHECK(order == std::vector<long>{8, 9, 2, 3, 6, 7, 4, 5, 10, 11, 0, 1});
}

TEST_CASE("Resume after a torn last line runs only the missing cells") {
  Scratch scratch;
  const Sweep sweep = parse_sweep(small_sweep());
  run_sweep(sweep, scratch.file("full.jsonl"), {});
  const auto full = cells_of(scratch.file("full.jsonl"));

  // Keep 5 whole lines and half of the sixth, as a kill -9 in mid-write would.
  const std::string text = read_file(scratch.file("full.jsonl"));
  std::size_t cut = 0;
  for (int i = 0; i < 5; ++i) cut = text.find('\n', cut) + 1;
  const std::size_t next = text.find('\n', cut);
  {
    std::ofstream out(scratch.file("cut.jsonl"), std::ios::binary);
    out << text.substr(0, cut + (next - cut) / 2);
  }
  const ResultsFile torn = read_results(scratch.file("cut.jsonl"));
  CHECK(torn.lines.size() == 5);
  CHECK(torn.torn_bytes > 0);

  // Without --resume the file is not touched.
  CHECK_THROWS_AS(run_sweep(sweep, scratch.file("cut.jsonl"), {}), IoError);
  CHECK(read_results(scratch.file("cut.jsonl")).torn_bytes == torn.torn_bytes);

  SweepRunOptions resume;
  resume.resume = true;
  resume.threads = 2;
  const auto s = run_sweep(sweep, scratch.file("cut.jsonl"), resume);
  CHECK(s.already_done == 5);
  CHECK(s.ran == static_cast<long>(sweep.cells.size()) - 5);
  CHECK(cells_of(scratch.file("cut.jsonl")) == full);
  CHECK(read_results(scratch.file("cut.jsonl")).torn_bytes == 0);
  // A second resume finds nothing to do.
  CHECK(run_sweep(sweep, scratch.file("cut.jsonl"), resume).ran == 0);

  // --force starts over.
  SweepRunOptions force;
  force.force = true;
  CHECK(run_sweep(sweep, scratch.file("cut.jsonl"), force).ran == static_cast<long>(sweep.cells.size()));
}

TEST_CASE("Results files: malformed lines, other sweeps, failed cells") {
  Scratch scratch;
  const Sweep sweep = parse_sweep(small_sweep());
  {
    std::ofstream out(scratch.file("bad.jsonl"));
    out << "{\"key\": \"a\", \"sweep\": \"b\", \"cell\": 0}\nnot json\n";
  }
  try {
    read_results(scratch.file("bad.jsonl"));
    FAIL("no error");
  } catch (const IoError& e) {
    CHECK(std::string(e.what()).find("line 2") != std::string::npos);
  }
  // Resuming into a file of another sweep is refused.
  {
    std::ofstream out(scratch.file("other.jsonl"));
    out << "{\"key\": \"a\", \"sweep\": \"0123456789abcdef\", \"cell\": 0}\n";
  }
  SweepRunOptions resume;
  resume.resume = true;
  CHECK_THROWS_AS(run_sweep(sweep, scratch.file("other.jsonl"), resume), IoError);
  run_sweep(sweep, scratch.file("mine.jsonl"), {});
  CHECK_THROWS_AS(merge_results({scratch.file("mine.jsonl"), scratch.file("other.jsonl")}), IoError);

  // A run that breaks down is a result: status "failed" and the error, the sweep goes on.
  json j = small_sweep();
  j["solvers"] = {{{"name", "ddim"}, {"eta", 3}}, "ddim"};
  j["metrics"] = {"frechet"};
  const Sweep failing = parse_sweep(j);
  const auto s = run_sweep(failing, scratch.file("failing.jsonl"), {});
  CHECK(s.failed == 4);
  int failed = 0;
  for (const auto& [key, line] : cells_of(scratch.file("failing.jsonl"))) {
    if (line["status"] == "failed") {
      ++failed;
      CHECK(line["error"].get<std::string>().find("eta") != std::string::npos);
    }
  }
  CHECK(failed == 4);
}

TEST_CASE("Report: fitted orders match the declared ones on the Gaussian problem") {
  Scratch scratch;
  const json j = json::parse(R"({
    "problem": {"schedule": "vp_linear", "model": {"name": "gaussian", "mean": [1, -1], "std": [0.5, 2]},
                "batch": 64, "noise": {"name": "brownian_tree", "depth": 16}},
    "reference": {"ode": {"solver": {"name": "pf_ode", "rtol": 1e-11, "atol": 1e-11},
                          "grid": {"name": "time_uniform", "steps": 1}},
                  "sde": {"solver": "stochastic_heun", "grid": {"name": "time_uniform", "steps": 4096}}},
    "solvers": ["ddim", {"name": "dpm_solver", "order": 2, "method": "singlestep"},
                {"name": "pf_ode", "stepper": "rk4"}, "euler_maruyama"],
    "grids": [{"name": "time_uniform", "t_start": 1, "t_end": 0.1}],
    "steps": [16, 32, 64, 128],
    "metrics": ["path_error"]
  })");
  const Sweep sweep = parse_sweep(j);
  SweepRunOptions o;
  o.threads = 2;
  run_sweep(sweep, scratch.file("orders.jsonl"), o);
  const auto lines = read_results(scratch.file("orders.jsonl")).lines;
  CHECK(default_report_metric(lines) == "path_rms");
  const Report report = make_report(lines, "path_rms");
  REQUIRE(report.rows.size() == 4);
  for (const auto& row : report.rows) {
    INFO(row.label << ": fitted " << row.fitted_order << ", declared " << row.declared_order);
    CHECK(row.points.size() == 4);
    CHECK(std::abs(row.fitted_order - row.declared_order) < 0.25);
  }
  CHECK(report.rows[3].stochastic);
  CHECK(report.rows[3].declared_order == 1.0);  // the strong order of Euler-Maruyama
  const std::string text = format_report(report);
  CHECK(text.find("dpm_solver(method=singlestep,order=2)") != std::string::npos);
  CHECK(text.find("declared") != std::string::npos);
  CHECK_THROWS_AS(make_report(lines, "fid"), Error);

  // The plot, when gnuplot is there.
  if (!find_program("gnuplot").empty()) {
    write_work_precision_plot(report, scratch.file("plot.png"));
    const std::string png = read_file(scratch.file("plot.png"));
    CHECK(png.substr(1, 3) == "PNG");
  }
  CHECK_THROWS_AS(write_work_precision_plot(report, scratch.file("none.png"), "no-such-gnuplot-program"), Error);
  CHECK_FALSE(std::filesystem::exists(scratch.file("none.png")));
}

TEST_CASE("The shipped sweeps parse, and the embedded default is configs/sweeps/default.json") {
  const std::string dir = std::string(DIFFSDE_SOURCE_DIR) + "/configs/sweeps";
  CHECK(read_json_file(dir + "/default.json") == default_sweep_config());
  const Sweep def = parse_sweep(default_sweep_config());
  CHECK(def.cells.size() > 100);
  // Every registered solver is in it.
  std::set<std::string> names;
  for (const auto& c : def.cells) names.insert(c.solver["name"].get<std::string>());
  for (const auto& name : solver_registry().names()) {
    INFO(name);
    CHECK(names.count(name) == 1);
  }
  int table1 = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    INFO(name);
    const Sweep s = parse_sweep(read_json_file(entry.path().string()), dir);
    CHECK(!s.cells.empty());
    if (name.rfind("ddim_table1_", 0) == 0) {
      ++table1;
      // eta 0, 0.2, 0.5, 1 and sigma-hat at S = 10, 20, 50, 100, 1000.
      const auto by_label = steps_by_label(s);
      std::set<long> steps;
      for (const auto& [label, label_steps] : by_label) steps.insert(label_steps.begin(), label_steps.end());
      CHECK(steps == std::set<long>{10, 20, 50, 100, 1000});
      CHECK(by_label.size() == 5);
    }
  }
  CHECK(table1 >= 1);
}

TEST_CASE("The Fashion-MNIST Table 1 sweeps expand to Table 1's cells") {
  // Their networks are trained, not shipped: the solvers, grid and steps are checked with
  // the analytic mixture in place of the U-Net and the classifier's metric.
  const std::string dir = std::string(DIFFSDE_SOURCE_DIR) + "/configs/fashion_mnist";
  const std::map<std::string, std::set<long>> expected = {{"ddim_table1.json", {10, 20, 50, 100, 1000}},
                                                          {"ddim_table1_few_steps.json", {10, 20, 50}}};
  for (const auto& [name, steps] : expected) {
    INFO(name);
    json config = read_json_file(dir + "/" + name);
    CHECK(config["problem"]["model"]["name"] == "torchscript");
    CHECK(config["metrics"][0]["name"] == "feature_frechet");
    CHECK(config["grids"] == json::parse(R"([{"name": "discrete_uniform", "num_steps": 1000}])"));
    config["problem"]["model"] = {{"name", "gmm"}};
    config["metrics"] = {"frechet"};
    const Sweep s = parse_sweep(config, dir);
    const std::map<std::string, std::set<long>> table = {{"ddim(eta=0)", steps},   {"ddim(eta=0.2)", steps},
                                                         {"ddim(eta=0.5)", steps}, {"ddim(eta=1)", steps},
                                                         {"ddpm(variance=beta)", steps}};
    CHECK(steps_by_label(s) == table);
    CHECK(s.cells.size() == 5 * steps.size());
  }
}

namespace {

// A class-conditional problem: the labelled 2-D mixture with a label per sample (the
// last one the null label -1).
json conditional_sweep() {
  return json::parse(R"({
    "problem": {"schedule": "vp_linear", "model": {"name": "gmm", "classes": [[0], [1, 2]]}, "batch": 6, "seed": 2,
                "cond": {"y": [0, 1, 1, 0, 1, -1]}},
    "solvers": ["ddim"], "grids": [{"name": "logSNR", "t_end": 0.001}], "steps": [5],
    "metrics": ["log_likelihood"]
  })");
}

// The ConfigError parse_sweep throws: "PATH: message" (empty when it parses).
std::pair<std::string, std::string> config_error(const json& j, const std::string& base_dir = "") {
  try {
    parse_sweep(j, base_dir);
  } catch (const ConfigError& e) {
    return {e.path(), e.what()};
  }
  return {};
}

}  // namespace

TEST_CASE("outside is the exact fraction of sample values outside [lo, hi], for any problem") {
  const auto metric = metric_registry().create(json{{"name", "outside"}, {"lo", -0.5}, {"hi", 2}}, "sweep.metrics[0]",
                                               BuildContext{});
  const GaussianModel model(std::make_shared<VpLinearSchedule>(), Eigen::VectorXd::Zero(3), Eigen::VectorXd::Ones(3));
  State x(2, 3);
  x << -0.5, -0.75, 2.5, 1, 2, 0;  // outside: -0.75 and 2.5 (the ends are inside)
  json values = json::object();
  metric->compute(MetricInput{model, x, nullptr}, values);
  CHECK(values.at("outside").get<double>() == 2.0 / 6.0);

  // The defaults [-1, 1]; lo >= hi is an error at the metric's path.
  json j = conditional_sweep();
  j["metrics"] = {"outside"};
  const Sweep sweep = parse_sweep(j);
  const json line = run_cell(sweep, sweep.cells.at(0), nullptr);
  REQUIRE(line.at("status") == "ok");
  const double outside = line.at("metrics").at("outside").get<double>();
  CHECK(outside >= 0.0);
  CHECK(outside <= 1.0);
  j["metrics"] = {{{"name", "outside"}, {"lo", 1}, {"hi", 1}}};
  const auto [path, message] = config_error(j);
  CHECK(path == "sweep.metrics[0]");
  CHECK_THAT(message, Catch::Contains("lo < hi"));
}

TEST_CASE("accuracy and per-class feature_frechet need a classifier and a label input, named by path") {
  Scratch scratch;
  write_npy(scratch.file("unlabelled.npy"), State(State::Zero(8, 2)));
  const json data = {{"name", "npy"}, {"path", "unlabelled.npy"}};
  auto conditional_with = [&](const json& metric) {
    json j = conditional_sweep();
    j["metrics"] = {metric};
    return config_error(j, scratch.dir);
  };
  auto unconditional_with = [&](const json& metric) {
    json j = small_sweep();
    j["metrics"] = {metric};
    return config_error(j, scratch.dir);
  };

  // accuracy: the classifier is required; the problem must give the label input.
  auto e = conditional_with({{"name", "accuracy"}});
  CHECK(e.first == "sweep.metrics[0].classifier");
  e = unconditional_with({{"name", "accuracy"}, {"classifier", "c.pt"}});
  CHECK(e.first == "sweep.metrics[0]");
  CHECK_THAT(e.second, Catch::Contains("input 'y'") && Catch::Contains("no per-sample inputs"));
  e = conditional_with({{"name", "accuracy"}, {"classifier", "c.pt"}, {"input", "label"}});
  CHECK(e.first == "sweep.metrics[0]");
  CHECK_THAT(e.second, Catch::Contains("input 'label'") && Catch::Contains("inputs are: y"));
  // With the labels in place, this build (no LibTorch) stops at the classifier.
  e = conditional_with({{"name", "accuracy"}, {"classifier", "c.pt"}});
  CHECK(e.first == "sweep.metrics[0].classifier");
  CHECK_THAT(e.second, Catch::Contains("LibTorch"));

  // feature_frechet: refused on a conditional problem without per_class, and per_class
  // refused on an unconditional problem or with unlabelled data.
  e = conditional_with({{"name", "feature_frechet"}, {"classifier", "c.pt"}, {"data", data}});
  CHECK(e.first == "sweep.metrics[0]");
  CHECK_THAT(e.second, Catch::Contains("unconditional data law"));
  e = unconditional_with({{"name", "feature_frechet"}, {"classifier", "c.pt"}, {"data", data}, {"per_class", true}});
  CHECK(e.first == "sweep.metrics[0]");
  CHECK_THAT(e.second, Catch::Contains("per_class") && Catch::Contains("no per-sample inputs"));
  e = conditional_with({{"name", "feature_frechet"}, {"classifier", "c.pt"}, {"data", data}, {"per_class", true}});
  CHECK(e.first == "sweep.metrics[0]");
  CHECK_THAT(e.second, Catch::Contains("'npy' has no labels"));
  // Labelled data (the mixture's components) without rows of class 1: samples 1, 2 and 4
  // are of class 1.
  write_npy(scratch.file("labels.npy"), State(State::Zero(8, 1)));
  const json labelled = {{"name", "npy"}, {"path", "unlabelled.npy"}, {"labels", "labels.npy"}};
  e = conditional_with({{"name", "feature_frechet"}, {"classifier", "c.pt"}, {"data", labelled}, {"per_class", true}});
  CHECK(e.first == "sweep.metrics[0].data");
  CHECK_THAT(e.second, Catch::Contains("class 1 has 3 samples"));
}

TEST_CASE("The report leaves out metric values that are objects") {
  const std::vector<json> lines = {
      {{"metrics", {{"feature_frechet", 1.5}, {"feature_frechet_classes", {{"0", 1.0}, {"1", 2.0}}}}}}};
  CHECK(report_metric_names(lines) == std::vector<std::string>{"feature_frechet"});
}
