"""Helpers of the checkpoint tests (tests/run/ckpt_*.py): run `terse run` under mpiexec, find and signal its
rank processes, and compare two history files the way docs/checkpoint.md promises (bitwise, wall_time aside).

Run with Debian's /usr/bin/python3 (h5py, numpy)."""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

ENV = dict(os.environ, OMP_NUM_THREADS="1", OMP_PROC_BIND="false", OMPI_ALLOW_RUN_AS_ROOT="1",
           OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1")


def arguments(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--terse", required=True, help="the terse program")
    p.add_argument("--mpiexec", required=True, help="mpiexec")
    p.add_argument("--deck", required=True, help="the deck to run")
    p.add_argument("--seed", type=int, default=2026, help="seed of the test's random choices")
    return p.parse_args()


def failures():
    return Failures()


class Failures:
    """Collects failed checks; exit() ends the script with status 1 when there are any."""

    def __init__(self):
        self.count = 0

    def check(self, ok, what):
        print(("ok:   " if ok else "FAIL: ") + what, flush=True)
        if not ok:
            self.count += 1
        return ok

    def exit(self, *dirs):
        """Ends the script; removes dirs when every check passed (kept for inspection otherwise)."""
        print(f"{self.count} failed check(s)" if self.count else "all checks passed", flush=True)
        if self.count:
            print("kept for inspection: " + " ".join(dirs))
        else:
            for d in dirs:
                shutil.rmtree(d, ignore_errors=True)
        sys.exit(1 if self.count else 0)


def mpiexec_args(args, ranks):
    extra = ["--oversubscribe", "--bind-to", "none"]
    return [args.mpiexec, "-n", str(ranks)] + extra


def command(args, ranks, *terse_args):
    return mpiexec_args(args, ranks) + [args.terse, "run", args.deck] + list(terse_args)


def run(args, ranks, *terse_args, cwd, env=None, timeout=300):
    """Runs to the end; returns (status, stdout, stderr)."""
    p = subprocess.run(command(args, ranks, *terse_args), cwd=cwd, env=env or ENV, capture_output=True, text=True,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def start(args, ranks, *terse_args, cwd, env=None):
    """Starts in its own session (so that everything it spawns can be found and killed)."""
    out = open(os.path.join(cwd, "stdout.log"), "w")
    err = open(os.path.join(cwd, "stderr.log"), "w")
    return subprocess.Popen(command(args, ranks, *terse_args), cwd=cwd, env=env or ENV, stdout=out, stderr=err,
                            start_new_session=True)


def children(pid):
    """Pids of the direct children of pid."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                kids.append(int(entry))
        except (OSError, IndexError, ValueError):
            pass
    return kids


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        for c in children(todo.pop()):
            out.append(c)
            todo.append(c)
    return out


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def rank_processes(proc, ranks, timeout=60):
    """The pids of the terse ranks started by mpiexec proc (waits until all exist)."""
    end = time.time() + timeout
    while time.time() < end:
        pids = [p for p in descendants(proc.pid) if " run " in cmdline(p) and "terse" in cmdline(p)
                and "mpiexec" not in cmdline(p) and "orterun" not in cmdline(p)]
        if len(pids) >= ranks:
            return sorted(pids)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"the {ranks} rank processes did not appear")


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_tree(proc):
    """SIGKILL to mpiexec and every process under it at once; waits until none is left."""
    pids = [proc.pid] + descendants(proc.pid)
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    end = time.time() + 30
    while any(alive(p) for p in pids) and time.time() < end:
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def still_alive(pids, grace=10.0):
    """The pids still alive after up to `grace` seconds (a rank mpiexec has signalled may take a moment to go)."""
    end = time.time() + grace
    while any(alive(p) for p in pids) and time.time() < end:
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def wait_for_file(path, proc, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        if os.path.exists(path):
            return True
        if proc.poll() is not None:
            return os.path.exists(path)
        time.sleep(0.02)
    return False


def checkpoint_iteration(path):
    with h5py.File(path, "r") as f:
        return int(f.attrs["iteration"])


def same_output(a, b):
    """'' when the history files a and b hold the same /final/x and /history (but wall_time), bitwise."""
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        if not np.array_equal(fa["final/x"][...], fb["final/x"][...]):
            d = np.abs(fa["final/x"][...].astype(np.float64) - fb["final/x"][...])
            return f"/final/x differs (largest difference {d.max():.3g})"
        names = sorted(fa["history"].keys())
        if names != sorted(fb["history"].keys()):
            return f"history datasets differ: {names} / {sorted(fb['history'].keys())}"
        for n in names:
            if n == "wall_time":
                continue
            x, y = fa["history"][n][...], fb["history"][n][...]
            if x.shape != y.shape or not np.array_equal(x, y, equal_nan=x.dtype.kind == "f"):
                return f"/history/{n} differs: {x[:8]} ... / {y[:8]} ..."
        if fb.attrs.get("status") not in (b"complete", "complete"):
            return f"status of {b} is {fb.attrs.get('status')}"
    return ""


def workdir(name):
    return tempfile.mkdtemp(prefix=f"terse-{name}-")
