// Analytic models: diagonal Gaussian and Gaussian-mixture data pushed through the
// forward VP-SDE. Per axis a component N(m, s^2) of p_0 becomes
// N(alpha m, alpha^2 s^2 + sigma^2) at time t (q(x_t | x_0) = N(alpha x_0, sigma^2)),
// so the marginal, its score and eps = -sigma score are exact for every t.
//
// Performance: these models are the solvers' research workhorse, so one call does
// all per-time work (alpha, sigma, variances, normalising constants) once, and the
// per-sample work runs column-wise on Eigen arrays as long as a chunk of the batch
// (vectorised across samples, the exp included: see exp_shifted). Scratch memory is a
// per-thread buffer that only grows: after the first call of a given size no call
// allocates.
#include "diffsde/scores/analytic.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <sstream>
#include <vector>

#include "diffsde/error.hpp"

namespace diffsde {

namespace {

constexpr double kLog2Pi = 1.8378770664093454835606594728112;  // log(2 pi)

// Per-thread scratch that only grows, aligned to 64 bytes. One model call holds it at
// a time (the models call nothing that uses it).
double* scratch(std::size_t n) {
  thread_local std::vector<double> buffer;
  if (buffer.size() < n + 8) buffer.resize(n + 8);
  const auto address = reinterpret_cast<std::uintptr_t>(buffer.data());
  return buffer.data() + ((64 - address % 64) % 64) / sizeof(double);
}

using ColArray = Eigen::Array<double, Eigen::Dynamic, Eigen::Dynamic>;  // column-major
using RowVec = Eigen::Array<double, 1, Eigen::Dynamic>;

// alpha and the marginal noise variance sigma^2 at t, from one schedule evaluation.
struct AlphaSigma {
  double alpha, sigma, sigma2;
};

// Times below 0 are treated as 0, as the schedules do (a stage time may round just
// below 0); a non-finite time is an error.
AlphaSigma alpha_sigma(const Schedule& schedule, double t, const char* who) {
  if (!std::isfinite(t)) {
    std::ostringstream msg;
    msg << who << ": time must be finite, got t = " << t;
    throw Error(msg.str());
  }
  const ScheduleAt at = schedule.at(t < 0.0 ? 0.0 : t);
  // VP: sigma^2 = 1 - alpha_bar = -expm1(log alpha_bar), free of cancellation near t = 0;
  // other schedules give sigma itself without cancellation.
  if (!schedule.variance_preserving()) return {at.alpha, at.sigma, at.sigma * at.sigma};
  return {at.alpha, at.sigma, -std::expm1(at.log_alpha_bar)};
}

void check_x(const char* who, const ConstStateRef& x, int dim) {
  if (x.cols() != dim) {
    std::ostringstream msg;
    msg << who << ": x has " << x.cols() << " columns, the model's dim is " << dim;
    throw Error(msg.str());
  }
}

void check_log_out(const char* who, Eigen::Index size, const ConstStateRef& x) {
  if (size != x.rows()) {
    std::ostringstream msg;
    msg << who << ": output has " << size << " entries, expected " << x.rows()
        << " (one per row of x)";
    throw Error(msg.str());
  }
}

void check_out(const char* who, Eigen::Index rows, Eigen::Index cols, const ConstStateRef& x) {
  if (rows != x.rows() || cols != x.cols()) {
    std::ostringstream msg;
    msg << who << ": output is " << rows << " x " << cols << ", expected " << x.rows() << " x "
        << x.cols() << " (the shape of x)";
    throw Error(msg.str());
  }
}

// eps_jvp's arguments: v and both outputs have the shape of x.
void check_jvp_args(const char* who, const ConstStateRef& x, const ConstStateRef& v,
                    const StateRef& eps_out, const StateRef& jvp_out) {
  const auto check = [&](const char* what, Eigen::Index rows, Eigen::Index cols) {
    if (rows != x.rows() || cols != x.cols()) {
      std::ostringstream msg;
      msg << who << ": " << what << " is " << rows << " x " << cols << ", expected " << x.rows()
          << " x " << x.cols() << " (the shape of x)";
      throw Error(msg.str());
    }
  };
  check("v", v.rows(), v.cols());
  check("eps_out", eps_out.rows(), eps_out.cols());
  check("jvp_out", jvp_out.rows(), jvp_out.cols());
}

// sum_j log(v_j) as a log of running products (one log per ~100 factors instead of one
// per factor), folding the product into the sum before it can leave double range.
double sum_log(const double* v, Eigen::Index n) {
  double sum = 0.0, product = 1.0;
  for (Eigen::Index j = 0; j < n; ++j) {
    product *= v[j];
    if (product < 1e-150 || product > 1e150) {
      sum += std::log(product);
      product = 1.0;
    }
  }
  return sum + std::log(product);
}

std::string shape_text(Eigen::Index rows, Eigen::Index cols) {
  return std::to_string(rows) + " x " + std::to_string(cols);
}

template <class Derived>
bool all_finite(const Eigen::DenseBase<Derived>& a) {
  return a.derived().array().isFinite().all();
}

// ---------------------------------------------------------------------------------
// The mixture kernel. For component k and axis j at time t:
//   mu_kj = alpha m_kj,  var_kj = alpha^2 s_kj^2 + sigma^2,  prec_kj = 1 / var_kj,
//   l_k(x) = log w_k - 1/2 sum_j [log(2 pi var_kj) + prec_kj (x_j - mu_kj)^2],
//   log p_t(x) = logsumexp_k l_k(x),  r_k = exp(l_k - log p_t)  (responsibilities),
//   grad log p_t(x) = -sum_k r_k prec_k (x - mu_k) =: -G(x).
// eps = sigma G, score = -G. Subtracting max_k l_k before exp keeps the far tails
// finite: there one r_k is 1 and the others underflow to 0.
struct MixtureAt {
  Eigen::Index K = 0, d = 0;
  const double* mu = nullptr;    // K x d, row-major: mu[k d + j]
  const double* prec = nullptr;  // K x d, row-major
  const double* c = nullptr;     // K: log w_k - 1/2 sum_j log(2 pi var_kj)
};

// Rows per chunk: the chunk's column-major work arrays (~(d + K + 3) doubles a row)
// stay in L1/L2 while every pass over them is a vectorised Eigen expression. A multiple
// of 8 (the widest packet of doubles), see mixture_kernel.
Eigen::Index chunk_rows(Eigen::Index d, Eigen::Index K) {
  const Eigen::Index per_row = d + K + 3;
  return std::max<Eigen::Index>(8, std::min<Eigen::Index>(256, 8192 / per_row) / 8 * 8);
}

Eigen::Index round_up8(Eigen::Index n) { return (n + 7) / 8 * 8; }

// Fills the per-time constants into `buffer` (2 K d + K doubles) from the data-space
// weights, means and stds.
MixtureAt mixture_at(double* buffer, const Eigen::VectorXd& weights, const Eigen::MatrixXd& means,
                     const Eigen::MatrixXd& stds, const AlphaSigma& as) {
  MixtureAt m;
  m.K = means.rows();
  m.d = means.cols();
  double* mu = buffer;
  double* prec = mu + m.K * m.d;
  double* c = prec + m.K * m.d;
  const double alpha2 = as.alpha * as.alpha;
  for (Eigen::Index k = 0; k < m.K; ++k) {
    double* var = prec + k * m.d;  // holds var first, then its inverse
    for (Eigen::Index j = 0; j < m.d; ++j) {
      mu[k * m.d + j] = as.alpha * means(k, j);
      var[j] = alpha2 * stds(k, j) * stds(k, j) + as.sigma2;
    }
    c[k] = std::log(weights(k)) - 0.5 * (static_cast<double>(m.d) * kLog2Pi + sum_log(var, m.d));
    for (Eigen::Index j = 0; j < m.d; ++j) var[j] = 1.0 / var[j];
  }
  m.mu = mu;
  m.prec = prec;
  m.c = c;
  return m;
}

// exp(l - m) for l <= m, in place over n values (n a multiple of 8, 64-byte aligned).
//
// Builds for AVX2 or wider (or off x86, or with Clang) use Eigen's packet exp. On the
// plain x86-64 baseline (SSE2 only: the default flags), Eigen's packet exp is slow
// (~7.5 ns a value on the reference machine) because its floor and ldexp want
// SSE4.1/AVX2, and the exponentials are most of the mixture's cost. So there GCC builds
// this one instead: a Cody-Waite reduction exp(x) = 2^k exp(r), |r| <= ln2/2, a degree-13
// Taylor polynomial in Estrin form (short dependency chains), and 2^k built in the
// exponent bits, on 8-wide vector extensions. Where the toolchain supports function
// multiversioning it is also compiled for x86-64-v3 (AVX2) and -v4 (AVX-512) and the
// loader picks the best for the CPU; multiply-adds are not fused in any version, so
// every CPU gives the same bits. ~3.6 ns a value as plain SSE2, ~1.2 with AVX-512.
// Max error 2 ulp; arguments below -708.39 (where 2^k would leave the normal range) give
// exactly 0 (relative to the largest weight, 1); NaN stays NaN.
#if defined(__GNUC__) && !defined(__clang__) && defined(__SSE2__) && !defined(__AVX2__)
#if __GNUC__ >= 11 && defined(__x86_64__) && defined(__gnu_linux__) && \
    !defined(DIFFSDE_NO_MULTIVERSIONING)
#define DIFFSDE_EXP_VERSIONS \
  target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), optimize("fp-contract=off")
#else
#define DIFFSDE_EXP_VERSIONS optimize("fp-contract=off")
#endif
typedef double Vec8d __attribute__((vector_size(64)));
typedef std::uint64_t Vec8u __attribute__((vector_size(64)));  // bits, wrapping

__attribute__((DIFFSDE_EXP_VERSIONS)) void exp_shifted(double* l, const double* m,
                                                        Eigen::Index n) {
  constexpr double kLog2e = 1.4426950408889634074;
  constexpr double kLn2Hi = 6.93147180369123816490e-01;  // fdlibm's split of log(2)
  constexpr double kLn2Lo = 1.90821492927058770002e-10;
  constexpr double kShift = 6755399441055744.0;  // 1.5 * 2^52: adding it rounds to an integer
  constexpr double kMin = -708.39;
  for (Eigen::Index i = 0; i < n; i += 8) {
    Vec8d x0, mv;
    std::memcpy(&x0, l + i, sizeof x0);
    std::memcpy(&mv, m + i, sizeof mv);
    x0 -= mv;
    const Vec8d zero = x0 - x0;  // 0, or NaN where x0 is NaN
    const Vec8u below = (Vec8u)(x0 < kMin);  // all ones where x0 < kMin
    const Vec8d x = (Vec8d)(((Vec8u)x0 & ~below) | ((Vec8u)(zero + kMin) & below));
    const Vec8d kf = x * kLog2e + kShift;
    const Vec8d k = kf - kShift;  // round(x / ln2)
    const Vec8d r = (x - k * kLn2Hi) - k * kLn2Lo;
    const Vec8d r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    const Vec8d p01 = 1.0 + r, p23 = 0.5 + r * (1.0 / 6.0),
                p45 = (1.0 / 24.0) + r * (1.0 / 120.0), p67 = (1.0 / 720.0) + r * (1.0 / 5040.0),
                p89 = (1.0 / 40320.0) + r * (1.0 / 362880.0),
                p1011 = (1.0 / 3628800.0) + r * (1.0 / 39916800.0),
                p1213 = (1.0 / 479001600.0) + r * (1.0 / 6227020800.0);
    const Vec8d q0 = p01 + r2 * p23, q1 = p45 + r2 * p67, q2 = p89 + r2 * p1011;
    const Vec8d p = (q0 + r4 * q1) + r8 * (q2 + r4 * p1213);
    // kf's low mantissa bits hold k (two's complement, so the unsigned difference is k
    // mod 2^64): 2^k has the bits (k + 1023) << 52.
    const Vec8u two_k = (((Vec8u)kf - (Vec8u)(zero + kShift)) + 1023) << 52;
    const Vec8d y = (Vec8d)((Vec8u)(p * (Vec8d)two_k) & ~below);
    std::memcpy(l + i, &y, sizeof y);
  }
}
#undef DIFFSDE_EXP_VERSIONS
#else
void exp_shifted(double* l, const double* m, Eigen::Index n) {
  Eigen::Map<Eigen::ArrayXd, Eigen::Aligned64> a(l, n);
  a = (a - Eigen::Map<const Eigen::ArrayXd, Eigen::Aligned64>(m, n)).exp();
}
#endif

// Computes, for every row of x, out = g_scale * G(x) (if out) and log p_t(x) (if logp).
// Safe when out is x itself: a chunk's rows are read before they are written.
//
// Row independence, bit for bit: Eigen evaluates exp/log with its packet routine on
// aligned packets and with std::exp/std::log on a scalar head or tail, which can differ
// in the last bit. So every work array starts 64-byte aligned and spans a multiple of
// 8 rows (the chunk is padded with zeros): every row takes the packet path (and
// exp_shifted works on whole 8-row blocks), whatever its position in the batch and
// whatever the batch size.
void mixture_kernel(const MixtureAt& m, const ConstStateRef& x, double g_scale, StateRef* out,
                    Eigen::Ref<BatchVector>* logp, double* work) {
  const Eigen::Index B = x.rows(), d = m.d, K = m.K;
  const Eigen::Index C = chunk_rows(d, K);
  for (Eigen::Index r0 = 0; r0 < B; r0 += C) {
    const Eigen::Index n = std::min(C, B - r0);
    const Eigen::Index np = round_up8(n);
    Eigen::Map<ColArray, Eigen::Aligned64> xc(work, np, d);
    Eigen::Map<ColArray, Eigen::Aligned64> e(work + np * d, np, K);  // l_k, then exp(l_k - max)
    Eigen::Map<BatchVector, Eigen::Aligned64> mx(work + np * (d + K), np);
    Eigen::Map<BatchVector, Eigen::Aligned64> sum(work + np * (d + K + 1), np);
    Eigen::Map<BatchVector, Eigen::Aligned64> acc(work + np * (d + K + 2), np);

    // Transpose the chunk so that each axis is a contiguous vector.
    xc.topRows(n) = x.block(r0, 0, n, d);
    if (np > n) xc.bottomRows(np - n).setZero();

    for (Eigen::Index k = 0; k < K; ++k) {
      const double* mu = m.mu + k * d;
      const double* prec = m.prec + k * d;
      auto l = e.col(k);
      l = (xc.col(0) - mu[0]).square() * (-0.5 * prec[0]) + m.c[k];
      for (Eigen::Index j = 1; j < d; ++j) l += (xc.col(j) - mu[j]).square() * (-0.5 * prec[j]);
    }
    mx = e.col(0);
    for (Eigen::Index k = 1; k < K; ++k) mx = mx.max(e.col(k));
    for (Eigen::Index k = 0; k < K; ++k) exp_shifted(&e(0, k), mx.data(), np);
    sum = e.col(0);
    for (Eigen::Index k = 1; k < K; ++k) sum += e.col(k);
    if (logp != nullptr) {
      acc = mx + sum.log();
      logp->segment(r0, n) = acc.head(n);
    }
    if (out != nullptr) {
      sum = g_scale / sum;  // now the scale of the unnormalised responsibilities
      for (Eigen::Index j = 0; j < d; ++j) {
        acc = e.col(0) * (xc.col(j) - m.mu[j]) * m.prec[j];
        for (Eigen::Index k = 1; k < K; ++k)
          acc += e.col(k) * (xc.col(j) - m.mu[k * d + j]) * m.prec[k * d + j];
        acc *= sum;
        out->block(r0, j, n, 1) = acc.head(n);
      }
    }
  }
}

void run_mixture(const Eigen::VectorXd& weights, const Eigen::MatrixXd& means,
                 const Eigen::MatrixXd& stds, const AlphaSigma& as, const ConstStateRef& x,
                 double g_scale, StateRef* out, Eigen::Ref<BatchVector>* logp) {
  const Eigen::Index K = means.rows(), d = means.cols();
  // The constants first, padded so that the work arrays start 64-byte aligned.
  const Eigen::Index constants = round_up8(2 * K * d + K);
  const Eigen::Index C = round_up8(std::min<Eigen::Index>(chunk_rows(d, K), x.rows()));
  double* buffer = scratch(static_cast<std::size_t>(constants + C * (d + K + 3)));
  const MixtureAt m = mixture_at(buffer, weights, means, stds, as);
  mixture_kernel(m, x, g_scale, out, logp, buffer + constants);
}

}  // namespace

