// UniPC: the unified predictor-corrector of Zhao, Bai, Rao, Zhou & Lu (2023, "UniPC: A
// Unified Predictor-Corrector Framework for Fast Sampling of Diffusion Models", NeurIPS),
// in its B(h) form ("UniPC_bh", the paper's Algorithms 2 and 3 and App. C).
//
// In lambda = log(alpha/sigma), with h = lambda_t - lambda_s, the model output m (the data
// prediction x0, or the noise prediction eps) at the current point s and at earlier nodes
// lambda_k = lambda_s + r_k h (k = 1..p-1, r_k < 0), and D_k = (m_k - m_s)/r_k:
//   data:   x_t = (sigma_t/sigma_s) x_s - alpha_t expm1(-h) m_s - alpha_t B(h) sum_k a_k D_k
//   noise:  x_t = (alpha_t/alpha_s) x_s - sigma_t expm1(h) m_s - sigma_t B(h) sum_k a_k D_k
// with hh = -h (data) or h (noise), B(hh) = hh (bh1) or expm1(hh) (bh2), and the a_k solving
// the order conditions sum_k a_k r_k^(i-1) = i! hh phi_{i+1}(hh) / B(hh), i = 1, 2, ...
// (paper eq. 7 and Theorem 3.1, with the phi functions of exponential.hpp). Where a single
// coefficient is needed (the UniP-2 predictor, the UniC-1 corrector) it is set to 1/2, the
// leading term of the exact value, as in the reference implementation; this keeps the
// order and is the only place B(h) matters, since it cancels from B(h) a wherever the
// conditions are solved exactly.
//   UniP-p, the predictor: nodes r_1..r_{p-1}, i = 1..p-1: order p.
//   UniC-p, the corrector: the same plus the model value at the predicted point x_t^p
//     (node r_p = 1, D_t = m(x_t^p) - m_s), i = 1..p: order p + 1.
// The corrected x_t^c is where the next step starts; m(x_t^p), which the corrector needed,
// is the history value for t, so the corrector costs no evaluation. The last step has no
// corrector (nothing would evaluate the model after it); its local error is O(h^(p+1)),
// which keeps the global order p + 1.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "diffsde/solver.hpp"

namespace diffsde {

enum class UniPcVariant { bh1, bh2 };
// "bh1" | "bh2"; the second throws Error on unknown names.
std::string to_string(UniPcVariant variant);
UniPcVariant unipc_variant_from_string(const std::string& s);

// The coefficients of one UniPC step of order p (1..3): `predictor` a_1..a_{p-1} for
// D_1..D_{p-1}, `corrector` a_1..a_p for D_1..D_{p-1}, D_t. r[k] (k = 1..p-1) are the
// normalized earlier nodes (r[0] unused); hh = -h (data prediction) or h (noise).
struct UniPcCoefficients {
  std::array<double, 3> predictor{};
  std::array<double, 3> corrector{};
  double b_h = 0;  // B(hh)
};
UniPcCoefficients unipc_coefficients(const std::array<double, 3>& r, int p, double hh, UniPcVariant variant);

class UniPcSolver final : public Solver {
 public:
  static constexpr int kMaxOrder = 3;
  enum class Prediction { data, noise };
  struct Options {
    int order = 2;  // 1..3: UniP-order with UniC-order, global order order + 1
    UniPcVariant variant = UniPcVariant::bh1;
    Prediction prediction = Prediction::data;
    // Lower the order of the final steps: step i of N uses order min(order, N - i) (as the
    // reference implementation); the last step is then first order, and the global order 2.
    bool lower_order_final = true;
    // The predictor order of each step, one per grid step, each in [1, order] and at most
    // its step number + 1; replaces lower_order_final (empty: not given).
    std::vector<int> orders;
    // After the last step's predictor, one more evaluation at the grid's end and the
    // corrector there, as diffusers' UniPC does on its zero-length last step of Karras-type
    // sigmas ending at sigma_min (no effect on a last step to sigma = 0).
    bool final_corrector = false;
    // Steps whose result the corrector leaves as predicted (diffusers' disable_corrector).
    std::vector<int> disable_corrector;
    // order 1, 2 or 3; orders and disable_corrector as above (options.hpp: the message in
    // *error, the option in *option).
    bool is_valid(std::string* error = nullptr, std::string* option = nullptr) const;
  };

  // Throws Error unless options.is_valid().
  explicit UniPcSolver(Options options);
  SolverTraits traits() const override;
  std::unique_ptr<Solver> clone() const override { return std::make_unique<UniPcSolver>(options_); }
  void init(SolverContext& context, const State& x, const std::vector<double>& times) override;
  void step(SolverContext& context, std::size_t i, double t0, double t1, State& x) override;

 private:
  // Model output (x0 or eps) from eps at (x, t).
  void to_model_output(const ScheduleAt& at, const State& x, State& m) const;

  Options options_;
  // m_[0] at the current point, then earlier ones; the slot after the last in use takes
  // the value at the new point until the corrector is done. lambda_ alongside.
  std::array<State, kMaxOrder + 1> m_;
  std::array<double, kMaxOrder + 1> lambda_{};
  int count_ = 0;
  std::size_t steps_ = 0;
  State base_;  // the first-order part of the step, shared by predictor and corrector
};

// "data" | "noise"; the second throws Error on unknown names.
std::string to_string(UniPcSolver::Prediction prediction);
UniPcSolver::Prediction unipc_prediction_from_string(const std::string& s);

}  // namespace diffsde
