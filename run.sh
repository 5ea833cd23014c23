#!/usr/bin/env bash
# Installs what is missing, builds Release and runs the main job on the embedded
# default config: sample the built-in 2-D Gaussian mixture and print a summary.
# Arguments are passed on to `diffsde sample` (e.g. a config file of your own).
set -euo pipefail
cd "$(dirname "$0")"
./scripts/install-deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DDIFFSDE_BUILD_TESTS=OFF >/dev/null
cmake --build build/release --target diffsde_cli -j"$(nproc)"
mkdir -p out
./build/release/apps/diffsde sample "$@" --out out/samples.npy --summary out/summary.json
