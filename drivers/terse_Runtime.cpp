#include "terse_Runtime.hpp"

#include <Kokkos_Core.hpp>

#include <cstring>
#include <vector>

namespace terse {

Runtime::Runtime(int& argc, char**& argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  // Kokkos sees only its prefixed flags: Kokkos 3.4 also reads unprefixed ones (--help, --threads, ...) and
  // would answer `terse run --help` with its own help. The rest goes to CLI11.
  std::vector<char*> kokkos_argv{argv[0]};
  for (int i = 0; i < argc; ++i) {
    const bool kokkos_flag = i > 0 && std::strncmp(argv[i], "--kokkos-", 9) == 0;
    if (kokkos_flag) kokkos_argv.push_back(argv[i]);
    else args_.emplace_back(argv[i]);
  }
  int kokkos_argc = static_cast<int>(kokkos_argv.size());
  kokkos_argv.push_back(nullptr);
  char** kokkos_args = kokkos_argv.data();
  Kokkos::initialize(kokkos_argc, kokkos_args);
}

Runtime::~Runtime() {
  Kokkos::finalize();
  MPI_Finalize();
}

}  // namespace terse
