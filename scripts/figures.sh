#!/usr/bin/env bash
# The figures of docs/validation.md in one command: runs the seed papers' experiments with
# tests/validation/validate.py (the same runs and checks as `ctest -L validation`; about 7 minutes on 2 cores)
# and draws docs/figures/*.png from their HDF5 histories (tests/validation/figures.py).
#   scripts/figures.sh                 run every experiment, then draw
#   scripts/figures.sh --reuse         draw from the histories already in build/validation (after ctest)
#   scripts/figures.sh --experiment seed004_mlp    one experiment (the others' figures are redrawn if present)
# Exit status: validate.py's (1 when a claim does not hold); the figures are drawn either way.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/mpi-env.sh
if [[ ! -x "${TERSE_BUILD_DIR:-build}/bin/terse" ]]; then
  bash scripts/setup.sh
  bash scripts/build.sh
fi
status=0
/usr/bin/python3 tests/validation/validate.py --terse "${TERSE_BUILD_DIR:-build}/bin/terse" \
  --out "${TERSE_BUILD_DIR:-build}/validation" "$@" || status=$?
/usr/bin/python3 tests/validation/figures.py --runs "${TERSE_BUILD_DIR:-build}/validation" --out docs/figures
exit "$status"
