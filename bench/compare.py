#!/usr/bin/python3
"""Tables (and a plot) from terse benchmark result files, one machine or several side by side.

usage: compare.py [--plot OUT.png] [--label NAME ...] RESULT.json [RESULT.json ...]

A result file is either terse_bench_pipeline's JSON (bench/run_pipeline.sh) or terse_bench_kernels' Google
Benchmark JSON (bench/run_kernels.sh). Every file says what it ran on (CPU or GPU, Kokkos version and backend,
threads, ranks, compiler, MPI); the first table lists that. Then:

  pipeline files:  per algorithm and d, each file's median seconds per iteration, its ratio to the same file's
                   sgd (the fp32 allreduce path; the median of the paired ratios where the file has them,
                   ratio_to_sgd), bytes per rank and their ratio to sgd's, and the projection
                   onto the network recorded in the file; with one file, also the scaling fit (slope of
                   log time against log d, linear when about 1), bytes per rank against the number of ranks
                   (when files with different rank counts are given), and memory against the state formula;
  kernel files:    per kernel, each file's GB/s and ratio to its STREAM-like reference.

--plot draws seconds per iteration at the largest d (pipeline files) or the ratios to the references (kernel
files), one bar per file, so a CPU node and a GPU node read as one comparison. Needs numpy and matplotlib from
Debian: run with /usr/bin/python3.
"""
import argparse
import json
import math
import os
import sys
from collections import OrderedDict


def load(path):
    with open(path) as f:
        data = json.load(f)
    kind = "pipeline" if data.get("benchmark") == "terse_bench_pipeline" else "kernels"
    return kind, data


def describe(kind, data):
    c = data.get("context", {})
    if kind == "pipeline":
        return OrderedDict([
            ("host", c.get("host")), ("cpu", c.get("cpu")), ("gpu", c.get("gpu")), ("kokkos", c.get("kokkos_version")),
            ("backend", c.get("execution_space")), ("threads/rank", c.get("threads_per_rank")), ("ranks", c.get("ranks")),
            ("compiler", c.get("compiler")), ("mpi", c.get("mpi")), ("date", c.get("date"))])
    return OrderedDict([
        ("host", c.get("host_name")), ("cpu", c.get("cpu_model", f"{c.get('num_cpus', '?')} CPUs")),
        ("gpu", c.get("gpu", "none")), ("kokkos", c.get("kokkos_version")), ("backend", c.get("execution_space")),
        ("threads/rank", c.get("concurrency")), ("ranks", "1"), ("compiler", c.get("compiler", "?")),
        ("mpi", "-"), ("date", c.get("date"))])


def table(header, rows):
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")
    print()


def fit_slope(xs, ys):
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((a - mx) ** 2 for a in lx)
    sxy = sum((a - mx) * (b - my) for a, b in zip(lx, ly))
    slope = sxy / sxx
    ss_res = sum((b - (my + slope * (a - mx))) ** 2 for a, b in zip(lx, ly))
    ss_tot = sum((b - my) ** 2 for b in ly)
    return slope, 1 - ss_res / ss_tot if ss_tot > 0 else 1.0


def pipeline_tables(files):
    labels = [lab for lab, _ in files]
    keys = OrderedDict()
    for _, d in files:
        for r in d["results"]:
            keys[(r["algorithm"], r["d"])] = True
    by = [{(r["algorithm"], r["d"]): r for r in d["results"]} for _, d in files]
    header = ["algorithm", "log2 d"]
    for lab in labels:
        header += [f"{lab}: s/iter", "t / t_sgd (paired)", "bytes/rank", "B / B_sgd", "projected s"]
    rows = []
    for (alg, dim) in keys:
        row = [f"`{alg}`", int(round(math.log2(dim)))]
        for b in by:
            r, s = b.get((alg, dim)), b.get(("sgd", dim))
            if r is None:
                row += ["-"] * 5
                continue
            # The paired ratio (iterations alternated with sgd's, median of the ratios) where the file has it.
            ratio = r.get("ratio_to_sgd") or (r["seconds"] / s["seconds"] if s else None)
            row += [f"{r['seconds']:.4g}", f"{ratio:.3f}" if ratio else "-",
                    f"{r['bytes_per_rank']:.4g}",
                    f"{r['bytes_per_rank'] / s['bytes_per_rank']:.4f}" if s and s["bytes_per_rank"] > 0 else "-",
                    f"{r['projected_seconds']:.4g}"]
        rows.append(row)
    table(header, rows)
    # Phases of each configuration, one file at a time.
    for lab, d in files:
        print(f"Phases ({lab}; slowest rank, medians; compute = iteration - time inside MPI collectives):\n")
        table(["algorithm", "log2 d", "compress s", "exchange s", "apply s", "compute s", "MPI s", "collectives"],
              [[f"`{r['algorithm']}`", int(round(math.log2(r["d"]))), f"{r['compress_seconds']:.4g}",
                f"{r['exchange_seconds']:.4g}", f"{r['apply_seconds']:.4g}", f"{r['compute_seconds']:.4g}",
                f"{r['mpi_seconds']:.4g}", f"{r['collectives']:.0f}"] for r in d["results"]])
    # Scaling against d, per file.
    for lab, d in files:
        algs = OrderedDict((r["algorithm"], True) for r in d["results"])
        rows = []
        for a in algs:
            pts = sorted((r["d"], r["seconds"]) for r in d["results"] if r["algorithm"] == a)
            big = [p for p in pts if p[0] >= 1 << 22]  # beyond the caches: 2^20 fp32 values fit in L2/L3
            pts = big if len(big) >= 2 else pts
            if len(pts) >= 2:
                slope, r2 = fit_slope([p[0] for p in pts], [p[1] for p in pts])
                rows.append([f"`{a}`", " ".join(f"2^{int(round(math.log2(p[0])))}" for p in pts), f"{slope:.3f}",
                             f"{r2:.4f}", "yes" if 0.85 <= slope <= 1.15 and r2 > 0.98 else "no"])
        if rows:
            print(f"Time against d ({lab}): slope of log(seconds) on log(d) for d >= 2^22 (beyond the caches); "
                  "linear when about 1.\n")
            table(["algorithm", "d", "slope", "r^2", "linear"], rows)
    # Bytes per rank against the number of ranks (files with different ranks).
    ranks = sorted({int(d["context"]["ranks"]) for _, d in files})
    if len(ranks) > 1:
        print("Bytes handed to MPI per rank and iteration against the number of ranks P:\n")
        per = {}
        for _, d in files:
            P = int(d["context"]["ranks"])
            for r in d["results"]:
                per[(r["algorithm"], r["d"], P)] = r["bytes_per_rank"]
        rows = []
        for (alg, dim) in keys:
            vals = [per.get((alg, dim, P)) for P in ranks]
            row = [f"`{alg}`", int(round(math.log2(dim)))] + [f"{v:.4g}" if v is not None else "-" for v in vals]
            present = [v for v in vals if v]
            row.append(f"{max(present) / min(present):.3f}" if len(present) > 1 else "-")
            rows.append(row)
        table(["algorithm", "log2 d"] + [f"P = {P}" for P in ranks] + ["max / min"], rows)
    # Memory at the largest d.
    for lab, d in files:
        rows = [[f"`{r['algorithm']}`", int(round(math.log2(r["d"]))), f"{r['rss_peak_bytes'] / 2**20:.1f}",
                 f"{r['kokkos_peak_bytes'] / 2**20:.1f}", f"{r['formula_bytes'] / 2**20:.1f}",
                 f"{r['rss_peak_bytes'] / r['formula_bytes']:.3f}"]
                for r in d["results"] if r.get("rss_peak_bytes", -1) > 0]
        if rows:
            print(f"Memory per rank ({lab}): peak resident memory above the process's before the pieces were built, "
                  "Kokkos's allocation peak, and the state formula (docs/architecture.md, Memory).\n")
            table(["algorithm", "log2 d", "RSS peak MiB", "Kokkos MiB", "formula MiB", "RSS / formula"], rows)


