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
#include <optional>
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

Cancelled::Cancelled(long step, double t)
    : Error("the run was cancelled after step " + std::to_string(step) + " (t = " + format_double(t) + ")"),
      step_(step),
      t_(t) {}

void TrajectoryObserver::on_start(double t, const State& x) {
  times_.assign(1, t);
  states_.assign(1, x);
}

void TrajectoryObserver::on_step(long /*step*/, double t, const State& x) {
  times_.push_back(t);
  states_.push_back(x);
}

bool DriverOptions::is_valid(std::string* error) const {
  if (first_row < 0) {
    if (error != nullptr) *error = "first_row must be >= 0, got " + std::to_string(first_row);
    return false;
  }
  if (threads < 0 || threads > kMaxThreads) {
    if (error != nullptr)
      *error = "threads must be between 0 (all cores) and " + std::to_string(kMaxThreads) +
               ", got " + std::to_string(threads);
    return false;
  }
  return true;
}

void check_solver_grid(const SolverTraits& traits, const Schedule& schedule,
                       const std::vector<double>& times) {
  check_solver_grid(traits, schedule, times, nullptr);
}

void check_solver_grid(const SolverTraits& traits, const Schedule& schedule, const std::vector<double>& times,
                       const Model* model) {
  const std::size_t n = times.size();
  const auto interval = [&](std::size_t i) {
    return "interval " + std::to_string(i) + " from t = " + format_double(times[i]) +
           " to t = " + format_double(times[i + 1]);
  };
  if (traits.needs_decreasing_grid)
    for (std::size_t i = 0; i + 1 < n; ++i)
      if (!(times[i + 1] < times[i]))  // a NaN time fails too
        throw Error(traits.name + (traits.stochastic ? " with noise" : "") +
                    " runs backwards in time: the grid must decrease (" + interval(i) + ")");
  if (!traits.any_schedule && !schedule.variance_preserving())
    throw Error(traits.name + " assumes a variance-preserving schedule (alpha^2 + sigma^2 = 1) and does not run on "
                "the " + schedule.name() + " schedule; see docs/math.md for the solvers that run on every schedule");
  if (n < 2) return;
  // sigma is nondecreasing and alpha nonincreasing in t (log alpha_bar = -int_0^t beta,
  // beta >= 0), so the earliest step start decides for sigma and the latest for alpha: one
  // evaluation per grid, not per grid time (which would cost a few percent of a batch-1
  // run). The second passes only name the first offending interval.
  double earliest = times[0], latest = times[0];
  bool nan = false;
  for (std::size_t i = 0; i + 1 < n; ++i) {
    nan = nan || std::isnan(times[i]);
    earliest = std::min(earliest, times[i]);
    latest = std::max(latest, times[i]);
  }
  // A step from alpha = 0 (lambda = -inf, pure noise): only the first, by a solver that
  // can take it, with a model that predicts x0 itself.
  if (nan || schedule.alpha(latest) == 0)
    for (std::size_t i = 0; i + 1 < n; ++i) {
      if (schedule.alpha(times[i]) != 0) continue;
      const bool model_can = model != nullptr && model->has_data_prediction();
      if (i == 0 && traits.starts_from_pure_noise && model_can) continue;
      const std::string where = traits.name + " cannot start a step at t = " + format_double(times[i]) + " (" +
                                interval(i) + "): alpha = 0 there (" +
                                (schedule.variance_preserving() ? std::string("zero terminal SNR")
                                                                : schedule.name()) +
                                "), lambda = -inf, ";
      const std::string otherwise =
          schedule.variance_preserving()
              ? "start the grid below the schedule's last step, or give the schedule `final_alpha_bar` (diffusers "
                "uses 2^-24)"
              : "start the grid below it (t_start)";
      if (i > 0)
        throw Error(where + "which only a grid's first time may be; " + otherwise);
      if (!traits.starts_from_pure_noise)
        throw Error(where + "and it cannot take a first step from pure noise (ddim and ddpm can, with a model that "
                            "predicts x0, v or velocity); " + otherwise);
      throw Error(where + "where eps = x / sigma says nothing about x0: a first step from pure noise needs a model "
                          "that predicts x0 itself (prediction x0, v or velocity, or an analytic model), and " +
                  (model == nullptr ? std::string("none was given") : "model '" + model->name() + "' does not") +
                  "; " + otherwise);
    }
  if (!traits.needs_positive_sigma_at_step_start) return;
  if (!nan && schedule.sigma(earliest) > 0) return;
  for (std::size_t i = 0; i + 1 < n; ++i) {
    const double sigma = schedule.sigma(times[i]);
    if (!(sigma > 0))
      throw Error(traits.name + " cannot start a step at sigma = " + format_double(sigma) + " (" +
                  interval(i) + ")");
  }
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
// the others on threads that live as long as this object, so that many rounds (one per
// step, or one per run of a reused Integrator) start their threads once. job must not
// throw.
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

  int size() const { return static_cast<int>(workers_.size()) + 1; }

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

// One row block of a split run. Its solver copy and state are kept from run to run (so a
// reused Integrator allocates nothing after its first run of a given shape); its noise
// rows, context and outcome are the current run's.
struct Block {
  Eigen::Index row0 = 0, rows = 0;
  State x0;  // the denoised prediction of the current step, for observers that want it
  std::unique_ptr<Solver> own_solver;  // a clone; block 0 uses the caller's solver
  Solver* solver = nullptr;
  State x;
  std::unique_ptr<NoiseSource> noise;
  std::optional<SolverContext> context;
  std::uint64_t draws_before = 0;
  // The step that threw (-1: init); the first failure ends the block's run.
  long failed_step = std::numeric_limits<long>::max();
  std::exception_ptr error;
};

// The first failure in the order of a one-thread run: lowest step, then lowest block.
const Block* first_failure(const std::vector<Block>& blocks) {
  const Block* first = nullptr;
  for (const Block& b : blocks)
    if (b.error && (first == nullptr || b.failed_step < first->failed_step)) first = &b;
  return first;
}

using Clock = std::chrono::steady_clock;

bool wants_denoised(const std::vector<Observer*>& observers) {
  for (const auto* o : observers)
    if (o->wants_denoised()) return true;
  return false;
}

}  // namespace

