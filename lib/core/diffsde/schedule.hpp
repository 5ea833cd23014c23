// Noise schedules of the VP-SDE dx = -beta/2 x dt + sqrt(beta) dW.
//
// Every quantity derives from log_alpha_bar(t) = -int_0^t beta, computed in
// forms free of cancellation (expm1/log1p), so that t near 0 (sigma -> 0) and
// t near 1 (alpha -> 0) stay accurate to rounding.
#pragma once

#include <memory>
#include <vector>
#include <string>

namespace diffsde {

// All coefficients of a schedule at one time, computed once per step.
struct ScheduleAt {
  double t = 0;
  double log_alpha_bar = 0;  // -int_0^t beta
  double alpha = 1;          // sqrt(alpha_bar): signal scale
  double sigma = 0;          // sqrt(1 - alpha_bar): noise scale
  double lambda = 0;         // log(alpha / sigma): half log-SNR (+inf at t = 0)
  double beta = 0;           // beta(t)
};

class Schedule {
 public:
  virtual ~Schedule() = default;

  // Registered name ("vp_linear", ...).
  virtual std::string name() const = 0;
  // beta(t) = -d/dt log alpha_bar(t).
  virtual double beta(double t) const = 0;
  // log alpha_bar(t) = -int_0^t beta(s) ds; 0 at t = 0.
  virtual double log_alpha_bar(double t) const = 0;
  // Inverse of log_alpha_bar on [0, t_max()]: the t with log_alpha_bar(t) == l, for l <= 0.
  virtual double t_of_log_alpha_bar(double l) const = 0;
  // Largest usable time (1 for most schedules; the cosine schedule stops where beta
  // reaches its cap).
  virtual double t_max() const { return 1.0; }

  double alpha_bar(double t) const;
  double alpha(double t) const;
  double sigma(double t) const;
  double lambda(double t) const;
  // Inverse of lambda(t): the t with lambda(t) == lambda.
  double t_of_lambda(double lambda) const;
  // Everything at once, each from one evaluation of log_alpha_bar.
  ScheduleAt at(double t) const;
};

// numpy.linspace(start, stop, num): start + i (stop - start)/(num - 1), the last value
// exactly stop (num = 1: {start}; num < 1: empty). diffusers builds its betas and
// timesteps with it.
std::vector<double> numpy_linspace(double start, double stop, int num);

// Cancellation-free conversions between log alpha_bar and lambda.
double lambda_of_log_alpha_bar(double log_alpha_bar);
double log_alpha_bar_of_lambda(double lambda);

// Linear VP schedule: beta(t) = beta0 + t (beta1 - beta0).
class VpLinearSchedule final : public Schedule {
 public:
  explicit VpLinearSchedule(double beta0 = 0.1, double beta1 = 20.0);
  std::string name() const override { return "vp_linear"; }
  double beta(double t) const override;
  double log_alpha_bar(double t) const override;
  double t_of_log_alpha_bar(double l) const override;
  double beta0() const { return beta0_; }
  double beta1() const { return beta1_; }

 private:
  double beta0_, beta1_;
};

// Cosine schedule (Nichol & Dhariwal 2021): alpha_bar(t) = f(t)/f(0),
// f(t) = cos^2((t + s)/(1 + s) * pi/2). Its beta diverges at t = 1, so the usable
// range ends at t_max, where beta(t_max) = beta_max (999 by default, t_max ~ 0.99800).
class VpCosineSchedule final : public Schedule {
 public:
  explicit VpCosineSchedule(double s = 0.008, double beta_max = 999.0);
  std::string name() const override { return "vp_cosine"; }
  double beta(double t) const override;
  double log_alpha_bar(double t) const override;
  double t_of_log_alpha_bar(double l) const override;
  double t_max() const override { return t_max_; }
  double s() const { return s_; }

 private:
  double s_, beta_max_, theta0_, log_cos_theta0_, t_max_;
};

// Discrete DDPM schedule betas_0..betas_{N-1}, seen as a continuous one:
// log alpha_bar is piecewise linear in t between the knots t_n = (n+1)/N, where it
// equals the discrete sum_{k<=n} log(1 - betas_k), and alpha_bar(0) = 1.
//
// Each beta lies in (0, 1), except that the last may be exactly 1 (zero terminal SNR:
// alpha_bar = 0 at t = 1). Then log alpha_bar would be -inf on the whole last segment,
// so there alpha = sqrt(alpha_bar) is interpolated linearly in t instead, from its value
// at t = (N-1)/N down to 0 at t = 1 (docs/schedules_and_grids.md).
class VpDiscreteSchedule final : public Schedule {
 public:
  explicit VpDiscreteSchedule(std::vector<double> betas);
  // Linear betas: linspace(beta_start, beta_end, num_steps), as in DDPM.
  static VpDiscreteSchedule linear(double beta_start = 1e-4, double beta_end = 0.02,
                                   int num_steps = 1000);
  // The beta schedules of diffusers' DDPMScheduler, computed in float64:
  // linspace(sqrt(beta_start), sqrt(beta_end), num_steps)^2 (latent diffusion).
  static VpDiscreteSchedule scaled_linear(double beta_start, double beta_end, int num_steps);
  // min(1 - abar((i+1)/N)/abar(i/N), max_beta), abar(t) = cos^2((t + 0.008)/1.008 pi/2)
  // (Nichol & Dhariwal 2021); max_beta in (0, 1].
  static VpDiscreteSchedule squaredcos_cap_v2(int num_steps, double max_beta = 0.999);
  // sigmoid(linspace(-6, 6, num_steps)) (beta_end - beta_start) + beta_start.
  static VpDiscreteSchedule sigmoid(double beta_start, double beta_end, int num_steps);
  // The schedule named by diffusers' beta_schedule: "linear", "scaled_linear",
  // "squaredcos_cap_v2" (beta_start/beta_end unused) or "sigmoid" (max_beta unused).
  static VpDiscreteSchedule named(const std::string& beta_schedule, double beta_start, double beta_end,
                                  int num_steps, double max_beta = 0.999);
  static const std::vector<std::string>& beta_schedule_names();
  // Lin et al. 2024, Algorithm 1: sqrt(alpha_bar) shifted so that its last value is 0 and
  // scaled so that its first keeps its value; betas from the ratios (the last is 1).
  // Needs at least 2 betas.
  static std::vector<double> rescale_zero_terminal_snr(const std::vector<double>& betas);
  // The betas with the last one replaced so that alpha_bar of the last step is
  // final_alpha_bar, which must lie in [0, alpha_bar_{N-2}) (alpha_bar_{-1} = 1).
  static std::vector<double> with_final_alpha_bar(const std::vector<double>& betas, double final_alpha_bar);

  std::string name() const override { return "vp_discrete"; }
  double beta(double t) const override;
  double log_alpha_bar(double t) const override;
  double t_of_log_alpha_bar(double l) const override;
  int num_steps() const { return static_cast<int>(betas_.size()); }
  const std::vector<double>& betas() const { return betas_; }
  // Discrete log alpha_bar_n = sum_{k<=n} log(1 - betas_k), n = 0..N-1.
  const std::vector<double>& log_alpha_bars() const { return log_alpha_bars_; }
  // Time of discrete step n (0-based): (n + 1) / N.
  double t_of_step(int n) const;
  // Whether the last beta is 1 (alpha_bar = 0 at t = 1).
  bool zero_terminal_snr() const { return zero_terminal_snr_; }

 private:
  std::vector<double> betas_;
  std::vector<double> log_alpha_bars_;
  bool zero_terminal_snr_ = false;
};

}  // namespace diffsde
