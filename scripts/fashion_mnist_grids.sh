#!/usr/bin/env bash
# Sample grids of a Fashion-MNIST model from several solvers at 10/20/50/100 steps.
#   scripts/fashion_mnist_grids.sh MODEL.pt OUT_DIR [BATCH]
# Writes OUT_DIR/<solver>_<steps>.png (and .npy) with the same x_T and seed for all.
set -euo pipefail
model=$(realpath "$1")
out=$2
batch=${3:-36}
bin=${DIFFSDE:-"$(dirname "$0")/../build/release/apps/diffsde"}
mkdir -p "$out"
for solver in ddim dpm_solver dpmpp_2m_sde euler_maruyama; do
  for steps in 10 20 50 100; do
    cat > "$out/config.json" <<JSON
{"schedule": {"name": "vp_linear"}, "model": {"name": "torchscript", "path": "$model"},
 "grid": {"name": "logSNR", "steps": $steps, "t_end": 0.001},
 "solver": {"name": "$solver"}, "batch": $batch, "seed": 0}
JSON
    "$bin" sample "$out/config.json" --out "$out/${solver}_${steps}.npy" > "$out/${solver}_${steps}.log"
    tail -n 3 "$out/${solver}_${steps}.log" | head -n 1
  done
done
rm -f "$out/config.json"
