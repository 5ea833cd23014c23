// diffusers' DPMSolverSinglestepScheduler: dpm_solver's singlestep method with grid stages,
// and scheduler configs of that class translated to it, against a transcription of the
// scheduler written here from its public source (set_timesteps, get_order_list and the step
// loop with its saved sample and the model outputs of the last nodes), in float64, on the
// analytic network of the timestep from the same x_T.
#include <catch2/catch.hpp>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "diffsde/config.hpp"
#include "diffsde/diffusers_config.hpp"
#include "diffsde/driver.hpp"
#include "diffsde/error.hpp"
#include "diffsde/grid.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/solvers/dpm_solver.hpp"
#include "support/diffusers_reference.hpp"
#include "support/exact.hpp"
#include "support/fixtures.hpp"
#include "support/orders.hpp"

using namespace diffsde;
using namespace diffsde::test;
using nlohmann::json;

namespace {

// ---------------------------------------------------------------------------
// The transcription.

// get_order_list, with set_timesteps' switches of lower_order_final (steps not a multiple of
// the order; a final sigma of zero) and the final-sigma-zero rule of get_order_list.
std::vector<int> ref_order_list(long order, bool lower_order_final, long steps, const std::string& final_type) {
  if (!lower_order_final && steps % order != 0) lower_order_final = true;
  if (!lower_order_final && final_type == "zero") lower_order_final = true;
  std::vector<int> o;
  const auto repeat = [&o](const std::vector<int>& run, long times) {
    for (long i = 0; i < times; ++i) o.insert(o.end(), run.begin(), run.end());
  };
  if (lower_order_final) {
    if (order == 3) {
      if (steps % 3 == 0) {
        repeat({1, 2, 3}, steps / 3 - 1);
        repeat({1, 2}, 1);
        repeat({1}, 1);
      } else if (steps % 3 == 1) {
        repeat({1, 2, 3}, steps / 3);
        repeat({1}, 1);
      } else {
        repeat({1, 2, 3}, steps / 3);
        repeat({1, 2}, 1);
      }
    } else if (order == 2) {
      if (steps % 2 == 0) {
        repeat({1, 2}, steps / 2 - 1);
        repeat({1, 1}, 1);
      } else {
        repeat({1, 2}, steps / 2);
        repeat({1}, 1);
      }
    } else {
      repeat({1}, steps);
    }
  } else {
    if (order == 3) repeat({1, 2, 3}, steps / 3);
    else if (order == 2) repeat({1, 2}, steps / 2);
    else repeat({1}, steps);
  }
  if (final_type == "zero" && !o.empty()) o.back() = 1;
  return o;
}

// set_timesteps: linspace timesteps below the lambda clip, or Karras sigmas and their rounded
// timesteps; then the final sigma.
void ref_singlestep_timesteps(const RefTable& tab, long S, bool karras, const std::string& final_type,
                              double lambda_min_clipped, std::vector<double>& ts, std::vector<double>& sig) {
  const long N = static_cast<long>(tab.alphas_cumprod.size());
  ts.clear();
  sig.clear();
  // searchsorted(flip(lambda_t), lambda_min_clipped): how many lambdas lie below the clip.
  long clipped_idx = 0;
  for (double ac : tab.alphas_cumprod)
    if (std::log(std::sqrt(ac)) - std::log(std::sqrt(1 - ac)) < lambda_min_clipped) ++clipped_idx;
  const auto v = lin(0, static_cast<double>(N - 1 - clipped_idx), S + 1);
  for (long i = S; i >= 1; --i) ts.push_back(rnd(v[i]));
  if (karras) {
    const double smin = tab.sigmas_table.front(), smax = tab.sigmas_table.back(), rho = 7;
    const auto ramp = lin(0, 1, S);
    ts.clear();
    for (long i = 0; i < S; ++i) {
      const double s = std::pow(std::pow(smax, 1 / rho) + ramp[i] * (std::pow(smin, 1 / rho) - std::pow(smax, 1 / rho)), rho);
      sig.push_back(s);
      ts.push_back(rnd(ref_sigma_to_t(s, tab.log_sigmas)));
    }
  } else {
    for (double t : ts) sig.push_back(ref_interp(t, tab.sigmas_table));
  }
  sig.push_back(final_type == "zero" ? 0.0 : tab.sigmas_table.front());
}

// _threshold_sample: per sample, s = the ratio-quantile of |x0| (linear interpolation, as
// torch.quantile), clamped to [1, max]; x0 clamped to [-s, s] and divided by s.
State ref_threshold(const State& x0, double ratio, double max_value) {
  State out = x0;
  for (Eigen::Index i = 0; i < x0.rows(); ++i) {
    std::vector<double> a;
    for (Eigen::Index j = 0; j < x0.cols(); ++j) a.push_back(std::fabs(x0(i, j)));
    std::sort(a.begin(), a.end());
    const double pos = ratio * static_cast<double>(a.size() - 1);
    const std::size_t lo = static_cast<std::size_t>(std::floor(pos));
    const std::size_t hi = std::min(lo + 1, a.size() - 1);
    const double q = a[lo] + (pos - static_cast<double>(lo)) * (a[hi] - a[lo]);
    const double s = std::min(std::max(q, 1.0), max_value);
    for (Eigen::Index j = 0; j < x0.cols(); ++j) out(i, j) = std::min(std::max(x0(i, j), -s), s) / s;
  }
  return out;
}

// The step loop: convert_model_output, the shift of model_outputs, the order of the list
// (lowered while outputs are missing), self.sample kept at order 1, and the first-, second-
// and third-order singlestep updates in the midpoint form, from self.sample.
State ref_singlestep(State x, const std::vector<double>& ts, const std::vector<double>& sig, long solver_order,
                     const std::string& algorithm, const std::vector<int>& order_list,
                     const std::function<State(const State&, double)>& net, double threshold_max) {
  const bool pp = algorithm == "dpmsolver++";
  const auto alpha_of = [](double s) { return 1 / std::sqrt(s * s + 1); };
  const auto sigma_of = [](double s) { return s / std::sqrt(s * s + 1); };
  const auto lambda_of = [&](double s) { return std::log(alpha_of(s)) - std::log(sigma_of(s)); };
  const std::size_t k = static_cast<std::size_t>(solver_order);
  std::vector<State> outputs(k);
  std::vector<bool> present(k, false);
  State sample;
  for (std::size_t i = 0; i < ts.size(); ++i) {
    const State eps = net(x, ts[i]);
    const double a_i = alpha_of(sig[i]), s_i = sigma_of(sig[i]);
    State m = pp ? State((x - s_i * eps) / a_i) : eps;
    if (pp && !std::isnan(threshold_max)) m = ref_threshold(m, 0.995, threshold_max);
    for (std::size_t j = 0; j + 1 < k; ++j) {
      outputs[j] = outputs[j + 1];
      present[j] = present[j + 1];
    }
    outputs[k - 1] = m;
    present[k - 1] = true;
    long order = order_list[i];
    while (!present[k - static_cast<std::size_t>(order)]) --order;
    if (order == 1) sample = x;
    const double a_t = alpha_of(sig[i + 1]), s_t = sigma_of(sig[i + 1]);
    const double lambda_t = std::log(a_t) - std::log(s_t);
    if (order == 1) {
      const double h = lambda_t - lambda_of(sig[i]);
      x = pp ? State((s_t / s_i) * sample - (a_t * (std::exp(-h) - 1.0)) * m)
             : State((a_t / a_i) * sample - (s_t * (std::exp(h) - 1.0)) * m);
    } else if (order == 2) {
      const double s1 = sig[i - 1];
      const State& m0 = outputs[k - 1];
      const State& m1 = outputs[k - 2];
      const double h = lambda_t - lambda_of(s1), h_0 = lambda_of(sig[i]) - lambda_of(s1);
      const double r0 = h_0 / h;
      const State D0 = m1, D1 = (1.0 / r0) * (m0 - m1);
      if (pp)
        x = (s_t / sigma_of(s1)) * sample - (a_t * (std::exp(-h) - 1.0)) * D0 - 0.5 * (a_t * (std::exp(-h) - 1.0)) * D1;
      else
        x = (a_t / alpha_of(s1)) * sample - (s_t * (std::exp(h) - 1.0)) * D0 - 0.5 * (s_t * (std::exp(h) - 1.0)) * D1;
    } else {
      const double s2 = sig[i - 2];  // r1 (from sig[i - 1]) enters only the heun form
      const State& m0 = outputs[k - 1];
      const State& m2 = outputs[k - 3];
      const double h = lambda_t - lambda_of(s2), h_0 = lambda_of(sig[i]) - lambda_of(s2);
      const double r0 = h_0 / h;
      const State D0 = m2, D1_1 = (1.0 / r0) * (m0 - m2);
      if (pp)
        x = (s_t / sigma_of(s2)) * sample - (a_t * (std::exp(-h) - 1.0)) * D0 +
            (a_t * ((std::exp(-h) - 1.0) / h + 1.0)) * D1_1;
      else
        x = (a_t / alpha_of(s2)) * sample - (s_t * (std::exp(h) - 1.0)) * D0 -
            (s_t * ((std::exp(h) - 1.0) / h - 1.0)) * D1_1;
    }
  }
  return x;
}

// ---------------------------------------------------------------------------
// The runs compared.

State run_translated(const json& config) {
  const json native = expand_scheduler_config(config, "");
  SampleJob job = build_sample_job(parse_sample_config(native));
  run_sample_job(job);
  return job.x;
}

json base_config(const json& scheduler, long steps) {
  return {{"scheduler_config", scheduler}, {"steps", steps}, {"model", {{"name", "gmm"}}}, {"batch", 5}, {"seed", 3}};
}

// The transcription's network: the analytic model's eps at timestep tau's time.
struct Network {
  std::shared_ptr<const Schedule> schedule;
  std::shared_ptr<Model> model;
  long n = 0;
  State operator()(const State& x, double tau) const {
    State out(x.rows(), x.cols());
    model->eps(x, (tau + 1) / static_cast<double>(n), out);
    return out;
  }
};

Network network(const json& schedule_json) {
  Network net;
  net.schedule = std::shared_ptr<const Schedule>(schedule_registry().create(schedule_json, "schedule"));
  net.model = model_registry().create(json{{"name", "gmm"}}, "model", BuildContext{net.schedule, ""});
  net.n = dynamic_cast<const VpDiscreteSchedule&>(*net.schedule).num_steps();
  return net;
}

double max_rel(const State& a, const State& b) { return ((a - b).abs() / b.abs().max(1e-3)).maxCoeff(); }

struct Case {
  long order;
  std::string algorithm;
  bool lower_order_final;
  std::string final_type;
  bool karras;
  long steps;
  std::string beta_schedule = "linear";
  double lambda_min_clipped = -std::numeric_limits<double>::infinity();
  double threshold_max = std::numeric_limits<double>::quiet_NaN();  // thresholding off
};

json scheduler_json(const Case& c) {
  json sc = {{"_class_name", "DPMSolverSinglestepScheduler"},
             {"beta_schedule", c.beta_schedule},
             {"solver_order", c.order},
             {"algorithm_type", c.algorithm},
             {"lower_order_final", c.lower_order_final},
             {"final_sigmas_type", c.final_type},
             {"use_karras_sigmas", c.karras}};
  if (std::isfinite(c.lambda_min_clipped)) sc["lambda_min_clipped"] = c.lambda_min_clipped;
  if (!std::isnan(c.threshold_max)) {
    sc["thresholding"] = true;
    sc["sample_max_value"] = c.threshold_max;
  }
  return sc;
}

// The transcription's result for the case, from the x_T of the translated config's job.
State reference(const Case& c, const json& native) {
  const Network net = network(native["schedule"]);
  const RefTable tab = ref_table(dynamic_cast<const VpDiscreteSchedule&>(*net.schedule).betas());
  std::vector<double> ts, sig;
  ref_singlestep_timesteps(tab, c.steps, c.karras, c.final_type, c.lambda_min_clipped, ts, sig);
  const State x_T = build_sample_job(parse_sample_config(native)).x;
  return ref_singlestep(x_T, ts, sig, c.order, c.algorithm,
                        ref_order_list(c.order, c.lower_order_final, c.steps, c.final_type), net, c.threshold_max);
}

const std::vector<Case>& cases() {
  static const std::vector<Case> all = {
      {1, "dpmsolver++", false, "zero", false, 7},
      {2, "dpmsolver++", false, "zero", false, 10},
      {2, "dpmsolver++", false, "sigma_min", false, 10},
      {2, "dpmsolver++", true, "sigma_min", false, 10},
      {2, "dpmsolver++", true, "sigma_min", false, 9},
      {3, "dpmsolver++", true, "zero", false, 10},
      {3, "dpmsolver++", true, "zero", false, 11},
      {3, "dpmsolver++", false, "sigma_min", false, 12},
      {3, "dpmsolver++", true, "sigma_min", false, 12},
      {3, "dpmsolver++", true, "sigma_min", false, 14},
      {1, "dpmsolver", false, "sigma_min", false, 6},
      {2, "dpmsolver", false, "sigma_min", false, 8},
      {2, "dpmsolver", true, "sigma_min", false, 7},
      {3, "dpmsolver", false, "sigma_min", false, 9},
      {3, "dpmsolver", true, "sigma_min", false, 11},
      {3, "dpmsolver", false, "sigma_min", false, 10},
      {3, "dpmsolver++", true, "zero", true, 10},
      {2, "dpmsolver++", false, "zero", true, 8},
      {2, "dpmsolver++", true, "sigma_min", true, 9},
      {3, "dpmsolver", true, "sigma_min", true, 12},
      {3, "dpmsolver++", false, "sigma_min", true, 13},
      {2, "dpmsolver++", true, "zero", false, 10, "squaredcos_cap_v2", -5.1},
      {3, "dpmsolver++", true, "zero", false, 20, "scaled_linear"},
      {3, "dpmsolver++", true, "zero", false, 11, "linear", -std::numeric_limits<double>::infinity(), 1.2},
      {2, "dpmsolver++", true, "sigma_min", true, 9, "linear", -std::numeric_limits<double>::infinity(), 1.05},
  };
  return all;
}

}  // namespace