struct Integrator::Impl {
  Impl(Solver& s, const DriverOptions& o) : solver(s), options(o) {}

  // Sets up the row blocks of this run; false where the run cannot be split.
  bool prepare(const SolverTraits& traits, const Schedule& schedule, const Model& model,
               const State& x, NoiseSource* noise);
  // What thread k does in the current round.
  void job(int k);
  Summary run_split(const SolverTraits& traits, const std::vector<double>& times, State& x,
                    NoiseSource* noise, const std::vector<Observer*>& observers,
                    Summary summary, Clock::time_point start);

  Solver& solver;
  const DriverOptions options;
  std::vector<Block> blocks;
  std::unique_ptr<ForkJoin> pool;

  // The current run, for job(): init (round_step == kInit) and, without observers, every
  // step; with observers (lockstep) one step per round.
  static constexpr std::size_t kInit = std::numeric_limits<std::size_t>::max();
  const SolverTraits* traits = nullptr;
  const std::vector<double>* times = nullptr;
  State* x = nullptr;
  bool lockstep = false;
  bool denoised = false;  // observers want x0 (lockstep only)
  std::size_t round_step = kInit;
};

bool Integrator::Impl::prepare(const SolverTraits& run_traits, const Schedule& schedule,
                               const Model& model, const State& x_in, NoiseSource* noise) {
  const Eigen::Index batch = x_in.rows();
  int threads = options.threads;
  if (threads == 0) threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const Eigen::Index n = std::min<Eigen::Index>(threads, batch);
  if (n <= 1 || run_traits.batch_coupled) return false;
  if (static_cast<Eigen::Index>(blocks.size()) != n) blocks.resize(static_cast<std::size_t>(n));
  for (Eigen::Index k = 0; k < n; ++k) {
    Block& b = blocks[static_cast<std::size_t>(k)];
    b.row0 = batch * k / n;
    b.rows = batch * (k + 1) / n - b.row0;
    if (k == 0) {
      b.solver = &solver;
    } else {
      if (!b.own_solver) b.own_solver = solver.clone();
      if (!b.own_solver) return false;
      b.solver = b.own_solver.get();
    }
    b.noise.reset();
    b.draws_before = 0;
    if (noise != nullptr) {
      b.noise = noise->row_block(static_cast<std::uint64_t>(batch),
                                 static_cast<std::uint64_t>(b.row0),
                                 static_cast<std::uint64_t>(b.rows));
      if (!b.noise) return false;
      b.draws_before = b.noise->draws();
    }
    b.context.emplace(schedule, model, b.noise.get(), options.first_row + static_cast<long>(b.row0));
    b.failed_step = std::numeric_limits<long>::max();
    b.error = nullptr;
  }
  if (!pool || pool->size() != static_cast<int>(n))
    pool = std::make_unique<ForkJoin>(static_cast<int>(n), [this](int k) { job(k); });
  return true;
}

