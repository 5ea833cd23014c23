// Layers over any model: per-sample conditioning bound to a run, classifier-free guidance,
// and thresholding of the predicted x0. Each is a Model, so every solver uses it as is:
//
//   model -> ConditionedModel (the run's inputs) or GuidedModel (inputs, unconditional
//   inputs, guidance) -> ThresholdedModel (x0 clipped, eps recomputed from it)
//
// The row mapping: the driver calls a model with ModelRows whose first_sample is the index
// in the run's batch of the call's first row (SolverContext). These layers read a run's
// conditioning at those rows and pass the model the global sample indices (first_sample
// of the run + that index), so the same samples come out whatever the split.
#pragma once

#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "diffsde/conditioning.hpp"
#include "diffsde/model.hpp"
#include "diffsde/parameterization.hpp"
#include "diffsde/schedule.hpp"

namespace diffsde {

// A model with a run's conditioning bound: row i of the run gets row i of every input
// (or the shared row). inputs() is empty: nothing more is to be given.
class ConditionedModel final : public Model {
 public:
  // `cond` is checked against model->inputs() for a run of `batch` samples (Error naming
  // the input otherwise). first_sample: the run's first global sample index.
  ConditionedModel(std::shared_ptr<const Model> model, std::shared_ptr<const Conditioning> cond,
                   long batch, std::uint64_t first_sample = 0);
  std::string name() const override { return model_->name(); }
  int dim() const override { return model_->dim(); }
  std::vector<int> shape() const override { return model_->shape(); }
  void eps(const ConstStateRef& x, double t, StateRef out) const override;
  void eps_rows(const ConstStateRef& x, double t, const ModelRows& rows, StateRef out) const override;
  long network_rows(long rows, double t) const override { return model_->network_rows(rows, t); }
  bool has_jvp() const override { return model_->has_jvp(); }
  void eps_jvp(const ConstStateRef& x, double t, const ConstStateRef& v, StateRef eps_out,
               StateRef jvp_out) const override;
  void eps_jvp_rows(const ConstStateRef& x, double t, const ModelRows& rows, const ConstStateRef& v,
                    StateRef eps_out, StateRef jvp_out) const override;
  bool has_data_prediction() const override { return model_->has_data_prediction(); }
  void x0_rows(const ConstStateRef& x, double t, const ModelRows& rows, StateRef out) const override;

  const Model& model() const { return *model_; }
  const Conditioning& conditioning() const { return *cond_; }
  // The rows as the wrapped model sees them: global samples and the bound inputs.
  ModelRows bound(const ModelRows& rows) const;

 private:
  std::shared_ptr<const Model> model_;
  std::shared_ptr<const Conditioning> cond_;
  std::uint64_t first_sample_;
};

// A model whose network is evaluated at other times than the solver asks for: at the node
// times[i] of a grid, the network runs at model_times[i] (Grid::model_times: diffusers
// evaluates its network at rounded or interpolated timesteps while its steps use other
// noise levels), and the conversions of its output use the solver's time. At any other
// time (the inner stages of singlestep methods) it runs at the time diffusers would give
// that noise level on a vp_discrete schedule: its fractional timestep by log-sigma
// interpolation over the discrete steps; on other schedules, at the time itself.
class RetimedModel final : public Model {
 public:
  RetimedModel(std::shared_ptr<const Model> model, std::shared_ptr<const Schedule> schedule,
               const std::vector<double>& times, const std::vector<double>& model_times);
  std::string name() const override { return model_->name(); }
  int dim() const override { return model_->dim(); }
  std::vector<int> shape() const override { return model_->shape(); }
  std::vector<InputSpec> inputs() const override { return model_->inputs(); }
  void eps(const ConstStateRef& x, double t, StateRef out) const override;
  void eps_rows(const ConstStateRef& x, double t, const ModelRows& rows, StateRef out) const override;
  long network_rows(long rows, double t) const override { return model_->network_rows(rows, network_time(t)); }
  // The model's own x0 where the network runs at the solver's time (a grid node whose
  // network time is its own, as every node of the ddim family's grids); Error elsewhere.
  bool has_data_prediction() const override { return model_->has_data_prediction(); }
  void x0_rows(const ConstStateRef& x, double t, const ModelRows& rows, StateRef out) const override;
  // The time the network runs at for solver time t.
  double network_time(double t) const;

