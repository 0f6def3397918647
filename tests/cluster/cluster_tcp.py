#!/usr/bin/python3
"""The simulated cluster over TCP (bench/cluster/cluster.sh, issue: clusters over real TCP), in about a minute:

1. P = 2 hosts on 1 Gbit/s links, d = 2^21, the pipeline benchmark (majority_vote and sgd, each timed alone):
   traffic crossed the shaped links (the harness's interface counters), the bytes the interfaces counted per
   iteration match terse's own count within 5 %, sgd is no faster than its bytes at the link rate (the link is
   shaped), and the 1-bit path beats sgd by a wide band (at least 4x; it moves 32x fewer bytes).
2. A link that goes down mid-run (`ip link set eth0 down` in host 1): the watchdog (run.watchdog: 5) ends the job
   well before TCP would give up, with a message naming the rank and the iteration and exit status 4; the last
   checkpoint is intact, no history file appears under the final name, and a restart from that checkpoint (on
   one machine) ends bitwise equal to a run that was never interrupted.

Skips (status 77) with the reason where network namespaces cannot be made (not root)."""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "run"))
import ckpt_lib as lib  # noqa: E402

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--cluster", required=True, help="bench/cluster/cluster.sh")
p.add_argument("--terse", required=True)
p.add_argument("--bench", required=True, help="terse_bench_pipeline")
p.add_argument("--mpiexec", required=True)
p.add_argument("--deck", required=True, help="the checkpoint tests' deck")
args = p.parse_args()
for key in ("cluster", "terse", "bench", "deck"):  # the runs happen in a work directory
    setattr(args, key, os.path.abspath(getattr(args, key)))

probe = subprocess.run(["bash", args.cluster, "--probe"], capture_output=True, text=True)
if probe.returncode != 0:
    print(f"skipped: {probe.stderr.strip() or probe.stdout.strip()}")
    sys.exit(77)

t = lib.failures()
wd = lib.workdir("cluster")
env = dict(lib.ENV)
env.pop("OMPI_MCA_rmaps_base_oversubscribe", None)
rate_gbps = 1.0


def cluster(*rest, limit, extra=()):
    return ["bash", args.cluster, "-n", "2", "-r", "1gbit", "-t", str(limit), *extra, "--", *rest]


# ---- 1. the benchmark over the shaped links ----
counters = os.path.join(wd, "counters.json")
result = os.path.join(wd, "pipeline.json")
began = time.time()
run = subprocess.run(cluster(args.bench, "--dims", "21", "--algorithms", "majority_vote", "sgd", "--repeats", "9",
                             "--warmup", "2", "--unpaired", "--link-gbps", str(rate_gbps), "--interface", "eth0",
                             "--out", result, limit=180, extra=("--counters", counters)),
                     cwd=wd, env=env, capture_output=True, text=True)
print(run.stdout[-3000:], run.stderr[-3000:], sep="\n")
t.check(run.returncode == 0, f"the benchmark ran across 2 simulated hosts (status {run.returncode}, "
        f"{time.time() - began:.0f} s)")
if run.returncode == 0:
    c = json.load(open(counters))
    rows = {r["algorithm"]: r for r in json.load(open(result))["results"]}
    sgd, vote = rows["sgd"], rows["majority_vote"]
    least = 9 * sgd["bytes_per_rank"]
    t.check(all(s >= least for s in c["sent_bytes"]) and all(r >= least for r in c["received_bytes"]),
            f"traffic crossed the shaped links: every host sent and received >= 9 sgd iterations' bytes "
            f"({least:.0f}): sent {c['sent_bytes']}, received {c['received_bytes']}")
    for name, r in rows.items():
        ratio = r["link_sent_bytes"] / r["bytes_per_rank"]
        t.check(abs(ratio - 1) <= 0.05, f"{name}: the interfaces counted {r['link_sent_bytes']:.0f} B per host and "
                f"iteration, terse's own count is {r['bytes_per_rank']:.0f} B per rank (ratio {ratio:.4f}, within 5 %)")
    floor = sgd["bytes_per_rank"] * 8 / (rate_gbps * 1e9)
    t.check(sgd["seconds"] >= floor, f"sgd's iteration ({sgd['seconds'] * 1e3:.1f} ms) is no faster than its bytes "
            f"at 1 Gbit/s ({floor * 1e3:.1f} ms): the links are shaped")
    t.check(vote["seconds"] * 4 <= sgd["seconds"], f"majority_vote ({vote['seconds'] * 1e3:.2f} ms) is at least 4x "
            f"faster than sgd ({sgd['seconds'] * 1e3:.1f} ms) per iteration: {sgd['seconds'] / vote['seconds']:.1f}x")

# ---- 2. a link that goes down mid-run ----
ckpt = os.path.join(wd, "run.checkpoint.h5")
began = time.time()
cut = subprocess.run(cluster(args.terse, "run", args.deck, "--set", "run.iterations=1000000", "--set",
                             "run.watchdog=5", "--set", "run.checkpoint.every=50", "--output", "run.h5",
                             limit=150, extra=("--link-down", "1:6")),
                     cwd=wd, env=env, capture_output=True, text=True)
elapsed = time.time() - began
print(cut.stdout[-1500:], cut.stderr[-3000:], sep="\n")
t.check(cut.returncode == 4, f"the job ended with the watchdog's status 4 (got {cut.returncode}) after "
        f"{elapsed:.0f} s (link down at 6 s; the harness's limit is 150 s)")
t.check(cut.returncode != 127 and elapsed < 60, f"it ended within 60 s ({elapsed:.0f} s), not when TCP gave up")
fired = [line for line in cut.stderr.splitlines() if "no progress for 5 s after iteration" in line]
t.check(bool(fired) and fired[0].startswith("terse: rank "),
        "the watchdog's message names the rank and the iteration: " + (fired[0] if fired else "(none)"))
t.check(not os.path.exists(os.path.join(wd, "run.h5")), "no history file under the final name")
k = lib.checkpoint_iteration(ckpt) if os.path.exists(ckpt) else -1
t.check(k > 0, f"the last checkpoint is intact (iteration {k})")
if k > 0:
    n = k + 100
    ref = lib.run(argparse.Namespace(mpiexec=args.mpiexec, terse=args.terse, deck=args.deck), 2, "--set",
                  f"run.iterations={n}", "--output", "reference.h5", cwd=wd)
    again = lib.run(argparse.Namespace(mpiexec=args.mpiexec, terse=args.terse, deck=args.deck), 2, "--set",
                    f"run.iterations={n}", "--restart", "run.checkpoint.h5", "--output", "restarted.h5", cwd=wd)
    t.check(ref[0] == 0 and again[0] == 0, f"a run of {n} iterations and the restart from iteration {k} ended "
            f"(status {ref[0]}, {again[0]}){ref[2][-500:]}{again[2][-500:]}")
    if ref[0] == 0 and again[0] == 0:
        diff = lib.same_output(os.path.join(wd, "reference.h5"), os.path.join(wd, "restarted.h5"))
        t.check(diff == "", "the restart ends bitwise equal to the uninterrupted run " + diff)
t.exit(wd)
