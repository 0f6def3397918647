#!/usr/bin/env bash
# expect_failure.sh STATUS PATTERN WORKDIR -- COMMAND...
# Runs COMMAND in WORKDIR and passes when it exits with STATUS and its standard error matches the extended
# regular expression PATTERN: a bad input must stop the program with a message that names the file, the
# key or the line. Used by CTest (tests/CMakeLists.txt) for the input errors of `terse run`.
set -uo pipefail
want_status=$1 pattern=$2 workdir=$3
shift 3
[[ ${1:-} == -- ]] && shift
err=$(mktemp)
(cd "$workdir" && "$@") >/dev/null 2>"$err"
status=$?
echo "exit status: $status"
echo "standard error:"
cat "$err"
ok=1
if [[ $status != "$want_status" ]]; then echo "FAIL: expected exit status $want_status"; ok=0; fi
if ! grep -Eq -- "$pattern" "$err"; then echo "FAIL: standard error does not match: $pattern"; ok=0; fi
rm -f "$err"
[[ $ok == 1 ]]
