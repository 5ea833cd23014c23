// EDM's preconditioning as a model wrapper (with_edm_preconditioning), against exact
// answers: a network that outputs the exact F of Gaussian data (EDM's training target,
// written here from Karras et al. 2022's Table 1 independently of lib/core/model.cpp) must
// give the exact Gaussian eps through the wrapper on the edm schedule and on a VP schedule
// (where the wrapper sees x / alpha at noise level sigma / alpha), with either sign of c_out,
// with Jacobian-vector products, and at a network time other than the step's.
#include <catch2/catch.hpp>
#include <cmath>
#include <memory>

#include "diffsde/driver.hpp"
#include "diffsde/error.hpp"
#include "diffsde/grid.hpp"
#include "diffsde/prediction_model.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/scores/analytic.hpp"
#include "support/exact.hpp"

using namespace diffsde;

namespace {

const Eigen::Vector3d kMu(0.4, -1.0, 2.0), kSd(0.3, 1.1, 0.7);

// The exact F of N(kMu, diag(kSd^2)) data for a network called on input = c_in x~ at time
// c = log(s)/4 (x~ = x0 + s eps): D = E[x0 | x~] = x~ - s eps(x~), F = sign (D - c_skip x~)/c_out.
class ExactEdmNetwork final : public Model {
 public:
  ExactEdmNetwork(double sigma_data, double sign) : sd_(sigma_data), sign_(sign) {}
  std::string name() const override { return "exact_edm_network"; }
  int dim() const override { return 3; }
  void eps(const ConstStateRef& input, double c, StateRef out) const override {
    const double s = std::exp(4 * c), q = s * s + sd_ * sd_;
    const double c_skip = sd_ * sd_ / q, c_out = s * sd_ / std::sqrt(q);
    for (Eigen::Index r = 0; r < input.rows(); ++r)
      for (int j = 0; j < 3; ++j) {
        const double xt = input(r, j) * std::sqrt(q);
        const double e = s * (xt - kMu(j)) / (kSd(j) * kSd(j) + s * s);
        out(r, j) = sign_ * ((xt - s * e) - c_skip * xt) / c_out;
      }
  }
  // F is affine in its input: dF_j/dinput_j = sign sqrt(q) (1 - s^2/(sd_j^2 + s^2) - c_skip) / c_out.
  bool has_jvp() const override { return true; }
  void eps_jvp(const ConstStateRef& input, double c, const ConstStateRef& v, StateRef eps_out,
               StateRef jvp_out) const override {
    eps(input, c, eps_out);
    const double s = std::exp(4 * c), q = s * s + sd_ * sd_;
    const double c_skip = sd_ * sd_ / q, c_out = s * sd_ / std::sqrt(q);
    for (int j = 0; j < 3; ++j) {
      const double d = sign_ * std::sqrt(q) * (1 - s * s / (kSd(j) * kSd(j) + s * s) - c_skip) / c_out;
      jvp_out.col(j) = d * v.col(j);
    }
  }

 private:
  double sd_, sign_;
};

}  // namespace

TEST_CASE("EDM preconditioning of the exact F gives the exact eps on edm and on VP", "[edm]") {
  const std::vector<std::shared_ptr<const Schedule>> schedules = {std::make_shared<EdmSchedule>(0.002, 80.0),
                                                                  std::make_shared<VpLinearSchedule>(0.1, 20.0)};
  for (const auto& schedule : schedules)
    for (double sigma_data : {0.5, 1.0})
      for (double sign : {1.0, -1.0}) {
        const GaussianModel exact(schedule, kMu, kSd);
        EdmPreconditioning options;
        options.sigma_data = sigma_data;
        options.output_sign = sign;
        const auto model =
            with_edm_preconditioning(std::make_shared<ExactEdmNetwork>(sigma_data, sign), schedule, options);
        CHECK(model->dim() == 3);
        CHECK(model->has_jvp());
        const std::vector<double> ts = schedule->name() == "edm" ? std::vector<double>{0.002, 0.3, 5.0, 80.0}
                                                                 : std::vector<double>{1e-3, 0.2, 0.7, 1.0};
        for (double t : ts) {
          INFO(schedule->name() << " sigma_data " << sigma_data << " sign " << sign << " t = " << t);
          const State x = test::standard_normal_rows(6, 3, 4) * (1 + schedule->sigma(t));
          State got(6, 3), want(6, 3);
          model->eps(x, t, got);
          exact.eps(x, t, want);
          CHECK((got - want).abs().maxCoeff() < 1e-12 * (1 + want.abs().maxCoeff()));
          // J v against the Gaussian's exact Jacobian.
          const State v = test::standard_normal_rows(6, 3, 5);
          State e1(6, 3), j1(6, 3), e2(6, 3), j2(6, 3);
          model->eps_jvp(x, t, v, e1, j1);
          exact.eps_jvp(x, t, v, e2, j2);
          CHECK((e1 - e2).abs().maxCoeff() < 1e-12 * (1 + e2.abs().maxCoeff()));
          CHECK((j1 - j2).abs().maxCoeff() < 1e-11 * (1 + j2.abs().maxCoeff()));
        }
      }
}

