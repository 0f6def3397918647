#!/usr/bin/env bash
# downstream.sh BUILD_DIR SOURCE_DIR KOKKOS_DIR CXX
# Installs this build (cmake --install) into a temporary prefix, then configures, builds and runs the project
# in tests/downstream against it with find_package(terse): the installed headers, the exported terse::kernels
# target and the package configuration must be enough. Also runs the installed `terse --version`.
set -euo pipefail
build=$1 src=$2 kokkos_dir=$3 cxx=$4
prefix=$(mktemp -d /tmp/terse-install-XXXXXX)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" > "$prefix/install.log"
echo "installed into $prefix:"
(cd "$prefix" && find . -path ./install.log -prune -o -type f -print | sort | sed 's/^/  /' | head -40)
test -f "$prefix/include/terse/terse_Sign.hpp"
test -f "$prefix/lib/cmake/terse/terseConfig.cmake" || test -f "$prefix/lib64/cmake/terse/terseConfig.cmake"
"$prefix/bin/terse" --version
cmake -S "$src/tests/downstream" -B "$prefix/downstream-build" -DCMAKE_PREFIX_PATH="$prefix" \
      -DKokkos_DIR="$kokkos_dir" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=Release
cmake --build "$prefix/downstream-build" -j 2
"$prefix/downstream-build/downstream"
