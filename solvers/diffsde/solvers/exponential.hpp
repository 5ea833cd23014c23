// Shared pieces of the exponential-integrator and multistep families (DDIM, DPM-Solver,
// DPM-Solver++, UniPC, DEIS, iPNDM, LMS): the phi functions, computed without cancellation
// for small steps, and the Lagrange basis behind every polynomial-extrapolation method.
//
//   phi_0(h) = e^h,   phi_k(h) = (phi_{k-1}(h) - 1/(k-1)!) / h = sum_{j>=0} h^j / (j+k)!,
//
// so phi_1(h) = expm1(h)/h, phi_2(h) = (phi_1(h) - 1)/h, ... In lambda = log(alpha/sigma),
// with h = lambda_t - lambda_s, noise-prediction updates use
//   sigma_t h^k phi_k(h) ~ int_{lambda_s}^{lambda_t} e^{lambda_t - lambda} (lambda - lambda_s)^{k-1}/(k-1)! dlambda,
// and data-prediction updates use phi_k(-h) (Lu et al. 2022, 2023; Zhao et al. 2023).
#pragma once

#include <array>

namespace diffsde {

// phi_k(h) for k >= 0 and any real h, to a few ulp.
double phi(int k, double h);

// Monomial coefficients of the Lagrange basis through k <= 4 distinct nodes:
// l_j(x) = sum_q a[j][q] x^q, l_j(nodes[m]) = delta_jm.
using LagrangeCoefficients = std::array<std::array<double, 4>, 4>;
LagrangeCoefficients lagrange_basis_coefficients(const std::array<double, 4>& nodes, int k);

// Adams–Bashforth weights c_j (j < k <= 4) for nodes u_j in units of the step
// (u_0 = 0 the current point, earlier nodes < 0 when integrating forward in u over [0, 1]):
// int_0^1 P(u) du = sum_j c_j f_j for the polynomial P through (u_j, f_j).
std::array<double, 4> adams_bashforth_weights(const std::array<double, 4>& u, int k);

}  // namespace diffsde
