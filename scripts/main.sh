#!/usr/bin/env bash
# The README's main command: set up (scripts/setup.sh), build (scripts/build.sh), and run the main job:
# `terse run inputs/mlp_fashion_mnist_majority_vote.yaml` on $TERSE_RANKS MPI ranks (default 2): a one-hidden-
# layer network on Fashion-MNIST trained by majority-vote signSGD, 1 bit per coordinate each way; prints
# progress and the final test accuracy, writes mlp_fashion_mnist_majority_vote.h5. Extra arguments go to
# `terse run` (e.g. --set run.iterations=100; see `build/bin/terse run --help`). TERSE_DECK names another deck
# (the second example: TERSE_DECK=inputs/cnn_fashion_mnist_majority_vote.yaml, seed 000's CNN).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh -Dterse_ENABLE_TESTS=OFF -Dterse_ENABLE_BENCHMARKS=OFF
source scripts/mpi-env.sh
ranks=${TERSE_RANKS:-2}
build/bin/terse info
terse_mpiexec "$ranks" build/bin/terse run "${TERSE_DECK:-inputs/mlp_fashion_mnist_majority_vote.yaml}" "$@"
