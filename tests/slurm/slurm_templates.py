#!/usr/bin/python3
"""The batch templates of scripts/slurm/ under a real Slurm (issue 35), run inside scripts/slurm-cluster.sh (a
one-node cluster of this machine's CPUs; SLURM_CONF names it). Jobs are submitted as a user on a small node
would, overriding the templates' node shape, and checked:

1. one-node template, 1 rank x 2 CPUs: status 0, the history under the job's name (the deck sets no
   run.output), its /final/x bitwise a direct `terse run`'s, OMP_NUM_THREADS=2, the rank may run on both CPUs
   and its threads are spread over both (Cpus_allowed_list of each thread), not squeezed onto one
   (srun without -c since Slurm 22.05, issue 35 item 1).
2. multi-node template on one node, 2 ranks x 1 CPU: status 0, the history under the deck's run.output, bitwise
   a direct 2-rank `terse run`'s, each rank on a CPU of its own (--cpu-bind=cores).
3. a time limit (--time=2 --signal=USR1@80, which Slurm sends 10 to 40 s after the start: it checks every 30 s):
   Slurm's SIGUSR1 makes terse checkpoint and exit 75, the job requeues itself (held with Reason=BeginTime; its
   job completion record says ExitCode=0:0), restarts from the checkpoint, maybe again, and completes; the
   history and model are bitwise those of an uninterrupted run. The first segment must outlast the signal
   without costing 40 s of CPU (and as much again for the uninterrupted run): the probe stops and continues
   terse in it (SIGSTOP 0.4 s, run 0.1 s), and once terse has run 40 % of a run of about 12 s of this machine's
   CPU (measured first, alone), or has printed the progress line of half its iterations, it keeps it stopped
   until the signal comes, whenever Slurm sends it; the requeued segments run at full speed.

All jobs run at once (OverSubscribe=FORCE on the partition, slurm-cluster.sh --oversubscribe), beside the
uninterrupted runs they are compared with: about a minute and a half on 2 cores.
4. SIGUSR1 to the batch shell only (scancel --batch -s USR1, what --signal=B:USR1 does) and to the shell and its
   children (scancel --full -s USR1): the same checkpoint, requeue and bitwise result (item 2).
5. a job that fails (a rank throws at iteration 1300, TERSE_FAULT_INJECT) is submitted again, the same way: it
   continues from the checkpoint of iteration 1000 under the same name and ends bitwise an uninterrupted run's
   (item 3); a submission under that name with another step size is refused with status 2 and a message that
   says what to do, and the checkpoint is left as it was.

The requeue hold is the cluster's AuthInfo cred_expire (slurm-cluster.sh --cred-expire, 10 s here instead of
Slurm's 120 s). Run with Debian's /usr/bin/python3 (h5py, numpy)."""
import argparse
import os
import re
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "run"))
import ckpt_lib as lib  # noqa: E402

import h5py  # noqa: E402
import numpy as np  # noqa: E402

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--terse", required=True)
p.add_argument("--mpiexec", required=True)
p.add_argument("--deck", required=True, help="the checkpoint tests' deck (cd_adam on a quadratic)")
p.add_argument("--templates", required=True, help="scripts/slurm")
p.add_argument("--probe", required=True, help="tests/slurm/cpus_probe.sh")
p.add_argument("--tl-seconds", type=float, default=12.0,
               help="the time-limit job's CPU seconds at this machine's speed; its first segment runs 40 %% of "
                    "them (throttled to a fifth) and then waits, stopped, for the signal")
args = p.parse_args()
for key in ("terse", "deck", "templates", "probe"):
    setattr(args, key, os.path.abspath(getattr(args, key)))
if "SLURM_CONF" not in os.environ:
    sys.exit("run me inside scripts/slurm-cluster.sh (no SLURM_CONF)")
