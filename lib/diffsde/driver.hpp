// The driver: runs a solver over a time grid, calling observers, and returns a
// summary of the run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "diffsde/solver.hpp"

namespace diffsde {

// What a run cost.
struct Summary {
  std::string solver;
  long steps = 0;        // grid intervals done
  long nfe = 0;          // model evaluations (one per batch evaluation)
  long accepted = 0;     // accepted steps (adaptive solvers; = steps otherwise)
  long rejected = 0;     // rejected steps (adaptive solvers)
  std::uint64_t draws = 0;  // normal draws made from the noise source
  double seconds = 0;    // wall time of the integration
  double t_start = 0, t_end = 0;
  // One line: "euler_maruyama: 50 steps, 50 NFE, 0 rejected, 50 draws, 0.0123 s".
  std::string brief_report() const;
};

class Observer {
 public:
  virtual ~Observer() = default;
  virtual void on_start(double /*t*/, const State& /*x*/) {}
  // After grid interval `step` (0-based) ended at time t.
  virtual void on_step(long /*step*/, double /*t*/, const State& /*x*/) {}
  virtual void on_finish(const Summary& /*summary*/) {}
};

// Keeps x at every grid time (the start included).
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
};

// Integrates x from times.front() to times.back() with `solver`. A stochastic solver
// needs a noise source. Throws NumericalError on a non-finite state.
Summary integrate(Solver& solver, const Schedule& schedule, const Model& model,
                  const std::vector<double>& times, State& x, NoiseSource* noise,
                  const std::vector<Observer*>& observers = {},
                  const DriverOptions& options = {});

}  // namespace diffsde
