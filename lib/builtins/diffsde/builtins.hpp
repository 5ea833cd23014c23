// The built-in entries of the global registries (registry.hpp). Each family registers
// its entries in one function; the global registries call them on first use. A solver
// family's entries are in lib/builtins/solvers/FAMILY.cpp, declared and called in
// lib/builtins/solvers.cpp; a model's entry is in lib/builtins/models.cpp.
#pragma once

#include "diffsde/registry.hpp"

namespace diffsde::builtin {

void register_schedules(Registry<Schedule>& registry);  // lib/builtins/schedules.cpp
void register_grids(Registry<Grid>& registry);          // lib/builtins/grids.cpp
void register_models(Registry<Model>& registry);        // lib/builtins/models.cpp
void register_solvers(Registry<Solver>& registry);      // lib/builtins/solvers.cpp
}  // namespace diffsde::builtin
