#!/usr/bin/env bash
# scripts/slurm-cluster.sh: a real one-node Slurm cluster on this machine, to run the batch templates of
# scripts/slurm/ as a user would (the CTests of tests/slurm/).
#
#   scripts/slurm-cluster.sh [OPTIONS] -- PROGRAM [ARGS...]
#
# Writes a slurm.conf for this machine's own CPUs (`slurmd -C`: sockets, cores, threads) in a temporary
# directory (select/cons_tres by core, task/affinity, MpiDefault=pmix, no accounting), a munge key, and starts
# Debian's munged, slurmctld and slurmd by their own paths (/usr/sbin), each in the foreground as a child of
# this script, with that directory's socket, ports, pid and log files; waits until the node is idle; runs
# PROGRAM with SLURM_CONF naming the cluster (so sbatch, srun, squeue, scontrol and scancel talk to it); and
# then stops exactly what it started: it cancels the jobs still there, sends SIGTERM to the three daemons by
# their pids (SIGKILL after 10 s), kills what is left of this cluster's jobs (the processes whose environment
# names this cluster's SLURM_CONF: slurmstepd and the tasks, which Slurm detaches from slurmd), and removes the
# directory; on success, on failure, on a signal, and when the time limit ends PROGRAM. Nothing else on the
# machine is touched (but the packages --install installs): no /etc file, no system service, no process it did
# not start (a munged or slurmd of the machine's own keeps running; the ports are free ones, not 6817/6818).
#
# Options:
#   --install          install Debian's slurm-wlm and munge when they are missing (apt-get, as root; the
#                      packages' services are not started: a policy-rc.d that denies them is in place while apt
#                      runs, the machine's own when there is one)
#   --probe            only start the cluster, run one job step, and stop it: status 0 where that works, else
#                      the reason and status 77 (CTest's skip status)
#   --cred-expire S    AuthInfo cred_expire, seconds (default 10; Slurm's default is 120): the job credential's
#                      lifetime, which is also how long Slurm holds a requeued job (Reason=BeginTime) before it
#                      may run again; the tests shorten it to keep requeues quick
#   --oversubscribe N  OverSubscribe=FORCE:N on the partition (default 1: none): N jobs may share a core, so
#                      that the tests' jobs run at the same time on a small machine
#   -t, --time-limit S end PROGRAM after S seconds, status 124 (default 900)
#       --keep         keep the directory (configuration, logs) and print its name
#   -h, --help         this text
# Environment: TERSE_SLURM_SBIN (where munged, slurmctld and slurmd are; default /usr/sbin), TERSE_SKIP_APT=1
# (never install), TERSE_SLURM_KEEP_ON_FAILURE=0 (remove the directory also when PROGRAM fails).
# Environment given to PROGRAM: SLURM_CONF, TERSE_SLURM_DIR (the cluster's directory: slurmctld.log,
# slurmd.log, and jobcomp.log with a line for every job that ended or was requeued, ExitCode and
# DerivedExitCode included: there is no accounting database), TERSE_SLURM_NODE (the node's name),
# TERSE_SLURM_CPUS (its CPUs).
# Exit status: PROGRAM's; 77 (with the reason on stderr) when Slurm is not installed or its daemons cannot
# start here; 124 when the time limit ended PROGRAM; 2 for a bad option.
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die() { echo "slurm-cluster.sh: $*" >&2; exit 2; }
log() { echo "[slurm-cluster] $*" >&2; }

install=0 probe=0 cred_expire=10 oversubscribe=1 limit=900 keep=0
while (($#)); do
  case $1 in
    --install) install=1; shift ;;
    --probe) probe=1; shift ;;
    --cred-expire) cred_expire=${2:?}; shift 2 ;;
    --oversubscribe) oversubscribe=${2:?}; shift 2 ;;
    -t|--time-limit) limit=${2:?}; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    *) die "unknown option '$1' (--help lists them)" ;;
  esac
