#include "diffsde/solvers/ggf.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include "diffsde/error.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/vector_field.hpp"

namespace diffsde {

GgfSolver::GgfSolver(GgfOptions options) : opt_(std::move(options)) {
  if (!(opt_.rtol >= 0) || !(opt_.atol >= 0) || !(opt_.rtol > 0 || opt_.atol > 0))
    throw Error("ggf: rtol and atol must be >= 0 and not both 0");
  if (!(opt_.h_init > 0)) throw Error("ggf: h_init must be > 0");
  if (opt_.norm != "l2" && opt_.norm != "linf")
    throw Error("ggf: unknown norm '" + opt_.norm + "' (l2 or linf)");
  if (opt_.max_steps < 1) throw Error("ggf: max_steps must be >= 1");
}

SolverTraits GgfSolver::traits() const {
  SolverTraits t;
  t.name = "ggf";
  t.stochastic = true;
  t.adaptive = true;
  t.per_sample_steps = true;
  t.order = 1;  // weak
  t.evals_per_step = 2;
  t.needs_decreasing_grid = true;  // the reverse SDE
  // eps / sigma at the start of every attempt. Later attempts in an interval start where an
  // accepted step ended with sigma > 0 (a step to sigma = 0 ends the interval), so the
  // interval's start is the one to check.
  t.needs_positive_sigma_at_step_start = true;
  t.noise_use =
      "brownian_tree only: each sample's increments W(t_new) - W(t) over its own steps, queried "
      "from the tree with the sample's global index; a rejected step re-uses the same path";
  return t;
}

void GgfSolver::init(SolverContext& context, const State& x, const std::vector<double>& /*times*/) {
  if (!context.noise().is_path())
    throw Error("ggf needs the brownian_tree noise source (rejected steps must re-use the same "
                "Brownian path), got '" + context.noise().name() + "'");
  h_.assign(static_cast<std::size_t>(x.rows()), opt_.h_init);
  x_prev_ = x;  // the paper starts with x'_prev = x
  for (State* s : {&xr_, &eps_, &f0_, &xp_, &xpp_, &dw_}) s->resize(1, x.cols());
}

void GgfSolver::step(SolverContext& context, std::size_t /*i*/, double t0, double t1, State& x) {
  const NoiseSource& path = context.noise();
  const Schedule& sch = context.schedule();
  const bool linf = opt_.norm == "linf";
  const double span = t0 - t1;
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    double& h_next = h_[static_cast<std::size_t>(r)];
    xr_ = x.row(r);
    double t = t0;
    long attempts = 0;
    while (t > t1) {
      if (++attempts > opt_.max_steps)
        throw Error("ggf: sample " + std::to_string(r) + " made more than " +
                    std::to_string(opt_.max_steps) + " step attempts between t = " +
                    format_double(t0) + " and " + format_double(t1) + " (now at t = " +
                    format_double(t) + ", step " + format_double(h_next) + ")");
      double tn = t - h_next;
      if (tn < t1 + 1e-12 * span) tn = t1;  // no sliver step at the end
      const double h = tn - t;              // < 0
      const FieldAt c0 = field_at(sch, t), c1 = field_at(sch, tn);
      const double g0 = c0.g(), g1 = c1.g();
      context.eps(xr_, t, eps_);
      f0_ = reverse_sde_drift(c0, xr_, eps_);
      path.brownian_rows(t, tn, static_cast<std::uint64_t>(r), dw_);
      xp_ = xr_ + h * f0_ + g0 * dw_;  // Euler–Maruyama
      if (!(c1.sigma > 0)) {           // a step to sigma = 0: no second evaluation, EM
        xr_ = xp_;
        x_prev_.row(r) = xp_;
        t = tn;
        context.count_accepted();
        break;
      }
      context.eps(xp_, tn, eps_);
      // Stochastic improved Euler: x'' = x + h/2 (f(x, t) + f(x', t_new)) + (g0 + g1)/2 dW
      xpp_ = xr_ + (0.5 * h) * (f0_ + c1.f * xp_ + c1.sde_eps() * eps_) +
             (0.5 * (g0 + g1)) * dw_;
      const auto delta =
          (opt_.rtol * xp_.abs().max(x_prev_.row(r).abs())).max(opt_.atol);
      const auto ratio = (xp_ - xpp_) / delta;
      const double e = linf ? ratio.abs().maxCoeff() : std::sqrt(ratio.square().mean());
      if (!std::isfinite(e))
        throw Error("ggf: non-finite error estimate for sample " + std::to_string(r) +
                    " at t = " + format_double(t));
      const double used = t - tn;
      if (e <= 1) {
        xr_ = xpp_;
        x_prev_.row(r) = xp_;
        t = tn;
        context.count_accepted();
      } else {
        context.count_rejected();
      }
      // h_new = theta h E^-r (E = 0: the whole remaining interval)
      h_next = e > 0 ? opt_.safety * used * std::pow(e, -opt_.exponent) : span;
    }
    x.row(r) = xr_;
  }
}

namespace builtin {
void register_ggf(Registry<Solver>& registry) {
  registry.add(
      {"ggf",
       "Adaptive reverse-SDE solver of Jolicoeur-Martineau et al. 2021 (Gotta Go Fast): "
       "Euler-Maruyama / stochastic improved Euler embedded pair, per-sample step sizes; needs "
       "brownian_tree noise",
       {{"rtol", ParamType::number, 0.05, "relative tolerance epsilon_rel"},
        {"atol", ParamType::number, 0.0039, "absolute tolerance epsilon_abs"},
        {"h_init", ParamType::number, 0.01, "first step size of every sample"},
        {"norm", ParamType::string, "l2", "error norm: l2 (scaled RMS) or linf", {"l2", "linf"}},
        {"safety", ParamType::number, 0.9, "safety factor theta"},
        {"exponent", ParamType::number, 0.9, "step-size exponent r: h_new = theta h E^-r"},
        {"max_steps", ParamType::integer, 100000,
         "step attempts per sample and grid interval before giving up (an Error)"}},
       [](const Params& p, const BuildContext&) -> std::unique_ptr<Solver> {
         GgfOptions o;
         o.rtol = p.number("rtol");
         o.atol = p.number("atol");
         o.h_init = p.number("h_init");
         o.norm = p.string("norm");
         o.safety = p.number("safety");
         o.exponent = p.number("exponent");
         o.max_steps = p.integer("max_steps");
         return std::make_unique<GgfSolver>(o);
       },
       {nlohmann::json{{"norm", "l2"}}, nlohmann::json{{"norm", "linf"}}}});
}
}  // namespace builtin

}  // namespace diffsde
