// Analytic models: data distributions whose noised marginals, and so whose exact
// eps, are known for every t.
#pragma once

#include <Eigen/Core>
#include <memory>
#include <vector>

#include "diffsde/model.hpp"

namespace diffsde {

// Diagonal Gaussian data N(mean, diag(std^2)). At time t each axis is
// N(alpha mean, alpha^2 std^2 + sigma^2), so eps = sigma (x - alpha mean) / var_t.
class GaussianModel final : public AnalyticModel {
 public:
  GaussianModel(std::shared_ptr<const Schedule> schedule, Eigen::VectorXd mean, Eigen::VectorXd std);
  std::string name() const override { return "gaussian"; }
  int dim() const override { return static_cast<int>(mean_.size()); }
  void eps(const ConstStateRef& x, double t, StateRef out) const override;
  // J = d eps / d x = diag(sigma / var_j): jvp_j = sigma v_j / var_j.
  bool has_jvp() const override { return true; }
  void eps_jvp(const ConstStateRef& x, double t, const ConstStateRef& v, StateRef eps_out,
               StateRef jvp_out) const override;
  void log_density(const ConstStateRef& x, double t, Eigen::Ref<BatchVector> out) const override;
  void score(const ConstStateRef& x, double t, StateRef out) const override;
  // The posterior mean E[x0 | x_t] = mean + alpha std^2 (x - alpha mean) / var_t, exact at
  // alpha = 0 (pure noise) too, where it is the data mean.
  bool has_data_prediction() const override { return true; }
  void x0_rows(const ConstStateRef& x, double t, const ModelRows& rows, StateRef out) const override;
  Eigen::VectorXd data_mean() const override { return mean_; }
  Eigen::MatrixXd data_covariance() const override;
  State sample_data(long n, std::uint64_t seed, std::uint64_t first_sample = 0) const override;
  const Eigen::VectorXd& mean() const { return mean_; }
  const Eigen::VectorXd& std() const { return std_; }

 private:
  Eigen::VectorXd mean_, std_;
};

// Mixture of diagonal Gaussians sum_k w_k N(mean_k, diag(std_k^2)). The posterior
// weights of the components are computed with log-sum-exp, so far tails stay finite.
class GmmModel final : public AnalyticModel {
 public:
  // weights: K (normalised here, must be > 0); means, stds: K x dim.
  //
  // classes (optional) makes it a labelled mixture: classes[c] lists the components of
  // class c (each 0 .. K - 1, none twice), and class c's law is the mixture of those
  // components with their weights renormalised. The model then takes the input "y", an
  // int64 class per sample: row r's eps, score and log-density are those of class y (exact
  // for every t); y = -1, or no input, gives the whole mixture (the unconditional law).
  GmmModel(std::shared_ptr<const Schedule> schedule, Eigen::VectorXd weights,
           Eigen::MatrixXd means, Eigen::MatrixXd stds,
           std::vector<std::vector<int>> classes = {});
  // The built-in 3-component 2-D mixture used by the demos and benchmarks.
  static GmmModel builtin_2d(std::shared_ptr<const Schedule> schedule);
  std::string name() const override { return "gmm"; }
  int dim() const override { return static_cast<int>(means_.cols()); }
  void eps(const ConstStateRef& x, double t, StateRef out) const override;
  // J = sigma [sum_k r_k P_k + G G^T - sum_k r_k a_k a_k^T] (see analytic.cpp), applied to
  // v without forming J: O(K dim) per row.
  bool has_jvp() const override { return true; }
  void eps_jvp(const ConstStateRef& x, double t, const ConstStateRef& v, StateRef eps_out,
               StateRef jvp_out) const override;
  void log_density(const ConstStateRef& x, double t, Eigen::Ref<BatchVector> out) const override;
  void score(const ConstStateRef& x, double t, StateRef out) const override;
  Eigen::VectorXd data_mean() const override;
  Eigen::MatrixXd data_covariance() const override;
  State sample_data(long n, std::uint64_t seed, std::uint64_t first_sample = 0) const override;

  // The labelled form: input "y" when classes were given.
  std::vector<InputSpec> inputs() const override;
  void eps_rows(const ConstStateRef& x, double t, const ModelRows& rows, StateRef out) const override;
  void eps_jvp_rows(const ConstStateRef& x, double t, const ModelRows& rows, const ConstStateRef& v,
                    StateRef eps_out, StateRef jvp_out) const override;
  void log_density_rows(const ConstStateRef& x, double t, const ModelRows& rows,
                        Eigen::Ref<BatchVector> out) const override;
  // E[x0 | x_t]: (x - sigma eps) / alpha, and at alpha = 0 (pure noise, where x_t says
  // nothing of x0) the data mean, per row's class.
  bool has_data_prediction() const override { return true; }
  void x0_rows(const ConstStateRef& x, double t, const ModelRows& rows, StateRef out) const override;
  const std::vector<std::vector<int>>& classes() const { return classes_; }
  // Class c's law as a mixture of its own (c in 0 .. classes().size() - 1).
  const GmmModel& class_model(int c) const;

  const Eigen::VectorXd& weights() const { return weights_; }
  const Eigen::MatrixXd& means() const { return means_; }
  const Eigen::MatrixXd& stds() const { return stds_; }

 private:
  // Calls f(model, row_indices or nullptr for all rows) once per class present in rows'
  // "y" (the whole mixture for -1 or no input).
  template <class F>
  void by_class(const ModelRows& rows, long n, F&& f) const;

  Eigen::VectorXd weights_;
  Eigen::MatrixXd means_, stds_;
  std::vector<std::vector<int>> classes_;
  std::vector<std::shared_ptr<const GmmModel>> class_models_;
};

}  // namespace diffsde
