// The general Gaussian schedules (ve, subvp, edm, flow) against exact answers: their
// alpha, sigma, lambda, f and g^2 against closed forms and finite differences, the inverse
// t(lambda) near both ends, every solver that declares any_schedule against the exact
// Gaussian PF-ODE flow (at its declared order) and the exact Gaussian marginals (stochastic
// solvers), schedule independence of the lambda-based integrators, DDIM on flow as the
// flow-matching Euler step, Euler on edm as k-diffusion's sample_euler, and the refusals of
// solvers and jobs that are VP-only.
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "diffsde/config.hpp"
#include "diffsde/driver.hpp"
#include "diffsde/error.hpp"
#include "diffsde/grid.hpp"
#include "diffsde/noise.hpp"
#include "diffsde/prediction_model.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/scores/analytic.hpp"
#include "diffsde/vector_field.hpp"
#include "support/exact.hpp"
#include "support/orders.hpp"

using namespace diffsde;
using nlohmann::json;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Closed forms written independently of lib/core/schedule.cpp.
struct Closed {
  std::function<double(double)> alpha, sigma;
};

// d/dt of a function by a 4th-order central difference.
double derivative(const std::function<double(double)>& fn, double t, double h) {
  return (-fn(t + 2 * h) + 8 * fn(t + h) - 8 * fn(t - h) + fn(t - 2 * h)) / (12 * h);
}

void check_against_closed_form(const Schedule& s, const Closed& c, const std::vector<double>& ts) {
  for (double t : ts) {
    INFO(s.name() << " at t = " << t);
    const ScheduleAt at = s.at(t);
    const double a = c.alpha(t), sg = c.sigma(t);
    CHECK(at.alpha == Approx(a).epsilon(1e-13));
    CHECK(at.sigma == Approx(sg).epsilon(1e-13));
    CHECK(at.lambda == Approx(std::log(a / sg)).epsilon(1e-12).margin(1e-13));
    CHECK(at.log_alpha_bar == Approx(2 * std::log(a)).epsilon(1e-12).margin(1e-15));
    // f = d log alpha/dt and g^2 = d sigma^2/dt - 2 f sigma^2 by finite differences.
    const double h = 1e-3 * std::min(t, std::fabs(s.t_max() - t));
    const double f = derivative([&](double u) { return std::log(c.alpha(u)); }, t, h);
    const double dsig2 = derivative([&](double u) { return c.sigma(u) * c.sigma(u); }, t, h);
    const double g2 = dsig2 - 2 * f * sg * sg;
    CHECK(at.f == Approx(f).epsilon(1e-7).margin(1e-12));
    CHECK(at.g2 == Approx(g2).epsilon(1e-7));
    CHECK(at.beta == Approx(-2 * at.f).epsilon(1e-15).margin(0));
    // The single-quantity functions agree with at().
    CHECK(s.sigma(t) == Approx(at.sigma).epsilon(1e-15));
    CHECK(s.alpha(t) == Approx(at.alpha).epsilon(1e-14));
    CHECK(s.lambda(t) == at.lambda);
    CHECK(s.g2(t) == Approx(at.g2).epsilon(1e-15));
    CHECK(s.f(t) == Approx(at.f).epsilon(1e-15));
    const FieldAt fa = field_at(at);
    CHECK(fa.f == at.f);
    CHECK(fa.g2 == at.g2);
    CHECK(field_g(s, t) == Approx(std::sqrt(at.g2)).epsilon(1e-15));
  }
}

// The schedules the general tests run on, each with the span an order test uses.
using Case = test::ScheduleCase;
std::vector<Case> general_cases() { return test::general_schedule_cases(); }

// The exact PF-ODE flow of N(mu, sd^2) data per axis on any (alpha, sigma):
// z = (x - alpha mu)/sqrt(alpha^2 sd^2 + sigma^2) is constant along it.
const Eigen::Vector2d kMu(0.5, -1.0), kSd(0.6, 1.2);

double marginal_std(const Schedule& s, int j, double t) {
  const ScheduleAt at = s.at(t);
  return std::sqrt(at.alpha * at.alpha * kSd(j) * kSd(j) + at.sigma * at.sigma);
}

