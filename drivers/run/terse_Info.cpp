// `terse info`: what this build of terse runs with.
#include "terse_Runtime.hpp"

#include <terse_Compat.hpp>
#include <terse_Version.hpp>

#include <KokkosKernels_config.h>
#include <hdf5.h>

#include <cstdio>
#include <string>

namespace terse {

int run_info(const Runtime& rt) {
  char mpi_version[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int len = 0;
  MPI_Get_library_version(mpi_version, &len);
  std::string mpi(mpi_version, static_cast<std::size_t>(len));
  if (auto nl = mpi.find('\n'); nl != std::string::npos) mpi.resize(nl);
  int mpi_major = 0, mpi_minor = 0;
  MPI_Get_version(&mpi_major, &mpi_minor);

  unsigned h5_major = 0, h5_minor = 0, h5_release = 0;
  H5get_libversion(&h5_major, &h5_minor, &h5_release);
#ifdef H5_HAVE_PARALLEL
  const char* h5_parallel = "parallel";
#else
  const char* h5_parallel = "serial";
#endif

  std::string backends;
  for (const auto& b : compat::enabled_backends()) backends += (backends.empty() ? "" : ", ") + b;

  if (rt.rank() == 0) {
    std::printf("terse %s\n", TERSE_VERSION_STRING);
    std::printf("  compiler:                 %s (C++%ld)\n", TERSE_COMPILER, static_cast<long>(__cplusplus / 100 % 100));
    std::printf("  Kokkos:                   %s\n", compat::kokkos_version().c_str());
    std::printf("  Kokkos backends:          %s\n", backends.c_str());
    std::printf("  Kokkos Kernels:           %s (%s)\n", TERSE_KOKKOSKERNELS_VERSION,
#if defined(KOKKOSKERNELS_ENABLE_TPL_BLAS)
                "host BLAS: yes, the mlp's and the cnn's products call it"
#else
                "host BLAS: none, its own kernels"
#endif
    );
    std::printf("  default execution space:  %s\n", Kokkos::DefaultExecutionSpace::name());
    std::printf("  concurrency:              %d\n", compat::concurrency(Kokkos::DefaultExecutionSpace()));
    std::printf("  host execution space:     %s (concurrency %d)\n", Kokkos::DefaultHostExecutionSpace::name(),
                compat::concurrency(Kokkos::DefaultHostExecutionSpace()));
    std::printf("  MPI:                      %s (standard %d.%d)\n", mpi.c_str(), mpi_major, mpi_minor);
    std::printf("  MPI ranks:                %d\n", rt.size());
    std::printf("  HDF5:                     %u.%u.%u (%s)\n", h5_major, h5_minor, h5_release, h5_parallel);
  }
  return 0;
}

}  // namespace terse
