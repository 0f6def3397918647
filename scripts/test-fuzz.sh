#!/usr/bin/env bash
# The fuzzing job (CI runs it after the sanitizer job): builds the libFuzzer harnesses of tests/fuzz with Clang,
# AddressSanitizer and UndefinedBehaviorSanitizer (-Dterse_ENABLE_FUZZING=ON, only the file readers: terse_io)
# in ./build-fuzz (or $TERSE_FUZZ_BUILD_DIR), replays every seed corpus, then fuzzes each harness for
# $TERSE_FUZZ_SECONDS seconds (default 60). Any crash, sanitizer report, leak, slow input or runaway allocation
# fails its CTest entry; the input is left in build-fuzz/tests/fuzz/crash-<target>-*. Extra arguments go to ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TERSE_BUILD_DIR=${TERSE_FUZZ_BUILD_DIR:-build-fuzz}
CC=clang-14 CXX=clang++-14 bash scripts/build.sh -Dterse_ENABLE_FUZZING=ON -Dterse_ENABLE_DRIVERS=OFF \
  -Dterse_ENABLE_TESTS=OFF -Dterse_ENABLE_BENCHMARKS=OFF -Dterse_ENABLE_NATIVE=OFF \
  -Dterse_FUZZ_SECONDS="${TERSE_FUZZ_SECONDS:-60}" -DCMAKE_BUILD_TYPE=RelWithDebInfo
ctest --test-dir "$TERSE_BUILD_DIR" --output-on-failure -j "$(nproc)" -L fuzz --no-tests=error "$@"
