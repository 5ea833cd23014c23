// Stochastic Runge–Kutta methods for the reverse VP-SDE, whose noise is additive:
//   dx = f(x, t) dt + g(t) dW,  f = -beta/2 x + beta eps(x, t) / sigma(t),  g = sqrt(beta(t)),
// integrated backwards in t (h = t1 - t0 < 0, dW = W(t1) - W(t0)).
//  - stochastic_heun: the stochastic Heun (improved Euler) method, strong order 1;
//  - sra: Rößler's (2010) SRA1 / SRA3 schemes for additive noise, strong order 1.5.
// See docs/solvers.md for the formulas.
#pragma once

#include <string>
#include <vector>

#include "diffsde/solver.hpp"

namespace diffsde {

class StochasticHeunSolver final : public Solver {
 public:
  SolverTraits traits() const override;
  std::unique_ptr<Solver> clone() const override {
    return std::make_unique<StochasticHeunSolver>();
  }
  void init(SolverContext& context, const State& x, const std::vector<double>& times) override;
  void step(SolverContext& context, std::size_t i, double t0, double t1, State& x) override;

 private:
  State eps_, f0_, xp_, dw_;
};

// Rößler's SRA tableau (c0, c1, A0, B0, alpha, beta1, beta2), s stages.
struct SraTableau {
  std::string name;
  int stages = 0;
  std::vector<double> c0, c1, alpha, beta1, beta2;
  std::vector<std::vector<double>> a0, b0;
  static SraTableau sra1();
  static SraTableau sra3();
};

class SraSolver final : public Solver {
 public:
  struct Options {
    std::string tableau = "sra1";  // sra1 or sra3
    // tableau sra1 or sra3 (options.hpp: the message in *error, the option in *option).
    bool is_valid(std::string* error = nullptr, std::string* option = nullptr) const;
  };
  SraSolver();  // the default Options (a default argument `= {}` would need them complete)
  // Throws Error unless options.is_valid().
  explicit SraSolver(Options options);
  explicit SraSolver(const std::string& tableau);
  SolverTraits traits() const override;
  std::unique_ptr<Solver> clone() const override {
    return std::make_unique<SraSolver>(tableau_name_);
  }
  void init(SolverContext& context, const State& x, const std::vector<double>& times) override;
  void step(SolverContext& context, std::size_t i, double t0, double t1, State& x) override;

 private:
  void increments(SolverContext& context, double t0, double t1);
  void run_tableau(SolverContext& context, const SraTableau& tab, double t0, double t1, State& x);
  std::string tableau_name_;
  SraTableau tableau_, fallback_;
  std::vector<State> f_;
  std::vector<double> g1_;  // diffusion coefficient sqrt(beta) at each stage time
  State h_, eps_, dw_, i10_, w0_, wa_, wb_;
};

}  // namespace diffsde
