#!/usr/bin/env bash
# Regenerates the end-to-end tables of bench/README.md: terse_bench_pipeline on 2 and 4 ranks (1 OpenMP thread
# per rank on the 2-core development machine; THREADS changes it), d = 2^20, 2^22, 2^24, 2^26 ($DIMS), then
# the numpy comparison of sign pack/unpack, then bench/compare.py over the results. Needs a build with
# benchmarks and drivers (scripts/build.sh). Writes bench/results/pipeline-<host>-p{2,4}.json,
# bench/results/numpy-<host>.json and bench/results/pipeline-<host>.png.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/mpi-env.sh
host=$(hostname -s)
dims=${DIMS:-20,22,24,26}
mkdir -p bench/results
for p in ${RANKS:-2 4}; do
  OMP_NUM_THREADS=${THREADS:-1} OMP_PROC_BIND=${OMP_PROC_BIND:-false} terse_mpiexec "$p" build/bin/terse_bench_pipeline \
    --dims "$dims" --repeats "${REPEATS:-10}" --out "bench/results/pipeline-$host-p$p.json" >&2
done
/usr/bin/python3 bench/numpy_compare.py --threads "${NUMPY_THREADS:-2}" --out "bench/results/numpy-$host.json"
files=()
for p in ${RANKS:-2 4}; do files+=("bench/results/pipeline-$host-p$p.json"); done
/usr/bin/python3 bench/compare.py --plot "bench/results/pipeline-$host.png" "${files[@]}"
