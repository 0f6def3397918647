#!/usr/bin/python3
"""The overlap table of bench/README.md from bench/cluster/run_overlap.sh's results.

usage: overlap_table.py overlap-HOST-{shm,net}-pP-chunk{0,ed}.json ...

For every algorithm, P and d, on shared memory and over the links: seconds per iteration with one chunk (the
blocking collectives, "before") and chunked ("after"), the compute (time outside MPI) and the communication of the
unchunked run, their sum and their max, and each time over the max. Communication is the unchunked run's time
inside MPI on shared memory and the busiest rank's wire bytes at the link rate over the links (what the links
cannot do faster). Markdown on stdout."""
import json
import re
import sys
from collections import OrderedDict

runs = OrderedDict()  # (where, P, d, alg) -> {"0": row, "default": row}
for path in sys.argv[1:]:
    m = re.search(r"-(shm|net)-p(\d+)-chunk(\w+)\.json$", path)
    if not m:
        sys.exit(f"overlap_table.py: {path}: not an overlap-HOST-{{shm,net}}-pP-chunkC.json file")
    where, P, chunk = m.group(1), int(m.group(2)), m.group(3)
    data = json.load(open(path))
    for r in data["results"]:
        if r["algorithm"] == "sgd":
            continue
        runs.setdefault((where, P, r["d"], r["algorithm"]), {})[chunk] = (r, data)

print("| where | P | log2 d | algorithm | chunks | before s | after s | compute s | comm s | sum s | max s "
      "| before/max | after/max | after/before |")
print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for (where, P, d, alg), v in runs.items():  # v: "0" one chunk, "ed" chunked
    if "0" not in v or "ed" not in v:
        continue
    before, data = v["0"]
    after, _ = v["ed"]
    compute = before["compute_seconds"]
    if where == "net":
        comm = before["wire_model_bytes_max"] * 8 / (data["network"]["link_gbps"] * 1e9)
    else:
        comm = before["mpi_seconds"]
    total, top = compute + comm, max(compute, comm)
    label = "1 Gbit/s" if where == "net" else "shared memory"
    print(f"| {label} | {P} | {d.bit_length() - 1} | {alg} | {after['chunks']} | {before['seconds']:.4g} | "
          f"{after['seconds']:.4g} | {compute:.3g} | {comm:.3g} | {total:.3g} | {top:.3g} | "
          f"{before['seconds'] / top:.2f} | {after['seconds'] / top:.2f} | {after['seconds'] / before['seconds']:.2f} |")
