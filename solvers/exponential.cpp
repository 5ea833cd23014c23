#include "diffsde/solvers/exponential.hpp"

#include <cmath>
#include <stdexcept>

namespace diffsde {

double phi(int k, double h) {
  if (k < 0) throw std::invalid_argument("phi: k must be >= 0");
  if (k == 0) return std::exp(h);
  if (std::fabs(h) < 1.0) {
    // Taylor series sum_j h^j/(j+k)!; 30 terms reach rounding for |h| < 1.
    double factorial = 1;  // k!
    for (int i = 2; i <= k; ++i) factorial *= i;
    double term = 1 / factorial, sum = term;
    for (int j = 1; j < 30; ++j) {
      term *= h / (j + k);
      sum += term;
    }
    return sum;
  }
  // Upward recursion from phi_1 = expm1(h)/h; the subtraction loses at most a factor
  // ~k!/|h|^... of relative accuracy, which is harmless for |h| >= 1.
  double value = std::expm1(h) / h;
  double inv_factorial = 1;  // 1/(m-1)! for m = 2
  for (int m = 2; m <= k; ++m) {
    value = (value - inv_factorial) / h;
    inv_factorial /= m;
  }
  return value;
}

}  // namespace diffsde
