// The EDM / k-diffusion samplers (Karras et al. 2022, "Elucidating the Design Space of
// Diffusion-Based Generative Models"; k-diffusion's sample_* functions) on VP schedules.
//
// They are written for the variance-exploding form x_ve = x / alpha with noise level
// sigma_ve = sigma / alpha = exp(-lambda), in which the PF-ODE reads
//   dx_ve / dsigma_ve = eps(x, t) = (x_ve - D(x_ve; sigma_ve)) / sigma_ve,
// with the denoiser D = x0 prediction = (x - sigma eps) / alpha. The state at the API stays
// in VP coordinates: each step converts x_s -> x_ve = x_s / alpha_s, steps in sigma_ve, and
// converts back x_t = alpha_t x_ve. A model call at an off-grid sigma_ve (EDM's churned
// sigma_hat, DPM-2's midpoint) runs at the VP time t_of_lambda(-log sigma_ve) on the VP point
// alpha(t) x_ve.
//
// One small final class per sampler below (KDiffusionEuler registered as "euler", ...,
// KDiffusionLms as "lms"), on the common base KDiffusionSolver.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "diffsde/solver.hpp"

namespace diffsde {

// Coefficients c_j, j = 0..k-1, with int_{sigma_s}^{sigma_t} p(tau) dtau = sum_j c_j p(nodes[j])
// for every polynomial p of degree < k, k = nodes.size() <= 4 (exact integral of the Lagrange
// basis polynomials). nodes[0] is usually sigma_s itself; the nodes must be distinct.
std::vector<double> lms_coefficients(const std::vector<double>& nodes, double sigma_s, double sigma_t);

// The VE frame shared by the six samplers: step() converts x_s -> x_ve, lets the sampler move
// x_ve_ from sigma_ve_s to sigma_ve_t in step_ve(), and converts back. Each sampler is a small
// final class below; what they share (the frame, model calls at off-grid sigma_ve, the Euler
// and DPM-2 moves, ancestral noise) lives here.
class KDiffusionSolver : public Solver {
 public:
  // Sizes the work arrays (the sampler's own via allocate()). The grid must decrease
  // (base_traits declares it; the driver checks it).
  void init(SolverContext& context, const State& x, const std::vector<double>& times) final;
  void step(SolverContext& context, std::size_t i, double t0, double t1, State& x) final;

 protected:
  explicit KDiffusionSolver(std::string name) : name_(std::move(name)) {}
  const std::string& name() const { return name_; }
  // Traits with the name, the stochastic flag and the grid requirements filled in.
  SolverTraits base_traits(bool stochastic) const;

  // The sampler's work arrays beyond x_ve_, eps_ and tmp_, and any history reset.
  virtual void allocate(Eigen::Index rows, Eigen::Index cols) = 0;
  // Moves x_ve_ (= x / alpha_s on entry) from s to t; x is the VP state at s.
  virtual void step_ve(SolverContext& context, double t0, double t1, const ScheduleAt& s,
                       const ScheduleAt& t, const State& x) = 0;

  // eps at the VE point x_ve and noise level sigma_ve (VP time t_vp, alpha_vp) into out.
  void eps_at(SolverContext& context, const State& x_ve, double t_vp, double alpha_vp, State& out);
  // Deterministic moves of x_ve_ from sigma_from to sigma_to (> 0 or 0), eps_ at sigma_from known.
  void euler_to(double sigma_from, double sigma_to);
  // DPM-2's midpoint move; needs eps2_ allocated.
  void dpm2_to(SolverContext& context, double sigma_from, double lambda_from, double sigma_to);
  // x_ve_ += s_noise sigma_up z with a fresh draw when the split has noise; needs z_ allocated.
  void add_ancestral_noise(SolverContext& context, double noise, double alpha_t, double s_noise);

  std::size_t steps_ = 0;
  double sigma_ve_max_ = 0;  // sigma_ve at the schedule's t_max: heun's churn cap
  State x_ve_, eps_, eps2_, tmp_, z_;

 private:
  std::string name_;
};

// Ancestral options (euler_ancestral, dpm2_ancestral).
struct KDiffusionAncestralOptions {
  double eta = 1;      // sigma_up = eta * (the DDPM posterior std)
  double s_noise = 1;  // scale of the added noise
  // eta and s_noise >= 0 (options.hpp: the message in *error, the option in *option).
  bool is_valid(std::string* error = nullptr, std::string* option = nullptr) const;
};

// euler: x_ve' = x_ve + (sigma_ve_t - sigma_ve_s) eps   (== ddim eta = 0).
class KDiffusionEuler final : public KDiffusionSolver {
 public:
  KDiffusionEuler();
  SolverTraits traits() const override;
  std::unique_ptr<Solver> clone() const override { return std::make_unique<KDiffusionEuler>(); }

