#!/usr/bin/env bash
# The sanitizer job (CI runs it after scripts/test.sh): builds terse's own code with AddressSanitizer and
# UndefinedBehaviorSanitizer (-Dterse_ENABLE_SANITIZERS=ON) in ./build-sanitize (or $TERSE_SANITIZE_BUILD_DIR)
# and runs the whole CTest suite there. Any memory error or undefined behaviour fails the test it happens in.
# Leaks: Open MPI keeps memory until the process ends, which LeakSanitizer reports, so leak checking is off for
# the suite and on again for a second pass over the tests that do not start MPI (the GoogleTest unit and driver
# tests: every test but driver.*, mpi.*, checkpoint.*, packaging.* and validation.*). The seed experiments
# (validation.*) run once here, the cheapest of them: the normal job checks them all. checkpoint.signals and
# checkpoint.kills (about 5 minutes of SIGTERMs and SIGKILLs at random moments, then restarts) test how the
# program's processes end, which the normal job checks; the code they reach (checkpoint writing and reading,
# restart) runs here under the sanitizers through RunRestart (mpi.*), checkpoint.refusals (damaged and
# mismatched files) and checkpoint.rank_death. Extra arguments go to ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TERSE_BUILD_DIR=${TERSE_SANITIZE_BUILD_DIR:-build-sanitize}
bash scripts/build.sh -Dterse_ENABLE_SANITIZERS=ON -Dterse_ENABLE_TESTS=ON -Dterse_ENABLE_BENCHMARKS=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo
source scripts/mpi-env.sh
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
echo "[terse sanitizers] the whole suite but the seed experiments (leak checking off: Open MPI's allocations)"
ASAN_OPTIONS=detect_leaks=0 ctest --test-dir "$TERSE_BUILD_DIR" --output-on-failure -j "$(nproc)" --timeout 900 \
  -LE validation -E '^checkpoint\.(signals|kills)$' "$@"
# The seed experiments are minutes of plain runs (the normal job checks their numbers); one of them takes the
# driver through complete runs under the sanitizers: the vote experiment (80 runs of 1 to 8 workers, and the
# Lemma 8 probe's 16 one-step runs of 200000 coordinates). The success probabilities' code, which the batch
# experiment now runs with 8192 draws a row (minutes under the sanitizers), is checked here by
# RunSuccessProbability (mpi.*).
echo "[terse sanitizers] one seed experiment"
ASAN_OPTIONS=detect_leaks=0 ctest --test-dir "$TERSE_BUILD_DIR" --output-on-failure --timeout 900 --no-tests=error \
  -R '^validation\.seed001_rosenbrock_vote$'

echo "[terse sanitizers] the tests without MPI, with leak checking"
ASAN_OPTIONS=detect_leaks=1 ctest --test-dir "$TERSE_BUILD_DIR" --output-on-failure -j "$(nproc)" --timeout 900 --no-tests=error \
  -E '^(driver|mpi|checkpoint|packaging|validation)\.' "$@"