TEST_CASE("EDM preconditioning: the network's input and time at t_network, the combination at t", "[edm]") {
  auto schedule = std::make_shared<VpLinearSchedule>(0.1, 20.0);
  const double sd = 0.5;
  const auto network = std::make_shared<ExactEdmNetwork>(sd, 1.0);
  const auto model = with_edm_preconditioning(network, schedule, {sd, 1.0});
  const State x = test::standard_normal_rows(4, 3, 8);
  const double t = 0.41, t_net = 0.45;
  State got(4, 3);
  model->eps_rows_retimed(x, t, t_net, ModelRows{}, got);
  // By hand: F from the network on c_in(s_net) x / alpha_net at c_noise(s_net).
  const ScheduleAt an = schedule->at(t_net), at = schedule->at(t);
  const double s_net = an.sigma / an.alpha, s = at.sigma / at.alpha;
  State f(4, 3);
  network->eps(x / an.alpha / std::sqrt(s_net * s_net + sd * sd), std::log(s_net) / 4, f);
  const double q = s * s + sd * sd;
  const State d = sd * sd / q * (x / at.alpha) + s * sd / std::sqrt(q) * f;
  const State want = (x / at.alpha - d) / s;
  CHECK((got - want).abs().maxCoeff() < 1e-12 * (1 + want.abs().maxCoeff()));
  // And not the same as evaluating everything at t.
  State plain(4, 3);
  model->eps(x, t, plain);
  CHECK((plain - got).abs().maxCoeff() > 1e-4);
}

TEST_CASE("Euler on edm with an EDM-preconditioned network is the EDM sampler's Euler", "[edm]") {
  // k-diffusion's / EDM's deterministic Euler (Karras et al. 2022, Algorithm 1 without the
  // Heun correction): x <- x + (sigma_next - sigma) (x - D(x, sigma)) / sigma, with D the
  // preconditioned denoiser, written out here on the Karras grid.
  auto schedule = std::make_shared<EdmSchedule>(0.002, 80.0);
  const double sd = 0.5;
  const auto network = std::make_shared<ExactEdmNetwork>(sd, 1.0);
  const auto model = with_edm_preconditioning(network, schedule, {sd, 1.0});
  const int n = 12;
  std::vector<double> sigmas;
  const double rho = 7, lo = std::pow(0.002, 1 / rho), hi = std::pow(80.0, 1 / rho);
  for (int i = 0; i < n; ++i) sigmas.push_back(std::pow(hi + i / double(n - 1) * (lo - hi), rho));
  const State x_T = test::standard_normal_rows(5, 3, 11) * 80.0;
  State x = x_T;
  integrate(*solver_registry().create(nlohmann::json{{"name", "euler"}}, "solver"), *schedule, *model, sigmas, x,
            nullptr);
  State y = x_T, f(5, 3);
  for (int i = 0; i + 1 < n; ++i) {
    const double s = sigmas[i], q = s * s + sd * sd;
    network->eps(y / std::sqrt(q), 0.25 * std::log(s), f);
    const State d = sd * sd / q * y + s * sd / std::sqrt(q) * f;
    y = y + (sigmas[i + 1] - s) * (y - d) / s;
  }
  CHECK((x - y).abs().maxCoeff() < 1e-12 * (1 + y.abs().maxCoeff()));
  CHECK((x - x_T).abs().maxCoeff() > 1);
}

TEST_CASE("EDM preconditioning refuses bad settings and alpha = 0", "[edm]") {
  auto edm = std::make_shared<EdmSchedule>(0.002, 80.0);
  const auto network = std::make_shared<ExactEdmNetwork>(0.5, 1.0);
  CHECK_THROWS_WITH(with_edm_preconditioning(network, edm, {0.0, 1.0}), Catch::Contains("sigma_data"));
  CHECK_THROWS_WITH(with_edm_preconditioning(network, edm, {0.5, 2.0}), Catch::Contains("output_sign"));
  CHECK_THROWS_AS(with_edm_preconditioning(nullptr, edm), Error);
  auto flow = std::make_shared<FlowSchedule>(1.0);
  const auto model = with_edm_preconditioning(network, flow);
  State x = State::Zero(1, 3), out(1, 3);
  CHECK_THROWS_WITH(model->eps(x, 1.0, out), Catch::Contains("alpha > 0"));
}
