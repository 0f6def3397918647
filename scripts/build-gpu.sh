#!/usr/bin/env bash
# The GPU compile jobs (CI runs both): `bash scripts/build-gpu.sh cuda` or `bash scripts/build-gpu.sh hip`.
#
#  1. installs the Debian packages terse needs (scripts/setup.sh, packages only) and the backend's toolkit:
#     CUDA 11.8 (nvidia-cuda-toolkit, Debian non-free) with g++-11, or HIP 5.2.3 (hipcc, libamdhip64-dev);
#  2. builds Kokkos 4.6.01 for that backend (scripts/kokkos4.sh: CUDA for $TERSE_CUDA_ARCH, default HOPPER90;
#     HIP for $TERSE_HIP_ARCH, default AMD_GFX90A) into $TERSE_DEPS, once;
#  3. configures and builds all of terse with it in ./build-<backend>[-<arch>] (or $TERSE_BUILD_DIR): the
#     kernels, the terse program, the unit, driver and MPI tests and the benchmarks;
#  4. fails when the compiler warns about any file of terse's own (kernels/, drivers/, tests/, bench/).
#
# TERSE_GPU_TARGETS="t1 t2" builds only those targets (CI: the kernel targets for a second architecture).
#
# No GPU is needed: the tests are registered to be discovered when they run (PRE_TEST), so the binaries can
# be carried to a GPU node (scripts/prepare-h200.sh). Extra arguments go to terse's CMake configure step.
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${1:-}
case $backend in cuda | hip) shift ;; *) echo "usage: scripts/build-gpu.sh cuda|hip [cmake args]" >&2; exit 2 ;; esac
source scripts/kokkos4.sh

TERSE_SETUP_PACKAGES_ONLY=1 bash scripts/setup.sh
gpu_toolkit "$backend"
kokkos4_build "$backend"
arch=$(kokkos4_arch "$backend")
build=${TERSE_BUILD_DIR:-build-$backend-${arch,,}}
prefix=$(kokkos4_prefix "$backend")
cxx=$(kokkos4_cxx "$backend")

k4_log "building terse for $backend ($arch) in $build with $cxx"
mkdir -p "$build"
log=$build/terse-configure.log
cmake -S . -B "$build" -DKokkos_ROOT="$prefix" -DKokkosKernels_ROOT="$(kk4_prefix "$backend")" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=Release \
  -Dterse_ENABLE_NATIVE=OFF -Dterse_ENABLE_TESTS=ON -Dterse_ENABLE_BENCHMARKS=ON \
  -DCMAKE_GTEST_DISCOVER_TESTS_DISCOVERY_MODE=PRE_TEST "$@" >"$log" 2>&1 \
  || { tail -n 40 "$log" >&2; k4_die "configuring terse for $backend failed (log: $log)"; }
log=$build/terse-build.log
start=$SECONDS
set +e
targets=()
for t in ${TERSE_GPU_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$build" -j "${TERSE_JOBS:-$(nproc)}" "${targets[@]}" >"$log" 2>&1
status=$?
set -e
if ((status != 0)); then
  grep -E -B2 -A12 'error' "$log" | head -n 120 >&2
  k4_die "building terse for $backend failed (log: $log)"
fi
k4_log "built in $((SECONDS - start)) s"

# Warnings in terse's own files (nvcc: 'file(line): warning #...'; clang/gcc: 'file:line:col: warning:').
here=$(pwd)
own='(^|[ /])('"$here"'/)?(kernels|drivers|tests|bench)/[^ :(]+(:[0-9]+:[0-9]+: warning|\([0-9]+\): warning)'
if grep -E "$own" "$log" >"$build/terse-warnings.log"; then
  sort -u "$build/terse-warnings.log" | head -n 40 >&2
  k4_die "the $backend build warns about terse's own code ($(sort -u "$build/terse-warnings.log" | wc -l) lines, log: $log)"
fi
rm -f "$build/terse-warnings.log"
k4_log "terse builds for $backend ($arch) without warnings in its own code (${TERSE_GPU_TARGETS:-all targets}); binaries in $build/bin:"
ls "$build/bin" >&2
