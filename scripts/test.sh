#!/usr/bin/env bash
# The README's test command: set up (scripts/setup.sh), build everything (scripts/build.sh) and run the
# whole CTest suite: unit tests on every Kokkos backend, MPI tests at 1, 2 and 4 ranks, program tests.
# Extra arguments go to ctest (e.g. -L unit, -R Sign).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh -Dterse_ENABLE_TESTS=ON -Dterse_ENABLE_BENCHMARKS=ON
source scripts/mpi-env.sh
ctest --test-dir "${TERSE_BUILD_DIR:-build}" --output-on-failure -j "$(nproc)" --timeout 600 "$@"
