#!/usr/bin/python3
"""The batch templates' own logic without a Slurm (issue 35), in a second: each template is run by bash as
sbatch would, with the job's variables set and stand-ins for srun and scontrol that record what they were given,
and checked for:

* the names: the history is TERSE_OUTPUT, else --output / --output= / --set run.output= / --set=run.output=
  among the options, else the deck's run.output (block or flow style), else JOBNAME.h5; the checkpoint follows it
  (.h5 -> .checkpoint.h5) unless --set run.checkpoint.path= moves it; the multi-node template puts relative
  names under TERSE_OUTPUT_DIR. They reach terse as --output and --set run.checkpoint.path.
* --restart is added when that checkpoint exists (and not when the options have one of their own);
* the step gets -c / --cpus-per-task = SLURM_CPUS_PER_TASK and --cpu-bind=cores, with OMP_NUM_THREADS equal to it;
* status 75 requeues the job (scontrol requeue JOBID) and is the script's status; 0 and 2 do not requeue; 2 after a
  --restart says how to name a new run.
* SIGUSR1 and SIGTERM to the script while the step runs are passed on to the step, and the script then waits for
  it and exits with its status (the stand-in srun exits 75 on SIGUSR1, as terse would)."""
import argparse
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--templates", required=True, help="scripts/slurm")
args = p.parse_args()
failed = 0


def check(ok, what):
    global failed
    print(("ok:   " if ok else "FAIL: ") + what, flush=True)
    failed += 0 if ok else 1
    return ok


wd = tempfile.mkdtemp(prefix="terse-slurm-names-")
fake = os.path.join(wd, "bin")
os.makedirs(fake)
# srun: records its arguments (one a line) and OMP_NUM_THREADS; sleeps FAKE_SLEEP seconds (exits 75 on SIGUSR1,
# 143 on SIGTERM, as terse would after its checkpoint); exits FAKE_STATUS.
with open(os.path.join(fake, "srun"), "w") as f:
    f.write("""#!/bin/bash
printf '%s\\n' "$@" >"$FAKE_DIR/srun.args"
echo "$OMP_NUM_THREADS" >"$FAKE_DIR/srun.omp"
s=""
trap 'echo USR1 >>"$FAKE_DIR/srun.signals"; kill $s; exit 75' USR1
trap 'echo TERM >>"$FAKE_DIR/srun.signals"; kill $s; exit 75' TERM
if [[ ${FAKE_SLEEP:-0} != 0 ]]; then sleep "$FAKE_SLEEP" & s=$!; touch "$FAKE_DIR/srun.started"; wait $s; fi
exit "${FAKE_STATUS:-0}"
""")
with open(os.path.join(fake, "scontrol"), "w") as f:
    f.write('#!/bin/bash\necho "$*" >>"$FAKE_DIR/scontrol.calls"\n')
for name in ("srun", "scontrol"):
    os.chmod(os.path.join(fake, name), stat.S_IRWXU)

decks = {
    "block.yaml": "problem: {kind: quadratic}\nrun:\n  iterations: 5\n  output: from_deck.h5   # a comment\n",
    "flow.yaml": "run: {iterations: 5, output: 'flow_deck.h5', seed: 1}\n",
    "none.yaml": "run:\n  iterations: 5\noptimizer:\n  output: not_this.h5\n",
}
for name, text in decks.items():
    with open(os.path.join(wd, name), "w") as f:
        f.write(text)


