// terse_Collective.cpp: collective agreement on errors (no Kokkos: part of terse_io).
#include "terse_Collective.hpp"

namespace terse {

std::string first_error(MPI_Comm comm, const std::string& local) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  int mine = local.empty() ? size : rank, first = size;
  MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
  if (first == size) return {};
  long long n = rank == first ? static_cast<long long>(local.size()) : 0;
  MPI_Bcast(&n, 1, MPI_LONG_LONG, first, comm);
  std::string msg = rank == first ? local : std::string(static_cast<std::size_t>(n), '\0');
  MPI_Bcast(msg.data(), static_cast<int>(n), MPI_CHAR, first, comm);
  return msg;
}

}  // namespace terse