cpus = min(int(os.environ.get("TERSE_SLURM_CPUS", "0")), 4)  # the CPUs of the threaded job (the node has them)
if cpus < 2:
    print(f"skipped: the node has {cpus} CPU(s); the templates' tests need 2")
    sys.exit(77)

began = time.time()
t = lib.failures()
lock = threading.Lock()
wd = lib.workdir("slurm")
os.chmod(wd, 0o755)
probe = os.path.join(wd, "cpus_probe.sh")  # executable whatever the checkout's file modes
shutil.copy(args.probe, probe)
os.chmod(probe, 0o755)
one_node = os.path.join(args.templates, "terse-one-node.sbatch")
multi_node = os.path.join(args.templates, "terse-multi-node.sbatch")

# The environment of the jobs and of the direct runs: the ranks yield when they wait (several jobs share the two
# cores of a small machine), Open MPI may run as root, and each run has a session directory of its own (two Open
# MPI jobs that start at the same moment can race to create a shared one).
BASE = {k: v for k, v in os.environ.items() if not k.startswith(("TERSE_FAULT", "OMP_", "SBATCH_", "SRUN_"))}
BASE.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_mpi_yield_when_idle="1",
            OMP_WAIT_POLICY="passive")
SHORT = 2000  # iterations of the short runs
SHORT_ARGS = ["--set", f"run.iterations={SHORT}", "--set", "run.log_every=100"]


def check(ok, what):
    with lock:
        return t.check(ok, what)


def say(what):
    with lock:
        print(f"[{time.time() - began:5.0f} s] {what}", flush=True)


def scenario_dir(name):
    d = os.path.join(wd, name)
    os.makedirs(d)
    return d


def reference(name, ranks, *terse_args):
    """A direct `terse run` (mpiexec) of the deck; returns the history's path or None."""
    d = scenario_dir("ref_" + name)
    env = dict(BASE, OMP_NUM_THREADS="1", OMP_PROC_BIND="false", OMPI_MCA_rmaps_base_oversubscribe="1",
               OMPI_MCA_orte_tmpdir_base=d)
    cmd = lib.mpiexec_args(args, ranks) + [args.terse, "run", args.deck, *terse_args, "--set",
                                           "run.checkpoint.every=1000000", "--output", "ref.h5", "--quiet"]
    r = subprocess.run(cmd, cwd=d, env=env, capture_output=True, text=True, timeout=600)
    if not check(r.returncode == 0, f"reference {name}: terse run at {ranks} rank(s) ended with 0 (got "
                 f"{r.returncode}) {r.stderr[-500:]}"):
        return None
    return os.path.join(d, "ref.h5")


def iteration_seconds():
    """Seconds per iteration of the deck here: a direct run, alone, timed by terse itself (no start-up)."""
    d = scenario_dir("speed")
    env = dict(BASE, OMP_NUM_THREADS="1", OMP_PROC_BIND="false", OMPI_MCA_orte_tmpdir_base=d)
    cmd = lib.mpiexec_args(args, 1) + [args.terse, "run", args.deck, "--set", "run.iterations=1000", "--set",
                                       "run.log_every=1000", "--output", "speed.h5"]
    r = subprocess.run(cmd, cwd=d, env=env, capture_output=True, text=True, timeout=300)
    m = re.search(r"done: 1000 iterations in ([0-9.]+)s", r.stdout)
    return float(m.group(1)) / 1000 if r.returncode == 0 and m else None


def submit(template, name, d, *terse_args, sbatch=(), env=None, terse=None, deck=None):
    env = dict(BASE, **(env or {}))
    env.update(TERSE=terse or args.terse, OMPI_MCA_orte_tmpdir_base=d)
    cmd = ["sbatch", "--parsable", f"--job-name={name}", *sbatch, template, deck or args.deck, *terse_args]
    r = subprocess.run(cmd, cwd=d, env=env, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"sbatch failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr}")
    job = r.stdout.strip().split(";")[0]
    say(f"{name}: job {job}: {' '.join(cmd[2:])}")
    return job