void Integrator::Impl::job(int k) {
  Block& b = blocks[static_cast<std::size_t>(k)];
  if (b.error) return;
  // Every thread copies its block in and out of the caller's state itself (disjoint rows),
  // so the copies run in parallel too.
  auto init = [&] {
    try {
      b.x = x->middleRows(b.row0, b.rows);
      b.solver->init(*b.context, b.x, *times);
    } catch (...) {
      b.failed_step = -1;
      b.error = std::current_exception();
    }
  };
  auto step = [&](std::size_t i) {
    try {
      do_step(*b.solver, *b.context, traits->name, *times, i, b.x, static_cast<long>(b.row0),
              options.check_finite);
    } catch (...) {
      b.failed_step = static_cast<long>(i);
      b.error = std::current_exception();
    }
  };
  if (!lockstep) {
    init();
    for (std::size_t i = 0; i + 1 < times->size() && !b.error; ++i) step(i);
    if (b.x.rows() == b.rows) x->middleRows(b.row0, b.rows) = b.x;
  } else if (round_step == kInit) {
    init();
    if (denoised) b.x0 = State::Zero(b.rows, x->cols());
  } else {
    if (denoised) b.context->begin_denoised(&b.x0);
    step(round_step);
    if (denoised) b.context->end_denoised();
    x->middleRows(b.row0, b.rows) = b.x;
  }
}

Summary Integrator::Impl::run_split(const SolverTraits& run_traits,
                                    const std::vector<double>& run_times, State& run_x,
                                    NoiseSource* noise, const std::vector<Observer*>& observers,
                                    Summary summary, Clock::time_point start) {
  traits = &run_traits;
  times = &run_times;
  x = &run_x;
  lockstep = !observers.empty() || static_cast<bool>(options.progress);
  denoised = wants_denoised(observers);
  round_step = kInit;
  const std::size_t steps = run_times.size() - 1;

  for (auto* o : observers) o->on_start(run_times.front(), run_x);
  pool->run();  // init (and, without observers, the whole grid)
  long cancelled = -1;
  State x0;
  if (denoised) x0 = State::Zero(run_x.rows(), run_x.cols());
  for (std::size_t i = 0; lockstep && i < steps && first_failure(blocks) == nullptr; ++i) {
    round_step = i;
    pool->run();
    if (first_failure(blocks) != nullptr) break;
    if (denoised) {
      double t_eval = std::numeric_limits<double>::quiet_NaN();
      for (const Block& b : blocks) {
        x0.middleRows(b.row0, b.rows) = b.x0;
        if (std::isnan(t_eval)) t_eval = b.context->denoised_t();
      }
      for (auto* o : observers)
        if (o->wants_denoised()) o->on_denoised(static_cast<long>(i), t_eval, x0);
    }
    for (auto* o : observers) o->on_step(static_cast<long>(i), run_times[i + 1], run_x);
    if (options.progress) {
      const Progress p{static_cast<long>(i) + 1, static_cast<long>(steps), run_times[i + 1],
                       blocks.front().context->nfe(),
                       std::chrono::duration<double>(Clock::now() - start).count()};
      if (!options.progress(p)) {
        cancelled = static_cast<long>(i);
        break;
      }
    }
  }
  const Block* failed = first_failure(blocks);
  if (failed == nullptr) {
    summary.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    summary.steps = static_cast<long>(steps);
    summary.threads = static_cast<int>(blocks.size());
    // Every block makes the whole batch's evaluations, steps and draws, except where each
    // sample steps on its own: then the blocks' counts add up.
    const std::size_t counted = run_traits.per_sample_steps ? blocks.size() : 1;
    for (const Block& b : blocks) summary.network_rows += b.context->network_rows();
    for (std::size_t k = 0; k < counted; ++k) {
      summary.nfe += blocks[k].context->nfe();
      summary.accepted += blocks[k].context->accepted();
      summary.rejected += blocks[k].context->rejected();
    }
    if (!run_traits.adaptive) summary.accepted = summary.steps;
    if (noise != nullptr) {
      summary.draws = blocks.front().noise->draws() - blocks.front().draws_before;
      noise->skip(summary.draws);
    }
  }
  // The contexts and noise rows refer to this run's arguments.
  std::exception_ptr error = failed != nullptr ? failed->error : nullptr;
  for (Block& b : blocks) {
    b.context.reset();
    b.noise.reset();
    b.error = nullptr;
  }
  if (error) std::rethrow_exception(error);
  if (cancelled >= 0) throw Cancelled(cancelled, run_times[static_cast<std::size_t>(cancelled) + 1]);
  for (auto* o : observers) o->on_finish(summary);
  return summary;
}

