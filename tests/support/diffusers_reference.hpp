// A transcription of diffusers' schedulers, written from its public source in double
// precision, for the parity tests (tests/test_diffusers.cpp, tests/torch/): numpy's
// linspace, float arange and round-half-to-even; the table of sigmas; _sigma_to_t; the
// set_timesteps of DPMSolverMultistepScheduler; and its step loop (dpmsolver++, orders 1-3,
// midpoint). Header-only, test use only.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "diffsde/state.hpp"

namespace diffsde::test {

// ---------------------------------------------------------------------------
// The transcription: diffusers' set_timesteps, step by step as its source reads, in
// double precision (numpy's linspace, float arange and round-half-to-even).

inline std::vector<double> lin(double a, double b, long n) {
  std::vector<double> y;
  if (n == 1) return {a};
  const double step = (b - a) / static_cast<double>(n - 1);
  for (long i = 0; i < n; ++i) y.push_back(static_cast<double>(i) * step + a);
  y.back() = b;
  return y;
}

inline std::vector<double> arange_float(double start, double stop, double step) {
  std::vector<double> y;
  const long n = static_cast<long>(std::ceil((stop - start) / step));
  const double second = start + step, delta = second - start;
  for (long i = 0; i < n; ++i) y.push_back(i == 0 ? start : i == 1 ? second : start + static_cast<double>(i) * delta);
  return y;
}

inline double rnd(double x) {  // numpy.round
  const double f = std::floor(x), d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return std::fmod(f, 2.0) == 0 ? f : f + 1;
}

struct RefTable {
  std::vector<double> alphas_cumprod, sigmas_table, log_sigmas;
};

inline RefTable ref_table(const std::vector<double>& betas) {
  RefTable r;
  double prod = 1;
  for (double b : betas) {
    prod *= 1.0 - b;
    r.alphas_cumprod.push_back(prod);
    r.sigmas_table.push_back(std::sqrt((1 - prod) / prod));
    r.log_sigmas.push_back(std::log(r.sigmas_table.back()));
  }
  return r;
}

inline double ref_sigma_to_t(double sigma, const std::vector<double>& log_sigmas) {
  const double log_sigma = std::log(std::max(sigma, 1e-10));
  const long n = static_cast<long>(log_sigmas.size());
  // cumsum(dists >= 0).argmax(): the first index where the running count peaks.
  long best = 0, count = 0, best_count = -1;
  for (long i = 0; i < n; ++i) {
    count += (log_sigma - log_sigmas[i] >= 0) ? 1 : 0;
    if (count > best_count) {
      best_count = count;
      best = i;
    }
  }
  const long low = std::min(best, n - 2), high = low + 1;
  const double lo = log_sigmas[low], hi = log_sigmas[high];
  double w = (lo - log_sigma) / (lo - hi);
  w = std::min(1.0, std::max(0.0, w));
  return (1 - w) * static_cast<double>(low) + w * static_cast<double>(high);
}

inline double ref_interp(double x, const std::vector<double>& fp) {
  const long j = std::min(static_cast<long>(std::floor(x)), static_cast<long>(fp.size()) - 2);
  return fp[j] + (fp[j + 1] - fp[j]) * (x - static_cast<double>(j));
}

// DPMSolverMultistepScheduler.set_timesteps (no lambda clip): timesteps and sigmas.
inline void ref_dpm_timesteps(const RefTable& tab, long S, const std::string& spacing, long offset, const std::string& rule,
                       const std::string& final_type, std::vector<double>& ts, std::vector<double>& sig) {
  const long N = static_cast<long>(tab.alphas_cumprod.size());
  ts.clear();
  sig.clear();
  if (spacing == "linspace") {
    auto v = lin(0, static_cast<double>(N - 1), S + 1);
    for (long i = S; i >= 1; --i) ts.push_back(rnd(v[i]));
  } else if (spacing == "leading") {
    const long ratio = N / (S + 1);
    for (long i = S; i >= 1; --i) ts.push_back(rnd(static_cast<double>(i * ratio)) + static_cast<double>(offset));
  } else {
    for (double v : arange_float(static_cast<double>(N), 0, -static_cast<double>(N) / static_cast<double>(S)))
      ts.push_back(rnd(v) - 1);
  }
  if (rule != "timesteps") {
    const double smin = tab.sigmas_table.front(), smax = tab.sigmas_table.back(), rho = 7;
    const auto ramp = lin(0, 1, S);
    ts.clear();
    for (long i = 0; i < S; ++i) {
      const double r = ramp[i];
      double s = 0;
      if (rule == "karras")
        s = std::pow(std::pow(smax, 1 / rho) + r * (std::pow(smin, 1 / rho) - std::pow(smax, 1 / rho)), rho);
      else if (rule == "exponential")
        s = std::exp(lin(std::log(smax), std::log(smin), S)[i]);
      else  // lu_lambdas
        s = std::exp(tab.log_sigmas.back() + r * (tab.log_sigmas.front() - tab.log_sigmas.back()));
      sig.push_back(s);
      ts.push_back(rnd(ref_sigma_to_t(s, tab.log_sigmas)));
    }
  } else {
    for (double t : ts) sig.push_back(ref_interp(t, tab.sigmas_table));
  }
  sig.push_back(final_type == "zero" ? 0.0 : tab.sigmas_table.front());
}

// x0 from a network output at (alpha, sigma): prediction_type epsilon.
inline State ref_x0_from_eps(const State& output, const State& x, double alpha, double sigma) {
  return (x - sigma * output) / alpha;
}
// prediction_type v_prediction.
inline State ref_x0_from_v(const State& output, const State& x, double alpha, double sigma) {
  return alpha * x - sigma * output;
}

// DPMSolverMultistepScheduler.step over the timesteps `ts` and sigmas `sig` (one more than
// ts), dpmsolver++ with the midpoint second order and lower_order_final: `net(x, tau)` is the
// network at timestep tau, `to_x0` its conversion (convert_model_output).
inline State ref_dpm_solver_multistep(
    State x, const std::vector<double>& ts, const std::vector<double>& sig, long order, const std::string& final_type,
    const std::function<State(const State&, double)>& net,
    const std::function<State(const State&, const State&, double, double)>& to_x0) {
  std::vector<State> outputs;
  long lower_order_nums = 0;
  const long n = static_cast<long>(ts.size());
  const auto lam = [](double s) {
    const double a = 1 / std::sqrt(s * s + 1);
    return std::log(a) - std::log(s * a);
  };
  for (long i = 0; i < n; ++i) {
    const double s0 = sig[i];
    const double a0 = 1 / std::sqrt(s0 * s0 + 1), sg0 = s0 * a0;
    const State x0 = to_x0(net(x, ts[i]), x, a0, sg0);
    outputs.push_back(x0);
    const bool lower_final = i == n - 1 && (n < 15 || final_type == "zero");
    const bool lower_second = i == n - 2 && n < 15;
    const double st = sig[i + 1];
    const double at = 1 / std::sqrt(st * st + 1), sgt = st * at;
    const double h = lam(st) - lam(s0);
    if (order == 1 || lower_order_nums < 1 || lower_final) {
      x = (sgt / sg0) * x - (at * (std::exp(-h) - 1.0)) * x0;
    } else if (order == 3 && lower_order_nums >= 2 && !lower_second) {
      // multistep_dpm_solver_third_order_update, dpmsolver++.
      const double s1 = sig[i - 1], s2 = sig[i - 2];
      const double h0 = lam(s0) - lam(s1), h1 = lam(s1) - lam(s2);
      const double r0 = h0 / h, r1 = h1 / h;
      const State D0 = outputs[i];
      const State D1_0 = (1.0 / r0) * (outputs[i] - outputs[i - 1]);
      const State D1_1 = (1.0 / r1) * (outputs[i - 1] - outputs[i - 2]);
      const State D1 = D1_0 + (r0 / (r0 + r1)) * (D1_0 - D1_1);
      const State D2 = (1.0 / (r0 + r1)) * (D1_0 - D1_1);
      x = (sgt / sg0) * x - (at * (std::exp(-h) - 1.0)) * D0 + (at * ((std::exp(-h) - 1.0) / h + 1.0)) * D1 -
          (at * ((std::exp(-h) - 1.0 + h) / (h * h) - 0.5)) * D2;
    } else {
      const double s1 = sig[i - 1];
      const double h0 = lam(s0) - lam(s1), r0 = h0 / h;
      const State D0 = outputs[i], D1 = (1.0 / r0) * (outputs[i] - outputs[i - 1]);
      x = (sgt / sg0) * x - (at * (std::exp(-h) - 1.0)) * D0 - 0.5 * (at * (std::exp(-h) - 1.0)) * D1;
    }
    if (lower_order_nums < order) ++lower_order_nums;
  }
  return x;
}

}  // namespace diffsde::test
