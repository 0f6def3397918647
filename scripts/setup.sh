#!/usr/bin/env bash
# terse set-up for Debian 12 (bookworm). Idempotent: a second run installs nothing and rebuilds nothing.
#
#  1. Installs the Debian packages terse needs (compiler, CMake, OpenMPI, parallel HDF5, GoogleTest,
#     Google Benchmark, yaml-cpp, CLI11, zlib, Fashion-MNIST, h5py, matplotlib, numpy).
#  2. Finds a Kokkos >= 3.4 built for C++17 in Kokkos_ROOT or CMAKE_PREFIX_PATH and uses it; when there is
#     none, builds Kokkos 3.4.01 (OpenMP + Serial, C++17) from Debian's `trilinos` source package into
#     $TERSE_DEPS/kokkos-3.4.01 (outside the source tree) and reuses it on later runs.
#  3. Finds a Kokkos Kernels built against that Kokkos in KokkosKernels_ROOT or CMAKE_PREFIX_PATH; with the
#     Kokkos it built, builds Kokkos Kernels 3.4.01 (the BLAS component, host BLAS: Debian's OpenBLAS, OpenMP
#     variant) from the same trilinos source (packages/kokkos-kernels) into $TERSE_DEPS/kokkos-kernels-3.4.01.
#  4. Writes the prefixes it chose to $TERSE_DEPS/kokkos-root and $TERSE_DEPS/kokkoskernels-root, which
#     scripts/build.sh reads.
#
# Environment: TERSE_DEPS (default ~/.cache/terse-deps), Kokkos_ROOT, KokkosKernels_ROOT, CMAKE_PREFIX_PATH,
#              TERSE_SKIP_APT=1 (do not touch system packages; for machines where you manage them yourself),
#              TERSE_SETUP_PACKAGES_ONLY=1 (step 1 only: the Kokkos 4.x and GPU jobs bring their own Kokkos).
set -euo pipefail

TERSE_DEPS=${TERSE_DEPS:-${XDG_CACHE_HOME:-$HOME/.cache}/terse-deps}
KOKKOS_VERSION_BUILT=3.4.01
KOKKOS_PREFIX=$TERSE_DEPS/kokkos-$KOKKOS_VERSION_BUILT
KK_PREFIX=$TERSE_DEPS/kokkos-kernels-$KOKKOS_VERSION_BUILT

log() { printf '[terse setup] %s\n' "$*" >&2; }
die() { printf '[terse setup] error: %s\n' "$*" >&2; exit 1; }

SUDO=
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || die "not root and no sudo: install the packages listed in scripts/setup.sh yourself and rerun with TERSE_SKIP_APT=1"
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive

PACKAGES=(
  build-essential cmake git pkg-config ca-certificates xz-utils dpkg-dev
  openmpi-bin libopenmpi-dev libhdf5-openmpi-dev hdf5-tools
  libgtest-dev libgmock-dev libbenchmark-dev libyaml-cpp-dev libcli11-dev zlib1g-dev
  dataset-fashion-mnist python3 python3-numpy python3-h5py python3-matplotlib
  clang-14 libclang-rt-14-dev
  libopenblas-openmp-dev
  ccache iproute2 procps
)

