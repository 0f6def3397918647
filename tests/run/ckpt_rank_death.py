#!/usr/bin/python3
"""A rank that dies ends the whole job within 60 s with a non-zero status, and no rank hangs in a collective
(docs/checkpoint.md): SIGKILL to one of 4 ranks, an error on one rank only (TERSE_FAULT_INJECT), and a rank that
stops and waits (TERSE_FAULT_INJECT=R:K:hang: the watchdog, run.watchdog), each in the middle of a run that would
otherwise go on for minutes."""
import os
import time

import ckpt_lib as lib

args = lib.arguments(__doc__)
t = lib.failures()
ranks = 4
wd = lib.workdir("rank-death")
long_run = ["--set", "run.iterations=1000000", "--set", "run.log_every=100", "--set", "workers.per_rank=1"]
ckpt = os.path.join(wd, "run.checkpoint.h5")


def wait_for_end(proc, pids, limit):
    """(status or None if still running after `limit` s, seconds waited, ranks still alive afterwards)."""
    began = time.time()
    try:
        status = proc.wait(timeout=limit)
    except Exception:  # noqa: BLE001 -- a job still running is what this test looks for
        status = None
    elapsed = time.time() - began
    return status, elapsed, lib.kill_tree(proc) if status is None else lib.still_alive(pids)


# 1. SIGKILL to one rank (not rank 0) once the run is under way.
proc = lib.start(args, ranks, "--output", "run.h5", *long_run, cwd=wd)
pids = lib.rank_processes(proc, ranks)
t.check(lib.wait_for_file(ckpt, proc), "the run is under way (its first checkpoint exists)")
victim = pids[2]
os.kill(victim, 9)
status, elapsed, left = wait_for_end(proc, pids, 60)
t.check(status is not None and status != 0, f"SIGKILL to rank pid {victim}: the job ended with status {status} "
        f"after {elapsed:.1f} s (limit 60 s)")
t.check(not left, f"no rank left running 10 s after mpiexec returned ({left})")
t.check(lib.checkpoint_iteration(ckpt) > 0, "the last checkpoint is intact")

# 2. An error on rank 2 only, at iteration 300.
os.remove(ckpt)
env = dict(lib.ENV, TERSE_FAULT_INJECT="2:300")
proc = lib.start(args, ranks, "--output", "run.h5", *long_run, cwd=wd, env=env)
pids = lib.rank_processes(proc, ranks)
status, elapsed, left = wait_for_end(proc, pids, 90)
err = open(os.path.join(wd, "stderr.log")).read()
t.check(status is not None and status != 0, f"an error on rank 2 only: the job ended with status {status} after "
        f"{elapsed:.1f} s (from the start; limit 60 s after the error)")
t.check("terse: rank 2: error after iteration 300: fault injected by TERSE_FAULT_INJECT=2:300" in err,
        "the failing rank names itself, the iteration and the error")
t.check(not left, f"no rank left running 10 s after mpiexec returned ({left})")
t.check(not os.path.exists(os.path.join(wd, "run.h5")), "no history file under the final name")

# 3. Rank 1 stops at iteration 300 and waits (as behind a dead link): the watchdog (run.watchdog: 3) ends the job.
os.remove(ckpt)
env = dict(lib.ENV, TERSE_FAULT_INJECT="1:300:hang")
proc = lib.start(args, ranks, "--output", "run.h5", "--set", "run.watchdog=3", *long_run, cwd=wd, env=env)
pids = lib.rank_processes(proc, ranks)
status, elapsed, left = wait_for_end(proc, pids, 90)
err = open(os.path.join(wd, "stderr.log")).read()
t.check(status == 4, f"a rank that stops: the job ended with the watchdog's status 4 (got {status}) after "
        f"{elapsed:.1f} s (from the start; run.watchdog 3 s)")
fired = [line for line in err.splitlines() if "no progress for 3 s after iteration" in line]
t.check(any(line.startswith("terse: rank ") for line in fired) and
        any("after iteration 300 " in line for line in fired),
        "the watchdog names the rank and the iteration (the stopped rank: after iteration 300): " + " | ".join(fired))
t.check(not left, f"no rank left running 10 s after mpiexec returned ({left})")
t.check(lib.checkpoint_iteration(ckpt) == 300, "the last checkpoint (iteration 300) is intact")
t.exit(wd)
