// unipc, deis and ipndm against exact answers: their orders on the exact Gaussian PF-ODE
// flow (time-uniform and logSNR grids), their first-order cases against DDIM, ipndm's
// variable-step weights against the classic ones, DEIS's closed-form weights against
// quadrature, one UniC step against the paper's formula, costs, t = 0 and config errors.
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <memory>

#include "diffsde/driver.hpp"
#include "diffsde/error.hpp"
#include "diffsde/grid.hpp"
#include "diffsde/noise.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/scores/analytic.hpp"
#include "diffsde/solvers/ddim.hpp"
#include "diffsde/solvers/deis.hpp"
#include "diffsde/solvers/exponential.hpp"
#include "diffsde/solvers/ipndm.hpp"
#include "diffsde/solvers/unipc.hpp"
#include "support/exact.hpp"
#include "support/fixtures.hpp"

using namespace diffsde;
using nlohmann::json;

namespace {

struct Setup {
  std::shared_ptr<VpLinearSchedule> schedule = std::make_shared<VpLinearSchedule>(0.1, 20.0);
  test::GaussianProblem problem{schedule, {0.5, -1.0}, {0.6, 1.2}};
  GaussianModel model{schedule, (Eigen::VectorXd(2) << 0.5, -1.0).finished(),
                      (Eigen::VectorXd(2) << 0.6, 1.2).finished()};
};

// Every variant the three entries list, with "name" set.
std::vector<json> listed_variants() {
  std::vector<json> out;
  for (const char* name : {"unipc", "deis", "ipndm"}) {
    const auto* entry = solver_registry().find(name);
    REQUIRE(entry != nullptr);
    for (json v : entry->variants) {
      v["name"] = name;
      out.push_back(v);
    }
  }
  return out;
}

// `steps` steps from t_start to t_end, uniform in t (`in_lambda` false) or in lambda, with
// the first `warmup` steps shrunk to span * (h/span)^((order+1)/2) in that variable, as in the
// registry-wide test, so that the lower-order warm-up does not hide the order.
std::vector<double> refinement_grid(const Schedule& sch, double t_start, double t_end, int steps,
                                    int warmup, double order, bool in_lambda) {
  const double a = in_lambda ? sch.lambda(t_start) : t_start;
  const double b = in_lambda ? sch.lambda(t_end) : t_end;
  const double span = b - a, h = span / steps;
  std::vector<double> v = {a};
  const double tiny = span * std::pow(h / span, (order + 1) / 2);
  for (int i = 0; i < warmup; ++i) v.push_back(v.back() + tiny);
  const int rest = steps - warmup;
  const double start = v.back();
  for (int i = 1; i <= rest; ++i) v.push_back(i == rest ? b : start + (b - start) * i / rest);
  std::vector<double> t;
  for (std::size_t i = 0; i < v.size(); ++i)
    t.push_back(!in_lambda || i == 0 || i + 1 == v.size() ? (in_lambda ? (i == 0 ? t_start : t_end) : v[i])
                                                         : sch.t_of_lambda(v[i]));
  return t;
}

double observed_order(const Setup& s, const json& config, bool in_lambda, double t_end,
                      const std::vector<int>& steps_list, std::vector<double>* errors_out) {
  const double t_start = 1.0;
  const State x_T = test::standard_normal_rows(64, 2, 1);
  const State x_exact = s.problem.pf_ode_flow(x_T, t_start, t_end);
  const auto traits = test::make_solver(config)->traits();
  std::vector<double> hs, errors;
  for (int steps : steps_list) {
    auto solver = test::make_solver(config);
    State x = x_T;
    integrate(*solver, *s.schedule, s.model,
              refinement_grid(*s.schedule, t_start, t_end, steps, traits.warmup_steps, traits.order, in_lambda), x,
              nullptr);
    hs.push_back(1.0 / steps);
    errors.push_back(test::max_abs(x - x_exact));
  }
  *errors_out = errors;
  return test::log_log_slope(hs, errors);
}

// x after running the solver `config` over `times`, through the registry.
State run(const json& config, const Schedule& schedule, const Model& model, const std::vector<double>& times,
          State x, Summary* summary = nullptr) {
  auto solver = test::make_solver(config);
  const Summary sum = integrate(*solver, schedule, model, times, x, nullptr);
  if (summary) *summary = sum;
  return x;
}

}  // namespace