State exact_flow(const Schedule& s, const State& x, double t0, double t1) {
  State out(x.rows(), x.cols());
  const double a0 = s.at(t0).alpha, a1 = s.at(t1).alpha;
  for (int j = 0; j < 2; ++j)
    out.col(j) = a1 * kMu(j) + marginal_std(s, j, t1) / marginal_std(s, j, t0) * (x.col(j) - a0 * kMu(j));
  return out;
}

// Samples of the exact marginal at t.
State marginal_samples(const Schedule& s, double t, long n, std::uint64_t seed) {
  State z = test::standard_normal_rows(n, 2, seed);
  const double a = s.at(t).alpha;
  for (int j = 0; j < 2; ++j) z.col(j) = a * kMu(j) + marginal_std(s, j, t) * z.col(j);
  return z;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(none)";
}

}  // namespace

TEST_CASE("General schedules match their closed forms, f and g^2 match finite differences") {
  const double smin = 0.01, smax = 50;
  check_against_closed_form(
      VeSchedule(smin, smax),
      {[](double) { return 1.0; }, [=](double t) { return smin * std::pow(smax / smin, t); }},
      {1e-6, 0.01, 0.3, 0.5, 0.9, 0.999});
  const double b0 = 0.1, b1 = 20;
  const auto subvp_alpha = [=](double t) { return std::exp(-0.5 * (b0 * t + 0.5 * (b1 - b0) * t * t)); };
  check_against_closed_form(
      SubVpSchedule(b0, b1),
      {subvp_alpha, [=](double t) { return 1 - subvp_alpha(t) * subvp_alpha(t); }},
      {0.05, 0.3, 0.5, 0.9, 0.99});
  check_against_closed_form(EdmSchedule(0.002, 80), {[](double) { return 1.0; }, [](double t) { return t; }},
                            {1e-3, 0.5, 3, 40, 79});
  for (double shift : {1.0, 3.0, 0.5}) {
    const auto sig = [=](double t) { return shift * t / (1 + (shift - 1) * t); };
    check_against_closed_form(FlowSchedule(shift), {[=](double t) { return 1 - sig(t); }, sig},
                              {1e-3, 0.1, 0.5, 0.9, 0.99});
  }
  // Near t = 0 the subvp sigma = 1 - alpha^2 keeps full relative accuracy (the closed form
  // above would cancel): sigma ~ beta0 t.
  CHECK(SubVpSchedule(b0, b1).sigma(1e-12) == Approx(b0 * 1e-12).epsilon(1e-10));
  CHECK(FlowSchedule(1.0).sigma(0.3) == 0.3);
  CHECK(FlowSchedule(1.0).at(0.3).alpha == 1 - 0.3);
}

TEST_CASE("VP schedules give f = -beta/2 and g^2 = beta exactly") {
  const VpLinearSchedule lin;
  const VpCosineSchedule cosine;
  const auto discrete = VpDiscreteSchedule::linear();
  for (const Schedule* s : std::vector<const Schedule*>{&lin, &cosine, &discrete})
    for (double t : {1e-5, 0.3, 0.7, 0.99}) {
      const ScheduleAt at = s->at(t);
      CHECK(at.f == -0.5 * at.beta);
      CHECK(at.g2 == at.beta);
      CHECK(field_g(*s, t) == std::sqrt(s->beta(t)));
      CHECK(s->variance_preserving());
    }
}

