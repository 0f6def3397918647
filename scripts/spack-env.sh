# Sourced by scripts/test-spack.sh and scripts/spack-install.sh: a real spack (1.0.0.dev0) from the vendored
# sources, working offline, with all of its state outside the source tree.
#
#   spack_setup        unpacks spack, builds clingo's Python module (once), writes spack's configuration
#                      (externals, install tree, the local mirror with the vendored Kokkos 4.6.01 tarballs, the
#                      terse recipe repository) and defines `tspack`, spack with that configuration
#   tspack ARGS...     runs spack
#
# Sources: $TERSE_VENDOR, else ../shared/vendor beside the repository: spack-1.0.0.dev0-6dd2637a.tar.gz,
# clingo-5.6.2.tar.gz, kokkos-4.6.01.tar.gz, kokkos-kernels-4.6.01.tar.gz; each one's .sha256 file is checked.
#
# Everything spack writes is under $TERSE_SPACK (default $TERSE_DEPS/spack, ~/.cache/terse-deps/spack):
#   spack-1.0.0.dev0-6dd2637a/   spack itself (read-only use; its builtin package repository)
#   clingo-5.6.2-py3.X/          clingo 5.6.2 and its Python module (spack's concretizer; Debian 12 has 5.4.1)
#   config/ system/ cache/       SPACK_USER_CONFIG_PATH, SPACK_SYSTEM_CONFIG_PATH, SPACK_USER_CACHE_PATH
#   site/                        the configuration written here: packages.yaml (Debian's packages as externals),
#                                config.yaml (install tree, stage, source cache), mirrors.yaml, repos.yaml
#   mirror/                      the local mirror: kokkos/kokkos-4.6.01.tar.gz, kokkos-kernels/...-4.6.01.tar.gz
#   opt/                         the install tree (kept: later runs reuse Kokkos and Kokkos Kernels)
#   env/                         the environment (a copy of spack.yaml; spack.lock and .spack-env/ stay there)