 private:
  void allocate(Eigen::Index rows, Eigen::Index cols) override;
  void step_ve(SolverContext& context, double t0, double t1, const ScheduleAt& s, const ScheduleAt& t,
               const State& x) override;
};

// euler_ancestral: Euler to sigma_down, then + s_noise sigma_up z   (== ddim eta at s_noise 1).
class KDiffusionEulerAncestral final : public KDiffusionSolver {
 public:
  // Throws Error unless options.is_valid().
  explicit KDiffusionEulerAncestral(KDiffusionAncestralOptions options);
  SolverTraits traits() const override;
  std::unique_ptr<Solver> clone() const override {
    return std::make_unique<KDiffusionEulerAncestral>(options_);
  }

 private:
  void allocate(Eigen::Index rows, Eigen::Index cols) override;
  void step_ve(SolverContext& context, double t0, double t1, const ScheduleAt& s, const ScheduleAt& t,
               const State& x) override;
  KDiffusionAncestralOptions options_;
};

// heun: EDM Algorithm 2, Heun's method in sigma_ve with optional churn.
class KDiffusionHeun final : public KDiffusionSolver {
 public:
  struct Options {
    double s_churn = 0;
    double s_tmin = 0;
    double s_tmax = 1e300;  // infinity
    double s_noise = 1;
    // s_churn, s_tmin and s_noise >= 0, s_tmax >= s_tmin (options.hpp: the message in
    // *error, the option in *option).
    bool is_valid(std::string* error = nullptr, std::string* option = nullptr) const;
  };
  // Throws Error unless options.is_valid().
  explicit KDiffusionHeun(Options options);
  SolverTraits traits() const override;
  std::unique_ptr<Solver> clone() const override { return std::make_unique<KDiffusionHeun>(options_); }

 private:
  bool stochastic() const { return options_.s_churn > 0; }
  void allocate(Eigen::Index rows, Eigen::Index cols) override;
  void step_ve(SolverContext& context, double t0, double t1, const ScheduleAt& s, const ScheduleAt& t,
               const State& x) override;
  Options options_;
};

// dpm2: midpoint in log sigma_ve (k-diffusion's sample_dpm_2); the final step to 0 is Euler.
class KDiffusionDpm2 final : public KDiffusionSolver {
 public:
  KDiffusionDpm2();
  SolverTraits traits() const override;
  std::unique_ptr<Solver> clone() const override { return std::make_unique<KDiffusionDpm2>(); }

 private:
  void allocate(Eigen::Index rows, Eigen::Index cols) override;
  void step_ve(SolverContext& context, double t0, double t1, const ScheduleAt& s, const ScheduleAt& t,
               const State& x) override;
};

// dpm2_ancestral: dpm2 to sigma_down, then ancestral noise.
class KDiffusionDpm2Ancestral final : public KDiffusionSolver {
 public:
  // Throws Error unless options.is_valid().
  explicit KDiffusionDpm2Ancestral(KDiffusionAncestralOptions options);
  SolverTraits traits() const override;
  std::unique_ptr<Solver> clone() const override {
    return std::make_unique<KDiffusionDpm2Ancestral>(options_);
  }

 private:
  void allocate(Eigen::Index rows, Eigen::Index cols) override;
  void step_ve(SolverContext& context, double t0, double t1, const ScheduleAt& s, const ScheduleAt& t,
               const State& x) override;
  KDiffusionAncestralOptions options_;
};

// lms: linear multistep in sigma_ve with lms_coefficients over each (variable) step.
class KDiffusionLms final : public KDiffusionSolver {
 public:
  struct Options {
    int order = 4;  // 1 to 4
    // order 1 to 4 (options.hpp: the message in *error, the option in *option).
    bool is_valid(std::string* error = nullptr, std::string* option = nullptr) const;
  };
  KDiffusionLms();  // the default Options (a default argument `= {}` would need them complete)
  // Throws Error unless options.is_valid().
  explicit KDiffusionLms(Options options);
  SolverTraits traits() const override;
  std::unique_ptr<Solver> clone() const override { return std::make_unique<KDiffusionLms>(Options{order_}); }

 private:
  void allocate(Eigen::Index rows, Eigen::Index cols) override;
  void step_ve(SolverContext& context, double t0, double t1, const ScheduleAt& s, const ScheduleAt& t,
               const State& x) override;
  int order_;
  // eps at past sigma_ve values, newest first.
  std::vector<State> history_;
  std::vector<double> history_sigma_;
  std::size_t history_size_ = 0;
  double last_t1_ = 0;  // the history continues only from the previous step's end
};

}  // namespace diffsde
