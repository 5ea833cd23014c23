// The solver concept: a small object that advances the state from t0 to t1 with the
// help of a context (schedule, counted model evaluations, noise). The driver loop
// lives in driver.hpp; solvers know nothing of JSON, files or the command line.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "diffsde/model.hpp"
#include "diffsde/noise.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/state.hpp"

namespace diffsde {

struct SolverTraits {
  std::string name;
  // Draws noise (reverse-SDE and ancestral solvers) or not (ODE solvers).
  bool stochastic = false;
  // Deterministic solvers: global order of the ODE solution. Stochastic solvers:
  // weak order.
  double order = 1;
  // Strong order for the additive-noise reverse VP-SDE; NaN where not applicable.
  double strong_order = std::numeric_limits<double>::quiet_NaN();
  // Model evaluations per step (per grid interval for fixed-step solvers).
  int evals_per_step = 1;
  // Chooses its own steps between the grid times (the grid then gives only the
  // start, the end and any output times).
  bool adaptive = false;
  // Multistep solvers: how many first steps run below the declared order while the
  // history fills (2 for a third-order method that starts with orders 1 and 2). The
  // order tests shrink these steps so that the declared order is what they observe.
  int warmup_steps = 0;
  // Where the noise goes, for reproducing runs of other frameworks from replayed draws.
  std::string noise_use;
  // A sample's result depends on the other samples of its batch (one step size for the
  // whole batch, norms averaged over the batch). The driver never splits such a run
  // across threads.
  bool batch_coupled = false;
  // Steps each sample on its own (per-sample step sizes, the model called per sample):
  // NFE and accepted/rejected counts are sums over the samples, so a run split into row
  // blocks adds up its blocks' counts. Otherwise every block makes the same evaluations
  // and steps as the whole batch.
  bool per_sample_steps = false;

  // Grid requirements, checked once per run by the driver before init() and the first
  // step (check_solver_grid in driver.hpp), so that a solver need not repeat them.
  //
  // Runs only from noise to data: every grid interval must decrease in t. Reverse-SDE and
  // ancestral solvers (their noise is that of the reverse process) and samplers written
  // for decreasing sigma set it; ODE solvers that can also run forwards (an inversion) do
  // not. It may depend on the parameters (ddim with eta > 0).
  bool needs_decreasing_grid = false;
  // Evaluates eps/sigma, lambda or x0 at the start of every step, so no interval may start
  // where sigma = 0 (t = 0). Intervals may end there.
  bool needs_positive_sigma_at_step_start = false;
  // Exact for every Gaussian schedule x_t = alpha x0 + sigma eps (it uses only alpha,
  // sigma, lambda and the field's f and g^2). Solvers whose formulas assume
  // alpha^2 + sigma^2 = 1 leave it false and are refused on the other schedules
  // (Schedule::variance_preserving) by check_solver_grid, before any step.
  bool any_schedule = false;
  // Can take its first step from alpha = 0 (lambda = -inf: pure noise, flow at t = 1, a
  // zero-terminal-SNR schedule's last step) with a model that predicts x0 itself
  // (Model::has_data_prediction), through SolverContext::x0. check_solver_grid refuses a
  // grid that starts there otherwise, and any later grid time where alpha = 0.
  bool starts_from_pure_noise = false;
};

// What a solver may use during a run. Counts model evaluations and accepted/rejected
// steps for the run summary.
class SolverContext {
 public:
  // first_row: the index in the run's batch of the first row this context's solver steps
  // (a row block of a split run starts further down); the model sees its rows as those
  // samples (ModelRows::first_sample), so per-sample conditioning follows them.
  SolverContext(const Schedule& schedule, const Model& model, NoiseSource* noise, long first_row = 0)
      : schedule_(schedule), model_(model), noise_(noise) {
    rows_.first_sample = static_cast<std::uint64_t>(first_row);
  }

  const Schedule& schedule() const { return schedule_; }
  const Model& model() const { return model_; }
  // eps(x, t) into out for the rows the solver steps (all of them, from the first); one
  // function evaluation.
  void eps(const ConstStateRef& x, double t, StateRef out) {
    model_.eps_rows(x, t, rows_, out);
    ++nfe_;
    network_rows_ += model_.network_rows(static_cast<long>(x.rows()), t);
    if (capture_ != nullptr) capture(0, x, t, out);
  }
  // eps for x holding the solver's rows row .. row + x.rows() - 1 only (a solver that steps
  // each sample on its own); counted as `evaluations` function evaluations (a solver that
  // counts them per sample, SolverTraits::per_sample_steps, passes x.rows()).
  void eps_rows(long row, const ConstStateRef& x, double t, StateRef out, long evaluations = 1) {
    model_.eps_rows(x, t, rows_.sub(row), out);
    nfe_ += evaluations;
    network_rows_ += model_.network_rows(static_cast<long>(x.rows()), t);
    if (capture_ != nullptr) capture(row, x, t, out);
  }

