#!/usr/bin/env bash
# The end-to-end tables over a network (bench/README.md, "Over 1 Gbit/s links"): terse_bench_pipeline across a
# simulated cluster (bench/cluster/cluster.sh) of P = 2 and 4 hosts, one rank each, on links shaped to RATE,
# d = 2^22, 2^24, 2^26 ($DIMS), every algorithm with a per-iteration exchange timed alone, the interfaces' byte
# counters read around every iteration. sgd runs twice: with Open MPI's default allreduce choice and with the
# ring forced (coll_tuned algorithm 4); the tables compare every algorithm with the faster of the two. Needs
# root and a build with benchmarks (scripts/build.sh). Writes bench/results/network-<host>-p<P>.json and
# network-<host>-p<P>-ring.json, then the tables and bench/results/network-<host>.png
# (bench/cluster/network_table.py); then terse run on the mlp job across the largest cluster (network-<host>-mlp.json).
#   RANKS="2 4" DIMS=22,24,26 RATE=1gbit REPEATS=5 THREADS=1 bash bench/cluster/run_network.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/mpi-env.sh
host=$(hostname -s)
rate=${RATE:-1gbit}
gbps=$(/usr/bin/python3 -c "import re,sys; m=re.fullmatch(r'([0-9.]+)([kmgt]?)bit', sys.argv[1]); \
print(float(m.group(1)) * {'': 1e-9, 'k': 1e-6, 'm': 1e-3, 'g': 1, 't': 1e3}[m.group(2)])" "$rate")
# More mpirun arguments for every run (MPI_EXTRA="--mca btl_tcp_links 2": two TCP connections per pair of ranks;
# bench/README.md, "Back-to-back collectives"). Default: none, Open MPI's own settings.
mpi_extra=${MPI_EXTRA-}
algorithms=${ALGORITHMS:-sgd,amsgrad,majority_vote,stochastic_sign,ef_signsgd,signum,amsgrad_naive,amsgrad_ef,adagrad,onebit_adam,cd_adam,ef21}
mkdir -p bench/results
export OMP_NUM_THREADS=${THREADS:-1} OMP_PROC_BIND=false
for p in ${RANKS:-2 4}; do
  [[ ${SKIP_PIPELINE:-0} == 1 ]] && continue  # only the mlp job (and the tables from earlier files)
  common=(--dims "${DIMS:-22,24,26}" --repeats "${REPEATS:-5}" --warmup 1 --unpaired --link-gbps "$gbps"
          --interface eth0)
  echo "[terse network] P = $p, $rate: every algorithm (Open MPI's default allreduce for sgd)" >&2
  bash bench/cluster/cluster.sh -n "$p" -r "$rate" -t 1800 --mpi "$mpi_extra" -- "$PWD/build/bin/terse_bench_pipeline" "${common[@]}" \
    --algorithms "$algorithms" --out "$PWD/bench/results/network-$host-p$p.json" >&2
  echo "[terse network] P = $p, $rate: sgd with the ring allreduce" >&2
  bash bench/cluster/cluster.sh -n "$p" -r "$rate" -t 1800 \
    --mpi "$mpi_extra --mca coll_tuned_use_dynamic_rules 1 --mca coll_tuned_allreduce_algorithm 4" \
    -- "$PWD/build/bin/terse_bench_pipeline" "${common[@]}" --algorithms sgd \
    --out "$PWD/bench/results/network-$host-p$p-ring.json" >&2
done
# terse run on the mlp job (inputs/mlp_fashion_mnist_majority_vote.yaml, 3 workers per rank) at the largest P,
# with a wider hidden layer (MLP_HIDDEN, default 1024: d = 814090) so that the gradient is worth sending: the
# iterations' wall time from the history and the bytes the hosts sent against terse's bytes_sent.
p=$(tr ' ' '\n' <<<"${RANKS:-2 4}" | sort -n | tail -1)
work=$(mktemp -d /tmp/terse-network.XXXXXX)
for kind in ${MLP_ALGORITHMS:-sgd majority_vote ef_signsgd cd_adam ef21}; do
  echo "[terse network] P = $p, $rate: terse run, the mlp job with $kind" >&2
  # The main job's problem and batch (inputs/mlp_fashion_mnist_majority_vote.yaml) with each algorithm's defaults.
  cat > "$work/$kind.yaml" <<DECK
problem: {kind: mlp, hidden: ${MLP_HIDDEN:-1024}}
optimizer: {kind: $kind, lr: 0.001}
run: {iterations: ${MLP_ITERATIONS:-100}, batch: 32, seed: 1, log_every: ${MLP_ITERATIONS:-100}}
workers: {per_rank: 3}
DECK
  bash bench/cluster/cluster.sh -n "$p" -r "$rate" -t 1800 --mpi "$mpi_extra" --counters "$work/$kind.json" -- "$PWD/build/bin/terse" run \
    "$work/$kind.yaml" --quiet --output "$work/$kind.h5" >&2
done
/usr/bin/python3 - "$work" "bench/results/network-$host-mlp.json" "$p" "$rate" <<'PY'
import glob, json, os, sys
import h5py
work, out, P, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
rows = []
for c in sorted(glob.glob(os.path.join(work, "*.json")), key=lambda c: c != os.path.join(work, "sgd.json")):
    kind = os.path.basename(c)[:-5]
    counters = json.load(open(c))
    with h5py.File(os.path.join(work, kind + ".h5"), "r") as f:
        it = f["history/iteration"][...]
        rows.append({"algorithm": kind, "dim": int(f["final/x"].shape[0]), "iterations": int(it[-1]),
                     "seconds": float(f["history/wall_time"][-1]), "bytes_sent": float(f["history/bytes_sent"][-1]),
                     "link_sent_bytes": float(sum(counters["sent_bytes"])), "ranks": P, "rate": rate})
json.dump({"benchmark": "terse run (mlp job)", "results": rows}, open(out, "w"), indent=1)
PY
rm -rf "$work"
files=()
for p in ${RANKS:-2 4}; do files+=("bench/results/network-$host-p$p.json" "bench/results/network-$host-p$p-ring.json"); done
/usr/bin/python3 bench/cluster/network_table.py --rate "$rate" --plot "bench/results/network-$host.png" \
  --mlp "bench/results/network-$host-mlp.json" "${files[@]}"