TEST_CASE("General schedules: the ends and t(lambda) round trips") {
  const VeSchedule ve(0.01, 50);
  const SubVpSchedule subvp(0.1, 20);
  const EdmSchedule edm(0.002, 80);
  const FlowSchedule flow(1.0), flow3(3.0);
  const std::vector<const Schedule*> all = {&ve, &subvp, &edm, &flow, &flow3};
  for (const Schedule* s : all) {
    CHECK_FALSE(s->variance_preserving());
    std::vector<double> ts = {1e-10, 1e-6, 1e-3, 0.1, 0.5, 0.9, 0.999};
    if (s == &edm) ts = {1e-8, 0.002, 1, 50, 80};
    if (s == &flow || s == &flow3) ts.insert(ts.end(), {1 - 1e-6, 1 - 1e-10});
    for (double t : ts) {
      INFO(s->name() << " t = " << t);
      // ve's lambda is finite at t = 0, so t near 0 is only kept to absolute accuracy.
      CHECK(s->t_of_lambda(s->lambda(t)) == Approx(t).epsilon(1e-13).margin(s == &ve ? 1e-15 : 0.0));
      if (s == &flow || s == &flow3) {
        // 1 - t (the noise end) also round-trips, to the rounding of t itself.
        CHECK(1 - s->t_of_lambda(s->lambda(t)) == Approx(1 - t).epsilon(1e-15 / (1 - t)));
      }
    }
  }
  // lambda -> t -> lambda, far out at both ends.
  for (const Schedule* s : all)
    for (double lam : {-8.0, -2.0, 0.0, 3.0, 12.0, 30.0}) {
      if (s == &ve && (lam > -std::log(0.01) || lam < -std::log(50.0))) continue;  // beyond [0, 1]
      if (s == &flow && lam < -8) continue;
      INFO(s->name() << " lambda = " << lam);
      CHECK(s->lambda(s->t_of_lambda(lam)) == Approx(lam).margin(1e-12));
    }
  // Ends: sigma = 0 at t = 0 (lambda = +inf), except for ve; alpha = 0 at t = 1 on flow.
  CHECK(subvp.lambda(0) == kInf);
  CHECK(subvp.t_of_lambda(kInf) == 0);
  CHECK(edm.lambda(0) == kInf);
  CHECK(edm.t_of_lambda(kInf) == 0);
  CHECK(ve.sigma(0) == Approx(0.01).epsilon(1e-15));
  CHECK(ve.lambda(1) == Approx(-std::log(50.0)).epsilon(1e-15));
  CHECK(edm.t_max() == 80);
  CHECK(edm.t_min() == 0.002);
  for (const FlowSchedule* f : {&flow, &flow3}) {
    CHECK(f->at(1).alpha == 0);
    CHECK(f->at(1).sigma == 1);
    CHECK(f->lambda(1) == -kInf);
    CHECK(f->t_of_lambda(-kInf) == 1);
    CHECK(f->t_of_lambda(kInf) == 0);
    CHECK(f->alpha(1) == 0);
  }
  // alpha is constant on ve and edm: log alpha_bar does not give t.
  CHECK_THROWS_AS(ve.t_of_log_alpha_bar(-1), Error);
  CHECK_THROWS_AS(edm.t_of_log_alpha_bar(-1), Error);
  CHECK(flow3.t_of_log_alpha_bar(flow3.log_alpha_bar(0.4)) == Approx(0.4).epsilon(1e-14));
  CHECK(subvp.t_of_log_alpha_bar(subvp.log_alpha_bar(0.4)) == Approx(0.4).epsilon(1e-14));
}

TEST_CASE("The analytic models are exact on every schedule") {
  for (const Case& c : general_cases()) {
    GaussianModel model(c.schedule, kMu, kSd);
    const double t = 0.5 * (c.t_start + c.t_end);
    const ScheduleAt at = c.schedule->at(t);
    const State x = marginal_samples(*c.schedule, t, 4, 9);
    State eps(4, 2);
    model.eps(x, t, eps);
    for (int j = 0; j < 2; ++j) {
      // eps = -sigma score = sigma (x - alpha mu)/(alpha^2 sd^2 + sigma^2).
      const double v = at.alpha * at.alpha * kSd(j) * kSd(j) + at.sigma * at.sigma;
      for (int r = 0; r < 4; ++r) {
        INFO(c.label);
        CHECK(eps(r, j) == Approx(at.sigma * (x(r, j) - at.alpha * kMu(j)) / v).epsilon(1e-13));
      }
    }
  }
}

