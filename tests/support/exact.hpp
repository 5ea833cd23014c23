// Exact answers shared by the tests: the Gaussian problem's PF-ODE flow and reverse-SDE
// solution on a Brownian path, slope fits, and small helpers. Header-only, test use only.
#pragma once

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "diffsde/error.hpp"
#include "diffsde/noise.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/state.hpp"

namespace diffsde::test {

// n rows of standard normals from the init stream (row j = sample j).
inline State standard_normal_rows(long n, int dim, std::uint64_t seed) {
  State x(n, dim);
  for (long j = 0; j < n; ++j) philox_normals(seed, NoiseStream::init, static_cast<std::uint64_t>(j), 0, x.row(j).data(), dim);
  return x;
}

// Least-squares slope of log(y) against log(x): the observed order when x is the step
// size and y the error.
inline double log_log_slope(const std::vector<double>& x, const std::vector<double>& y) {
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  const double n = static_cast<double>(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double lx = std::log(x[i]), ly = std::log(y[i]);
    sx += lx;
    sy += ly;
    sxx += lx * lx;
    sxy += lx * ly;
  }
  return (n * sxy - sx * sy) / (n * sxx - sx * sx);
}

inline double max_abs_diff(const State& a, const State& b) { return (a - b).abs().maxCoeff(); }
inline double rms_diff(const State& a, const State& b) { return std::sqrt((a - b).square().mean()); }

// The JSON path of the ConfigError that f throws, or "(none)".
inline std::string config_error_path(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.path();
  }
  return "(none)";
}

// Data N(mu_j, sd_j^2) on each axis j, pushed through the forward SDE of `schedule` (any
// Gaussian schedule: dx = f x dt + g dW). At time t axis j is N(alpha mu_j, v_j(t)),
// v_j = alpha^2 sd_j^2 + sigma^2, and everything below is in closed form.
struct GaussianProblem {
  std::shared_ptr<const Schedule> schedule;
  std::vector<double> mu, sd;

  double variance(std::size_t j, double t) const {
    if (!schedule->variance_preserving()) {
      const ScheduleAt at = schedule->at(t);
      return at.alpha * at.alpha * sd[j] * sd[j] + at.sigma * at.sigma;
    }
    // VP: sigma^2 = 1 - alpha_bar, free of cancellation near t = 0.
    return schedule->alpha_bar(t) * sd[j] * sd[j] - std::expm1(schedule->log_alpha_bar(t));
  }

  // The forward SDE's squared diffusion coefficient g^2 (beta on VP).
  double g2(double t) const { return schedule->variance_preserving() ? schedule->beta(t) : schedule->g2(t); }

  // The exact PF-ODE flow map from t0 to t1: z = (x - alpha mu)/sqrt(v) is constant.
  State pf_ode_flow(const State& x, double t0, double t1) const {
    State out(x.rows(), x.cols());
    const double a0 = schedule->alpha(t0), a1 = schedule->alpha(t1);
    for (Eigen::Index j = 0; j < x.cols(); ++j) {
      const auto k = static_cast<std::size_t>(j);
      out.col(j) = a1 * mu[k] + std::sqrt(variance(k, t1) / variance(k, t0)) * (x.col(j) - a0 * mu[k]);
    }
    return out;
  }

  // The exact solution at t_lo of the reverse SDE dx = [f x - g^2 s] dt + g dW (VP: f = -beta/2,
  // g^2 = beta) started at x_T at t_hi and driven by `path` (a Brownian tree on [t_lo, t_hi] of
  // the given depth, piecewise linear below its leaves). Per axis the score is
  // s = -(x - alpha mu)/v, and alpha' = f alpha, v' = 2 f v + g^2. With y = x - alpha mu,
  //   dy = dx - f alpha mu dt = (f + g^2/v) y dt + g dW = (v'/v - alpha'/alpha) y dt + g dW,
  // a linear SDE whose propagator is Phi(t, r) = exp(int_r^t (v'/v - alpha'/alpha)) =
  // (alpha(r)/alpha(t)) (v(t)/v(r)) on every schedule, so
  //   y(t_lo) = Phi(t_lo, t_hi) y(t_hi) + int Phi(t_lo, r) g(r) dW(r),
  // the integral taken from t_hi down to t_lo with increments W(r_lo) - W(r_hi). On each
  // linear piece of the path dW = (increment / leaf) dr, so the piece contributes the
  // increment times the mean of the smooth integrand over the piece, here by 3-point
  // Gauss-Legendre (exact for quintics; error O(leaf^6)). On [1e-3, 1] with beta up to 20 it
  // agrees with 8 such sub-pieces per leaf to 3e-15 at depth 12 and 1e-8 at depth 8 (the
  // midpoint rule was off by 1e-6 and 3e-4). Solvers must take their increments as
  // W(t1) - W(t0).
  State reverse_sde_on_path(const State& x_T, const BrownianTreeNoise& path, double t_hi,
                            double t_lo, int depth) const {
    const long n = x_T.rows();
    const int dim = static_cast<int>(x_T.cols());
    auto phi = [&](std::size_t j, double t, double r) {
      return schedule->alpha(r) / schedule->alpha(t) * variance(j, t) / variance(j, r);
    };
    State y(n, dim), w_prev(n, dim), w_next(n, dim);
    for (int j = 0; j < dim; ++j) {
      const auto k = static_cast<std::size_t>(j);
      y.col(j) = (x_T.col(j) - schedule->alpha(t_hi) * mu[k]) * phi(k, t_lo, t_hi);
    }
    path.value(t_hi, w_prev);
    const long leaves = 1L << depth;
    for (long k = leaves - 1; k >= 0; --k) {
      const double r_lo = t_lo + (t_hi - t_lo) * static_cast<double>(k) / static_cast<double>(leaves);
      const double r_hi = t_lo + (t_hi - t_lo) * static_cast<double>(k + 1) / static_cast<double>(leaves);
      path.value(r_lo, w_next);
      const double r_mid = 0.5 * (r_lo + r_hi), r_half = 0.5 * (r_hi - r_lo);
      for (int j = 0; j < dim; ++j) {
        const auto axis = static_cast<std::size_t>(j);
        auto f = [&](double r) { return phi(axis, t_lo, r) * std::sqrt(g2(r)); };
        const double node = std::sqrt(0.6) * r_half;
        const double mean = (5 * f(r_mid - node) + 8 * f(r_mid) + 5 * f(r_mid + node)) / 18;
        y.col(j) += mean * (w_next.col(j) - w_prev.col(j));
      }
      w_prev = w_next;
    }
    for (int j = 0; j < dim; ++j) y.col(j) += schedule->alpha(t_lo) * mu[static_cast<std::size_t>(j)];
    return y;
  }
};

}  // namespace diffsde::test
