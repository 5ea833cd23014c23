// The global registries with the built-in schedules, grids, models and solvers (the
// core defines none of them: it names no solver or model).
#include "diffsde/builtins.hpp"

#include "diffsde/grid.hpp"
#include "diffsde/model.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/solver.hpp"

namespace diffsde {

Registry<Schedule>& schedule_registry() {
  static Registry<Schedule> registry = [] {
    Registry<Schedule> r("schedule");
    builtin::register_schedules(r);
    return r;
  }();
  return registry;
}

Registry<Grid>& grid_registry() {
  static Registry<Grid> registry = [] {
    Registry<Grid> r("grid");
    builtin::register_grids(r);
    return r;
  }();
  return registry;
}

Registry<Model>& model_registry() {
  static Registry<Model> registry = [] {
    Registry<Model> r("model");
    builtin::register_models(r);
    return r;
  }();
  return registry;
}

Registry<Solver>& solver_registry() {
  static Registry<Solver> registry = [] {
    Registry<Solver> r("solver");
    builtin::register_solvers(r);
    return r;
  }();
  return registry;
}

}  // namespace diffsde
