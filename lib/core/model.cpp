#include "diffsde/model.hpp"

#include <cmath>
#include "diffsde/prediction_model.hpp"
#include "diffsde/schedule.hpp"

namespace diffsde {

namespace {

class FunctionModel final : public Model {
 public:
  FunctionModel(int dim, std::vector<InputSpec> inputs, EpsFunction eps, ConditionalEpsFunction cond_eps,
                std::string name)
      : dim_(dim), inputs_(std::move(inputs)), eps_(std::move(eps)), cond_eps_(std::move(cond_eps)),
        name_(std::move(name)) {
    if (dim_ < 1) throw Error("make_model: dim must be >= 1, got " + std::to_string(dim_));
    if (!eps_ && !cond_eps_) throw Error("make_model: no function given");
  }
  std::string name() const override { return name_; }
  int dim() const override { return dim_; }
  std::vector<InputSpec> inputs() const override { return inputs_; }
  void eps(const ConstStateRef& x, double t, StateRef out) const override {
    if (eps_) {
      eps_(x, t, out);
    } else {
      cond_eps_(x, t, ModelRows{}, out);
    }
  }
  void eps_rows(const ConstStateRef& x, double t, const ModelRows& rows, StateRef out) const override {
    if (cond_eps_) {
      cond_eps_(x, t, rows, out);
    } else {
      eps_(x, t, out);
    }
  }

 private:
  int dim_;
  std::vector<InputSpec> inputs_;
  EpsFunction eps_;
  ConditionalEpsFunction cond_eps_;
  std::string name_;
};

}  // namespace

std::shared_ptr<Model> make_model(int dim, EpsFunction eps, std::string name) {
  return std::make_shared<FunctionModel>(dim, std::vector<InputSpec>{}, std::move(eps), nullptr, std::move(name));
}

std::shared_ptr<Model> make_model(int dim, std::vector<InputSpec> inputs, ConditionalEpsFunction eps,
                                  std::string name) {
  return std::make_shared<FunctionModel>(dim, std::move(inputs), nullptr, std::move(eps), std::move(name));
}

namespace {

class PredictionModel final : public Model {
 public:
  PredictionModel(std::shared_ptr<const Model> raw, std::shared_ptr<const Schedule> schedule, Prediction kind)
      : raw_(std::move(raw)), schedule_(std::move(schedule)), kind_(kind) {
    if (!raw_ || !schedule_) throw Error("with_prediction: needs a model and a schedule");
  }
  std::string name() const override { return raw_->name(); }
  int dim() const override { return raw_->dim(); }
  std::vector<int> shape() const override { return raw_->shape(); }
  std::vector<InputSpec> inputs() const override { return raw_->inputs(); }
  void eps(const ConstStateRef& x, double t, StateRef out) const override {
    raw_->eps(x, t, out);
    convert(x, t, out);
  }
  void eps_rows(const ConstStateRef& x, double t, const ModelRows& rows, StateRef out) const override {
    raw_->eps_rows(x, t, rows, out);
    convert(x, t, out);
  }
  void eps_rows_retimed(const ConstStateRef& x, double t, double t_network, const ModelRows& rows,
                        StateRef out) const override {
    raw_->eps_rows(x, t_network, rows, out);
    convert(x, t, out);
  }
  long network_rows(long rows, double t) const override { return raw_->network_rows(rows, t); }
  bool has_data_prediction() const override { return predicts_data(kind_); }
  void x0_rows(const ConstStateRef& x, double t, const ModelRows& rows, StateRef out) const override {
    raw_->eps_rows(x, t, rows, out);
    const ScheduleAt s = schedule_->at(t);
    to_x0(kind_, x, out, s.alpha, s.sigma, out);
  }

