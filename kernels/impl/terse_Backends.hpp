#pragma once
// terse_Backends.hpp: TERSE_FOR_EACH_BACKEND(M) expands to M(E) for every execution space this Kokkos build
// enables (Serial, OpenMP, Threads, Cuda, HIP): the one list the explicit instantiations of the templated
// classes use (the problems, the exchanges, the optimizer's pieces).
#include <terse_Compat.hpp>

#include <Kokkos_Core.hpp>

#if defined(KOKKOS_ENABLE_SERIAL)
#define TERSE_BACKEND_SERIAL(M) M(Kokkos::Serial)
#else
#define TERSE_BACKEND_SERIAL(M)
#endif
#if defined(KOKKOS_ENABLE_OPENMP)
#define TERSE_BACKEND_OPENMP(M) M(Kokkos::OpenMP)
#else
#define TERSE_BACKEND_OPENMP(M)
#endif
#if defined(KOKKOS_ENABLE_THREADS)
#define TERSE_BACKEND_THREADS(M) M(Kokkos::Threads)
#else
#define TERSE_BACKEND_THREADS(M)
#endif
#if defined(KOKKOS_ENABLE_CUDA)
#define TERSE_BACKEND_CUDA(M) M(Kokkos::Cuda)
#else
#define TERSE_BACKEND_CUDA(M)
#endif
#if defined(KOKKOS_ENABLE_HIP)
#define TERSE_BACKEND_HIP(M) M(terse::compat::HIP)
#else
#define TERSE_BACKEND_HIP(M)
#endif
#define TERSE_FOR_EACH_BACKEND(M) \
  TERSE_BACKEND_SERIAL(M) TERSE_BACKEND_OPENMP(M) TERSE_BACKEND_THREADS(M) TERSE_BACKEND_CUDA(M) TERSE_BACKEND_HIP(M)
