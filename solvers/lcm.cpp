#include "diffsde/solvers/lcm.hpp"

#include <cmath>
#include <utility>

#include "diffsde/error.hpp"
#include "diffsde/solvers/options.hpp"

namespace diffsde {

bool LcmSolver::Options::is_valid(std::string* error, std::string* option) const {
  if (!(timestep_scaling > 0) || !std::isfinite(timestep_scaling))
    return invalid_option(error, option, "timestep_scaling", "must be finite and > 0");
  if (!(sigma_data > 0) || !std::isfinite(sigma_data))
    return invalid_option(error, option, "sigma_data", "must be finite and > 0");
  if (train_steps < 0) return invalid_option(error, option, "train_steps", "must be >= 0 (0: the schedule's)");
  if (clip_x0 && !(clip_x0->first < clip_x0->second)) return invalid_option(error, option, "clip_x0", "needs lo < hi");
  return true;
}

LcmSolver::LcmSolver(Options options) : options_(std::move(options)) { check_options(options_, "lcm"); }

SolverTraits LcmSolver::traits() const {
  SolverTraits t;
  t.name = "lcm";
  t.stochastic = true;
  t.order = 1;  // declared for the tables; consistency sampling does not converge in the steps
  t.evals_per_step = 1;
  t.needs_decreasing_grid = true;
  t.needs_positive_sigma_at_step_start = true;  // x0 from eps at the start
  t.noise_use =
      "one standard-normal draw of shape batch x dim per step but the last (draw k at step k), made after the "
      "step's evaluation";
  return t;
}

std::pair<double, double> LcmSolver::scalings(double tau) const {
  const double scaled = tau * options_.timestep_scaling;
  const double sd2 = options_.sigma_data * options_.sigma_data;
  return {sd2 / (scaled * scaled + sd2), scaled / std::sqrt(scaled * scaled + sd2)};
}

void LcmSolver::init(SolverContext& context, const State& x, const std::vector<double>& times) {
  steps_ = times.empty() ? 0 : times.size() - 1;
  train_steps_ = options_.train_steps > 0 ? options_.train_steps : 1000.0;
  if (options_.train_steps == 0)
    if (const auto* d = dynamic_cast<const VpDiscreteSchedule*>(&context.schedule()))
      train_steps_ = static_cast<double>(d->num_steps());
  eps_.resize(x.rows(), x.cols());
  x0_.resize(x.rows(), x.cols());
  z_.resize(x.rows(), x.cols());
}

void LcmSolver::step(SolverContext& context, std::size_t i, double t0, double t1, State& x) {
  const ScheduleAt s = context.schedule().at(t0);
  context.eps(x, t0, eps_);
  x0_ = (x - s.sigma * eps_) / s.alpha;
  if (options_.clip_x0) x0_ = x0_.cwiseMax(options_.clip_x0->first).cwiseMin(options_.clip_x0->second);
  // The network's timestep at t0 (an integer on a discrete schedule's own steps).
  const double tau = t0 * train_steps_ - 1.0;
  const auto [c_skip, c_out] = scalings(tau);
  x = c_out * x0_ + c_skip * x;  // D
  if (i + 1 >= steps_) return;   // the last step returns the denoised sample
  const ScheduleAt t = context.schedule().at(t1);
  context.noise().normal(z_);
  x = t.alpha * x + t.sigma * z_;
}

}  // namespace diffsde
