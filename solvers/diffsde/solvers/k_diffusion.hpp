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
//  - euler:           x_ve' = x_ve + (sigma_ve_t - sigma_ve_s) eps     (== ddim eta = 0)
//  - euler_ancestral: Euler to sigma_down, then + s_noise sigma_up z    (== ddim eta at s_noise 1)
//  - heun:            EDM Algorithm 2 (Heun's method with optional churn)
//  - dpm2:            midpoint in log sigma_ve (k-diffusion's sample_dpm_2)
//  - dpm2_ancestral:  dpm2 to sigma_down, then ancestral noise
//  - lms:             linear multistep in sigma_ve, coefficients from the exact integral of
//                     the Lagrange basis over each (variable) step
#pragma once

#include <string>
#include <vector>

#include "diffsde/solver.hpp"

namespace diffsde {

// Coefficients c_j, j = 0..k-1, with int_{sigma_s}^{sigma_t} p(tau) dtau = sum_j c_j p(nodes[j])
// for every polynomial p of degree < k, k = nodes.size() <= 4 (exact integral of the Lagrange
// basis polynomials). nodes[0] is usually sigma_s itself; the nodes must be distinct.
std::vector<double> lms_coefficients(const std::vector<double>& nodes, double sigma_s, double sigma_t);

class KDiffusionSolver final : public Solver {
 public:
  enum class Method { euler, euler_ancestral, heun, dpm2, dpm2_ancestral, lms };
  struct Options {
    Method method = Method::euler;
    double eta = 1;       // ancestral methods
    double s_noise = 1;   // ancestral and churn noise scale
    double s_churn = 0;   // heun
    double s_tmin = 0;    // heun
    double s_tmax = 1e300;  // heun (infinity)
    int order = 4;        // lms
  };

  explicit KDiffusionSolver(Options options);
  SolverTraits traits() const override;
  std::unique_ptr<Solver> clone() const override {
    return std::make_unique<KDiffusionSolver>(options_);
  }
  void init(SolverContext& context, const State& x, const std::vector<double>& times) override;
  void step(SolverContext& context, std::size_t i, double t0, double t1, State& x) override;

  static std::string name_of(Method method);

 private:
  bool stochastic() const;
  // eps at the VE point x_ve and noise level sigma_ve (VP time t_vp, alpha_vp) into out.
  void eps_at(SolverContext& context, const State& x_ve, double t_vp, double alpha_vp, State& out);
  // Deterministic moves of x_ve_ from sigma_from to sigma_to (> 0 or 0), eps_ at sigma_from known.
  void euler_to(double sigma_from, double sigma_to);
  void dpm2_to(SolverContext& context, double sigma_from, double lambda_from, double sigma_to);
  void lms_step(double sigma_s, double sigma_t);

  Options options_;
  std::size_t steps_ = 0;
  double sigma_ve_max_ = 0;  // sigma_ve at the schedule's t_max: the churn's cap
  State x_ve_, eps_, eps2_, tmp_, z_;
  // lms history: eps at past sigma_ve values, newest first.
  std::vector<State> history_;
  std::vector<double> history_sigma_;
  std::size_t history_size_ = 0;
  double last_t1_ = 0;  // the history continues only from the previous step's end
};

}  // namespace diffsde