// ---------------------------------------------------------------------------------
// GaussianModel

GaussianModel::GaussianModel(std::shared_ptr<const Schedule> schedule, Eigen::VectorXd mean,
                             Eigen::VectorXd std)
    : AnalyticModel(std::move(schedule)), mean_(std::move(mean)), std_(std::move(std)) {
  if (!schedule_) throw Error("GaussianModel: no schedule given");
  if (mean_.size() == 0) throw Error("GaussianModel: mean is empty (dim must be >= 1)");
  if (std_.size() != mean_.size())
    throw Error("GaussianModel: std has " + std::to_string(std_.size()) + " entries, mean has " +
                std::to_string(mean_.size()));
  if (!all_finite(mean_)) throw Error("GaussianModel: mean must be finite");
  for (Eigen::Index j = 0; j < std_.size(); ++j) {
    if (!(std_(j) > 0.0) || !std::isfinite(std_(j))) {
      std::ostringstream msg;
      msg << "GaussianModel: std[" << j << "] must be finite and > 0, got " << std_(j);
      throw Error(msg.str());
    }
  }
}

// Per-axis constants at time t, in a scratch buffer: mu_j = alpha mean_j and
// coef_j = scale / var_j, var_j = alpha^2 std_j^2 + sigma^2.
namespace {
struct GaussianAt {
  Eigen::Map<const RowVec> mu, coef;
  double log_norm;  // -1/2 sum_j log(2 pi var_j)
};

GaussianAt gaussian_at(const Eigen::VectorXd& mean, const Eigen::VectorXd& std,
                       const AlphaSigma& as, double scale) {
  const Eigen::Index d = mean.size();
  double* buffer = scratch(static_cast<std::size_t>(2 * d));
  double* mu = buffer;
  double* coef = buffer + d;
  const double alpha2 = as.alpha * as.alpha;
  for (Eigen::Index j = 0; j < d; ++j) {
    mu[j] = as.alpha * mean(j);
    coef[j] = alpha2 * std(j) * std(j) + as.sigma2;  // var for now
  }
  const double log_norm = -0.5 * (static_cast<double>(d) * kLog2Pi + sum_log(coef, d));
  for (Eigen::Index j = 0; j < d; ++j) coef[j] = scale / coef[j];
  return {Eigen::Map<const RowVec>(mu, d), Eigen::Map<const RowVec>(coef, d), log_norm};
}
}  // namespace

