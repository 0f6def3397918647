# Sourced by scripts/test-kokkos4.sh, scripts/test-sanitizers.sh, scripts/build-gpu.sh and
# scripts/prepare-h200.sh: builds Kokkos 4.6.01 and Kokkos Kernels 4.6.01 from the release sources for one
# backend, into $TERSE_DEPS/kokkos-4.6.01-<backend> and $TERSE_DEPS/kokkos-kernels-4.6.01-<backend>, once;
# later calls reuse them.
#
#   kokkos4_prefix BACKEND          prints the install prefix of that build (openmp, cuda, hip)
#   kokkos4_build  BACKEND          builds Kokkos and Kokkos Kernels unless complete builds are there; prints
#                                   nothing on stdout
#   kk4_prefix     BACKEND          prints the Kokkos Kernels prefix of that backend
#   gpu_toolkit    BACKEND          installs the Debian toolkit of a GPU backend (CUDA 11.8 + g++-11, HIP 5.2)
#                                   and exports the environment its compiler needs
#
# The sources: $TERSE_KOKKOS_TARBALL, else ../shared/vendor/kokkos-4.6.01.tar.gz beside the repository (where
# CI puts it), and $TERSE_KOKKOS_KERNELS_TARBALL, else ../shared/vendor/kokkos-kernels-4.6.01.tar.gz; the
# .sha256 file beside a tarball is checked when there is one.
#
# Kokkos Kernels: the BLAS component only, no pre-instantiated types (terse instantiates what it calls); on the
# host Debian's OpenBLAS (OpenMP variant) as its BLAS, on GPUs its own kernels (no cuBLAS/rocBLAS: the H200
# folder carries no CUDA libraries, and Debian has no rocBLAS for HIP 5.2).
#
# Backends and their Kokkos options:
#   openmp  OpenMP + Serial, the host compiler
#   cuda    CUDA + Serial, nvcc_wrapper over Debian's nvcc 11.8 with g++-11, architecture $TERSE_CUDA_ARCH
#           (Kokkos option name, default HOPPER90; AMPERE80 for A100). Kokkos takes one GPU architecture.
#   hip     HIP + Serial, Debian's hipcc 5.2.3, architecture $TERSE_HIP_ARCH (default AMD_GFX90A, MI200)

TERSE_DEPS=${TERSE_DEPS:-${XDG_CACHE_HOME:-$HOME/.cache}/terse-deps}
KOKKOS4_VERSION=4.6.01
TERSE_REPO=${TERSE_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}

k4_log() { printf '[terse kokkos4] %s\n' "$*" >&2; }
k4_die() { printf '[terse kokkos4] error: %s\n' "$*" >&2; exit 1; }

k4_sudo() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

# The architecture suffix of a GPU backend's build (one Kokkos per architecture).
kokkos4_arch() {
  case $1 in
    openmp) echo host ;;
    cuda) echo "${TERSE_CUDA_ARCH:-HOPPER90}" ;;
    hip) echo "${TERSE_HIP_ARCH:-AMD_GFX90A}" ;;
    *) k4_die "unknown backend '$1' (expected openmp, cuda or hip)" ;;
  esac
}

kokkos4_prefix() {
  local arch; arch=$(kokkos4_arch "$1")
  if [[ $1 == openmp ]]; then echo "$TERSE_DEPS/kokkos-$KOKKOS4_VERSION-openmp"
  else echo "$TERSE_DEPS/kokkos-$KOKKOS4_VERSION-$1-${arch,,}"; fi
}

# Prints the path of a vendored tarball (kokkos or kokkos-kernels) after checking its checksum.
k4_tarball() {
  local name=$1 var=$2 tarball
  tarball=${!var:-$TERSE_REPO/../shared/vendor/$name-$KOKKOS4_VERSION.tar.gz}
  [[ -f $tarball ]] || k4_die "no $name $KOKKOS4_VERSION source: $tarball does not exist (set $var to the release tarball)"
  if [[ -f $tarball.sha256 ]]; then
    local want have
    want=$(awk '{print $1; exit}' "$tarball.sha256"); have=$(sha256sum "$tarball" | awk '{print $1}')
    [[ $want == "$have" ]] || k4_die "$tarball: sha256 $have does not match $tarball.sha256 ($want)"
  fi
  echo "$tarball"
}

k4_apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  [[ ${TERSE_SKIP_APT:-0} == 1 ]] && k4_die "missing Debian packages (TERSE_SKIP_APT=1): ${missing[*]}"
  k4_log "installing: ${missing[*]}"
  k4_sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive k4_sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# CUDA 11.8 is in Debian's non-free component: add contrib and non-free to the Components of the existing
