// The DDPM variational bound (see vlb.hpp and docs/likelihood.md).
#include "diffsde/vlb.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <string>

#include "diffsde/error.hpp"
#include "diffsde/noise.hpp"

namespace diffsde {

namespace {

constexpr double kLog2Pi = 1.8378770664093454835606594728112;  // log(2 pi)
constexpr double kLn2 = 0.69314718055994530941723212145818;
constexpr double kSqrt1_2 = 0.70710678118654752440084436210485;  // 1 / sqrt(2)

// log Q(z), Q(z) = P(Z > z) = erfc(z / sqrt 2) / 2, for z >= 0 (and +inf). Beyond z = 37,
// where erfc underflows, the asymptotic series
//   Q(z) = phi(z) / z (1 - 1/z^2 + 3/z^4 - 15/z^6 + 105/z^8 - ...),
// whose first omitted term is below 1e-12 there.
double log_upper_tail(double z) {
  if (z == std::numeric_limits<double>::infinity()) return -std::numeric_limits<double>::infinity();
  if (z < 37.0) return std::log(0.5 * std::erfc(z * kSqrt1_2));
  const double w = 1.0 / (z * z);
  const double series = 1.0 - w * (1.0 - w * (3.0 - w * (15.0 - w * 105.0)));
  return -0.5 * z * z - std::log(z) - 0.5 * kLog2Pi + std::log(series);
}

// log(Q(a) - Q(b)) for 0 <= a < b <= +inf.
double log_tail_difference(double a, double b) {
  const double la = log_upper_tail(a);
  const double lb = log_upper_tail(b);
  return la + std::log(-std::expm1(lb - la));
}

}  // namespace

std::string to_string(VlbVariance variance) {
  return variance == VlbVariance::beta ? "beta" : "beta_tilde";
}

VlbVariance vlb_variance_from_string(const std::string& s) {
  if (s == "beta") return VlbVariance::beta;
  if (s == "beta_tilde") return VlbVariance::beta_tilde;
  throw Error("unknown variance '" + s + "'; known: beta, beta_tilde");
}

double gaussian_kl(double var_q, double var_p, double sq_dist, int dim) {
  const double u = var_q / var_p - 1.0;  // rho - 1 - log(rho) = u - log1p(u), exact near rho = 1
  return 0.5 * (static_cast<double>(dim) * (u - std::log1p(u)) + sq_dist / var_p);
}

double discretized_gaussian_log_prob(int level, double mean, double sd) {
  if (level < 0 || level > 255)
    throw Error("discretized_gaussian_log_prob: level " + std::to_string(level) +
                " is outside 0..255");
  if (!(sd > 0)) throw Error("discretized_gaussian_log_prob: sd must be > 0");
  const double inf = std::numeric_limits<double>::infinity();
  const double x0 = static_cast<double>(level) / 127.5 - 1.0;
  const double zl = level == 0 ? -inf : (x0 - 1.0 / 255.0 - mean) / sd;
  const double zu = level == 255 ? inf : (x0 + 1.0 / 255.0 - mean) / sd;
  if (zl >= 0) return log_tail_difference(zl, zu);    // both edges in the upper tail
  if (zu <= 0) return log_tail_difference(-zu, -zl);  // both in the lower tail (symmetry)
  // The bin straddles the mean: Phi(zu) - Phi(zl) = (erf(zu/sqrt 2) + erf(-zl/sqrt 2)) / 2,
  // a sum of two positive terms.
  const double upper = zu == inf ? 1.0 : std::erf(zu * kSqrt1_2);
  const double lower = zl == -inf ? 1.0 : std::erf(-zl * kSqrt1_2);
  return std::log(0.5 * (upper + lower));
}

VlbChain vlb_chain(const Schedule& schedule, long steps, VlbVariance variance) {
  if (!schedule.variance_preserving())
    throw Error("vlb: the DDPM bound is written for variance-preserving schedules; " + schedule.name() +
                " is not supported");
  const auto* discrete = dynamic_cast<const VpDiscreteSchedule*>(&schedule);
  if (steps == 0 && discrete != nullptr) steps = discrete->num_steps();
  if (steps < 1)
    throw Error(
        "vlb: steps must be >= 1 (it may be left out only for a vp_discrete schedule), "
        "got " +
        std::to_string(steps));
  VlbChain c;
  const auto size = static_cast<std::size_t>(steps + 1);
  c.tau.assign(size, 0.0);
  c.log_alpha_bar.assign(size, 0.0);
  c.beta.assign(size, 0.0);
  c.beta_tilde.assign(size, 0.0);
  c.variance.assign(size, 0.0);
  if (discrete != nullptr && steps == discrete->num_steps()) {
    for (std::size_t n = 1; n < size; ++n) {
      c.tau[n] = discrete->t_of_step(static_cast<int>(n - 1));
      c.log_alpha_bar[n] = discrete->log_alpha_bars()[n - 1];
      c.beta[n] = discrete->betas()[n - 1];
    }
  } else {
    const double t_max = schedule.t_max();
    for (std::size_t n = 1; n < size; ++n) {
      c.tau[n] =
          n + 1 == size ? t_max : t_max * static_cast<double>(n) / static_cast<double>(steps);
      c.log_alpha_bar[n] = schedule.log_alpha_bar(c.tau[n]);
      c.beta[n] = -std::expm1(c.log_alpha_bar[n] - c.log_alpha_bar[n - 1]);
    }
  }
  for (std::size_t n = 1; n < size; ++n) {
    if (!(c.beta[n] > 0) || !(c.beta[n] < 1))
      throw Error("vlb: step " + std::to_string(n) + " of " + std::to_string(steps) +
                  " has beta = " + format_double(c.beta[n]) +
                  " (must be in (0, 1): too many steps for this schedule?)");
    // 1 - alpha_bar as -expm1(log alpha_bar), free of cancellation.
    c.beta_tilde[n] =
        n == 1 ? 0.0
               : c.beta[n] * -std::expm1(c.log_alpha_bar[n - 1]) / -std::expm1(c.log_alpha_bar[n]);
  }
  for (std::size_t n = 1; n < size; ++n) {
    if (variance == VlbVariance::beta)
      c.variance[n] = c.beta[n];
    else if (n > 1)
      c.variance[n] = c.beta_tilde[n];
    else
      c.variance[n] = size > 2 ? c.beta_tilde[2] : c.beta[1];
  }
  return c;
}

bool VlbOptions::is_valid(std::string* error) const {
  auto fail = [&](const std::string& message) {
    if (error != nullptr) *error = message;
    return false;
  };
  if (steps < 0) return fail("steps must be >= 1, got " + std::to_string(steps));
  if (draws < 2)
    return fail("draws must be >= 2 (a standard error needs two), got " + std::to_string(draws));
  if (batch < 1) return fail("batch must be >= 1, got " + std::to_string(batch));
  return true;
}

VlbResult variational_bound(const Model& model, const Schedule& schedule, const State& x0,
                            const VlbOptions& options) {
  std::string error;
  if (!options.is_valid(&error)) throw Error("vlb: " + error);
  const int d = model.dim();
  if (x0.cols() != d)
    throw Error("vlb: the data has " + std::to_string(x0.cols()) + " columns, the model's dim is " +
                std::to_string(d));
  const auto start = std::chrono::steady_clock::now();
  VlbResult result;
  result.chain = vlb_chain(schedule, options.steps, options.variance);
  const VlbChain& c = result.chain;
  const long N = c.steps();
  const int M = options.draws;
  if (static_cast<double>(N) * M > 4294967295.0)
    throw Error("vlb: steps x draws must be below 2^32 (the noise draw index)");
  const std::vector<int> levels =
      options.data == DataKind::image8 ? image8_levels(x0) : std::vector<int>{};

  const Eigen::Index rows = x0.rows();
  const auto cols = static_cast<Eigen::Index>(N + 1);
  // Per row: sum over terms of the term means and of their squared standard errors; per
  // term: sums over rows (for the dataset average).
  BatchVector total = BatchVector::Zero(rows), var = BatchVector::Zero(rows);
  result.decoder_term.resize(rows);
  result.decoder_stderr.resize(rows);
  result.prior_term.resize(rows);
  if (options.per_term) {
    result.terms.resize(rows, cols);
    result.terms_stderr.resize(rows, cols);
  }
  // Running mean and sum of squared deviations per term over the rows (Welford).
  std::vector<double> term_mean(static_cast<std::size_t>(cols), 0.0);
  std::vector<double> term_m2(static_cast<std::size_t>(cols), 0.0);
  std::vector<double> term_count(static_cast<std::size_t>(cols), 0.0);
  auto record = [&](Eigen::Index r, long column, double mean, double se) {
    total(r) += mean;
    var(r) += se * se;
    const auto k = static_cast<std::size_t>(column);
    term_count[k] += 1.0;
    const double delta = mean - term_mean[k];
    term_mean[k] += delta / term_count[k];
    term_m2[k] += delta * (mean - term_mean[k]);
    if (options.per_term) {
      result.terms(r, column) = mean;
      result.terms_stderr(r, column) = se;
    }
  };

  // L_T = KL(N(alpha_N x0, (1 - alpha_bar_N) I) || N(0, I)), exactly.
  {
    const double ab = std::exp(c.log_alpha_bar[static_cast<std::size_t>(N)]);
    const double one_minus = -std::expm1(c.log_alpha_bar[static_cast<std::size_t>(N)]);
    for (Eigen::Index r = 0; r < rows; ++r) {
      const double sq = x0.row(r).square().sum();
      const double l_t = gaussian_kl(one_minus, 1.0, ab * sq, d);
      result.prior_term(r) = l_t;
      record(r, N, l_t, 0.0);
    }
  }

  const Eigen::Index per_chunk = std::max<Eigen::Index>(1, options.batch / M);
  State x, eps_model, z;
  std::vector<double> values(static_cast<std::size_t>(M));
  for (Eigen::Index r0 = 0; r0 < rows; r0 += per_chunk) {
    const Eigen::Index n_rows = std::min(per_chunk, rows - r0);
    // The chunk's inputs: data row r0 + i's for its M draws.
    Conditioning chunk_cond;
    ModelRows call_rows;
    if (options.cond && !options.cond->empty()) {
      chunk_cond = options.cond->repeat(static_cast<long>(r0), static_cast<long>(n_rows), M);
      call_rows.inputs = &chunk_cond;
    }
    call_rows.first_sample = options.first_sample + static_cast<std::uint64_t>(r0);
    call_rows.repeat = M;  // row i M + j: draw j of sample r0 + i
    x.resize(n_rows * M, d);
    eps_model.resize(n_rows * M, d);
    z.resize(n_rows * M, d);
    for (long n = 1; n <= N; ++n) {
      const auto ns = static_cast<std::size_t>(n);
      const double log_ab = c.log_alpha_bar[ns];
      const double alpha = std::exp(0.5 * log_ab);
      const double one_minus = -std::expm1(log_ab);
      const double sigma = std::sqrt(one_minus);
      // x_n = sqrt(alpha_bar_n) x0 + sqrt(1 - alpha_bar_n) z, z keyed by (sample, n, draw).
      for (Eigen::Index i = 0; i < n_rows; ++i) {
        const std::uint64_t sample = options.first_sample + static_cast<std::uint64_t>(r0 + i);
        for (int j = 0; j < M; ++j) {
          const Eigen::Index row = i * M + j;
          philox_normals(options.seed, NoiseStream::vlb, sample,
                         static_cast<std::uint32_t>((n - 1) * M + j), z.row(row).data(), d);
          x.row(row) = alpha * x0.row(r0 + i) + sigma * z.row(row);
        }
      }
      model.eps_rows(x, c.tau[ns], call_rows, eps_model);
      ++result.model_calls;
      const double step_alpha = std::exp(log_ab - c.log_alpha_bar[ns - 1]);  // 1 - beta_n
      const double var_p = c.variance[ns];
      // mean(x_n) = (x_n - beta_n / sigma_n eps) / sqrt(1 - beta_n) (the DDPM derivation of Ho et al. 2020).
      const double mean_coef = c.beta[ns] / sigma;
      for (Eigen::Index i = 0; i < n_rows; ++i) {
        const Eigen::Index r = r0 + i;
        for (int j = 0; j < M; ++j) {
          const Eigen::Index row = i * M + j;
          if (n == 1) {
            // L_0 = -log p(x0 | x_1).
            double nll = 0.0;
            for (int k = 0; k < d; ++k) {
              const double mu = (x(row, k) - mean_coef * eps_model(row, k)) / std::sqrt(step_alpha);
              if (options.data == DataKind::image8) {
                nll -= discretized_gaussian_log_prob(levels[static_cast<std::size_t>(r * d + k)],
                                                     mu, std::sqrt(var_p));
              } else {
                const double diff = x0(r, k) - mu;
                nll += 0.5 * (kLog2Pi + std::log(var_p) + diff * diff / var_p);
              }
            }
            values[static_cast<std::size_t>(j)] = nll;
          } else {
            // mu_tilde - mu = beta_n / (sqrt(1 - beta_n) sigma_n) (eps - z) (the DDPM derivation of Ho et al. 2020).
            const double sq = c.beta[ns] * c.beta[ns] / (step_alpha * one_minus) *
                              (eps_model.row(row) - z.row(row)).square().sum();
            values[static_cast<std::size_t>(j)] = gaussian_kl(c.beta_tilde[ns], var_p, sq, d);
          }
        }
        double mean = 0.0;
        for (double v : values) mean += v;
        mean /= M;
        double ss = 0.0;
        for (double v : values) ss += (v - mean) * (v - mean);
        const double se = std::sqrt(ss / (M - 1) / M);
        if (!std::isfinite(mean))
          throw NumericalError(n, c.tau[ns],
                               "vlb: term " + std::to_string(n - 1) + " of data row " +
                                   std::to_string(r) + " is not finite");
        record(r, n - 1, mean, se);
        if (n == 1) {
          result.decoder_term(r) = mean;
          result.decoder_stderr(r) = se;
        }
      }
      if (options.progress) {
        const double done = static_cast<double>(r0) + static_cast<double>(n_rows) * static_cast<double>(n) / N;
        options.progress(done / static_cast<double>(rows), static_cast<long>(n == N ? r0 + n_rows : r0),
                         static_cast<long>(rows));
      }
    }
  }

  result.total = total;
  result.total_stderr = var.sqrt();
  const double per_dim = static_cast<double>(d) * kLn2;
  result.bpd = total / per_dim;  // image8: L_0 is a probability, so no offset
  result.bpd_stderr = result.total_stderr / per_dim;
  result.term_mean = term_mean;
  result.term_mean_stderr.assign(static_cast<std::size_t>(cols), 0.0);
  if (rows > 1) {
    const double n_rows = static_cast<double>(rows);
    for (std::size_t k = 0; k < term_m2.size(); ++k)
      result.term_mean_stderr[k] = std::sqrt(term_m2[k] / (n_rows - 1) / n_rows);
  }
  result.nfe_per_sample = N * M;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace diffsde
