// The model interface: a noise prediction eps(x, t) for a batch at one time, optionally
// with per-sample conditioning (conditioning.hpp).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "diffsde/conditioning.hpp"
#include "diffsde/error.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/state.hpp"

namespace diffsde {

class Model {
 public:
  virtual ~Model() = default;
  virtual std::string name() const = 0;
  // Flattened size of one sample (the number of columns of the state).
  virtual int dim() const = 0;
  // Per-sample shape (its product is dim()), e.g. {1, 28, 28} for an image network.
  virtual std::vector<int> shape() const { return {dim()}; }
  // Noise prediction for every row of x at time t, written to out (same shape as x).
  // Must not depend on which other rows are in the batch.
  virtual void eps(const ConstStateRef& x, double t, StateRef out) const = 0;

  // Conditioning. The inputs the model takes beside x and t (class labels, embeddings);
  // empty for an unconditional model.
  virtual std::vector<InputSpec> inputs() const { return {}; }
  // eps for rows that are the samples `rows` says, with their inputs. This is what the
  // solvers call (through SolverContext); the default ignores `rows` and calls eps(x, t,
  // out), so an unconditional model implements eps() alone. A conditional model overrides
  // both: eps(x, t, out) is then its output without inputs (its unconditional form, or an
  // Error naming the missing input).
  virtual void eps_rows(const ConstStateRef& x, double t, const ModelRows& /*rows*/,
                        StateRef out) const {
    eps(x, t, out);
  }
  // eps at time t from the network evaluated at the time t_network (a grid whose
  // network times differ from its steps' times, as diffusers' rounded timesteps; see
  // RetimedModel): a model that converts its network's output (x0 or v prediction) does
  // so with the coefficients at t. The default is eps_rows at t_network.
  virtual void eps_rows_retimed(const ConstStateRef& x, double /*t*/, double t_network, const ModelRows& rows,
                                StateRef out) const {
    eps_rows(x, t_network, rows, out);
  }
  // The data prediction x0(x, t) straight from the model, for a first step from pure noise
  // (alpha = 0, lambda = -inf: there x = sigma eps, so eps carries nothing about x0, while
  // an x0, v or velocity output still does). True when x0_rows is implemented; only then is
  // it called. The default throws Error naming the model.
  virtual bool has_data_prediction() const { return false; }
  virtual void x0_rows(const ConstStateRef& /*x*/, double /*t*/, const ModelRows& /*rows*/, StateRef /*out*/) const {
    throw Error("model '" + name() + "' predicts eps and has no data prediction x0 of its own (x0_rows)");
  }
  // Network rows one evaluation of `rows` rows at t costs (a guided model evaluates each
  // row twice), for the run summary.
  virtual long network_rows(long rows, double /*t*/) const { return rows; }

  // Jacobian-vector products of eps, for likelihoods (the divergence of the PF-ODE drift).
  // True when eps_jvp is implemented (exactly: in closed form or by automatic
  // differentiation, never by finite differences).
  virtual bool has_jvp() const { return false; }
  // For every row r, with J_r = d eps / d x at (x.row(r), t) (dim x dim):
  //   eps_out.row(r) = eps(x.row(r), t),  jvp_out.row(r) = J_r v.row(r).
  // x, v, eps_out and jvp_out are all batch x dim; the outputs must not alias x or v.
  // Rows are independent, as for eps. The default throws Error naming the model.
  virtual void eps_jvp(const ConstStateRef& /*x*/, double /*t*/, const ConstStateRef& /*v*/,
                       StateRef /*eps_out*/, StateRef /*jvp_out*/) const {
    throw Error("model '" + name() +
                "' has no Jacobian-vector product of eps (eps_jvp); use a model that provides "
                "one, or the finite-difference fallback");
  }
  // eps_jvp for conditioned rows; the default ignores `rows`.
  virtual void eps_jvp_rows(const ConstStateRef& x, double t, const ModelRows& /*rows*/,
                            const ConstStateRef& v, StateRef eps_out, StateRef jvp_out) const {
    eps_jvp(x, t, v, eps_out, jvp_out);
  }
};

// A model from a function, in one line:
//   auto model = diffsde::make_model(2, [](const ConstStateRef& x, double t, StateRef eps) {...});
// and, for a conditional model, with the inputs it takes and a function that also gets the
// rows (their samples and inputs):
//   auto model = diffsde::make_model(2, {{"y", InputType::int64, {}, 10}},
//       [](const ConstStateRef& x, double t, const ModelRows& rows, StateRef eps) {...});
// The function is called from several threads at once when the driver runs on several.
using EpsFunction = std::function<void(const ConstStateRef& x, double t, StateRef eps)>;
using ConditionalEpsFunction =
    std::function<void(const ConstStateRef& x, double t, const ModelRows& rows, StateRef eps)>;
std::shared_ptr<Model> make_model(int dim, EpsFunction eps, std::string name = "function");
std::shared_ptr<Model> make_model(int dim, std::vector<InputSpec> inputs, ConditionalEpsFunction eps,
                                  std::string name = "function");

// A model whose marginal densities p_t are known in closed form (analytic data
// distributions pushed through the forward VP-SDE of its schedule).
class AnalyticModel : public Model {
 public:
  explicit AnalyticModel(std::shared_ptr<const Schedule> schedule)
      : schedule_(std::move(schedule)) {}
  const Schedule& schedule() const { return *schedule_; }
  // log p_t(x) for every row of x (t = 0: the data distribution).
  virtual void log_density(const ConstStateRef& x, double t, Eigen::Ref<BatchVector> out) const = 0;
  // log p_t(x | inputs) for conditioned rows (a labelled mixture: the law of the row's class);
  // the default ignores `rows`.
  virtual void log_density_rows(const ConstStateRef& x, double t, const ModelRows& /*rows*/,
                                Eigen::Ref<BatchVector> out) const {
    log_density(x, t, out);
  }
  // Score grad_x log p_t(x) for every row (= -eps / sigma for t > 0).
  virtual void score(const ConstStateRef& x, double t, StateRef out) const = 0;
  // Mean and (diagonal-free) covariance of the data distribution p_0.
  virtual Eigen::VectorXd data_mean() const = 0;
  virtual Eigen::MatrixXd data_covariance() const = 0;
  // n exact samples of the data distribution p_0: row i is sample first_sample + i,
  // a function of (seed, that index) alone (Philox, NoiseStream::data), so any split of
  // the rows gives the same samples.
  virtual State sample_data(long n, std::uint64_t seed, std::uint64_t first_sample = 0) const = 0;

 protected:
  std::shared_ptr<const Schedule> schedule_;
};

}  // namespace diffsde
