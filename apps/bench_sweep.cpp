// Sweep wall time with --threads 1 and 2 side by side (docs/benchmarks.md, "Sweeps: cells
// on 1 and 2 threads").
//
//   diffsde_bench_sweep [SWEEP.json] [--threads 1,2] [--repeat N]
//
// Runs the sweep (default: the embedded default sweep) once per thread count into a
// scratch results file, best of N repeats, and prints the wall times and their ratio. It
// also checks that every run wrote the same cells with the same results (seconds aside):
// cells are independent runs keyed by seed and sample, so threads change nothing.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "diffsde/error.hpp"
#include "diffsde/io.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/sweep.hpp"

namespace {

using nlohmann::json;

// Results by cell key, without the timings.
std::map<std::string, std::string> results_without_seconds(const std::string& path) {
  std::map<std::string, std::string> out;
  for (json line : diffsde::read_results(path).lines) {
    line.erase("seconds");
    out[line["key"].get<std::string>()] = line.dump();
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"diffsde_bench_sweep: sweep wall time on 1 and 2 threads"};
  std::string config_path, threads_text = "1,2";
  int repeat = 1;
  app.add_option("config", config_path, "Sweep file (JSON); omitted: the embedded default sweep");
  app.add_option("--threads", threads_text, "Comma-separated thread counts (default 1,2)");
  app.add_option("--repeat", repeat, "Runs per thread count; the best is reported (default 1)");
  CLI11_PARSE(app, argc, argv);

  try {
    std::vector<int> threads;
    std::stringstream ss(threads_text);
    for (std::string item; std::getline(ss, item, ',');) threads.push_back(std::stoi(item));
    if (threads.empty() || repeat < 1) throw diffsde::Error("need at least one thread count and --repeat >= 1");

    const json config = config_path.empty() ? diffsde::default_sweep_config() : diffsde::read_json_file(config_path);
    const diffsde::Sweep sweep =
        diffsde::parse_sweep(config, config_path.empty() ? "" : diffsde::parent_dir(config_path));
    const std::string scratch =
        (std::filesystem::temp_directory_path() / ("diffsde-bench-sweep-" + std::to_string(::getpid()))).string();
    std::filesystem::create_directories(scratch);

    std::printf("sweep %s: %zu cells, batch %ld, %u hardware threads\n", sweep.hash.c_str(), sweep.cells.size(),
                sweep.batch, std::thread::hardware_concurrency());
    std::printf("| threads | wall s (best of %d) | cells/s | speed-up vs %d thread(s) |\n| --- | --- | --- | --- |\n",
                repeat, threads.front());
    std::map<std::string, std::string> first;
    double base = 0;
    bool identical = true;
    for (int t : threads) {
      double best = 1e300;
      const std::string out = scratch + "/threads-" + std::to_string(t) + ".jsonl";
      for (int r = 0; r < repeat; ++r) {
        diffsde::SweepRunOptions options;
        options.threads = t;
        options.force = true;
        const auto start = std::chrono::steady_clock::now();
        diffsde::run_sweep(sweep, out, options);
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      }
      const auto results = results_without_seconds(out);
      if (first.empty()) {
        first = results;
        base = best;
      } else if (results != first) {
        identical = false;
      }
      std::printf("| %d | %.2f | %.2f | %.2fx |\n", t, best, static_cast<double>(sweep.cells.size()) / best,
                  base / best);
      std::fflush(stdout);
    }
    std::printf("results identical across thread counts (seconds aside): %s\n", identical ? "yes" : "NO");
    std::filesystem::remove_all(scratch);
    return identical ? 0 : 1;
  } catch (const diffsde::Error& e) {
    std::fprintf(stderr, "diffsde_bench_sweep: %s\n", e.what());
    return 2;
  }
}