// All three are coefficient-wise per row, so out may be x itself.
void GaussianModel::eps(const ConstStateRef& x, double t, StateRef out) const {
  check_x("GaussianModel::eps", x, dim());
  check_out("GaussianModel::eps", out.rows(), out.cols(), x);
  const AlphaSigma as = alpha_sigma(*schedule_, t, "GaussianModel::eps");
  // eps = -sigma score = sigma (x - alpha mean) / var.
  const GaussianAt g = gaussian_at(mean_, std_, as, as.sigma);
  out = (x.rowwise() - g.mu).rowwise() * g.coef;
}

void GaussianModel::eps_jvp(const ConstStateRef& x, double t, const ConstStateRef& v,
                            StateRef eps_out, StateRef jvp_out) const {
  check_x("GaussianModel::eps_jvp", x, dim());
  check_jvp_args("GaussianModel::eps_jvp", x, v, eps_out, jvp_out);
  const AlphaSigma as = alpha_sigma(*schedule_, t, "GaussianModel::eps_jvp");
  // eps is affine in x with the diagonal Jacobian sigma / var_j.
  const GaussianAt g = gaussian_at(mean_, std_, as, as.sigma);
  eps_out = (x.rowwise() - g.mu).rowwise() * g.coef;
  jvp_out = v.rowwise() * g.coef;
}

