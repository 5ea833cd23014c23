// k-diffusion's DPM-Solver samplers (Crowson's k-diffusion, sampling.py: class DPMSolver,
// sample_dpm_fast and sample_dpm_adaptive; after Lu et al. 2022, "DPM-Solver", Sec. 3.3
// "DPM-Solver-fast" and Sec. 4 / Algorithm 4 adaptive step size) on VP schedules.
//
// k-diffusion works in the variance-exploding frame: x_ve = x / alpha, sigma_ve = sigma /
// alpha, and the time variable tk = -log sigma_ve, which for our schedules is lambda =
// log(alpha / sigma). Its DPM-Solver-1/2/3 steps in (x_ve, tk) with noise prediction are
// DPM-Solver's singlestep updates in (x, lambda) divided by alpha_t, so both solvers take
// their steps from DpmSinglestep (dpm_solver.hpp, noise prediction) and convert to x_ve
// only where k-diffusion's own formulas need it: the ancestral split, the error norm and
// the added noise.
//
// dpm_fast: DPM-Solver-fast. Each grid interval whose end has sigma > 0 is one
// DPM-Solver step, with k-diffusion's orders list for the budget nfe (dpm_fast_orders);
// on a grid uniform in lambda (the `logSNR` grid) the steps are k-diffusion's. The grid must
// have floor(nfe / 3) + 1 such intervals; without an nfe the budget is 3 K - 1 for K such
// intervals (orders 3, ..., 3, 2).
//
// dpm_adaptive: DPM-Solver-12 / 23 with k-diffusion's PID step-size controller (KPidController)
// in lambda between consecutive grid times. Per attempt from lambda s to t = min(end, s + h):
// x_low, x_high from the embedded pair (order 2: DPM-Solver-1 / DPM-Solver-2 with r1 = 1/2;
// order 3: DPM-Solver-2 with r1 = 1/3 / DPM-Solver-3), in x_ve
//   delta = max(atol, rtol max(|x_low|, |x_prev|))   (x_prev: the last accepted x_low,
//                                                       at first the start state)
//   error = || (x_low - x_high) / delta ||_2 / sqrt(number of entries of the batch),
// and the controller decides acceptance and the next h. An interval ends when lambda is
// within 1e-5 of its end (k-diffusion's loop condition). The controller and x_prev carry
// over to the next grid interval. eps at the step start is evaluated once per accepted step
// and reused after a rejection (k-diffusion evaluates it again, with the same result), so
// NFE = order (accepted + rejected) - rejected.
//
// Ancestral noise (eta > 0, both): per step from s to t (sigma_ve), k-diffusion's
// get_ancestral_step gives sigma_down and sigma_up; the deterministic step goes to
// tk' = min(tk_end, -log sigma_down) (tk_end: the end of the run, or of the interval for
// dpm_adaptive), and s_noise sqrt(sigma_ve_t^2 - sigma_ve(tk')^2) z is added to x_ve, with z
// one standard-normal draw from the run's noise source per step where that is > 0.
//
// Without noise both also run backwards (sigma growing: an inversion), as k-diffusion allows;
// with eta > 0 the grid must decrease.
//
// dpm_fast on a grid whose last time has sigma = 0 ends with DPM-Solver's "denoise to zero"
// step: the interval into it returns the x0 prediction at its start (one evaluation).
// dpm_adaptive refuses grid times with sigma = 0, as k-diffusion refuses sigma_min = 0.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "diffsde/solvers/dpm_solver.hpp"

namespace diffsde {

// k-diffusion's orders list for a budget of nfe >= 1 evaluations: floor(nfe / 3) + 1 steps,
// all of order 3 but the last ones: (2, 1) when nfe % 3 == 0, else nfe % 3 (nfe = 3 gives
// (2, 1), nfe = 4 gives (3, 1)). Throws Error for nfe < 1.
std::vector<int> dpm_fast_orders(int nfe);

// k-diffusion's PIDStepSizeController: with inverse errors e_n = 1 / (error_n + eps) of the
// current and the last two accepted attempts,
//   factor = 1 + atan(e_0^b1 e_1^b2 e_2^b3 - 1),
//   b1 = (p + i + d) / k, b2 = -(p + 2 d) / k, b3 = d / k   (k: the controller's order),
// accept when factor >= accept_safety; h *= factor either way.
class KPidController {
 public:
  KPidController() = default;
  KPidController(double h, double pcoeff, double icoeff, double dcoeff, double order, double accept_safety);
  double h() const { return h_; }
  // Whether the attempt with this error is accepted; updates h. A NaN error counts as +inf.
  bool propose(double error);

 private:
  double h_ = 0, b1_ = 0, b2_ = 0, b3_ = 0, accept_safety_ = 0;
  double errs_[3] = {0, 0, 0};
  bool started_ = false;
  static constexpr double kEps = 1e-8;
};

class KDiffusionDpmFast final : public Solver {
 public:
  struct Options {
    int nfe = 0;         // k-diffusion's n; 0: 3 K - 1 for the grid's K steps (to sigma > 0)
    double eta = 0;      // ancestral noise: sigma_up = eta * (the DDPM posterior std)
    double s_noise = 1;  // scale of the added noise
    // nfe >= 0, eta and s_noise finite and >= 0 (options.hpp: the message in *error, the
    // option in *option).
    bool is_valid(std::string* error = nullptr, std::string* option = nullptr) const;
  };
  // Throws Error unless options.is_valid().
  explicit KDiffusionDpmFast(Options options);
  SolverTraits traits() const override;
  std::unique_ptr<Solver> clone() const override { return std::make_unique<KDiffusionDpmFast>(options_); }
  // Throws Error when nfe is given and the grid's steps (to sigma > 0) are not floor(nfe/3) + 1.
  void init(SolverContext& context, const State& x, const std::vector<double>& times) override;
  void step(SolverContext& context, std::size_t i, double t0, double t1, State& x) override;

 private:
  Options options_;
  DpmSinglestep single_;
  std::vector<int> orders_;
  double lambda_end_ = 0;  // k-diffusion's t_end: lambda at the last grid time with sigma > 0
  State eps_, z_;
};

class KDiffusionDpmAdaptive final : public Solver {
 public:
  struct Options {
    int order = 3;  // 2 (pair 1/2) or 3 (pair 2/3)
    double rtol = 0.05;
    double atol = 0.0078;
    double h_init = 0.05;  // first trial step in lambda
    double pcoeff = 0;
    double icoeff = 1;
    double dcoeff = 0;
    double accept_safety = 0.81;
    double eta = 0;
    double s_noise = 1;
    // order 2 or 3; rtol, pcoeff, icoeff, dcoeff, accept_safety, eta, s_noise finite and
    // >= 0; atol and h_init finite and > 0; pcoeff + icoeff + dcoeff > 0 (options.hpp).
    bool is_valid(std::string* error = nullptr, std::string* option = nullptr) const;
  };
  // Throws Error unless options.is_valid().
  explicit KDiffusionDpmAdaptive(Options options);
  SolverTraits traits() const override;
  std::unique_ptr<Solver> clone() const override { return std::make_unique<KDiffusionDpmAdaptive>(options_); }
  void init(SolverContext& context, const State& x, const std::vector<double>& times) override;
  void step(SolverContext& context, std::size_t i, double t0, double t1, State& x) override;

 private:
  static constexpr long kMaxAttempts = 100000;
  Options options_;
  DpmSinglestep single_;
  KPidController pid_;
  State eps_, x_low_, x_high_, x_prev_ve_, z_;
};

}  // namespace diffsde
