#include "diffsde/solvers/unipc.hpp"

#include <algorithm>
#include <cmath>

#include "diffsde/error.hpp"
#include "diffsde/solvers/ddim.hpp"
#include "diffsde/solvers/exponential.hpp"
#include "diffsde/solvers/options.hpp"

namespace diffsde {

namespace {

// Solves the n x n system A y = b (n <= 3) by Gaussian elimination with partial pivoting.
std::array<double, 3> solve_small(int n, std::array<std::array<double, 3>, 3> a, std::array<double, 3> b) {
  for (int c = 0; c < n; ++c) {
    int pivot = c;
    for (int r = c + 1; r < n; ++r)
      if (std::fabs(a[r][c]) > std::fabs(a[pivot][c])) pivot = r;
    std::swap(a[c], a[pivot]);
    std::swap(b[c], b[pivot]);
    for (int r = c + 1; r < n; ++r) {
      const double f = a[r][c] / a[c][c];
      for (int k = c; k < n; ++k) a[r][k] -= f * a[c][k];
      b[r] -= f * b[c];
    }
  }
  std::array<double, 3> y{};
  for (int r = n - 1; r >= 0; --r) {
    double sum = b[r];
    for (int k = r + 1; k < n; ++k) sum -= a[r][k] * y[k];
    y[r] = sum / a[r][r];
  }
  return y;
}

}  // namespace

UniPcCoefficients unipc_coefficients(const std::array<double, 3>& r, int p, double hh, UniPcVariant variant) {
  if (p < 1 || p > 3) throw Error("unipc_coefficients: order must be 1..3");
  UniPcCoefficients c;
  c.b_h = variant == UniPcVariant::bh1 ? hh : std::expm1(hh);
  // Right-hand sides g_i = i! hh phi_{i+1}(hh) / B(hh), i = 1..p.
  std::array<double, 3> g{};
  double factorial = 1;
  for (int i = 1; i <= p; ++i) {
    factorial *= i;
    g[i - 1] = factorial * hh * phi(i + 1, hh) / c.b_h;
  }
  // Vandermonde rows R[i-1][k] = node_k^(i-1) over the nodes r_1..r_{p-1} (predictor) and
  // r_1..r_{p-1}, 1 (corrector).
  std::array<double, 3> nodes{};
  for (int k = 1; k < p; ++k) nodes[k - 1] = r[k];
  nodes[p - 1] = 1;
  std::array<std::array<double, 3>, 3> vandermonde{};
  for (int i = 0; i < p; ++i)
    for (int k = 0; k < p; ++k) vandermonde[i][k] = std::pow(nodes[k], i);
  // Where one coefficient is enough (UniP-2, UniC-1), it is set to 1/2, the leading term of
  // g_1 = 1/2 + O(h): the O(h) change multiplies B(h) D_1 = O(h^2), so the local error stays
  // O(h^3) and the order is kept. This is the reference implementation's choice, and the
  // only place B(h) matters: where the conditions are solved exactly, B(h) cancels from B(h) a.
  if (p == 2) c.predictor[0] = 0.5;
  if (p > 2) c.predictor = solve_small(p - 1, vandermonde, g);
  if (p == 1) c.corrector[0] = 0.5;
  if (p > 1) c.corrector = solve_small(p, vandermonde, g);
  return c;
}

std::string to_string(UniPcVariant variant) { return variant == UniPcVariant::bh1 ? "bh1" : "bh2"; }

UniPcVariant unipc_variant_from_string(const std::string& s) {
  if (s == "bh1") return UniPcVariant::bh1;
  if (s == "bh2") return UniPcVariant::bh2;
  throw Error("unknown UniPC variant '" + s + "'; known: bh1, bh2");
}

std::string to_string(UniPcSolver::Prediction prediction) {
  return prediction == UniPcSolver::Prediction::data ? "data" : "noise";
}

UniPcSolver::Prediction unipc_prediction_from_string(const std::string& s) {
  if (s == "data") return UniPcSolver::Prediction::data;
  if (s == "noise") return UniPcSolver::Prediction::noise;
  throw Error("unknown UniPC prediction '" + s + "'; known: data, noise");
}

bool UniPcSolver::Options::is_valid(std::string* error, std::string* option) const {
  if (order < 1 || order > kMaxOrder)
    return invalid_option(error, option, "order", "must be 1, 2 or 3, got " + std::to_string(order));
  if (!valid_step_orders(orders, order, "model output(s)", error, option)) return false;
  for (std::size_t i = 0; i < disable_corrector.size(); ++i)
    if (disable_corrector[i] < 0)
      return invalid_option(error, option, "disable_corrector",
                            "entry " + std::to_string(i) + " is " + std::to_string(disable_corrector[i]) +
                                ": step indices are >= 0");
  return true;
}

UniPcSolver::UniPcSolver(Options options) : options_(options) { check_options(options_, "unipc"); }

SolverTraits UniPcSolver::traits() const {
  SolverTraits t;
  t.any_schedule = true;  // only alpha, sigma, lambda and the field f, g^2
  t.name = "unipc";
  // UniC raises UniP-p to order p + 1 (Theorem 3.1); lower_order_final ends with a
  // first-order step, whose O(h^2) local error caps the global order at 2.
  t.order = options_.lower_order_final ? std::min(2, options_.order + 1) : options_.order + 1;
  t.evals_per_step = 1;
  t.warmup_steps = options_.order - 1;
  t.needs_positive_sigma_at_step_start = true;  // lambda and the model output at the start
  return t;
}

void UniPcSolver::init(SolverContext& /*context*/, const State& x, const std::vector<double>& times) {
  for (int j = 0; j <= options_.order; ++j) m_[static_cast<std::size_t>(j)].resize(x.rows(), x.cols());
  base_.resize(x.rows(), x.cols());
  count_ = 0;
  steps_ = times.empty() ? 0 : times.size() - 1;
  if (!options_.orders.empty() && options_.orders.size() != steps_)
    throw Error("unipc: orders has " + std::to_string(options_.orders.size()) + " entries but the grid has " +
                std::to_string(steps_) + " steps");
}

void UniPcSolver::to_model_output(const ScheduleAt& at, const State& x, State& m) const {
  if (options_.prediction == Prediction::data) m = (x - at.sigma * m) / at.alpha;
}

void UniPcSolver::step(SolverContext& context, std::size_t i, double t0, double t1, State& x) {
  const ScheduleAt s = context.schedule().at(t0);
  const ScheduleAt t = context.schedule().at(t1);
  const bool data = options_.prediction == Prediction::data;
  if (count_ == 0) {  // the first step: the only evaluation not made by a corrector
    context.eps(x, t0, m_[0]);
    to_model_output(s, x, m_[0]);
    lambda_[0] = s.lambda;
    count_ = 1;
  }
  int p = std::min(options_.order, count_);
  if (!options_.orders.empty()) {
    if (i < options_.orders.size()) p = std::min(p, options_.orders[i]);
  } else if (options_.lower_order_final && i < steps_) {
    p = std::min(p, static_cast<int>(steps_ - i));
  }
  const bool last = i + 1 >= steps_;
  const auto& off = options_.disable_corrector;
  const bool correct = std::find(off.begin(), off.end(), static_cast<int>(i)) == off.end() &&
                       (!last || options_.final_corrector);

  if (t.sigma == 0) {
    // The final step to t = 0 (lambda = +inf) is first order (DDIM): x_t = x0.
    if (data) {
      x = t.alpha * m_[0];
    } else {
      const DdimCoefficients c = ddim_coefficients(s, t, 0.0);
      x = c.x * x + c.eps * m_[0];
    }
    return;
  }

  const double h = t.lambda - s.lambda;
  const double hh = data ? -h : h;
  std::array<double, 3> r{};
  for (int k = 1; k < p; ++k) r[k] = (lambda_[k] - s.lambda) / h;
  const UniPcCoefficients a = unipc_coefficients(r, p, hh, options_.variant);
  const double scale = (data ? t.alpha : t.sigma) * a.b_h;
  if (data) {
    base_ = (t.sigma / s.sigma) * x - (t.alpha * std::expm1(-h)) * m_[0];
  } else {
    const DdimCoefficients c = ddim_coefficients(s, t, 0.0);
    base_ = c.x * x + c.eps * m_[0];
  }

  // Predictor: x = base - scale sum_k a_k (m_k - m_0) / r_k.
  x = base_;
  for (int k = 1; k < p; ++k) {
    const double w = scale * a.predictor[k - 1] / r[k];
    x -= w * (m_[k] - m_[0]);
  }
  if (last && !correct) return;

  // Corrector, with the model at the predicted point: that value is the next step's m_s.
  const auto spare = static_cast<std::size_t>(options_.order);
  State& m_t = m_[spare];
  context.eps(x, t1, m_t);
  to_model_output(t, x, m_t);
  if (correct) {
    x = base_ - (scale * a.corrector[p - 1]) * (m_t - m_[0]);
    for (int k = 1; k < p; ++k) {
      const double w = scale * a.corrector[k - 1] / r[k];
      x -= w * (m_[k] - m_[0]);
    }
  }
  lambda_[spare] = t.lambda;
  const auto n = static_cast<std::ptrdiff_t>(spare);
  std::rotate(m_.begin(), m_.begin() + n, m_.begin() + n + 1);
  std::rotate(lambda_.begin(), lambda_.begin() + n, lambda_.begin() + n + 1);
  count_ = std::min(count_ + 1, options_.order);
}

}  // namespace diffsde
