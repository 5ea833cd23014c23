#include "diffsde/solvers/pc.hpp"

#include <cmath>

#include "diffsde/error.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/solvers/ddim.hpp"
#include "diffsde/solvers/euler_maruyama.hpp"
#include "diffsde/solvers/reverse_diffusion.hpp"

namespace diffsde {

std::unique_ptr<Solver> PcSolver::clone() const {
  auto predictor = predictor_->clone();
  if (!predictor) return nullptr;
  return std::make_unique<PcSolver>(std::move(predictor), options_);
}

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
  t.batch_coupled = p.batch_coupled || (options_.corrector == Corrector::langevin &&
                                        options_.step_size == StepSize::batch_norms);
  // The predictors are reverse-SDE solvers, and the corrector uses the score at t0.
  t.needs_decreasing_grid = true;
  t.needs_positive_sigma_at_step_start = true;
  if (options_.corrector == Corrector::none) {
    t.stochastic = p.stochastic;
    t.order = p.order;
    t.strong_order = p.strong_order;
    t.evals_per_step = p.evals_per_step;
    t.noise_use = p.noise_use;
    return t;
  }
  // The Langevin steps are not a discretization of the reverse SDE, so no strong order
  // is declared. Weak order: the predictor's. But the corrector's step does not shrink
  // with the grid step, so on Gaussian data the measured rate is ~1 up to a few hundred
  // steps and ~0.6 beyond (docs/solvers.md).
  t.order = p.order;
  t.evals_per_step = p.evals_per_step + options_.n_steps;
  t.noise_use = "per step: " + std::to_string(options_.n_steps) +
                " standard-normal draw(s) of shape batch x dim for the Langevin corrector at t0, "
                "then the predictor's (" + p.name + ": " + p.noise_use + ")";
  return t;
}

void PcSolver::init(SolverContext& context, const State& x, const std::vector<double>& times) {
  if (options_.corrector == Corrector::langevin) {
    g_.resize(x.rows(), x.cols());
    z_.resize(x.rows(), x.cols());
    step_.resize(x.rows());
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
    if (options_.step_size == StepSize::sigma) {
      // ||z||^2 -> d, ||g||^2 -> d / sigma^2: one step size for every sample.
      const double step = c * s0.sigma * s0.sigma;
      x += step * g_ + std::sqrt(2 * step) * z_;
      continue;
    }
    if (options_.step_size == StepSize::sample_norms) {
      for (Eigen::Index r = 0; r < x.rows(); ++r) {
        const double gg = g_.row(r).square().sum();
        const double step = gg > 0 ? c * z_.row(r).square().sum() / gg : 0.0;
        step_(r) = std::isfinite(step) ? step : 0.0;
      }
    } else {
      // score-SDE: the batch means of the per-sample L2 norms.
      double g_norm = 0, z_norm = 0;
      for (Eigen::Index r = 0; r < x.rows(); ++r) {
        g_norm += std::sqrt(g_.row(r).square().sum());
        z_norm += std::sqrt(z_.row(r).square().sum());
      }
      const double step = g_norm > 0 ? c * (z_norm / g_norm) * (z_norm / g_norm) : 0.0;
      step_.setConstant(std::isfinite(step) ? step : 0.0);
    }
    for (Eigen::Index r = 0; r < x.rows(); ++r)
      x.row(r) += step_(r) * g_.row(r) + std::sqrt(2 * step_(r)) * z_.row(r);
  }
}

void PcSolver::step(SolverContext& context, std::size_t i, double t0, double t1, State& x) {
  if (options_.corrector == Corrector::langevin) correct(context, t0, t1, x);
  predictor_->step(context, i, t0, t1, x);
}

namespace builtin {
namespace {
// The predictors pc offers, each with the defaults of its registry entry.
std::unique_ptr<Solver> make_predictor(const std::string& name) {
  if (name == "euler_maruyama") return std::make_unique<EulerMaruyamaSolver>();
  if (name == "ddpm") {
    DdimSolver::Options o;
    o.name = "ddpm";
    o.eta = 1;
    o.noise = DdimSolver::Noise::eta;  // variance "posterior"
    return std::make_unique<DdimSolver>(o);
  }
  return std::make_unique<ReverseDiffusionSolver>();
}
}  // namespace

void register_pc(Registry<Solver>& registry) {
  registry.add(
      {"pc",
       "predictor-corrector sampler of score-SDE: n_steps Langevin corrector steps at t0, then "
       "a reverse-SDE predictor step from t0 to t1",
       {{"predictor", ParamType::string, "reverse_diffusion",
         "the predictor: a reverse-SDE solver, with its default parameters",
         {"euler_maruyama", "reverse_diffusion", "ddpm"}},
        {"corrector", ParamType::string, "langevin",
         "the corrector: langevin (score-SDE's LangevinCorrector) or none", {"langevin", "none"}},
        {"snr", ParamType::number, 0.16, "signal-to-noise ratio of the Langevin step, > 0"},
        {"n_steps", ParamType::integer, 1, "corrector steps per grid step, >= 1"},
        {"step_size", ParamType::string, "sigma",
         "Langevin step size rule: sigma (2 a (snr sigma)^2), sample_norms (score-SDE's norms "
         "per sample) or batch_norms (score-SDE's batch means; depends on the batch)",
         {"sigma", "sample_norms", "batch_norms"}}},
       [](const Params& p, const BuildContext&) -> std::unique_ptr<Solver> {
         PcSolver::Options o;
         o.corrector = p.string("corrector") == "none" ? PcSolver::Corrector::none
                                                       : PcSolver::Corrector::langevin;
         const std::string step_size = p.string("step_size");
         o.step_size = step_size == "sample_norms"  ? PcSolver::StepSize::sample_norms
                       : step_size == "batch_norms" ? PcSolver::StepSize::batch_norms
                                                    : PcSolver::StepSize::sigma;
         o.snr = p.number("snr");
         if (!(o.snr > 0) || !std::isfinite(o.snr)) p.fail("snr", "must be a finite number > 0");
         const long n_steps = p.integer("n_steps");
         if (n_steps < 1 || n_steps > 1000000) p.fail("n_steps", "must be between 1 and 1000000");
         o.n_steps = static_cast<int>(n_steps);
         return std::make_unique<PcSolver>(make_predictor(p.string("predictor")), o);
       },
       {{{"predictor", "euler_maruyama"}, {"corrector", "none"}},
        {{"predictor", "reverse_diffusion"}, {"corrector", "langevin"}},
        {{"predictor", "euler_maruyama"}, {"corrector", "langevin"}, {"n_steps", 2},
         {"step_size", "sample_norms"}},
        {{"predictor", "ddpm"}, {"corrector", "langevin"}}}});
}
}  // namespace builtin

}  // namespace diffsde
