// Calling diffsde from C++: build the pieces directly (no JSON), sample the built-in
// 2-D Gaussian mixture with Euler–Maruyama, and compare the sample mean with the exact
// data mean. Exits non-zero if they disagree.
#include <cmath>
#include <iostream>

#include "diffsde/driver.hpp"
#include "diffsde/grid.hpp"
#include "diffsde/noise.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/scores/analytic.hpp"
#include "diffsde/solvers/euler_maruyama.hpp"

int main() {
  using namespace diffsde;
  auto schedule = std::make_shared<VpLinearSchedule>(0.1, 20.0);
  const GmmModel model = GmmModel::builtin_2d(schedule);
  const auto times = TimeUniformGrid({1.0, 1e-3, 200}).times(*schedule);

  const long batch = 4000;
  State x(batch, model.dim());
  for (long j = 0; j < batch; ++j) philox_normals(7, NoiseStream::init, j, 0, x.row(j).data(), model.dim());
  PhiloxNoise noise(7);
  EulerMaruyamaSolver solver;
  const Summary summary = integrate(solver, *schedule, model, times, x, &noise);
  std::cout << summary.brief_report() << "\n";

  // The same solver made by name from the registry, as a config would.
  const auto by_name = solver_registry().create_default("euler_maruyama");
  std::cout << "registry: " << by_name->traits().name << "\n";

  const Eigen::VectorXd mean = x.matrix().colwise().mean().transpose();
  const Eigen::VectorXd exact = model.data_mean();
  std::cout << "sample mean " << mean.transpose() << ", exact " << exact.transpose() << "\n";
  return (mean - exact).norm() < 0.15 ? 0 : 1;
}
