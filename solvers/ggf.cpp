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
  const auto rows = static_cast<std::size_t>(x.rows());
  h_.assign(rows, opt_.h_init);
  t_.assign(rows, 0.0);
  tn_.assign(rows, 0.0);
  attempts_.assign(rows, 0);
  active_.reserve(rows);
  x_prev_ = x;  // the paper starts with x'_prev = x
  for (State* s : {&xr_, &eps_, &f0_, &xp_, &xpp_, &dw_, &wn_}) s->resize(1, x.cols());
  // The path's cache of each sample's last descent where it fits in 64 MB (about 2.6
  // bytes x depth x dim a sample and more; the 2-D mixture at depth 20: 1 KB a sample):
  // each W then costs the tree levels below where it parts from the last one. The values
  // are those of value_rows either way.
  const double cache_bytes = static_cast<double>(x.rows()) * (context.noise().lattice().depth + 1) *
                             (16.0 * static_cast<double>(x.cols()) + 24.0);
  path_cache_ = cache_bytes <= 64.0 * (1 << 20)
                    ? context.noise().path_cache(0, static_cast<long>(x.rows()), static_cast<int>(x.cols()))
                    : nullptr;
  c0_.resize(rows);
  c1_.resize(rows);
  for (State* s : {&w_, &wn_all_, &eps_all_, &f0_all_, &xp_all_, &dw_all_}) s->resize(x.rows(), x.cols());
}

void GgfSolver::path_value(const NoiseSource& path, Eigen::Index r, double t, StateRef out) {
  if (path_cache_ != nullptr)
    path_cache_->value(static_cast<long>(r), t, out.data());  // out is one contiguous row
  else
    path.value_rows(t, static_cast<std::uint64_t>(r), out);
}

// Calls the model once per run of consecutive rows in `rows` (ascending) whose times
// `times[r]` are equal, on those rows of `in`, writing the same rows of `out`. Each
// sample's evaluation counts as one (NFE summed over the samples).
void GgfSolver::evaluate_grouped(SolverContext& context, const std::vector<Eigen::Index>& rows,
                                 const std::vector<double>& times, const State& in, State& out) {
  std::size_t i = 0;
  while (i < rows.size()) {
    const Eigen::Index r0 = rows[i];
    const double t = times[static_cast<std::size_t>(r0)];
    std::size_t j = i + 1;
    while (j < rows.size() && rows[j] == rows[j - 1] + 1 && times[static_cast<std::size_t>(rows[j])] == t) ++j;
    const Eigen::Index n = static_cast<Eigen::Index>(j - i);
    context.eps_rows(static_cast<long>(r0), in.middleRows(r0, n), t, out.middleRows(r0, n), static_cast<long>(n));
    i = j;
  }
}