def job_info(job):
    r = subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True, text=True, timeout=30)
    return dict(re.findall(r"(\S+?)=(\S*)", r.stdout)) if r.returncode == 0 else {}


FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
         "PREEMPTED"}


class Watch:
    """Polls a job until it has ended; keeps what it saw (states, the hold of a requeued job)."""

    def __init__(self, job, name, d):
        self.job, self.name, self.dir = job, name, d
        self.seen, self.held = [], []
        self.info = {}

    def log(self):
        path = os.path.join(self.dir, f"terse-{self.job}.out")
        return open(path, errors="replace").read() if os.path.exists(path) else ""

    def wait(self, timeout):
        end = time.time() + timeout
        while time.time() < end:
            info = job_info(self.job)
            state = info.get("JobState", "?")
            step = (state, info.get("Reason", ""), info.get("Restarts", ""))
            if not self.seen or self.seen[-1] != step:
                self.seen.append(step)
                say(f"{self.name}: job {self.job} {state} Reason={step[1]} Restarts={step[2]}")
            if state == "PENDING" and info.get("Reason") == "BeginTime" and int(info.get("Restarts", "0")) > 0:
                self.held.append((info.get("ExitCode"), info.get("DerivedExitCode")))
            if state in FINAL:
                time.sleep(1)  # the state a requeue would replace is never final: make sure
                again = job_info(self.job)
                if again.get("JobState") == state:
                    self.info = again
                    return state
            time.sleep(0.5)
        self.info = job_info(self.job)
        return "still " + self.info.get("JobState", "?")

    def wait_for_progress(self, timeout=120):
        """Until rank 0 has printed a progress line after iteration 0 (terse's signal handlers are in place)."""
        end = time.time() + timeout
        while time.time() < end:
            if re.search(r"^ +[1-9][0-9]* +[0-9.]+e[+-][0-9]+ ", self.log(), re.M):
                return True
            time.sleep(0.1)
        return False


def cpu_list(text):
    """'0-2,5' -> [0, 1, 2, 5]"""
    out = []
    for part in filter(None, text.split(",")):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


def final_x(path):
    with h5py.File(path, "r") as f:
        return f["final/x"][...]


def same_x(a, b):
    x, y = final_x(a), final_x(b)
    return x.shape == y.shape and np.array_equal(x, y)


def jobcomp(job):
    """The job completion records of a job (one per requeued segment, then the last): [{key: value}]"""
    path = os.path.join(os.environ.get("TERSE_SLURM_DIR", ""), "jobcomp.log")
    lines = open(path).read().splitlines() if os.path.exists(path) else []
    recs = [dict(re.findall(r"(\S+?)=(\S*)", line)) for line in lines]
    return [r for r in recs if r.get("JobId") == job]


def bitwise(reference_path, out, what):
    """The history out holds the same /final/x and /history (but wall_time) as reference_path's, bitwise."""
    if not check(os.path.exists(out), f"{what}: the history is {os.path.relpath(out, wd)}"):
        return False
    diff = lib.same_output(reference_path, out)
    return check(diff == "", f"{what}: the result is bitwise an uninterrupted run's " + diff)


def ended_ok(w, state, what):
    ok = check(state == "COMPLETED" and w.info.get("ExitCode") == "0:0",
               f"{what}: the job completed with status 0 (state {state}, ExitCode {w.info.get('ExitCode')})")
    if not ok:
        print(w.log()[-3000:])
    return ok


