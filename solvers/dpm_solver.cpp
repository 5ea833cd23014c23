#include "diffsde/solvers/dpm_solver.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include "diffsde/error.hpp"
#include "diffsde/solvers/ddim.hpp"
#include "diffsde/solvers/dpm_solver_adaptive.hpp"
#include "diffsde/solvers/exponential.hpp"
#include "diffsde/solvers/options.hpp"

namespace diffsde {

std::string to_string(DpmAlgorithm algorithm) {
  return algorithm == DpmAlgorithm::dpmsolver ? "dpmsolver" : "dpmsolver++";
}

std::string to_string(DpmMethod method) {
  return method == DpmMethod::singlestep ? "singlestep" : "multistep";
}

std::string to_string(DpmStages stages) { return stages == DpmStages::lambda ? "lambda" : "grid"; }

DpmStages dpm_stages_from_string(const std::string& s) {
  if (s == "lambda") return DpmStages::lambda;
  if (s == "grid") return DpmStages::grid;
  throw Error("unknown DPM-Solver stages '" + s + "'; known: lambda, grid");
}

std::vector<int> dpm_singlestep_orders(int order, bool lower_order_final, std::size_t steps) {
  std::vector<int> out;
  if (steps == 0 || order < 1) return out;
  out.reserve(steps);  // one allocation whatever the steps (tests/test_allocations.cpp)
  const std::size_t k = static_cast<std::size_t>(order);
  // diffusers' set_timesteps switches lower_order_final on when the runs do not fill the grid.
  if (steps % k != 0) lower_order_final = true;
  // Full runs 1..k, then (lower_order_final) the tail: order 3 ends in 1 2 1 when the runs
  // would fill the grid exactly, order 2 in 1 1; otherwise the remainder's short run.
  std::size_t full = steps / k;
  std::vector<int> tail;
  if (lower_order_final && k > 1) {
    const std::size_t rest = steps % k;
    if (rest == 0) {
      full -= 1;
      tail = k == 3 ? std::vector<int>{1, 2, 1} : std::vector<int>{1, 1};
    } else {
      tail = rest == 1 ? std::vector<int>{1} : std::vector<int>{1, 2};
    }
  }
  for (std::size_t r = 0; r < full; ++r)
    for (std::size_t j = 1; j <= k; ++j) out.push_back(static_cast<int>(j));
  out.insert(out.end(), tail.begin(), tail.end());
  return out;
}

DpmAlgorithm dpm_algorithm_from_string(const std::string& s) {
  if (s == "dpmsolver") return DpmAlgorithm::dpmsolver;
  if (s == "dpmsolver++") return DpmAlgorithm::dpmsolver_pp;
  throw Error("unknown DPM-Solver algorithm '" + s + "'; known: dpmsolver, dpmsolver++");
}

DpmMethod dpm_method_from_string(const std::string& s) {
  if (s == "singlestep") return DpmMethod::singlestep;
  if (s == "multistep") return DpmMethod::multistep;
  throw Error("unknown DPM-Solver method '" + s + "'; known: singlestep, multistep");
}

double dpm_g(DpmAlgorithm algorithm, int k, double h) {
  return h * phi(k, algorithm == DpmAlgorithm::dpmsolver ? h : -h);
}

double dpm_scale(DpmAlgorithm algorithm, const ScheduleAt& t) {
  return algorithm == DpmAlgorithm::dpmsolver ? -t.sigma : t.alpha;
}

// ---------------------------------------------------------------------------
// Singlestep updates.

void DpmSinglestep::resize(Eigen::Index rows, Eigen::Index cols, int max_order) {
  // Only the stages up to max_order are ever written; the data predictions m only for
  // dpmsolver++ (dpmsolver's m is eps itself). Arrays left empty cost no allocation and
  // no first-touch page faults.
  const bool pp = algorithm_ == DpmAlgorithm::dpmsolver_pp;
  const auto size = [&](State& a, bool used) { a.resize(used ? rows : 0, used ? cols : 0); };
  size(m_s_, max_order >= 2 && pp);
  size(u1_, max_order >= 2);
  size(eps1_, max_order >= 2);
  size(m1_, max_order >= 2 && pp);
  size(u2_, max_order >= 3);
  size(eps2_, max_order >= 3);
  size(m2_, max_order >= 3 && pp);
}

const State& DpmSinglestep::output(const ScheduleAt& at, const State& x, const State& eps,
                                   State& buf) const {
  if (algorithm_ == DpmAlgorithm::dpmsolver) return eps;
  buf = (x - at.sigma * eps) / at.alpha;
  return buf;
}

void DpmSinglestep::step(SolverContext& context, int order, const ScheduleAt& s,
                         const ScheduleAt& t, const State& x, const State& eps_s, State& out,
                         State* lower, double r1) {
  const DdimCoefficients c = ddim_coefficients(s, t, 0.0);
  if (order <= 1 || t.sigma == 0) {
    if (lower != nullptr) *lower = c.x * x + c.eps * eps_s;
    out = c.x * x + c.eps * eps_s;
    return;
  }
  const Schedule& schedule = context.schedule();
  const double h = t.lambda - s.lambda;
  const State& m_s = output(s, x, eps_s, m_s_);
  const double scale_t = dpm_scale(algorithm_, t);

  // Stage 1 at lambda_s + r1 h (r1 = 1/3 for order 3), a first-order step from s. The
  // fractions used below are those of the stage times actually reached, after t(lambda).
  const double r1_target = order == 3 ? 1.0 / 3.0 : r1;
  const ScheduleAt s1 = schedule.at(schedule.t_of_lambda(s.lambda + r1_target * h));
  const double r1_actual = (s1.lambda - s.lambda) / h;
  const DdimCoefficients c1 = ddim_coefficients(s, s1, 0.0);
  u1_ = c1.x * x + c1.eps * eps_s;
  context.eps(u1_, s1.t, eps1_);
  const State& m1 = output(s1, u1_, eps1_, m1_);
  // DPM-Solver-2 / DPM-Solver++(2S): first order + scale_t g_1(h)/(2 r1) (m_1 - m_s).
  const double k2 = scale_t * dpm_g(algorithm_, 1, h) / (2 * r1_actual);
  if (order == 2) {
    if (lower != nullptr) *lower = c.x * x + c.eps * eps_s;
    out = c.x * x + c.eps * eps_s + k2 * (m1 - m_s);
    return;
  }

  // Order 3 (DPM-Solver-3, Algorithm 2, and its data-prediction analogue).
  const ScheduleAt s2 = schedule.at(schedule.t_of_lambda(s.lambda + (2.0 / 3.0) * h));
  const double h2 = s2.lambda - s.lambda;
  const double r2 = h2 / h;
  const DdimCoefficients c2 = ddim_coefficients(s, s2, 0.0);
  const double k_u2 = dpm_scale(algorithm_, s2) * (r2 / r1_actual) * dpm_g(algorithm_, 2, h2);
  u2_ = c2.x * x + c2.eps * eps_s + k_u2 * (m1 - m_s);
  context.eps(u2_, s2.t, eps2_);
  const State& m2 = output(s2, u2_, eps2_, m2_);
  if (lower != nullptr) *lower = c.x * x + c.eps * eps_s + k2 * (m1 - m_s);
  const double k3 = scale_t * dpm_g(algorithm_, 2, h) / r2;
  out = c.x * x + c.eps * eps_s + k3 * (m2 - m_s);
}

// ---------------------------------------------------------------------------
// DpmSolver.

bool DpmSolver::Options::is_valid(std::string* error, std::string* option) const {
  if (order < 1 || order > 3)
    return invalid_option(error, option, "order", "must be 1, 2 or 3, got " + std::to_string(order));
  const bool grid = method == DpmMethod::singlestep && stages == DpmStages::grid;
  if (stages == DpmStages::grid && method != DpmMethod::singlestep)
    return invalid_option(error, option, "stages", "grid applies to the singlestep method (multistep steps on the grid "
                                                   "already)");
  for (std::size_t i = 0; i < orders.size(); ++i) {
    if (orders[i] < 1 || orders[i] > order)
      return invalid_option(error, option, "orders", "entry " + std::to_string(i) + " is " + std::to_string(orders[i]) +
                                                         ": each must lie in [1, order = " + std::to_string(order) + "]");
    if (grid) {
      // Each run counts 1, 2, .., k: the step of order j uses the j nodes since its run began.
      const int expected_max = i == 0 ? 1 : orders[i - 1] + 1;
      if (orders[i] != 1 && orders[i] != expected_max)
        return invalid_option(error, option, "orders",
                              "entry " + std::to_string(i) + " is " + std::to_string(orders[i]) +
                                  ", but with grid stages the orders run 1, 2, .., k from each 1 (a step of order j "
                                  "uses the j grid nodes since the last order-1 step), so it must be 1" +
                                  (expected_max > 1 && expected_max <= order ? " or " + std::to_string(expected_max)
                                                                             : std::string()));
    } else if (static_cast<std::size_t>(orders[i]) > i + 1) {
      return invalid_option(error, option, "orders", "entry " + std::to_string(i) + " is " + std::to_string(orders[i]) +
                                                         ", but step " + std::to_string(i) + " has only " +
                                                         std::to_string(i + 1) + " model output(s) to use");
    }
  }
  if (!orders.empty() && method != DpmMethod::multistep && !grid)
    return invalid_option(error, option, "orders", "applies to the multistep method and to singlestep with grid stages");
  return true;
}

DpmSolver::DpmSolver(Options options) : options_(options), single_(options.algorithm) {
  check_options(options_, "dpm_solver");
}

SolverTraits DpmSolver::traits() const {
  SolverTraits t;
  t.any_schedule = true;  // only alpha, sigma, lambda and the field f, g^2
  t.name = "dpm_solver";
  t.stochastic = false;
  t.order = options_.order;
  if (options_.method == DpmMethod::singlestep && options_.stages == DpmStages::grid) {
    t.evals_per_step = 1;  // the stages are the grid times
  } else if (options_.method == DpmMethod::singlestep) {
    t.evals_per_step = options_.order;
  } else {
    t.evals_per_step = 1;
    t.warmup_steps = options_.order - 1;
  }
  t.needs_positive_sigma_at_step_start = true;  // lambda and eps at the start
  return t;
}

int DpmSolver::step_order(std::size_t i, std::size_t steps) const {
  if (options_.method == DpmMethod::singlestep && options_.stages == DpmStages::grid) {
    if (!options_.orders.empty()) return i < options_.orders.size() ? options_.orders[i] : 1;
    const std::vector<int> list = dpm_singlestep_orders(options_.order, options_.lower_order_final, steps);
    return i < list.size() ? list[i] : 1;
  }
  if (options_.method == DpmMethod::singlestep) return options_.order;
  if (!options_.orders.empty() && i < options_.orders.size()) return options_.orders[i];
  std::size_t order = std::min(static_cast<std::size_t>(options_.order), i + 1);
  if (options_.lower_order_final && steps > i) order = std::min(order, steps - i);
  return static_cast<int>(order);
}

void DpmSolver::init(SolverContext& /*context*/, const State& x, const std::vector<double>& times) {
  steps_ = times.empty() ? 0 : times.size() - 1;
  if (!options_.orders.empty() && options_.orders.size() != steps_)
    throw Error("dpm_solver: orders has " + std::to_string(options_.orders.size()) + " entries but the grid has " +
                std::to_string(steps_) + " steps");
  const bool grid = options_.method == DpmMethod::singlestep && options_.stages == DpmStages::grid;
  // Work arrays only for what this method and order use (see DpmSinglestep::resize).
  const bool lambda_stages = options_.method == DpmMethod::singlestep && !grid;
  single_.resize(lambda_stages ? x.rows() : 0, lambda_stages ? x.cols() : 0, lambda_stages ? options_.order : 1);
  const bool eps_used = options_.method != DpmMethod::multistep || options_.algorithm == DpmAlgorithm::dpmsolver_pp;
  eps_.resize(eps_used ? x.rows() : 0, eps_used ? x.cols() : 0);
  // The history m: multistep dpmsolver evaluates eps into it; otherwise it holds data
  // predictions that only steps of order >= 2 read.
  const bool history = options_.order > 1 || (options_.method == DpmMethod::multistep &&
                                              options_.algorithm == DpmAlgorithm::dpmsolver);
  const bool m_used = (options_.method == DpmMethod::multistep || grid) && history;
  for (State& m : m_) m.resize(m_used ? x.rows() : 0, m_used ? x.cols() : 0);
  if (grid) {
    grid_orders_ = options_.orders.empty()
                       ? dpm_singlestep_orders(options_.order, options_.lower_order_final, steps_)
                       : options_.orders;
    chunk_x_.resize(options_.order > 1 ? x.rows() : 0, options_.order > 1 ? x.cols() : 0);
    chunk_eps_.resize(options_.order > 1 ? x.rows() : 0, options_.order > 1 ? x.cols() : 0);
  }
  chunk_len_ = 0;
  history_ = 0;
  has_end_ = false;
}

void DpmSolver::step(SolverContext& context, std::size_t i, double t0, double t1, State& x) {
  const ScheduleAt s = context.schedule().at(t0);
  const ScheduleAt t = context.schedule().at(t1);
  if (options_.method == DpmMethod::multistep) {
    multistep(context, i, s, t, x);
    return;
  }
  if (options_.stages == DpmStages::grid) {
    grid_singlestep(context, i, s, t, x);
    return;
  }
  context.eps(x, t0, eps_);
  single_.step(context, options_.order, s, t, x, eps_, x);
}

void DpmSolver::grid_singlestep(SolverContext& context, std::size_t i, const ScheduleAt& s,
                                const ScheduleAt& t, State& x) {
  int order = i < grid_orders_.size() ? grid_orders_[i] : 1;
  // A step to the data is first order from its own start (see the header); a step that does
  // not continue the previous one's run (another run, or steps out of order) starts afresh.
  const bool continues = has_end_ && i == end_i_ + 1 && s.t == end_t_;
  if (t.sigma == 0 || !continues || chunk_len_ != order - 1) order = 1;
  has_end_ = true;
  end_i_ = i;
  end_t_ = t.t;

  const DpmAlgorithm algorithm = options_.algorithm;
  const std::size_t node = static_cast<std::size_t>(order - 1);
  context.eps(x, s.t, eps_);
  // The run's nodes are read only by steps of order >= 2; an order-1 solver keeps none.
  const bool keep_run = options_.order > 1;
  if (keep_run) {
    if (algorithm == DpmAlgorithm::dpmsolver)
      m_[node] = eps_;
    else
      m_[node] = (x - s.sigma * eps_) / s.alpha;
  }
  chunk_len_ = order;
  if (order == 1) {
    chunk_s_ = s;
    if (keep_run) {
      chunk_x_ = x;
      chunk_eps_ = eps_;
    }
    const DdimCoefficients c = ddim_coefficients(s, t, 0.0);
    x = c.x * x + c.eps * eps_;
    return;
  }
  // From the run's first node s_0 to t, with the newest node's fraction r of h.
  const ScheduleAt& s0 = chunk_s_;
  const DdimCoefficients c = ddim_coefficients(s0, t, 0.0);
  const double h = t.lambda - s0.lambda;
  const double r = (s.lambda - s0.lambda) / h;
  const double scale_t = dpm_scale(algorithm, t);
  const double k = order == 2 ? scale_t * dpm_g(algorithm, 1, h) / (2 * r) : scale_t * dpm_g(algorithm, 2, h) / r;
  x = c.x * chunk_x_ + c.eps * chunk_eps_ + k * (m_[node] - m_[0]);
}

void DpmSolver::multistep(SolverContext& context, std::size_t i, const ScheduleAt& s,
                          const ScheduleAt& t, State& x) {
  // The history belongs to the previous step's end; a step that does not continue it
  // (another run, or steps called out of order) starts afresh at order 1.
  if (!(has_end_ && i == end_i_ + 1 && s.t == end_t_)) history_ = 0;
  // Shift the history: the oldest buffer becomes the newest's storage (no allocation).
  m_[2].swap(m_[1]);
  m_[1].swap(m_[0]);
  lambda_[2] = lambda_[1];
  lambda_[1] = lambda_[0];
  lambda_[0] = s.lambda;
  history_ = std::min(history_ + 1, 3);

  const DpmAlgorithm algorithm = options_.algorithm;
  const State* eps_s = nullptr;
  if (algorithm == DpmAlgorithm::dpmsolver) {
    context.eps(x, s.t, m_[0]);
    eps_s = &m_[0];
  } else {
    context.eps(x, s.t, eps_);
    // The data prediction is history for the steps of order >= 2 after this one; an
    // order-1 solver never reads it.
    if (options_.order > 1) m_[0] = (x - s.sigma * eps_) / s.alpha;
    eps_s = &eps_;
  }
  has_end_ = true;
  end_i_ = i;
  end_t_ = t.t;

  int order = std::min(step_order(i, steps_), history_);
  if (t.sigma == 0) order = 1;  // to the data: x_t = x0 (see the header)
  const DdimCoefficients c = ddim_coefficients(s, t, 0.0);
  const double h = t.lambda - s.lambda;
  const double scale_t = dpm_scale(algorithm, t);
  if (order == 1) {
    x = c.x * x + c.eps * *eps_s;
  } else if (order == 2) {
    // DPM-Solver++(2M), Algorithm 2 (and its noise-prediction twin): r = h_0/h.
    const double r0 = (lambda_[0] - lambda_[1]) / h;
    const double k = scale_t * dpm_g(algorithm, 1, h) / (2 * r0);
    x = c.x * x + c.eps * *eps_s + k * (m_[0] - m_[1]);
  } else {
    // 3M: g_2 D1 + 2 g_3 D2 with D1 = D1_0 + r0 D2, written on the first differences
    // (m_0 - m_1) and (m_1 - m_2):
    //   A D1_0 + C (D1_0 - D1_1)/(r0 + r1),  A = g_2, C = A r0 + 2 g_3.
    const double r0 = (lambda_[0] - lambda_[1]) / h;
    const double r1 = (lambda_[1] - lambda_[2]) / h;
    const double a = dpm_g(algorithm, 2, h);
    const double b = (options_.reference_3m ? 1.0 : 2.0) * dpm_g(algorithm, 3, h);
    const double cc = (a * r0 + b) / (r0 + r1);
    const double k01 = scale_t * (a + cc) / r0;  // on (m_0 - m_1)
    const double k12 = -scale_t * cc / r1;       // on (m_1 - m_2)
    x = c.x * x + c.eps * *eps_s + k01 * (m_[0] - m_[1]) + k12 * (m_[1] - m_[2]);
  }
}

}  // namespace diffsde
