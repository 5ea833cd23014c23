// "Gotta Go Fast" (Jolicoeur-Martineau et al. 2021): an adaptive reverse-SDE solver with
// Euler–Maruyama and stochastic improved Euler as an embedded pair, each sample on its own
// step sizes. Rejected steps re-use the same Brownian path, so it needs brownian_tree noise.
#pragma once

#include <string>
#include <vector>

#include "diffsde/noise.hpp"
#include "diffsde/solver.hpp"
#include "diffsde/vector_field.hpp"

namespace diffsde {

struct GgfOptions {
  double rtol = 0.05;      // paper's epsilon_rel for images
  double atol = 0.0039;    // paper's epsilon_abs
  double h_init = 0.01;    // first step size of every sample
  double safety = 0.9;     // theta
  double exponent = 0.9;   // r
  std::string norm = "l2"; // l2 (scaled RMS) or linf
  long max_steps = 100000; // step attempts per sample and grid interval
  // rtol, atol >= 0 and not both 0, h_init > 0, norm l2 or linf, max_steps >= 1
  // (options.hpp: the message in *error, the option in *option).
  bool is_valid(std::string* error = nullptr, std::string* option = nullptr) const;
};

class GgfSolver final : public Solver {
 public:
  // Throws Error unless options.is_valid().
  explicit GgfSolver(GgfOptions options = {});
  SolverTraits traits() const override;
  std::unique_ptr<Solver> clone() const override { return std::make_unique<GgfSolver>(opt_); }
  void init(SolverContext& context, const State& x, const std::vector<double>& times) override;
  void step(SolverContext& context, std::size_t i, double t0, double t1, State& x) override;

 private:
  // W(t) of row r into out (one row).
  void path_value(const NoiseSource& path, Eigen::Index r, double t, StateRef out);
  void evaluate_grouped(SolverContext& context, const std::vector<Eigen::Index>& rows,
                        const std::vector<double>& times, const State& in, State& out);

  GgfOptions opt_;
  std::unique_ptr<NoiseSource::PathCache> path_cache_;  // null: value_rows
  std::vector<double> h_;              // per sample: next step size
  std::vector<double> t_, tn_;         // per sample: the attempt's start and end
  std::vector<long> attempts_;         // per sample: attempts in this interval
  std::vector<FieldAt> c0_, c1_;       // per sample: the field at t_ and tn_
  std::vector<Eigen::Index> active_;   // the samples still short of the interval's end
  State x_prev_;                       // per sample: x' of its last accepted step
  State w_, wn_all_;                   // per sample: W(t_) and W(tn_)
  State eps_all_, f0_all_, xp_all_, dw_all_;  // per sample: the attempt's work
  State xr_, eps_, f0_, xp_, xpp_, dw_, wn_;  // one sample's row (the per-sample arithmetic)
};

}  // namespace diffsde
