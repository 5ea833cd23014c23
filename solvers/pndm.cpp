#include "diffsde/solvers/pndm.hpp"

#include <algorithm>
#include <cmath>

#include "diffsde/error.hpp"
#include "diffsde/solvers/ddim.hpp"

namespace diffsde {

PndmSolver::PndmSolver() : PndmSolver(Options{}) {}

PndmSolver::PndmSolver(Options options) : options_(options) {}

std::string to_string(PndmSolver::Warmup warmup) {
  return warmup == PndmSolver::Warmup::prk ? "prk" : "second_order";
}

PndmSolver::Warmup pndm_warmup_from_string(const std::string& s) {
  if (s == "second_order") return PndmSolver::Warmup::second_order;
  if (s == "prk") return PndmSolver::Warmup::prk;
  throw Error("unknown PNDM warm-up '" + s + "'; known: second_order, prk");
}

namespace {

// The middle of the step t0 -> t1: on a vp_discrete schedule whose times are both steps of
// its chain, the timestep n0 - (n0 - n1) / 2 (diffusers' PRK half step); else (t0 + t1)/2.
double prk_midpoint(const Schedule& schedule, double t0, double t1) {
  if (const auto* d = dynamic_cast<const VpDiscreteSchedule*>(&schedule)) {
    const double n = static_cast<double>(d->num_steps());
    const double k0 = std::round(t0 * n), k1 = std::round(t1 * n);
    if (std::fabs(k0 - t0 * n) < 1e-9 && std::fabs(k1 - t1 * n) < 1e-9 && k1 >= 1 && k0 >= 1) {
      const long n0 = static_cast<long>(k0) - 1, n1 = static_cast<long>(k1) - 1;
      const long half = (n0 - n1) / 2;
      return d->t_of_step(static_cast<int>(n0 - half));
    }
  }
  return 0.5 * (t0 + t1);
}

}  // namespace

void PndmSolver::prk_step(SolverContext& context, double t0, double t1, State& x) {
  const Schedule& sch = context.schedule();
  const ScheduleAt s = sch.at(t0), t = sch.at(t1);
  const DdimCoefficients c = ddim_coefficients(s, t, 0.0);
  if (t.sigma == 0) {  // a step to the data: the DDIM step (there is no eps at its end)
    x = c.x * x + c.eps * eps_[0];
    return;
  }
  const double tm = prk_midpoint(sch, t0, t1);
  const DdimCoefficients cm = ddim_coefficients(s, sch.at(tm), 0.0);
  // e_2 at the transfer with e_1 to the midpoint, e_3 at the transfer with e_2, e_4 at the
  // end with e_3; the step with (e_1 + 2 e_2 + 2 e_3 + e_4)/6.
  trial_ = cm.x * x + cm.eps * eps_[0];
  context.eps(trial_, tm, combined_);
  State& sum = combined_;  // e_2, then the running weighted sum
  trial_ = cm.x * x + cm.eps * sum;
  State& e3 = extra_;
  context.eps(trial_, tm, e3);
  sum = eps_[0] / 6.0 + sum / 3.0 + e3 / 3.0;
  trial_ = c.x * x + c.eps * e3;
  context.eps(trial_, t1, e3);
  sum += e3 / 6.0;
  x = c.x * x + c.eps * sum;
}

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
  if (options_.warmup == Warmup::prk) extra_.resize(x.rows(), x.cols());
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
  if (options_.warmup == Warmup::prk && count_ < 4) {
    prk_step(context, t0, t1, x);
    return;
  }
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
