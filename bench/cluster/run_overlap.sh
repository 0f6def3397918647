#!/usr/bin/env bash
# The overlap table of bench/README.md ("Overlap"): the chunked exchange (chunks of $CHUNK coordinates of each
# server slice, default 262144, at every P) against one chunk (--chunk 0, the blocking collectives), for the algorithms that chunk, on shared memory
# (terse_mpiexec, the development machine) and over the simulated cluster's 1 Gbit/s links (cluster.sh, with
# $MPI_EXTRA's mpirun arguments, default none), P = 2 and 4,
# d = 2^24 and 2^26 ($DIMS). Writes bench/results/overlap-<host>-{shm,net}-p<P>-chunk{0,ed}.json, then
# the table (bench/cluster/overlap_table.py). Needs root (the cluster) and a build with benchmarks.
#   RANKS="2 4" DIMS=24,26 REPEATS=5 bash bench/cluster/run_overlap.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/mpi-env.sh
host=$(hostname -s)
algorithms=${ALGORITHMS:-majority_vote,signum,stochastic_sign,ef_signsgd,amsgrad_naive,amsgrad_ef}
mpi_extra=${MPI_EXTRA-}
mkdir -p bench/results
export OMP_NUM_THREADS=${THREADS:-1} OMP_PROC_BIND=false
files=()
for p in ${RANKS:-2 4}; do
  for chunk in 0 ed; do
    opt=(--chunk 0); [[ $chunk == ed ]] && opt=(--chunk "${CHUNK:-262144}")
    common=(--dims "${DIMS:-24,26}" --repeats "${REPEATS:-5}" --warmup 1 --unpaired --algorithms "$algorithms" "${opt[@]}")
    out=bench/results/overlap-$host-shm-p$p-chunk$chunk.json
    echo "[terse overlap] P = $p, shared memory, chunk $chunk" >&2
    terse_mpiexec "$p" build/bin/terse_bench_pipeline "${common[@]}" --out "$out" >&2
    files+=("$out")
    out=bench/results/overlap-$host-net-p$p-chunk$chunk.json
    echo "[terse overlap] P = $p, 1gbit, chunk $chunk" >&2
    bash bench/cluster/cluster.sh -n "$p" -r 1gbit -t 1800 --mpi "$mpi_extra" -- "$PWD/build/bin/terse_bench_pipeline" \
      "${common[@]}" --link-gbps 1 --interface eth0 --out "$PWD/$out" >&2
    files+=("$out")
  done
done
/usr/bin/python3 bench/cluster/overlap_table.py "${files[@]}"
