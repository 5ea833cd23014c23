// Running sweeps: cells, references and the run loop (threads, shards, MPI ranks, resume,
// progress bar) (see sweep.hpp and docs/sweeps.md).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>
#include <vector>

#include "diffsde/driver.hpp"
#include "diffsde/error.hpp"
#include "diffsde/grid.hpp"
#include "diffsde/noise.hpp"
#include "diffsde/problem.hpp"
#include "diffsde/progress.hpp"
#include "diffsde/solver.hpp"
#include "diffsde/sweep.hpp"
#include "sweep_internal.hpp"

namespace diffsde {

using nlohmann::json;
using nlohmann::ordered_json;
using sweep_internal::LineAppender;
using sweep_internal::make_noise;
using sweep_internal::prepare_output;
using sweep_internal::rank_file;

namespace {

// Runs fn(j) for the tasks j = next() < n on up to `threads` threads until next() gives
// j >= n; the first exception is rethrown after every thread has stopped.
void drain(int threads, long n, const std::function<long()>& next, const std::function<void(long)>& fn) {
  std::atomic<bool> stop{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto work = [&] {
    while (!stop.load()) {
      long j = 0;
      try {
        j = next();
        if (j >= n) return;
        fn(j);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        stop.store(true);
      }
    }
  };
  std::vector<std::thread> pool;
  for (int w = 1; w < std::max(threads, 1); ++w) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

// Runs fn(i) for i in [0, n) on up to `threads` threads (never more than n); the first
// exception thrown is rethrown after every thread has stopped.
void parallel_for(std::size_t n, int threads, const std::function<void(std::size_t)>& fn) {
  const int workers = static_cast<int>(std::min<std::size_t>(n, static_cast<std::size_t>(std::max(threads, 1))));
  if (workers <= 1) {
    for (std::size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<long> next{0};
  drain(workers, static_cast<long>(n), [&next] { return next.fetch_add(1); },
        [&fn](long i) { fn(static_cast<std::size_t>(i)); });
}

}  // namespace

// ---------------------------------------------------------------------------
// Running cells and references.

State sweep_initial_state(const Sweep& sweep, std::uint64_t seed, double t_start) {
  if (sweep.init) return *sweep.init;
  State x = initial_noise(seed, 0, sweep.batch, sweep.model->dim());
  const double scale = sweep.schedule->prior_std(t_start);
  if (scale != 1) x *= scale;
  return x;
}

namespace sweep_internal {

std::unique_ptr<NoiseSource> make_noise(const Sweep& sweep, std::uint64_t seed, std::uint64_t first_sample) {
  if (sweep.brownian_tree)
    return std::make_unique<BrownianTreeNoise>(seed, 0.0, sweep.schedule->t_max(), sweep.tree_depth, first_sample);
  return std::make_unique<PhiloxNoise>(seed, first_sample);
}

}  // namespace sweep_internal

State run_reference(const Sweep& sweep, ReferenceKind kind, std::uint64_t seed, double t_start, double t_end,
                    int threads, int rank, int ranks, const Broadcast& broadcast,
                    const std::function<void(long, long)>& progress) {
  if (ranks > 1 && !broadcast) throw Error("run_reference: several ranks need a broadcast");
  const auto& ref = kind == ReferenceKind::ode ? sweep.ode_reference : sweep.sde_reference;
  if (!ref) throw Error("run_reference: the sweep has no " + to_string(kind) + " reference");
  const BuildContext context{sweep.schedule, sweep.base_dir};
  json grid = ref->grid;
  grid["t_start"] = t_start;
  grid["t_end"] = t_end;
  const std::vector<double> times =
      grid_registry().create(grid, join_path(ref->path, "grid"), context)->times(*sweep.schedule);
  State x = sweep_initial_state(sweep, seed, times.front());
  const long chunks = (sweep.batch + kReferenceChunk - 1) / kReferenceChunk;
  std::vector<long> my_chunks;
  long my_rows = 0;
  for (long c = 0; c < chunks; ++c)
    if (c % ranks == rank) {
      my_chunks.push_back(c);
      my_rows += std::min(kReferenceChunk, sweep.batch - c * kReferenceChunk);
    }
  std::atomic<long> rows_done{0};
  std::mutex progress_mutex;
  if (progress) progress(0, my_rows);
  parallel_for(my_chunks.size(), threads, [&](std::size_t j) {
    const long r0 = my_chunks[j] * kReferenceChunk;
    const long rows = std::min(kReferenceChunk, sweep.batch - r0);
    auto solver = solver_registry().create(ref->solver, join_path(ref->path, "solver"), context);
    auto noise = make_noise(sweep, seed, static_cast<std::uint64_t>(r0));
    State xc = x.middleRows(r0, rows);
    DriverOptions options;
    options.first_row = r0;  // per-sample conditioning follows the chunk's rows
    const Summary summary = integrate(*solver, *sweep.schedule, *sweep.model, times, xc, noise.get(), {}, options);
    if (kind == ReferenceKind::sde && summary.draws > 0)
      throw Error(ref->path + ": the stochastic reference drew independent normals instead of using the path");
    x.middleRows(r0, rows) = xc;
    if (progress) {
      std::lock_guard<std::mutex> lock(progress_mutex);
      progress(rows_done += rows, my_rows);
    }
  });
  if (ranks > 1) {
    // Rows are contiguous (row-major), so a chunk is one block of doubles.
    for (long c = 0; c < chunks; ++c) {
      const long r0 = c * kReferenceChunk;
      const long rows = std::min(kReferenceChunk, sweep.batch - r0);
      broadcast(x.data() + r0 * x.cols(), static_cast<std::size_t>(rows * x.cols()), static_cast<int>(c % ranks));
    }
  }
  return x;
}

ordered_json run_cell(const Sweep& sweep, const SweepCell& cell, const State* reference) {
  const BuildContext context{sweep.schedule, sweep.base_dir};
  ordered_json line;
  line["key"] = cell.key;
  line["sweep"] = sweep.hash;
  line["cell"] = cell.index;
  line["label"] = cell.label;
  line["solver"] = cell.solver;
  line["grid_label"] = cell.grid_label;
  line["grid"] = cell.grid;
  line["steps"] = cell.steps;
  line["tolerance"] = cell.tolerance ? ordered_json(*cell.tolerance) : ordered_json(nullptr);
  line["seed"] = cell.seed;
  line["stochastic"] = cell.stochastic;
  line["adaptive"] = cell.adaptive;
  line["order"] = cell.order;
  line["strong_order"] = std::isfinite(cell.strong_order) ? ordered_json(cell.strong_order) : ordered_json(nullptr);

  State x = sweep_initial_state(sweep, cell.seed, cell.times.front());
  auto solver = solver_registry().create(cell.solver_config, "solver", context);
  auto noise = make_noise(sweep, cell.seed, 0);
  Summary summary;
  std::string error;
  try {
    summary = integrate(*solver, *sweep.schedule, cell.model ? *cell.model : *sweep.model, cell.times, x, noise.get());
  } catch (const Error& e) {
    error = e.what();
  }
  line["status"] = error.empty() ? "ok" : "failed";
  if (!error.empty()) {
    line["error"] = error;
    return line;
  }
  line["nfe"] = summary.nfe;
  line["network_rows"] = summary.network_rows;
  // Model evaluations per sample: NFE itself, except for solvers that step each sample on
  // its own, whose NFE counts every sample's evaluations.
  line["evals_per_sample"] = solver->traits().per_sample_steps
                                 ? static_cast<double>(summary.nfe) / static_cast<double>(sweep.batch)
                                 : static_cast<double>(summary.nfe);
  line["accepted"] = summary.accepted;
  line["rejected"] = summary.rejected;
  line["draws"] = summary.draws;
  line["seconds"] = summary.seconds;
  // A stochastic cell is on the reference's Brownian path when all its noise came from the
  // tree (no independent normal draws): only then is its strong error defined.
  const bool on_path = !cell.stochastic || (sweep.brownian_tree && summary.draws == 0);
  if (cell.stochastic) line["on_path"] = on_path;
  const State* used_reference = on_path ? reference : nullptr;
  line["reference"] = used_reference == nullptr ? ordered_json(nullptr)
                                                : ordered_json(cell.stochastic ? "sde" : "ode");
  json values = json::object();
  ModelRows rows;
  rows.inputs = sweep.cond && !sweep.cond->empty() ? sweep.cond.get() : nullptr;
  const MetricInput input{sweep.base_model ? *sweep.base_model : *sweep.model, x, used_reference,
                          rows.inputs != nullptr ? &rows : nullptr};
  for (const auto& metric : sweep.metrics) metric->compute(input, values);
  ordered_json metrics = ordered_json::object();
  for (const auto& item : values.items()) metrics[item.key()] = item.value();
  line["metrics"] = metrics;
  return line;
}

// ---------------------------------------------------------------------------
// The run loop.

namespace {

}  // namespace

SweepRunSummary run_sweep(const Sweep& sweep, const std::string& out, const SweepRunOptions& options) {
  if (options.threads < 1 || options.threads > 1024) throw Error("run_sweep: threads must be between 1 and 1024");
  if (options.shards < 1 || options.shard < 0 || options.shard >= options.shards)
    throw Error("run_sweep: the shard must be i/n with 0 <= i < n");
  if (options.ranks < 1 || options.rank < 0 || options.rank >= options.ranks)
    throw Error("run_sweep: the rank must lie in [0, ranks)");
  if (options.ranks > 1 && (!options.all_ok || !options.broadcast || !options.next_task))
    throw Error("run_sweep: several ranks need all_ok, broadcast and next_task");
  const auto start = std::chrono::steady_clock::now();
  auto sync = [&](bool ok) { return options.ranks > 1 ? options.all_ok(ok) : ok; };

  // 1. Rank 0 prepares the file (folds in what an interrupted run left).
  std::exception_ptr error;
  if (options.rank == 0) {
    try {
      prepare_output(sweep, out, options);
    } catch (...) {
      error = std::current_exception();
    }
  }
  if (!sync(!error)) {
    if (error) std::rethrow_exception(error);
    throw Error("rank 0 could not prepare " + out);
  }

  // 2. Everyone reads the same file and so finds the same pending cells.
  std::set<std::string> done;
  for (const auto& line : read_results(out).lines) done.insert(line["key"].get<std::string>());
  sync(true);  // nobody appends before everyone has read

  SweepRunSummary summary;
  summary.cells = static_cast<long>(sweep.cells.size());
  std::vector<const SweepCell*> pending;
  for (const auto& cell : sweep.cells) {
    if (cell.index % static_cast<std::size_t>(options.shards) != static_cast<std::size_t>(options.shard)) continue;
    ++summary.in_shard;
    if (done.count(cell.key) != 0) {
      ++summary.already_done;
      continue;
    }
    pending.push_back(&cell);
  }
  // Costliest cells first: the threads (and ranks) then finish together, with the short
  // cells filling in at the end. Results do not depend on the order; ties keep cell order,
  // so every rank sees the same list.
  std::stable_sort(pending.begin(), pending.end(),
                   [](const SweepCell* a, const SweepCell* b) { return a->cost > b->cost; });

  // 3. The references the pending cells need: (kind, seed, t_start, t_end). Every rank
  //    makes the same calls, each integrating its share of the chunks.
  using RefKey = std::tuple<int, std::uint64_t, double, double>;
  std::map<RefKey, State> references;
  bool uses_reference = false;
  for (const auto& m : sweep.metrics) uses_reference = uses_reference || m->uses_reference();
  auto ref_key = [](const SweepCell& c) {
    return RefKey{c.stochastic ? 1 : 0, c.seed, c.times.front(), c.times.back()};
  };
  if (uses_reference) {
    for (const SweepCell* c : pending)
      if (c->stochastic ? sweep.sde_reference.has_value() : sweep.ode_reference.has_value())
        references.emplace(ref_key(*c), State());
    const bool report = options.rank == 0 && options.ranks == 1 && options.progress != ProgressStyle::quiet;
    long k = 0;
    for (auto& [key, state] : references) {
      const bool sde = std::get<0>(key) == 1;
      std::ostringstream label;
      label << "reference " << ++k << "/" << references.size() << " (" << (sde ? "sde" : "ode") << ", seed "
            << std::get<1>(key) << ")";
      ProgressReporter reporter(label.str(), report ? options.progress : ProgressStyle::quiet, std::cerr);
      const auto tick = [&](long done, long rows) {
        reporter.update(rows > 0 ? static_cast<double>(done) / static_cast<double>(rows) : 1.0,
                        std::to_string(done) + "/" + std::to_string(rows) + " rows");
      };
      state = run_reference(sweep, sde ? ReferenceKind::sde : ReferenceKind::ode, std::get<1>(key), std::get<2>(key),
                            std::get<3>(key), options.threads, options.rank, options.ranks, options.broadcast, tick);
      reporter.finish(std::to_string(state.rows()) + " rows");
    }
  }

  // 4. The cells, side by side; each line is appended the moment its cell is done.
  const std::string my_file = options.rank == 0 ? out : rank_file(out, options.rank, options.ranks);
  {
    LineAppender appender(my_file);
    double total_cost = 0;
    for (const SweepCell* c : pending) total_cost += c->cost;
    const bool report = options.rank == 0 && options.ranks == 1 && !pending.empty();
    ProgressReporter progress("cells", report ? options.progress : ProgressStyle::quiet, std::cerr);
    std::mutex progress_mutex;
    long cells_done = 0;
    double cost_done = 0;
    const auto total_cells = std::to_string(pending.size());
    std::atomic<long> failed{0}, ran{0};
    // Threads (and, through next_task, ranks) take the next pending cell as they finish one,
    // so long and short cells balance out.
    std::atomic<long> local_next{0};
    std::mutex next_mutex;
    auto next = [&]() -> long {
      if (options.ranks == 1) return local_next.fetch_add(1);
      std::lock_guard<std::mutex> lock(next_mutex);
      return options.next_task();
    };
    drain(options.threads, static_cast<long>(pending.size()), next, [&](long j) {
      const SweepCell& cell = *pending[static_cast<std::size_t>(j)];
      const State* reference = nullptr;
      auto it = references.find(ref_key(cell));
      if (it != references.end()) reference = &it->second;
      const ordered_json line = run_cell(sweep, cell, reference);
      if (line["status"] != "ok") ++failed;
      appender.append(line.dump());
      ++ran;
      std::lock_guard<std::mutex> lock(progress_mutex);
      cost_done += cell.cost;
      progress.update(cost_done / total_cost, std::to_string(++cells_done) + "/" + total_cells + " cells");
    });
    if (report) progress.finish(std::to_string(cells_done) + "/" + total_cells + " cells");
    summary.ran = ran.load();
    summary.failed = failed.load();
  }

  // 5. Rank 0 folds the other ranks' lines into the file.
  if (options.ranks > 1) {
    sync(true);
    if (options.rank == 0) {
      LineAppender appender(out);
      for (int r = 1; r < options.ranks; ++r) {
        const std::string f = rank_file(out, r, options.ranks);
        const ResultsFile file = read_results(f);
        for (const auto& line : file.lines) appender.append(line.dump());
        std::remove(f.c_str());
      }
    }
    sync(true);
  }
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace diffsde