def requeued_ok(w, what, by_slurm):
    log = w.log()
    stops = re.findall(r"stopped by (SIG\w+) after iteration (\d+): checkpoint (\S+) written", log)
    restarts = int(w.info.get("Restarts", "0"))
    check(len(stops) >= 1 and all(s[0] == "SIGUSR1" for s in stops),
          f"{what}: terse stopped on SIGUSR1 and wrote its checkpoint ({len(stops)} time(s): "
          f"{[(s[0], int(s[1])) for s in stops]})")
    if not by_slurm:
        check("SIGUSR1 to the batch script: passing it on to the step" in log,
              f"{what}: the batch script survived the signal and passed it on")
    check(log.count("requeueing job") == len(stops) and restarts == len(stops),
          f"{what}: the job requeued itself after each stop: Restarts={restarts}, stops {len(stops)}")
    cont = re.findall(r"\(restart (\d+)\): continuing from (\S+)", log)
    check(len(cont) == restarts and [int(c[0]) for c in cont] == list(range(1, restarts + 1)),
          f"{what}: every requeued segment continued from the checkpoint: {cont}")
    check(len(w.held) > 0, f"{what}: while requeued it was held (PENDING, Reason=BeginTime)")
    recs = [(r.get("JobState"), r.get("ExitCode"), r.get("DerivedExitCode")) for r in jobcomp(w.job)]
    # DerivedExitCode (the steps' highest status) is 75:0 in a requeued segment's record when the step's end reached
    # slurmctld before the requeue, which it usually but not always does; it is kept, so the last record has it.
    check(len(recs) == restarts + 1 and all(r[0] == "PENDING" and r[1] == "0:0" for r in recs[:-1])
          and recs[-1] == ("COMPLETED", "0:0", "75:0"),
          f"{what}: Slurm's records: each requeued segment ExitCode=0:0 (requeued: PENDING), then COMPLETED "
          f"0:0 with DerivedExitCode 75:0 (JobState, ExitCode, DerivedExitCode): {recs}")


# ---- this machine's speed, then everything at once ----
per_iteration = iteration_seconds()
if not check(per_iteration is not None, "a direct terse run works here"):
    t.exit(wd)
tl_iterations = int(min(max(args.tl_seconds / per_iteration, 2000), 400000)) // 500 * 500
say(f"{per_iteration * 1e3:.2f} ms per iteration: the time-limit job runs {tl_iterations} iterations "
    f"({args.tl_seconds:.0f} s here; its first segment runs 40 % of them, throttled, then waits for the signal)")
TL_ARGS = ["--set", f"run.iterations={tl_iterations}", "--set", "run.log_every=500"]
background = []
refs = {}
refs_done = {name: threading.Event() for name in ("short", "multi", "timelimit")}


def guarded(f, *a):
    """f(*a); an exception is a failed check (a thread's would otherwise only be printed)."""
    try:
        f(*a)
    except Exception as e:  # noqa: BLE001
        check(False, f"{f.__name__}{a}: {type(e).__name__}: {e}")


def in_background(f, *a):
    th = threading.Thread(target=guarded, args=(f, *a))
    th.start()
    background.append(th)


def make_reference(name, ranks, *terse_args):
    try:
        refs[name] = reference(name, ranks, *terse_args)
    finally:
        refs_done[name].set()


def ref(name):
    refs_done[name].wait()
    return refs.get(name)


# ---- 3. the time limit: submitted first, it takes longest; the rest runs beside it ----
def time_limit():
    what = "a time limit (--time=2 --signal=USR1@80)"
    d = scenario_dir("timelimit")
    w = Watch(submit(one_node, "timelimit", d, *TL_ARGS, terse=probe,
                     env={"TERSE_CHECKPOINT_EVERY": "100000", "TERSE_PROBE_PROGRAM": args.terse, "TERSE_PROBE_DIR": d,
                          "TERSE_PROBE_THROTTLE": f"0.1:0.4:{0.4 * args.tl_seconds:.1f}:{tl_iterations // 2}"},
                     sbatch=("--ntasks-per-node=1", "--cpus-per-task=1", "--time=2", "--signal=USR1@80")),
              "timelimit", d)
    in_background(make_reference, "timelimit", 1, *TL_ARGS)
    state = w.wait(timeout=600)
    if ended_ok(w, state, what):
        if not re.search(r"stopped by SIG", w.log()):
            check(False, f"{what}: the first segment outlasted the signal ({tl_iterations} iterations were too few "
                  "for this machine: raise --tl-seconds)")
        requeued_ok(w, what, by_slurm=True)
        if ref("timelimit"):
            bitwise(ref("timelimit"), os.path.join(w.dir, "timelimit.h5"), what)


