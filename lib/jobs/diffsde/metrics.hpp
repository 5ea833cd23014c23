// Sample-quality and accuracy metrics (docs/metrics.md has every formula):
//   - path error against a reference solve from the same x_T and noise (RMS and max),
//   - the exact data log-likelihood of samples under an analytic model,
//   - the Fréchet distance between Gaussian fits (samples vs the exact data moments, or
//     samples vs samples, optionally in a feature space),
//   - the sliced 2-Wasserstein distance (Philox-keyed directions, 1-D quantile matching),
//   - the squared maximum mean discrepancy with an RBF kernel (unbiased U-statistic with
//     its standard error), and its closed form between two Gaussians,
//   - for labelled samples: a classifier's accuracy and the Fréchet distance per class,
//   - the fraction of sample values outside a range.
// Samples are States: one sample per row.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "diffsde/model.hpp"
#include "diffsde/state.hpp"

namespace diffsde {

// ---------------------------------------------------------------------------
// Path error.

struct PathError {
  double rms = 0;  // sqrt(mean over all entries of (x - reference)^2)
  double max = 0;  // max over all entries of |x - reference|
};

// Error of x against a reference of the same shape (Error otherwise).
PathError path_error(const ConstStateRef& x, const ConstStateRef& reference);

// ---------------------------------------------------------------------------
// Likelihood under an analytic model.

// Mean over the rows of log p_0(x_i), the exact data log-density (t = 0).
double mean_log_likelihood(const AnalyticModel& model, const ConstStateRef& x);

// ---------------------------------------------------------------------------
// Gaussian fits and the Fréchet distance.

struct GaussianFit {
  Eigen::VectorXd mean;
  Eigen::MatrixXd covariance;  // unbiased: divided by n - 1
};

// Sample mean and covariance of the rows (needs >= 2 rows).
GaussianFit gaussian_fit(const ConstStateRef& x);

// The symmetric positive semi-definite square root (negative eigenvalues from rounding
// are treated as 0).
Eigen::MatrixXd sqrtm_psd(const Eigen::MatrixXd& a);

// Fréchet (2-Wasserstein) distance squared between N(m1, c1) and N(m2, c2):
//   |m1 - m2|^2 + tr(c1 + c2 - 2 (c2^1/2 c1 c2^1/2)^1/2).
double frechet_distance(const Eigen::VectorXd& m1, const Eigen::MatrixXd& c1, const Eigen::VectorXd& m2,
                        const Eigen::MatrixXd& c2);
double frechet_distance(const GaussianFit& a, const GaussianFit& b);
// Between the Gaussian fits of two sample sets.
double frechet_distance(const ConstStateRef& a, const ConstStateRef& b);
// Between the Gaussian fit of the samples and the exact data mean and covariance.
double frechet_distance(const ConstStateRef& x, const AnalyticModel& model);

// A map from samples (n x dim) to features (n x k), e.g. the penultimate layer of a
// classifier. The Fréchet distance of image models is taken in such a feature space.
using FeatureMap = std::function<State(const ConstStateRef&)>;
double frechet_distance_features(const ConstStateRef& a, const ConstStateRef& b, const FeatureMap& features);

// Gaussian fits of the rows of each class: labels[i] is row i's class, a negative label
// none (the row is left out); classes with fewer than 2 rows get no fit.
std::map<std::int64_t, GaussianFit> gaussian_fits_by_class(const ConstStateRef& x,
                                                           const std::vector<std::int64_t>& labels);
// The Fréchet distance per class between the rows of x of class c (labels as above) and
// fits.at(c), for every class with at least 2 rows in x; Error naming the class when
// `fits` has none for it.
std::map<std::int64_t, double> frechet_distance_by_class(const ConstStateRef& x,
                                                         const std::vector<std::int64_t>& labels,
                                                         const std::map<std::int64_t, GaussianFit>& fits);

// A classifier's feature map read from a file: a method of a TorchScript module, as
// `diffsde train` writes it for the task "classifier": `features` (its penultimate layer)
// or `forward` (its logits).
struct FeatureMapOptions {
  std::string path;                 // the TorchScript file (named in every error)
  std::vector<int> shape;           // per-sample input shape; empty: the file's metadata
  std::string device = "cpu";
  long max_batch = 500;             // rows per call of the method
  std::string method = "features";  // the method called, (B, ...) -> (B, K): or "forward"
};
// Loading needs LibTorch: enable_torch_models() (diffsde::torch) installs the loader.
// The map it returns may be called from several threads (calls are serialised) and
// throws Error naming the file when the input's width does not match the shape.
using FeatureMapLoader = std::function<FeatureMap(const FeatureMapOptions&)>;
void set_feature_map_loader(FeatureMapLoader loader);
bool feature_maps_enabled();
// Error when no loader is installed (a build without LibTorch), IoError when the file
// does not load or has no such method.
FeatureMap load_feature_map(const FeatureMapOptions& options);

// ---------------------------------------------------------------------------
// Labelled samples and ranges.

struct ClassifierAccuracy {
  double accuracy = 0;  // fraction of the counted rows whose argmax is their label (NaN: none)
  long counted = 0;     // rows with a label (>= 0)
};
// Accuracy of logits (n x classes) against labels (n; a negative label is skipped): row i
// is correct when its largest logit (the first of equal ones) is at column labels[i].
// Error when a label is >= the number of columns.
ClassifierAccuracy classifier_accuracy(const ConstStateRef& logits, const std::vector<std::int64_t>& labels);

// Fraction of all entries of x outside [lo, hi] (Error when lo >= hi or x is empty).
double fraction_outside(const ConstStateRef& x, double lo, double hi);

// ---------------------------------------------------------------------------
// Sliced 2-Wasserstein distance.

// Exact 2-Wasserstein distance squared between two 1-D empirical distributions (equal
// weights per point; the sizes may differ): the integral over u in (0, 1) of the squared
// difference of their quantile functions. The inputs are sorted in place.
double wasserstein2_squared_1d(std::vector<double>& a, std::vector<double>& b);

// `count` unit directions in R^dim, row l from Philox keyed by (seed, NoiseStream::data,
// sample l, draw 1) and normalised.
State projection_directions(int count, int dim, std::uint64_t seed);

// SW2 = sqrt(mean over the directions of W2^2 of the projected samples).
double sliced_wasserstein2(const ConstStateRef& a, const ConstStateRef& b, const ConstStateRef& directions);
double sliced_wasserstein2(const ConstStateRef& a, const ConstStateRef& b, int projections, std::uint64_t seed);

// ---------------------------------------------------------------------------
// Maximum mean discrepancy with the RBF kernel k(x, y) = exp(-|x - y|^2 / (2 h^2)).

// Median of the Euclidean distances between distinct rows among the first `max_rows`
// rows (the median heuristic for h); needs >= 2 rows.
double median_pairwise_distance(const ConstStateRef& x, long max_rows = 2000);

struct MmdResult {
  double mmd2 = 0;            // unbiased estimate of MMD^2 (may be slightly negative)
  double standard_error = 0;  // of the estimate, from the U-statistic variance
  double bandwidth = 0;       // h used
};

// Unbiased MMD^2 between x and y (equal numbers of rows, >= 2): the U-statistic
// 1/(n(n-1)) sum_{i != j} H_ij, H_ij = k(x_i,x_j) + k(y_i,y_j) - k(x_i,y_j) - k(x_j,y_i)
// (Gretton et al. 2012, eq. 4), with the standard error from
// Var U = 4 (n-2)/(n(n-1)) zeta1 + 2/(n(n-1)) zeta2 (plug-in estimates of zeta1, zeta2).
MmdResult mmd2_rbf(const ConstStateRef& x, const ConstStateRef& y, double bandwidth);

// Exact MMD^2 between N(m1, c1) and N(m2, c2) for the same kernel:
// E k(X, Y) = det(I + S/h^2)^{-1/2} exp(-mu^T (h^2 I + S)^{-1} mu / 2) with X - Y ~ N(mu, S).
double mmd2_rbf_gaussians(const Eigen::VectorXd& m1, const Eigen::MatrixXd& c1, const Eigen::VectorXd& m2,
                          const Eigen::MatrixXd& c2, double bandwidth);

}  // namespace diffsde
