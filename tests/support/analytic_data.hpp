// Data drawn from the analytic models' data distributions and their exact log-densities, for
// the likelihood tests. Header-only, test use only.
#pragma once

#include <random>

#include "diffsde/scores/analytic.hpp"
#include "diffsde/state.hpp"

namespace diffsde::test {

// n rows drawn from a mixture's data distribution (std::mt19937, so independent of the
// library's own noise streams).
inline State gmm_data(const GmmModel& m, long n, unsigned seed) {
  std::mt19937 rng(seed);
  std::discrete_distribution<int> pick(m.weights().data(), m.weights().data() + m.weights().size());
  std::normal_distribution<double> z;
  State x(n, m.dim());
  for (long r = 0; r < n; ++r) {
    const int k = pick(rng);
    for (int j = 0; j < m.dim(); ++j) x(r, j) = m.means()(k, j) + m.stds()(k, j) * z(rng);
  }
  return x;
}

// The model's exact log p_t of every row.
inline BatchVector log_density(const AnalyticModel& m, const State& x, double t) {
  BatchVector out(x.rows());
  m.log_density(x, t, out);
  return out;
}

}  // namespace diffsde::test
