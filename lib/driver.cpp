#include "diffsde/driver.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "diffsde/error.hpp"

namespace diffsde {

NoiseSource& SolverContext::noise() {
  if (noise_ == nullptr) throw Error("this solver draws noise, but the run has no noise source");
  return *noise_;
}

std::string Summary::brief_report() const {
  std::ostringstream os;
  os << solver << ": " << steps << " steps, " << nfe << " NFE, " << accepted << " accepted, "
     << rejected << " rejected, " << draws << " draws, " << seconds << " s";
  if (threads > 1) os << ", " << threads << " threads";
  return os.str();
}

void TrajectoryObserver::on_start(double t, const State& x) {
  times_.assign(1, t);
  states_.assign(1, x);
}

void TrajectoryObserver::on_step(long /*step*/, double t, const State& x) {
  times_.push_back(t);
  states_.push_back(x);
}

bool DriverOptions::is_valid(std::string* error) const {
  if (threads < 0 || threads > kMaxThreads) {
    if (error != nullptr)
      *error = "threads must be between 0 (all cores) and " + std::to_string(kMaxThreads) +
               ", got " + std::to_string(threads);
    return false;
  }
  return true;
}

namespace {

// First row with a non-finite entry, or -1.
long first_non_finite_row(const State& x) {
  if (x.allFinite()) return -1;
  for (Eigen::Index r = 0; r < x.rows(); ++r)
    if (!x.row(r).allFinite()) return static_cast<long>(r);
  return -1;
}

// Grid interval i for rows row0 .. row0 + x.rows() - 1 of the batch: a solver's Error
// becomes a NumericalError naming the step, and so does a non-finite result (naming the
// sample by its row in the whole batch).
void do_step(Solver& solver, SolverContext& context, const std::string& name,
             const std::vector<double>& times, std::size_t i, State& x, long row0,
             bool check_finite) {
  try {
    solver.step(context, i, times[i], times[i + 1], x);
  } catch (const NumericalError&) {
    throw;
  } catch (const Error& e) {
    throw NumericalError(static_cast<long>(i), times[i], e.what());
  }
  if (check_finite) {
    const long row = first_non_finite_row(x);
    if (row >= 0)
      throw NumericalError(static_cast<long>(i), times[i],
                           "solver '" + name + "' produced a non-finite value in sample " +
                               std::to_string(row0 + row) + " stepping to t = " +
                               format_double(times[i + 1]));
  }
}

// Runs job(k) for k = 0 .. n - 1 once per call of run(): job(0) on the calling thread,
// the others on threads that live as long as this object, so that a run of many rounds
// (one per step) starts its threads once. job must not throw.
class ForkJoin {
 public:
  ForkJoin(int n, std::function<void(int)> job) : job_(std::move(job)) {
    workers_.reserve(static_cast<std::size_t>(n - 1));
    try {
      for (int k = 1; k < n; ++k) workers_.emplace_back([this, k] { work(k); });
    } catch (...) {  // a thread that could not start: stop those that did
      stop();
      throw;
    }
  }
  ForkJoin(const ForkJoin&) = delete;
  ForkJoin& operator=(const ForkJoin&) = delete;
  ~ForkJoin() { stop(); }

  void run() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++round_;
      pending_ = static_cast<int>(workers_.size());
    }
    start_.notify_all();
    job_(0);
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return pending_ == 0; });
  }

 private:
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    start_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  void work(int k) {
    long seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        start_.wait(lock, [&] { return stop_ || round_ != seen; });
        if (stop_) return;
        seen = round_;
      }
      job_(k);
      bool last;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        last = --pending_ == 0;
      }
      if (last) done_.notify_one();
    }
  }

  std::function<void(int)> job_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable start_, done_;
  long round_ = 0;
  int pending_ = 0;
  bool stop_ = false;
};

// One row block of a split run: its rows, solver, noise, context and state, and how
// it ended.
struct Block {
  Eigen::Index row0 = 0, rows = 0;
  std::unique_ptr<Solver> own_solver;  // clones; block 0 uses the caller's solver
  Solver* solver = nullptr;
  std::unique_ptr<NoiseSource> noise;
  std::unique_ptr<SolverContext> context;
  State x;
  std::uint64_t draws_before = 0;
  // The step that threw (-1: init), or none; the first failure ends the block's run.
  long failed_step = std::numeric_limits<long>::max();
  std::exception_ptr error;
};