done
[[ $cred_expire =~ ^[1-9][0-9]*$ ]] || die "--cred-expire must be a positive number of seconds, got '$cred_expire'"
[[ $oversubscribe =~ ^[1-9][0-9]?$ ]] || die "--oversubscribe must be 1..99, got '$oversubscribe'"
[[ $limit =~ ^[1-9][0-9]*$ ]] || die "--time-limit must be a positive number of seconds, got '$limit'"
((probe || $# > 0)) || die "no program given (slurm-cluster.sh [OPTIONS] -- PROGRAM [ARGS...]; --help)"

skip() { echo "slurm-cluster.sh: skipped: $*" >&2; exit 77; }

sbin=${TERSE_SLURM_SBIN:-/usr/sbin}
MUNGED=$sbin/munged SLURMCTLD=$sbin/slurmctld SLURMD=$sbin/slurmd
CLIENTS=(sbatch srun squeue scontrol scancel sinfo)
have_slurm() {
  [[ -x $MUNGED && -x $SLURMCTLD && -x $SLURMD ]] || return 1
  local c; for c in "${CLIENTS[@]}"; do command -v "$c" >/dev/null || return 1; done
}

# ---- the packages ----
if ! have_slurm && ((install)); then
  [[ $(id -u) -eq 0 ]] || skip "Slurm is not installed and installing it needs root (apt-get install slurm-wlm munge)"
  command -v apt-get >/dev/null || skip "Slurm is not installed and there is no apt-get here"
  [[ ${TERSE_SKIP_APT:-0} != 1 ]] || skip "Slurm is not installed (slurm-wlm, munge) and TERSE_SKIP_APT=1"
  log "installing Debian's slurm-wlm and munge (their services are not started)"
  policy=/usr/sbin/policy-rc.d made_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# scripts/slurm-cluster.sh: no service starts while it installs Slurm\nexit 101\n' >"$policy"
    chmod 755 "$policy"; made_policy=1
    trap 'rm -f "$policy"' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  ok=1
  get() { apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null 2>&1; }
  get || { apt-get update -qq >/dev/null 2>&1 && get; } || ok=0
  if ((made_policy)); then rm -f "$policy"; trap - EXIT; fi
  ((ok)) || skip "apt-get install slurm-wlm munge failed"
fi
have_slurm || skip "Slurm is not installed here (Debian: apt-get install slurm-wlm munge; or pass --install)"
[[ $(id -u) -eq 0 ]] || skip "a cluster's slurmd runs as root, and this is not root"

# ---- the cluster's directory and configuration ----
dir=$(mktemp -d /tmp/terse-slurm.XXXXXX)
chmod 755 "$dir"
mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
chmod 755 "$dir/munge"   # munged wants its socket's directory searchable by all; the key in it is 0400
conf=$dir/slurm.conf
pids=()        # the daemons this script started, in the order they were started
program=""     # PROGRAM's pid (its time limit's, which passes a signal on to it)
names=()
cleaned=0

# Kill the processes of this cluster's jobs that are still there (slurmstepd and the job's own, which Slurm
# reparents away from slurmd): those whose environment holds this cluster's SLURM_CONF. Prints how many.
kill_job_leftovers() {
  local sig=$1 n=0 p
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [[ $p == "$$" || $p == "$BASHPID" ]] && continue
    if { tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null | grep -qxF "SLURM_CONF=$conf"; then
      kill -s "$sig" "$p" 2>/dev/null && n=$((n + 1))
    fi
  done
  echo "$n"
}

cleanup() {
  local status=$?
  ((cleaned)) && return
  cleaned=1
  set +e
  trap '' INT TERM HUP
  if [[ -n $program ]] && kill -0 "$program" 2>/dev/null; then   # a signal ended this script, not PROGRAM
    kill -TERM "$program" 2>/dev/null
    local end=$((SECONDS + 15))
    while kill -0 "$program" 2>/dev/null && ((SECONDS < end)); do sleep 0.2; done
    kill -KILL "$program" 2>/dev/null
    wait "$program" 2>/dev/null
  fi
  if ((${#pids[@]})) && kill -0 "${pids[-1]}" 2>/dev/null && [[ ${names[-1]} == slurmd ]]; then
    # The jobs first, while the daemons can still end them (SIGTERM to their steps, then SIGKILL).
    SLURM_CONF=$conf timeout 10 scancel --quiet --full --user="$(id -un)" >/dev/null 2>&1 || true
    local end=$((SECONDS + 15))
    while ((SECONDS < end)) && [[ -n $(SLURM_CONF=$conf timeout 5 squeue -h -o %i 2>/dev/null) ]]; do sleep 0.5; done
  fi
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
    local end=$((SECONDS + 10))
    while kill -0 "${pids[i]}" 2>/dev/null && ((SECONDS < end)); do sleep 0.2; done
    if kill -0 "${pids[i]}" 2>/dev/null; then
      log "${names[i]} (pid ${pids[i]}) did not stop on SIGTERM: SIGKILL"
      kill -KILL "${pids[i]}" 2>/dev/null || true
    fi
    wait "${pids[i]}" 2>/dev/null || true
  done
  local left; left=$(kill_job_leftovers TERM)
  if ((left > 0)); then
    sleep 2
    left=$(kill_job_leftovers KILL)
    ((left == 0)) || log "killed $left process(es) left from this cluster's jobs"
  fi
  if ((keep)) || ((status != 0 && status != 77 && ${TERSE_SLURM_KEEP_ON_FAILURE:-1} == 1)); then
    log "kept the cluster's directory (configuration, logs): $dir"
  else
    rm -rf "$dir"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Two free TCP ports for slurmctld and slurmd (never the default 6817/6818, which a real Slurm may hold).
free_port() {
  local p used
  used=$(ss -Htln 2>/dev/null | awk '{print $4}' | sed 's/.*://' | sort -u)
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 30000))
    grep -qx "$p" <<<"$used" || { echo "$p"; return; }
  done
  echo 26817
}
ctld_port=$(free_port)
slurmd_port=$(free_port)
while [[ $slurmd_port == "$ctld_port" ]]; do slurmd_port=$(free_port); done

node=$(hostname -s)
hw=$("$SLURMD" -C 2>/dev/null | head -n1) || true
[[ $hw == NodeName=* ]] || skip "slurmd -C cannot describe this machine: $hw"
hw=${hw#NodeName=* }   # CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=...
hw=$(sed 's/ *RealMemory=[0-9]*//' <<<"$hw")   # no memory limits: the jobs are scheduled by core
cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$hw")

share=NO
((oversubscribe == 1)) || share=FORCE:$oversubscribe
cat >"$conf" <<EOF
# A one-node cluster for terse's tests (scripts/slurm-cluster.sh); everything in $dir.
ClusterName=terse-test
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=$(id -un)
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket,cred_expire=$cred_expire
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$dir/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=2,sched_interval=2
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MailProg=/bin/true
ReturnToService=2
MinJobAge=600
KillWait=30
NodeName=$node NodeAddr=127.0.0.1 $hw State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=$share
EOF
# Only this cluster: no variable of an outer job or of the user's defaults (SLURM_JOB_ID, SBATCH_PARTITION, ...)
# reaches the daemons, PROGRAM or its jobs.
while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(SLURM|SBATCH|SRUN|SALLOC|SQUEUE|SCONTROL)_' || true)
: >"$dir/plugstack.conf"   # not the machine's /etc/slurm/plugstack.conf
export SLURM_CONF=$conf

# ---- the daemons ----
start() {  # NAME COMMAND...: started in the foreground, as this script's child
  local name=$1; shift
  "$@" </dev/null >>"$dir/$name.stdout" 2>&1 &
  pids+=("$!"); names+=("$name")
}
failed() {  # the reason the cluster did not start, with the end of the daemons' logs
  local f
  for f in "$dir"/munged.log "$dir"/slurmctld.log "$dir"/slurmd.log "$dir"/*.stdout; do
    [[ -s $f ]] && { echo "--- $f"; tail -n 15 "$f"; } >&2
  done
  skip "$*"
}
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$dir/munge/munge.key"
start munged "$MUNGED" --foreground --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
  --pid-file="$dir/munge/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munge/munged.seed"
for _ in $(seq 1 50); do
  [[ -S $dir/munge/munge.socket ]] && break
  kill -0 "${pids[0]}" 2>/dev/null || break
  sleep 0.1
done
[[ -S $dir/munge/munge.socket ]] || failed "munged did not start"
start slurmctld "$SLURMCTLD" -D -i -f "$conf"
start slurmd "$SLURMD" -D -f "$conf"
state=""
for _ in $(seq 1 120); do
  for i in "${!pids[@]}"; do kill -0 "${pids[i]}" 2>/dev/null || failed "${names[i]} exited while starting"; done
  state=$(timeout 5 sinfo -h -n "$node" -o %t 2>/dev/null || true)
  [[ $state == idle ]] && break
  sleep 0.25
done
[[ $state == idle ]] || failed "the node did not become idle within 30 s (state: '${state:-no answer}')"
log "cluster up in $dir: node $node ($hw), slurmctld :$ctld_port, slurmd :$slurmd_port, cred_expire $cred_expire s"

if ((probe)); then
  out=$(timeout 60 srun -N1 -n1 --mpi=none hostname 2>&1) || failed "a job step did not run: $out"
  log "probe: a job step ran ($out)"
  exit 0
fi

export TERSE_SLURM_DIR=$dir TERSE_SLURM_NODE=$node TERSE_SLURM_CPUS=$cpus
# PROGRAM runs in the background so that a signal to this script is handled at once (bash runs a trap during
# `wait`, not while a foreground command runs): the trap ends PROGRAM, then the cluster.
timeout -k 10 "$limit" "$@" &
program=$!
status=0
wait "$program" || status=$?
program=""
((status != 124)) || log "PROGRAM ran past the time limit of $limit s"
exit "$status"
