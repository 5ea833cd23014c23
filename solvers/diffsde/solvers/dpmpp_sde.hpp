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
// with the correction C from earlier data predictions (see DpmppMultistepSolver::advance; 3m
// weights its second difference by the Taylor coefficient, twice k-diffusion's, to be third
// order). It is the exact solution over the step of
//   dx = [f x - (1 + eta)/2 g^2 score] dt + sqrt(eta) g dW_bar
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
//
// One small final class per sampler (Dpmpp2mSdeSolver, Dpmpp3mSdeSolver,
// Dpmpp2sAncestralSolver, DpmppSdeSolver) on the common base DpmppSolver.
#pragma once

#include <memory>
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

// The options of dpmpp_3m_sde and dpmpp_2s_ancestral, and the eta rule of all four samplers.
struct DpmppOptions {
  double eta = 1;  // 0 = the PF-ODE solver, 1 = the reverse SDE
  // eta finite and >= 0 (options.hpp: the message in *error, the option in *option).
  bool is_valid(std::string* error = nullptr, std::string* option = nullptr) const;
};

// What the four samplers share: every step evaluates eps at s, forms x0_s, and returns x0_s on
// a step to sigma_t = 0; otherwise the sampler's advance() takes over. Each sampler is a
// small final class below.
class DpmppSolver : public Solver {
 public:
  // Sizes the work arrays (the sampler's own via allocate()). The grid must decrease when
  // eta > 0 (base_traits declares it; the driver checks it).
  void init(SolverContext& context, const State& x, const std::vector<double>& times) final;
  void step(SolverContext& context, std::size_t i, double t0, double t1, State& x) final;

 protected:
  // eta is checked by the sampler's constructor (its Options::is_valid).
  DpmppSolver(std::string name, double eta);
  const std::string& name() const { return name_; }
  double eta() const { return eta_; }
  bool stochastic() const { return eta_ > 0; }
  // Name, stochastic, evaluations per step, the order (ode_order at eta = 0, observed:
  // tests/test_dpmpp_sde.cpp; weak order 1 with noise) and the grid requirements.
  SolverTraits base_traits(double ode_order, int evals_per_step) const;

  // The sampler's work arrays beyond eps_, x0_ and z_, and any history reset.
  virtual void allocate(Eigen::Index rows, Eigen::Index cols) = 0;
  // The step s -> t with sigma_t > 0, eps_ and x0_ at s known.
  virtual void advance(SolverContext& context, const ScheduleAt& s, const ScheduleAt& t, State& x) = 0;
  // Standard normal from the Brownian increment W(t1) - W(t0), into z_.
  void normalised_increment(SolverContext& context, double t0, double t1);

  State eps_, x0_, z_;
  // The current step's index and the grid's number of steps (set by step() and init()).
  std::size_t step_index_ = 0, steps_ = 0;

 private:
  std::string name_;
  double eta_;
};

// The multistep pair (dpmpp_2m_sde, dpmpp_3m_sde): order min(steps so far + 1, max_order),
// from the data predictions of the last max_order - 1 steps.
class DpmppMultistepSolver : public DpmppSolver {
 public:
  SolverTraits traits() const override;

 protected:
  // midpoint: the second-order correction of k-diffusion's solver_type "midpoint" instead of
  // the exact weight of a linear x0 ("heun").
  DpmppMultistepSolver(std::string name, double eta, int max_order, bool midpoint);
  // Each step's order, one per grid step (empty: the history's warm-up alone).
  std::vector<int> orders_;

 private:
  void allocate(Eigen::Index rows, Eigen::Index cols) override;
  void advance(SolverContext& context, const ScheduleAt& s, const ScheduleAt& t, State& x) override;

  int max_order_;
  bool midpoint_;
  // Data predictions and step sizes in lambda of the last two steps, newest first.
  State x0_prev_[2];
  double h_prev_[2] = {0, 0};
  int history_ = 0;
};

// dpmpp_2m_sde: SDE-DPM-Solver++(2M).
class Dpmpp2mSdeSolver final : public DpmppMultistepSolver {
 public:
  enum class SolverType { midpoint, heun };
  struct Options {
    double eta = 1;
    SolverType solver_type = SolverType::midpoint;
    // The order of each step, one per grid step, each 1 or 2 and at most its step number + 1
    // (diffusers' DPMSolverMultistepScheduler with sde-dpmsolver++ lowers its last step this
    // way); empty: second order from the second step on.
    std::vector<int> orders;
    // eta as DpmppOptions; orders as above.
    bool is_valid(std::string* error = nullptr, std::string* option = nullptr) const;
  };
  // Throws Error unless options.is_valid().
  explicit Dpmpp2mSdeSolver(Options options);
  std::unique_ptr<Solver> clone() const override { return std::make_unique<Dpmpp2mSdeSolver>(options_); }

 private:
  Options options_;
};

// dpmpp_3m_sde: its third-order multistep extension.
class Dpmpp3mSdeSolver final : public DpmppMultistepSolver {
 public:
  using Options = DpmppOptions;
  // Throws Error unless options.is_valid().
  explicit Dpmpp3mSdeSolver(Options options = {});
  std::unique_ptr<Solver> clone() const override { return std::make_unique<Dpmpp3mSdeSolver>(Options{eta()}); }
};

// dpmpp_2s_ancestral: DPM-Solver++(2S) to the "down" point, then ancestral noise.
class Dpmpp2sAncestralSolver final : public DpmppSolver {
 public:
  using Options = DpmppOptions;
  // Throws Error unless options.is_valid().
  explicit Dpmpp2sAncestralSolver(Options options = {});
  SolverTraits traits() const override;
  std::unique_ptr<Solver> clone() const override {
    return std::make_unique<Dpmpp2sAncestralSolver>(Options{eta()});
  }

 private:
  void allocate(Eigen::Index rows, Eigen::Index cols) override;
  void advance(SolverContext& context, const ScheduleAt& s, const ScheduleAt& t, State& x) override;
  State x0_mid_;
};

// dpmpp_sde: singlestep second order with noise at the intermediate point too.
class DpmppSdeSolver final : public DpmppSolver {
 public:
  struct Options {
    double eta = 1;
    double r = 0.5;  // intermediate point at lambda_s + r h
    // What the noise source's draws are. false: Brownian increments (the end's noise is the
    // whole step's increment, combined from the two). true: the outputs of k-diffusion's
    // noise sampler, noise_sampler(sigma, sigma_mid) then noise_sampler(sigma, sigma_next),
    // used as they are (a replay file of what a k-diffusion run's sampler returned, or
    // independent draws as k-diffusion's default_noise_sampler gives).
    bool sampler_draws = false;
    // eta as DpmppOptions, then r in (0, 1).
    bool is_valid(std::string* error = nullptr, std::string* option = nullptr) const;
  };
  // Throws Error unless options.is_valid().
  explicit DpmppSdeSolver(Options options);
  SolverTraits traits() const override;
  std::unique_ptr<Solver> clone() const override { return std::make_unique<DpmppSdeSolver>(options_); }

 private:
  void allocate(Eigen::Index rows, Eigen::Index cols) override;
  void advance(SolverContext& context, const ScheduleAt& s, const ScheduleAt& t, State& x) override;
  Options options_;
  State x0_mid_, dw_;
};

// "midpoint" | "heun"; the second throws Error on unknown names.
std::string to_string(Dpmpp2mSdeSolver::SolverType solver_type);
Dpmpp2mSdeSolver::SolverType dpmpp_solver_type_from_string(const std::string& s);

}  // namespace diffsde
