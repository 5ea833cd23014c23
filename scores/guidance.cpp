// Conditioning, classifier-free guidance and x0 thresholding as layers over a model.
#include "diffsde/scores/guidance.hpp"

#include <algorithm>
#include <limits>
#include <cmath>
#include <vector>

#include "diffsde/error.hpp"
#include "diffsde/grid.hpp"

namespace diffsde {

namespace {

void check_fits(const Model& model, const Conditioning& cond, long batch, const char* what) {
  std::string input;
  const std::string message = check_conditioning(model.inputs(), cond, batch, &input);
  if (!message.empty())
    throw Error(std::string(what) + (input.empty() ? "" : " input '" + input + "'") + ": " + message);
}

// The unbiased standard deviation of a row's values (torch.std's default).
double row_std(const double* v, long n) {
  double mean = 0;
  for (long j = 0; j < n; ++j) mean += v[j];
  mean /= static_cast<double>(n);
  double ss = 0;
  for (long j = 0; j < n; ++j) ss += (v[j] - mean) * (v[j] - mean);
  return std::sqrt(ss / static_cast<double>(n - 1));
}

// The rows of a call as the wrapped model sees them: rows.first_sample is the call's first
// row in the run's batch, so it is both the input row and, offset by the run's first
// sample, the global sample index.
ModelRows bind_rows(const ModelRows& rows, std::uint64_t first_sample, const Conditioning& inputs) {
  ModelRows out;
  out.first_sample = first_sample + rows.first_sample;
  out.period = rows.period;
  out.repeat = rows.repeat;
  out.inputs = inputs.empty() ? nullptr : &inputs;
  out.input_row0 = static_cast<long>(rows.first_sample);
  return out;
}

// What both GuidedModel constructors check first.
void check_guided(const std::shared_ptr<const Model>& model, const std::shared_ptr<const Schedule>& schedule,
                  const GuidanceOptions& options) {
  if (!model) throw Error("GuidedModel: no model given");
  if (!schedule) throw Error("GuidedModel: no schedule given");
  std::string error, option;
  if (!options.is_valid(&error, &option)) throw Error("guidance " + option + ": " + error);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// ConditionedModel

ConditionedModel::ConditionedModel(std::shared_ptr<const Model> model, std::shared_ptr<const Conditioning> cond,
                                   long batch, std::uint64_t first_sample)
    : model_(std::move(model)), cond_(std::move(cond)), first_sample_(first_sample) {
  if (!model_) throw Error("ConditionedModel: no model given");
  if (!cond_) cond_ = std::make_shared<Conditioning>();
  check_fits(*model_, *cond_, batch, "conditioning");
}

ModelRows ConditionedModel::bound(const ModelRows& rows) const { return bind_rows(rows, first_sample_, *cond_); }

void ConditionedModel::eps(const ConstStateRef& x, double t, StateRef out) const { eps_rows(x, t, ModelRows{}, out); }

void ConditionedModel::x0_rows(const ConstStateRef& x, double t, const ModelRows& rows, StateRef out) const {
  model_->x0_rows(x, t, bound(rows), out);
}

void ConditionedModel::eps_rows(const ConstStateRef& x, double t, const ModelRows& rows, StateRef out) const {
  model_->eps_rows(x, t, bound(rows), out);
}

void ConditionedModel::eps_jvp(const ConstStateRef& x, double t, const ConstStateRef& v, StateRef eps_out,
                               StateRef jvp_out) const {
  eps_jvp_rows(x, t, ModelRows{}, v, eps_out, jvp_out);
}

void ConditionedModel::eps_jvp_rows(const ConstStateRef& x, double t, const ModelRows& rows, const ConstStateRef& v,
                                    StateRef eps_out, StateRef jvp_out) const {
  model_->eps_jvp_rows(x, t, bound(rows), v, eps_out, jvp_out);
}

// ---------------------------------------------------------------------------------------
// GuidedModel

bool GuidanceOptions::is_valid(std::string* error, std::string* option) const {
  auto fail = [&](const char* name, const std::string& message) {
    if (error != nullptr) *error = message;
    if (option != nullptr) *option = name;
    return false;
  };
  if (!std::isfinite(scale)) return fail("scale", "must be finite, got " + format_double(scale));
  if (std::isnan(t_lo) || std::isnan(t_hi) || !(t_lo <= t_hi))
    return fail("interval", "must be [t_lo, t_hi] with t_lo <= t_hi, got [" + format_double(t_lo) + ", " +
                                format_double(t_hi) + "]");
  if (!(rescale >= 0 && rescale <= 1)) return fail("rescale", "must be between 0 and 1, got " + format_double(rescale));
  if (space == Prediction::score) return fail("space", "must be eps, x0, v or velocity");
  return true;
}

GuidedModel::GuidedModel(std::shared_ptr<const Model> model, std::shared_ptr<const Schedule> schedule,
                         std::shared_ptr<const Conditioning> cond, std::shared_ptr<const Conditioning> uncond,
                         GuidanceOptions options, long batch, std::uint64_t first_sample)
    : model_(std::move(model)),
      schedule_(std::move(schedule)),
      cond_(std::move(cond)),
      uncond_(std::move(uncond)),
      options_(options),
      first_sample_(first_sample) {
  check_guided(model_, schedule_, options_);
  if (model_->inputs().empty())
    throw Error("guidance needs a conditional model; model '" + model_->name() + "' takes no inputs");
  if (!cond_) cond_ = std::make_shared<Conditioning>();
  if (!uncond_) uncond_ = std::make_shared<Conditioning>(null_conditioning(model_->inputs(), *cond_));
  check_fits(*model_, *cond_, batch, "conditioning");
  check_fits(*model_, *uncond_, batch, "unconditional");
  for (const auto& c : cond_->inputs())
    if (uncond_->find(c.name()) == nullptr)
      throw Error("unconditional input '" + c.name() + "' is missing (every conditional input needs one)");
  for (const auto& u : uncond_->inputs())
    if (cond_->find(u.name()) == nullptr)
      throw Error("unconditional input '" + u.name() + "' has no conditional counterpart");
}

GuidedModel::GuidedModel(std::shared_ptr<const Model> conditional, std::shared_ptr<const Model> unconditional,
                         std::shared_ptr<const Schedule> schedule, std::shared_ptr<const Conditioning> cond,
                         GuidanceOptions options, long batch, std::uint64_t first_sample)
    : model_(std::move(conditional)),
      unconditional_(std::move(unconditional)),
      schedule_(std::move(schedule)),
      cond_(std::move(cond)),
      uncond_(std::make_shared<Conditioning>()),
      options_(options),
      first_sample_(first_sample) {
  if (!unconditional_) throw Error("GuidedModel: no unconditional model given");
  check_guided(model_, schedule_, options_);
  options_.batched = false;
  if (!cond_) cond_ = std::make_shared<Conditioning>();
  check_fits(*model_, *cond_, batch, "conditioning");
  check_fits(*unconditional_, *uncond_, batch, "unconditional model");
  if (unconditional_->dim() != model_->dim())
    throw Error("guidance: the unconditional model has dimension " + std::to_string(unconditional_->dim()) +
                ", the conditional one " + std::to_string(model_->dim()));
}

bool GuidedModel::active(double t) const { return options_.scale != 1.0 && t >= options_.t_lo && t <= options_.t_hi; }

long GuidedModel::network_rows(long rows, double t) const {
  if (unconditional_) {  // two networks
    if (!active(t)) return model_->network_rows(rows, t);
    if (options_.scale == 0.0 && options_.rescale == 0.0) return unconditional_->network_rows(rows, t);
    return model_->network_rows(rows, t) + unconditional_->network_rows(rows, t);
  }
  const bool both = active(t) && !(options_.scale == 0.0 && options_.rescale == 0.0);
  return model_->network_rows(both ? 2 * rows : rows, t);
}

ModelRows GuidedModel::rows_of(const Conditioning& c, const ModelRows& rows) const {
  return bind_rows(rows, first_sample_, c);
}

std::shared_ptr<const Conditioning> GuidedModel::stacked(long first, long count) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto key = std::make_pair(first, count);
  auto it = stacked_.find(key);
  if (it != stacked_.end()) return it->second;
  auto made = std::make_shared<const Conditioning>(Conditioning::stack(*cond_, first, *uncond_, first, count));
  // Row blocks are few and fixed for a run; a solver that calls row by row would make one
  // per row, so keep a bounded number.
  if (stacked_.size() < 64) stacked_.emplace(key, made);
  return made;
}

void GuidedModel::eps(const ConstStateRef& x, double t, StateRef out) const { eps_rows(x, t, ModelRows{}, out); }

void GuidedModel::x0_rows(const ConstStateRef& x, double t, const ModelRows& rows, StateRef out) const {
  if (!active(t)) {
    model_->x0_rows(x, t, rows_of(*cond_, rows), out);
    return;
  }
  State xc(x.rows(), x.cols());
  model_->x0_rows(x, t, rows_of(*cond_, rows), xc);
  unconditional_model().x0_rows(x, t, rows_of(*uncond_, rows), out);
  out = out + options_.scale * (xc - out);
}

void GuidedModel::eps_rows(const ConstStateRef& x, double t, const ModelRows& rows, StateRef out) const {
  const double s = options_.scale;
  if (!active(t)) {
    model_->eps_rows(x, t, rows_of(*cond_, rows), out);
    return;
  }
  if (s == 0.0 && options_.rescale == 0.0) {  // the unconditional model alone
    unconditional_model().eps_rows(x, t, rows_of(*uncond_, rows), out);
    return;
  }
  const Eigen::Index n = x.rows(), d = x.cols();
  // Work arrays per call: the model may be called from several threads at once, and a
  // guided model may wrap another.
  State ec(n, d), eu(n, d);
  if (options_.batched) {
    State x2(2 * n, d), e2(2 * n, d);
    x2.topRows(n) = x;
    x2.bottomRows(n) = x;
    const auto inputs = stacked(static_cast<long>(rows.first_sample), static_cast<long>(n));
    ModelRows r2;
    r2.first_sample = first_sample_ + rows.first_sample;
    r2.period = static_cast<long>(n);
    r2.repeat = rows.repeat;
    r2.inputs = inputs->empty() ? nullptr : inputs.get();
    r2.input_row0 = 0;
    model_->eps_rows(x2, t, r2, e2);
    ec = e2.topRows(n);
    eu = e2.bottomRows(n);
  } else {
    model_->eps_rows(x, t, rows_of(*cond_, rows), ec);
    unconditional_model().eps_rows(x, t, rows_of(*uncond_, rows), eu);
  }
  ScheduleAt at;
  if (options_.space != Prediction::eps) {
    at = schedule_->at(t);
    if (options_.space == Prediction::x0) {
      x0_from_eps(x, ec, at.alpha, at.sigma, ec);
      x0_from_eps(x, eu, at.alpha, at.sigma, eu);
    } else if (options_.space == Prediction::v) {
      v_from_eps(x, ec, at.alpha, at.sigma, ec);
      v_from_eps(x, eu, at.alpha, at.sigma, eu);
    } else {
      velocity_from_eps(x, ec, at.alpha, at.sigma, ec);
      velocity_from_eps(x, eu, at.alpha, at.sigma, eu);
    }
  }
  out = eu + s * (ec - eu);
  if (options_.rescale > 0.0) {
    const double phi = options_.rescale;
    for (Eigen::Index r = 0; r < n; ++r) {
      const double ratio = row_std(&ec(r, 0), static_cast<long>(d)) / row_std(&out(r, 0), static_cast<long>(d));
      out.row(r) = phi * (out.row(r) * ratio) + (1.0 - phi) * out.row(r);
    }
  }
  if (options_.space == Prediction::x0) eps_from_x0(x, out, at.alpha, at.sigma, out);
  if (options_.space == Prediction::v) eps_from_v(x, out, at.alpha, at.sigma, out);
  if (options_.space == Prediction::velocity) eps_from_velocity(x, out, at.alpha, at.sigma, out);
}

void GuidedModel::eps_jvp(const ConstStateRef& x, double t, const ConstStateRef& v, StateRef eps_out,
                          StateRef jvp_out) const {
  eps_jvp_rows(x, t, ModelRows{}, v, eps_out, jvp_out);
}

void GuidedModel::eps_jvp_rows(const ConstStateRef& x, double t, const ModelRows& rows, const ConstStateRef& v,
                               StateRef eps_out, StateRef jvp_out) const {
  if (options_.rescale != 0.0)
    throw Error("guidance with rescale has no Jacobian-vector product (the rescale is not differentiated)");
  if (!active(t)) {
    model_->eps_jvp_rows(x, t, rows_of(*cond_, rows), v, eps_out, jvp_out);
    return;
  }
  const double s = options_.scale;
  State ec(x.rows(), x.cols()), eu(x.rows(), x.cols()), jc(x.rows(), x.cols()), ju(x.rows(), x.cols());
  model_->eps_jvp_rows(x, t, rows_of(*cond_, rows), v, ec, jc);
  unconditional_model().eps_jvp_rows(x, t, rows_of(*uncond_, rows), v, eu, ju);
  eps_out = eu + s * (ec - eu);
  jvp_out = ju + s * (jc - ju);
}

// ---------------------------------------------------------------------------------------
// Thresholding

bool ThresholdOptions::is_valid(std::string* error, std::string* option) const {
  auto fail = [&](const char* name, const std::string& message) {
    if (error != nullptr) *error = message;
    if (option != nullptr) *option = name;
    return false;
  };
  if (kind == Kind::dynamic) {
    if (!(ratio > 0 && ratio <= 1)) return fail("ratio", "must be in (0, 1], got " + format_double(ratio));
    if (!(max >= 1) || !std::isfinite(max))
      return fail("max", "must be finite and >= 1 (the threshold s is clamped to [1, max]), got " + format_double(max));
  } else {
    if (!std::isfinite(lo) || !std::isfinite(hi) || !(lo < hi))
      return fail("clip", "must be [lo, hi] with finite lo < hi, got [" + format_double(lo) + ", " + format_double(hi) + "]");
  }
  return true;
}

void threshold_x0(const ThresholdOptions& o, double* x0, long n) {
  if (o.kind == ThresholdOptions::Kind::clip) {
    for (long j = 0; j < n; ++j) x0[j] = std::min(std::max(x0[j], o.lo), o.hi);
    return;
  }
  // The ratio quantile of |x0| with linear interpolation between the order statistics at
  // floor and ceil of ratio (n - 1), as torch.quantile (its lerp: from the lower end for
  // weights below 1/2, from the upper end otherwise).
  thread_local std::vector<double> a;
  a.resize(static_cast<std::size_t>(n));
  for (long j = 0; j < n; ++j) a[static_cast<std::size_t>(j)] = std::fabs(x0[j]);
  const double rank = o.ratio * static_cast<double>(n - 1);
  const auto below = static_cast<std::size_t>(std::floor(rank));
  const auto above = static_cast<std::size_t>(std::ceil(rank));
  std::nth_element(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(above), a.end());
  const double hi = a[above];
  double lo = hi;
  if (below != above) lo = *std::max_element(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(above));
  const double w = rank - static_cast<double>(below);
  const double q = w < 0.5 ? lo + w * (hi - lo) : hi - (hi - lo) * (1.0 - w);
  const double s = std::min(std::max(q, 1.0), o.max);
  for (long j = 0; j < n; ++j) x0[j] = std::min(std::max(x0[j], -s), s) / s;
}

ThresholdedModel::ThresholdedModel(std::shared_ptr<const Model> model, std::shared_ptr<const Schedule> schedule,
                                   ThresholdOptions options)
    : model_(std::move(model)), schedule_(std::move(schedule)), options_(options) {
  if (!model_) throw Error("ThresholdedModel: no model given");
  if (!schedule_) throw Error("ThresholdedModel: no schedule given");
  std::string error, option;
  if (!options_.is_valid(&error, &option)) throw Error("thresholding " + option + ": " + error);
}

void ThresholdedModel::apply(const ConstStateRef& x, double t, StateRef eps) const {
  const ScheduleAt at = schedule_->at(t);
  if (!(at.sigma > 0) || !(at.alpha > 0)) return;
  const Eigen::Index d = x.cols();
  thread_local std::vector<double> x0;
  x0.resize(static_cast<std::size_t>(d));
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    for (Eigen::Index j = 0; j < d; ++j) x0[static_cast<std::size_t>(j)] = (x(r, j) - at.sigma * eps(r, j)) / at.alpha;
    threshold_x0(options_, x0.data(), static_cast<long>(d));
    for (Eigen::Index j = 0; j < d; ++j) eps(r, j) = (x(r, j) - at.alpha * x0[static_cast<std::size_t>(j)]) / at.sigma;
  }
}

void ThresholdedModel::eps(const ConstStateRef& x, double t, StateRef out) const {
  model_->eps(x, t, out);
  apply(x, t, out);
}

void ThresholdedModel::x0_rows(const ConstStateRef& x, double t, const ModelRows& rows, StateRef out) const {
  model_->x0_rows(x, t, rows, out);
  // Rows of a StateRef are contiguous (row-major, unit inner stride).
  for (Eigen::Index r = 0; r < out.rows(); ++r) threshold_x0(options_, &out(r, 0), static_cast<long>(out.cols()));
}

void ThresholdedModel::eps_rows(const ConstStateRef& x, double t, const ModelRows& rows, StateRef out) const {
  model_->eps_rows(x, t, rows, out);
  apply(x, t, out);
}

// ---------------------------------------------------------------------------
// RetimedModel

RetimedModel::RetimedModel(std::shared_ptr<const Model> model, std::shared_ptr<const Schedule> schedule,
                           const std::vector<double>& times, const std::vector<double>& model_times)
    : model_(std::move(model)), schedule_(std::move(schedule)) {
  if (times.size() != model_times.size())
    throw Error("RetimedModel: " + std::to_string(times.size()) + " times but " + std::to_string(model_times.size()) +
                " network times");
  for (std::size_t i = 0; i < times.size(); ++i) map_.emplace_back(times[i], model_times[i]);
  std::sort(map_.begin(), map_.end());
  if (const auto* discrete = dynamic_cast<const VpDiscreteSchedule*>(schedule_.get()))
    log_sigmas_ = diffusers_log_sigmas(*discrete);
}

double RetimedModel::network_time(double t) const {
  const auto it = std::lower_bound(map_.begin(), map_.end(), std::make_pair(t, -std::numeric_limits<double>::infinity()));
  if (it != map_.end() && it->first == t) return it->second;
  if (log_sigmas_.size() < 2 || !(t > 0)) return t;
  // diffusers' fractional timestep of the noise level sigma/alpha at t.
  const double tau = diffusers_timestep(std::exp(-schedule_->lambda(t)), log_sigmas_);
  return (tau + 1.0) / static_cast<double>(log_sigmas_.size());
}

void RetimedModel::eps(const ConstStateRef& x, double t, StateRef out) const { eps_rows(x, t, ModelRows{}, out); }

void RetimedModel::x0_rows(const ConstStateRef& x, double t, const ModelRows& rows, StateRef out) const {
  const double tn = network_time(t);
  if (tn != t)
    throw Error("model '" + name() + "': a data prediction at t = " + format_double(t) +
                " where the network runs at another time (" + format_double(tn) + ") is not supported");
  model_->x0_rows(x, t, rows, out);
}

void RetimedModel::eps_rows(const ConstStateRef& x, double t, const ModelRows& rows, StateRef out) const {
  const double tn = network_time(t);
  if (tn == t)
    model_->eps_rows(x, t, rows, out);
  else
    model_->eps_rows_retimed(x, t, tn, rows, out);
}

}  // namespace diffsde
