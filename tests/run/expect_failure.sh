#!/usr/bin/env bash
# expect_failure.sh STATUS PATTERN WORKDIR -- COMMAND...
# Runs COMMAND in WORKDIR and passes when it exits with STATUS and its standard error matches the extended
# regular expression PATTERN: a bad input must stop the program with a message that names the file, the
# key or the line, and (status 2) must not create the output file it names (--output) or leave a temporary one. Used by
# CTest (tests/CMakeLists.txt) for the input errors of `terse run`.
set -uo pipefail
want_status=$1 pattern=$2 workdir=$3
shift 3
[[ ${1:-} == -- ]] && shift
# The output file the command names (--output FILE), when it did not exist before: a refused run (status 2)
# must not create it, nor leave a temporary file beside it. (A run stopped by divergence, status 3, keeps the
# history so far, marked "stopped": that is checked by its own test.)
out=
args=("$@")
for ((i = 0; i + 1 < ${#args[@]}; i++)); do [[ ${args[i]} == --output ]] && out=${args[i+1]}; done
[[ -n $out && $out != /* ]] && out=$workdir/$out
[[ -n $out && -e $out ]] && out=
[[ $want_status == 2 ]] || out=
err=$(mktemp)
(cd "$workdir" && "$@") >/dev/null 2>"$err"
status=$?
echo "exit status: $status"
echo "standard error:"
cat "$err"
ok=1
if [[ $status != "$want_status" ]]; then echo "FAIL: expected exit status $want_status"; ok=0; fi
if ! grep -Eq -- "$pattern" "$err"; then echo "FAIL: standard error does not match: $pattern"; ok=0; fi
if [[ -n $out ]]; then
  if [[ -e $out ]]; then echo "FAIL: the refused run created $out"; ok=0; fi
  if compgen -G "$out.tmp*" >/dev/null; then echo "FAIL: the refused run left $(compgen -G "$out.tmp*")"; ok=0; fi
fi
rm -f "$err"
[[ $ok == 1 ]]
