#!/usr/bin/env bash
# The Kokkos 4.x job (CI runs it after the normal job): builds Kokkos 4.6.01 with the OpenMP and Serial backends
# from its release source (scripts/kokkos4.sh; ../shared/vendor/kokkos-4.6.01.tar.gz or $TERSE_KOKKOS_TARBALL)
# into $TERSE_DEPS once, builds all of terse against it in ./build-kokkos4 (or $TERSE_KOKKOS4_BUILD_DIR) and runs
# the suite there but the seed experiments and the checkpoint tests (the unit tests on both backends, the driver,
# MPI, packaging and benchmark tests); the normal job runs those on Kokkos 3.4.01. Extra arguments go to ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/kokkos4.sh
TERSE_SETUP_PACKAGES_ONLY=1 bash scripts/setup.sh
kokkos4_build openmp
build=${TERSE_KOKKOS4_BUILD_DIR:-build-kokkos4}
k4_log "building terse against Kokkos $KOKKOS4_VERSION (OpenMP, Serial) in $build"
cmake -S . -B "$build" -DKokkos_ROOT="$(kokkos4_prefix openmp)" -DKokkosKernels_ROOT="$(kk4_prefix openmp)" -Dterse_ENABLE_TESTS=ON -Dterse_ENABLE_BENCHMARKS=ON
cmake --build "$build" -j "${TERSE_JOBS:-$(nproc)}"
source scripts/mpi-env.sh
# The program must report the Kokkos it was built with (4.6.1), not one found elsewhere.
info=$(OMP_NUM_THREADS=1 "$build/bin/terse" info)
echo "$info" >&2
grep -qE "Kokkos: +${KOKKOS4_VERSION%%.*}\.$((10#$(cut -d. -f2 <<<"$KOKKOS4_VERSION")))\." <<<"$info" \
  || k4_die "$build/bin/terse does not report Kokkos $KOKKOS4_VERSION"
# Not the seed experiments (minutes of runs the normal job checks) nor the checkpoint label (signals, process kills
# and HDF5 files, the same with either Kokkos; the normal and sanitizer jobs run them).
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" --timeout 600 --no-tests=error -LE 'validation|checkpoint' "$@"