void GaussianModel::x0_rows(const ConstStateRef& x, double t, const ModelRows& /*rows*/, StateRef out) const {
  check_x("GaussianModel::x0_rows", x, dim());
  check_out("GaussianModel::x0_rows", out.rows(), out.cols(), x);
  const AlphaSigma as = alpha_sigma(*schedule_, t, "GaussianModel::x0_rows");
  for (Eigen::Index j = 0; j < mean_.size(); ++j) {
    const double sd2 = std_(j) * std_(j), var = as.alpha * as.alpha * sd2 + as.sigma2;
    out.col(j) = mean_(j) + (as.alpha * sd2 / var) * (x.col(j) - as.alpha * mean_(j));
  }
}

void GaussianModel::score(const ConstStateRef& x, double t, StateRef out) const {
  check_x("GaussianModel::score", x, dim());
  check_out("GaussianModel::score", out.rows(), out.cols(), x);
  const AlphaSigma as = alpha_sigma(*schedule_, t, "GaussianModel::score");
  // score = -(x - alpha mean) / var.
  const GaussianAt g = gaussian_at(mean_, std_, as, -1.0);
  out = (x.rowwise() - g.mu).rowwise() * g.coef;
}

void GaussianModel::log_density(const ConstStateRef& x, double t,
                                Eigen::Ref<BatchVector> out) const {
  check_x("GaussianModel::log_density", x, dim());
  check_log_out("GaussianModel::log_density", out.size(), x);
  const AlphaSigma as = alpha_sigma(*schedule_, t, "GaussianModel::log_density");
  // log p_t = -1/2 sum_j [(x_j - mu_j)^2 / var_j + log(2 pi var_j)].
  const GaussianAt g = gaussian_at(mean_, std_, as, -0.5);
  out = ((x.rowwise() - g.mu).square().rowwise() * g.coef).rowwise().sum() + g.log_norm;
}