Integrator::Integrator(Solver& solver, const DriverOptions& options)
    : impl_(std::make_unique<Impl>(solver, options)) {
  std::string invalid;
  if (!options.is_valid(&invalid)) throw Error("integrate: " + invalid);
}

Integrator::~Integrator() = default;

Summary Integrator::run(const Schedule& schedule, const Model& model,
                        const std::vector<double>& times, State& x, NoiseSource* noise,
                        const std::vector<Observer*>& observers) {
  Solver& solver = impl_->solver;
  const DriverOptions& options = impl_->options;
  const SolverTraits traits = solver.traits();
  if (times.size() < 2) throw Error("integrate: the time grid needs at least 2 times");
  if (x.cols() != model.dim())
    throw Error("integrate: the state has " + std::to_string(x.cols()) + " columns but model '" +
                model.name() + "' has dimension " + std::to_string(model.dim()));
  if (traits.stochastic && noise == nullptr)
    throw Error("integrate: solver '" + traits.name + "' is stochastic and needs a noise source");
  check_solver_grid(traits, schedule, times, &model);

  Summary summary;
  summary.solver = traits.name;
  summary.t_start = times.front();
  summary.t_end = times.back();

  const auto start = Clock::now();
  if (impl_->prepare(traits, schedule, model, x, noise))
    return impl_->run_split(traits, times, x, noise, observers, summary, start);
  for (Block& b : impl_->blocks) {  // a run that cannot be split: drop what prepare() made
    b.context.reset();
    b.noise.reset();
  }

  SolverContext context(schedule, model, noise, options.first_row);
  const std::uint64_t draws_before = noise != nullptr ? noise->draws() : 0;
  for (auto* o : observers) o->on_start(times.front(), x);
  solver.init(context, x, times);
  const bool denoised = wants_denoised(observers);
  State x0;
  if (denoised) x0 = State::Zero(x.rows(), x.cols());
  for (std::size_t i = 0; i + 1 < times.size(); ++i) {
    if (denoised) context.begin_denoised(&x0);
    do_step(solver, context, traits.name, times, i, x, 0, options.check_finite);
    if (denoised) {
      context.end_denoised();
      for (auto* o : observers)
        if (o->wants_denoised()) o->on_denoised(static_cast<long>(i), context.denoised_t(), x0);
    }
    for (auto* o : observers) o->on_step(static_cast<long>(i), times[i + 1], x);
    if (options.progress) {
      const Progress p{static_cast<long>(i) + 1, static_cast<long>(times.size() - 1), times[i + 1], context.nfe(),
                       std::chrono::duration<double>(Clock::now() - start).count()};
      if (!options.progress(p)) throw Cancelled(static_cast<long>(i), times[i + 1]);
    }
  }
  summary.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  summary.steps = static_cast<long>(times.size() - 1);
  summary.nfe = context.nfe();
  summary.network_rows = context.network_rows();
  summary.accepted = traits.adaptive ? context.accepted() : summary.steps;
  summary.rejected = context.rejected();
  summary.draws = noise != nullptr ? noise->draws() - draws_before : 0;
  for (auto* o : observers) o->on_finish(summary);
  return summary;
}

Summary integrate(Solver& solver, const Schedule& schedule, const Model& model,
                  const std::vector<double>& times, State& x, NoiseSource* noise,
                  const std::vector<Observer*>& observers, const DriverOptions& options) {
  return Integrator(solver, options).run(schedule, model, times, x, noise, observers);
}

}  // namespace diffsde
