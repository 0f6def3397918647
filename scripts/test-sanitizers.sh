#!/usr/bin/env bash
# The sanitizer job, which is also the Kokkos 4.x job (CI runs it after scripts/test.sh): builds Kokkos 4.6.01
# (OpenMP + Serial) and Kokkos Kernels 4.6.01 (BLAS component, OpenBLAS) from their release sources once (scripts/kokkos4.sh; ../shared/vendor or $TERSE_KOKKOS_TARBALL),
# builds terse and its tests against it with AddressSanitizer and UndefinedBehaviorSanitizer on terse's own code
# (-Dterse_ENABLE_SANITIZERS=ON) in ./build-sanitize (or $TERSE_SANITIZE_BUILD_DIR), checks that the program
# reports Kokkos 4.6, and runs the CTest suite there. So the suite runs on Kokkos 3.4.01 (the normal job) and on
# Kokkos 4.6.01 (here), and any memory error or undefined behaviour fails the test it happens in.
# Leaks: Open MPI keeps memory until the process ends, which LeakSanitizer reports, so leak checking is off for
# the suite and on again for a second pass over the tests that do not start MPI (the GoogleTest unit and driver
# tests: every test but driver.*, mpi.*, checkpoint.*, cluster.*, packaging.* and validation.*). Left to the
# normal job, where they take a tenth of the time: the seed experiments (validation.*: hundreds of program
# launches), checkpoint.signals and checkpoint.kills (minutes of SIGTERMs and SIGKILLs at random moments, then
# restarts), cluster.tcp (timings over shaped links), the MPI tests at 4 ranks (1, 2 and 3 run here: 3 gives the
# uneven server slices), and the program's refusals of bad input (driver.run.bad.*,
# checkpoint.refusals: dozens of launches, each starting MPI, several seconds apiece under the sanitizers). The
# code they reach runs here under the sanitizers all the same: whole runs of every algorithm through run_deck
# (RunReference, RunRestart: mpi.*), the readers in the fuzzers' ASan builds (scripts/test-fuzz.sh: decks,
# LibSVM, IDX, checkpoints) and the deck tests (unit), the ways a job ends in checkpoint.rank_death (the
# watchdog too). Extra arguments go to ctest. (scripts/test-kokkos4.sh runs the suite on Kokkos 4.6 without the
# sanitizers, benchmarks included.)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/kokkos4.sh
bash scripts/setup.sh
kokkos4_build openmp
export TERSE_BUILD_DIR=${TERSE_SANITIZE_BUILD_DIR:-build-sanitize}
bash scripts/build.sh -DKokkos_ROOT="$(kokkos4_prefix openmp)" -DKokkosKernels_ROOT="$(kk4_prefix openmp)" -Dterse_ENABLE_SANITIZERS=ON -Dterse_ENABLE_TESTS=ON \
  -Dterse_ENABLE_BENCHMARKS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
info=$(OMP_NUM_THREADS=1 OMP_PROC_BIND=false ASAN_OPTIONS=detect_leaks=0 "$TERSE_BUILD_DIR/bin/terse" info)  # Open MPI keeps memory
echo "$info" >&2
grep -qE "Kokkos: +${KOKKOS4_VERSION%%.*}\.$((10#$(cut -d. -f2 <<<"$KOKKOS4_VERSION")))\." <<<"$info" \
  || k4_die "$TERSE_BUILD_DIR/bin/terse does not report Kokkos $KOKKOS4_VERSION"
source scripts/mpi-env.sh
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
echo "[terse sanitizers] the suite but what the normal job runs alone (leak checking off: Open MPI's allocations)"
ASAN_OPTIONS=detect_leaks=0 ctest --test-dir "$TERSE_BUILD_DIR" --output-on-failure -j "$(nproc)" --timeout 900 \
  -LE validation -E '^(checkpoint\.(signals|kills|refusals)|cluster\..*|driver\.run\.bad\..*|mpi\.np4)$' "$@"
echo "[terse sanitizers] the tests without MPI, with leak checking"
ASAN_OPTIONS=detect_leaks=1 ctest --test-dir "$TERSE_BUILD_DIR" --output-on-failure -j "$(nproc)" --timeout 900 --no-tests=error \
  -E '^(driver|mpi|checkpoint|cluster|packaging|validation)\.' "$@"
