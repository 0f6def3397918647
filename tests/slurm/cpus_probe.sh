#!/bin/bash
# The tests' TERSE for the templates (tests/slurm/slurm_templates.py): runs the terse program named by
# TERSE_PROBE_PROGRAM with the arguments the template gives it, and writes what the rank was given to
# $TERSE_PROBE_DIR/rank<SLURM_PROCID>.txt: the CPUs the task may run on (Cpus_allowed_list), OMP_NUM_THREADS,
# and the CPUs of each of terse's threads (sampled every 0.2 s while it runs; the sample with the most
# threads). With TERSE_PROBE_THROTTLE=RUN:STOP:BUDGET:ITERATION it makes the job's first segment outlast Slurm's
# signal without making it costly: terse runs RUN seconds, is stopped (SIGSTOP) for STOP seconds, and so on, and
# once it has run BUDGET seconds in all, or the job's log (TERSE_PROBE_LOG, default the templates'
# $SLURM_SUBMIT_DIR/terse-$SLURM_JOB_ID.out) shows a progress line of ITERATION or later, it is kept stopped
# until the signal (SIGUSR1 or SIGTERM) comes; then it runs at full speed. (So it never ends before the signal,
# however fast this machine is.) A requeued segment (SLURM_RESTART_COUNT > 0) runs at full speed from the start.
# SIGUSR1 and SIGTERM to this script are passed on to terse; its exit status is terse's. Slurm may signal every
# process of the step, so the helpers below survive SIGUSR1.
set -u
out=${TERSE_PROBE_DIR:?}/rank${SLURM_PROCID:-0}.txt
{
  echo "task_cpus $(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status)"
  echo "omp_num_threads ${OMP_NUM_THREADS:-unset}"
} >"$out.tmp"
"${TERSE_PROBE_PROGRAM:?}" "$@" &
pid=$!
throttle=""
release() {  # SIG: the signal came: terse runs on at full speed and gets it
  [[ -n $throttle ]] && kill -s USR1 "$throttle" 2>/dev/null
  kill -s "$1" "$pid" 2>/dev/null
  kill -s CONT "$pid" 2>/dev/null
}
trap 'release USR1' USR1
trap 'release TERM' TERM
if [[ -n ${TERSE_PROBE_THROTTLE:-} && ${SLURM_RESTART_COUNT:-0} == 0 ]]; then
  IFS=: read -r run stop budget hold_at <<<"$TERSE_PROBE_THROTTLE"
  log=${TERSE_PROBE_LOG:-${SLURM_SUBMIT_DIR:-.}/terse-${SLURM_JOB_ID:-0}.out}
  (
    released=0 held=0
    trap 'released=1; kill -s CONT "$pid" 2>/dev/null; exit 0' USR1 TERM
    ran=0
    while ((!released)) && kill -0 "$pid" 2>/dev/null; do
      if ((!held)) && [[ -n $budget ]] && awk -v a="$ran" -v b="$budget" 'BEGIN { exit !(a >= b) }'; then held=1; fi
      if ((!held)) && [[ -n ${hold_at:-} ]] &&
         awk -v k="$hold_at" '/^ +[0-9]+ +[0-9.]+e[-+][0-9]+ / && $1 + 0 >= k { f = 1 } END { exit !f }' "$log" \
           2>/dev/null; then held=1; fi
      if ((held)); then
        kill -s STOP "$pid" 2>/dev/null   # the budget is spent or half the run done: held until the signal
        sleep 0.2 & wait $!
        continue
      fi
      sleep "$run" & wait $!
      ran=$(awk -v a="$ran" -v b="$run" 'BEGIN { print a + b }')
      kill -s STOP "$pid" 2>/dev/null
      sleep "$stop" & wait $!
      ((released)) || kill -s CONT "$pid" 2>/dev/null
    done
  ) &
  throttle=$!
fi
(
  trap '' USR1
  best="" n=0
  while kill -0 "$pid" 2>/dev/null; do
    sample=$(for t in /proc/"$pid"/task/*; do
               c=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "$t/status" 2>/dev/null) && [[ -n $c ]] &&
                 echo "thread ${t##*/} $c"
             done)
    m=$(grep -c '^thread' <<<"$sample")
    ((m > n)) && { best=$sample; n=$m; }
    sleep 0.2
  done
  echo "$best" >>"$out.tmp"
  mv "$out.tmp" "$out"
) &
sampler=$!
while :; do
  wait "$pid"; status=$?
  kill -0 "$pid" 2>/dev/null || break
done
wait "$sampler"
[[ -n $throttle ]] && kill -s TERM "$throttle" 2>/dev/null
exit "$status"
