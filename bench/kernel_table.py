#!/usr/bin/env python3
"""Turns a Google Benchmark JSON file of terse_bench_kernels into the markdown table of bench/README.md.

usage: kernel_table.py RESULTS.json

For every kernel: the median bytes/s over the repetitions, the STREAM-like reference it is compared with
(timed interleaved with it in the same run), that reference's median bytes/s and the ratio of the medians;
for the majority vote, the speedup over unpacking to integers and summing.
"""
import json
import sys



def main(path):
    with open(path) as f:
        data = json.load(f)
    ctx = data.get("context", {})
    print(f"Measured {ctx.get('date', '?')} on {ctx.get('host_name', '?')}: {ctx.get('num_cpus', '?')} CPUs, "
          f"Kokkos {ctx.get('kokkos_version', '?')} ({ctx.get('execution_space', '?')}, "
          f"concurrency {ctx.get('concurrency', '?')}), terse {ctx.get('terse_version', '?')}.")
    print()
    print("| kernel | n | median GB/s | reference | reference GB/s | ratio |")
    print("|---|---:|---:|---|---:|---:|")
    votes = []
    for b in data["benchmarks"]:
        if b.get("run_type") == "aggregate":
            continue
        name = b["name"].replace("/manual_time", "")
        family = name.split("<")[0].split("/")[0]
        if family == "BM_MajorityVote":
            votes.append(b)
            continue
        if "ratio_to_ref" not in b:
            continue
        parts = name.split("/")
        n = parts[1] if len(parts) > 1 else "?"
        kernel = f"`{parts[0]}`"
        if family == "BM_SignMean":  # arguments: n, voters W, accumulate
            kernel += f" W = {parts[2]}" + (", accumulate" if parts[3] == "1" else "")
        ref = b.get("label", "?").replace("vs ", "")  # run_against_reference labels the reference
        print(f"| {kernel} | {n} | {b['median_GBps']:.2f} | {ref} | {b['ref_median_GBps']:.2f} | "
              f"{b['ratio_to_ref']:.2f} |")
    if votes:
        print()
        print("| majority vote | n | voters W | bit-sliced GB/s | unpacked GB/s | speedup |")
        print("|---|---:|---:|---:|---:|---:|")
        for b in votes:
            parts = b["name"].split("/")
            print(f"| `majority_vote` | {parts[1]} | {parts[2]} | {b['median_GBps']:.2f} | "
                  f"{b['unpacked_median_GBps']:.3f} | {b['speedup_vs_unpacked']:.1f} |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
