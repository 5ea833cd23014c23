#!/usr/bin/env bash
# Installs what is missing, builds and runs every test through CTest.
#   ./test.sh             Release build with -Werror, all tests
#   ./test.sh --sanitize  the same under AddressSanitizer + UndefinedBehaviorSanitizer,
#                         without LibTorch (an uninstrumented LibTorch cannot be checked,
#                         and this build also proves the torch-free configuration)
set -euo pipefail
cd "$(dirname "$0")"
./scripts/install-deps.sh

dir=build/test
flags=(-DCMAKE_BUILD_TYPE=Release -DDIFFSDE_WARNINGS_AS_ERRORS=ON -DDIFFSDE_WITH_TORCH=REQUIRE)
if [ "${1:-}" = "--sanitize" ]; then
  dir=build/sanitize
  flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DDIFFSDE_SANITIZE=ON -DDIFFSDE_WARNINGS_AS_ERRORS=ON
         -DDIFFSDE_WITH_TORCH=OFF)
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
cmake -S . -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)"
ctest --test-dir "$dir" --output-on-failure -j"$(nproc)"
