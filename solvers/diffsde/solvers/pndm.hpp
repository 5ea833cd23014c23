// PNDM's pseudo linear multistep method (Liu, Ren, Lin & Zhao 2022, "Pseudo Numerical
// Methods for Diffusion Models on Manifolds", PLMS), as diffusers' PNDMScheduler runs it
// with skip_prk_steps (the setting Stable Diffusion ships): the DDIM transfer
//   x_t = (alpha_t/alpha_s) x_s - sigma_t expm1(h) eps'
// with eps' the Adams–Bashforth combination, with the constant weights of equal steps, of
// the eps values at the last grid times:
//   step 0: eps' = (e_0 + e_1)/2, where e_0 = eps(x_0, t_0) and e_1 = eps(x_1', t_1) at the
//           DDIM step x_1' = transfer(x_0, e_0) (a second-order start: two evaluations;
//           a run of one step is the DDIM step);
//   step 1: eps' = (3 e_1 - e_0)/2;  step 2: (23 e_2 - 16 e_1 + 5 e_0)/12;
//   later:  (55 e_n - 59 e_{n-1} + 37 e_{n-2} - 9 e_{n-3})/24,
// where e_n = eps(x_n, t_n) at the grid's times (e_1 of step 1 is evaluated at x_1 itself).
// The weights are those of steps equal in the network's timestep, so the method is of
// order 4 only on grids uniform in rho = sigma/alpha and of lower order elsewhere (see
// ipndm for variable-step weights).
#pragma once

#include <array>
#include <string>
#include <vector>

#include "diffsde/solver.hpp"

namespace diffsde {

class PndmSolver final : public Solver {
 public:
  enum class Warmup { second_order, prk };
  struct Options {
    // The start: the second-order step above (diffusers' skip_prk_steps), or PNDM's pseudo
    // Runge-Kutta steps for the first three steps (four evaluations each: the DDIM transfer
    // with eps at the start, twice at the midpoint and at the end, weighted 1, 2, 2, 1 over
    // 6). The midpoint is the step's middle timestep on a vp_discrete grid whose times are
    // its steps (diffusers' t - N // steps // 2), the middle time elsewhere.
    Warmup warmup = Warmup::second_order;
    bool is_valid(std::string* /*error*/ = nullptr, std::string* /*option*/ = nullptr) const { return true; }
  };

  PndmSolver();
  explicit PndmSolver(Options options);
  SolverTraits traits() const override;
  std::unique_ptr<Solver> clone() const override { return std::make_unique<PndmSolver>(options_); }
  void init(SolverContext& context, const State& x, const std::vector<double>& times) override;
  void step(SolverContext& context, std::size_t i, double t0, double t1, State& x) override;

 private:
  Options options_;
  std::array<State, 4> eps_;  // eps_[0] newest
  int count_ = 0;             // eps values held
  std::size_t steps_ = 0;
  bool has_end_ = false;
  std::size_t end_i_ = 0;
  double end_t_ = 0;
  State combined_, trial_, extra_;
  // The pseudo Runge-Kutta step from (x, e_0 = eps_[0]) over t0 -> t1.
  void prk_step(SolverContext& context, double t0, double t1, State& x);
};

std::string to_string(PndmSolver::Warmup warmup);
PndmSolver::Warmup pndm_warmup_from_string(const std::string& s);

}  // namespace diffsde