TEST_CASE("Every any_schedule deterministic solver converges at its order to the exact flow on ve, subvp, edm, flow") {
  int tested = 0;
  for (const Case& c : general_cases()) {
    GaussianModel model(c.schedule, kMu, kSd);
    const State x_T = marginal_samples(*c.schedule, c.t_start, 32, 1);
    const State x_exact = exact_flow(*c.schedule, x_T, c.t_start, c.t_end);
    const double scale = 1 + x_exact.abs().maxCoeff();
    for (const json& config : test::all_solver_variants()) {
      const auto traits = solver_registry().create(config, "solver")->traits();
      if (traits.stochastic || !traits.any_schedule) continue;
      INFO(c.label << ": " << config.dump());
      if (traits.adaptive) {
        auto solver = solver_registry().create(config, "solver");
        State x = x_T;
        integrate(*solver, *c.schedule, model, {c.t_start, c.t_end}, x, nullptr);
        CHECK((x - x_exact).abs().maxCoeff() < 1e-4 * scale);
        continue;
      }
      ++tested;
      std::vector<double> hs, errors;
      for (int steps : {40, 80, 160, 320}) {
        auto solver = solver_registry().create(config, "solver");
        State x = x_T;
        integrate(*solver, *c.schedule, model,
                  test::graded_order_test_grid(*c.schedule, c.t_start, c.t_end, steps, traits.warmup_steps,
                                               traits.order),
                  x, nullptr);
        hs.push_back((c.t_start - c.t_end) / steps);
        errors.push_back((x - x_exact).abs().maxCoeff());
      }
      const double slope = test::log_log_slope(hs, errors);
      INFO("declared order " << traits.order << ", observed " << slope << "; errors " << errors[0] << " "
                             << errors[1] << " " << errors[2] << " " << errors[3]);
      CHECK(errors[3] < 0.05 * scale);
      // At least the declared order (as tests/test_solver_orders.cpp, but one-sided: on ve and
      // edm a time-uniform grid is uniform in lambda or in sigma, where several multistep
      // methods converge faster on this problem than their order).
      CHECK(slope > traits.order - (0.25 + 0.05 * traits.order));
    }
  }
  CHECK(tested >= 5 * 10);
}

TEST_CASE("Every any_schedule stochastic solver keeps the exact Gaussian marginal on ve, subvp, edm, flow") {
  // Started from the exact marginal at t_start, the reverse SDE keeps the marginal exact:
  // N(alpha mu, alpha^2 sd^2 + sigma^2) per axis at t_end. A solver using the VP noise
  // or drift on these schedules is off by far more than the tolerance.
  const long n = 20000;
  for (const Case& c : general_cases()) {
    GaussianModel model(c.schedule, kMu, kSd);
    const State x_T = marginal_samples(*c.schedule, c.t_start, n, 2);
    const double a = c.schedule->at(c.t_end).alpha;
    for (const json& config : test::all_solver_variants()) {
      auto solver = solver_registry().create(config, "solver");
      const auto traits = solver->traits();
      // ggf (adaptive, on a Brownian tree) is too slow at this sample size.
      if (!traits.stochastic || !traits.any_schedule || traits.adaptive) continue;
      INFO(c.label << ": " << config.dump());
      State x = x_T;
      PhiloxNoise noise(7);
      const auto grid = TimeUniformGrid({c.t_start, c.t_end, 200}).times(*c.schedule);
      integrate(*solver, *c.schedule, model, grid, x, &noise);
      for (int j = 0; j < 2; ++j) {
        const double sd = marginal_std(*c.schedule, j, c.t_end);
        const double mean = x.col(j).mean();
        const double var = (x.col(j) - mean).square().mean();
        // 5 standard errors plus a discretisation allowance of 2% of the spread.
        CHECK(std::fabs(mean - a * kMu(j)) < 5 * sd / std::sqrt(double(n)) + 0.02 * sd);
        CHECK(std::sqrt(var) == Approx(sd).epsilon(0.04));
      }
    }
  }
}

