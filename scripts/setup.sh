#!/usr/bin/env bash
# terse set-up for Debian 12 (bookworm). Idempotent: a second run installs nothing and rebuilds nothing.
#
#  1. Installs the Debian packages terse needs (compiler, CMake, OpenMPI, parallel HDF5, GoogleTest,
#     Google Benchmark, yaml-cpp, CLI11, zlib, Fashion-MNIST, h5py, matplotlib, numpy).
#  2. Finds a Kokkos >= 3.4 built for C++17 in Kokkos_ROOT or CMAKE_PREFIX_PATH and uses it; when there is
#     none, builds Kokkos 3.4.01 (OpenMP + Serial, C++17) from Debian's `trilinos` source package into
#     $TERSE_DEPS/kokkos-3.4.01 (outside the source tree) and reuses it on later runs.
#  3. Writes the Kokkos prefix it chose to $TERSE_DEPS/kokkos-root, which scripts/build.sh reads.
#
# Environment: TERSE_DEPS (default ~/.cache/terse-deps), Kokkos_ROOT, CMAKE_PREFIX_PATH,
#              TERSE_SKIP_APT=1 (do not touch system packages; for machines where you manage them yourself),
#              TERSE_SETUP_PACKAGES_ONLY=1 (step 1 only: the Kokkos 4.x and GPU jobs bring their own Kokkos).
set -euo pipefail

TERSE_DEPS=${TERSE_DEPS:-${XDG_CACHE_HOME:-$HOME/.cache}/terse-deps}
KOKKOS_VERSION_BUILT=3.4.01
KOKKOS_PREFIX=$TERSE_DEPS/kokkos-$KOKKOS_VERSION_BUILT

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

build_kokkos() {
  if kokkos_at "$KOKKOS_PREFIX" >/dev/null && [[ -f $KOKKOS_PREFIX/.terse-complete ]]; then
    log "using Kokkos $KOKKOS_VERSION_BUILT built earlier in $KOKKOS_PREFIX"; return
  fi
  log "no Kokkos >= 3.4 (C++17) in Kokkos_ROOT / CMAKE_PREFIX_PATH: building Kokkos $KOKKOS_VERSION_BUILT (OpenMP+Serial) into $KOKKOS_PREFIX"
  enable_deb_src
  local work; work=$(mktemp -d "${TMPDIR:-/tmp}/terse-kokkos.XXXXXX"); chmod 755 "$work"  # _apt reads it
  trap 'rm -rf "$work"' RETURN
  (cd "$work" && apt-get source --download-only -qq trilinos >/dev/null) || die "apt-get source trilinos failed"
  local tarball; tarball=$(ls "$work"/trilinos_*.orig.tar.* 2>/dev/null | head -n1)
  [[ -n $tarball ]] || die "no trilinos orig tarball was downloaded"
  log "extracting packages/kokkos from $(basename "$tarball")"
  tar -C "$work" -xf "$tarball" --wildcards '*/packages/kokkos/*'
  local src; src=$(ls -d "$work"/*/packages/kokkos | head -n1)
  [[ -f $src/CMakeLists.txt ]] || die "packages/kokkos not found in $tarball"
  cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$KOKKOS_PREFIX" \
    -DCMAKE_CXX_STANDARD=17 -DCMAKE_CXX_EXTENSIONS=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
    -DKokkos_ENABLE_OPENMP=ON -DKokkos_ENABLE_SERIAL=ON -DKokkos_ENABLE_TESTS=OFF >"$work/configure.log" 2>&1 \
    || { tail -n 40 "$work/configure.log" >&2; die "Kokkos configure failed"; }
  cmake --build "$work/build" -j "$(nproc)" >"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log" >&2; die "Kokkos build failed"; }
  rm -rf "$KOKKOS_PREFIX"
  cmake --install "$work/build" >/dev/null
  touch "$KOKKOS_PREFIX/.terse-complete"
  log "Kokkos $KOKKOS_VERSION_BUILT installed in $KOKKOS_PREFIX"
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
  echo "$root" >"$TERSE_DEPS/kokkos-root"
else
  build_kokkos
  echo "$KOKKOS_PREFIX" >"$TERSE_DEPS/kokkos-root"
fi
log "done (Kokkos prefix: $(cat "$TERSE_DEPS/kokkos-root"))"
