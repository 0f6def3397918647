#!/usr/bin/python3
"""Tables and a plot of terse_bench_pipeline runs over a simulated cluster (bench/cluster/run_network.sh).

usage: network_table.py [--rate 1gbit] [--plot OUT.png] RESULT.json [RESULT.json ...]

Files with the same number of ranks are one cluster size: its sgd row is the faster of the sgd rows the files
hold (Open MPI's default allreduce and the ring forced: run_network.sh writes both). Per cluster size and d, for
every algorithm: seconds per iteration (median), how many times faster than that sgd, its compute (outside
MPI), the wire model's bytes of the busiest rank and the bytes the interface counters saw leave a host, their
ratio to terse's own count, its network bound (compute + wire bytes at the link rate) and t/bound, and the
bound of a perfect overlap (the larger of the two: what the chunked exchange aims at) and t/max. Then the
targets at the largest d and cluster: majority_vote >= 20x faster than sgd and within 1.3x of its bound, every
compressed algorithm within 1.5x, and what limits each row that misses. Markdown on stdout; --plot draws
seconds per iteration at the largest d against the bounds. Run with /usr/bin/python3 (matplotlib)."""
import argparse
import json
from collections import OrderedDict

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("files", nargs="+")
p.add_argument("--rate", default="1gbit", help="the links' rate, as the run used it (for the captions)")
p.add_argument("--plot", help="PNG to draw")
p.add_argument("--mlp", help="run_network.sh's terse run results (the mlp job)")
args = p.parse_args()

UNCOMPRESSED = {"sgd", "amsgrad", "adagrad"}
clusters = OrderedDict()  # ranks -> {"rows": {(alg, d): row}, "sgd": {d: (row, choice)}, "context": ...}
for path in args.files:
    data = json.load(open(path))
    choice = "ring" if path.endswith("-ring.json") else "default"
    for r in data["results"]:
        c = clusters.setdefault(r["ranks"], {"rows": OrderedDict(), "sgd": {}, "context": data["context"],
                                             "network": data["network"]})
        if r["algorithm"] == "sgd":
            best = c["sgd"].get(r["d"])
            if best is None or r["seconds"] < best[0]["seconds"]:
                c["sgd"][r["d"]] = (r, choice)
        if choice == "default":
            c["rows"][(r["algorithm"], r["d"])] = r

def log2(d):
    return d.bit_length() - 1

def overlap_bound(row, c):
    """What a perfect overlap of compute and wire would take: the larger of the two (the chunked exchange's aim)."""
    wire = row["wire_model_bytes_max"] * 8 / (c["network"]["link_gbps"] * 1e9)
    return max(row["compute_seconds"], wire)

misses = []
for P, c in clusters.items():
    ctx = c["context"]
    print(f"\n### P = {P} hosts, {args.rate} links, one rank per host\n")
    print(f"{ctx.get('cpu', '?')}, {ctx.get('threads_per_rank', '?')} thread(s) per rank, Kokkos "
          f"{ctx.get('kokkos_version', '?')}, {ctx.get('mpi', '?')}; {ctx.get('date', '')}\n")
    print("| algorithm | log2 d | chunks | s/iter | x faster than sgd | compute s | wire B/rank | link B/host "
          "| link/terse | bound s | t/bound | max s | t/max |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (alg, d), r in c["rows"].items():
        sgd, choice = c["sgd"][d]
        row = r if alg != "sgd" else sgd
        speed = sgd["seconds"] / row["seconds"]
        name = alg if alg != "sgd" else f"sgd ({choice} allreduce)"
        link = row.get("link_sent_bytes", -1)
        top = overlap_bound(row, c)
        print(f"| {name} | {log2(d)} | {row.get('chunks', 1)} | {row['seconds']:.4g} | {speed:.1f} | "
              f"{row['compute_seconds']:.3g} | {row['wire_model_bytes_max']:.0f} | {link:.0f} | "
              f"{link / row['bytes_per_rank']:.3f} | {row['bound_seconds']:.4g} | "
              f"{row['seconds'] / row['bound_seconds']:.2f} | {top:.4g} | {row['seconds'] / top:.2f} |")

P = max(clusters)
c = clusters[P]
d = max(d for (_, d) in c["rows"])
sgd = c["sgd"][d][0]
print(f"\n### Targets at P = {P}, d = 2^{log2(d)}\n")
print("| algorithm | chunks | x faster than sgd | t/bound | t/max | target | met | what limits it |")
print("|---|---:|---:|---:|---:|---|---|---|")
for (alg, dd), r in c["rows"].items():
    if dd != d or alg in UNCOMPRESSED:
        continue
    speed = sgd["seconds"] / r["seconds"]
    over = r["seconds"] / r["bound_seconds"]
    wire = r["bound_seconds"] - r["compute_seconds"]
    if alg == "majority_vote":
        target, met = ">= 20x, <= 1.3 bound", speed >= 20 and over <= 1.3
    else:
        target, met = "<= 1.5 bound", over <= 1.5
    share = r["compute_seconds"] / r["bound_seconds"]
    limit = (f"compute {r['compute_seconds']:.3g} s ({share:.0%} of the bound)" if share >= 0.5
             else f"the link: {wire:.3g} s of wire bytes")
    extra = r["seconds"] - r["bound_seconds"]
    if extra > 0:
        limit += f"; {extra:.3g} s above the bound in {r['collectives']:.0f} collective(s)"
    print(f"| {alg} | {r.get('chunks', 1)} | {speed:.1f} | {over:.2f} | {r['seconds'] / overlap_bound(r, c):.2f} | "
          f"{target} | {'yes' if met else 'no'} | {limit} |")

if args.mlp:
    rows = json.load(open(args.mlp))["results"]
    if rows:
        r0 = rows[0]
        sgd = [r for r in rows if r["algorithm"] == "sgd"]
        print(f"\n### terse run, the mlp job (d = {r0['dim']}), P = {r0['ranks']} hosts x 3 workers, {r0['rate']} links\n")
        print("| algorithm | s/iteration | x faster than sgd | bytes_sent / iteration (all ranks) | "
              "bytes the hosts sent / iteration | hosts / terse |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in rows:
            t = r["seconds"] / r["iterations"]
            speed = sgd[0]["seconds"] / r["seconds"] if sgd else float("nan")
            b, w = r["bytes_sent"] / r["iterations"], r["link_sent_bytes"] / r["iterations"]
            print(f"| {r['algorithm']} | {t:.4g} | {speed:.2f} | {b:.0f} | {w:.0f} | {w / b:.3f} |")

if args.plot:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(clusters), figsize=(6 * len(clusters), 4.5), squeeze=False)
    for ax, (P, c) in zip(axes[0], clusters.items()):
        d = max(d for (_, d) in c["rows"])
        rows = [(a, r if a != "sgd" else c["sgd"][d][0]) for (a, dd), r in c["rows"].items() if dd == d]
        names = [a for a, _ in rows]
        ax.bar(range(len(rows)), [r["seconds"] for _, r in rows], color="tab:blue", label="measured")
        ax.scatter(range(len(rows)), [r["bound_seconds"] for _, r in rows], color="black", marker="_", s=400,
                   label="bound: compute + wire bytes at the link rate", zorder=3)
        ax.set_yscale("log")
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
        ax.set_ylabel("seconds per iteration")
        ax.set_title(f"P = {P} hosts, {args.rate}, d = 2^{log2(d)}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=110)
    print(f"\nwrote {args.plot}")
