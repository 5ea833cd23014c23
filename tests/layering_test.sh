#!/usr/bin/env bash
# The layers' direction (docs/architecture.md): the core (lib/core) includes no JSON,
# LibTorch, registry, built-in, solver, model or job header and names no solver, model
# or command; the solvers (headers and sources) and the analytic models include no JSON or
# registry header. Fails with the offending file and line.
set -u
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root" || exit 2
status=0

fail() { echo "layering: $1"; status=1; }

# Headers of the layers above the core, by the name they are included with.
above=()
for dir in lib/registry/diffsde lib/builtins/diffsde lib/jobs/diffsde; do
  for f in "$dir"/*.hpp; do above+=("diffsde/$(basename "$f")"); done
done

core_files=$(find lib/core -name '*.hpp' -o -name '*.cpp' | sort)
[ -n "$core_files" ] || { echo "layering: no core files under lib/core"; exit 1; }
for f in $core_files; do
  while IFS= read -r hit; do
    [ -n "$hit" ] && fail "$f:$hit: the core includes a JSON, LibTorch, solver or model header"
  done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"](nlohmann/|torch/|ATen/|c10/|diffsde/solvers/|diffsde/scores/)' "$f")
  for h in "${above[@]}"; do
    while IFS= read -r hit; do
      [ -n "$hit" ] && fail "$f:$hit: the core includes $h, a header of a layer above it"
    done < <(grep -nE "^[[:space:]]*#[[:space:]]*include[[:space:]]*[<\"]$h[>\"]" "$f")
  done
  while IFS= read -r hit; do
    [ -n "$hit" ] && fail "$f:$hit: the core names the JSON library or a registry"
  done < <(grep -nE 'nlohmann|_registry\(|RegistryEntry|ParamSpec' "$f")
done

# The solvers and the models (scores/, less the LibTorch ones): no JSON; their registry
# entries live in lib/builtins.
for f in solvers/diffsde/solvers/*.hpp solvers/*.cpp scores/*.cpp scores/diffsde/scores/analytic.hpp; do
  while IFS= read -r hit; do
    [ -n "$hit" ] && fail "$f:$hit: a solver or an analytic model includes a JSON or registry header"
  done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"](nlohmann/|diffsde/(registry|builtins)\.hpp)' "$f")
done

if [ $status -eq 0 ]; then
  echo "layering: the core includes nothing above it; solvers and models include no JSON"
fi
exit $status