Eigen::MatrixXd GaussianModel::data_covariance() const {
  return std_.array().square().matrix().asDiagonal();
}

// ---------------------------------------------------------------------------------
// GmmModel

GmmModel::GmmModel(std::shared_ptr<const Schedule> schedule, Eigen::VectorXd weights,
                   Eigen::MatrixXd means, Eigen::MatrixXd stds, std::vector<std::vector<int>> classes)
    : AnalyticModel(std::move(schedule)),
      weights_(std::move(weights)),
      means_(std::move(means)),
      stds_(std::move(stds)),
      classes_(std::move(classes)) {
  if (!schedule_) throw Error("GmmModel: no schedule given");
  const Eigen::Index K = weights_.size();
  if (K == 0) throw Error("GmmModel: no components (weights is empty)");
  if (means_.rows() != K)
    throw Error("GmmModel: means is " + shape_text(means_.rows(), means_.cols()) + ", expected " +
                std::to_string(K) + " rows (one per weight)");
  if (means_.cols() == 0) throw Error("GmmModel: means has no columns (dim must be >= 1)");
  if (stds_.rows() != K || stds_.cols() != means_.cols())
    throw Error("GmmModel: stds is " + shape_text(stds_.rows(), stds_.cols()) + ", expected " +
                shape_text(K, means_.cols()) + " (the shape of means)");
  for (Eigen::Index k = 0; k < K; ++k) {
    if (!(weights_(k) > 0.0) || !std::isfinite(weights_(k))) {
      std::ostringstream msg;
      msg << "GmmModel: weights[" << k << "] must be finite and > 0, got " << weights_(k);
      throw Error(msg.str());
    }
  }
  if (!all_finite(means_)) throw Error("GmmModel: means must be finite");
  for (Eigen::Index k = 0; k < K; ++k) {
    for (Eigen::Index j = 0; j < stds_.cols(); ++j) {
      if (!(stds_(k, j) > 0.0) || !std::isfinite(stds_(k, j))) {
        std::ostringstream msg;
        msg << "GmmModel: stds[" << k << "][" << j << "] must be finite and > 0, got "
            << stds_(k, j);
        throw Error(msg.str());
      }
    }
  }
  const double total = weights_.sum();
  if (!std::isfinite(total)) throw Error("GmmModel: the weights' sum is not finite");
  weights_ /= total;
  for (std::size_t c = 0; c < classes_.size(); ++c) {
    const auto& members = classes_[c];
    const std::string where = "GmmModel: classes[" + std::to_string(c) + "]";
    if (members.empty()) throw Error(where + " is empty (a class needs at least one component)");
    std::vector<bool> seen(static_cast<std::size_t>(K), false);
    Eigen::VectorXd w(static_cast<Eigen::Index>(members.size()));
    Eigen::MatrixXd m(w.size(), means_.cols()), sd(w.size(), means_.cols());
    for (std::size_t i = 0; i < members.size(); ++i) {
      const int k = members[i];
      if (k < 0 || k >= K)
        throw Error(where + " names component " + std::to_string(k) + "; the components are 0 .. " +
                    std::to_string(K - 1));
      if (seen[static_cast<std::size_t>(k)])
        throw Error(where + " names component " + std::to_string(k) + " twice");
      seen[static_cast<std::size_t>(k)] = true;
      const auto row = static_cast<Eigen::Index>(i);
      w(row) = weights_(k);
      m.row(row) = means_.row(k);
      sd.row(row) = stds_.row(k);
    }
    class_models_.push_back(std::make_shared<const GmmModel>(schedule_, std::move(w), std::move(m), std::move(sd)));
  }
}

