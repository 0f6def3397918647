# Sourced by scripts/main.sh and scripts/test.sh: the environment MPI jobs of terse run in here.
#   OpenMPI refuses to run as root (CI runs as root) unless told; ranks share the cores, so threads per
#   rank = cores / ranks and no thread binding; more ranks than cores need oversubscription.
if [[ $(id -u) -eq 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMP_PROC_BIND=${OMP_PROC_BIND:-false}

# terse_mpiexec RANKS PROGRAM ARGS...: run with RANKS ranks and cores/RANKS OpenMP threads each.
terse_mpiexec() {
  local ranks=$1; shift
  local cores; cores=$(nproc)
  local threads=$(( cores / ranks )); (( threads >= 1 )) || threads=1
  local extra=()
  if mpiexec --version 2>&1 | grep -qiE "open ?mpi|openrte"; then extra+=(--oversubscribe --bind-to none); fi
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-$threads} mpiexec -n "$ranks" "${extra[@]}" "$@"
}