  // The model's own data prediction x0(x, t) (Model::x0_rows), for a first step from pure
  // noise (alpha = 0, SolverTraits::starts_from_pure_noise); one function evaluation.
  void x0(const ConstStateRef& x, double t, StateRef out) {
    model_.x0_rows(x, t, rows_, out);
    ++nfe_;
    network_rows_ += model_.network_rows(static_cast<long>(x.rows()), t);
    if (capture_ != nullptr) capture_x0(0, t, out);
  }

  // The denoised prediction, for observers (Observer::wants_denoised): after
  // begin_denoised(x0) each row's first evaluation writes x0 = (x - sigma eps) / alpha of
  // that evaluation into row r of *x0 (x0 has the solver's rows), and denoised_t() is the
  // time of the first evaluation. end_denoised() stops it. The driver calls these around
  // every step; a solver does not.
  void begin_denoised(State* x0) {
    capture_ = x0;
    captured_.assign(static_cast<std::size_t>(x0->rows()), 0);
    uncaptured_ = static_cast<long>(x0->rows());
    denoised_t_ = std::numeric_limits<double>::quiet_NaN();
  }
  void end_denoised() { capture_ = nullptr; }
  double denoised_t() const { return denoised_t_; }
  // The rows the solver steps, as the model sees them.
  const ModelRows& rows() const { return rows_; }
  // Network rows evaluated (Model::network_rows summed over the evaluations).
  long long network_rows() const { return network_rows_; }
  bool has_noise() const { return noise_ != nullptr; }
  // The run's noise source; Error if the run has none.
  NoiseSource& noise();

  long nfe() const { return nfe_; }
  void count_accepted(long n = 1) { accepted_ += n; }
  void count_rejected(long n = 1) { rejected_ += n; }
  long accepted() const { return accepted_; }
  long rejected() const { return rejected_; }

 private:
  const Schedule& schedule_;
  const Model& model_;
  NoiseSource* noise_;
  void capture(long row0, const ConstStateRef& x, double t, const ConstStateRef& eps) {
    if (uncaptured_ == 0) return;
    const ScheduleAt s = schedule_.at(t);
    if (std::isnan(denoised_t_)) denoised_t_ = t;
    for (Eigen::Index r = 0; r < x.rows(); ++r) {
      const auto k = static_cast<std::size_t>(row0 + r);
      if (k >= captured_.size() || captured_[k]) continue;
      captured_[k] = 1;
      --uncaptured_;
      capture_->row(static_cast<Eigen::Index>(k)) = (x.row(r) - s.sigma * eps.row(r)) / s.alpha;
    }
  }

  void capture_x0(long row0, double t, const ConstStateRef& x0) {
    if (uncaptured_ == 0) return;
    if (std::isnan(denoised_t_)) denoised_t_ = t;
    for (Eigen::Index r = 0; r < x0.rows(); ++r) {
      const auto k = static_cast<std::size_t>(row0 + r);
      if (k >= captured_.size() || captured_[k]) continue;
      captured_[k] = 1;
      --uncaptured_;
      capture_->row(static_cast<Eigen::Index>(k)) = x0.row(r);
    }
  }

  ModelRows rows_;
  State* capture_ = nullptr;
  std::vector<char> captured_;
  long uncaptured_ = 0;
  double denoised_t_ = 0;
  long nfe_ = 0, accepted_ = 0, rejected_ = 0;
  long long network_rows_ = 0;
};

class Solver {
 public:
  virtual ~Solver() = default;
  virtual SolverTraits traits() const = 0;
  // A new solver with the same parameters and no run state, for integrating another
  // block of the batch on another thread. nullptr (the default) where the solver cannot
  // be re-made: the driver then runs it on one thread.
  virtual std::unique_ptr<Solver> clone() const { return nullptr; }
  // Called once before the first step: allocate work arrays for x's shape, reset any
  // history. `times` is the whole grid.
  virtual void init(SolverContext& /*context*/, const State& /*x*/,
                    const std::vector<double>& /*times*/) {}
  // Advances x from times[i] = t0 to times[i+1] = t1 (t1 < t0 when sampling).
  virtual void step(SolverContext& context, std::size_t i, double t0, double t1, State& x) = 0;
};

}  // namespace diffsde