 private:
  void convert(const ConstStateRef& x, double t, StateRef out) const {
    if (kind_ == Prediction::eps) return;
    const ScheduleAt s = schedule_->at(t);
    to_eps(kind_, x, out, s.alpha, s.sigma, out);
  }
  std::shared_ptr<const Model> raw_;
  std::shared_ptr<const Schedule> schedule_;
  Prediction kind_;
};

class EdmPreconditionedModel final : public Model {
 public:
  EdmPreconditionedModel(std::shared_ptr<const Model> network, std::shared_ptr<const Schedule> schedule,
                         EdmPreconditioning options)
      : network_(std::move(network)), schedule_(std::move(schedule)), options_(options) {
    if (!network_ || !schedule_) throw Error("with_edm_preconditioning: needs a network and a schedule");
    if (!(options_.sigma_data > 0) || !std::isfinite(options_.sigma_data))
      throw Error("with_edm_preconditioning: sigma_data must be finite and > 0, got " +
                  format_double(options_.sigma_data));
    if (options_.output_sign != 1.0 && options_.output_sign != -1.0)
      throw Error("with_edm_preconditioning: output_sign must be 1 or -1");
  }
  std::string name() const override { return network_->name(); }
  int dim() const override { return network_->dim(); }
  std::vector<InputSpec> inputs() const override { return network_->inputs(); }
  void eps(const ConstStateRef& x, double t, StateRef out) const override { eps_rows(x, t, ModelRows{}, out); }
  void eps_rows(const ConstStateRef& x, double t, const ModelRows& rows, StateRef out) const override {
    eps_rows_retimed(x, t, t, rows, out);
  }
  // The network's input and c_noise at t_network, its output combined at t.
  void eps_rows_retimed(const ConstStateRef& x, double t, double t_network, const ModelRows& rows,
                        StateRef out) const override {
    const Coefficients in = coefficients(t_network), c = coefficients(t);
    const State input = x * (in.c_in / in.alpha);
    network_->eps_rows(input, in.c_noise, rows, out);
    combine(x, c, out);
  }
  long network_rows(long rows, double t) const override { return network_->network_rows(rows, t); }
  bool has_jvp() const override { return network_->has_jvp(); }
  void eps_jvp(const ConstStateRef& x, double t, const ConstStateRef& v, StateRef eps_out,
               StateRef jvp_out) const override {
    eps_jvp_rows(x, t, ModelRows{}, v, eps_out, jvp_out);
  }
  // eps = a x - b F(k x) with a = (1 - c_skip) / (alpha s), b = sign c_out / s, k = c_in / alpha:
  // J v = a v - b J_F (k v).
  void eps_jvp_rows(const ConstStateRef& x, double t, const ModelRows& rows, const ConstStateRef& v,
                    StateRef eps_out, StateRef jvp_out) const override {
    const Coefficients c = coefficients(t);
    const double k = c.c_in / c.alpha;
    const State input = x * k;
    const State w = v * k;
    network_->eps_jvp_rows(input, c.c_noise, rows, w, eps_out, jvp_out);
    combine(x, c, eps_out);
    jvp_out = ((1.0 - c.c_skip) / (c.alpha * c.s)) * v - (options_.output_sign * c.c_out / c.s) * jvp_out;
  }

 private:
  struct Coefficients {
    double alpha, s, c_skip, c_out, c_in, c_noise;
  };
  Coefficients coefficients(double t) const {
    const ScheduleAt at = schedule_->at(t);
    if (!(at.alpha > 0) || !(at.sigma > 0))
      throw Error("EDM preconditioning needs alpha > 0 and sigma > 0; at t = " + format_double(t) + " alpha = " +
                  format_double(at.alpha) + ", sigma = " + format_double(at.sigma));
    Coefficients c;
    c.alpha = at.alpha;
    c.s = at.sigma / at.alpha;
    const double sd = options_.sigma_data, q = c.s * c.s + sd * sd;
    c.c_skip = sd * sd / q;
    c.c_out = c.s * sd / std::sqrt(q);
    c.c_in = 1.0 / std::sqrt(q);
    c.c_noise = 0.25 * std::log(c.s);
    return c;
  }
  // out holds F; it becomes eps = (x / alpha - D) / s.
  void combine(const ConstStateRef& x, const Coefficients& c, StateRef out) const {
    const double inv_alpha = 1.0 / c.alpha, inv_s = 1.0 / c.s, co = options_.output_sign * c.c_out;
    out = (x * inv_alpha - (c.c_skip * inv_alpha * x + co * out)) * inv_s;
  }
  std::shared_ptr<const Model> network_;
  std::shared_ptr<const Schedule> schedule_;
  EdmPreconditioning options_;
};

}  // namespace

std::unique_ptr<Model> with_edm_preconditioning(std::shared_ptr<const Model> network,
                                                std::shared_ptr<const Schedule> schedule,
                                                EdmPreconditioning options) {
  return std::make_unique<EdmPreconditionedModel>(std::move(network), std::move(schedule), options);
}

std::shared_ptr<Model> with_prediction(std::shared_ptr<const Model> raw, std::shared_ptr<const Schedule> schedule,
                                       Prediction kind) {
  return std::make_shared<PredictionModel>(std::move(raw), std::move(schedule), kind);
}

}  // namespace diffsde