apt_updated=0
apt_update() { if [[ $apt_updated == 0 ]]; then log "apt-get update"; $SUDO apt-get update -qq; apt_updated=1; fi; }

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then log "Debian packages: all present"; return; fi
  apt_update
  log "installing: ${missing[*]}"
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Prints the version of the Kokkos installed under prefix $1 when it is >= 3.4 and built for C++17 or newer.
kokkos_at() {
  local prefix=$1 cfg
  for cfg in "$prefix"/lib/cmake/Kokkos "$prefix"/lib64/cmake/Kokkos "$prefix"/lib/*/cmake/Kokkos "$prefix"/share/cmake/Kokkos "$prefix"; do
    [[ -f $cfg/KokkosConfigVersion.cmake ]] || continue
    local v; v=$(sed -n 's/^ *set *( *PACKAGE_VERSION *"\([0-9.]*\)".*/\1/Ip' "$cfg/KokkosConfigVersion.cmake" | head -n1)
    [[ -n $v ]] || continue
    local major=${v%%.*} rest=${v#*.}; local minor=${rest%%.*}
    if ((major > 3 || (major == 3 && minor >= 4))); then
      # Debian's libtrilinos-kokkos-dev is Kokkos 3.4 built for C++14 (and Serial only): not suitable.
      if grep -qs '^#define KOKKOS_ENABLE_CXX14' "$prefix"/include/KokkosCore_config.h "$prefix"/include/*/KokkosCore_config.h; then
        log "skipping the C++14 Kokkos in $prefix"; continue
      fi
      echo "$v"; return 0
    fi
  done
  return 1
}

find_user_kokkos() {
  local d
  local IFS=':;'
  for d in ${Kokkos_ROOT:-} ${CMAKE_PREFIX_PATH:-}; do
    [[ -n $d ]] || continue
    if v=$(kokkos_at "$d"); then echo "$d"; log "using Kokkos $v from $d"; return 0; fi
  done
  return 1
}

# Downloads Debian's trilinos source once per set-up and extracts packages/$1 from it into TRILINOS_SRC.
TRILINOS_WORK= TRILINOS_SRC=
trilinos_package() {
  local name=$1
  if [[ -z $TRILINOS_WORK ]]; then
    enable_deb_src
    TRILINOS_WORK=$(mktemp -d "${TMPDIR:-/tmp}/terse-trilinos.XXXXXX"); chmod 755 "$TRILINOS_WORK"  # _apt reads it
    trap 'rm -rf "$TRILINOS_WORK"' EXIT
    (cd "$TRILINOS_WORK" && apt-get source --download-only -qq trilinos >/dev/null) || die "apt-get source trilinos failed"
  fi
  local tarball; tarball=$(ls "$TRILINOS_WORK"/trilinos_*.orig.tar.* 2>/dev/null | head -n1)
  [[ -n $tarball ]] || die "no trilinos orig tarball was downloaded"
  log "extracting packages/$name from $(basename "$tarball")"
  tar -C "$TRILINOS_WORK" -xf "$tarball" --wildcards "*/packages/$name/*"
  TRILINOS_SRC=$(ls -d "$TRILINOS_WORK"/*/packages/"$name" | head -n1)
  [[ -f $TRILINOS_SRC/CMakeLists.txt ]] || die "packages/$name not found in $tarball"
}

# cmake_install NAME SRC PREFIX ARGS...: configure, build and install into PREFIX (replaced); the log's end on failure.
cmake_install() {
  local name=$1 src=$2 prefix=$3; shift 3
  local b=$TRILINOS_WORK/build-${name// /-}
  cmake -S "$src" -B "$b" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$prefix" \
    -DCMAKE_CXX_STANDARD=17 -DCMAKE_CXX_EXTENSIONS=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON "$@" >"$b.configure.log" 2>&1 \
    || { tail -n 40 "$b.configure.log" >&2; die "$name configure failed"; }
  cmake --build "$b" -j "$(nproc)" >"$b.build.log" 2>&1 || { tail -n 40 "$b.build.log" >&2; die "$name build failed"; }
  rm -rf "$prefix"
  cmake --install "$b" >/dev/null
  touch "$prefix/.terse-complete"
}

build_kokkos() {
  if kokkos_at "$KOKKOS_PREFIX" >/dev/null && [[ -f $KOKKOS_PREFIX/.terse-complete ]]; then
    log "using Kokkos $KOKKOS_VERSION_BUILT built earlier in $KOKKOS_PREFIX"; return
  fi
  log "no Kokkos >= 3.4 (C++17) in Kokkos_ROOT / CMAKE_PREFIX_PATH: building Kokkos $KOKKOS_VERSION_BUILT (OpenMP+Serial) into $KOKKOS_PREFIX"
  trilinos_package kokkos
  rm -rf "$KK_PREFIX"  # a Kokkos Kernels built against an earlier Kokkos build
  cmake_install Kokkos "$TRILINOS_SRC" "$KOKKOS_PREFIX" -DKokkos_ENABLE_OPENMP=ON -DKokkos_ENABLE_SERIAL=ON -DKokkos_ENABLE_TESTS=OFF
  log "Kokkos $KOKKOS_VERSION_BUILT installed in $KOKKOS_PREFIX"
}

# Prints the folder of Debian's OpenBLAS built with OpenMP (it shares the OpenMP threads of Kokkos's OpenMP
# backend instead of starting its own pool).
openblas_openmp_dir() {
  local d=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)/openblas-openmp
  [[ -f $d/libopenblas.so ]] || die "$d/libopenblas.so is missing (Debian package libopenblas-openmp-dev)"
  echo "$d"
}

