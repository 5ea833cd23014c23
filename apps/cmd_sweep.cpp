// `diffsde sweep [SWEEP.json] --out results.jsonl [--resume] [--force] [--threads N] [--shard i/n]`
// `diffsde merge a.jsonl b.jsonl ... --out all.jsonl`
//
// Under `mpirun -n K` (in a build with DIFFSDE_WITH_MPI) the ranks share the pending
// cells: rank 0 appends to the results file, the others to FILE.rank-R-of-K, which rank 0
// folds into the file when all are done (see docs/sweeps.md).
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#ifdef DIFFSDE_HAVE_MPI
#include <mpi.h>
#endif

#include "commands.hpp"
#include "diffsde/error.hpp"
#include "diffsde/io.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/sweep.hpp"

namespace diffsde::cli {

namespace {

using nlohmann::json;

// The number of processes an MPI launcher started, from its environment (1: none).
int launched_ranks() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"}) {
    const char* v = std::getenv(var);
    if (v != nullptr && std::atoi(v) > 0) return std::atoi(v);
  }
  return 1;
}

// MPI for the length of one sweep command, when an MPI launcher started us.
class MpiSession {
 public:
  MpiSession() {
#ifdef DIFFSDE_HAVE_MPI
    if (launched_ranks() > 1 || std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr) {
      // Worker threads take cells from the shared counter, one thread at a time.
      MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &thread_level_);
      active_ = true;
      MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
      MPI_Comm_size(MPI_COMM_WORLD, &size_);
      // The cell counter: one long on rank 0, taken by atomic fetch-and-add.
      MPI_Win_allocate(rank_ == 0 ? static_cast<MPI_Aint>(sizeof(long)) : 0, sizeof(long), MPI_INFO_NULL,
                       MPI_COMM_WORLD, &counter_base_, &counter_);
      if (rank_ == 0) *counter_base_ = 0;
      MPI_Barrier(MPI_COMM_WORLD);
    }
#else
    if (launched_ranks() > 1)
      throw ConfigError("mpirun", "this diffsde was built without MPI (configure with -DDIFFSDE_WITH_MPI=ON); "
                                  "run one process, or split the cells with --shard i/n and merge");
#endif
  }
  ~MpiSession() {
#ifdef DIFFSDE_HAVE_MPI
    if (active_) {
      MPI_Win_free(&counter_);
      MPI_Finalize();
    }
#endif
  }
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  // True when every rank passes true.
  bool all_ok(bool ok) const {
#ifdef DIFFSDE_HAVE_MPI
    int local = ok ? 1 : 0, global = 0;
    MPI_Allreduce(&local, &global, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    return global != 0;
#else
    return ok;
#endif
  }
  // True when threads may take cells while MPI is in use.
  bool threads_ok() const {
#ifdef DIFFSDE_HAVE_MPI
    return !active_ || thread_level_ >= MPI_THREAD_SERIALIZED;
#else
    return true;
#endif
  }
  // 0, 1, 2, ... across all ranks.
  long next_task() const {
#ifdef DIFFSDE_HAVE_MPI
    long one = 1, previous = 0;
    MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, counter_);
    MPI_Fetch_and_op(&one, &previous, MPI_LONG, 0, 0, MPI_SUM, counter_);
    MPI_Win_unlock(0, counter_);
    return previous;
#else
    return 0;
#endif
  }
  void broadcast(double* data, std::size_t count, int root) const {
#ifdef DIFFSDE_HAVE_MPI
    // In pieces below INT_MAX elements, MPI's count type.
    constexpr std::size_t kPiece = std::size_t{1} << 30;
    for (std::size_t done = 0; done < count; done += kPiece)
      MPI_Bcast(data + done, static_cast<int>(std::min(kPiece, count - done)), MPI_DOUBLE, root, MPI_COMM_WORLD);
#else
    (void)data;
    (void)count;
    (void)root;
#endif
  }
  // Ends every rank (a rank failed after the work was split: the others would wait).
  [[noreturn]] void abort(int code) const {
#ifdef DIFFSDE_HAVE_MPI
    MPI_Abort(MPI_COMM_WORLD, code);
#endif
    std::exit(code);
  }

 private:
  bool active_ = false;
  int rank_ = 0, size_ = 1;
#ifdef DIFFSDE_HAVE_MPI
  int thread_level_ = MPI_THREAD_SINGLE;
  MPI_Win counter_ = MPI_WIN_NULL;
  long* counter_base_ = nullptr;
#endif
};

std::pair<int, int> parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  std::size_t used_i = 0, used_n = 0;
  int i = -1, n = 0;
  try {
    if (slash != std::string::npos) {
      i = std::stoi(text.substr(0, slash), &used_i);
      n = std::stoi(text.substr(slash + 1), &used_n);
    }
  } catch (const std::exception&) {
    i = -1;
  }
  if (slash == std::string::npos || used_i != slash || used_n != text.size() - slash - 1 || n < 1 || i < 0 || i >= n)
    throw ConfigError("--shard", "expected i/n with 0 <= i < n (e.g. 0/4), got '" + text + "'");
  return {i, n};
}

struct SweepOptions {
  std::string config_path, out_path, shard;
  bool resume = false, force = false, print_config = false, quiet = false;
  int threads = 1;
};

