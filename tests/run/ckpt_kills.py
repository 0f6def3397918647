#!/usr/bin/python3
"""Twenty SIGKILLs at random moments of a checkpointing run (docs/checkpoint.md: writes are atomic): each kill
hits mpiexec and every rank at once, at a moment after the first checkpoint exists, often while one is being
written (a checkpoint every 20 updates). Every time, the newest checkpoint on disk loads, and the run restarted
from it completes with the uninterrupted run's history and final model, bitwise."""
import glob
import os
import random
import time

import ckpt_lib as lib

args = lib.arguments(__doc__)
t = lib.failures()
ranks = 2
kills = 20
rng = random.Random(args.seed)
print(f"seed {args.seed}")
wd = lib.workdir("kills")
every = ["--set", "run.checkpoint.every=20", "--set", "run.iterations=1000"]
# The reference run, timed from its first checkpoint to its end: the span the kills fall in (MPI's start-up,
# slow on some machines, is outside it).
proc = lib.start(args, ranks, "--output", "reference.h5", *every, cwd=wd)
lib.wait_for_file(os.path.join(wd, "reference.checkpoint.h5"), proc)
began = time.time()
status = proc.wait(timeout=600)
duration = time.time() - began
t.check(status == 0, f"reference run exits 0 (got {status}); {duration:.2f} s from its first checkpoint to its end")
ckpt = os.path.join(wd, "run.checkpoint.h5")
iterations = []
for n in range(kills):
    for f in glob.glob(os.path.join(wd, "run.*")):
        os.remove(f)
    proc = lib.start(args, ranks, "--output", "run.h5", *every, cwd=wd)
    if not t.check(lib.wait_for_file(ckpt, proc), f"kill {n + 1}: the run writes its first checkpoint"):
        lib.kill_tree(proc)
        continue
    delay = rng.uniform(0.0, 0.9 * duration)
    time.sleep(delay)
    finished = proc.poll() is not None
    left = lib.kill_tree(proc)
    t.check(not left, f"kill {n + 1}: SIGKILL {delay:.3f} s after the first checkpoint, no process left {left}")
    temporary = os.path.exists(ckpt + ".tmp")
    try:
        it = lib.checkpoint_iteration(ckpt)
    except Exception as e:  # noqa: BLE001 -- any failure to read is what this test looks for
        t.check(False, f"kill {n + 1}: the newest checkpoint opens with h5py ({e})")
        continue
    iterations.append(it)
    status, out, err = lib.run(args, ranks, "--output", "run.h5", *every, "--restart", ckpt, cwd=wd)
    ok = t.check(status == 0, f"kill {n + 1}: restart from iteration {it}{' (a .tmp was left: killed mid-write)' if temporary else ''}"
                 f"{' (the run had ended)' if finished else ''} exits 0 (got {status}) {err[-300:]}")
    if ok:
        why = lib.same_output(os.path.join(wd, "reference.h5"), os.path.join(wd, "run.h5"))
        t.check(why == "", f"kill {n + 1}: the restarted run equals the uninterrupted one bitwise {why}")
t.check(len(set(iterations)) >= kills // 2, f"the kills fell at many different moments: {iterations}")
t.exit(wd)
