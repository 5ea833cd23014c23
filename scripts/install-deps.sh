#!/usr/bin/env bash
# Installs the Debian packages diffsde needs, only those missing. Run as root (or with
# sudo available). Extra packages may be named as arguments.
set -euo pipefail

# LibTorch needs an optimised BLAS (libopenblas0-openmp): without it it falls back to the
# reference BLAS and runs about 10x slower. python3-torch is for the interop test only.
# gnuplot-nox draws the sweep reports' plots; Open MPI runs sweeps across ranks.
packages=(g++ cmake make ccache libeigen3-dev libboost-dev nlohmann-json3-dev catch2
          libcli11-dev librandom123-dev python3 zlib1g-dev libssl-dev libstb-dev
          libtorch-dev libopenblas0-openmp python3-torch dataset-fashion-mnist
          gnuplot-nox libopenmpi-dev openmpi-bin "$@")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
