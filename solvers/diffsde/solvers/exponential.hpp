// Shared pieces of the exponential-integrator family (DDIM, DPM-Solver, DPM-Solver++,
// UniPC, DEIS): the phi functions, computed without cancellation for small steps.
//
//   phi_0(h) = e^h,   phi_k(h) = (phi_{k-1}(h) - 1/(k-1)!) / h = sum_{j>=0} h^j / (j+k)!,
//
// so phi_1(h) = expm1(h)/h, phi_2(h) = (phi_1(h) - 1)/h, ... In lambda = log(alpha/sigma),
// with h = lambda_t - lambda_s, noise-prediction updates use
//   sigma_t h^k phi_k(h) ~ int_{lambda_s}^{lambda_t} e^{lambda_t - lambda} (lambda - lambda_s)^{k-1}/(k-1)! dlambda,
// and data-prediction updates use phi_k(-h) (Lu et al. 2022, 2023; Zhao et al. 2023).
#pragma once

namespace diffsde {

// phi_k(h) for k >= 0 and any real h, to a few ulp.
double phi(int k, double h);

}  // namespace diffsde