TEST_CASE("Integrators in lambda give the same answer on every schedule at equal lambda grids") {
  // For Gaussian data, x/sigma as a function of lambda along the PF-ODE does not depend on
  // the schedule, and these solvers see the schedule only through alpha, sigma at the grid's
  // lambdas: started from equal x/sigma they end at equal x/sigma, to rounding.
  const std::vector<json> configs = {
      json{{"name", "ddim"}},
      json{{"name", "dpm_solver"}, {"order", 3}, {"method", "multistep"}, {"algorithm", "dpmsolver++"}},
      json{{"name", "dpm_solver"}, {"order", 2}, {"method", "singlestep"}, {"algorithm", "dpmsolver"}},
      json{{"name", "unipc"}},
      json{{"name", "deis"}},
      json{{"name", "euler"}},
      json{{"name", "heun"}},
      json{{"name", "dpm2"}},
      json{{"name", "ipndm"}}};
  auto vp = std::make_shared<VpLinearSchedule>(0.1, 20.0);
  std::vector<std::shared_ptr<Schedule>> others = {std::make_shared<VeSchedule>(0.002, 100.0),
                                                   std::make_shared<EdmSchedule>(0.002, 80.0),
                                                   std::make_shared<FlowSchedule>(2.0),
                                                   std::make_shared<SubVpSchedule>(0.1, 20.0)};
  const int steps = 12;
  std::vector<double> lambdas(steps + 1);
  for (int i = 0; i <= steps; ++i) lambdas[i] = -3.0 + 5.0 * i / steps;  // lambda from -3 to 2
  const auto grid_of = [&](const Schedule& s) {
    std::vector<double> t;
    for (double l : lambdas) t.push_back(s.t_of_lambda(l));
    return t;
  };
  const State y_T = test::standard_normal_rows(8, 2, 5);
  for (const json& config : configs) {
    GaussianModel vp_model(vp, kMu, kSd);
    const auto vp_grid = grid_of(*vp);
    State x_vp = vp->sigma(vp_grid.front()) * y_T;
    integrate(*solver_registry().create(config, "solver"), *vp, vp_model, vp_grid, x_vp, nullptr);
    const State y_vp = x_vp / vp->sigma(vp_grid.back());
    for (const auto& s : others) {
      INFO(config.dump() << " on " << s->name());
      // The data scale: x/alpha has the same law on each schedule only for the same data,
      // so the data are the same N(mu, sd^2) and x/sigma is compared.
      GaussianModel model(s, kMu, kSd);
      const auto grid = grid_of(*s);
      State x = s->sigma(grid.front()) * y_T;
      integrate(*solver_registry().create(config, "solver"), *s, model, grid, x, nullptr);
      const State y = x / s->sigma(grid.back());
      CHECK((y - y_vp).abs().maxCoeff() < 1e-10 * (1 + y_vp.abs().maxCoeff()));
    }
  }
}

TEST_CASE("DDIM on flow is the flow-matching Euler step in velocity form") {
  for (double shift : {1.0, 3.0}) {
    auto flow = std::make_shared<FlowSchedule>(shift);
    GaussianModel model(flow, kMu, kSd);
    const std::vector<double> grid = {0.9, 0.7, 0.4, 0.2, 0.05};
    const State x_T = marginal_samples(*flow, grid.front(), 16, 3);
    State x = x_T;
    integrate(*solver_registry().create(json{{"name", "ddim"}}, "solver"), *flow, model, grid, x, nullptr);
    // Rectified-flow Euler: x <- x + (s1 - s0) v with v = eps - x0, x0 = (x - s eps)/(1 - s),
    // s the shifted time (sigma).
    State y = x_T, eps(16, 2);
    for (std::size_t i = 0; i + 1 < grid.size(); ++i) {
      const double s0 = shift * grid[i] / (1 + (shift - 1) * grid[i]);
      const double s1 = shift * grid[i + 1] / (1 + (shift - 1) * grid[i + 1]);
      model.eps(y, grid[i], eps);
      const State x0 = (y - s0 * eps) / (1 - s0);
      y = y + (s1 - s0) * (eps - x0);
    }
    INFO("shift " << shift);
    CHECK((x - y).abs().maxCoeff() < 1e-13);
    CHECK((x - x_T).abs().maxCoeff() > 0.1);  // it moved
  }
}

TEST_CASE("VP-only solvers are refused on the other schedules, by name, before any step") {
  auto ve = std::make_shared<VeSchedule>(0.01, 50.0);
  GaussianModel model(ve, kMu, kSd);
  const auto grid = TimeUniformGrid({1.0, 0.1, 10}).times(*ve);
  for (const json& config : {json{{"name", "reverse_diffusion"}}, json{{"name", "pc"}},
                             json{{"name", "ddpm"}, {"variance", "beta"}}}) {
    auto solver = solver_registry().create(config, "solver");
    INFO(config.dump());
    CHECK_FALSE(solver->traits().any_schedule);
    State x = test::standard_normal_rows(2, 2, 1);
    const State before = x;
    BrownianTreeNoise noise(1, 0.1, 1.0, 8);
    const std::string msg = error_of([&] { integrate(*solver, *ve, model, grid, x, &noise); });
    CHECK(msg.find(solver->traits().name) != std::string::npos);
    CHECK(msg.find("ve schedule") != std::string::npos);
    CHECK((x == before).all());
    // They still run on VP.
    CHECK_NOTHROW(check_solver_grid(solver->traits(), VpLinearSchedule(), grid));
  }
  // Every other registered solver runs on every schedule.
  int general = 0;
  for (const json& config : test::all_solver_variants())
    general += solver_registry().create(config, "solver")->traits().any_schedule ? 1 : 0;
  CHECK(general >= 20);

  // Through a config: a ConfigError at `solver`.
  const json base = json::parse(R"({
    "schedule":{"name":"ve"},
    "model":{"name":"gaussian","mean":[0.5],"std":[0.6]},
    "grid":{"name":"time_uniform","steps":10},
    "solver":{"name":"reverse_diffusion"},"batch":4,"seed":3})");
  std::string path = "(none)";
  try {
    build_sample_job(parse_sample_config(base));
  } catch (const ConfigError& e) {
    path = e.path();
  }
  CHECK(path == "solver");
}

