#include "diffsde/solvers/pndm.hpp"

#include <algorithm>
#include <cmath>

#include "diffsde/solvers/ddim.hpp"

namespace diffsde {

PndmSolver::PndmSolver(Options options) : options_(options) {}

SolverTraits PndmSolver::traits() const {
  SolverTraits t;
  t.any_schedule = true;  // only alpha, sigma, lambda and the field f, g^2
  t.name = "pndm";
  t.order = 2;
  t.evals_per_step = 1;
  t.warmup_steps = 3;
  t.needs_positive_sigma_at_step_start = true;
  return t;
}

void PndmSolver::init(SolverContext& /*context*/, const State& x, const std::vector<double>& times) {
  steps_ = times.empty() ? 0 : times.size() - 1;
  for (State& e : eps_) e.resize(x.rows(), x.cols());
  combined_.resize(x.rows(), x.cols());
  trial_.resize(x.rows(), x.cols());
  count_ = 0;
  has_end_ = false;
}

void PndmSolver::step(SolverContext& context, std::size_t i, double t0, double t1, State& x) {
  // A step that does not continue the previous one starts afresh.
  if (!(has_end_ && i == end_i_ + 1 && t0 == end_t_)) count_ = 0;
  const ScheduleAt s = context.schedule().at(t0);
  const ScheduleAt t = context.schedule().at(t1);
  const DdimCoefficients c = ddim_coefficients(s, t, 0.0);
  std::rotate(eps_.begin(), eps_.begin() + 3, eps_.end());
  context.eps(x, t0, eps_[0]);
  count_ = std::min(count_ + 1, 4);
  has_end_ = true;
  end_i_ = i;
  end_t_ = t1;
  switch (count_) {
    case 1:
      // The start: a DDIM step, the eps at its end, and the step again with their mean.
      trial_ = c.x * x + c.eps * eps_[0];
      // A run of one step (or a first step to the data, where there is no eps) is the
      // DDIM step: diffusers' start evaluates at the second timestep, which such a run
      // does not have.
      if (i + 1 >= steps_ || t.sigma == 0) {
        x = trial_;
        return;
      }
      context.eps(trial_, t1, combined_);
      combined_ = 0.5 * (eps_[0] + combined_);
      break;
    case 2:
      combined_ = 1.5 * eps_[0] - 0.5 * eps_[1];
      break;
    case 3:
      combined_ = (23.0 * eps_[0] - 16.0 * eps_[1] + 5.0 * eps_[2]) / 12.0;
      break;
    default:
      combined_ = (55.0 * eps_[0] - 59.0 * eps_[1] + 37.0 * eps_[2] - 9.0 * eps_[3]) / 24.0;
      break;
  }
  x = c.x * x + c.eps * combined_;
}

}  // namespace diffsde