// Every sample takes its own adaptive steps. They advance in rounds of one step attempt
// each, so that the samples whose attempts start (and end) at the same time share one
// model call; each sample's arithmetic is the per-sample recipe below, on its own row, so
// its result does not depend on the others (nor on the batch, threads or grouping).
void GgfSolver::step(SolverContext& context, std::size_t /*i*/, double t0, double t1, State& x) {
  const NoiseSource& path = context.noise();
  const Schedule& sch = context.schedule();
  const bool linf = opt_.norm == "linf";
  const double span = t0 - t1;
  active_.clear();
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    const auto k = static_cast<std::size_t>(r);
    t_[k] = t0;
    attempts_[k] = 0;
    active_.push_back(r);
    // W(t) of the attempt's start; each increment is W(t_new) - W(t), as brownian_rows gives.
    path_value(path, r, t0, w_.row(r));
  }
  while (!active_.empty()) {
    for (const Eigen::Index r : active_) {
      const auto k = static_cast<std::size_t>(r);
      if (++attempts_[k] > opt_.max_steps)
        throw Error("ggf: sample " + std::to_string(r) + " made more than " + std::to_string(opt_.max_steps) +
                    " step attempts between t = " + format_double(t0) + " and " + format_double(t1) +
                    " (now at t = " + format_double(t_[k]) + ", step " + format_double(h_[k]) + ")");
      double tn = t_[k] - h_[k];
      if (tn < t1 + 1e-12 * span) tn = t1;  // no sliver step at the end
      tn_[k] = tn;
    }
    // eps at each attempt's start, then the Euler–Maruyama step x'.
    evaluate_grouped(context, active_, t_, x, eps_all_);
    std::size_t kept = 0;
    for (const Eigen::Index r : active_) {
      const auto k = static_cast<std::size_t>(r);
      const double t = t_[k], tn = tn_[k];
      const double h = tn - t;  // < 0
      const FieldAt c0 = field_at(sch, t), c1 = field_at(sch, tn);
      const double g0 = c0.g();
      xr_ = x.row(r);
      eps_ = eps_all_.row(r);
      f0_ = reverse_sde_drift(c0, xr_, eps_);
      path_value(path, r, tn, wn_);
      dw_ = wn_ - w_.row(r);  // brownian_rows(t, tn) bit for bit
      xp_ = xr_ + h * f0_ + g0 * dw_;  // Euler–Maruyama
      if (!(c1.sigma > 0)) {           // a step to sigma = 0: no second evaluation, EM
        x.row(r) = xp_;
        x_prev_.row(r) = xp_;
        t_[k] = tn;
        context.count_accepted();
        continue;  // this sample is done with the interval
      }
      c0_[k] = c0;
      c1_[k] = c1;
      wn_all_.row(r) = wn_;
      f0_all_.row(r) = f0_;
      xp_all_.row(r) = xp_;
      dw_all_.row(r) = dw_;
      active_[kept++] = r;
    }
    active_.resize(kept);
    // eps at each attempt's end, then stochastic improved Euler and the error estimate.
    evaluate_grouped(context, active_, tn_, xp_all_, eps_all_);
    kept = 0;
    for (const Eigen::Index r : active_) {
      const auto k = static_cast<std::size_t>(r);
      const double t = t_[k], tn = tn_[k];
      const double h = tn - t;
      const FieldAt& c0 = c0_[k];
      const FieldAt& c1 = c1_[k];
      const double g0 = c0.g(), g1 = c1.g();
      xr_ = x.row(r);
      eps_ = eps_all_.row(r);
      f0_ = f0_all_.row(r);
      xp_ = xp_all_.row(r);
      dw_ = dw_all_.row(r);
      // Stochastic improved Euler: x'' = x + h/2 (f(x, t) + f(x', t_new)) + (g0 + g1)/2 dW
      xpp_ = xr_ + (0.5 * h) * (f0_ + c1.f * xp_ + c1.sde_eps() * eps_) + (0.5 * (g0 + g1)) * dw_;
      const auto delta = (opt_.rtol * xp_.abs().max(x_prev_.row(r).abs())).max(opt_.atol);
      const auto ratio = (xp_ - xpp_) / delta;
      const double e = linf ? ratio.abs().maxCoeff() : std::sqrt(ratio.square().mean());
      if (!std::isfinite(e))
        throw Error("ggf: non-finite error estimate for sample " + std::to_string(r) + " at t = " + format_double(t));
      const double used = t - tn;
      if (e <= 1) {
        x.row(r) = xpp_;
        x_prev_.row(r) = xp_;
        t_[k] = tn;
        w_.row(r) = wn_all_.row(r);  // W at the new start
        context.count_accepted();
      } else {
        context.count_rejected();
      }
      // h_new = theta h E^-r (E = 0: the whole remaining interval)
      h_[k] = e > 0 ? opt_.safety * used * std::pow(e, -opt_.exponent) : span;
      if (t_[k] > t1) active_[kept++] = r;
    }
    active_.resize(kept);
  }
}

}  // namespace diffsde
