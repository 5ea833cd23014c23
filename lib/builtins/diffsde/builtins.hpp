// The built-in entries of the global registries (registry.hpp). Each family registers
// its entries in one function; the global registries call them on first use. Adding a
// solver adds one line to solvers/builtin_solvers.cpp, a model one line to
// lib/builtins/models.cpp.
#pragma once

#include "diffsde/registry.hpp"

namespace diffsde {

class Schedule;
class Grid;
class Model;
class Solver;

namespace builtin {
void register_schedules(Registry<Schedule>& registry);  // lib/builtins/schedules.cpp
void register_grids(Registry<Grid>& registry);          // lib/builtins/grids.cpp
void register_models(Registry<Model>& registry);        // lib/builtins/models.cpp
void register_solvers(Registry<Solver>& registry);      // solvers/builtin_solvers.cpp
}  // namespace builtin

}  // namespace diffsde