def kernel_tables(files):
    labels = [lab for lab, _ in files]
    by = []
    names = OrderedDict()
    for _, d in files:
        m = {}
        for b in d["benchmarks"]:
            if b.get("run_type") == "aggregate" or "ratio_to_ref" not in b:
                continue
            name = b["name"].replace("/manual_time", "")
            m[name] = b
            names[name] = True
        by.append(m)
    header = ["kernel"]
    for lab in labels:
        header += [f"{lab}: GB/s", "ratio"]
    rows = []
    for n in names:
        row = [f"`{n}`"]
        for m in by:
            b = m.get(n)
            row += [f"{b['median_GBps']:.2f}", f"{b['ratio_to_ref']:.2f}"] if b else ["-", "-"]
        rows.append(row)
    table(header, rows)


def plot(files, kind, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=100)
    width = 0.8 / len(files)
    if kind == "pipeline":
        dmax = max(r["d"] for _, d in files for r in d["results"])
        algs = list(OrderedDict((r["algorithm"], True) for _, d in files for r in d["results"] if r["d"] == dmax))
        for i, (lab, d) in enumerate(files):
            m = {r["algorithm"]: r["seconds"] for r in d["results"] if r["d"] == dmax}
            ax.bar(np.arange(len(algs)) + i * width, [m.get(a, 0) for a in algs], width, label=lab)
        ax.set_xticks(np.arange(len(algs)) + 0.4 - width / 2)
        ax.set_xticklabels(algs)
        ax.set_ylabel(f"seconds per iteration, d = 2^{int(round(math.log2(dmax)))}")
        ax.set_title("communication path per iteration (slowest rank, median)")
    else:
        names = list(OrderedDict((b["name"].replace("/manual_time", ""), True) for _, d in files for b in d["benchmarks"]
                                 if "ratio_to_ref" in b and b.get("run_type") != "aggregate"))
        for i, (lab, d) in enumerate(files):
            m = {b["name"].replace("/manual_time", ""): b["ratio_to_ref"] for b in d["benchmarks"] if "ratio_to_ref" in b}
            ax.bar(np.arange(len(names)) + i * width, [m.get(n, 0) for n in names], width, label=lab)
        ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2)
        ax.set_xticklabels([n.split("/")[0].replace("BM_", "") for n in names], rotation=80, fontsize=7)
        ax.axhline(0.8, color="gray", lw=0.8, ls="--")
        ax.set_ylabel("ratio to the STREAM-like reference")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--label", action="append", help="a name per file (default: host, backend, ranks)")
    ap.add_argument("--plot")
    a = ap.parse_args()
    loaded = [load(p) for p in a.files]
    kinds = {k for k, _ in loaded}
    if len(kinds) > 1:
        sys.exit("compare.py: give pipeline files or kernel files, not both")
    kind = kinds.pop()
    labels = a.label or []
    files = []
    for i, (k, d) in enumerate(loaded):
        desc = describe(k, d)
        lab = labels[i] if i < len(labels) else f"{desc['host']} {desc['backend']} P={desc['ranks']}"
        files.append((lab, d))
    print("What each file ran on:\n")
    descs = [describe(k, d) for k, d in loaded]
    table(["", *[lab for lab, _ in files]], [[key, *[str(ds[key]) for ds in descs]] for key in descs[0]])
    (pipeline_tables if kind == "pipeline" else kernel_tables)(files)
    if a.plot:
        plot(files, kind, a.plot)


if __name__ == "__main__":
    main()
