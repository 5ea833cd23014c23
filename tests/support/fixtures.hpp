// Small fixtures shared by the solver tests. Header-only, test use only.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>

#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/scores/analytic.hpp"
#include "diffsde/solver.hpp"

namespace diffsde::test {

// A solver from the registry, as a config would make it.
inline std::unique_ptr<Solver> make_solver(const nlohmann::json& config) {
  return solver_registry().create(config, "solver");
}

inline double max_abs(const State& a) { return a.abs().maxCoeff(); }

// A 2-component 2-D mixture with unequal weights and anisotropic components.
inline GmmModel test_gmm(std::shared_ptr<const Schedule> schedule) {
  Eigen::VectorXd w(2);
  w << 0.3, 0.7;
  Eigen::MatrixXd means(2, 2), stds(2, 2);
  means << -1, 0.5, 1.5, -0.5;
  stds << 0.3, 0.6, 0.5, 0.2;
  return GmmModel(std::move(schedule), w, means, stds);
}

}  // namespace diffsde::test
