#include "diffsde/solvers/ggf.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include "diffsde/error.hpp"
#include "diffsde/solvers/options.hpp"
#include "diffsde/vector_field.hpp"

namespace diffsde {

bool GgfOptions::is_valid(std::string* error, std::string* option) const {
  // The tolerances are one rule; the sentence names both, the JSON path the one to change.
  const std::string tolerances = "rtol and atol must be >= 0 and not both 0";
  if (!(rtol >= 0)) return invalid_option(error, option, "rtol", "must be >= 0", tolerances);
  if (!(atol >= 0)) return invalid_option(error, option, "atol", "must be >= 0", tolerances);
  if (!(rtol > 0 || atol > 0))
    return invalid_option(error, option, "atol", "must be > 0 when rtol is 0", tolerances);
  if (!(h_init > 0)) return invalid_option(error, option, "h_init", "must be > 0");
  if (norm != "l2" && norm != "linf")
    return invalid_option(error, option, "norm", "must be l2 or linf, got '" + norm + "'",
                          "unknown norm '" + norm + "' (l2 or linf)");
  // The controller h_new = safety h E^-exponent shrinks a rejected step only with both > 0.
  if (!(safety > 0 && safety <= 1)) return invalid_option(error, option, "safety", "must be in (0, 1]");
  if (!(exponent > 0)) return invalid_option(error, option, "exponent", "must be > 0");
  if (max_steps < 1) return invalid_option(error, option, "max_steps", "must be >= 1");
  return true;
}

GgfSolver::GgfSolver(GgfOptions options) : opt_(std::move(options)) { check_options(opt_, "ggf"); }

SolverTraits GgfSolver::traits() const {
  SolverTraits t;
  t.any_schedule = true;  // only alpha, sigma, lambda and the field f, g^2
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
      context.eps_rows(static_cast<long>(r), xr_, t, eps_);
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
      context.eps_rows(static_cast<long>(r), xp_, tn, eps_);
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

}  // namespace diffsde
