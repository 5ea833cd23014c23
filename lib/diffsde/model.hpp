// The model interface: a noise prediction eps(x, t) for a batch at one time.
#pragma once

#include <memory>
#include <string>

#include "diffsde/schedule.hpp"
#include "diffsde/state.hpp"

namespace diffsde {

class Model {
 public:
  virtual ~Model() = default;
  virtual std::string name() const = 0;
  // Flattened size of one sample (the number of columns of the state).
  virtual int dim() const = 0;
  // Noise prediction for every row of x at time t, written to out (same shape as x).
  // Must not depend on which other rows are in the batch.
  virtual void eps(const ConstStateRef& x, double t, StateRef out) const = 0;
};

// A model whose marginal densities p_t are known in closed form (analytic data
// distributions pushed through the forward VP-SDE of its schedule).
class AnalyticModel : public Model {
 public:
  explicit AnalyticModel(std::shared_ptr<const Schedule> schedule)
      : schedule_(std::move(schedule)) {}
  const Schedule& schedule() const { return *schedule_; }
  // log p_t(x) for every row of x (t = 0: the data distribution).
  virtual void log_density(const ConstStateRef& x, double t, Eigen::Ref<BatchVector> out) const = 0;
  // Score grad_x log p_t(x) for every row (= -eps / sigma for t > 0).
  virtual void score(const ConstStateRef& x, double t, StateRef out) const = 0;
  // Mean and (diagonal-free) covariance of the data distribution p_0.
  virtual Eigen::VectorXd data_mean() const = 0;
  virtual Eigen::MatrixXd data_covariance() const = 0;

 protected:
  std::shared_ptr<const Schedule> schedule_;
};

}  // namespace diffsde
