#include "diffsde/model.hpp"
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

}  // namespace

std::shared_ptr<Model> with_prediction(std::shared_ptr<const Model> raw, std::shared_ptr<const Schedule> schedule,
                                       Prediction kind) {
  return std::make_shared<PredictionModel>(std::move(raw), std::move(schedule), kind);
}

}  // namespace diffsde
