#include "terse_Runtime.hpp"

#include <Kokkos_Core.hpp>

#include <cstring>

namespace terse {

Runtime::Runtime(int& argc, char**& argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  Kokkos::initialize(argc, argv);
  for (int i = 0; i < argc; ++i) {
    if (i > 0 && std::strncmp(argv[i], "--kokkos-", 9) == 0) continue;  // Kokkos 3.4 leaves its flags in argv
    args_.emplace_back(argv[i]);
  }
}

Runtime::~Runtime() {
  Kokkos::finalize();
  MPI_Finalize();
}

}  // namespace terse
