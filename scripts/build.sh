#!/usr/bin/env bash
# Configures and builds terse in ./build (or $TERSE_BUILD_DIR) against the Kokkos that scripts/setup.sh
# chose. Extra arguments go to the CMake configure step (e.g. -Dterse_ENABLE_BENCHMARKS=OFF).
set -euo pipefail
cd "$(dirname "$0")/.."
TERSE_DEPS=${TERSE_DEPS:-${XDG_CACHE_HOME:-$HOME/.cache}/terse-deps}
build=${TERSE_BUILD_DIR:-build}
kokkos_root=$(cat "$TERSE_DEPS/kokkos-root" 2>/dev/null) || { echo "[terse build] run scripts/setup.sh first" >&2; exit 1; }
jobs=${TERSE_JOBS:-$(nproc)}
cmake -S . -B "$build" -DKokkos_ROOT="$kokkos_root" "$@"
cmake --build "$build" -j "$jobs"