 private:
  std::shared_ptr<const Model> model_;
  std::shared_ptr<const Schedule> schedule_;
  std::vector<std::pair<double, double>> map_;  // (time, network time), sorted by time
  std::vector<double> log_sigmas_;               // diffusers' table on vp_discrete; else empty
};

// Classifier-free guidance, with diffusers' convention for the scale s:
//   eps = eps_u + s (eps_c - eps_u)
// (s = 1: the conditional model alone, s = 0: the unconditional one), optionally only for
// t inside an interval (outside it: the conditional model alone), optionally rescaled (Lin
// et al. 2024, diffusers' guidance_rescale phi):
//   g = guided, c = conditional; g <- phi g std(c) / std(g) + (1 - phi) g
// with std the unbiased standard deviation over each sample's values. The combination (and
// the rescale) is made in the prediction space `space` (eps, x0, v or velocity): for plain guidance
// the three agree to rounding (x0 and v are affine in eps at fixed x and t), the rescale
// does not.
struct GuidanceOptions {
  double scale = 1.0;
  // Guidance only for t_lo <= t <= t_hi.
  double t_lo = -std::numeric_limits<double>::infinity();
  double t_hi = std::numeric_limits<double>::infinity();
  double rescale = 0.0;
  // One call of 2B rows (conditional rows, then unconditional ones) per evaluation; false:
  // two calls of B rows (less memory). The results are the same bit for bit for a model
  // whose rows are independent.
  bool batched = true;
  Prediction space = Prediction::eps;

  // True when usable; otherwise false with the reason and the option's name.
  bool is_valid(std::string* error = nullptr, std::string* option = nullptr) const;
};

class GuidedModel final : public Model {
 public:
  // cond and uncond are checked against model->inputs() (same names, types and shapes,
  // 1 or batch rows); Error naming the input otherwise. schedule: for the x0, v and velocity spaces.
  GuidedModel(std::shared_ptr<const Model> model, std::shared_ptr<const Schedule> schedule,
              std::shared_ptr<const Conditioning> cond, std::shared_ptr<const Conditioning> uncond,
              GuidanceOptions options, long batch, std::uint64_t first_sample = 0);
  // Guidance from two models: eps_c from `conditional` with the inputs `cond`, eps_u from
  // `unconditional`, called without inputs (Error if it requires any). Two calls per evaluation
  // (options.batched is ignored: the networks differ).
  GuidedModel(std::shared_ptr<const Model> conditional, std::shared_ptr<const Model> unconditional,
              std::shared_ptr<const Schedule> schedule, std::shared_ptr<const Conditioning> cond,
              GuidanceOptions options, long batch, std::uint64_t first_sample = 0);
  std::string name() const override { return model_->name(); }
  int dim() const override { return model_->dim(); }
  std::vector<int> shape() const override { return model_->shape(); }
  void eps(const ConstStateRef& x, double t, StateRef out) const override;
  void eps_rows(const ConstStateRef& x, double t, const ModelRows& rows, StateRef out) const override;
  long network_rows(long rows, double t) const override;
  // Without rescale, J = J_u + s (J_c - J_u) (two unbatched calls of the models' eps_jvp).
  bool has_jvp() const override {
    return model_->has_jvp() && unconditional_model().has_jvp() && options_.rescale == 0;
  }
  void eps_jvp(const ConstStateRef& x, double t, const ConstStateRef& v, StateRef eps_out,
               StateRef jvp_out) const override;
  void eps_jvp_rows(const ConstStateRef& x, double t, const ModelRows& rows, const ConstStateRef& v,
                    StateRef eps_out, StateRef jvp_out) const override;
  // Without rescale: x0 = x0_u + s (x0_c - x0_u), the same combination (x0 is affine in eps).
  bool has_data_prediction() const override {
    return model_->has_data_prediction() && unconditional_model().has_data_prediction() && options_.rescale == 0;
  }
  void x0_rows(const ConstStateRef& x, double t, const ModelRows& rows, StateRef out) const override;

