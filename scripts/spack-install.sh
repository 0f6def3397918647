#!/usr/bin/env bash
# `spack install terse` for real, offline, with the vendored spack (scripts/spack-env.sh): the environment of
# spack.yaml plus terse@main +openmp built from this checkout (`spack develop`; TERSE_SRC=DIR builds another
# clone), Kokkos and Kokkos Kernels 4.6.01 built by spack from the vendored tarballs (the local mirror), every
# other package Debian's (externals); then runs the installed `terse info` and a short `terse run` from spack's
# prefix. The install tree ($TERSE_DEPS/spack/opt) is kept, so a second run rebuilds terse only.
# Measured times per package: docs/install.md. Extra arguments go to `spack install` (e.g. --verbose).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/spack-env.sh
start=$SECONDS
spack_setup
env=$TERSE_SPACK/env-install
sp_env "$env"
sp_log "concretizing $env (spack.yaml + terse@main +openmp from ${TERSE_SRC:-$TERSE_REPO})"
tspack -e "$env" concretize -f | tail -n 30 >&2
log=$TERSE_SPACK/install.log
sp_log "spack install (log: $log)"
# --no-checksum: this spack knows no checksum of the 4.6.01 tarballs; sp_mirror checked them against the
# vendored .sha256 files before putting them in the mirror.
if ! tspack -e "$env" install --no-checksum --fail-fast "$@" 2>&1 | tee "$log" >&2; then
  sp_die "spack install failed (the build log's path is in $log)"
fi
sp_log "time per package (spack's own timers):"
grep -E "Successfully installed|Total:" "$log" | sed 's/^/  /' >&2 || true
prefix=$(tspack -e "$env" location -i terse)
sp_log "installed terse in $prefix"
# +drivers installs the library components optim and deck (find_package(terse COMPONENTS optim deck)).
for f in lib/cmake/terse/terseConfig.cmake lib/cmake/terse/terseOptimTargets.cmake lib/cmake/terse/terseDeckTargets.cmake \
  lib/libterse_optim.a lib/libterse_deck.a; do
  [[ -f $prefix/$f ]] || sp_die "the installed terse has no $f ($prefix)"
done
source scripts/mpi-env.sh
info=$(OMP_NUM_THREADS=1 "$prefix/bin/terse" info)
echo "$info"
grep -qE "Kokkos: +4\.6\.1" <<<"$info" || sp_die "the installed terse does not report Kokkos 4.6.1"
grep -qE "Kokkos Kernels: +4\.6\.1 \(host BLAS: yes" <<<"$info" \
  || sp_die "the installed terse does not report Kokkos Kernels 4.6.1 with the host BLAS"
work=$(mktemp -d "${TMPDIR:-/tmp}/terse-spack-run.XXXXXX")
terse_mpiexec 2 "$prefix/bin/terse" run inputs/mlp_fashion_mnist_majority_vote.yaml --set run.iterations=50 \
  --output "$work/run.h5" --quiet
[[ -s $work/run.h5 ]] || sp_die "terse run from $prefix wrote no $work/run.h5"
rm -rf "$work"
sp_log "spack install of terse +openmp and its run passed in $((SECONDS - start)) s"
