// DEIS: the multistep exponential integrator of Zhang & Chen (2023, "Fast Sampling of
// Diffusion Models with Exponential Integrator", ICLR), with polynomial extrapolation of
// eps in lambda = log(alpha/sigma).
//
// In lambda the PF-ODE's linear part is solved exactly (Lu et al. 2022, eq. 3.4):
//   x_t = (alpha_t/alpha_s) x_s - sigma_t int_0^h e^{h-u} eps(lambda_s + u) du,   h = lambda_t - lambda_s.
// DEIS of order k replaces eps by the Lagrange polynomial P through the last k values
// eps_j at lambda_j (j = 0 the current point s, j = 1, 2 earlier ones) and integrates the
// polynomial against the kernel exactly. With nodes r_j = (lambda_j - lambda_s)/h and
// P(lambda_s + h theta) = sum_q sum_j a_jq theta^q eps_j (a_jq: monomial coefficients of
// the Lagrange basis l_j(theta)), int_0^h e^{h-u} (u/h)^q du = q! h phi_{q+1}(h), so
//   x_t = (alpha_t/alpha_s) x_s - sigma_t [ expm1(h) eps_0 + sum_j v_j eps_j ],
//   v_j = h sum_{q=1}^{k-1} q! a_jq phi_{q+1}(h)                                  (the q = 0 term
// is DDIM: l_j(0) = delta_j0). This is the paper's exponential-kernel form with the
// polynomial in log rho = -lambda (rho = sigma/alpha), not its rhoAB form (polynomial in rho,
// plain Adams–Bashforth; that is what `ipndm` does).
#pragma once

#include <array>
#include <string>
#include <vector>

#include "diffsde/solver.hpp"
#include "diffsde/solvers/exponential.hpp"

namespace diffsde {


// The weights v_j (j < k) above for normalized nodes r_j = (lambda_j - lambda_s)/h, r_0 = 0,
// and the step h = lambda_t - lambda_s (k = 1: all zero, the step is DDIM).
std::array<double, 4> deis_weights(const std::array<double, 4>& r, int k, double h);

class DeisSolver final : public Solver {
 public:
  static constexpr int kMaxOrder = 3;
  struct Options {
    int order = 3;  // 1..3; 1 = DDIM
    // The order drops to the number of steps left (the last step is DDIM), as dpm_solver's.
    bool lower_order_final = false;
    // The order of each step, one per grid step (empty: min(order, step number + 1), and
    // lower_order_final); each in [1, order] and at most its step number + 1 (diffusers'
    // DEISMultistepScheduler lowers its last two steps below 15 steps this way).
    std::vector<int> orders;
    // order 1, 2 or 3; orders as above (options.hpp: the message in *error, the option in
    // *option).
    bool is_valid(std::string* error = nullptr, std::string* option = nullptr) const;
  };

  // Throws Error unless options.is_valid().
  explicit DeisSolver(Options options);
  SolverTraits traits() const override;
  std::unique_ptr<Solver> clone() const override { return std::make_unique<DeisSolver>(options_); }
  void init(SolverContext& context, const State& x, const std::vector<double>& times) override;
  void step(SolverContext& context, std::size_t i, double t0, double t1, State& x) override;
  // The order step i of `steps` takes (before the history's warm-up and the final DDIM step
  // to t = 0).
  int step_order(std::size_t i, std::size_t steps) const;

 private:
  Options options_;
  // eps_[0] at the current point, eps_[1], eps_[2] earlier; lambda_ their lambdas.
  std::array<State, kMaxOrder> eps_;
  std::array<double, kMaxOrder> lambda_{};
  int count_ = 0;  // how many of eps_ hold values
  std::size_t steps_ = 0;
};

}  // namespace diffsde