  const Model& model() const { return *model_; }
  // The unconditional model: model() itself, or the second model given.
  const Model& unconditional_model() const { return unconditional_ ? *unconditional_ : *model_; }
  const GuidanceOptions& options() const { return options_; }
  const Conditioning& conditioning() const { return *cond_; }
  const Conditioning& unconditional() const { return *uncond_; }
  // Whether guidance acts at t (scale != 1 and t inside the interval).
  bool active(double t) const;

 private:
  ModelRows rows_of(const Conditioning& c, const ModelRows& rows) const;
  std::shared_ptr<const Conditioning> stacked(long first, long count) const;

  std::shared_ptr<const Model> model_;
  std::shared_ptr<const Model> unconditional_;  // null: model_ with uncond_
  std::shared_ptr<const Schedule> schedule_;
  std::shared_ptr<const Conditioning> cond_, uncond_;
  GuidanceOptions options_;
  std::uint64_t first_sample_;
  // Stacked (cond; uncond) inputs per row block, made once per block.
  mutable std::mutex mutex_;
  mutable std::map<std::pair<long, long>, std::shared_ptr<const Conditioning>> stacked_;
};

// Thresholding of the predicted x0 = (x - sigma eps) / alpha, then eps recomputed from it:
//   eps' = (x - alpha x0') / sigma,
// so that every solver, whichever prediction it works in, uses x0' (a data-prediction
// solver recovers x0' from eps' to rounding). Where sigma = 0 the model's eps is kept.
//  - dynamic (Saharia et al. 2022; diffusers' `thresholding`): per sample, s = the `ratio`
//    quantile of |x0| (linear interpolation, as torch.quantile), clamped to [1, max];
//    x0' = clamp(x0, -s, s) / s.
//  - clip (diffusers' `clip_sample`): x0' = clamp(x0, lo, hi).
struct ThresholdOptions {
  enum class Kind { dynamic, clip } kind = Kind::dynamic;
  double ratio = 0.995;  // dynamic: the quantile, in (0, 1]
  double max = 1.0;      // dynamic: the largest s (>= 1)
  double lo = -1.0, hi = 1.0;  // clip
  bool is_valid(std::string* error = nullptr, std::string* option = nullptr) const;
};

// x0' of one sample (n values), as ThresholdedModel applies it; in place.
void threshold_x0(const ThresholdOptions& options, double* x0, long n);

class ThresholdedModel final : public Model {
 public:
  ThresholdedModel(std::shared_ptr<const Model> model, std::shared_ptr<const Schedule> schedule,
                   ThresholdOptions options);
  std::string name() const override { return model_->name(); }
  int dim() const override { return model_->dim(); }
  std::vector<int> shape() const override { return model_->shape(); }
  std::vector<InputSpec> inputs() const override { return model_->inputs(); }
  void eps(const ConstStateRef& x, double t, StateRef out) const override;
  void eps_rows(const ConstStateRef& x, double t, const ModelRows& rows, StateRef out) const override;
  long network_rows(long rows, double t) const override { return model_->network_rows(rows, t); }
  // The model's own x0, thresholded.
  bool has_data_prediction() const override { return model_->has_data_prediction(); }
  void x0_rows(const ConstStateRef& x, double t, const ModelRows& rows, StateRef out) const override;

  const Model& model() const { return *model_; }
  const ThresholdOptions& options() const { return options_; }

 private:
  void apply(const ConstStateRef& x, double t, StateRef eps) const;
  std::shared_ptr<const Model> model_;
  std::shared_ptr<const Schedule> schedule_;
  ThresholdOptions options_;
};

}  // namespace diffsde
