#!/usr/bin/env python3
"""expect_output.py PATTERN COMMAND [ARG...]

Runs COMMAND, prints its output (stdout and stderr together), and passes (exit 0) only when COMMAND exits 0
AND its output matches the regular expression PATTERN (Python's re.search with DOTALL, so '.' spans lines as
in CMake's regular expressions). CTest's PASS_REGULAR_EXPRESSION on its own ignores the exit status: a
program that printed the expected line and then failed would pass.
"""
import re
import subprocess
import sys

if len(sys.argv) < 3:
    sys.exit("usage: expect_output.py PATTERN COMMAND [ARG...]")
pattern, command = sys.argv[1], sys.argv[2:]
done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
out = done.stdout.decode(errors="replace")
sys.stdout.write(out)
if done.returncode != 0:
    print(f"expect_output: {command[0]} exited with status {done.returncode}")
    sys.exit(1)
if not re.search(pattern, out, re.S):
    print(f"expect_output: the output does not match {pattern!r}")
    sys.exit(1)
print("expect_output: exit status 0 and the expected output")