# Debian entry (the stanza whose URIs end in /debian, deb822; or the one-line bookworm entries), no other host
# and no other entry (debian-security stays as it is).
k4_enable_non_free() {
  local f tmp
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    tmp=$(mktemp)
    awk 'BEGIN { RS = ""; ORS = "\n\n" }
         { if ($0 ~ /(^|\n)URIs:[^\n]*\/debian\/?(\n|$)/) sub(/\nComponents: *main *(\n|$)/, "\nComponents: main contrib non-free\n"); print }' \
      "$f" >"$tmp"
    if ! cmp -s "$f" "$tmp"; then k4_sudo cp "$tmp" "$f"; fi
    rm -f "$tmp"
  done
  if [[ -f /etc/apt/sources.list ]] && grep -qE '^deb(-src)? .*debian/? +bookworm +main *$' /etc/apt/sources.list; then
    k4_sudo sed -i -E 's#^(deb(-src)? .*debian/? +bookworm) +main *$#\1 main contrib non-free#' /etc/apt/sources.list
  fi
  return 0
}

gpu_toolkit() {
  case $1 in
    cuda)
      if ! dpkg-query -W -f='${Status}' nvidia-cuda-toolkit 2>/dev/null | grep -q "install ok installed"; then
        k4_enable_non_free
      fi
      k4_apt_install nvidia-cuda-toolkit g++-11
      # Debian's nvcc (11.8) before any other CUDA on PATH (Kokkos 4.6 does not know CUDA 12.9+ / 13);
      # nvcc 11.8 takes host compilers up to GCC 11.
      export PATH=/usr/bin:$PATH
      export NVCC_WRAPPER_DEFAULT_COMPILER=g++-11
      local v; v=$(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')
      [[ $v == 11.8 ]] || k4_die "nvcc on PATH is CUDA '$v', expected Debian's 11.8 (/usr/bin/nvcc)"
      ;;
    hip)
      k4_apt_install hipcc libamdhip64-dev
      export PATH=/usr/bin:$PATH
      ;;
    openmp) ;;
    *) k4_die "unknown backend '$1'" ;;
  esac
}

# Kokkos's CMake options of a backend.
k4_options() {
  local arch; arch=$(kokkos4_arch "$1")
  case $1 in
    openmp) echo "-DKokkos_ENABLE_OPENMP=ON -DKokkos_ENABLE_SERIAL=ON" ;;
    cuda) echo "-DKokkos_ENABLE_CUDA=ON -DKokkos_ENABLE_SERIAL=ON -DKokkos_ARCH_$arch=ON -DCMAKE_CXX_COMPILER=@SRC@/bin/nvcc_wrapper" ;;
    hip) echo "-DKokkos_ENABLE_HIP=ON -DKokkos_ENABLE_SERIAL=ON -DKokkos_ARCH_$arch=ON -DKokkos_ENABLE_ROCTHRUST=OFF -DCMAKE_CXX_COMPILER=hipcc" ;;
  esac
}

kokkos4_build() {
  kokkos4_build_core "$1"
  kk4_build "$1"
}

kk4_prefix() {
  local arch; arch=$(kokkos4_arch "$1")
  if [[ $1 == openmp ]]; then echo "$TERSE_DEPS/kokkos-kernels-$KOKKOS4_VERSION-openmp"
  else echo "$TERSE_DEPS/kokkos-kernels-$KOKKOS4_VERSION-$1-${arch,,}"; fi
}

# k4_cmake_install WHAT WORK SRC PREFIX ARGS...: configures SRC (Release, C++17, position-independent) with
# ARGS in WORK/build, builds and installs it into PREFIX (replaced), marks it complete and removes WORK; on a
# failure prints the log's end, removes WORK and stops.
k4_cmake_install() {
  local what=$1 work=$2 src=$3 prefix=$4; shift 4
  cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$prefix" \
    -DCMAKE_CXX_STANDARD=17 -DCMAKE_CXX_EXTENSIONS=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON "$@" \
    >"$work/configure.log" 2>&1 \
    || { tail -n 40 "$work/configure.log" >&2; rm -rf "$work"; k4_die "$what configure failed"; }
  cmake --build "$work/build" -j "$(nproc)" >"$work/build.log" 2>&1 \
    || { tail -n 40 "$work/build.log" >&2; rm -rf "$work"; k4_die "$what build failed"; }
  rm -rf "$prefix"
  cmake --install "$work/build" >/dev/null
  rm -rf "$work"
  touch "$prefix/.terse-complete"
}

