#!/usr/bin/python3
"""SIGTERM and SIGUSR1 (docs/checkpoint.md): a run asked to stop finishes its iteration, writes a loadable
checkpoint, leaves no history or temporary file and exits with status 75; the restart reproduces the
uninterrupted run bitwise. SIGTERM goes to one rank only (the others must follow); SIGUSR1 to mpiexec, which
forwards it."""
import glob
import os
import signal
import time

import ckpt_lib as lib

args = lib.arguments(__doc__)
t = lib.failures()
ranks = 2
wd = lib.workdir("signals")
# Long enough (about 7 s here) that the signal, sent 0.3 s after the first checkpoint, comes well before the end
# on a faster machine too.
longer = ["--set", "run.iterations=6000"]
status, out, err = lib.run(args, ranks, "--output", "reference.h5", *longer, cwd=wd)
t.check(status == 0, f"reference run exits 0 (got {status}) {err[-400:]}")

for case, sig, target in (("sigterm", signal.SIGTERM, "one rank"), ("sigusr1", signal.SIGUSR1, "mpiexec")):
    out_h5, ckpt = f"{case}.h5", f"{case}.checkpoint.h5"
    proc = lib.start(args, ranks, "--output", out_h5, *longer, cwd=wd)
    pids = lib.rank_processes(proc, ranks)
    # Under way: the first periodic checkpoint exists; then signal.
    t.check(lib.wait_for_file(os.path.join(wd, ckpt), proc), f"{case}: the run writes its first checkpoint")
    first = lib.checkpoint_iteration(os.path.join(wd, ckpt))
    time.sleep(0.3)
    began = time.time()
    os.kill(pids[1] if target == "one rank" else proc.pid, sig)
    status = proc.wait(timeout=120)
    log = open(os.path.join(wd, "stdout.log")).read()
    t.check(status == 75, f"{case} to {target}: exit status 75 (got {status}) after {time.time() - began:.2f} s")
    t.check("stopped by SIG" in log, f"{case}: rank 0 says it stopped: {log.strip().splitlines()[-2:]}")
    it = lib.checkpoint_iteration(os.path.join(wd, ckpt))
    t.check(first <= it < 6000, f"{case}: the checkpoint is at iteration {it} (first periodic one: {first})")
    t.check(f"after iteration {it}:" in log, f"{case}: the message names the checkpoint's iteration {it}")
    t.check(not os.path.exists(os.path.join(wd, out_h5)), f"{case}: no history file under the final name")
    left = [os.path.basename(p) for p in glob.glob(os.path.join(wd, "*tmp*"))]
    t.check(not left, f"{case}: no temporary file left ({left})")
    status, out, err = lib.run(args, ranks, "--output", out_h5, *longer, "--restart", ckpt, cwd=wd)
    t.check(status == 0, f"{case}: the restart from iteration {it} exits 0 (got {status}) {err[-400:]}")
    t.check(f"restarted from {ckpt} at iteration {it}" in out, f"{case}: the restart says where it starts")
    if status == 0:
        why = lib.same_output(os.path.join(wd, "reference.h5"), os.path.join(wd, out_h5))
        t.check(why == "", f"{case}: the restarted run equals the uninterrupted one bitwise {why}")
t.exit(wd)
