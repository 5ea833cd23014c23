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

using namespace diffsde;
using nlohmann::json;

namespace {

std::unique_ptr<Solver> make(const json& j) { return solver_registry().create(j, "solver"); }

double max_abs(const State& a) { return a.abs().maxCoeff(); }

GmmModel test_gmm(std::shared_ptr<const Schedule> schedule) {
  Eigen::VectorXd w(2);
  w << 0.3, 0.7;
  Eigen::MatrixXd means(2, 2), stds(2, 2);
  means << -1, 0.5, 1.5, -0.5;
  stds << 0.3, 0.6, 0.5, 0.2;
  return GmmModel(std::move(schedule), w, means, stds);
}

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

double observed_order(const Setup& s, const json& config, bool in_lambda, const std::vector<int>& steps_list,
                      std::vector<double>* errors_out = nullptr) {
  const double t_start = 1.0, t_end = 1e-2;
  const State x_T = test::standard_normal_rows(64, 2, 1);
  const State x_exact = s.problem.pf_ode_flow(x_T, t_start, t_end);
  const auto traits = make(config)->traits();
  std::vector<double> hs, errors;
  for (int steps : steps_list) {
    auto solver = make(config);
    State x = x_T;
    integrate(*solver, *s.schedule, s.model,
              refinement_grid(*s.schedule, t_start, t_end, steps, traits.warmup_steps, traits.order, in_lambda), x,
              nullptr);
    hs.push_back(1.0 / steps);
    errors.push_back(max_abs(x - x_exact));
  }
  if (errors_out) *errors_out = errors;
  return test::log_log_slope(hs, errors);
}

}  // namespace

TEST_CASE("unipc, deis and ipndm converge at their declared orders on the exact flow") {
  const Setup s;
  for (bool in_lambda : {false, true}) {
    for (const json& config : listed_variants()) {
      const auto traits = make(config)->traits();
      std::vector<double> errors;
      const double slope = observed_order(s, config, in_lambda,
                                          in_lambda ? std::vector<int>{10, 20, 40, 80} : std::vector<int>{20, 40, 80, 160},
                                          &errors);
      INFO(config.dump() << (in_lambda ? " logSNR" : " time_uniform") << ": declared " << traits.order
                         << ", observed " << slope << "; errors " << errors[0] << " " << errors[1] << " "
                         << errors[2] << " " << errors[3]);
      WARN(config.dump() << (in_lambda ? " logSNR" : " time_uniform") << ": declared " << traits.order
                         << ", observed " << slope << "; errors " << errors[0] << " " << errors[1] << " "
                         << errors[2] << " " << errors[3]);
      CHECK(std::fabs(slope - traits.order) < 0.25 + 0.05 * traits.order);
    }
  }
}
