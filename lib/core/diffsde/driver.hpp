// The driver: runs a solver over a time grid, calling observers, and returns a
// summary of the run.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "diffsde/solver.hpp"

namespace diffsde {

// What a run cost. The counts are those of the whole batch on one thread, whatever the
// number of threads: for a split run the driver takes them from one row block (every
// block makes the same evaluations, steps and draws) or, for solvers that step each
// sample on its own (SolverTraits::per_sample_steps), adds up the blocks' counts.
struct Summary {
  std::string solver;
  long steps = 0;        // grid intervals done
  long nfe = 0;          // model evaluations (one per batch evaluation)
  long accepted = 0;     // accepted steps (adaptive solvers; = steps otherwise)
  long rejected = 0;     // rejected steps (adaptive solvers)
  std::uint64_t draws = 0;  // normal draws made from the noise source
  // Rows the network evaluated, summed over the evaluations and the batch (batch x NFE,
  // or twice that for classifier-free guidance in one batched call).
  long long network_rows = 0;
  double seconds = 0;    // wall time of the integration
  double t_start = 0, t_end = 0;
  int threads = 1;       // threads the run used (row blocks integrated side by side)
  // One line: "euler_maruyama: 50 steps, 50 NFE, 50 accepted, 0 rejected, 50 draws,
  // 0.0123 s", then ", 2 threads" when more than one.
  std::string brief_report() const;
};

class Observer {
 public:
  virtual ~Observer() = default;
  virtual void on_start(double /*t*/, const State& /*x*/) {}
  // After grid interval `step` (0-based) ended at time t.
  virtual void on_step(long /*step*/, double /*t*/, const State& /*x*/) {}
  virtual void on_finish(const Summary& /*summary*/) {}

  // The model's prediction of the data (k-diffusion's `denoised`): return true to get,
  // just before on_step of every interval, x0 = (x - sigma eps) / alpha of the interval's
  // first model evaluation of each sample (at t_eval, usually the interval's start). Rows a
  // solver did not evaluate in the interval (none do so today) keep the previous step's x0.
  virtual bool wants_denoised() const { return false; }
  virtual void on_denoised(long /*step*/, double /*t_eval*/, const State& /*x0*/) {}
};

// Where a run stands, for DriverOptions::progress.
struct Progress {
  long step = 0;      // grid intervals done
  long steps = 0;     // grid intervals in all
  double t = 0;       // the time reached
  long nfe = 0;       // model evaluations so far (of one row block on several threads)
  double seconds = 0;
};

// A run stopped by its progress callback: x holds the state after the step named.
class Cancelled : public Error {
 public:
  Cancelled(long step, double t);
  long step() const { return step_; }
  double t() const { return t_; }

 private:
  long step_;
  double t_;
};

// Keeps x at every grid time (the start included). Observers always see the whole
// batch: a run on several threads gathers the row blocks after every step before
// calling them.
class TrajectoryObserver final : public Observer {
 public:
  void on_start(double t, const State& x) override;
  void on_step(long step, double t, const State& x) override;
  const std::vector<double>& times() const { return times_; }
  const std::vector<State>& states() const { return states_; }

 private:
  std::vector<double> times_;
  std::vector<State> states_;
};

struct DriverOptions {
  // Stop with a NumericalError naming the step and t when x has a NaN or Inf.
  bool check_finite = true;
  // Threads to integrate the batch on; 0: std::thread::hardware_concurrency(). The rows
  // are split into that many contiguous blocks (at most one per row), each integrated
  // on its own thread by its own copy of the solver (Solver::clone) with the noise
  // source's rows of that block (NoiseSource::row_block). The samples, the summary's
  // counts and the noise source's draw count come out bit for bit as on one thread. One
  // thread is used when the solver couples the batch (SolverTraits::batch_coupled) or
  // cannot be cloned, or when the noise source cannot give row blocks.
  int threads = 1;
  static constexpr int kMaxThreads = 1024;
  // The index in the whole batch of x's first row, when x is a part of a batch integrated
  // on its own (a chunk): the model sees its rows as those samples (ModelRows), so that
  // per-sample conditioning follows them. Noise sources carry their own first sample.
  long first_row = 0;
  // Called after every grid interval (on the calling thread; a split run then advances its
  // row blocks one step at a time, as with observers). Returning false cancels the run:
  // integrate() throws Cancelled naming the step, with x holding the state after it.
  std::function<bool(const Progress&)> progress;

  // True when usable; otherwise false with the reason in *error.
  bool is_valid(std::string* error = nullptr) const;
};

// Checks `times` against the grid requirements the solver declares in its traits
// (SolverTraits::needs_decreasing_grid, needs_positive_sigma_at_step_start) and throws Error
// naming the solver and the first interval that breaks one; it also refuses a step that
// starts where alpha = 0 (lambda = -inf, e.g. flow at t = 1, a zero-terminal-SNR schedule's
// last step) unless it is the grid's first, the solver declares starts_from_pure_noise and
// `model` predicts x0 itself (Model::has_data_prediction; without a model: refused).
// integrate() calls it once per run, before the solver's init() and any step; a validator
// calls it to refuse a grid before running anything. Costs a comparison per grid time, one
// alpha(t) and one sigma(t); allocates only to throw.
void check_solver_grid(const SolverTraits& traits, const Schedule& schedule, const std::vector<double>& times,
                       const Model* model);
void check_solver_grid(const SolverTraits& traits, const Schedule& schedule,
                       const std::vector<double>& times);

// Integrates x from times.front() to times.back() with `solver`. A stochastic solver
// needs a noise source; the grid must meet the solver's requirements (check_solver_grid).
// Throws NumericalError on a non-finite state (on several
// threads: the one of the first failing step, and of its first failing sample, as on
// one thread; x then holds each block where it stopped).
//
// With more than one thread the model's eps is called from several threads at once (on
// different rows), so it must be safe to call concurrently; the analytic models are.
// Without observers each block runs through the whole grid on its own thread; with
// observers the blocks advance one step at a time and are gathered into x in between.
Summary integrate(Solver& solver, const Schedule& schedule, const Model& model,
                  const std::vector<double>& times, State& x, NoiseSource* noise,
                  const std::vector<Observer*>& observers = {},
                  const DriverOptions& options = {});

// integrate() for many runs with one solver and one set of options (a benchmark, a sweep
// over seeds): keeps its threads, its copies of the solver and their row blocks' states
// from run to run, so that after the first run of a given batch size no work array is
// allocated again (as for a solver reused on one thread; fresh arrays cost page faults).
// `solver` must outlive it. Throws Error on invalid options.
class Integrator {
 public:
  explicit Integrator(Solver& solver, const DriverOptions& options = {});
  ~Integrator();
  Integrator(const Integrator&) = delete;
  Integrator& operator=(const Integrator&) = delete;

  // The same as integrate(solver, schedule, model, times, x, noise, observers, options).
  Summary run(const Schedule& schedule, const Model& model, const std::vector<double>& times,
              State& x, NoiseSource* noise, const std::vector<Observer*>& observers = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace diffsde
