#!/usr/bin/env bash
# bench/cluster/cluster.sh: a simulated cluster on one Linux machine, to ask "what would this algorithm gain on a
# cluster with this network" (bench/cluster/README.md).
#
#   bench/cluster/cluster.sh [OPTIONS] -- PROGRAM [ARGS...]
#
# Makes HOSTS network namespaces ("hosts") joined by a Linux bridge in a namespace of its own (the "switch"),
# shapes every link to RATE in both directions (tc tbf on the host's egress and on the switch port's egress),
# runs PROGRAM with Open MPI over TCP across them (RANKS ranks per host, mpirun started inside the first host), and
# tears down exactly what it made: on success, on failure, on a signal, and when the time limit ends the run.
# Addresses are in 10.213.0.0/24, which exists only inside the namespaces made here; nothing in the machine's own
# namespace is touched but /etc/netns/NAME (the hosts' name files), removed again. Needs root (or CAP_SYS_ADMIN
# and CAP_NET_ADMIN), iproute2 and Open MPI.
#
# Options:
#   -n, --hosts N          hosts, 1..8 (default 2)
#   -r, --rate RATE        link rate as tc writes it (1gbit, 100mbit, ...) or "none" for unshaped (default 1gbit)
#   -p, --per-host K       ranks per host (default 1)
#   -t, --time-limit S     end the run after S seconds, status 124 (default 900)
#       --mpi "ARGS"       more mpirun arguments (e.g. "--mca coll_tuned_use_dynamic_rules 1 ...")
#       --counters FILE    write the bytes every host sent and received during the run (interface counters of
#                          the switch ports) as JSON to FILE
#       --link-down H:S    S seconds after the start, take host H's link down (ip link set eth0 down), as a
#                          cable pulled mid-run would
#       --queue-ms MS      the longest a packet waits in a link's queue (tbf latency; default 100): the queue
#                          holds RATE x MS of data, a switch's buffer
#       --sysctl KEY=VALUE a per-namespace sysctl of every host (net.ipv4.tcp_slow_start_after_idle=0, ...);
#                          repeatable
#       --tcp-retries2 N   the hosts' net.ipv4.tcp_retries2 (default 5: a peer that stopped answering is given up
#                          after about 13 s; Linux's default 15 takes about 15 minutes); Open MPI's daemons
#                          also probe each other (keepalive) after 10 s of silence, so that mpirun notices a
#                          host that was cut off and ends the job
#       --probe            only check that namespaces, veth, bridges and tbf work here; status 0 if they do, else
#                          a message and status 77 (CTest's skip status)
#   -h, --help             this text
# Environment passed to every rank: OMP_*, TERSE_*, KOKKOS_* and OMPI_ALLOW_RUN_AS_ROOT*.
# Exit status: PROGRAM's (mpirun's), 124 when the time limit ended it, 2 for a bad option, 77 with --probe
# where namespaces cannot be made.
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die() { echo "cluster.sh: $*" >&2; exit 2; }

hosts=2 rate=1gbit per_host=1 limit=900 mpi_extra="" counters="" link_down="" probe=0 tcp_retries2=5 queue_ms=100 sysctls=()
while (($#)); do
  case $1 in
    -n|--hosts) hosts=${2:?}; shift 2 ;;
    -r|--rate) rate=${2:?}; shift 2 ;;
    -p|--per-host) per_host=${2:?}; shift 2 ;;
    -t|--time-limit) limit=${2:?}; shift 2 ;;
    --mpi) mpi_extra=${2?}; shift 2 ;;
    --counters) counters=${2:?}; shift 2 ;;
    --link-down) link_down=${2:?}; shift 2 ;;
    --probe) probe=1; shift ;;
    --tcp-retries2) tcp_retries2=${2:?}; shift 2 ;;
    --queue-ms) queue_ms=${2:?}; shift 2 ;;
    --sysctl) sysctls+=("${2:?}"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    *) die "unknown option '$1' (--help lists them)" ;;
  esac
