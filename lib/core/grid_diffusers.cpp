// The time steps of diffusers' schedulers on a discrete schedule (DiffusersGrid in
// grid.hpp, docs/schedules_and_grids.md "diffusers"). Each rule below follows the
// set_timesteps of one family of diffusers' schedulers, in float64 (diffusers keeps its
// sigmas in float32), with numpy's arange, linspace and round-half-to-even.
#include <algorithm>
#include <boost/math/special_functions/beta.hpp>
#include <cfenv>
#include <cmath>
#include <string>
#include <vector>

#include "diffsde/error.hpp"
#include "diffsde/grid.hpp"

namespace diffsde {

namespace {

// numpy.round: halves go to the even neighbour (the default rounding mode).
double np_round(double x) { return std::nearbyint(x); }

// numpy.arange(start, stop, step) for floats: ceil((stop - start)/step) values, the
// second start + step and the others start + i * ((start + step) - start).
std::vector<double> np_arange(double start, double stop, double step) {
  const double len = std::ceil((stop - start) / step);
  std::vector<double> y;
  if (!(len > 0)) return y;
  y.resize(static_cast<std::size_t>(len));
  y[0] = start;
  if (y.size() > 1) y[1] = start + step;
  const double delta = y.size() > 1 ? y[1] - start : 0.0;
  for (std::size_t i = 2; i < y.size(); ++i) y[i] = start + static_cast<double>(i) * delta;
  return y;
}

// numpy.interp(x, arange(n), fp) for x inside [0, n - 1].
double interp_table(double x, const std::vector<double>& fp) {
  const long n = static_cast<long>(fp.size());
  if (x <= 0) return fp.front();
  if (x >= static_cast<double>(n - 1)) return fp.back();
  const long j = static_cast<long>(std::floor(x));
  const double slope = fp[static_cast<std::size_t>(j + 1)] - fp[static_cast<std::size_t>(j)];
  return slope * (x - static_cast<double>(j)) + fp[static_cast<std::size_t>(j)];
}

std::string timestep_string(double ts) {
  return ts == std::floor(ts) ? std::to_string(static_cast<long long>(ts)) : format_double(ts);
}

}  // namespace

std::vector<double> diffusers_log_sigmas(const VpDiscreteSchedule& schedule) {
  std::vector<double> out;
  out.reserve(schedule.log_alpha_bars().size());
  for (double l : schedule.log_alpha_bars()) out.push_back(std::log(std::sqrt(std::expm1(-l))));
  return out;
}

double diffusers_timestep(double sigma, const std::vector<double>& log_sigmas) {
  const double ls = std::log(std::max(sigma, 1e-10));
  const long n = static_cast<long>(log_sigmas.size());
  if (n < 2) return 0.0;
  // low: the last index whose log sigma is <= ls (0 when none), at most n - 2.
  long low = 0;
  for (long i = 0; i < n; ++i)
    if (ls - log_sigmas[static_cast<std::size_t>(i)] >= 0) low = i;
  low = std::min(low, n - 2);
  const double lo = log_sigmas[static_cast<std::size_t>(low)], hi = log_sigmas[static_cast<std::size_t>(low + 1)];
  const double w = std::clamp((lo - ls) / (lo - hi), 0.0, 1.0);
  return (1.0 - w) * static_cast<double>(low) + w * static_cast<double>(low + 1);
}

DiffusersGrid::Table DiffusersGrid::table(const Schedule& schedule) const {
  const auto* discrete = dynamic_cast<const VpDiscreteSchedule*>(&schedule);
  if (discrete == nullptr)
    throw ConfigError("", "the diffusers grid indexes a discrete schedule's steps: it needs a vp_discrete schedule, "
                          "got " + schedule.name());
  const long N = discrete->num_steps();
  const long S = o_.steps;
  const bool ddim = o_.family == "ddim", euler = o_.family == "euler";
  if (!ddim && !euler && o_.family != "dpm_solver")
    throw ConfigError("family", "unknown family '" + o_.family + "'; known: ddim, dpm_solver, euler");
  if (S < 1) throw ConfigError("steps", "must be >= 1, got " + std::to_string(S));
  if (S > N && o_.custom_timesteps.empty() && o_.custom_sigmas.empty())
    throw ConfigError("steps", "must not exceed the schedule's " + std::to_string(N) +
                                   " discrete steps (num_train_timesteps), got " + std::to_string(S));

  // The table of diffusers' sigmas: sigma_n = sqrt((1 - alpha_bar_n)/alpha_bar_n).
  std::vector<double> table_sigmas(static_cast<std::size_t>(N));
  for (long n = 0; n < N; ++n)
    table_sigmas[static_cast<std::size_t>(n)] = std::sqrt(std::expm1(-discrete->log_alpha_bars()[static_cast<std::size_t>(n)]));
  const std::vector<double> log_sigmas = diffusers_log_sigmas(*discrete);
  const double n_total = static_cast<double>(N);
  const auto time_of_timestep = [n_total](double ts) { return (ts + 1.0) / n_total; };

  if (o_.steps_offset != 0 && (!o_.custom_timesteps.empty() || !o_.custom_sigmas.empty() || o_.timestep_spacing != "leading"))
    throw ConfigError("steps_offset", "applies to leading spacing only (diffusers ignores it otherwise); remove it or "
                                      "use leading");

  Table out;
  std::vector<double>& ts = out.timesteps;
  const bool custom_sigmas = !o_.custom_sigmas.empty();
  if (!o_.custom_timesteps.empty()) {
    for (long v : o_.custom_timesteps) ts.push_back(static_cast<double>(v));
    for (std::size_t i = 0; i < ts.size(); ++i) {
      if (ts[i] < 0 || ts[i] > n_total - 1)
        throw ConfigError(join_path("timesteps", i), "timestep " + timestep_string(ts[i]) + " is outside [0, " +
                                                         std::to_string(N - 1) + "] (the schedule's discrete steps)");
      if (i > 0 && !(ts[i] < ts[i - 1]))
        throw ConfigError(join_path("timesteps", i), "timesteps must strictly decrease: " + timestep_string(ts[i]) +
                                                         " follows " + timestep_string(ts[i - 1]));
    }
  } else if (!custom_sigmas) {
    // lambda_min_clipped (dpm_solver): the timesteps stop below the first one whose
    // lambda falls under the clip.
    long last = N;
    if (!std::isnan(o_.lambda_min_clipped)) {
      long clipped = 0;
      for (long n = 0; n < N; ++n)
        if (-log_sigmas[static_cast<std::size_t>(n)] < o_.lambda_min_clipped) ++clipped;
      last = N - clipped;
    }
    const std::string& spacing = o_.timestep_spacing;
    const double offset = static_cast<double>(o_.steps_offset);
    if (spacing == "linspace") {
      if (ddim || euler) {
        const auto lin = numpy_linspace(0, n_total - 1, static_cast<int>(S));
        for (auto it = lin.rbegin(); it != lin.rend(); ++it) ts.push_back(euler ? *it : np_round(*it));
      } else {
        const auto lin = numpy_linspace(0, static_cast<double>(last) - 1, static_cast<int>(S + 1));
        for (auto it = lin.rbegin(); it + 1 != lin.rend(); ++it) ts.push_back(np_round(*it));
      }
    } else if (spacing == "leading") {
      const long divisions = (ddim || euler) ? S : S + 1;
      const long ratio = (ddim || euler ? N : last) / divisions;
      const long first = (ddim || euler) ? S - 1 : S;
      for (long k = first; k >= ((ddim || euler) ? 0 : 1); --k)
        ts.push_back(static_cast<double>(k * ratio) + offset);
    } else if (spacing == "trailing") {
      const double ratio = n_total / static_cast<double>(S);
      const double start = (ddim || euler) ? n_total : static_cast<double>(last);
      for (double v : np_arange(start, 0, -ratio)) ts.push_back(np_round(v) - 1.0);
    } else {
      throw ConfigError("timestep_spacing", "unknown spacing '" + spacing + "'; known: linspace, leading, trailing");
    }
    for (std::size_t i = 0; i < ts.size(); ++i)
      if (ts[i] < 0 || ts[i] > n_total - 1)
        throw ConfigError(spacing == "leading" && o_.steps_offset != 0 ? "steps_offset" : "steps",
                          "timestep " + timestep_string(ts[i]) + " (step " + std::to_string(i) + ") is outside [0, " +
                              std::to_string(N - 1) + "], the schedule's discrete steps");
    for (std::size_t i = 1; i < ts.size(); ++i)
      if (!(ts[i] < ts[i - 1]))
        throw ConfigError("steps", "the " + spacing + " spacing repeats timestep " + timestep_string(ts[i]) +
                                       " at " + std::to_string(S) + " steps");
  }

  std::vector<double>& sig = out.sigmas;
  std::vector<double>& t = out.times;
  std::vector<double>& mt = out.model_times;
  if (ddim) {
    if (o_.sigmas != "timesteps" || custom_sigmas)
      throw ConfigError("sigmas", "the ddim family steps on its timesteps; Karras, exponential, beta or given sigmas "
                                  "belong to the dpm_solver and euler families");
    // Each step goes from timestep T to T - N // S (the next given timestep when they are
    // given), which diffsde's solvers can follow only when it is the next timestep.
    const long c = N / S;
    for (std::size_t i = 0; i < ts.size(); ++i) {
      t.push_back(time_of_timestep(ts[i]));
      sig.push_back(interp_table(ts[i], table_sigmas));
      const double prev = o_.custom_timesteps.empty() ? ts[i] - static_cast<double>(c)
                                                      : (i + 1 < ts.size() ? ts[i + 1] : -1.0);
      if (i + 1 < ts.size()) {
        if (prev != ts[i + 1])
          throw ConfigError("timestep_spacing",
                            "diffusers' DDIM and DDPM step from timestep T to T - num_train_timesteps // steps = T - " +
                                std::to_string(c) + ", but with " + o_.timestep_spacing + " spacing and " +
                                std::to_string(S) + " steps the step from " + timestep_string(ts[i]) + " goes to " +
                                timestep_string(prev) + " while the next timestep is " + timestep_string(ts[i + 1]) +
                                ": diffsde's solvers step between consecutive grid times and cannot follow it; use "
                                "leading spacing, or a number of steps that divides " + std::to_string(N));
      } else if (prev >= 0) {
        t.push_back(time_of_timestep(prev));
        sig.push_back(interp_table(prev, table_sigmas));
      } else if (o_.set_alpha_to_one || ts[i] != 0) {
        t.push_back(o_.set_alpha_to_one ? 0.0 : time_of_timestep(0));
        sig.push_back(o_.set_alpha_to_one ? 0.0 : table_sigmas.front());
      }
      // else: the last timestep is 0 and the step ends at timestep 0's alpha_bar, a step of
      // length zero that leaves the sample as it is (DDIM's, DDPM's and PLMS's transfer with
      // alpha_bar_prev = alpha_bar_t); the grid leaves it out.
    }
    mt = t;
  } else {
    std::vector<double> s;
    const double sigma_min = table_sigmas.front(), sigma_max = table_sigmas.back();
    const std::string& rule = o_.sigmas;
    if (custom_sigmas) {
      s = o_.custom_sigmas;
    } else if (rule == "timesteps") {
      for (double v : ts) s.push_back(interp_table(v, table_sigmas));
    } else if (!o_.custom_timesteps.empty()) {
      throw ConfigError("sigmas", "given timesteps take the sigmas of their timesteps (\"sigmas\": \"timesteps\"), not " +
                                      rule);
    } else if (rule == "karras") {
      const double rho = 7.0;  // diffusers' value
      const auto ramp = numpy_linspace(0, 1, static_cast<int>(S));
      const double lo = std::pow(sigma_min, 1 / rho), hi = std::pow(sigma_max, 1 / rho);
      for (double r : ramp) s.push_back(std::pow(hi + r * (lo - hi), rho));
    } else if (rule == "exponential") {
      for (double v : numpy_linspace(std::log(sigma_max), std::log(sigma_min), static_cast<int>(S))) s.push_back(std::exp(v));
    } else if (rule == "lu_lambdas") {
      // Uniform in log sigma between the table's ends (Lu et al. 2022's logSNR spacing).
      const double lambda_max = log_sigmas.back(), lambda_min = log_sigmas.front();
      for (double r : numpy_linspace(0, 1, static_cast<int>(S))) s.push_back(std::exp(lambda_max + r * (lambda_min - lambda_max)));
    } else if (rule == "beta") {
      // Beta sigmas (Lee et al. 2024): quantiles of Beta(0.6, 0.6) at 1 - linspace(0, 1, S).
      for (double r : numpy_linspace(0, 1, static_cast<int>(S))) {
        const double p = 1.0 - r;
        const double q = p <= 0 ? 0.0 : p >= 1 ? 1.0 : boost::math::ibeta_inv(o_.beta_a, o_.beta_b, p);
        s.push_back(sigma_min + q * (sigma_max - sigma_min));
      }
    } else {
      throw ConfigError("sigmas", "unknown sigmas '" + rule + "'; known: timesteps, karras, exponential, lu_lambdas, "
                                  "beta, or a list of sigmas");
    }
    const bool rounded = o_.round_timesteps.value_or(!euler);
    if (custom_sigmas || rule != "timesteps") {
      ts.clear();
      for (double v : s) {
        const double tau = diffusers_timestep(v, log_sigmas);
        ts.push_back(rounded ? np_round(tau) : tau);
      }
    }
    for (std::size_t i = 0; i < s.size(); ++i) {
      const std::string where = custom_sigmas ? join_path("sigmas", i) : std::string("sigmas");
      if (!(s[i] > 0) || !std::isfinite(s[i]))
        throw ConfigError(where, "sigma " + format_double(s[i]) + " at step " + std::to_string(i) +
                                     " must be finite and > 0");
      if (i > 0 && !(s[i] < s[i - 1]))
        throw ConfigError(where, "sigmas must strictly decrease: " + format_double(s[i]) + " at step " +
                                     std::to_string(i) + " follows " + format_double(s[i - 1]));
      if (i > 0 && rounded && !(ts[i] < ts[i - 1]))
        throw ConfigError(where, "the rounded timesteps repeat: steps " + std::to_string(i - 1) + " and " +
                                     std::to_string(i) + " both evaluate the network at timestep " +
                                     timestep_string(ts[i]) + "; use fewer steps or other sigmas");
    }
    for (std::size_t i = 0; i < s.size(); ++i) {
      // On the table's own timesteps the time is the knot itself; elsewhere the time whose
      // sigma/alpha is the step's sigma.
      const bool knot = rule == "timesteps" && !custom_sigmas && ts[i] == std::floor(ts[i]);
      double ti = knot ? time_of_timestep(ts[i]) : schedule.t_of_lambda(-std::log(s[i]));
      // The table's largest sigma maps back to t = 1 up to rounding.
      if (ti > schedule.t_max() && ti - schedule.t_max() < 1e-12) ti = schedule.t_max();
      t.push_back(ti);
      mt.push_back(time_of_timestep(ts[i]));
    }
    if (o_.final_sigmas_type == "zero") {
      s.push_back(0.0);
      t.push_back(0.0);
    } else if (o_.final_sigmas_type == "sigma_min") {
      s.push_back(sigma_min);
      t.push_back(time_of_timestep(0));
    } else {
      throw ConfigError("final_sigmas_type", "unknown final_sigmas_type '" + o_.final_sigmas_type +
                                                 "'; known: zero, sigma_min");
    }
    mt.push_back(t.back());
    // A final sigma equal to the last one (Karras or exponential sigmas end at the table's
    // sigma_min, and final_sigmas_type sigma_min repeats it): diffusers takes a step of
    // length zero there, which leaves the sample unchanged; the grid drops it.
    if (s.size() >= 2 && std::fabs(s[s.size() - 1] - s[s.size() - 2]) <= 1e-12 * s[s.size() - 2]) {
      t.pop_back();
      mt.pop_back();
      mt.back() = t.back();
      s.pop_back();
    }
    sig = std::move(s);
  }
  for (std::size_t i = 1; i < t.size(); ++i)
    if (!(t[i] < t[i - 1]))
      throw ConfigError("steps", "grid times " + std::to_string(i - 1) + " and " + std::to_string(i) + " (t = " +
                                     format_double(t[i - 1]) + ", " + format_double(t[i]) +
                                     ") do not decrease: the final step would not move");
  if (t.front() > schedule.t_max())
    throw ConfigError("steps", "the first time " + format_double(t.front()) + " is beyond the schedule's t_max");
  return out;
}

std::vector<double> DiffusersGrid::times(const Schedule& schedule) const { return table(schedule).times; }

std::vector<double> DiffusersGrid::model_times(const Schedule& schedule) const {
  return table(schedule).model_times;
}

}  // namespace diffsde
