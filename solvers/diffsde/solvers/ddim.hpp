// The first-order exponential integrator of the reverse VP dynamics, alias the
// generalized DDIM step (Song, Meng & Ermon 2021, eq. 12), and DDPM's ancestral
// sampling (Ho et al. 2020, Algorithm 2) as its eta = 1 case.
//
// From s to t (t < s), with x0 = (x - sigma_s eps) / alpha_s and h = lambda_t - lambda_s:
//   x_t = alpha_t x0 + sqrt(sigma_t^2 - sigma_n^2) eps + sigma_n z,
//   sigma_n = eta sigma_t sqrt(1 - exp(-2h)),
// where sigma_n^2 at eta = 1 is DDPM's posterior variance beta_tilde. In terms of x and eps
// (free of cancellation: both terms of the eps coefficient have the same sign),
//   x_t = (alpha_t/alpha_s) x + sigma_t [ (sqrt(1+u) - 1) - expm1(h) ] eps + sigma_n z,
//   u = eta^2 expm1(-2h).
// At eta = 0 this is x_t = (alpha_t/alpha_s) x - sigma_t expm1(h) eps: the exact solution
// of the PF-ODE's linear part in lambda with eps frozen, i.e. DPM-Solver-1 (Lu et al. 2022).
#pragma once

#include <optional>
#include <string>
#include <utility>

#include "diffsde/solver.hpp"

namespace diffsde {

// x_t = x * x_s + eps * eps_s + noise * z   (see the file comment);
// dir = sqrt(sigma_t^2 - sigma_n^2), the coefficient of eps in the x0 form.
struct DdimCoefficients {
  double x = 0, eps = 0, noise = 0, dir = 0;
};

// The ancestral split of the step s -> t (DDIM eq. 12's sigma_n): of the variance sigma_t^2
// at t, the share u = eta^2 (1 - exp(-2h)) is fresh noise, sigma_n = sigma_t sqrt(u), and
// the deterministic part keeps the noise level dir = sigma_t sqrt(1 - u). Divided by alpha_t
// these are k-diffusion's sigma_up and sigma_down. An eta asking for more noise than
// sigma_t gives u = 1 (capped = true). At sigma_t = 0 everything is 0.
struct AncestralSplit {
  double u = 0, noise = 0, dir = 0;
  bool capped = false;
};
AncestralSplit ancestral_split(const ScheduleAt& s, const ScheduleAt& t, double eta);

// Coefficients of the step s -> t for a given eta. At t with sigma_t = 0 (the final step
// to the data) the step returns x0 and draws no noise. Throws Error when eta is too large
// for the step (sigma_n > sigma_t).
DdimCoefficients ddim_coefficients(const ScheduleAt& s, const ScheduleAt& t, double eta);

// The noise scale of DDPM's "beta" variance over the step s -> t:
// sqrt(1 - alpha_bar_s / alpha_bar_t) (the DDIM paper's sigma-hat; beta_t on consecutive
// discrete steps). Zero on the final step to sigma_t = 0.
double ddpm_beta_noise(const ScheduleAt& s, const ScheduleAt& t);

class DdimSolver final : public Solver {
 public:
  enum class Noise {
    eta,        // sigma_n = eta sigma_t sqrt(1 - exp(-2h))   (ddim; ddpm "posterior" = eta 1)
    ddpm_beta,  // mean of eta = 1, sigma_n = sqrt(1 - alpha_bar_s/alpha_bar_t)   (ddpm "beta")
  };
  struct Options {
    std::string name = "ddim";
    double eta = 0;
    Noise noise = Noise::eta;
    // Clamp the predicted x0 to [lo, hi] (and recompute eps from it), as diffusers' clip_sample.
    std::optional<std::pair<double, double>> clip_x0;
    // With clip_x0: the step uses the eps consistent with the clipped x0 (diffusers'
    // use_clipped_model_output = True), or the model's own eps (False, diffusers' default).
    bool clipped_model_output = true;
    // With Noise::ddpm_beta: the final step to t = 0 adds its noise too, sqrt(1 - alpha_bar_s)
    // (diffusers' DDPMScheduler with fixed_large variance does when its last timestep is
    // above 0); DDPM's Algorithm 2 adds none there (false).
    bool final_noise = false;
    // eta >= 0 and lo < hi (options.hpp: the message in *error, the option in *option).
    bool is_valid(std::string* error = nullptr, std::string* option = nullptr) const;
  };

  // Throws Error unless options.is_valid().
  explicit DdimSolver(Options options);
  SolverTraits traits() const override;
  std::unique_ptr<Solver> clone() const override { return std::make_unique<DdimSolver>(options_); }
  void init(SolverContext& context, const State& x, const std::vector<double>& times) override;
  void step(SolverContext& context, std::size_t i, double t0, double t1, State& x) override;

 private:
  bool stochastic() const { return options_.eta > 0 || options_.noise == Noise::ddpm_beta; }
  Options options_;
  State eps_, z_, x0_;
};

}  // namespace diffsde
