#include "diffsde/solvers/exponential.hpp"

#include <cmath>
#include <stdexcept>

#include "diffsde/error.hpp"

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

LagrangeCoefficients lagrange_basis_coefficients(const std::array<double, 4>& nodes, int k) {
  if (k < 1 || k > 4) throw Error("lagrange_basis_coefficients: k must be 1..4");
  LagrangeCoefficients a{};
  for (int j = 0; j < k; ++j) {
    // Multiply out prod_{m != j} (x - nodes[m]) / (nodes[j] - nodes[m]), dividing as we go
    // so that the coefficients stay scaled when nodes lie close together.
    std::array<double, 4> poly{1.0, 0.0, 0.0, 0.0};
    int degree = 0;
    for (int m = 0; m < k; ++m) {
      if (m == j) continue;
      const double denominator = nodes[j] - nodes[m];
      for (int q = degree + 1; q >= 1; --q) poly[q] = (poly[q - 1] - nodes[m] * poly[q]) / denominator;
      poly[0] = -nodes[m] * poly[0] / denominator;
      ++degree;
    }
    for (int q = 0; q < k; ++q) a[j][q] = poly[q];
  }
  return a;
}

std::array<double, 4> adams_bashforth_weights(const std::array<double, 4>& u, int k) {
  const LagrangeCoefficients a = lagrange_basis_coefficients(u, k);
  std::array<double, 4> c{};
  for (int j = 0; j < k; ++j)
    for (int q = 0; q < k; ++q) c[j] += a[j][q] / (q + 1);  // int_0^1 u^q du
  return c;
}

}  // namespace diffsde