TEST_CASE("unipc, deis and ipndm converge at their declared orders on the exact flow") {
  const Setup s;
  std::vector<json> configs = listed_variants();
  // The defaults too: unipc's lower_order_final ends on a first-order step (order 2).
  for (const char* name : {"unipc", "deis", "ipndm"}) configs.push_back({{"name", name}});
  configs.push_back({{"name", "unipc"}, {"order", 3}});
  for (bool in_lambda : {false, true}) {
    for (const json& config : configs) {
      const auto traits = test::make_solver(config)->traits();
      std::vector<double> errors;
      // Uniform in t the lambda steps near t_end grow fast, and the lambda-based methods
      // reach their asymptotic rate only once the t step is well below t_end: t_end = 0.1
      // here. In lambda, t_end = 0.01.
      const double slope = observed_order(s, config, in_lambda, in_lambda ? 1e-2 : 1e-1, {40, 80, 160, 320}, &errors);
      INFO(config.dump() << (in_lambda ? " logSNR" : " time_uniform") << ": declared " << traits.order
                         << ", observed " << slope << "; errors " << errors[0] << " " << errors[1] << " "
                         << errors[2] << " " << errors[3]);
      const double tolerance = 0.25 + 0.05 * traits.order;
      if (in_lambda) {
        // Uniform in lambda deis order 3 converges faster here (slope ~4.1 on this problem),
        // so only the lower bound is checked.
        CHECK(slope > traits.order - tolerance);
      } else {
        CHECK(std::fabs(slope - traits.order) < tolerance);
      }
    }
  }
}

TEST_CASE("The first-order cases equal DDIM(eta=0)") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel model = test::test_gmm(schedule);
  const State x_T = test::standard_normal_rows(32, 2, 3);
  for (double t_end : {1e-3, 0.0}) {
    const auto times = LogSnrGrid({1.0, t_end, 12, 1e-3}).times(*schedule);
    const State ddim = run({{"name", "ddim"}, {"eta", 0}}, *schedule, model, times, x_T);
    // deis and ipndm of order 1 are DDIM, bit for bit.
    CHECK((run({{"name", "deis"}, {"order", 1}}, *schedule, model, times, x_T) == ddim).all());
    CHECK((run({{"name", "ipndm"}, {"order", 1}}, *schedule, model, times, x_T) == ddim).all());
  }
  // unipc's predictor of order 1 is DDIM; on a one-step grid there is no corrector.
  const std::vector<double> one_step = {0.8, 0.3};
  const State ddim = run({{"name", "ddim"}}, *schedule, model, one_step, x_T);
  CHECK((run({{"name", "unipc"}, {"order", 1}, {"prediction", "noise"}}, *schedule, model, one_step, x_T) == ddim).all());
  CHECK(test::max_abs(run({{"name", "unipc"}, {"order", 3}}, *schedule, model, one_step, x_T) - ddim) <
        1e-13 * (1 + test::max_abs(ddim)));
}