# Kokkos Kernels 3.4.01 against the Kokkos 3.4.01 built above: only the BLAS component, no pre-instantiated
# types (terse instantiates what it calls), host BLAS from OpenBLAS. Its symbols' Fortran names are given
# (gfortran's: lower case and an underscore, as Debian's OpenBLAS exports them): without them Kokkos Kernels
# asks for a Fortran compiler to find out, which a fresh Debian does not have.
F77_BLAS_MANGLE='(name,NAME) name ## _'
build_kokkos_kernels() {
  if [[ -f $KK_PREFIX/.terse-complete ]]; then
    log "using Kokkos Kernels $KOKKOS_VERSION_BUILT built earlier in $KK_PREFIX"; return
  fi
  log "building Kokkos Kernels $KOKKOS_VERSION_BUILT (BLAS, OpenBLAS) into $KK_PREFIX"
  trilinos_package kokkos-kernels
  cmake_install "Kokkos Kernels" "$TRILINOS_SRC" "$KK_PREFIX" -DKokkos_ROOT="$KOKKOS_PREFIX" \
    -DKokkosKernels_ENABLED_COMPONENTS=BLAS -DKokkosKernels_ADD_DEFAULT_ETI=OFF -DKokkosKernels_ENABLE_TESTS=OFF \
    -DKokkosKernels_ENABLE_EXAMPLES=OFF -DKokkosKernels_ENABLE_TPL_BLAS=ON -DKokkosKernels_ENABLE_TPL_LAPACK=OFF \
    -DBLAS_LIBRARY_DIRS="$(openblas_openmp_dir)" -DBLAS_LIBRARIES=openblas -DF77_BLAS_MANGLE="$F77_BLAS_MANGLE"
  log "Kokkos Kernels $KOKKOS_VERSION_BUILT installed in $KK_PREFIX"
}

# Prints the prefix of a Kokkos Kernels in KokkosKernels_ROOT or CMAKE_PREFIX_PATH.
find_user_kokkos_kernels() {
  local d cfg
  local IFS=':;'
  for d in ${KokkosKernels_ROOT:-} ${CMAKE_PREFIX_PATH:-}; do
    [[ -n $d ]] || continue
    for cfg in "$d"/lib/cmake/KokkosKernels "$d"/lib64/cmake/KokkosKernels "$d"/lib/*/cmake/KokkosKernels; do
      if [[ -f $cfg/KokkosKernelsConfig.cmake ]]; then echo "$d"; log "using Kokkos Kernels from $d"; return 0; fi
    done
  done
  return 1
}

# apt-get source needs deb-src entries: add the deb-src type to the machine's existing Debian entries
# (same mirrors, no host name of ours), in deb822 or one-line format.
enable_deb_src() {
  local changed=0 f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    if grep -q '^Types: *deb *$' "$f"; then $SUDO sed -i 's/^Types: *deb *$/Types: deb deb-src/' "$f"; changed=1; fi
  done
  if [[ -f /etc/apt/sources.list ]] && grep -q '^deb ' /etc/apt/sources.list && ! grep -q '^deb-src ' /etc/apt/sources.list; then
    sed -n 's/^deb /deb-src /p' /etc/apt/sources.list | $SUDO tee -a /etc/apt/sources.list >/dev/null; changed=1
  fi
  if [[ $changed == 1 ]] || ! apt-cache showsrc trilinos >/dev/null 2>&1; then apt_updated=0; apt_update; fi
  apt-cache showsrc trilinos >/dev/null 2>&1 || die "no deb-src entry provides the trilinos source package"
}

if [[ ${TERSE_SKIP_APT:-0} != 1 ]]; then install_packages; fi
if [[ ${TERSE_SETUP_PACKAGES_ONLY:-0} == 1 ]]; then log "done (packages only)"; exit 0; fi
mkdir -p "$TERSE_DEPS"
if root=$(find_user_kokkos); then
  kk=$(find_user_kokkos_kernels) \
    || die "Kokkos from $root: point KokkosKernels_ROOT (or CMAKE_PREFIX_PATH) at a Kokkos Kernels built against it (spack: kokkos-kernels)"
else
  build_kokkos
  build_kokkos_kernels
  root=$KOKKOS_PREFIX kk=$KK_PREFIX
fi
echo "$root" >"$TERSE_DEPS/kokkos-root"
echo "$kk" >"$TERSE_DEPS/kokkoskernels-root"
log "done (Kokkos prefix: $root; Kokkos Kernels prefix: $kk)"
