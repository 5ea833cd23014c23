// DPM-Solver (Lu et al. 2022, NeurIPS) and DPM-Solver++ (Lu et al. 2022, arXiv:2211.01095):
// exponential integrators of the PF-ODE in lambda = log(alpha/sigma), of orders 1 to 3,
// singlestep or multistep, with a noise-prediction (`dpmsolver`) or data-prediction
// (`dpmsolver++`) model output m.
//
// From s to t with h = lambda_t - lambda_s, the PF-ODE's linear part is solved exactly and
// m is expanded in lambda around s (eps for noise prediction, x0 = (x - sigma eps)/alpha
// for data prediction):
//   noise: x_t = (alpha_t/alpha_s) x_s - sigma_t sum_k h^{k+1} phi_{k+1}(h)  m^{(k)}(lambda_s),
//   data:  x_t = (sigma_t/sigma_s) x_s + alpha_t sum_k h^{k+1} phi_{k+1}(-h) m^{(k)}(lambda_s).
// The k = 0 term of either form is the same first-order step, DDIM(eta = 0) =
// DPM-Solver-1 (Lu et al. 2022, eq. 3.7 with k = 1); we take it from ddim_coefficients, so
// that order 1 is DDIM to the last bit, and add the higher terms in the form of the chosen
// algorithm. Writing g_k(h) = h phi_k(h) (noise) or h phi_k(-h) (data) and
// scale_t = -sigma_t (noise) or alpha_t (data), the updates are
//   order 2 (r = 1/2 singlestep; r = h_prev/h multistep), DPM-Solver-2 (Algorithm 1) and
//   DPM-Solver++(2S)/(2M) (Algorithms 1, 2):
//     x_t = first-order step + scale_t g_1(h) / (2 r) (m_1 - m_s),
//   m_1 = m at the stage lambda_s + r h (singlestep) or at the previous grid time (multistep);
//   order 3 singlestep (r1 = 1/3, r2 = 2/3; DPM-Solver-3, Algorithm 2):
//     u_1 = first-order step to s_1,
//     u_2 = first-order step to s_2 + scale_{s2} (r2/r1) g_2(r2 h) (m_1 - m_s),
//     x_t = first-order step + scale_t g_2(h) / r2 (m_2 - m_s);
//   order 3 multistep ("3M"), with r0 = h_0/h, r1 = h_1/h over the last two intervals,
//     D1_0 = (m_0 - m_1)/r0, D1_1 = (m_1 - m_2)/r1, D2 = (D1_0 - D1_1)/(r0 + r1),
//     D1 = D1_0 + r0 D2,
//     x_t = first-order step + scale_t (g_2(h) D1 + 2 g_3(h) D2).
// D1 ~ h m' and D2 ~ h^2 m''/2, so the third-order Taylor term h^3 phi_3 m'' needs 2 D2:
// the reference code's multistep_dpm_solver_third_update weights D2 by g_3 alone, which
// leaves an O(h^3) local error (global order 2, measured here); we use the factor 2.
//
// A step to t = 0 (sigma_t = 0, lambda_t = +inf) is always the first-order step, which
// there returns the predicted x0 (as DDIM does); the higher terms would be inf - inf.
//
// Singlestep with stages on the grid (`stages` grid; diffusers' DPMSolverSinglestepScheduler):
// the stages are grid times, one evaluation per grid step. A per-step order list cuts the grid
// into chunks whose orders run 1, 2, .., k; at the chunk's first node s_0 the sample x_{s_0}
// and m_0 are kept, and the step of order j (to the grid time t after node s_{j-1}) is the
// update above from s_0 to t, with the stage fraction r of the newest node s_{j-1}:
//   order 2: x_t = first-order step from s_0 + scale_t g_1(h) / (2 r) (m_1 - m_0),
//   order 3: x_t = first-order step from s_0 + scale_t g_2(h) / r (m_2 - m_0),
// h = lambda_t - lambda_{s_0}, r = (lambda_{s_{j-1}} - lambda_{s_0}) / h. So the chunk's
// intermediate samples are its order-1 and order-2 updates (not DPM-Solver-3's u_2), as in
// diffusers' singlestep_dpm_solver_{second,third}_order_update with the midpoint form.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "diffsde/solver.hpp"

namespace diffsde {

enum class DpmAlgorithm {
  dpmsolver,     // noise prediction (DPM-Solver)
  dpmsolver_pp,  // data prediction (DPM-Solver++)
};
enum class DpmMethod { singlestep, multistep };
// Where singlestep puts its stages: at lambda fractions inside each grid interval (`lambda`,
// DPM-Solver's Algorithms 1, 2), or at the grid times themselves (`grid`, diffusers' singlestep).
enum class DpmStages { lambda, grid };

// "dpmsolver" | "dpmsolver++"; "singlestep" | "multistep"; "lambda" | "grid".
std::string to_string(DpmAlgorithm algorithm);
std::string to_string(DpmMethod method);
std::string to_string(DpmStages stages);
// Throw Error on unknown names.
DpmAlgorithm dpm_algorithm_from_string(const std::string& s);
DpmMethod dpm_method_from_string(const std::string& s);
DpmStages dpm_stages_from_string(const std::string& s);

// The step orders of diffusers' DPMSolverSinglestepScheduler.get_order_list for `steps` grid
// steps, with its set_timesteps rule that lower_order_final is switched on when `steps` is
// not a multiple of `order`: runs 1, 2, .., order, ending (with lower_order_final) in a
// shorter run, e.g. order 3: 6 steps -> 1 2 3 1 2 1, 7 -> 1 2 3 1 2 3 1, 8 -> 1 2 3 1 2 3 1 2;
// order 2: 4 -> 1 2 1 1.
std::vector<int> dpm_singlestep_orders(int order, bool lower_order_final, std::size_t steps);

// g_k(h) = h phi_k(h) (noise prediction) or h phi_k(-h) (data prediction), k >= 1.
double dpm_g(DpmAlgorithm algorithm, int k, double h);
// The factor in front of the model-output terms at t: -sigma_t (noise) or alpha_t (data).
double dpm_scale(DpmAlgorithm algorithm, const ScheduleAt& t);

// The singlestep updates and their work arrays, shared by dpm_solver and
// dpm_solver_adaptive. No memory is allocated after resize().
class DpmSinglestep {
 public:
  explicit DpmSinglestep(DpmAlgorithm algorithm) : algorithm_(algorithm) {}
  DpmAlgorithm algorithm() const { return algorithm_; }
  // Work arrays for steps of order <= max_order (default 3: every order).
  void resize(Eigen::Index rows, Eigen::Index cols, int max_order = 3);