TEST_CASE("unipc order 1: DDIM predictor and the UniC-1 corrector as written in the paper") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel model = test::test_gmm(schedule);
  const State x_T = test::standard_normal_rows(16, 2, 4);
  const std::vector<double> times = {0.9, 0.6, 0.35};
  for (const char* variant : {"bh1", "bh2"}) {
    for (const char* prediction : {"noise", "data"}) {
      INFO(variant << " " << prediction);
      const bool data = std::string(prediction) == "data";
      // Zhao et al. 2023, Algorithm 2/3 with p = 1 and a_1 = 1/2: from s to t,
      //   noise: x^p = (alpha_t/alpha_s) x - sigma_t (e^h - 1) eps_s,
      //          x^c = x^p - sigma_t B(h) / 2 (eps(x^p, t) - eps_s),   B = h or e^h - 1;
      //   data:  x^p = (sigma_t/sigma_s) x + alpha_t (1 - e^-h) x0_s,
      //          x^c = x^p - alpha_t B(-h) / 2 (x0(x^p, t) - x0_s),   B = -h or e^-h - 1.
      // The last step is a predictor from x^c with the value at x^p.
      auto m = [&](const State& x, double t) {
        State eps(x.rows(), x.cols());
        model.eps(x, t, eps);
        if (!data) return eps;
        return State((x - schedule->sigma(t) * eps) / schedule->alpha(t));
      };
      auto predictor = [&](const State& x, const State& m_s, double ts, double tt) {
        const double h = schedule->lambda(tt) - schedule->lambda(ts);
        if (data)
          return State(schedule->sigma(tt) / schedule->sigma(ts) * x - schedule->alpha(tt) * std::expm1(-h) * m_s);
        return State(schedule->alpha(tt) / schedule->alpha(ts) * x - schedule->sigma(tt) * std::expm1(h) * m_s);
      };
      const double h0 = schedule->lambda(times[1]) - schedule->lambda(times[0]);
      const double hh = data ? -h0 : h0;
      const double b = std::string(variant) == "bh1" ? hh : std::expm1(hh);
      const State m0 = m(x_T, times[0]);
      const State xp = predictor(x_T, m0, times[0], times[1]);
      const State m1 = m(xp, times[1]);
      const State xc = xp - (data ? schedule->alpha(times[1]) : schedule->sigma(times[1])) * b / 2 * (m1 - m0);
      const State expected = predictor(xc, m1, times[1], times[2]);
      Summary summary;
      const State got = run({{"name", "unipc"}, {"order", 1}, {"variant", variant}, {"prediction", prediction}},
                            *schedule, model, times, x_T, &summary);
      CHECK(test::max_abs(got - expected) < 1e-12 * (1 + test::max_abs(expected)));
      CHECK(summary.nfe == 2);
    }
  }
}

TEST_CASE("ipndm's variable-step weights are the classic iPNDM ones on uniform steps") {
  const std::array<double, 4> uniform = {0, -1, -2, -3};
  const std::vector<std::vector<double>> classic = {
      {1}, {3.0 / 2, -1.0 / 2}, {23.0 / 12, -16.0 / 12, 5.0 / 12}, {55.0 / 24, -59.0 / 24, 37.0 / 24, -9.0 / 24}};
  for (int k = 1; k <= 4; ++k) {
    const auto w = adams_bashforth_weights(uniform, k);
    for (int j = 0; j < k; ++j) CHECK(w[static_cast<std::size_t>(j)] == Approx(classic[static_cast<std::size_t>(k - 1)][static_cast<std::size_t>(j)]).epsilon(1e-14));
  }
  // Any steps: the weights integrate polynomials of degree < k exactly.
  const std::array<double, 4> u = {0, -0.4, -1.7, -2.2};
  const auto w = adams_bashforth_weights(u, 4);
  for (int q = 0; q < 4; ++q) {
    double sum = 0;
    for (int j = 0; j < 4; ++j) sum += w[static_cast<std::size_t>(j)] * std::pow(u[static_cast<std::size_t>(j)], q);
    CHECK(sum == Approx(1.0 / (q + 1)).epsilon(1e-13));
  }

  // On a grid uniform in rho = sigma/alpha the solver is classic iPNDM, written out here:
  // eps' = sum_j c_j eps_j with the constant weights, x_t = (alpha_t/alpha_s) x - sigma_t expm1(h) eps'.
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel model = test::test_gmm(schedule);
  const double rho_start = std::exp(-schedule->lambda(0.9)), rho_end = std::exp(-schedule->lambda(0.05));
  const int steps = 9;
  std::vector<double> times;
  for (int i = 0; i <= steps; ++i)
    times.push_back(i == 0 ? 0.9 : i == steps ? 0.05 : schedule->t_of_lambda(-std::log(rho_start + (rho_end - rho_start) * i / steps)));
  const State x_T = test::standard_normal_rows(16, 2, 5);
  State y = x_T;
  std::vector<State> history;
  for (int i = 0; i < steps; ++i) {
    const double ts = times[static_cast<std::size_t>(i)], tt = times[static_cast<std::size_t>(i) + 1];
    State eps(y.rows(), y.cols());
    model.eps(y, ts, eps);
    history.insert(history.begin(), eps);
    if (history.size() > 4) history.pop_back();
    const auto& c = classic[history.size() - 1];
    State combined = State::Zero(y.rows(), y.cols());
    for (std::size_t j = 0; j < history.size(); ++j) combined += c[j] * history[j];
    const double h = schedule->lambda(tt) - schedule->lambda(ts);
    y = schedule->alpha(tt) / schedule->alpha(ts) * y - schedule->sigma(tt) * std::expm1(h) * combined;
  }
  const State x = run({{"name", "ipndm"}}, *schedule, model, times, x_T);
  CHECK(test::max_abs(x - y) < 1e-10 * (1 + test::max_abs(y)));
}