done
[[ $hosts =~ ^[1-8]$ ]] || die "--hosts must be 1..8, got '$hosts'"
[[ $per_host =~ ^[1-9][0-9]*$ ]] || die "--per-host must be a positive integer, got '$per_host'"
[[ $queue_ms =~ ^[1-9][0-9]*$ ]] || die "--queue-ms must be a positive integer, got '$queue_ms'"
[[ $tcp_retries2 =~ ^[1-9][0-9]?$ ]] || die "--tcp-retries2 must be 1..99, got '$tcp_retries2'"
[[ $limit =~ ^[1-9][0-9]*$ ]] || die "--time-limit must be a positive number of seconds, got '$limit'"
[[ $rate == none || $rate =~ ^[0-9]+(\.[0-9]+)?([kmgt]?(bit|bps))$ ]] || die "--rate must be like 1gbit or 100mbit, or none; got '$rate'"
if [[ -n $link_down ]]; then
  [[ $link_down =~ ^([0-9]+):([0-9]+(\.[0-9]+)?)$ ]] || die "--link-down must be HOST:SECONDS, got '$link_down'"
  ((BASH_REMATCH[1] < hosts)) || die "--link-down: host ${BASH_REMATCH[1]} does not exist (hosts 0..$((hosts - 1)))"
