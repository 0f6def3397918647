#!/usr/bin/env bash
# downstream.sh BUILD_DIR SOURCE_DIR KOKKOS_DIR CXX [MPIEXEC NUMPROC_FLAG]
# Installs this build (cmake --install) into a temporary prefix, then configures, builds and runs the project in
# tests/downstream against it with find_package(terse COMPONENTS optim deck): the installed headers, the exported
# targets (terse::kernels, terse::optim, terse::deck) and the package configuration must be enough. Runs the
# kernels' program, the least-squares training loop over terse::optim on 2 MPI ranks (its checks: the plain-loop
# references, the restart through the exposed state), the installed `terse --version`, and checks that the
# package refuses terse::optim for a project whose MPI is another one.
set -euo pipefail
build=$1 src=$2 kokkos_dir=$3 cxx=$4 mpiexec=${5:-mpiexec} np_flag=${6:--n}
prefix=$(mktemp -d /tmp/terse-install-XXXXXX)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" > "$prefix/install.log"
echo "installed into $prefix:"
(cd "$prefix" && find . -path ./install.log -prune -o -type f -print | sort | sed 's/^/  /' | head -60)
test -f "$prefix/include/terse/terse_Sign.hpp"
test -f "$prefix/include/terse/terse_Optim.hpp"
test -f "$prefix/lib/cmake/terse/terseConfig.cmake" || test -f "$prefix/lib64/cmake/terse/terseConfig.cmake"
"$prefix/bin/terse" --version
# A sanitized build installs sanitized static libraries (terse::optim, terse::deck): the downstream project links
# them with the same runtime.
flags=()
if grep -q '^terse_ENABLE_SANITIZERS:BOOL=ON' "$build/CMakeCache.txt"; then
  flags=(-DCMAKE_CXX_FLAGS="-fsanitize=address,undefined" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined")
fi
cmake -S "$src/tests/downstream" -B "$prefix/downstream-build" -DCMAKE_PREFIX_PATH="$prefix" \
      -DKokkos_DIR="$kokkos_dir" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=Release "${flags[@]}"
cmake --build "$prefix/downstream-build" -j 2
"$prefix/downstream-build/downstream"
OMP_NUM_THREADS=1 "$mpiexec" "$np_flag" 2 "$prefix/downstream-build/least_squares"

# Another MPI (here: a copy of this MPI's library under another path) is refused with a message naming both.
mkdir -p "$prefix/other-mpi"
lib=$(/usr/bin/python3 - "$build/CMakeCache.txt" <<'PY'
import re, sys
for line in open(sys.argv[1]):
    m = re.match(r"MPI_mpi_LIBRARY:FILEPATH=(.*)", line.strip())
    if m: print(m.group(1))
PY
)
cp -L "$lib" "$prefix/other-mpi/"
if cmake -S "$src/tests/downstream" -B "$prefix/other-build" -DCMAKE_PREFIX_PATH="$prefix" -DKokkos_DIR="$kokkos_dir" \
         -DCMAKE_CXX_COMPILER="$cxx" "${flags[@]}" -DMPI_mpi_LIBRARY="$prefix/other-mpi/$(basename "$lib")" > "$prefix/other.log" 2>&1; then
  echo "downstream.sh: a project with another MPI was not refused"; cat "$prefix/other.log"; exit 1
fi
grep -q "terse::optim was built with the MPI" "$prefix/other.log" || { cat "$prefix/other.log"; exit 1; }
echo "another MPI refused:"; grep -A3 "terse::optim was built with the MPI" "$prefix/other.log" | head -5