  // One singlestep update of order 1, 2 or 3 from s to t, given eps_s = eps(x, s) (already
  // evaluated and counted): order - 1 further evaluations at the stages. Writes x_t into
  // `out`, which may be x itself. With `lower` (not x, not out), also writes the embedded
  // lower-order result from the same evaluations: order 2 -> DPM-Solver-1, order 3 ->
  // DPM-Solver-2 with r = 1/3 (its stage is the third-order step's first). `r1` is the
  // stage fraction of order 2 (default 1/2). A step to sigma_t = 0 is first order.
  void step(SolverContext& context, int order, const ScheduleAt& s, const ScheduleAt& t,
            const State& x, const State& eps_s, State& out, State* lower = nullptr,
            double r1 = 0.5);

 private:
  // m at `at` from (x, eps): eps itself, or x0 written into buf.
  const State& output(const ScheduleAt& at, const State& x, const State& eps, State& buf) const;
  DpmAlgorithm algorithm_;
  State m_s_, u1_, eps1_, m1_, u2_, eps2_, m2_;
};

class DpmSolver final : public Solver {
 public:
  struct Options {
    int order = 2;  // 1..3
    DpmMethod method = DpmMethod::multistep;
    DpmAlgorithm algorithm = DpmAlgorithm::dpmsolver_pp;
    // Singlestep only: lambda (default) or grid.
    DpmStages stages = DpmStages::lambda;
    // Multistep: the order also drops to the number of steps left, so the last step is
    // first order (more stable with few steps). Singlestep with grid stages: the order list
    // ends in a shorter run (dpm_singlestep_orders). Singlestep with lambda stages: no effect.
    bool lower_order_final = true;
    // True: 3M weights D2 as the reference code and diffusers do (g_3 D2; observed order
    // 2): the registry's coefficients "published". False: 2 g_3 D2 (order 3).
    bool reference_3m = false;
    // Multistep: the order of each step (one per grid step, each in [1, order] and at most
    // its step number + 1), in place of the rule of lower_order_final; empty: the rule.
    // Singlestep with grid stages: the order of each step, in runs 1, 2, .., k (k <= order);
    // empty: dpm_singlestep_orders(order, lower_order_final, steps).
    std::vector<int> orders = {};
    // order 1, 2 or 3 (options.hpp: the message in *error, the option in *option).
    bool is_valid(std::string* error = nullptr, std::string* option = nullptr) const;
  };

  // Throws Error unless options.is_valid().
  explicit DpmSolver(Options options);
  SolverTraits traits() const override;
  std::unique_ptr<Solver> clone() const override { return std::make_unique<DpmSolver>(options_); }
  void init(SolverContext& context, const State& x, const std::vector<double>& times) override;
  void step(SolverContext& context, std::size_t i, double t0, double t1, State& x) override;

  // The order step i of a run with `steps` steps takes, before the final-step-to-0 rule.
  // Multistep: min(order, i + 1, steps - i if lower_order_final); singlestep: order;
  // singlestep with grid stages: orders[i], or dpm_singlestep_orders(...)[i].
  int step_order(std::size_t i, std::size_t steps) const;

 private:
  void multistep(SolverContext& context, std::size_t i, const ScheduleAt& s, const ScheduleAt& t,
                 State& x);
  void grid_singlestep(SolverContext& context, std::size_t i, const ScheduleAt& s, const ScheduleAt& t,
                       State& x);
  Options options_;
  DpmSinglestep single_;
  std::size_t steps_ = 0;
  // Multistep history: m_[0] newest, at lambda_[0]; `history_` of them valid; the step
  // that ended at end_t_ (and was step end_i_) is the one the history continues. Grid
  // stages: m_[j] is the output at the current chunk's node j, whose first node chunk_s_
  // has the sample chunk_x_ and eps chunk_eps_; chunk_len_ nodes so far.
  std::array<State, 3> m_;
  std::array<double, 3> lambda_{};
  int history_ = 0;
  bool has_end_ = false;
  std::size_t end_i_ = 0;
  double end_t_ = 0;
  State eps_;
  std::vector<int> grid_orders_;
  ScheduleAt chunk_s_;
  State chunk_x_, chunk_eps_;
  int chunk_len_ = 0;
};

}  // namespace diffsde