int run_sweep_command(const SweepOptions& o) {
  const json config = o.config_path.empty() ? default_sweep_config() : read_json_file(o.config_path);
  if (o.print_config) {
    std::cout << config.dump(2) << "\n";
    return 0;
  }
  if (o.out_path.empty()) throw ConfigError("--out", "is required (the results file, JSON lines)");
  if (o.threads < 1 || o.threads > 1024) throw ConfigError("--threads", "must be between 1 and 1024");
  const auto [shard, shards] = o.shard.empty() ? std::pair<int, int>{0, 1} : parse_shard(o.shard);

  MpiSession mpi;
  Sweep sweep;
  try {
    sweep = parse_sweep(config, o.config_path.empty() ? "" : parent_dir(o.config_path));
  } catch (const ConfigError& e) {
    throw ConfigError(e.path(), e.message() + (o.config_path.empty() ? "" : " (in " + o.config_path + ")"));
  }
  const bool talk = mpi.rank() == 0 && !o.quiet;
  if (talk) {
    std::cout << "sweep " << sweep.hash << ": " << sweep.cells.size() << " cells"
              << (o.config_path.empty() ? " (embedded default sweep)" : " from " + o.config_path);
    if (shards > 1) std::cout << ", shard " << shard << "/" << shards;
    std::cout << ", " << o.threads << " thread(s)";
    if (mpi.size() > 1) std::cout << " on each of " << mpi.size() << " ranks";
    std::cout << "\n";
  }
  SweepRunOptions options;
  options.threads = o.threads;
  options.shard = shard;
  options.shards = shards;
  options.resume = o.resume;
  options.force = o.force;
  options.rank = mpi.rank();
  options.ranks = mpi.size();
  options.all_ok = [&mpi](bool ok) { return mpi.all_ok(ok); };
  options.broadcast = [&mpi](double* data, std::size_t count, int root) { mpi.broadcast(data, count, root); };
  options.next_task = [&mpi] { return mpi.next_task(); };
  if (o.threads > 1 && !mpi.threads_ok())
    throw ConfigError("--threads", "this MPI library cannot be called from several threads; use --threads 1 with mpirun");
  options.progress = progress_style(o.quiet);
  options.log = talk ? &std::cerr : nullptr;

  SweepRunSummary summary;
  if (mpi.size() > 1) {
    // Once the ranks share the work, a failure on one rank must stop them all.
    try {
      summary = run_sweep(sweep, o.out_path, options);
    } catch (const ConfigError& e) {
      std::cerr << "diffsde: config error (rank " << mpi.rank() << "): " << e.what() << "\n";
      mpi.abort(kExitBadInput);
    } catch (const IoError& e) {
      std::cerr << "diffsde: file error (rank " << mpi.rank() << "): " << e.what() << "\n";
      mpi.abort(kExitBadInput);
    } catch (const std::exception& e) {
      std::cerr << "diffsde: error (rank " << mpi.rank() << "): " << e.what() << "\n";
      mpi.abort(kExitRunFailed);
    }
  } else {
    summary = run_sweep(sweep, o.out_path, options);
  }
  if (talk) {
    std::cout << "ran " << summary.ran << " cell(s)";
    if (mpi.size() > 1) std::cout << " on rank 0 (of " << summary.in_shard - summary.already_done << " run by all ranks)";
    if (summary.failed > 0) std::cout << ", " << summary.failed << " failed (status \"failed\" in the file)";
    if (summary.already_done > 0) std::cout << "; " << summary.already_done << " were already done";
    std::cout << "; " << std::fixed << std::setprecision(2) << summary.seconds << " s; results in " << o.out_path << "\n";
  }
  return 0;
}

int run_merge_command(const std::vector<std::string>& inputs, const std::string& out) {
  const std::vector<json> lines = merge_results(inputs, &std::cerr);
  std::string text;
  for (const auto& line : lines) text += line.dump() + "\n";
  write_file_atomic(out, text);
  std::cout << "merged " << lines.size() << " cell(s) from " << inputs.size() << " file(s) into " << out << "\n";
  return 0;
}

}  // namespace

void add_sweep_command(CLI::App& app, Commands& commands) {
  auto* cmd = app.add_subcommand("sweep", "Run a JSON-configured sweep of solvers (or the embedded default)");
  auto o = std::make_shared<SweepOptions>();
  cmd->add_option("config", o->config_path, "Sweep file (JSON); omitted: the embedded default sweep");
  cmd->add_option("--out", o->out_path, "Results file: one JSON line per finished cell");
  cmd->add_flag("--resume", o->resume, "Keep the cells already in --out and run only the missing ones");
  cmd->add_flag("--force", o->force, "Start over even if --out already holds results");
  cmd->add_option("--threads", o->threads, "Cells run side by side (default 1)");
  cmd->add_option("--shard", o->shard, "Run only shard i of n (cells with index % n == i), e.g. 0/4");
  cmd->add_flag("--print-config", o->print_config, "Print the sweep that would run, then exit");
  cmd->add_flag("--quiet", o->quiet, "No progress bar and no summary lines");
  commands.push_back({cmd, [o] { return run_sweep_command(*o); }});
}

void add_merge_command(CLI::App& app, Commands& commands) {
  auto* cmd = app.add_subcommand("merge", "Merge results files of one sweep (shards, ranks) into one");
  struct Options {
    std::vector<std::string> inputs;
    std::string out;
  };
  auto o = std::make_shared<Options>();
  cmd->add_option("inputs", o->inputs, "Results files (JSON lines)")->required();
  cmd->add_option("--out", o->out, "The merged file (written atomically)")->required();
  commands.push_back({cmd, [o] { return run_merge_command(o->inputs, o->out); }});
}

}  // namespace diffsde::cli