const GmmModel& GmmModel::class_model(int c) const {
  if (c < 0 || c >= static_cast<int>(class_models_.size()))
    throw Error("GmmModel: class " + std::to_string(c) + " does not exist (the model has " +
                std::to_string(class_models_.size()) + " classes)");
  return *class_models_[static_cast<std::size_t>(c)];
}

std::vector<InputSpec> GmmModel::inputs() const {
  if (classes_.empty()) return {};
  InputSpec y;
  y.name = "y";
  y.type = InputType::int64;
  y.classes = static_cast<long>(classes_.size());
  y.has_null_label = true;
  y.null_label = -1;
  y.optional = true;
  y.description = "class label per sample (0 .. classes - 1; -1: the whole mixture)";
  return {y};
}

template <class F>
void GmmModel::by_class(const ModelRows& rows, long n, F&& f) const {
  const ModelInput* y = classes_.empty() ? nullptr : rows.input("y");
  if (y == nullptr) {
    f(*this, nullptr);
    return;
  }
  if (y->type() != InputType::int64 || y->size() != 1)
    throw Error("gmm: input 'y' must be one int64 label per sample, got " + y->shape_text());
  const auto label = [&](long r) { return *y->int_row(rows.input_row0 + r); };
  const auto model_of = [&](std::int64_t c) -> const GmmModel& {
    if (c == -1) return *this;
    if (c < 0 || c >= static_cast<std::int64_t>(class_models_.size()))
      throw Error("gmm: label " + std::to_string(c) + " is out of range (classes 0 .. " +
                  std::to_string(class_models_.size() - 1) + ", or -1 for none)");
    return *class_models_[static_cast<std::size_t>(c)];
  };
  // One label for every row (a shared label, or a block of one class): no gathering.
  bool same = true;
  for (long r = 1; r < n && same; ++r) same = label(r) == label(0);
  if (n == 0 || same) {
    f(model_of(n == 0 ? -1 : label(0)), nullptr);
    return;
  }
  std::vector<std::int64_t> labels;
  for (long r = 0; r < n; ++r)
    if (std::find(labels.begin(), labels.end(), label(r)) == labels.end()) labels.push_back(label(r));
  std::vector<Eigen::Index> index;
  for (std::int64_t c : labels) {
    index.clear();
    for (long r = 0; r < n; ++r)
      if (label(r) == c) index.push_back(r);
    f(model_of(c), &index);
  }
}

