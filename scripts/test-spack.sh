#!/usr/bin/env bash
# The spack job (CI runs it after the others): the environment (spack.yaml) and the recipe (spack/packages/terse)
# checked by a real spack, the vendored spack 1.0.0.dev0 with its builtin packages, offline (scripts/spack-env.sh:
# sources from ../shared/vendor or $TERSE_VENDOR, checksums checked; clingo's Python module built once into
# $TERSE_DEPS/spack; Debian's packages as externals; all of spack's configuration, caches and environments under
# $TERSE_DEPS/spack, none in the source tree):
#   1. spack's own manifest loader reads and validates spack.yaml (spack env create);
#   2. spack audit packages terse;
#   3. the environment concretizes (spack.yaml + terse@main +openmp from this checkout, Kokkos and Kokkos Kernels
#      4.6.01 from the local mirror, everything else external), and so do the recipe's main variant combinations
#      (+openmp, +cuda cuda_arch=90, +rocm amdgpu_target=gfx90a, +tests, +benchmarks) against this spack's own
#      Kokkos packages (scripts/spack-concretize.py checks what each graph holds), and spack fetches terse@main
#      with the recipe's git fetcher (pointed at this clone's branch main);
#   4. with TERSE_SPACK_INSTALL=1, the install too (scripts/spack-install.sh: spack install, then the installed
#      terse info and a short terse run); CI leaves it out, it takes longer than CI's budget when its install
#      tree is cold (docs/install.md has the measured times).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/spack-env.sh
start=$SECONDS
TERSE_SETUP_PACKAGES_ONLY=1 bash scripts/setup.sh
spack_setup

# 1. spack.yaml, read by spack (a YAML mapping where a spec should be, a spec that does not parse, a key the
#    schema does not know: spack env create stops with the file and line).
env=$TERSE_SPACK/env-ci
sp_log "validating spack.yaml with spack's loader (environment in $env)"
sp_env "$env"
tspack -e "$env" config get >/dev/null

# 2. The recipe, audited by spack (directives, variants, fetchers, attributes).
sp_log "spack audit packages terse"
tspack audit packages terse

# 3. Concretizations.
t=$SECONDS
sp_log "concretizing the environment"
tspack -e "$env" concretize -f >"$TERSE_SPACK/env-ci.concretize.log" \
  || { cat "$TERSE_SPACK/env-ci.concretize.log" >&2; sp_die "the environment does not concretize"; }
grep -E "^(\[.\]| -) +[a-z0-9]+ +(terse|kokkos|kokkos-kernels)@" "$TERSE_SPACK/env-ci.concretize.log" | cut -c1-160 >&2
for want in "terse@main" "kokkos@$SPACK_KOKKOS_VERSION" "kokkos-kernels@$SPACK_KOKKOS_VERSION"; do
  grep -qE "^(\[.\]| -) +[a-z0-9]+ +$want" "$TERSE_SPACK/env-ci.concretize.log" \
    || sp_die "the environment's solve has no $want ($TERSE_SPACK/env-ci.concretize.log)"
done
sp_log "environment concretized in $((SECONDS - t)) s"
t=$SECONDS
sp_log "concretizing the recipe's variant combinations"
# The recipe's git pointed at this clone, so that spack's fetcher for terse@main is tried too (offline).
fetch=()
if git -C "$TERSE_REPO" rev-parse -q --verify refs/heads/main >/dev/null; then
  fetch=(-c "packages:terse:package_attributes:git:'file://$TERSE_REPO'")
else
  sp_log "no branch main in $TERSE_REPO: not fetching terse@main"
fi
tspack "${fetch[@]}" python scripts/spack-concretize.py
sp_log "variant combinations concretized in $((SECONDS - t)) s"

if [[ ${TERSE_SPACK_INSTALL:-0} == 1 ]]; then bash scripts/spack-install.sh; fi
sp_log "spack job passed in $((SECONDS - start)) s"