TERSE_DEPS=${TERSE_DEPS:-${XDG_CACHE_HOME:-$HOME/.cache}/terse-deps}
TERSE_REPO=${TERSE_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
TERSE_VENDOR=${TERSE_VENDOR:-$TERSE_REPO/../shared/vendor}
TERSE_SPACK=${TERSE_SPACK:-$TERSE_DEPS/spack}
SPACK_TARBALL_NAME=spack-1.0.0.dev0-6dd2637a
CLINGO_VERSION=5.6.2
SPACK_KOKKOS_VERSION=4.6.01

sp_log() { printf '[terse spack] %s\n' "$*" >&2; }
sp_die() { printf '[terse spack] error: %s\n' "$*" >&2; exit 1; }
sp_sudo() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

# Prints the path of vendored file $1 after checking it against its .sha256 file (which must be there).
sp_vendored() {
  local f=$TERSE_VENDOR/$1
  [[ -f $f ]] || sp_die "$f does not exist (set TERSE_VENDOR to the folder with the vendored sources)"
  [[ -f $f.sha256 ]] || sp_die "$f.sha256 does not exist: no checksum to check $f against"
  local want have
  want=$(awk '{print $1; exit}' "$f.sha256"); have=$(sha256sum "$f" | awk '{print $1}')
  [[ $want == "$have" ]] || sp_die "$f: sha256 $have does not match $f.sha256 ($want)"
  echo "$f"
}

sp_apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  [[ ${TERSE_SKIP_APT:-0} == 1 ]] && sp_die "missing Debian packages (TERSE_SKIP_APT=1): ${missing[*]}"
  sp_log "installing: ${missing[*]}"
  sp_sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sp_sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

SP_PYVER=$(/usr/bin/python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
SP_CLINGO=$TERSE_SPACK/clingo-$CLINGO_VERSION-py$SP_PYVER
SP_ROOT=$TERSE_SPACK/$SPACK_TARBALL_NAME

# clingo's library and Python module (shared, with an RPATH to its own lib/, so no LD_LIBRARY_PATH), built once.
sp_clingo() {
  if [[ -f $SP_CLINGO/.terse-complete ]]; then sp_log "using clingo $CLINGO_VERSION built earlier in $SP_CLINGO"; return; fi
  sp_apt_install python3-dev python3-cffi bison re2c cmake g++
  local tarball; tarball=$(sp_vendored clingo-$CLINGO_VERSION.tar.gz)
  local work; work=$(mktemp -d "${TMPDIR:-/tmp}/terse-clingo.XXXXXX")
  local start=$SECONDS
  sp_log "building clingo $CLINGO_VERSION and its Python module from $tarball into $SP_CLINGO (about 4 minutes on 2 cores)"
  tar -C "$work" -xzf "$tarball"
  cmake -S "$work/clingo-$CLINGO_VERSION" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$SP_CLINGO" \
    -DCMAKE_INSTALL_LIBDIR=lib -DCMAKE_INSTALL_RPATH="$SP_CLINGO/lib" -DCLINGO_BUILD_WITH_PYTHON=ON \
    -DCLINGO_BUILD_WITH_LUA=OFF -DCLINGO_BUILD_APPS=OFF -DCLINGO_BUILD_TESTS=OFF -DCLINGO_BUILD_EXAMPLES=OFF \
    -DPython_EXECUTABLE=/usr/bin/python3 -DPYCLINGO_USER_INSTALL=OFF -DPYCLINGO_INSTALL_DIR="$SP_CLINGO/python" \
    >"$work/configure.log" 2>&1 || { tail -n 40 "$work/configure.log" >&2; rm -rf "$work"; sp_die "clingo configure failed"; }
  cmake --build "$work/build" -j "$(nproc)" >"$work/build.log" 2>&1 \
    || { tail -n 40 "$work/build.log" >&2; rm -rf "$work"; sp_die "clingo build failed"; }
  rm -rf "$SP_CLINGO"
  cmake --install "$work/build" >/dev/null
  rm -rf "$work"
  PYTHONPATH=$SP_CLINGO/python /usr/bin/python3 -c 'import clingo.ast; assert hasattr(clingo.ast, "parse_files"), clingo.__version__' \
    || sp_die "the clingo module in $SP_CLINGO/python does not import"
  touch "$SP_CLINGO/.terse-complete"
  sp_log "clingo $CLINGO_VERSION built in $((SECONDS - start)) s"
}

# Spack itself, unpacked once (its tree is never written to: every scope and cache is set below).
sp_spack() {
  local tarball; tarball=$(sp_vendored $SPACK_TARBALL_NAME.tar.gz)
  if [[ ! -f $SP_ROOT/.terse-complete ]]; then
    sp_log "unpacking $tarball into $SP_ROOT"
    rm -rf "$SP_ROOT"; mkdir -p "$TERSE_SPACK"
    tar -C "$TERSE_SPACK" -xzf "$tarball"
    [[ -x $SP_ROOT/bin/spack ]] || sp_die "$tarball did not unpack to $SP_ROOT"
    touch "$SP_ROOT/.terse-complete"
  fi
}

# The Debian version of package $1 as spack spells it: 1:1.2.13.dfsg-1 -> 1.2.13, 0.7.0+dfsg-8+b1 -> 0.7.0.
sp_deb_version() {
  local v; v=$(dpkg-query -W -f='${Version}' "$1" 2>/dev/null) || sp_die "Debian package $1 is not installed (scripts/setup.sh installs it)"
  v=${v#*:}; v=${v%%[-+~]*}
  sed -E 's/^([0-9]+(\.[0-9]+)*).*/\1/' <<<"$v"
}

# Writes spack's configuration (the user scope, $TERSE_SPACK/config) into a new folder and puts it in place only
# when it differs from the one there, so that a spack already running on it (another job) keeps its files.
sp_config() {
  local final=$TERSE_SPACK/config ccache=false
  local cfg; cfg=$(mktemp -d "$TERSE_SPACK/config.new.XXXXXX" 2>/dev/null) \
    || { mkdir -p "$TERSE_SPACK"; cfg=$(mktemp -d "$TERSE_SPACK/config.new.XXXXXX"); }
  mkdir -p "$TERSE_SPACK/system" "$TERSE_SPACK/cache" "$TERSE_SPACK/opt" "$TERSE_SPACK/develop-links"
  # Spack's compiler wrapper through ccache, in the cache the host builds use (scripts/build.sh; TERSE_CCACHE=0: off).
  if [[ ${TERSE_CCACHE:-1} != 0 ]] && command -v ccache >/dev/null; then
    ccache=true
    export CCACHE_DIR=${CCACHE_DIR:-$TERSE_DEPS/ccache} CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G} CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}
  fi
  cat >"$cfg/config.yaml" <<YAML
config:
  install_tree:
    root: $TERSE_SPACK/opt
  build_stage:
  - $TERSE_SPACK/stage
  test_stage: $TERSE_SPACK/test-stage
  source_cache: $TERSE_SPACK/cache/source
  misc_cache: $TERSE_SPACK/cache/misc
  build_jobs: $(nproc)
  develop_stage_link: $TERSE_SPACK/develop-links/build-{arch}-{hash:7}
  ccache: $ccache
YAML
  cat >"$cfg/bootstrap.yaml" <<YAML
bootstrap:
  enable: false
YAML
  cat >"$cfg/repos.yaml" <<YAML
repos:
- $TERSE_REPO/spack
YAML
  cat >"$cfg/mirrors.yaml" <<YAML
mirrors:
  terse-vendor:
    url: file://$TERSE_SPACK/mirror
    signed: false
YAML
  # Debian's packages (scripts/setup.sh installs them) as externals that spack never builds; GCC before Clang.
  cat >"$cfg/packages.yaml" <<YAML
packages:
  all:
    compiler: [gcc]
  cmake:
    externals: [{spec: "cmake@$(sp_deb_version cmake)", prefix: /usr}]
    buildable: false
  gmake:
    externals: [{spec: "gmake@$(sp_deb_version make)", prefix: /usr}]
    buildable: false
  openmpi:
    externals: [{spec: "openmpi@$(sp_deb_version libopenmpi-dev)", prefix: /usr}]
    buildable: false
  hdf5:
    externals: [{spec: "hdf5@$(sp_deb_version libhdf5-openmpi-dev)+mpi+hl~cxx api=default", prefix: /usr}]
    buildable: false
  zlib:
    externals: [{spec: "zlib@$(sp_deb_version zlib1g-dev)", prefix: /usr}]
    buildable: false
  yaml-cpp:
    externals: [{spec: "yaml-cpp@$(sp_deb_version libyaml-cpp-dev)+shared", prefix: /usr}]
    buildable: false
  cli11:
    externals: [{spec: "cli11@$(sp_deb_version libcli11-dev)", prefix: /usr}]
    buildable: false
  googletest:
    externals: [{spec: "googletest@$(sp_deb_version libgtest-dev)+gmock", prefix: /usr}]
    buildable: false
  benchmark:
    externals: [{spec: "benchmark@$(sp_deb_version libbenchmark-dev)", prefix: /usr}]
    buildable: false
  openblas:
    externals: [{spec: "openblas@$(sp_deb_version libopenblas-openmp-dev) threads=openmp", prefix: /usr}]
    buildable: false
  mpi:
    require: openmpi
  blas:
    require: openblas
  zlib-api:
    require: zlib
YAML
  # The compilers spack finds (GCC, and Clang where installed).
  SPACK_USER_CONFIG_PATH=$cfg tspack_raw compiler find --scope user >/dev/null
  if [[ -d $final ]] && diff -qr "$final" "$cfg" >/dev/null; then rm -rf "$cfg"; return; fi
  rm -rf "$final.old"; [[ -d $final ]] && mv "$final" "$final.old"
  mv "$cfg" "$final"; rm -rf "$final.old"
}

# The local mirror: the vendored Kokkos and Kokkos Kernels 4.6.01 tarballs under spack's mirror names. This spack's
# packages know no 4.6.01 (they end at 4.5.01), so they carry no checksum for it: sp_vendored checks the .sha256
# files instead, and installs from this mirror pass --no-checksum.
sp_mirror() {
  local m=$TERSE_SPACK/mirror name
  for name in kokkos kokkos-kernels; do
    local tarball; tarball=$(sp_vendored $name-$SPACK_KOKKOS_VERSION.tar.gz)
    mkdir -p "$m/$name"
    cmp -s "$tarball" "$m/$name/$name-$SPACK_KOKKOS_VERSION.tar.gz" || cp "$tarball" "$m/$name/$name-$SPACK_KOKKOS_VERSION.tar.gz"
  done
}

# spack with the configuration above; tspack_raw takes SPACK_USER_CONFIG_PATH from its environment.
tspack() { SPACK_USER_CONFIG_PATH=$TERSE_SPACK/config tspack_raw "$@"; }
tspack_raw() {
  env -u SPACK_ENV -u SPACK_ROOT SPACK_PYTHON=/usr/bin/python3 PYTHONPATH="$SP_CLINGO/python" \
    SPACK_SYSTEM_CONFIG_PATH="$TERSE_SPACK/system" SPACK_USER_CACHE_PATH="$TERSE_SPACK/cache" "$SP_ROOT/bin/spack" "$@"
}

spack_setup() {
  local start=$SECONDS
  sp_apt_install python3 git gfortran
  sp_spack
  sp_clingo
  sp_config
  sp_mirror
  sp_log "spack $(tspack --version) in $SP_ROOT, state in $TERSE_SPACK ($((SECONDS - start)) s)"
}

# sp_env DIR: the environment of the repository's spack.yaml, created in DIR (spack's own manifest loader reads
# and validates the file), with terse@main +openmp added and built from $TERSE_SRC (default: this checkout;
# `spack develop`), and Kokkos and Kokkos Kernels required at 4.6.01 (the local mirror's).
sp_env() {
  local env=$1 src=${TERSE_SRC:-$TERSE_REPO}
  rm -rf "$env"; mkdir -p "$(dirname "$env")"
  tspack env create -d "$env" "$TERSE_REPO/spack.yaml" >/dev/null
  tspack -e "$env" config add "packages:kokkos:require:'@=$SPACK_KOKKOS_VERSION'"
  tspack -e "$env" config add "packages:kokkos-kernels:require:'@=$SPACK_KOKKOS_VERSION'"
  tspack -e "$env" develop --no-clone --path "$src" terse@main >/dev/null
  tspack -e "$env" add terse@main +openmp >/dev/null
}
