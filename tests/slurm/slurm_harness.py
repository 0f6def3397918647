#!/usr/bin/python3
"""scripts/slurm-cluster.sh stops exactly what it started (issue 35):

1. SIGTERM to the harness while a job runs on its cluster: it exits with 143 at once, and afterwards none of
   its munged, slurmctld and slurmd (the pids in their pid files, started from /usr/sbin), none of the job's
   processes (slurmstepd, the job's own), and not its PROGRAM is left; its directory is gone; a process of the
   same names that it did not start (the machine's own daemons, another cluster's) is still there.
2. PROGRAM fails (status 3): the harness exits with 3, the daemons are gone, the directory (logs) is kept.

Skips (77) where the harness cannot start a cluster here."""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--cluster", required=True, help="scripts/slurm-cluster.sh")
p.add_argument("--install", action="store_true", help="pass --install to it (Debian's slurm-wlm and munge)")
args = p.parse_args()

failed = 0


def check(ok, what):
    global failed
    print(("ok:   " if ok else "FAIL: ") + what, flush=True)
    failed += 0 if ok else 1
    return ok


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def exe(pid):
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def sbin(name):
    """the file /usr/sbin/NAME runs. Debian's slurmd and the like are alternatives (links to slurmd-wlm ...), and
    resolved only when asked: with --install they appear while the harness runs (a fresh machine has none before)"""
    return os.path.realpath(f"/usr/sbin/{name}")


def named(*names):
    """pids of the live processes running one of these /usr/sbin programs"""
    programs = {sbin(n) for n in names}
    return {int(e) for e in os.listdir("/proc") if e.isdigit() and exe(e) in programs and alive(e)}


def of_cluster(conf):
    """pids of the live processes whose environment names this cluster's slurm.conf"""
    out = set()
    for e in os.listdir("/proc"):
        if not e.isdigit() or int(e) == os.getpid():
            continue
        try:
            with open(f"/proc/{e}/environ", "rb") as f:
                if f"SLURM_CONF={conf}".encode() in f.read().split(b"\0") and alive(e):
                    out.add(int(e))
        except OSError:
            pass
    return out


def gone(pids, grace=20):
    end = time.time() + grace
    while any(alive(p) for p in pids) and time.time() < end:
        time.sleep(0.1)
    return sorted(p for p in pids if alive(p))


work = tempfile.mkdtemp(prefix="terse-slurm-harness-")
ready = os.path.join(work, "ready")
# PROGRAM: say where the cluster is, start a job that sleeps, say when it runs, then wait.
program = f"""
set -e
sbatch --parsable --job-name=sleeper -o {work}/sleeper.out --wrap 'sleep 300' >{work}/job
for i in $(seq 1 300); do
  [[ $(squeue -h -j "$(cat {work}/job)" -o %T) == RUNNING ]] && break
  sleep 0.2
done
echo "$TERSE_SLURM_DIR $$" >{ready}.tmp && mv {ready}.tmp {ready}
sleep 600
"""
before = named("munged", "slurmctld", "slurmd", "slurmstepd")
h = subprocess.Popen(["bash", args.cluster, *(["--install"] if args.install else []), "--", "bash", "-c", program],
                     env=dict(os.environ, TERSE_SLURM_KEEP_ON_FAILURE="0"), start_new_session=True,
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
end = time.time() + 120
while not os.path.exists(ready) and h.poll() is None and time.time() < end:
    time.sleep(0.1)
if h.poll() == 77:
    print(h.stdout.read())
    shutil.rmtree(work, ignore_errors=True)
    sys.exit(77)
if not check(os.path.exists(ready), "the harness started a cluster and a job runs on it"):
    os.killpg(h.pid, signal.SIGTERM)
    print(h.communicate(timeout=60)[0])
    sys.exit(1)
cdir, prog = open(ready).read().split()
conf = os.path.join(cdir, "slurm.conf")
daemons = {}
for name, pidfile in (("munged", "munge/munged.pid"), ("slurmctld", "slurmctld.pid"), ("slurmd", "slurmd.pid")):
    with open(os.path.join(cdir, pidfile)) as f:
        daemons[name] = int(f.read().split()[0])
for name, pid in daemons.items():
    check(alive(pid) and exe(pid) == sbin(name), f"{name} runs from /usr/sbin/{name} (pid {pid}, "
          f"its pid file's)")
job = of_cluster(conf) - {int(prog)} - set(daemons.values())
stepds = {p for p in job if exe(p) == sbin("slurmstepd")}
check(len(stepds) >= 1 and len(job - stepds) >= 1,
      f"the processes under the cluster: slurmstepd {sorted(stepds)}, the job's and PROGRAM's "
      f"{sorted(job - stepds)}")
others = before - job  # processes of these names the harness did not start

start = time.time()
os.kill(h.pid, signal.SIGTERM)
try:
    out = h.communicate(timeout=90)[0]
except subprocess.TimeoutExpired:
    os.killpg(h.pid, signal.SIGKILL)
    out = h.communicate()[0]
print(out)
check(h.returncode == 143, f"on SIGTERM the harness exited with 143 (got {h.returncode}) after "
      f"{time.time() - start:.1f} s")
left = gone(set(daemons.values()) | job | {int(prog)})
check(not left, f"no daemon, job process or PROGRAM of it is left (left: {left})")
check(not of_cluster(conf), "no process names its cluster any more")
check(not os.path.exists(cdir), f"its directory {cdir} is gone")
check(all(alive(p) for p in others), f"the processes of those names it did not start are still there: "
      f"{sorted(others) or '(none here)'}")

# PROGRAM fails: its status, the daemons gone, the directory kept.
r = subprocess.run(["bash", args.cluster, "--", "bash", "-c",
                    f"cat $TERSE_SLURM_DIR/*.pid $TERSE_SLURM_DIR/munge/munged.pid >{work}/pids; "
                    f"echo $TERSE_SLURM_DIR >{work}/dir; exit 3"],
                   capture_output=True, text=True, timeout=120)
print(r.stdout[-2000:], r.stderr[-2000:])
check(r.returncode == 3, f"when PROGRAM fails with 3 the harness exits with 3 (got {r.returncode})")
if os.path.exists(os.path.join(work, "pids")):
    pids = {int(x) for x in open(os.path.join(work, "pids")).read().split()}
    left = gone(pids)
    check(len(pids) == 3 and not left, f"its daemons {sorted(pids)} are gone (left: {left})")
    kept = open(os.path.join(work, "dir")).read().strip()
    check(os.path.exists(os.path.join(kept, "slurmctld.log")), f"its directory is kept for the logs: {kept}")
    shutil.rmtree(kept, ignore_errors=True)
else:
    check(False, "PROGRAM ran")
shutil.rmtree(work, ignore_errors=True)
print(f"{failed} failed check(s)" if failed else "all checks passed")
sys.exit(1 if failed else 0)