TEST_CASE("dpm_singlestep_orders is diffusers' get_order_list", "[diffusers]") {
  for (int order : {1, 2, 3})
    for (bool lof : {false, true})
      for (long steps = 1; steps <= 31; ++steps) {
        INFO("order " << order << " lower_order_final " << lof << " steps " << steps);
        CHECK(dpm_singlestep_orders(order, lof, static_cast<std::size_t>(steps)) ==
              ref_order_list(order, lof, steps, "sigma_min"));
      }
  CHECK(dpm_singlestep_orders(3, true, 6) == std::vector<int>{1, 2, 3, 1, 2, 1});
  CHECK(dpm_singlestep_orders(3, false, 8) == std::vector<int>{1, 2, 3, 1, 2, 3, 1, 2});
  CHECK(dpm_singlestep_orders(2, true, 4) == std::vector<int>{1, 2, 1, 1});
  CHECK(dpm_singlestep_orders(2, false, 4) == std::vector<int>{1, 2, 1, 2});
}

TEST_CASE("DPMSolverSinglestepScheduler configs against the transcription of its step", "[diffusers]") {
  double worst = 0;
  for (const Case& c : cases()) {
    INFO("order " << c.order << " " << c.algorithm << " lower_order_final " << c.lower_order_final << " final "
                  << c.final_type << " karras " << c.karras << " steps " << c.steps << " " << c.beta_schedule);
    const json config = base_config(scheduler_json(c), c.steps);
    const json native = expand_scheduler_config(config, "");
    CHECK(native["solver"]["stages"] == "grid");
    CHECK(native["solver"]["method"] == "singlestep");
    const State got = run_translated(config);
    const State want = reference(c, native);
    REQUIRE(want.allFinite());
    const double err = max_rel(got, want);
    worst = std::max(worst, err);
    CHECK(err < 1e-8);
    if (!std::isnan(c.threshold_max)) {
      Case off = c;
      off.threshold_max = std::numeric_limits<double>::quiet_NaN();
      CHECK(max_rel(reference(off, native), want) > 1e-6);  // the thresholding acts
    }
    // The same config with lambda stages is another method: the comparison can fail.
    json lambda = native;
    lambda["solver"].erase("orders");
    lambda["solver"]["stages"] = "lambda";
    if (c.order > 1 && !c.karras) {
      SampleJob job = build_sample_job(parse_sample_config(lambda));
      run_sample_job(job);
      CHECK(max_rel(job.x, want) > 1e-6);
    }
  }
  WARN("DPMSolverSinglestepScheduler parity: worst relative difference " << worst << " over " << cases().size()
                                                                         << " configs");
}