in_background(time_limit)
deck2 = os.path.join(wd, "named.yaml")
with open(args.deck) as f, open(deck2, "w") as g:
    g.write(f.read().replace("\nrun:\n", "\nrun:\n  output: named_run.h5   # in the run section\n"))
in_background(make_reference, "short", 1, *SHORT_ARGS)
in_background(make_reference, "multi", 2, *SHORT_ARGS)


# ---- 1. the one-node template, 1 rank x 2 CPUs ----
def one():
    what = f"one-node template, 1 rank x {cpus} CPUs"
    d = scenario_dir("one")
    w = Watch(submit(one_node, "one", d, *SHORT_ARGS, terse=probe,
                     env={"TERSE_PROBE_PROGRAM": args.terse, "TERSE_PROBE_DIR": d},
                     sbatch=("--ntasks-per-node=1", f"--cpus-per-task={cpus}")), "one", d)
    state = w.wait(timeout=300)
    if not ended_ok(w, state, what):
        return
    out = os.path.join(d, "one.h5")
    check(os.path.exists(out), f"{what}: its history is one.h5, after the job's name (the deck sets no run.output)")
    if os.path.exists(out) and ref("short"):
        check(same_x(out, ref("short")),
              f"{what}: its /final/x is bitwise that of a direct terse run (1 rank, 1 thread)")
    probe_out = os.path.join(d, "rank0.txt")
    if check(os.path.exists(probe_out), f"{what}: the rank recorded the CPUs it was given"):
        lines = open(probe_out).read().splitlines()
        task = next((l.split()[1] for l in lines if l.startswith("task_cpus")), "")
        threads = [l.split()[2] for l in lines if l.startswith("thread ")]
        check(f"omp_num_threads {cpus}" in lines, f"{what}: OMP_NUM_THREADS is {cpus}, the job's --cpus-per-task")
        check(len(cpu_list(task)) == cpus, f"{what}: the rank may run on {cpus} CPUs: Cpus_allowed_list {task}")
        single = {cpu_list(c)[0] for c in threads if len(cpu_list(c)) == 1}
        check(single == set(cpu_list(task)),
              f"{what}: its OpenMP threads are spread over them, one on each: the threads' CPUs {threads}")


# ---- 2. the multi-node template on one node, 2 ranks x 1 CPU, a deck that names its output ----
def multi():
    what = "multi-node template on one node, 2 ranks x 1 CPU"
    d = scenario_dir("multi")
    env = {"TERSE_PROBE_PROGRAM": args.terse, "TERSE_PROBE_DIR": d}
    w = Watch(submit(multi_node, "multi", d, *SHORT_ARGS, terse=probe, env=env, deck=deck2,
                     sbatch=("--nodes=1", "--ntasks-per-node=2", "--cpus-per-task=1")), "multi", d)
    state = w.wait(timeout=300)
    if not ended_ok(w, state, what):
        return
    out = os.path.join(d, "named_run.h5")
    check(os.path.exists(out), f"{what}: its history is named_run.h5, the deck's run.output")
    if os.path.exists(out) and ref("multi"):
        bitwise(ref("multi"), out, f"{what} (against a direct terse run at 2 ranks)")
    masks = []
    for rank in (0, 1):
        path = os.path.join(d, f"rank{rank}.txt")
        if os.path.exists(path):
            masks += [l.split()[1] for l in open(path) if l.startswith("task_cpus")]
    check(len(masks) == 2 and all(len(cpu_list(m)) == 1 for m in masks) and len(set(masks)) == 2,
          f"{what}: each rank runs on a CPU of its own (--cpu-bind=cores): {masks}")