TEST_CASE("From pure noise (flow at t = 1): ddim steps with the model's own x0; eps models and other solvers are refused") {
  for (double shift : {1.0, 3.0}) {
    auto flow = std::make_shared<FlowSchedule>(shift);
    GaussianModel model(flow, kMu, kSd);
    REQUIRE(model.has_data_prediction());
    INFO("shift " << shift);
    // The exact PF-ODE flow from pure noise: z = x(1) is the invariant, x(t) = alpha mu + sd_t z.
    const State z = test::standard_normal_rows(32, 2, 4);
    const double t_end = 0.05;
    State exact(32, 2);
    for (int j = 0; j < 2; ++j) exact.col(j) = flow->at(t_end).alpha * kMu(j) + marginal_std(*flow, j, t_end) * z.col(j);
    std::vector<double> hs, errors;
    for (int steps : {20, 40, 80, 160}) {
      State x = z;
      integrate(*solver_registry().create(json{{"name", "ddim"}}, "solver"), *flow, model,
                TimeUniformGrid({1.0, t_end, steps}).times(*flow), x, nullptr);
      hs.push_back(1.0 / steps);
      errors.push_back((x - exact).abs().maxCoeff());
    }
    INFO("errors " << errors[0] << " " << errors[3]);
    CHECK(errors[3] < 0.05);
    CHECK(test::log_log_slope(hs, errors) > 0.8);
    // One step from pure noise to the data: the posterior mean at alpha = 0, the data mean.
    State x = z;
    integrate(*solver_registry().create(json{{"name", "ddim"}}, "solver"), *flow, model, {1.0, 0.0}, x, nullptr);
    for (int j = 0; j < 2; ++j) CHECK((x.col(j) - kMu(j)).abs().maxCoeff() < 1e-15);
  }

  // A velocity network: the first step is rectified flow's Euler step x + (s1 - 1) v, where
  // (alpha = 0, sigma = 1) v = eps - x0 = x - x0, written here with x0 the data mean.
  auto flow = std::make_shared<FlowSchedule>(1.0);
  const GaussianModel exact_model(flow, kMu, kSd);
  const auto velocity_net = make_model(2, [&](const ConstStateRef& x, double t, StateRef out) {
    State x0(x.rows(), 2);
    exact_model.x0_rows(x, t, ModelRows{}, x0);
    State eps(x.rows(), 2);
    for (int j = 0; j < 2; ++j) eps.col(j) = (x.col(j) - (1 - t) * x0.col(j)) / t;  // x = (1 - t) x0 + t eps
    out = eps - x0;
  });
  const auto velocity_model = with_prediction(velocity_net, flow, Prediction::velocity);
  const State z = test::standard_normal_rows(8, 2, 6);
  State x = z;
  integrate(*solver_registry().create(json{{"name", "ddim"}}, "solver"), *flow, *velocity_model, {1.0, 0.7}, x,
            nullptr);
  State by_hand = z;
  for (int j = 0; j < 2; ++j) by_hand.col(j) = z.col(j) + (0.7 - 1.0) * (z.col(j) - kMu(j));
  CHECK((x - by_hand).abs().maxCoeff() < 1e-14);

  // With noise (eta = 1), started from pure noise, the reverse process keeps the exact
  // marginal N(alpha mu, sd_t^2) per axis (to the discretisation).
  {
    const long n = 20000;
    State xs = test::standard_normal_rows(n, 2, 8);
    PhiloxNoise noise(3);
    integrate(*solver_registry().create(json{{"name", "ddim"}, {"eta", 1.0}}, "solver"), *flow, exact_model,
              TimeUniformGrid({1.0, 0.4, 200}).times(*flow), xs, &noise);
    for (int j = 0; j < 2; ++j) {
      const double sd = marginal_std(*flow, j, 0.4), mean = xs.col(j).mean();
      CHECK(std::fabs(mean - 0.6 * kMu(j)) < 5 * sd / std::sqrt(double(n)));
      CHECK(std::sqrt((xs.col(j) - mean).square().mean()) == Approx(sd).epsilon(0.03));
    }
  }

  // An eps model (eps = x / sigma there, nothing of x0), and solvers that cannot take the
  // step, are refused before any evaluation; so is alpha = 0 anywhere but the first time.
  const auto eps_only = make_model(2, [&](const ConstStateRef& x, double t, StateRef out) { exact_model.eps(x, t, out); });
  int can = 0;
  for (const json& config : test::all_solver_variants()) {
    auto solver = solver_registry().create(config, "solver");
    const SolverTraits traits = solver->traits();
    if (!traits.any_schedule) continue;  // refused on flow for that first
    INFO(config.dump());
    State y = test::standard_normal_rows(2, 2, 1);
    const State before = y;
    BrownianTreeNoise noise(1, 0.0, 1.0, 8);
    const std::string msg = error_of([&] { integrate(*solver, *flow, *eps_only, {1.0, 0.5, 0.1}, y, &noise); });
    CHECK(msg.find("alpha = 0 there (flow)") != std::string::npos);
    CHECK(msg.find(traits.starts_from_pure_noise ? "needs a model that predicts x0 itself"
                                                 : "cannot take a first step from pure noise") != std::string::npos);
    CHECK((y == before).all());
    if (!traits.starts_from_pure_noise) {
      const std::string with_x0 =
          error_of([&] { integrate(*solver, *flow, exact_model, {1.0, 0.5, 0.1}, y, &noise); });
      CHECK(with_x0.find("cannot take a first step from pure noise") != std::string::npos);
    } else {
      ++can;
      if (!traits.needs_decreasing_grid)
        CHECK_THROWS_WITH(check_solver_grid(traits, *flow, {0.2, 1.0, 0.5}, &exact_model),
                          Catch::Contains("only a grid's first time may be"));
    }
  }
  CHECK(can >= 2);  // ddim and ddpm
}