TEST_CASE("dpm_solver grid stages with its own order list against the transcription", "[diffusers]") {
  // No translation: the solver on the diffusers grid, its orders from order and
  // lower_order_final (or given), with the model evaluated at the grid times.
  for (const Case& c : {Case{3, "dpmsolver++", false, "sigma_min", false, 12}, Case{3, "dpmsolver", true, "sigma_min", false, 11},
                        Case{2, "dpmsolver++", true, "zero", false, 9}, Case{3, "dpmsolver++", true, "zero", false, 12},
                        Case{3, "dpmsolver++", true, "zero", false, 11}}) {
    INFO("order " << c.order << " " << c.algorithm << " lower_order_final " << c.lower_order_final << " steps "
                  << c.steps << " final " << c.final_type);
    const json native = expand_scheduler_config(base_config(scheduler_json(c), c.steps), "");
    const Network net = network(native["schedule"]);
    const auto times = grid_registry().create(native["grid"], "grid", BuildContext{net.schedule, ""})->times(*net.schedule);
    const State want = reference(c, native);
    // final_sigmas_type zero switches diffusers' lower_order_final on; the solver's step to
    // sigma 0 is first order by itself.
    const bool lof = c.lower_order_final || c.final_type == "zero";
    for (bool given : {false, true}) {
      json solver = {{"name", "dpm_solver"}, {"method", "singlestep"}, {"stages", "grid"}, {"order", c.order},
                     {"algorithm", c.algorithm}};
      if (given)
        solver["orders"] = dpm_singlestep_orders(static_cast<int>(c.order), lof, static_cast<std::size_t>(c.steps));
      else
        solver["lower_order_final"] = lof;
      auto s = make_solver(solver);
      State x = build_sample_job(parse_sample_config(native)).x;
      const Summary summary = integrate(*s, *net.schedule, *net.model, times, x, nullptr);
      CHECK(summary.nfe == c.steps);  // one evaluation per grid step
      CHECK(max_rel(x, want) < 1e-8);
    }
  }
}