int resolve_threads(int threads) {
  if (threads != 0) return threads;
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

// The row blocks of a split run, or an empty vector where the run cannot be split.
std::vector<Block> make_blocks(Solver& solver, const SolverTraits& traits,
                               const Schedule& schedule, const Model& model, const State& x,
                               NoiseSource* noise, int threads) {
  std::vector<Block> blocks;
  const Eigen::Index batch = x.rows();
  const auto n = static_cast<Eigen::Index>(std::min<Eigen::Index>(threads, batch));
  if (n <= 1 || traits.batch_coupled) return blocks;
  blocks.resize(static_cast<std::size_t>(n));
  for (Eigen::Index k = 0; k < n; ++k) {
    Block& b = blocks[static_cast<std::size_t>(k)];
    b.row0 = batch * k / n;
    b.rows = batch * (k + 1) / n - b.row0;
    if (k == 0) {
      b.solver = &solver;
    } else {
      b.own_solver = solver.clone();
      if (!b.own_solver) return {};
      b.solver = b.own_solver.get();
    }
    if (noise != nullptr) {
      b.noise = noise->row_block(static_cast<std::uint64_t>(batch),
                                 static_cast<std::uint64_t>(b.row0),
                                 static_cast<std::uint64_t>(b.rows));
      if (!b.noise) return {};
      b.draws_before = b.noise->draws();
    }
    b.context = std::make_unique<SolverContext>(schedule, model, b.noise.get());
    b.x = x.middleRows(b.row0, b.rows);
  }
  return blocks;
}

// The first failure in the order of a one-thread run: lowest step, then lowest block.
const Block* first_failure(const std::vector<Block>& blocks) {
  const Block* first = nullptr;
  for (const Block& b : blocks)
    if (b.error && (first == nullptr || b.failed_step < first->failed_step)) first = &b;
  return first;
}

using Clock = std::chrono::steady_clock;

Summary integrate_split(std::vector<Block>& blocks, const SolverTraits& traits,
                        const std::vector<double>& times, State& x, NoiseSource* noise,
                        const std::vector<Observer*>& observers, const DriverOptions& options,
                        Summary summary, Clock::time_point start) {
  const std::size_t steps = times.size() - 1;
  const bool lockstep = !observers.empty();

  // What job(k) does in the current round: init (kInit) and, without observers, every
  // step; with observers one step (the round's step index).
  constexpr std::size_t kInit = std::numeric_limits<std::size_t>::max();
  std::size_t round_step = kInit;
  auto init = [&](Block& b) {
    try {
      b.solver->init(*b.context, b.x, times);
    } catch (...) {
      b.failed_step = -1;
      b.error = std::current_exception();
    }
  };
  auto step = [&](Block& b, std::size_t i) {
    try {
      do_step(*b.solver, *b.context, traits.name, times, i, b.x, static_cast<long>(b.row0),
              options.check_finite);
    } catch (...) {
      b.failed_step = static_cast<long>(i);
      b.error = std::current_exception();
    }
  };
  auto job = [&](int k) {
    Block& b = blocks[static_cast<std::size_t>(k)];
    if (b.error) return;
    if (!lockstep) {
      init(b);
      for (std::size_t i = 0; i < steps && !b.error; ++i) step(b, i);
    } else if (round_step == kInit) {
      init(b);
    } else {
      step(b, round_step);
      x.middleRows(b.row0, b.rows) = b.x;  // disjoint rows of the caller's state
    }
  };

  for (auto* o : observers) o->on_start(times.front(), x);
  {
    ForkJoin pool(static_cast<int>(blocks.size()), job);
    pool.run();  // init (and, without observers, the whole grid)
    for (std::size_t i = 0; lockstep && i < steps && first_failure(blocks) == nullptr; ++i) {
      round_step = i;
      pool.run();
      if (first_failure(blocks) == nullptr)
        for (auto* o : observers) o->on_step(static_cast<long>(i), times[i + 1], x);
    }
  }
  if (!lockstep)
    for (const Block& b : blocks) x.middleRows(b.row0, b.rows) = b.x;
  if (const Block* failed = first_failure(blocks)) std::rethrow_exception(failed->error);

  summary.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  summary.steps = static_cast<long>(steps);
  summary.threads = static_cast<int>(blocks.size());
  const Block& b0 = blocks.front();
  summary.nfe = b0.context->nfe();
  summary.accepted = b0.context->accepted();
  summary.rejected = b0.context->rejected();
  if (traits.per_sample_steps) {
    for (std::size_t k = 1; k < blocks.size(); ++k) {
      summary.nfe += blocks[k].context->nfe();
      summary.accepted += blocks[k].context->accepted();
      summary.rejected += blocks[k].context->rejected();
    }
  }
  if (!traits.adaptive) summary.accepted = summary.steps;
  if (noise != nullptr) {
    summary.draws = b0.noise->draws() - b0.draws_before;
    noise->skip(summary.draws);
  }
  for (auto* o : observers) o->on_finish(summary);
  return summary;
}

}  // namespace

Summary integrate(Solver& solver, const Schedule& schedule, const Model& model,
                  const std::vector<double>& times, State& x, NoiseSource* noise,
                  const std::vector<Observer*>& observers, const DriverOptions& options) {
  const SolverTraits traits = solver.traits();
  if (times.size() < 2) throw Error("integrate: the time grid needs at least 2 times");
  if (x.cols() != model.dim())
    throw Error("integrate: the state has " + std::to_string(x.cols()) + " columns but model '" +
                model.name() + "' has dimension " + std::to_string(model.dim()));
  if (traits.stochastic && noise == nullptr)
    throw Error("integrate: solver '" + traits.name + "' is stochastic and needs a noise source");
  std::string invalid;
  if (!options.is_valid(&invalid)) throw Error("integrate: " + invalid);

  Summary summary;
  summary.solver = traits.name;
  summary.t_start = times.front();
  summary.t_end = times.back();

  const auto start = Clock::now();
  std::vector<Block> blocks =
      make_blocks(solver, traits, schedule, model, x, noise, resolve_threads(options.threads));
  if (!blocks.empty())
    return integrate_split(blocks, traits, times, x, noise, observers, options, summary, start);

  SolverContext context(schedule, model, noise);
  const std::uint64_t draws_before = noise != nullptr ? noise->draws() : 0;
  for (auto* o : observers) o->on_start(times.front(), x);
  solver.init(context, x, times);
  for (std::size_t i = 0; i + 1 < times.size(); ++i) {
    do_step(solver, context, traits.name, times, i, x, 0, options.check_finite);
    for (auto* o : observers) o->on_step(static_cast<long>(i), times[i + 1], x);
  }
  summary.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  summary.steps = static_cast<long>(times.size() - 1);
  summary.nfe = context.nfe();
  summary.accepted = traits.adaptive ? context.accepted() : summary.steps;
  summary.rejected = context.rejected();
  summary.draws = noise != nullptr ? noise->draws() - draws_before : 0;
  for (auto* o : observers) o->on_finish(summary);
  return summary;
}

}  // namespace diffsde
