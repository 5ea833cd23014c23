// The stochastic DPM-Solver++ family (Lu et al. 2022, arXiv:2211.01095), in the forms of
// k-diffusion's samplers, written in lambda = log(alpha/sigma) on VP schedules with the state
// in VP coordinates and the data prediction x0 = (x - sigma eps)/alpha:
//
//   dpmpp_2m_sde        SDE-DPM-Solver++(2M): multistep, 1 evaluation per step;
//   dpmpp_3m_sde        its third-order multistep extension;
//   dpmpp_2s_ancestral  DPM-Solver++(2S) to the "down" point, then ancestral noise;
//   dpmpp_sde           singlestep second order with noise at the intermediate point too.
//
// k-diffusion works with sigma_ve = sigma/alpha = exp(-lambda) and x_ve = x/alpha; every
// formula below is its update multiplied through by alpha_t. With h = lambda_t - lambda_s:
//
// Multistep (2m, 3m), u = (1 + eta) h:
//   x_t = (sigma_t/sigma_s) e^{-eta h} x_s + alpha_t (1 - e^{-u}) x0_s + alpha_t C
//         + sigma_t sqrt(1 - e^{-2 eta h}) z,
// with the correction C from earlier data predictions (see step_multistep; 3m weights its
// second difference by the Taylor coefficient, twice k-diffusion's, to be third order). It is the
// exact solution over the step of dx = [f x - (1 + eta)/2 g^2 score] dt + sqrt(eta) g dW_bar
// with x0 frozen (C = 0) or interpolated (C != 0); that SDE has the marginals p_t for every
// eta >= 0, is the PF-ODE at eta = 0 and the reverse SDE at eta = 1.
//
// Ancestral split (2s, sde; Karras et al. 2022, k-diffusion's get_ancestral_step): a step
// s -> t is a deterministic step to lambda_down followed by noise, where
//   u = min(1, eta^2 (1 - e^{-2h})),  lambda_down = lambda_t - log(1 - u)/2,
//   x_t = (sigma_t/sigma_s) sqrt(1 - u) x_s + alpha_t (1 - e^{-h_down}) D + sigma_t sqrt(u) z,
// h_down = lambda_down - lambda_s and D the step's data prediction. With D = x0_s it is
// exactly the generalized DDIM step with the same eta (for eta <= 1).
//
// A step to sigma_t = 0 (t = 0, lambda = +inf) returns x0_s and draws nothing, as
// k-diffusion does when sigma_next = 0.
#pragma once

#include <string>
#include <vector>

#include "diffsde/solver.hpp"

namespace diffsde {

// The ancestral split of the step s -> t (see the file comment): x_t = x * x_s + x0 * D +
// noise * z. `u` is the fraction of sigma_t^2 that is fresh noise; `h_down` is
// lambda_down - lambda_s (+inf when u = 1 or sigma_t = 0: the deterministic part is then D).
struct AncestralStep {
  double u = 0, h_down = 0, x = 0, x0 = 0, noise = 0;
};
AncestralStep ancestral_step(const ScheduleAt& s, const ScheduleAt& t, double eta);

class DpmppSdeSolver final : public Solver {
 public:
  enum class Method {
    multistep2,  // dpmpp_2m_sde
    multistep3,  // dpmpp_3m_sde
    ancestral2s, // dpmpp_2s_ancestral
    sde,         // dpmpp_sde
  };
  enum class SolverType { midpoint, heun };
  struct Options {
    Method method = Method::multistep2;
    double eta = 1;
    SolverType solver_type = SolverType::midpoint;  // multistep2 only
    double r = 0.5;                                 // sde only: intermediate at lambda_s + r h
  };

  explicit DpmppSdeSolver(Options options);
  SolverTraits traits() const override;
  std::unique_ptr<Solver> clone() const override {
    return std::make_unique<DpmppSdeSolver>(options_);
  }
  void init(SolverContext& context, const State& x, const std::vector<double>& times) override;
  void step(SolverContext& context, std::size_t i, double t0, double t1, State& x) override;

  static std::string name_of(Method method);

 private:
  bool stochastic() const { return options_.eta > 0; }
  void step_multistep(SolverContext& context, const ScheduleAt& s, const ScheduleAt& t, State& x);
  void step_2s(SolverContext& context, const ScheduleAt& s, const ScheduleAt& t, State& x);
  void step_sde(SolverContext& context, const ScheduleAt& s, const ScheduleAt& t, State& x);
  // Standard normal from the Brownian increment W(t1) - W(t0), into z_.
  void normalised_increment(SolverContext& context, double t0, double t1);

  Options options_;
  State eps_, x0_, x0_mid_, z_, dw_;
  // Multistep history: data predictions and step sizes in lambda of the last two steps.
  State x0_prev_[2];
  double h_prev_[2] = {0, 0};
  int history_ = 0;
};

}  // namespace diffsde
