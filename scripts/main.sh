#!/usr/bin/env bash
# The README's main command: set up (scripts/setup.sh), build (scripts/build.sh), and run the main job:
# `terse demo` on $TERSE_RANKS MPI ranks (default 2), majority-vote signSGD with 1 bit per coordinate.
# Extra arguments go to `terse demo` (see `build/bin/terse demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh -Dterse_ENABLE_TESTS=OFF -Dterse_ENABLE_BENCHMARKS=OFF
source scripts/mpi-env.sh
ranks=${TERSE_RANKS:-2}
build/bin/terse info
terse_mpiexec "$ranks" build/bin/terse demo "$@"