TEST_CASE("dpm_solver grid stages: traits, and orders lists that are not runs refused", "[diffusers]") {
  for (int order : {1, 2, 3}) {
    const auto t = make_solver({{"name", "dpm_solver"}, {"method", "singlestep"}, {"stages", "grid"}, {"order", order}})
                       ->traits();
    CHECK(t.order == order);
    CHECK(t.evals_per_step == 1);
    CHECK(t.warmup_steps == 0);
    CHECK_FALSE(t.stochastic);
  }
  const auto path = [](const json& solver) {
    return config_error_path([&] { solver_registry().create(solver, "solver"); });
  };
  const json grid = {{"name", "dpm_solver"}, {"method", "singlestep"}, {"stages", "grid"}, {"order", 3}};
  const auto with_orders = [&](const json& orders) {
    json s = grid;
    s["orders"] = orders;
    return s;
  };
  CHECK(path(with_orders({1, 2, 3, 1, 2, 1})) == "(none)");
  CHECK(path(with_orders({1, 1, 2, 3, 1})) == "(none)");
  CHECK(path(with_orders({2, 3, 1})) == "solver.orders");     // a run must begin at 1
  CHECK(path(with_orders({1, 3, 1})) == "solver.orders");     // 1, 2, .., k
  CHECK(path(with_orders({1, 2, 2})) == "solver.orders");     // no repeat within a run
  CHECK(path(with_orders({1, 2, 3, 4})) == "solver.orders");  // above order
  json two = with_orders({1, 2, 3});
  two["order"] = 2;
  CHECK(path(two) == "solver.orders");
  try {
    solver_registry().create(with_orders({1, 3}), "solver");
    FAIL("expected a ConfigError");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()).find("orders") != std::string::npos);
    CHECK(std::string(e.what()).find("must be 1 or 2") != std::string::npos);
  }
  // stages applies to singlestep; orders with lambda stages stays refused.
  CHECK(path({{"name", "dpm_solver"}, {"method", "multistep"}, {"stages", "grid"}}) == "solver.stages");
  CHECK(path({{"name", "dpm_solver"}, {"method", "singlestep"}, {"orders", {1, 2}}}) == "solver.orders");
  CHECK(path({{"name", "dpm_solver"}, {"method", "singlestep"}, {"stages", "middle"}}) == "solver.stages");
  // An orders list of another length than the grid's steps is refused when the run starts.
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel model = test_gmm(schedule);
  auto s = make_solver(with_orders({1, 2, 3}));
  State x = standard_normal_rows(4, 2, 1);
  CHECK_THROWS_AS(integrate(*s, *schedule, model, TimeUniformGrid({1.0, 1e-3, 5}).times(*schedule), x, nullptr), Error);
}