fi
((probe || $# > 0)) || die "no program given (cluster.sh [OPTIONS] -- PROGRAM [ARGS...]; --help)"

# Names unique to this run, so that concurrent clusters do not meet.
prefix="terse$$x$RANDOM"
switch="$prefix-sw"
made_ns=()
workdir=$(mktemp -d /tmp/terse-cluster.XXXXXX)

down_pid="" run_pid=""
teardown() {
  local ns pids
  [[ -n $run_pid ]] && kill "$run_pid" 2>/dev/null  # the time limit's process, when a signal ends the script
  if [[ -n $down_pid ]]; then  # a --link-down still waiting: its sleep, then itself
    pkill -P "$down_pid" 2>/dev/null || true
    kill "$down_pid" 2>/dev/null || true
  fi
  for ns in "${made_ns[@]}"; do
    # Open MPI's daemons detach from mpirun: end every process still in the namespace before deleting it.
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [[ -n $pids ]] && kill -9 $pids 2>/dev/null || true
  done
  for ns in "${made_ns[@]}"; do
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "/etc/netns/$ns"
  done
  made_ns=()
  rm -rf "$workdir"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

make_ns() { ip netns add "$1" && made_ns+=("$1") && ip -n "$1" link set lo up; }

build() {
  make_ns "$switch" || return 1
  ip -n "$switch" link add br0 type bridge || return 1
  ip -n "$switch" link set br0 up || return 1
  local i ns
  for ((i = 0; i < hosts; i++)); do
    ns="$prefix-h$i"
    make_ns "$ns" || return 1
    ip link add eth0 netns "$ns" type veth peer name "p$i" netns "$switch" || return 1
    ip -n "$ns" addr add "10.213.0.$((i + 1))/24" dev eth0 || return 1
    ip -n "$ns" link set eth0 up || return 1
    # A lost peer is noticed within about 13 s (RTO doubling from 200 ms, 5 retries) instead of Linux's
    # default of 15 retries (about 15 minutes), so that the launcher can end a job whose host is cut off.
    ip netns exec "$ns" sysctl -qw net.ipv4.tcp_retries2="$tcp_retries2" || return 1
    for kv in "${sysctls[@]}"; do ip netns exec "$ns" sysctl -qw "$kv" || return 1; done
    ip -n "$switch" link set "p$i" master br0 up || return 1
    if [[ $rate != none ]]; then
      # burst >= 64 KB: with segmentation offload a single packet handed to the qdisc can be that large.
      tc -n "$ns" qdisc add dev eth0 root tbf rate "$rate" burst 256kb latency "${queue_ms}ms" || return 1
      tc -n "$switch" qdisc add dev "p$i" root tbf rate "$rate" burst 256kb latency "${queue_ms}ms" || return 1
    fi
  done
  for ((i = 0; i < hosts; i++)); do
    mkdir -p "/etc/netns/$prefix-h$i" || return 1
    {
      echo "127.0.0.1 localhost"
      for ((j = 0; j < hosts; j++)); do echo "10.213.0.$((j + 1)) h$j"; done
    } > "/etc/netns/$prefix-h$i/hosts" || return 1
  done
}

if ! build 2> "$workdir/build.err"; then
  reason=$(head -c 400 "$workdir/build.err")
  if ((probe)); then
    echo "cluster.sh: network namespaces cannot be made here (needs root, iproute2 and veth/bridge/tbf): $reason" >&2
    exit 77
  fi
  echo "cluster.sh: could not build the simulated cluster: $reason" >&2
  exit 1
fi
if ((probe)); then
  echo "cluster.sh: namespaces, veth, bridge and tbf work here"
  exit 0
fi

# The launch agent Open MPI uses in place of ssh: "AGENT HOST COMMAND..." runs COMMAND in HOST's namespace.
cat > "$workdir/agent" <<AGENT
#!/bin/sh
host=\$1; shift
exec ip netns exec "$prefix-\$host" sh -c "\$*"
AGENT
chmod +x "$workdir/agent"

host_list=""
for ((i = 0; i < hosts; i++)); do host_list+="${host_list:+,}h$i:$per_host"; done
exports=()
while IFS= read -r name; do exports+=(-x "$name"); done < <(compgen -e | grep -E '^(OMP_|TERSE_|KOKKOS_|OMPI_ALLOW_RUN_AS_ROOT)' || true)

counter() {  # bytes host $1 sent ($2 = rx: the switch port received them) or received ($2 = tx)
  ip netns exec "$switch" cat "/sys/class/net/p$1/statistics/$2_bytes"
}
declare -a sent0 recv0
for ((i = 0; i < hosts; i++)); do sent0[i]=$(counter "$i" rx); recv0[i]=$(counter "$i" tx); done

if [[ -n $link_down ]]; then
  IFS=: read -r down_host down_after <<<"$link_down"
  (sleep "$down_after" && ip -n "$prefix-h$down_host" link set eth0 down \
     && echo "cluster.sh: host h$down_host's link is down ($down_after s after the start)" >&2) &
  down_pid=$!
fi

iface=eth0
start=$EPOCHREALTIME
set +e
# shellcheck disable=SC2086  # --mpi is a list of words
# In the background, so that a signal to this script is handled at once (bash runs traps only between
# foreground commands) and tears everything down.
timeout -k 10 "$limit" ip netns exec "$prefix-h0" mpirun --host "$host_list" -n $((hosts * per_host)) \
  --mca plm_rsh_agent "$workdir/agent" --bind-to none --mca pml ob1 --mca btl tcp,self \
  --mca btl_tcp_if_include "$iface" --mca oob_tcp_if_include "$iface" --mca mpi_yield_when_idle 1 \
  --mca oob_tcp_keepalive_time 10 --mca oob_tcp_keepalive_intvl 2 --mca oob_tcp_keepalive_probes 3 \
  -wdir "$PWD" "${exports[@]}" $mpi_extra "$@" &
run_pid=$!
wait "$run_pid"
status=$?
run_pid=""
set -e
seconds=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
((status == 124)) && echo "cluster.sh: the run did not end within --time-limit $limit s" >&2

if [[ -n $counters ]]; then
  {
    printf '{"hosts": %d, "ranks_per_host": %d, "rate": "%s", "status": %d, "seconds": %s,\n' \
      "$hosts" "$per_host" "$rate" "$status" "$seconds"
    printf ' "sent_bytes": ['
    for ((i = 0; i < hosts; i++)); do printf '%s%d' "$( ((i)) && echo ', ')" $(($(counter "$i" rx) - sent0[i])); done
    printf '],\n "received_bytes": ['
    for ((i = 0; i < hosts; i++)); do printf '%s%d' "$( ((i)) && echo ', ')" $(($(counter "$i" tx) - recv0[i])); done
    printf ']}\n'
  } > "$counters"
fi
exit "$status"
