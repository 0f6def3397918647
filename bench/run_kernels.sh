#!/usr/bin/env bash
# Regenerates the kernel table of bench/README.md: every kernel at d = 2^26 with $THREADS (default 2)
# OpenMP threads, each against its STREAM-like reference in the same run. Needs a build (scripts/build.sh).
# Writes bench/results/kernels-<host>.json and prints the markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${THREADS:-2}
mkdir -p bench/results
out=bench/results/kernels-$(hostname -s).json
OMP_NUM_THREADS=$threads OMP_PROC_BIND=${OMP_PROC_BIND:-false} build/bin/terse_bench_kernels \
  --benchmark_filter="${FILTER:-/67108864}" --benchmark_min_time="${MIN_TIME:-1}" \
  --benchmark_out="$out" --benchmark_out_format=json >&2
python3 bench/kernel_table.py "$out"