TEST_CASE("dpm_solver lambda stages are unchanged by the option", "[diffusers]") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel model = test_gmm(schedule);
  const auto times = TimeUniformGrid({1.0, 1e-3, 9}).times(*schedule);
  for (int order : {1, 2, 3})
    for (const char* algorithm : {"dpmsolver", "dpmsolver++"}) {
      INFO("order " << order << " " << algorithm);
      const json base = {{"name", "dpm_solver"}, {"method", "singlestep"}, {"order", order}, {"algorithm", algorithm}};
      json lambda = base, grid = base;
      lambda["stages"] = "lambda";
      grid["stages"] = "grid";
      State a = standard_normal_rows(6, 2, 2), b = a, g = a;
      const Summary sa = integrate(*make_solver(base), *schedule, model, times, a, nullptr);
      const Summary sb = integrate(*make_solver(lambda), *schedule, model, times, b, nullptr);
      const Summary sg = integrate(*make_solver(grid), *schedule, model, times, g, nullptr);
      CHECK((a == b).all());  // bit for bit
      CHECK(sa.nfe == 9 * order);
      CHECK(sb.nfe == sa.nfe);
      CHECK(sg.nfe == 9);
      if (order == 1) CHECK((g == a).all());  // order 1 is DDIM either way
      else CHECK(max_rel(g, a) > 1e-6);
    }
}