TEST_CASE("deis weights are the exact integrals of the Lagrange basis against the kernel") {
  // v_j = int_0^h e^{h-u} (l_j(u/h) - delta_j0) du, by composite Simpson on 20,000 intervals.
  for (double h : {0.8, 1e-3, -0.3, 3.0}) {
    for (int k : {2, 3}) {
      const std::array<double, 4> r = {0, -0.7, -1.9, 0};
      const auto v = deis_weights(r, k, h);
      for (int j = 0; j < k; ++j) {
        auto basis = [&](double theta) {
          double l = 1;
          for (int m = 0; m < k; ++m)
            if (m != j) l *= (theta - r[static_cast<std::size_t>(m)]) / (r[static_cast<std::size_t>(j)] - r[static_cast<std::size_t>(m)]);
          return l - (j == 0 ? 1.0 : 0.0);
        };
        const int n = 20000;
        double sum = 0;
        for (int i = 0; i <= n; ++i) {
          const double u = h * i / n;
          const double weight = i == 0 || i == n ? 1 : (i % 2 ? 4 : 2);
          sum += weight * std::exp(h - u) * basis(u / h);
        }
        const double integral = sum * h / n / 3;
        INFO("h=" << h << " k=" << k << " j=" << j);
        CHECK(v[static_cast<std::size_t>(j)] == Approx(integral).epsilon(1e-9).margin(1e-18));
      }
    }
  }
}

TEST_CASE("unipc, deis and ipndm cost one evaluation per step") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel model = test::test_gmm(schedule);
  std::vector<json> configs = listed_variants();
  for (const char* name : {"unipc", "deis", "ipndm"}) configs.push_back({{"name", name}});
  for (const json& config : configs) {
    CHECK(test::make_solver(config)->traits().evals_per_step == 1);
    CHECK(test::make_solver(config)->traits().warmup_steps == config.value("order", config["name"] == "unipc" ? 2 : config["name"] == "deis" ? 3 : 4) - 1);
    for (int steps : {1, 2, 3, 7}) {
      Summary summary;
      run(config, *schedule, model, TimeUniformGrid({1.0, 1e-3, steps}).times(*schedule),
          test::standard_normal_rows(4, 2, 6), &summary);
      INFO(config.dump() << " steps " << steps);
      CHECK(summary.nfe == steps);
      CHECK(summary.steps == steps);
    }
  }
}

TEST_CASE("A final step to t = 0 is a finite DDIM step") {
  const Setup s;
  const State x_T = test::standard_normal_rows(64, 2, 7);
  const State x_exact = s.problem.pf_ode_flow(x_T, 1.0, 0.0);
  std::vector<json> configs = listed_variants();
  for (const char* name : {"unipc", "deis", "ipndm"}) configs.push_back({{"name", name}});
  for (const json& config : configs) {
    for (const auto& times : {TimeUniformGrid({1.0, 0.0, 40}).times(*s.schedule),
                              LogSnrGrid({1.0, 0.0, 40, 1e-3}).times(*s.schedule)}) {
      const State x = run(config, *s.schedule, s.model, times, x_T);
      const State ddim = run({{"name", "ddim"}}, *s.schedule, s.model, times, x_T);
      INFO(config.dump() << ": error " << test::max_abs(x - x_exact) << ", ddim's " << test::max_abs(ddim - x_exact));
      CHECK(x.allFinite());
      // The last step is first order, but the state it starts from is more accurate than
      // DDIM's: no worse than DDIM all the way.
      CHECK(test::max_abs(x - x_exact) <= test::max_abs(ddim - x_exact) * (1 + 1e-12));
    }
  }
}