TEST_CASE("Schedule parameters are validated with their JSON paths") {
  const auto path_of = [](const json& j) {
    try {
      schedule_registry().create(j, "schedule");
    } catch (const ConfigError& e) {
      return e.path();
    }
    return std::string("(none)");
  };
  CHECK(path_of(json{{"name", "ve"}, {"sigma_min", 1.0}, {"sigma_max", 1.0}}) == "schedule.sigma_max");
  CHECK(path_of(json{{"name", "ve"}, {"sigma_min", 0.0}}) == "schedule.sigma_min");
  CHECK(path_of(json{{"name", "edm"}, {"sigma_min", 5.0}, {"sigma_max", 2.0}}) == "schedule.sigma_max");
  CHECK(path_of(json{{"name", "edm"}, {"sigma_min", -1.0}}) == "schedule.sigma_min");
  CHECK(path_of(json{{"name", "flow"}, {"shift", 0.0}}) == "schedule.shift");
  CHECK(path_of(json{{"name", "flow"}, {"shift", -2.0}}) == "schedule.shift");
  CHECK(path_of(json{{"name", "subvp"}, {"beta0", 0.0}}) == "schedule.beta0");
  CHECK(path_of(json{{"name", "subvp"}, {"beta0", 1.0}, {"beta1", 0.5}}) == "schedule.beta1");
  CHECK(path_of(json{{"name", "flow"}, {"shift", 3.0}}) == "(none)");
  CHECK(path_of(json{{"name", "ve"}}) == "(none)");
  auto s = schedule_registry().create(json{{"name", "flow"}, {"shift", 3.0}}, "schedule");
  CHECK(s->name() == "flow");
  CHECK(s->sigma(0.5) == Approx(0.75));
}