TEST_CASE("dpm_solver grid stages of order 3 converge at order 3", "[diffusers]") {
  // Runs 1, 2, 3 filling the grid (steps a multiple of 3, no lower_order_final): each run is
  // a third-order singlestep method over three grid steps.
  const OrderProblem p;
  const State x_T = standard_normal_rows(32, 2, 1);
  const State x_exact = p.exact.pf_ode_flow(x_T, p.t_start, p.t_end);
  for (const char* algorithm : {"dpmsolver", "dpmsolver++"}) {
    std::vector<double> hs, errors;
    for (int steps : {30, 60, 120, 240}) {
      auto s = make_solver({{"name", "dpm_solver"}, {"method", "singlestep"}, {"stages", "grid"}, {"order", 3},
                            {"algorithm", algorithm}, {"lower_order_final", false}});
      State x = x_T;
      integrate(*s, *p.schedule, p.model, TimeUniformGrid({p.t_start, p.t_end, steps}).times(*p.schedule), x, nullptr);
      hs.push_back((p.t_start - p.t_end) / steps);
      errors.push_back((x - x_exact).abs().maxCoeff());
    }
    const double slope = log_log_slope(hs, errors);
    INFO(algorithm << ": observed order " << slope << "; errors " << errors[0] << " " << errors[3]);
    CHECK(std::fabs(slope - 3) < 0.4);
  }
}

