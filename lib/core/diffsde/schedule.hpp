// Noise schedules of Gaussian diffusions x_t = alpha(t) x0 + sigma(t) eps, with the
// forward SDE dx = f(t) x dt + g(t) dW, f = d log alpha/dt, g^2 = d sigma^2/dt - 2 f sigma^2
// (docs/math.md, "General (alpha, sigma)").
//
// The base class's defaults are the VP-SDE (alpha^2 + sigma^2 = 1): every quantity derives
// from log_alpha_bar(t) = -int_0^t beta, computed in forms free of cancellation
// (expm1/log1p), so that t near 0 (sigma -> 0) and t near 1 (alpha -> 0) stay accurate to
// rounding, and f = -beta/2, g^2 = beta. The other schedules (ve, subvp, edm, flow)
// override sigma, lambda, t_of_lambda, g2 and at with their own cancellation-free forms.
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
  double beta = 0;           // beta(t) = -d/dt log alpha_bar = -2 f
  double f = 0;              // d log alpha / dt: drift coefficient of the forward SDE
  double g2 = 0;             // d sigma^2/dt - 2 f sigma^2: its squared diffusion coefficient
};

class Schedule {
 public:
  virtual ~Schedule() = default;

  // Registered name ("vp_linear", ...).
  virtual std::string name() const = 0;
  // beta(t) = -d/dt log alpha_bar(t) = -2 f(t) (0 where alpha is constant: ve, edm).
  virtual double beta(double t) const = 0;
  // log alpha_bar(t) = 2 log alpha(t) (VP: -int_0^t beta(s) ds); 0 at t = 0.
  virtual double log_alpha_bar(double t) const = 0;
  // Inverse of log_alpha_bar on [0, t_max()]: the t with log_alpha_bar(t) == l, for l <= 0.
  // Schedules whose alpha is constant (ve, edm) throw Error.
  virtual double t_of_log_alpha_bar(double l) const = 0;
  // Largest usable time (1 for most schedules; the cosine schedule stops where beta
  // reaches its cap; edm's t is sigma, up to sigma_max).
  virtual double t_max() const { return 1.0; }
  // Smallest time a grid should end at by default: 0 (the data) except for edm, whose t is
  // sigma and whose grids end at sigma_min.
  virtual double t_min() const { return 0.0; }
  // alpha^2 + sigma^2 = 1 (the VP schedules). Solvers whose formulas assume it
  // (SolverTraits::any_schedule false) run only on these.
  virtual bool variance_preserving() const { return true; }
  // Standard deviation of the noise a sample starts from at t (1 for VP, sub-VP and flow;
  // sigma(t) for ve and edm, as in score-SDE and k-diffusion).
  virtual double prior_std(double /*t*/) const { return 1.0; }

  double alpha_bar(double t) const;
  double alpha(double t) const;
  virtual double sigma(double t) const;
  virtual double lambda(double t) const;
  // Inverse of lambda(t): the t with lambda(t) == lambda (lambda = -inf gives the time
  // where alpha = 0, lambda = +inf the time where sigma = 0, where they exist).
  virtual double t_of_lambda(double lambda) const;
  // The forward SDE's f(t) = d log alpha/dt and g(t)^2.
  double f(double t) const { return -0.5 * beta(t); }
  virtual double g2(double t) const { return beta(t); }
  // Everything at once, each from one evaluation of log_alpha_bar.
  virtual ScheduleAt at(double t) const;
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

// Score-SDE's VE-SDE (Song et al. 2021, eq. 31): alpha = 1, sigma(t) = sigma_min
// (sigma_max/sigma_min)^t on [0, 1], f = 0, g^2 = 2 sigma^2 log(sigma_max/sigma_min).
// sigma(0) = sigma_min > 0: lambda is finite at both ends.
class VeSchedule final : public Schedule {
 public:
  explicit VeSchedule(double sigma_min = 0.01, double sigma_max = 50.0);
  std::string name() const override { return "ve"; }
  double beta(double t) const override;
  double log_alpha_bar(double t) const override;
  double t_of_log_alpha_bar(double l) const override;
  bool variance_preserving() const override { return false; }
  double prior_std(double t) const override { return sigma(t); }
  double sigma(double t) const override;
  double lambda(double t) const override;
  double t_of_lambda(double lambda) const override;
  double g2(double t) const override;
  ScheduleAt at(double t) const override;

 private:
  double sigma_min_, sigma_max_, log_sigma_min_, log_ratio_;
};

// Score-SDE's sub-VP SDE (Song et al. 2021, eq. 29): alpha as vp_linear,
// alpha = exp(-int_0^t beta / 2), and sigma = 1 - alpha^2 (variance (1 - e^(-int beta))^2);
// f = -beta/2, g^2 = beta (1 - e^(-2 int_0^t beta)).
class SubVpSchedule final : public Schedule {
 public:
  explicit SubVpSchedule(double beta0 = 0.1, double beta1 = 20.0);
  std::string name() const override { return "subvp"; }
  double beta(double t) const override { return vp_.beta(t); }
  double log_alpha_bar(double t) const override { return vp_.log_alpha_bar(t); }
  double t_of_log_alpha_bar(double l) const override { return vp_.t_of_log_alpha_bar(l); }
  bool variance_preserving() const override { return false; }
  double sigma(double t) const override;
  double lambda(double t) const override;
  double t_of_lambda(double lambda) const override;
  double g2(double t) const override;
  ScheduleAt at(double t) const override;

 private:
  VpLinearSchedule vp_;
};

// EDM (Karras et al. 2022): alpha = 1, sigma = t, so t is the noise level itself and runs
// over [0, sigma_max]; t_max() = sigma_max and grids end by default at t_min() = sigma_min.
// f = 0, g^2 = 2 t; lambda = -log t.
class EdmSchedule final : public Schedule {
 public:
  explicit EdmSchedule(double sigma_min = 0.002, double sigma_max = 80.0);
  std::string name() const override { return "edm"; }
  double beta(double t) const override;
  double log_alpha_bar(double t) const override;
  double t_of_log_alpha_bar(double l) const override;
  double t_max() const override { return sigma_max_; }
  double t_min() const override { return sigma_min_; }
  bool variance_preserving() const override { return false; }
  double prior_std(double t) const override { return sigma(t); }
  double sigma(double t) const override;
  double lambda(double t) const override;
  double t_of_lambda(double lambda) const override;
  double g2(double t) const override;
  ScheduleAt at(double t) const override;

 private:
  double sigma_min_, sigma_max_;
};

// Rectified flow / flow matching (Liu et al. 2022; Lipman et al. 2023; SD3, Esser et al.
// 2024): alpha = 1 - s, sigma = s with the shifted time s = shift t / (1 + (shift - 1) t)
// on [0, 1]. At t = 1, alpha = 0 and lambda = -inf: no solver can start a step there
// (check_solver_grid), so grids on flow start below 1 (t_start).
class FlowSchedule final : public Schedule {
 public:
  explicit FlowSchedule(double shift = 1.0);
  std::string name() const override { return "flow"; }
  double beta(double t) const override;
  double log_alpha_bar(double t) const override;
  double t_of_log_alpha_bar(double l) const override;
  bool variance_preserving() const override { return false; }
  double sigma(double t) const override;
  double lambda(double t) const override;
  double t_of_lambda(double lambda) const override;
  double g2(double t) const override;
  ScheduleAt at(double t) const override;
  double shift() const { return shift_; }

 private:
  double shift_;
};

}  // namespace diffsde