TEST_CASE("Grids on the general schedules: defaults follow the schedule's range") {
  BuildContext context;
  context.schedule = schedule_registry().create(json{{"name", "edm"}}, "schedule");
  const auto edm_grid = grid_registry().create(json{{"name", "karras"}, {"steps", 10}}, "grid", context)->times(*context.schedule);
  CHECK(edm_grid.front() == 80);
  CHECK(edm_grid.back() == 0.002);
  // EDM's Karras grid in sigma = t (rho = 7).
  const double r = 1.0 / 7;
  const double mid = std::pow(std::pow(80.0, r) + 5.0 / 10 * (std::pow(0.002, r) - std::pow(80.0, r)), 7);
  CHECK(edm_grid[5] == Approx(mid).epsilon(1e-12));
  context.schedule = schedule_registry().create(json{{"name", "ve"}}, "schedule");
  for (const char* name : {"time_uniform", "logSNR", "karras", "time_quadratic"}) {
    const auto t = grid_registry().create(json{{"name", name}, {"steps", 10}}, "grid", context)->times(*context.schedule);
    INFO(name);
    CHECK(t.front() == 1);
    CHECK(t.back() == 1e-3);
  }
  context.schedule = schedule_registry().create(json{{"name", "flow"}}, "schedule");
  const auto lsnr = grid_registry()
                        .create(json{{"name", "logSNR"}, {"steps", 4}, {"t_start", 0.99}, {"t_end", 0.01}}, "grid", context)
                        ->times(*context.schedule);
  for (std::size_t i = 0; i + 2 < lsnr.size(); ++i)
    CHECK(context.schedule->lambda(lsnr[i + 1]) - context.schedule->lambda(lsnr[i]) ==
          Approx(context.schedule->lambda(lsnr[i + 2]) - context.schedule->lambda(lsnr[i + 1])).epsilon(1e-12));
}

TEST_CASE("Euler on edm equals k-diffusion's Euler") {
  // k-diffusion's sample_euler (churn 0) transcribed: denoised = x - sigma eps (the model's
  // eps turned into a denoiser), d = (x - denoised) / sigma, x += d (sigma_next - sigma), on
  // get_sigmas_karras's grid: (sigma_max^(1/rho) + i/(n-1) (sigma_min^(1/rho) -
  // sigma_max^(1/rho)))^rho, i = 0..n-1, then 0.
  const double sigma_min = 0.002, sigma_max = 80.0, rho = 7.0;
  const int steps = 18;
  BuildContext context;
  context.schedule = schedule_registry().create(
      json{{"name", "edm"}, {"sigma_min", sigma_min}, {"sigma_max", sigma_max}}, "schedule");
  const Schedule& edm = *context.schedule;
  GaussianModel model(context.schedule, kMu, kSd);
  std::vector<double> sigmas;
  for (int i = 0; i <= steps; ++i) {
    const double ramp = static_cast<double>(i) / steps;
    sigmas.push_back(std::pow(std::pow(sigma_max, 1 / rho) + ramp * (std::pow(sigma_min, 1 / rho) -
                                                                     std::pow(sigma_max, 1 / rho)),
                              rho));
  }
  sigmas.push_back(0.0);
  std::vector<double> times =
      grid_registry().create(json{{"name", "karras"}, {"steps", steps}, {"rho", rho}}, "grid", context)->times(edm);
  REQUIRE(times.size() == sigmas.size() - 1);
  for (std::size_t i = 0; i < times.size(); ++i) CHECK(times[i] == Approx(sigmas[i]).epsilon(1e-13));
  const State x_T = sigma_max * test::standard_normal_rows(16, 2, 4);
  for (bool to_zero : {false, true}) {
    INFO((to_zero ? "with the final step to sigma = 0" : "ending at sigma_min"));
    std::vector<double> grid = times;
    if (to_zero) grid.push_back(0.0);
    State x = x_T;
    integrate(*solver_registry().create(json{{"name", "euler"}}, "solver"), edm, model, grid, x, nullptr);
    State y = x_T, eps(y.rows(), y.cols());
    for (std::size_t i = 0; i + 1 < grid.size(); ++i) {
      const double sigma = sigmas[i], sigma_next = sigmas[i + 1];
      model.eps(y, sigma, eps);
      const State denoised = y - sigma * eps;
      const State d = (y - denoised) / sigma;
      y = y + d * (sigma_next - sigma);
    }
    CHECK((x - y).abs().maxCoeff() < 1e-13 * (1 + y.abs().maxCoeff()));
    CHECK((x - x_T).abs().maxCoeff() > 1.0);  // it moved
  }
}
