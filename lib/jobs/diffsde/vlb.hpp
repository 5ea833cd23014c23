// The DDPM variational bound (Ho et al. 2020, eq. 5, in the DDPM derivation) of a noise-
// prediction model on a discrete chain of N steps:
//   -log p(x_0) <= L_T + sum_{n=2}^{N} L_{n-1} + L_0,
//   L_T     = KL(q(x_N | x_0) || N(0, I))                              (closed form),
//   L_{n-1} = E_{x_n ~ q(x_n|x_0)} KL(q(x_{n-1} | x_n, x_0) || p(x_{n-1} | x_n)),
//   L_0     = E_{x_1 ~ q(x_1|x_0)} [-log p(x_0 | x_1)],
// with p(x_{n-1} | x_n) = N(mu(x_n), sigma_n^2 I), mu = (x_n - beta_n / sqrt(1 - alpha_bar_n)
// eps(x_n)) / sqrt(1 - beta_n), and the decoder p(x_0 | x_1) a Gaussian density (continuous
// data) or the discretized Gaussian over the 8-bit bins with edges x_0 +- 1/255 and open end
// bins (image8 data). See docs/likelihood.md.
//
// Estimator: L_T exactly; every other term by its own Monte Carlo average over `draws`
// independent x_n per sample (the KL inside is in closed form), keyed by (seed, sample,
// n, draw) in the `vlb` noise stream, so per-term standard errors add in quadrature.
// Every data row is independent: results do not depend on the batch or the split.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "diffsde/likelihood.hpp"
#include "diffsde/model.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/state.hpp"

namespace diffsde {

// The variance sigma_n^2 of p(x_{n-1} | x_n).
enum class VlbVariance {
  beta,        // sigma_n^2 = beta_n (DDPM's "fixedlarge")
  beta_tilde,  // sigma_n^2 = beta_tilde_n, the posterior variance (DDPM's "fixedsmall")
};
std::string to_string(VlbVariance variance);
VlbVariance vlb_variance_from_string(const std::string& s);

// The discrete chain: knots 0 = tau_0 < tau_1 < ... < tau_N with alpha_bar_n =
// alpha_bar(tau_n). For a vp_discrete schedule and N = its num_steps, the schedule's own
// betas; otherwise tau_n = n t_max / N and beta_n = 1 - alpha_bar_n / alpha_bar_{n-1}
// (a respacing of the schedule: the chain skips the times in between). Vectors are
// indexed by n = 0..N (entries at n = 0 unused, 0).
struct VlbChain {
  std::vector<double> tau;
  std::vector<double> log_alpha_bar;  // 0 at n = 0
  std::vector<double> beta;
  std::vector<double> beta_tilde;  // (1 - alpha_bar_{n-1}) / (1 - alpha_bar_n) beta_n; 0 at n = 1
  // sigma_n^2 of the model's reverse step. With beta_tilde, n = 1 (the decoder) would get 0,
  // so it takes beta_tilde_2 instead (as DDPM's code clips it), or beta_1 when N = 1.
  std::vector<double> variance;
  long steps() const { return static_cast<long>(tau.size()) - 1; }
};

// Throws Error when steps < 1 or the chain is degenerate (a beta_n that rounds to 0).
VlbChain vlb_chain(const Schedule& schedule, long steps, VlbVariance variance);

struct VlbOptions {
  // N; 0: the schedule's num_steps for vp_discrete (required otherwise).
  long steps = 0;
  // beta: with the exact eps the bound tends to the exact NLL as N grows (the reverse
  // SDE's variance); beta_tilde keeps a gap of O(1) nats from the first few steps.
  VlbVariance variance = VlbVariance::beta;
  // continuous: Gaussian decoder density; image8: discretized decoder (data on the 8-bit
  // grid k / 127.5 - 1), its L_0 a probability, so the bound is on the discrete NLL.
  DataKind data = DataKind::continuous;
  // Monte Carlo draws of x_n per term and sample (>= 2, for standard errors).
  int draws = 4;
  std::uint64_t seed = 0;
  std::uint64_t first_sample = 0;
  // Rows per model call (samples x draws); the answer does not depend on it.
  long batch = 4096;
  // Keep every sample's per-term values (rows x (N + 1)); else only their means.
  bool per_term = false;
  // The model's per-sample inputs: row r of each is data row r's (one row: shared). Null:
  // an unconditional bound.
  std::shared_ptr<const Conditioning> cond;
  // Called after every step of every chunk of rows with (fraction done, rows done, rows);
  // empty: none.
  std::function<void(double, long, long)> progress;

  bool is_valid(std::string* error = nullptr) const;
};

struct VlbResult {
  VlbChain chain;
  // Per data row: the bound in nats, its Monte Carlo standard error, and in bits/dim.
  BatchVector total, total_stderr, bpd, bpd_stderr;
  BatchVector prior_term;                    // L_T (exact)
  BatchVector decoder_term, decoder_stderr;  // L_0
  // Column n = 0..N: L_0, L_1, ..., L_{N-1}, L_T; per sample when per_term, else empty.
  State terms, terms_stderr;
  // The same averaged over the data rows, with the standard error of that average
  // (from the spread over rows, which includes the Monte Carlo noise).
  std::vector<double> term_mean, term_mean_stderr;
  long nfe_per_sample = 0;  // eps evaluations per data row: N x draws
  long model_calls = 0;
  double seconds = 0;
};

VlbResult variational_bound(const Model& model, const Schedule& schedule, const State& x0,
                            const VlbOptions& options);

// Closed-form pieces, also used by the tests.
// KL(N(mean_q, var_q I) || N(mean_p, var_p I)) in d dimensions, given
// |mean_q - mean_p|^2 = sq_dist.
double gaussian_kl(double var_q, double var_p, double sq_dist, int dim);
// log P(bin of x0) under N(mean, sd^2): the bin [x0 - 1/255, x0 + 1/255], open below for
// level 0 (x0 = -1) and above for level 255 (x0 = 1). Accurate in both tails.
double discretized_gaussian_log_prob(int level, double mean, double sd);

}  // namespace diffsde