TEST_CASE("unipc, deis and ipndm depend on the grid times only") {
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel model = test::test_gmm(schedule);
  const State x_T = test::standard_normal_rows(16, 2, 8);
  const json uniform = {{"name", "time_uniform"}, {"t_start", 1.0}, {"t_end", 1e-3}, {"steps", 15}};
  const auto times = grid_registry().create(uniform, "grid")->times(*schedule);
  const auto custom = grid_registry().create(json{{"name", "custom"}, {"t", times}}, "grid")->times(*schedule);
  REQUIRE(custom == times);
  for (const json& config : listed_variants()) {
    INFO(config.dump());
    CHECK((run(config, *schedule, model, times, x_T) == run(config, *schedule, model, custom, x_T)).all());
  }
}

TEST_CASE("unipc, deis and ipndm config errors name their paths") {
  auto bad = [](const json& config) { return test::config_error_path([&] { test::make_solver(config); }); };
  CHECK(bad({{"name", "unipc"}, {"order", 0}}) == "solver.order");
  CHECK(bad({{"name", "unipc"}, {"order", 4}}) == "solver.order");
  CHECK(bad({{"name", "unipc"}, {"variant", "bh3"}}) == "solver.variant");
  CHECK(bad({{"name", "unipc"}, {"prediction", "v"}}) == "solver.prediction");
  CHECK(bad({{"name", "unipc"}, {"lower_order_final", "yes"}}) == "solver.lower_order_final");
  CHECK(bad({{"name", "deis"}, {"order", 4}}) == "solver.order");
  CHECK(bad({{"name", "deis"}, {"order", 1.5}}) == "solver.order");
  CHECK(bad({{"name", "ipndm"}, {"order", 5}}) == "solver.order");
  CHECK(bad({{"name", "ipndm"}, {"order", 0}}) == "solver.order");
  CHECK(bad({{"name", "ipndm"}, {"stepper", "rk4"}}) == "solver.stepper");
}

TEST_CASE("ipndm and lms are one method: the same samples to rounding, except on a final step to t = 0") {
  // Both are Adams-Bashforth in sigma/alpha with the exact Lagrange weights
  // (docs/solvers/multistep.md#ipndm, docs/solvers/k_diffusion.md#lms); ipndm takes a final
  // step to t = 0 as a DDIM step, lms with its own formula.
  auto schedule = std::make_shared<VpLinearSchedule>();
  const GmmModel model = GmmModel::builtin_2d(schedule);
  const auto run = [&](const char* name, int order, double t_end) {
    GridSpan span;
    span.t_start = 1.0;
    span.t_end = t_end;
    span.steps = 12;
    span.t_last = 1e-3;
    State x = test::standard_normal_rows(64, 2, 1);
    integrate(*solver_registry().create(json{{"name", name}, {"order", order}}, "solver"), *schedule, model,
              LogSnrGrid(span).times(*schedule), x, nullptr);
    return x;
  };
  for (int order = 1; order <= 4; ++order) {
    INFO("order " << order);
    const State a = run("ipndm", order, 1e-3), b = run("lms", order, 1e-3);
    CHECK((a - b).abs().maxCoeff() < 1e-12 * (1 + a.abs().maxCoeff()));
    if (order > 1) {
      // To t = 0 the last steps differ (DDIM against the order-k formula).
      const State c = run("ipndm", order, 0.0), d = run("lms", order, 0.0);
      CHECK((c - d).abs().maxCoeff() > 1e-6);
    }
  }
}
