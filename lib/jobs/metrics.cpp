// Metrics: see metrics.hpp and docs/metrics.md.
#include "diffsde/metrics.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>

#include "diffsde/error.hpp"
#include "diffsde/noise.hpp"

namespace diffsde {

namespace {

std::string shape(Eigen::Index rows, Eigen::Index cols) {
  return "(" + std::to_string(rows) + ", " + std::to_string(cols) + ")";
}

void check_same_dim(const ConstStateRef& a, const ConstStateRef& b, const char* who) {
  if (a.cols() != b.cols())
    throw Error(std::string(who) + ": the sample sets have different dimensions " + shape(a.rows(), a.cols()) +
                " and " + shape(b.rows(), b.cols()));
}

void check_square(const Eigen::VectorXd& m, const Eigen::MatrixXd& c, const char* who) {
  if (c.rows() != m.size() || c.cols() != m.size())
    throw Error(std::string(who) + ": covariance " + shape(c.rows(), c.cols()) + " does not match a mean of size " +
                std::to_string(m.size()));
}

}  // namespace

PathError path_error(const ConstStateRef& x, const ConstStateRef& reference) {
  if (x.rows() != reference.rows() || x.cols() != reference.cols())
    throw Error("path_error: samples " + shape(x.rows(), x.cols()) + " and reference " +
                shape(reference.rows(), reference.cols()) + " differ in shape");
  PathError out;
  if (x.size() == 0) return out;
  const auto diff = (x - reference).abs();
  out.rms = std::sqrt(diff.square().mean());
  out.max = diff.maxCoeff();
  return out;
}

double mean_log_likelihood(const AnalyticModel& model, const ConstStateRef& x) {
  if (x.rows() == 0) throw Error("mean_log_likelihood: no samples");
  BatchVector logp(x.rows());
  model.log_density(x, 0.0, logp);
  return logp.mean();
}

GaussianFit gaussian_fit(const ConstStateRef& x) {
  if (x.rows() < 2) throw Error("gaussian_fit: needs at least 2 samples, got " + std::to_string(x.rows()));
  GaussianFit fit;
  const Eigen::MatrixXd m = x.matrix();
  fit.mean = m.colwise().mean().transpose();
  const Eigen::MatrixXd centered = m.rowwise() - fit.mean.transpose();
  fit.covariance = centered.transpose() * centered / static_cast<double>(x.rows() - 1);
  return fit;
}

Eigen::MatrixXd sqrtm_psd(const Eigen::MatrixXd& a) {
  if (a.rows() != a.cols()) throw Error("sqrtm_psd: the matrix is not square: " + shape(a.rows(), a.cols()));
  const Eigen::MatrixXd sym = 0.5 * (a + a.transpose());
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(sym);
  const Eigen::VectorXd root = eig.eigenvalues().cwiseMax(0.0).cwiseSqrt();
  return eig.eigenvectors() * root.asDiagonal() * eig.eigenvectors().transpose();
}

double frechet_distance(const Eigen::VectorXd& m1, const Eigen::MatrixXd& c1, const Eigen::VectorXd& m2,
                        const Eigen::MatrixXd& c2) {
  check_square(m1, c1, "frechet_distance");
  check_square(m2, c2, "frechet_distance");
  if (m1.size() != m2.size())
    throw Error("frechet_distance: dimensions differ (" + std::to_string(m1.size()) + " and " +
                std::to_string(m2.size()) + ")");
  // tr (c2^1/2 c1 c2^1/2)^1/2 = sum of the square roots of the eigenvalues of the
  // symmetric PSD matrix c2^1/2 c1 c2^1/2.
  const Eigen::MatrixXd s2 = sqrtm_psd(c2);
  const Eigen::MatrixXd inner = s2 * c1 * s2;
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(0.5 * (inner + inner.transpose()), Eigen::EigenvaluesOnly);
  const double cross = eig.eigenvalues().cwiseMax(0.0).cwiseSqrt().sum();
  const double value = (m1 - m2).squaredNorm() + c1.trace() + c2.trace() - 2.0 * cross;
  return std::max(value, 0.0);
}

double frechet_distance(const GaussianFit& a, const GaussianFit& b) {
  return frechet_distance(a.mean, a.covariance, b.mean, b.covariance);
}

double frechet_distance(const ConstStateRef& a, const ConstStateRef& b) {
  check_same_dim(a, b, "frechet_distance");
  return frechet_distance(gaussian_fit(a), gaussian_fit(b));
}

double frechet_distance(const ConstStateRef& x, const AnalyticModel& model) {
  if (x.cols() != model.dim())
    throw Error("frechet_distance: samples have dimension " + std::to_string(x.cols()) + ", the model " +
                std::to_string(model.dim()));
  const GaussianFit fit = gaussian_fit(x);
  return frechet_distance(fit.mean, fit.covariance, model.data_mean(), model.data_covariance());
}

double frechet_distance_features(const ConstStateRef& a, const ConstStateRef& b, const FeatureMap& features) {
  if (!features) throw Error("frechet_distance_features: no feature map");
  const State fa = features(a);
  const State fb = features(b);
  if (fa.rows() != a.rows() || fb.rows() != b.rows())
    throw Error("frechet_distance_features: the feature map must give one row per sample");
  return frechet_distance(fa, fb);
}

namespace {
// Row indices of each class (negative labels left out).
std::map<std::int64_t, std::vector<Eigen::Index>> rows_by_class(const ConstStateRef& x,
                                                                const std::vector<std::int64_t>& labels,
                                                                const char* who) {
  if (static_cast<Eigen::Index>(labels.size()) != x.rows())
    throw Error(std::string(who) + ": " + std::to_string(labels.size()) + " labels for " +
                std::to_string(x.rows()) + " rows");
  std::map<std::int64_t, std::vector<Eigen::Index>> out;
  for (Eigen::Index i = 0; i < x.rows(); ++i)
    if (labels[static_cast<std::size_t>(i)] >= 0) out[labels[static_cast<std::size_t>(i)]].push_back(i);
  return out;
}

State select_rows(const ConstStateRef& x, const std::vector<Eigen::Index>& rows) {
  State out(static_cast<Eigen::Index>(rows.size()), x.cols());
  for (std::size_t k = 0; k < rows.size(); ++k) out.row(static_cast<Eigen::Index>(k)) = x.row(rows[k]);
  return out;
}
}  // namespace

std::map<std::int64_t, GaussianFit> gaussian_fits_by_class(const ConstStateRef& x,
                                                           const std::vector<std::int64_t>& labels) {
  std::map<std::int64_t, GaussianFit> fits;
  for (const auto& [c, rows] : rows_by_class(x, labels, "gaussian_fits_by_class"))
    if (rows.size() >= 2) fits[c] = gaussian_fit(select_rows(x, rows));
  return fits;
}

std::map<std::int64_t, double> frechet_distance_by_class(const ConstStateRef& x,
                                                         const std::vector<std::int64_t>& labels,
                                                         const std::map<std::int64_t, GaussianFit>& fits) {
  std::map<std::int64_t, double> out;
  for (const auto& [c, rows] : rows_by_class(x, labels, "frechet_distance_by_class")) {
    if (rows.size() < 2) continue;
    const auto fit = fits.find(c);
    if (fit == fits.end())
      throw Error("frechet_distance_by_class: class " + std::to_string(c) + " has " + std::to_string(rows.size()) +
                  " rows but no fit to compare them with");
    out[c] = frechet_distance(gaussian_fit(select_rows(x, rows)), fit->second);
  }
  return out;
}

ClassifierAccuracy classifier_accuracy(const ConstStateRef& logits, const std::vector<std::int64_t>& labels) {
  if (static_cast<Eigen::Index>(labels.size()) != logits.rows())
    throw Error("classifier_accuracy: " + std::to_string(labels.size()) + " labels for " +
                std::to_string(logits.rows()) + " rows of logits");
  ClassifierAccuracy out;
  long correct = 0;
  for (Eigen::Index i = 0; i < logits.rows(); ++i) {
    const std::int64_t label = labels[static_cast<std::size_t>(i)];
    if (label < 0) continue;
    if (label >= logits.cols())
      throw Error("classifier_accuracy: label " + std::to_string(label) + " of row " + std::to_string(i) +
                  ", but the classifier has " + std::to_string(logits.cols()) + " classes");
    Eigen::Index best = 0;
    logits.row(i).maxCoeff(&best);  // the first of equal maxima
    ++out.counted;
    if (best == label) ++correct;
  }
  out.accuracy = out.counted > 0 ? static_cast<double>(correct) / static_cast<double>(out.counted)
                                 : std::numeric_limits<double>::quiet_NaN();
  return out;
}

double fraction_outside(const ConstStateRef& x, double lo, double hi) {
  if (!(lo < hi)) throw Error("fraction_outside: needs lo < hi, got [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  if (x.size() == 0) throw Error("fraction_outside: no values");
  const auto outside = ((x.array() < lo) || (x.array() > hi)).count();
  return static_cast<double>(outside) / static_cast<double>(x.size());
}

namespace {
FeatureMapLoader& feature_map_loader() {
  static FeatureMapLoader loader;
  return loader;
}
}  // namespace

void set_feature_map_loader(FeatureMapLoader loader) { feature_map_loader() = std::move(loader); }
bool feature_maps_enabled() { return static_cast<bool>(feature_map_loader()); }

FeatureMap load_feature_map(const FeatureMapOptions& options) {
  if (!feature_map_loader())
    throw Error(options.path + ": reading a classifier's features needs LibTorch, and this program was built "
                               "without it (install libtorch-dev and configure with -DDIFFSDE_WITH_TORCH=ON)");
  return feature_map_loader()(options);
}

double wasserstein2_squared_1d(std::vector<double>& a, std::vector<double>& b) {
  if (a.empty() || b.empty()) throw Error("wasserstein2_squared_1d: an empty sample set");
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  // Both quantile functions are step functions: a[i] on ((i)/n, (i+1)/n], b[j] on
  // ((j)/m, (j+1)/m]. Walk the merged breakpoints, compared exactly as (i+1) m vs (j+1) n.
  const auto n = static_cast<unsigned long long>(a.size());
  const auto m = static_cast<unsigned long long>(b.size());
  std::size_t i = 0, j = 0;
  double u = 0, total = 0;
  while (i < a.size() && j < b.size()) {
    const unsigned long long ea = (i + 1) * m, eb = (j + 1) * n;  // both in units of 1/(n m)
    const unsigned long long e = std::min(ea, eb);
    const double next = static_cast<double>(e) / static_cast<double>(n * m);
    const double d = a[i] - b[j];
    total += (next - u) * d * d;
    u = next;
    if (ea == e) ++i;
    if (eb == e) ++j;
  }
  return total;
}

State projection_directions(int count, int dim, std::uint64_t seed) {
  if (count < 1 || dim < 1)
    throw Error("projection_directions: need count >= 1 and dim >= 1, got " + std::to_string(count) + ", " +
                std::to_string(dim));
  State out(count, dim);
  for (int l = 0; l < count; ++l) {
    double norm = 0;
    // A zero vector has probability 0; redraw (next draw index) if it ever happens.
    for (std::uint32_t draw = 1; norm == 0; draw += 2) {
      philox_normals(seed, NoiseStream::data, static_cast<std::uint64_t>(l), draw, out.row(l).data(), dim);
      norm = out.row(l).matrix().norm();
    }
    out.row(l) /= norm;
  }
  return out;
}

double sliced_wasserstein2(const ConstStateRef& a, const ConstStateRef& b, const ConstStateRef& directions) {
  check_same_dim(a, b, "sliced_wasserstein2");
  if (directions.cols() != a.cols())
    throw Error("sliced_wasserstein2: directions have dimension " + std::to_string(directions.cols()) +
                ", the samples " + std::to_string(a.cols()));
  if (directions.rows() == 0) throw Error("sliced_wasserstein2: no directions");
  std::vector<double> pa(static_cast<std::size_t>(a.rows())), pb(static_cast<std::size_t>(b.rows()));
  double sum = 0;
  for (Eigen::Index l = 0; l < directions.rows(); ++l) {
    const Eigen::VectorXd theta = directions.row(l).transpose().matrix();
    Eigen::Map<Eigen::VectorXd>(pa.data(), a.rows()) = a.matrix() * theta;
    Eigen::Map<Eigen::VectorXd>(pb.data(), b.rows()) = b.matrix() * theta;
    sum += wasserstein2_squared_1d(pa, pb);
  }
  return std::sqrt(sum / static_cast<double>(directions.rows()));
}

double sliced_wasserstein2(const ConstStateRef& a, const ConstStateRef& b, int projections, std::uint64_t seed) {
  return sliced_wasserstein2(a, b, projection_directions(projections, static_cast<int>(a.cols()), seed));
}

double median_pairwise_distance(const ConstStateRef& x, long max_rows) {
  const long n = std::min<long>(static_cast<long>(x.rows()), max_rows);
  if (n < 2) throw Error("median_pairwise_distance: needs at least 2 samples, got " + std::to_string(n));
  std::vector<double> d;
  d.reserve(static_cast<std::size_t>(n * (n - 1) / 2));
  for (long i = 0; i < n; ++i)
    for (long j = i + 1; j < n; ++j) d.push_back(std::sqrt((x.row(i) - x.row(j)).square().sum()));
  // Median of an even count: the mean of the two middle values.
  const std::size_t mid = d.size() / 2;
  std::nth_element(d.begin(), d.begin() + static_cast<std::ptrdiff_t>(mid), d.end());
  double median = d[mid];
  if (d.size() % 2 == 0) median = 0.5 * (median + *std::max_element(d.begin(), d.begin() + static_cast<std::ptrdiff_t>(mid)));
  return median;
}

MmdResult mmd2_rbf(const ConstStateRef& x, const ConstStateRef& y, double bandwidth) {
  check_same_dim(x, y, "mmd2_rbf");
  if (x.rows() != y.rows())
    throw Error("mmd2_rbf: the estimator pairs the samples, so both sets need the same size, got " +
                std::to_string(x.rows()) + " and " + std::to_string(y.rows()));
  const long n = static_cast<long>(x.rows());
  if (n < 3) throw Error("mmd2_rbf: needs at least 3 samples per set, got " + std::to_string(n));
  if (!(bandwidth > 0) || !std::isfinite(bandwidth))
    throw Error("mmd2_rbf: the bandwidth must be finite and > 0, got " + format_double(bandwidth));
  const double gamma = 1.0 / (2.0 * bandwidth * bandwidth);
  const Eigen::Index dim = x.cols();
  auto kernel = [&](const double* a, const double* b) {
    double s = 0;
    for (Eigen::Index k = 0; k < dim; ++k) {
      const double d = a[k] - b[k];
      s += d * d;
    }
    return std::exp(-gamma * s);
  };
  // x and y are row-major, so row i starts at data() + i * dim.
  const State xs = x, ys = y;
  std::vector<double> row_sum(static_cast<std::size_t>(n), 0.0);
  double sum = 0, sum_sq = 0;
  for (long i = 0; i < n; ++i) {
    const double* xi = xs.data() + i * dim;
    const double* yi = ys.data() + i * dim;
    for (long j = i + 1; j < n; ++j) {
      const double* xj = xs.data() + j * dim;
      const double* yj = ys.data() + j * dim;
      const double h = kernel(xi, xj) + kernel(yi, yj) - kernel(xi, yj) - kernel(xj, yi);
      sum += h;
      sum_sq += h * h;
      row_sum[static_cast<std::size_t>(i)] += h;
      row_sum[static_cast<std::size_t>(j)] += h;
    }
  }
  const double nd = static_cast<double>(n);
  const double pairs = nd * (nd - 1) / 2;
  MmdResult out;
  out.bandwidth = bandwidth;
  out.mmd2 = sum / pairs;
  // zeta1 = Var_z E[H(z, z')]; zeta2 = Var H(z, z').
  double zeta1 = 0;
  for (double r : row_sum) {
    const double h1 = r / (nd - 1) - out.mmd2;
    zeta1 += h1 * h1;
  }
  zeta1 /= nd;
  const double zeta2 = sum_sq / pairs - out.mmd2 * out.mmd2;
  const double var = 4 * (nd - 2) / (nd * (nd - 1)) * zeta1 + 2 / (nd * (nd - 1)) * zeta2;
  out.standard_error = std::sqrt(std::max(var, 0.0));
  return out;
}

double mmd2_rbf_gaussians(const Eigen::VectorXd& m1, const Eigen::MatrixXd& c1, const Eigen::VectorXd& m2,
                          const Eigen::MatrixXd& c2, double bandwidth) {
  check_square(m1, c1, "mmd2_rbf_gaussians");
  check_square(m2, c2, "mmd2_rbf_gaussians");
  if (m1.size() != m2.size()) throw Error("mmd2_rbf_gaussians: dimensions differ");
  if (!(bandwidth > 0)) throw Error("mmd2_rbf_gaussians: the bandwidth must be > 0");
  const double h2 = bandwidth * bandwidth;
  const Eigen::Index d = m1.size();
  const Eigen::MatrixXd identity = Eigen::MatrixXd::Identity(d, d);
  // E exp(-|D|^2 / (2 h^2)) for D ~ N(mu, s).
  auto expected_kernel = [&](const Eigen::VectorXd& mu, const Eigen::MatrixXd& s) {
    const Eigen::MatrixXd a = identity + s / h2;
    const Eigen::LDLT<Eigen::MatrixXd> b((h2 * identity + s).eval());
    const double quad = mu.dot(b.solve(mu));
    return std::exp(-0.5 * quad) / std::sqrt(a.determinant());
  };
  const Eigen::VectorXd zero = Eigen::VectorXd::Zero(d);
  return expected_kernel(zero, 2 * c1) + expected_kernel(zero, 2 * c2) - 2 * expected_kernel(m1 - m2, c1 + c2);
}

}  // namespace diffsde