def run(template, deck, *opts, env=None, status=0, checkpoint=None, sleep=0, send=None):
    d = tempfile.mkdtemp(dir=wd)
    if checkpoint:
        os.makedirs(os.path.dirname(os.path.join(d, checkpoint)), exist_ok=True)
        open(os.path.join(d, checkpoint), "w").close()
    e = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TERSE_", "OMP_"))}
    e.update(PATH=fake + ":" + e["PATH"], FAKE_DIR=d, FAKE_STATUS=str(status), FAKE_SLEEP=str(sleep),
             SLURM_JOB_ID="42", SLURM_JOB_NAME="myjob", SLURM_CPUS_PER_TASK="3", TERSE="/opt/terse")
    e.update(env or {})
    proc = subprocess.Popen(["bash", os.path.join(args.templates, template), os.path.join(wd, deck), *opts], cwd=d,
                            env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if send:
        end = time.time() + 20
        while not os.path.exists(os.path.join(d, "srun.started")) and time.time() < end:
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(send)
    out = proc.communicate(timeout=60)[0]

    def read(name):
        path = os.path.join(d, name)
        return open(path).read().splitlines() if os.path.exists(path) else []
    return proc.returncode, out, read("srun.args"), read("srun.omp"), read("scontrol.calls"), read("srun.signals"), d


def value(argv, flag):
    return argv[argv.index(flag) + 1] if flag in argv else None


def sets(argv):
    return [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]


one, multi = "terse-one-node.sbatch", "terse-multi-node.sbatch"
cases = [
    ("the deck's run.output (block style)", one, "block.yaml", [], {}, "from_deck.h5", "from_deck.checkpoint.h5"),
    ("the deck's run.output (flow style)", one, "flow.yaml", [], {}, "flow_deck.h5", "flow_deck.checkpoint.h5"),
    ("no run.output: the job's name", one, "none.yaml", [], {}, "myjob.h5", "myjob.checkpoint.h5"),
    ("TERSE_OUTPUT first", one, "block.yaml", ["--output", "opt.h5"], {"TERSE_OUTPUT": "env.h5"}, "env.h5",
     "env.checkpoint.h5"),
    ("--output among the options", one, "block.yaml", ["--output", "opt.h5"], {}, "opt.h5", "opt.checkpoint.h5"),
    ("--output=", one, "block.yaml", ["--output=eq.h5"], {}, "eq.h5", "eq.checkpoint.h5"),
    ("--set run.output=", one, "block.yaml", ["--set", "run.output=set.h5"], {}, "set.h5", "set.checkpoint.h5"),
    ("--set=run.output=", one, "block.yaml", ["--set=run.output=seteq.h5"], {}, "seteq.h5", "seteq.checkpoint.h5"),
    ("a name without .h5", one, "none.yaml", ["--output", "plain"], {}, "plain", "plain.checkpoint.h5"),
    ("--set run.checkpoint.path=", one, "block.yaml", ["--set", "run.checkpoint.path=elsewhere.h5"], {},
     "from_deck.h5", "elsewhere.h5"),
    ("multi-node: under TERSE_OUTPUT_DIR", multi, "block.yaml", [], {"TERSE_OUTPUT_DIR": "/pfs/me"},
     "/pfs/me/from_deck.h5", "/pfs/me/from_deck.checkpoint.h5"),
    ("multi-node: an absolute name stays", multi, "none.yaml", ["--output", "/abs/x.h5"], {"TERSE_OUTPUT_DIR": "/pfs"},
     "/abs/x.h5", "/abs/x.checkpoint.h5"),
]
for what, template, deck, opts, env, out, ckpt in cases:
    status, log, argv, omp, calls, _, d = run(template, deck, *opts, env=env)
    if not check(status == 0 and argv, f"{template}, {what}: ran the step (status {status})"):
        print(log[-1000:])
        continue
    multi_dir = "" if template == one else d + "/"
    want_out = out if out.startswith("/") else multi_dir + out
    want_ckpt = ckpt if ckpt.startswith("/") else multi_dir + ckpt
    got_ckpt = [s.split("=", 1)[1] for s in sets(argv) if s.startswith("run.checkpoint.path=")]
    check(value(argv, "--output") == want_out and got_ckpt[:1] == [want_ckpt] and "--restart" not in argv,
          f"{template}, {what}: --output {value(argv, '--output')}, checkpoint {got_ckpt} (expected {want_out}, "
          f"{want_ckpt}), no --restart")
    if what.startswith("the deck's run.output (block"):
        check("--cpus-per-task=3" in argv and "--cpu-bind=cores" in argv and omp == ["3"],
              f"{template}: the step gets --cpus-per-task=3 and --cpu-bind=cores, OMP_NUM_THREADS=3: "
              f"{argv[:4]}, OMP_NUM_THREADS={omp}")
        check(not calls, f"{template}: status 0 does not requeue ({calls})")

for template in (one, multi):
    status, log, argv, _, _, _, d = run(template, "block.yaml", checkpoint="from_deck.checkpoint.h5")
    want = ("" if template == one else d + "/") + "from_deck.checkpoint.h5"
    check(value(argv, "--restart") == want and "continuing from" in log,
          f"{template}: the checkpoint exists: --restart {value(argv, '--restart')}, and the log says so")
    status, log, argv, _, _, _, _ = run(template, "block.yaml", "--restart", "mine.h5",
                                        checkpoint="from_deck.checkpoint.h5")
    check(argv.count("--restart") == 1 and value(argv, "--restart") == "mine.h5",
          f"{template}: the options' own --restart is the only one: {argv[argv.index('--restart'):][:2]}")
    status, log, argv, _, calls, _, _ = run(template, "block.yaml", status=75)
    check(status == 75 and calls == ["requeue 42"], f"{template}: status 75 requeues job 42 ({calls}) and is the "
          f"script's status ({status})")
    status, log, argv, _, calls, _, _ = run(template, "block.yaml", status=2, checkpoint="from_deck.checkpoint.h5")
    check(status == 2 and not calls and "give this one another name" in log,
          f"{template}: status 2 after a --restart: no requeue ({calls}), the log says how to name a new run")
    for sig, name in ((signal.SIGUSR1, "USR1"), (signal.SIGTERM, "TERM")):
        status, log, argv, _, calls, signals, _ = run(template, "block.yaml", sleep=30, send=sig)
        check(status == 75 and name in signals and calls == ["requeue 42"]
              and f"SIG{name} to the batch script: passing it on" in log,
              f"{template}: SIG{name} to the script reaches the step ({signals}), the script waits for it and "
              f"requeues on its 75 (status {status}, {calls})")

if failed:
    print(f"{failed} failed check(s); kept {wd}")
else:
    shutil.rmtree(wd)
    print("all checks passed")
sys.exit(1 if failed else 0)