TEST_CASE("DPMSolverSinglestepScheduler: what cannot be honoured is an error at the key", "[diffusers]") {
  const auto path = [](json sc, long steps = 10) {
    sc["_class_name"] = "DPMSolverSinglestepScheduler";
    return config_error_path([&] { expand_scheduler_config(base_config(sc, steps), ""); });
  };
  CHECK(path(json::object()) == "(none)");
  CHECK(path({{"solver_type", "heun"}}) == "scheduler_config.solver_type");
  CHECK(path({{"solver_order", 4}}) == "scheduler_config.solver_order");
  CHECK(path({{"algorithm_type", "sde-dpmsolver++"}}) == "scheduler_config.algorithm_type");
  CHECK(path({{"algorithm_type", "dpmsolver"}}) == "scheduler_config.final_sigmas_type");  // zero by default
  CHECK(path({{"algorithm_type", "dpmsolver"}, {"final_sigmas_type", "sigma_min"}}) == "(none)");
  CHECK(path({{"use_exponential_sigmas", true}}) == "scheduler_config.use_exponential_sigmas");
  CHECK(path({{"use_beta_sigmas", true}}) == "scheduler_config.use_beta_sigmas");
  CHECK(path({{"use_flow_sigmas", true}}) == "scheduler_config.use_flow_sigmas");
  CHECK(path({{"use_dynamic_shifting", true}}) == "scheduler_config.use_dynamic_shifting");
  CHECK(path({{"variance_type", "learned_range"}}) == "scheduler_config.variance_type");
  // Keys the class does not have are errors, as for every class; read as this class
  // (scheduler_class, diffusers' from_config), a Stable Diffusion file's spacing keys are
  // dropped with a note and the timesteps are the class's own.
  CHECK(path({{"timestep_spacing", "linspace"}}) == "scheduler_config.timestep_spacing");
  CHECK(path({{"steps_offset", 1}}) == "scheduler_config.steps_offset");
  CHECK(path({{"rescale_betas_zero_snr", true}}) == "scheduler_config.rescale_betas_zero_snr");
  {
    json config = base_config({{"_class_name", "PNDMScheduler"}, {"timestep_spacing", "leading"}, {"steps_offset", 1},
                               {"skip_prk_steps", true}, {"set_alpha_to_one", false}},
                              10);
    config["scheduler_class"] = "DPMSolverSinglestepScheduler";
    std::vector<std::string> notes;
    const json native = expand_scheduler_config(config, "", &notes);
    CHECK(native["grid"]["timestep_spacing"] == "linspace");
    CHECK_FALSE(native["grid"].contains("steps_offset"));
    bool noted = false;
    for (const auto& note : notes) noted = noted || note.find("scheduler_config.timestep_spacing") != std::string::npos;
    CHECK(noted);
  }
  CHECK(path({{"prediction_type", "flow_prediction"}}) == "scheduler_config.prediction_type");
  CHECK(path({{"no_such_key", 1}}) == "scheduler_config.no_such_key");
  CHECK(path({{"thresholding", true}, {"algorithm_type", "dpmsolver"}, {"final_sigmas_type", "sigma_min"}}) ==
        "scheduler_config.thresholding");
  // Karras sigmas ending at sigma_min repeat it; a last step of order 2 there is refused.
  const json karras_min = {{"use_karras_sigmas", true}, {"final_sigmas_type", "sigma_min"}, {"solver_order", 3},
                           {"lower_order_final", true}};
  CHECK(path(karras_min, 11) == "scheduler_config.final_sigmas_type");  // ... 1 2
  CHECK(path(karras_min, 12) == "(none)");                              // ... 1 2 1
  try {
    expand_scheduler_config(base_config({{"_class_name", "DPMSolverSinglestepScheduler"}, {"solver_type", "heun"}}, 10), "");
    FAIL("expected a ConfigError");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()).find("heun") != std::string::npos);
  }
}

TEST_CASE("DPMSolverSinglestepScheduler: the translation's order lists", "[diffusers]") {
  const auto orders = [](const json& extra, long steps) {
    json sc = {{"_class_name", "DPMSolverSinglestepScheduler"}};
    sc.update(extra);
    return expand_scheduler_config(base_config(sc, steps), "")["solver"]["orders"].get<std::vector<int>>();
  };
  // Defaults: order 2, final sigma zero, which switches lower_order_final on.
  CHECK(orders(json::object(), 6) == std::vector<int>{1, 2, 1, 2, 1, 1});
  CHECK(orders({{"solver_order", 3}}, 8) == std::vector<int>{1, 2, 3, 1, 2, 3, 1, 1});  // last step to sigma 0
  CHECK(orders({{"solver_order", 3}, {"final_sigmas_type", "sigma_min"}}, 6) == std::vector<int>{1, 2, 3, 1, 2, 3});
  CHECK(orders({{"solver_order", 3}, {"final_sigmas_type", "sigma_min"}}, 7) == std::vector<int>{1, 2, 3, 1, 2, 3, 1});
  CHECK(orders({{"solver_order", 3}, {"final_sigmas_type", "sigma_min"}, {"lower_order_final", true}}, 6) ==
        std::vector<int>{1, 2, 3, 1, 2, 1});
  // Karras sigmas with sigma_min: the grid leaves out the step of length zero, and its entry.
  CHECK(orders({{"solver_order", 2}, {"final_sigmas_type", "sigma_min"}, {"use_karras_sigmas", true}}, 9) ==
        std::vector<int>{1, 2, 1, 2, 1, 2, 1, 2});
  // Read as another class (scheduler_class), keys DPMSolverSinglestepScheduler lacks are dropped.
  std::vector<std::string> notes;
  const json native = expand_scheduler_config(
      {{"scheduler_config", {{"_class_name", "EulerDiscreteScheduler"}, {"interpolation_type", "linear"}}},
       {"scheduler_class", "DPMSolverSinglestepScheduler"}, {"steps", 6}, {"model", {{"name", "gmm"}}}},
      "", &notes);
  CHECK(native["solver"]["stages"] == "grid");
  CHECK(notes.size() == 1);
}