kk4_build() {
  local backend=$1 prefix kokkos; prefix=$(kk4_prefix "$backend"); kokkos=$(kokkos4_prefix "$backend")
  if [[ -f $prefix/.terse-complete && $prefix/.terse-complete -nt $kokkos/.terse-complete ]]; then
    k4_log "using Kokkos Kernels $KOKKOS4_VERSION ($backend) built earlier in $prefix"; return
  fi
  local tarball; tarball=$(k4_tarball kokkos-kernels TERSE_KOKKOS_KERNELS_TARBALL)
  local work; work=$(mktemp -d "${TMPDIR:-/tmp}/terse-kk4.XXXXXX")
  k4_log "building Kokkos Kernels $KOKKOS4_VERSION ($backend, BLAS component) from $tarball into $prefix"
  tar -C "$work" -xzf "$tarball"
  local src; src=$(ls -d "$work"/kokkos-kernels-* | head -n1)
  local opts=(-DKokkosKernels_ENABLED_COMPONENTS=BLAS -DKokkosKernels_ADD_DEFAULT_ETI=OFF -DKokkosKernels_ENABLE_TESTS=OFF
              -DKokkosKernels_ENABLE_EXAMPLES=OFF -DKokkosKernels_ENABLE_PERFTESTS=OFF -DKokkosKernels_ENABLE_TPL_LAPACK=OFF
              -DCMAKE_CXX_COMPILER="$(kokkos4_cxx "$backend")")
  case $backend in
    openmp)
      local blas; blas=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)/openblas-openmp
      [[ -f $blas/libopenblas.so ]] || k4_die "$blas/libopenblas.so is missing (Debian package libopenblas-openmp-dev; scripts/setup.sh installs it)"
      # The BLAS symbols' Fortran names (gfortran's, as Debian's OpenBLAS exports them): otherwise Kokkos Kernels
      # needs a Fortran compiler to find them out (scripts/setup.sh).
      opts+=(-DKokkosKernels_ENABLE_TPL_BLAS=ON -DBLAS_LIBRARY_DIRS="$blas" -DBLAS_LIBRARIES=openblas
             "-DF77_BLAS_MANGLE=(name,NAME) name ## _") ;;
    cuda) opts+=(-DKokkosKernels_NO_DEFAULT_CUDA_TPLS=ON -DKokkosKernels_ENABLE_TPL_BLAS=OFF) ;;
    hip) opts+=(-DKokkosKernels_ENABLE_TPL_ROCBLAS=OFF -DKokkosKernels_ENABLE_TPL_ROCSPARSE=OFF -DKokkosKernels_ENABLE_TPL_BLAS=OFF) ;;
  esac
  k4_cmake_install "Kokkos Kernels $KOKKOS4_VERSION ($backend)" "$work" "$src" "$prefix" -DKokkos_ROOT="$kokkos" "${opts[@]}"
  k4_log "Kokkos Kernels $KOKKOS4_VERSION ($backend) installed in $prefix"
}

kokkos4_build_core() {
  local backend=$1 prefix; prefix=$(kokkos4_prefix "$backend")
  if [[ -f $prefix/.terse-complete ]]; then k4_log "using Kokkos $KOKKOS4_VERSION ($backend) built earlier in $prefix"; return; fi
  local tarball; tarball=$(k4_tarball kokkos TERSE_KOKKOS_TARBALL)
  local work; work=$(mktemp -d "${TMPDIR:-/tmp}/terse-kokkos4.XXXXXX")
  k4_log "building Kokkos $KOKKOS4_VERSION ($backend) from $tarball into $prefix"
  tar -C "$work" -xzf "$tarball"
  local src; src=$(ls -d "$work"/kokkos-* | head -n1)
  local opts; opts=$(k4_options "$backend"); opts=${opts//@SRC@/$src}
  # shellcheck disable=SC2086
  k4_cmake_install "Kokkos $KOKKOS4_VERSION ($backend)" "$work" "$src" "$prefix" -DKokkos_ENABLE_TESTS=OFF \
    -DKokkos_ENABLE_EXAMPLES=OFF $opts
  k4_log "Kokkos $KOKKOS4_VERSION ($backend) installed in $prefix"
}

# The C++ compiler terse is built with for a backend (nvcc_wrapper from the Kokkos install for CUDA).
kokkos4_cxx() {
  case $1 in
    openmp) echo "${CXX:-c++}" ;;
    cuda) echo "$(kokkos4_prefix cuda)/bin/nvcc_wrapper" ;;
    hip) echo hipcc ;;
  esac
}
