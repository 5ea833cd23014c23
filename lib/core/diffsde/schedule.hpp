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
class VpDiscreteSchedule final : public Schedule {
 public:
  explicit VpDiscreteSchedule(std::vector<double> betas);
  // Linear betas: linspace(beta_start, beta_end, num_steps), as in DDPM.
  static VpDiscreteSchedule linear(double beta_start = 1e-4, double beta_end = 0.02,
                                   int num_steps = 1000);
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

 private:
  std::vector<double> betas_;
  std::vector<double> log_alpha_bars_;
};

}  // namespace diffsde
