#!/usr/bin/env bash
# Configures and builds terse in ./build (or $TERSE_BUILD_DIR) against the Kokkos and Kokkos Kernels that
# scripts/setup.sh chose, through ccache when it is there. Extra arguments go to the CMake configure step (e.g.
# -Dterse_ENABLE_BENCHMARKS=OFF).
set -euo pipefail
cd "$(dirname "$0")/.."
TERSE_DEPS=${TERSE_DEPS:-${XDG_CACHE_HOME:-$HOME/.cache}/terse-deps}
build=${TERSE_BUILD_DIR:-build}
kokkos_root=$(cat "$TERSE_DEPS/kokkos-root" 2>/dev/null) || { echo "[terse build] run scripts/setup.sh first" >&2; exit 1; }
kk_root=$(cat "$TERSE_DEPS/kokkoskernels-root" 2>/dev/null) || { echo "[terse build] run scripts/setup.sh first (no Kokkos Kernels chosen yet)" >&2; exit 1; }
jobs=${TERSE_JOBS:-$(nproc)}
# ccache (installed by setup.sh) keeps compiled objects between builds and clones in $TERSE_DEPS/ccache;
# TERSE_CCACHE=0 turns it off.
launcher=()
if [[ ${TERSE_CCACHE:-1} != 0 ]] && command -v ccache >/dev/null; then
  export CCACHE_DIR=${CCACHE_DIR:-$TERSE_DEPS/ccache} CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
  export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G} CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B "$build" -DKokkos_ROOT="$kokkos_root" -DKokkosKernels_ROOT="$kk_root" "${launcher[@]}" "$@"
cmake --build "$build" -j "$jobs"
