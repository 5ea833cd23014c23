// Exact samples of the analytic models' data distributions, for the distribution metrics
// (sliced Wasserstein, MMD) that compare generated samples with data samples.
//
// Row i is sample first_sample + i, drawn from Philox on NoiseStream::data keyed by
// (seed, that index): dim + 1 standard normals per sample. The mixture turns the first
// one into a uniform u = Phi(z) (exactly uniform in law) to pick its component by the
// cumulative weights; the remaining dim normals give the component's Gaussian.
#include <cmath>
#include <vector>

#include "diffsde/error.hpp"
#include "diffsde/noise.hpp"
#include "diffsde/scores/analytic.hpp"

namespace diffsde {

namespace {

void check_count(long n, const char* who) {
  if (n < 0) throw Error(std::string(who) + ": sample_data needs n >= 0, got " + std::to_string(n));
}

}  // namespace

State GaussianModel::sample_data(long n, std::uint64_t seed, std::uint64_t first_sample) const {
  check_count(n, "gaussian");
  const int d = dim();
  State out(n, d);
  std::vector<double> z(static_cast<std::size_t>(d) + 1);
  for (long i = 0; i < n; ++i) {
    philox_normals(seed, NoiseStream::data, first_sample + static_cast<std::uint64_t>(i), 0, z.data(), d + 1);
    for (int j = 0; j < d; ++j) out(i, j) = mean_(j) + std_(j) * z[static_cast<std::size_t>(j) + 1];
  }
  return out;
}

State GmmModel::sample_data(long n, std::uint64_t seed, std::uint64_t first_sample) const {
  check_count(n, "gmm");
  const int d = dim();
  const Eigen::Index k_count = weights_.size();
  // Cumulative weights; the last is set to 1 so that rounding cannot leave u uncovered.
  std::vector<double> cumulative(static_cast<std::size_t>(k_count));
  double sum = 0;
  for (Eigen::Index k = 0; k < k_count; ++k) {
    sum += weights_(k);
    cumulative[static_cast<std::size_t>(k)] = sum;
  }
  for (double& c : cumulative) c /= sum;
  cumulative.back() = 1.0;

  State out(n, d);
  std::vector<double> z(static_cast<std::size_t>(d) + 1);
  for (long i = 0; i < n; ++i) {
    philox_normals(seed, NoiseStream::data, first_sample + static_cast<std::uint64_t>(i), 0, z.data(), d + 1);
    const double u = 0.5 * std::erfc(-z[0] / std::sqrt(2.0));  // Phi(z0), uniform on (0, 1)
    Eigen::Index k = 0;
    while (k + 1 < k_count && !(u < cumulative[static_cast<std::size_t>(k)])) ++k;
    for (int j = 0; j < d; ++j)
      out(i, j) = means_(k, j) + stds_(k, j) * z[static_cast<std::size_t>(j) + 1];
  }
  return out;
}

}  // namespace diffsde