# ---- 4. SIGUSR1 to the batch shell ----
def usr1(name, how):
    what = f"SIGUSR1 to the batch shell (scancel {how})"
    d = scenario_dir(name)
    w = Watch(submit(one_node, name, d, *SHORT_ARGS, sbatch=("--ntasks-per-node=1", "--cpus-per-task=1")), name, d)
    if not check(w.wait_for_progress(), f"{what}: terse started"):
        return
    r = subprocess.run(["scancel", how, "-s", "USR1", w.job], capture_output=True, text=True, timeout=30)
    say(f"{name}: scancel {how} -s USR1 {w.job}: status {r.returncode} {r.stderr.strip()}")
    state = w.wait(timeout=300)
    if ended_ok(w, state, what):
        requeued_ok(w, what, by_slurm=False)
        if ref("short"):
            bitwise(ref("short"), os.path.join(w.dir, f"{name}.h5"), what)


# ---- 5. a failed job submitted again continues; another run under its name is refused ----
def again():
    d = scenario_dir("again")
    common = dict(sbatch=("--ntasks-per-node=1", "--cpus-per-task=1"))
    w = Watch(submit(one_node, "again", d, *SHORT_ARGS, env={"TERSE_FAULT_INJECT": "0:1300"}, **common), "again", d)
    state = w.wait(timeout=300)
    ckpt = os.path.join(d, "again.checkpoint.h5")
    check(state == "FAILED" and w.info.get("Restarts") == "0",
          f"a job whose rank fails at iteration 1300 fails, not requeued (state {state}, ExitCode "
          f"{w.info.get('ExitCode')}, Restarts {w.info.get('Restarts')})")
    k = lib.checkpoint_iteration(ckpt) if os.path.exists(ckpt) else -1
    if not check(k == 1000, f"it left again.checkpoint.h5 at iteration 1000 (got {k})"):
        return
    w2 = Watch(submit(one_node, "again", d, *SHORT_ARGS, **common), "again (submitted again)", d)
    state = w2.wait(timeout=300)
    if not ended_ok(w2, state, "the failed job submitted again"):
        return
    check(re.search(r"continuing from \S*again\.checkpoint\.h5", w2.log()) is not None,
          "it continued from the checkpoint the failed job left (its log says so)")
    if ref("short"):
        bitwise(ref("short"), os.path.join(d, "again.h5"), "the failed job submitted again")
    before = open(ckpt, "rb").read()
    w3 = Watch(submit(one_node, "again", d, *SHORT_ARGS, "--set", "optimizer.lr=0.002", **common),
               "again (another run, same name)", d)
    state = w3.wait(timeout=300)
    log = w3.log()
    check(state == "FAILED" and w3.info.get("ExitCode") == "2:0" and w3.info.get("Restarts") == "0",
          f"a run with another step size under the same name is refused: state {state}, ExitCode "
          f"{w3.info.get('ExitCode')}, not requeued")
    m = re.search(r"terse: error: (.*does not match the deck.*)", log)
    say(m.group(0) if m else log[-2000:])
    check(m is not None and "optimizer.lr is 0.001 in the checkpoint and 0.002 in the deck" in m.group(1)
          and "under another run.output" in m.group(1) and "remove" in m.group(1),
          "terse's message names the key and says what to do (another run.output, or remove the checkpoint)")
    check("give this one another name" in log, "the job's log says how to name a new run")
    check(open(ckpt, "rb").read() == before, "the checkpoint is left as it was")


for name, how in (("usr1_batch", "--batch"), ("usr1_full", "--full")):
    in_background(usr1, name, how)
in_background(again)
guarded(one)
guarded(multi)
while background:
    background.pop(0).join()
say("done")
t.exit(wd)
