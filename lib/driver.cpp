#include "diffsde/driver.hpp"

#include <chrono>
#include <cmath>
#include <sstream>

#include "diffsde/error.hpp"

namespace diffsde {

NoiseSource& SolverContext::noise() {
  if (noise_ == nullptr) throw Error("this solver draws noise, but the run has no noise source");
  return *noise_;
}

std::string Summary::brief_report() const {
  std::ostringstream os;
  os << solver << ": " << steps << " steps, " << nfe << " NFE, " << accepted << " accepted, "
     << rejected << " rejected, " << draws << " draws, " << seconds << " s";
  return os.str();
}

void TrajectoryObserver::on_start(double t, const State& x) {
  times_.assign(1, t);
  states_.assign(1, x);
}

void TrajectoryObserver::on_step(long /*step*/, double t, const State& x) {
  times_.push_back(t);
  states_.push_back(x);
}

namespace {

// First row with a non-finite entry, or -1.
long first_non_finite_row(const State& x) {
  if (x.allFinite()) return -1;
  for (Eigen::Index r = 0; r < x.rows(); ++r)
    if (!x.row(r).allFinite()) return static_cast<long>(r);
  return -1;
}

}  // namespace

Summary integrate(Solver& solver, const Schedule& schedule, const Model& model,
                  const std::vector<double>& times, State& x, NoiseSource* noise,
                  const std::vector<Observer*>& observers, const DriverOptions& options) {
  const SolverTraits traits = solver.traits();
  if (times.size() < 2) throw Error("integrate: the time grid needs at least 2 times");
  if (x.cols() != model.dim())
    throw Error("integrate: the state has " + std::to_string(x.cols()) + " columns but model '" +
                model.name() + "' has dimension " + std::to_string(model.dim()));
  if (traits.stochastic && noise == nullptr)
    throw Error("integrate: solver '" + traits.name + "' is stochastic and needs a noise source");

  SolverContext context(schedule, model, noise);
  Summary summary;
  summary.solver = traits.name;
  summary.t_start = times.front();
  summary.t_end = times.back();
  const std::uint64_t draws_before = noise != nullptr ? noise->draws() : 0;

  const auto start = std::chrono::steady_clock::now();
  for (auto* o : observers) o->on_start(times.front(), x);
  solver.init(context, x, times);
  for (std::size_t i = 0; i + 1 < times.size(); ++i) {
    try {
      solver.step(context, i, times[i], times[i + 1], x);
    } catch (const NumericalError&) {
      throw;
    } catch (const Error& e) {
      throw NumericalError(static_cast<long>(i), times[i], e.what());
    }
    if (options.check_finite) {
      const long row = first_non_finite_row(x);
      if (row >= 0)
        throw NumericalError(static_cast<long>(i), times[i],
                             "solver '" + traits.name + "' produced a non-finite value in sample " +
                                 std::to_string(row) + " stepping to t = " +
                                 format_double(times[i + 1]));
    }
    for (auto* o : observers) o->on_step(static_cast<long>(i), times[i + 1], x);
  }
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  summary.steps = static_cast<long>(times.size() - 1);
  summary.nfe = context.nfe();
  summary.accepted = traits.adaptive ? context.accepted() : summary.steps;
  summary.rejected = context.rejected();
  summary.draws = noise != nullptr ? noise->draws() - draws_before : 0;
  for (auto* o : observers) o->on_finish(summary);
  return summary;
}

}  // namespace diffsde
