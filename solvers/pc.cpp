#include "diffsde/solvers/pc.hpp"

#include <cmath>

#include "diffsde/error.hpp"
#include "diffsde/registry.hpp"

namespace diffsde {

PcSolver::PcSolver(std::unique_ptr<Solver> predictor, Options options)
    : predictor_(std::move(predictor)), options_(options) {
  if (!predictor_) throw Error("pc: needs a predictor");
  if (!(options_.snr > 0) || !std::isfinite(options_.snr))
    throw Error("pc: snr must be a finite number > 0");
  if (options_.n_steps < 1) throw Error("pc: n_steps must be >= 1");
}

SolverTraits PcSolver::traits() const {
  const SolverTraits p = predictor_->traits();
  SolverTraits t;
  t.name = "pc";
  t.stochastic = true;
  if (options_.corrector == Corrector::none) {
    t.stochastic = p.stochastic;
    t.order = p.order;
    t.strong_order = p.strong_order;
    t.evals_per_step = p.evals_per_step;
    t.noise_use = p.noise_use;
    return t;
  }
  // The Langevin steps are not a discretization of the reverse SDE, so no strong order
  // is declared; the weak order is the predictor's first order.
  t.order = 1;
  t.evals_per_step = p.evals_per_step + options_.n_steps;
  t.noise_use = "per step: " + std::to_string(options_.n_steps) +
                " standard-normal draw(s) of shape batch x dim for the Langevin corrector at t0, "
                "then the predictor's (" + p.name + ": " + p.noise_use + ")";
  return t;
}

void PcSolver::init(SolverContext& context, const State& x, const std::vector<double>& times) {
  for (std::size_t i = 0; i + 1 < times.size(); ++i)
    if (!(times[i + 1] < times[i]))
      throw Error("pc integrates the reverse SDE: the grid must decrease in t");
  if (options_.corrector == Corrector::langevin) {
    g_.resize(x.rows(), x.cols());
    z_.resize(x.rows(), x.cols());
  }
  predictor_->init(context, x, times);
}

void PcSolver::correct(SolverContext& context, double t0, double t1, State& x) {
  const ScheduleAt s0 = context.schedule().at(t0);
  if (!(s0.sigma > 0)) throw Error("pc: the Langevin corrector cannot run at sigma = 0");
  // a = 1 - b = alpha_bar(t0) / alpha_bar(t1), score-SDE's alpha_i = 1 - beta_i.
  const double a = std::exp(s0.log_alpha_bar - context.schedule().log_alpha_bar(t1));
  const double c = 2 * a * options_.snr * options_.snr;
  for (int k = 0; k < options_.n_steps; ++k) {
    context.eps(x, t0, g_);
    g_ *= -1 / s0.sigma;  // score
    context.noise().normal(z_);
    for (Eigen::Index r = 0; r < x.rows(); ++r) {
      // Per-sample norms (score-SDE: batch means), so samples stay independent.
      const double gg = g_.row(r).square().sum();
      const double zz = z_.row(r).square().sum();
      double step = c * zz / gg;
      if (!(gg > 0) || !std::isfinite(step)) step = 0;
      x.row(r) += step * g_.row(r) + std::sqrt(2 * step) * z_.row(r);
    }
  }
}

void PcSolver::step(SolverContext& context, std::size_t i, double t0, double t1, State& x) {
  if (options_.corrector == Corrector::langevin) correct(context, t0, t1, x);
  predictor_->step(context, i, t0, t1, x);
}

namespace builtin {
void register_pc(Registry<Solver>& registry) {
  registry.add(
      {"pc",
       "predictor-corrector sampler of score-SDE: Langevin corrector steps at t0 (per-sample "
       "step sizes), then a reverse-SDE predictor step from t0 to t1",
       {{"predictor", ParamType::string, "reverse_diffusion", "the predictor solver",
         {"euler_maruyama", "reverse_diffusion", "ddpm"}},
        {"corrector", ParamType::string, "langevin", "the corrector", {"langevin", "none"}},
        {"snr", ParamType::number, 0.16, "signal-to-noise ratio r of the Langevin step, > 0"},
        {"n_steps", ParamType::integer, 1, "corrector steps per grid step, >= 1"}},
       [](const Params& p, const BuildContext& context) -> std::unique_ptr<Solver> {
         PcSolver::Options o;
         o.corrector = p.string("corrector") == "none" ? PcSolver::Corrector::none
                                                       : PcSolver::Corrector::langevin;
         o.snr = p.number("snr");
         if (!(o.snr > 0) || !std::isfinite(o.snr)) p.fail("snr", "must be a finite number > 0");
         const long n_steps = p.integer("n_steps");
         if (n_steps < 1 || n_steps > 1000000) p.fail("n_steps", "must be between 1 and 1000000");
         o.n_steps = static_cast<int>(n_steps);
         // The predictor comes from the global registry with its defaults.
         auto predictor = solver_registry().create(nlohmann::json{{"name", p.string("predictor")}},
                                                   p.path_of("predictor"), context);
         return std::make_unique<PcSolver>(std::move(predictor), o);
       },
       {{{"predictor", "euler_maruyama"}, {"corrector", "none"}},
        {{"predictor", "reverse_diffusion"}, {"corrector", "langevin"}},
        {{"predictor", "euler_maruyama"}, {"corrector", "langevin"}, {"n_steps", 2}},
        {{"predictor", "ddpm"}, {"corrector", "langevin"}}}});
}
}  // namespace builtin

}  // namespace diffsde