void GmmModel::x0_rows(const ConstStateRef& x, double t, const ModelRows& rows, StateRef out) const {
  check_x("GmmModel::x0_rows", x, dim());
  check_out("GmmModel::x0_rows", out.rows(), out.cols(), x);
  const ScheduleAt at = schedule_->at(t < 0.0 ? 0.0 : t);
  if (at.alpha > 0) {
    eps_rows(x, t, rows, out);
    out = (x - at.sigma * out) / at.alpha;
    return;
  }
  by_class(rows, static_cast<long>(x.rows()), [&](const GmmModel& m, const std::vector<Eigen::Index>* index) {
    const Eigen::RowVectorXd mean = m.data_mean().transpose();
    if (index == nullptr) {
      out.rowwise() = mean.array();
      return;
    }
    for (Eigen::Index r : *index) out.row(r) = mean.array();
  });
}

void GmmModel::eps_rows(const ConstStateRef& x, double t, const ModelRows& rows, StateRef out) const {
  by_class(rows, static_cast<long>(x.rows()), [&](const GmmModel& m, const std::vector<Eigen::Index>* index) {
    if (index == nullptr) {
      m.eps(x, t, out);
      return;
    }
    State xs = x(*index, Eigen::all), es(xs.rows(), xs.cols());
    m.eps(xs, t, es);
    out(*index, Eigen::all) = es;
  });
}

void GmmModel::eps_jvp_rows(const ConstStateRef& x, double t, const ModelRows& rows, const ConstStateRef& v,
                            StateRef eps_out, StateRef jvp_out) const {
  by_class(rows, static_cast<long>(x.rows()), [&](const GmmModel& m, const std::vector<Eigen::Index>* index) {
    if (index == nullptr) {
      m.eps_jvp(x, t, v, eps_out, jvp_out);
      return;
    }
    State xs = x(*index, Eigen::all), vs = v(*index, Eigen::all), es(xs.rows(), xs.cols()), js(xs.rows(), xs.cols());
    m.eps_jvp(xs, t, vs, es, js);
    eps_out(*index, Eigen::all) = es;
    jvp_out(*index, Eigen::all) = js;
  });
}

void GmmModel::log_density_rows(const ConstStateRef& x, double t, const ModelRows& rows,
                                Eigen::Ref<BatchVector> out) const {
  by_class(rows, static_cast<long>(x.rows()), [&](const GmmModel& m, const std::vector<Eigen::Index>* index) {
    if (index == nullptr) {
      m.log_density(x, t, out);
      return;
    }
    State xs = x(*index, Eigen::all);
    BatchVector ls(xs.rows());
    m.log_density(xs, t, ls);
    out(*index) = ls;
  });
}

GmmModel GmmModel::builtin_2d(std::shared_ptr<const Schedule> schedule) {
  // Three well separated, anisotropic components at the corners of a scalene
  // triangle: multimodal, with no symmetry axis, and with unequal weights. The
  // closest pair of means is ~3.5 apart, about 7 of the largest stds.
  Eigen::VectorXd weights(3);
  weights << 0.25, 0.35, 0.40;
  Eigen::MatrixXd means(3, 2);
  means << -2.0, -1.0,  //
      1.5, -1.5,        //
      0.5, 2.0;
  Eigen::MatrixXd stds(3, 2);
  stds << 0.40, 0.30,  //
      0.30, 0.50,      //
      0.50, 0.35;
  return GmmModel(std::move(schedule), std::move(weights), std::move(means), std::move(stds));
}

void GmmModel::eps(const ConstStateRef& x, double t, StateRef out) const {
  check_x("GmmModel::eps", x, dim());
  check_out("GmmModel::eps", out.rows(), out.cols(), x);
  const AlphaSigma as = alpha_sigma(*schedule_, t, "GmmModel::eps");
  if (x.rows() == 0) return;
  run_mixture(weights_, means_, stds_, as, x, as.sigma, &out, nullptr);
}

