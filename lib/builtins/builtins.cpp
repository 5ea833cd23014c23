// The global registries with the built-in schedules, grids, models and solvers (the
// core defines none of them: it names no solver or model).
#include "diffsde/builtins.hpp"

#include "diffsde/grid.hpp"
#include "diffsde/model.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/solver.hpp"

namespace diffsde {

namespace {

// A registry of `kind` filled by `fill`, made on first use (thread-safe static init).
template <class T>
Registry<T> filled(const char* kind, void (*fill)(Registry<T>&)) {
  Registry<T> registry(kind);
  fill(registry);
  return registry;
}

}  // namespace

Registry<Schedule>& schedule_registry() {
  static Registry<Schedule> registry = filled<Schedule>("schedule", builtin::register_schedules);
  return registry;
}

Registry<Grid>& grid_registry() {
  static Registry<Grid> registry = filled<Grid>("grid", builtin::register_grids);
  return registry;
}

Registry<Model>& model_registry() {
  static Registry<Model> registry = filled<Model>("model", builtin::register_models);
  return registry;
}

Registry<Solver>& solver_registry() {
  static Registry<Solver> registry = filled<Solver>("solver", builtin::register_solvers);
  return registry;
}

}  // namespace diffsde