// The Jacobian of the mixture's eps. With a_k = P_k (x - mu_k) (P_k = diag(prec_k)),
// G = sum_k r_k a_k and grad r_k = r_k (G - a_k) (from r_k = softmax_k(l_k), grad l_k = -a_k):
//   dG/dx = sum_k [r_k P_k + a_k grad r_k^T] = sum_k r_k P_k + G G^T - sum_k r_k a_k a_k^T,
// the Hessian of -log p_t (symmetric). eps = sigma G, so J v = sigma dG/dx v. eps_out comes
// from the same kernel as eps() (bit for bit); the product is a scalar loop over rows, with
// the responsibilities computed with the largest l_k subtracted, as in the kernel.
void GmmModel::eps_jvp(const ConstStateRef& x, double t, const ConstStateRef& v,
                       StateRef eps_out, StateRef jvp_out) const {
  check_x("GmmModel::eps_jvp", x, dim());
  check_jvp_args("GmmModel::eps_jvp", x, v, eps_out, jvp_out);
  const AlphaSigma as = alpha_sigma(*schedule_, t, "GmmModel::eps_jvp");
  if (x.rows() == 0) return;
  run_mixture(weights_, means_, stds_, as, x, as.sigma, &eps_out, nullptr);

  const Eigen::Index K = means_.rows(), d = means_.cols();
  // Constants (2 K d + K), then per row: a (K d), r (K), a_k . v (K), G (d).
  const Eigen::Index constants = round_up8(2 * K * d + K);
  double* buffer = scratch(static_cast<std::size_t>(constants + K * d + 2 * K + d));
  const MixtureAt m = mixture_at(buffer, weights_, means_, stds_, as);
  double* a = buffer + constants;
  double* r = a + K * d;
  double* av = r + K;
  double* g = av + K;
  for (Eigen::Index row = 0; row < x.rows(); ++row) {
    double l_max = -std::numeric_limits<double>::infinity();
    for (Eigen::Index k = 0; k < K; ++k) {
      double q = 0.0;
      for (Eigen::Index j = 0; j < d; ++j) {
        const double diff = x(row, j) - m.mu[k * d + j];
        a[k * d + j] = m.prec[k * d + j] * diff;
        q += a[k * d + j] * diff;
      }
      r[k] = m.c[k] - 0.5 * q;  // l_k for now
      l_max = std::max(l_max, r[k]);
    }
    double total = 0.0;
    for (Eigen::Index k = 0; k < K; ++k) total += (r[k] = std::exp(r[k] - l_max));
    for (Eigen::Index k = 0; k < K; ++k) r[k] /= total;
    double gv = 0.0;
    for (Eigen::Index j = 0; j < d; ++j) {
      double gj = 0.0;
      for (Eigen::Index k = 0; k < K; ++k) gj += r[k] * a[k * d + j];
      g[j] = gj;
      gv += gj * v(row, j);
    }
    for (Eigen::Index k = 0; k < K; ++k) {
      double s = 0.0;
      for (Eigen::Index j = 0; j < d; ++j) s += a[k * d + j] * v(row, j);
      av[k] = s;
    }
    for (Eigen::Index j = 0; j < d; ++j) {
      double hv = g[j] * gv;
      for (Eigen::Index k = 0; k < K; ++k)
        hv += r[k] * (m.prec[k * d + j] * v(row, j) - a[k * d + j] * av[k]);
      jvp_out(row, j) = as.sigma * hv;
    }
  }
}

void GmmModel::score(const ConstStateRef& x, double t, StateRef out) const {
  check_x("GmmModel::score", x, dim());
  check_out("GmmModel::score", out.rows(), out.cols(), x);
  const AlphaSigma as = alpha_sigma(*schedule_, t, "GmmModel::score");
  if (x.rows() == 0) return;
  run_mixture(weights_, means_, stds_, as, x, -1.0, &out, nullptr);
}

void GmmModel::log_density(const ConstStateRef& x, double t, Eigen::Ref<BatchVector> out) const {
  check_x("GmmModel::log_density", x, dim());
  check_log_out("GmmModel::log_density", out.size(), x);
  const AlphaSigma as = alpha_sigma(*schedule_, t, "GmmModel::log_density");
  if (x.rows() == 0) return;
  run_mixture(weights_, means_, stds_, as, x, 0.0, nullptr, &out);
}

Eigen::VectorXd GmmModel::data_mean() const { return means_.transpose() * weights_; }

Eigen::MatrixXd GmmModel::data_covariance() const {
  // Law of total covariance: E[Cov(x | k)] + Cov(E[x | k]).
  const Eigen::VectorXd mean = data_mean();
  const Eigen::Index d = means_.cols();
  Eigen::MatrixXd cov = Eigen::MatrixXd::Zero(d, d);
  for (Eigen::Index k = 0; k < weights_.size(); ++k) {
    const Eigen::VectorXd dm = means_.row(k).transpose() - mean;
    cov += weights_(k) * (dm * dm.transpose());
    cov.diagonal() += weights_(k) * stds_.row(k).transpose().array().square().matrix();
  }
  return cov;
}

}  // namespace diffsde
