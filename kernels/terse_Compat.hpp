#pragma once
// terse_Compat.hpp: the one place that knows the API differences between Kokkos 3.4 and Kokkos 4.x.
//
// Everything else in terse calls terse::compat::*; no other file tests KOKKOS_VERSION.
//   math          Kokkos::Experimental::sqrt,... (3.4)          -> Kokkos::sqrt,... (3.7+, old names gone in 4.3)
//   min/max       absent in 3.4                                  -> Kokkos::min/max (3.7+)
//   popcount      Kokkos::Impl::bit_count (32-bit, 3.4)          -> Kokkos::popcount (4.1+)
//   host/device   no KOKKOS_IF_ON_HOST in 3.4                    -> TERSE_DEVICE_COMPILE (defined in device passes)
//   version       KOKKOS_VERSION only in 3.4                      -> KOKKOS_VERSION_GREATER_EQUAL (4.0+)
//   threads flag  --kokkos-threads (3.4)                          -> --kokkos-num-threads (3.7+)
//   HIP           Kokkos::Experimental::HIP (3.x)                 -> Kokkos::HIP (4.0+)
// and the one host-only instruction-set branch: streaming (non-temporal) stores on x86-64 with AVX2, and the one
// call into a GPU runtime: the free device memory the run's memory estimate is compared with.

#include <Kokkos_Core.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#if !defined(KOKKOS_VERSION) || KOKKOS_VERSION < 30400
#error "terse needs Kokkos 3.4 or newer"
#endif
#if defined(KOKKOS_ENABLE_CXX14)
#error "terse needs a Kokkos built for C++17 or newer; this one was built for C++14 (e.g. Debian's libtrilinos-kokkos-dev). Run scripts/setup.sh or point Kokkos_ROOT at a C++17 build."
#endif

#define TERSE_KOKKOS_AT_LEAST(major, minor, patch) (KOKKOS_VERSION >= ((major)*10000 + (minor)*100 + (patch)))

/// Defined while compiling device code (Kokkos 3.4 has no KOKKOS_IF_ON_DEVICE).
#if defined(__CUDA_ARCH__) || defined(__HIP_DEVICE_COMPILE__) || defined(__SYCL_DEVICE_ONLY__)
#define TERSE_DEVICE_COMPILE 1
#endif

/// Host code on x86-64 with AVX2 (-march=native on such a CPU): streaming stores are available.
#if !defined(TERSE_DEVICE_COMPILE) && defined(__AVX2__) && (defined(__GNUC__) || defined(__clang__))
#define TERSE_STREAMING_STORES 1
#include <immintrin.h>
#endif

#if defined(KOKKOS_ENABLE_CUDA)
#include <cuda_runtime_api.h>
#elif defined(KOKKOS_ENABLE_HIP)
#include <hip/hip_runtime_api.h>
#endif

#if TERSE_KOKKOS_AT_LEAST(4, 1, 0)
#include <Kokkos_BitManipulation.hpp>
#else
#include <impl/Kokkos_BitOps.hpp>
#endif

namespace terse {
namespace compat {

#if TERSE_KOKKOS_AT_LEAST(3, 7, 0)
#define TERSE_IMPL_MATH_NS Kokkos
#else
#define TERSE_IMPL_MATH_NS Kokkos::Experimental
#endif

using TERSE_IMPL_MATH_NS::sqrt;
using TERSE_IMPL_MATH_NS::fabs;
using TERSE_IMPL_MATH_NS::exp;
using TERSE_IMPL_MATH_NS::log;
using TERSE_IMPL_MATH_NS::log1p;
using TERSE_IMPL_MATH_NS::expm1;
using TERSE_IMPL_MATH_NS::pow;
using TERSE_IMPL_MATH_NS::lgamma;
using TERSE_IMPL_MATH_NS::erf;
using TERSE_IMPL_MATH_NS::erfc;
using TERSE_IMPL_MATH_NS::cos;
using TERSE_IMPL_MATH_NS::sin;
using TERSE_IMPL_MATH_NS::floor;
#undef TERSE_IMPL_MATH_NS

template <class T>
KOKKOS_INLINE_FUNCTION constexpr const T& min(const T& a, const T& b) {
  return (b < a) ? b : a;
}
template <class T>
KOKKOS_INLINE_FUNCTION constexpr const T& max(const T& a, const T& b) {
  return (a < b) ? b : a;
}

/// Number of set bits of a 32- or 64-bit unsigned word, on host and device.
KOKKOS_INLINE_FUNCTION int popcount(std::uint64_t w) {
#if TERSE_KOKKOS_AT_LEAST(4, 1, 0)
  return Kokkos::popcount(w);
#elif !defined(TERSE_DEVICE_COMPILE) && (defined(__GNUC__) || defined(__clang__))
  return __builtin_popcountll(w);  // one instruction with -mpopcnt; bit_count is 32-bit only in 3.4
#else
  return Kokkos::Impl::bit_count(static_cast<unsigned>(w & 0xffffffffu)) +
         Kokkos::Impl::bit_count(static_cast<unsigned>(w >> 32));
#endif
}
KOKKOS_INLINE_FUNCTION int popcount(std::uint32_t w) {
#if TERSE_KOKKOS_AT_LEAST(4, 1, 0)
  return Kokkos::popcount(w);
#else
  return Kokkos::Impl::bit_count(static_cast<unsigned>(w));
#endif
}

/// Whether streaming_signs64 writes with streaming stores (else it is not to be called).
#if defined(TERSE_STREAMING_STORES)
inline constexpr bool has_streaming_stores = true;

/// Host only: dst[j] = (bit j of bits ? s : -s) for j = 0..63, written with non-temporal stores that bypass
/// the caches (no read-for-ownership of lines that are only written). dst must be 32-byte aligned; call
/// streaming_fence() before another thread reads what was written.
inline void streaming_signs64(float* dst, std::uint64_t bits, float s) {
  const __m256 pos = _mm256_set1_ps(s), neg = _mm256_set1_ps(-s);
  const __m256i lane_bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  for (int k = 0; k < 8; ++k) {
    const __m256i byte = _mm256_set1_epi32(static_cast<int>((bits >> (8 * k)) & 0xffu));
    const __m256i set = _mm256_cmpeq_epi32(_mm256_and_si256(byte, lane_bit), lane_bit);
    _mm256_stream_ps(dst + 8 * k, _mm256_blendv_ps(neg, pos, _mm256_castsi256_ps(set)));
  }
}
/// Orders the streaming stores before the stores that follow (the end of a work item).
inline void streaming_fence() { _mm_sfence(); }
#else
inline constexpr bool has_streaming_stores = false;
inline void streaming_signs64(float*, std::uint64_t, float) {}
inline void streaming_fence() {}
#endif

#if defined(KOKKOS_ENABLE_HIP)
/// The HIP execution space (Kokkos::Experimental::HIP before 4.0).
#if TERSE_KOKKOS_AT_LEAST(4, 0, 0)
using HIP = Kokkos::HIP;
#else
using HIP = Kokkos::Experimental::HIP;
#endif
#endif

/// Free bytes of the current GPU's memory (CUDA, HIP; the device Kokkos initialised), 0 on builds without one
/// or when the runtime cannot tell. Host code, after Kokkos::initialize.
inline std::size_t device_memory_free() {
  std::size_t free_bytes = 0, total_bytes = 0;
#if defined(KOKKOS_ENABLE_CUDA)
  if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) free_bytes = 0;
#elif defined(KOKKOS_ENABLE_HIP)
  if (hipMemGetInfo(&free_bytes, &total_bytes) != hipSuccess) free_bytes = 0;
#endif
  (void)total_bytes;
  return free_bytes;
}

/// "OpenMP;Serial": the execution spaces this Kokkos was built with, by name.
inline std::vector<std::string> enabled_backends() {
  std::vector<std::string> names;
#if defined(KOKKOS_ENABLE_CUDA)
  names.emplace_back("Cuda");
#endif
#if defined(KOKKOS_ENABLE_HIP)
  names.emplace_back("HIP");
#endif
#if defined(KOKKOS_ENABLE_SYCL)
  names.emplace_back("SYCL");
#endif
#if defined(KOKKOS_ENABLE_OPENMPTARGET)
  names.emplace_back("OpenMPTarget");
#endif
#if defined(KOKKOS_ENABLE_OPENMP)
  names.emplace_back("OpenMP");
#endif
#if defined(KOKKOS_ENABLE_THREADS)
  names.emplace_back("Threads");
#endif
#if defined(KOKKOS_ENABLE_HPX)
  names.emplace_back("HPX");
#endif
#if defined(KOKKOS_ENABLE_SERIAL)
  names.emplace_back("Serial");
#endif
  return names;
}

/// "3.4.1" from KOKKOS_VERSION.
inline std::string kokkos_version() {
  return std::to_string(KOKKOS_VERSION / 10000) + "." + std::to_string(KOKKOS_VERSION / 100 % 100) + "." +
         std::to_string(KOKKOS_VERSION % 100);
}

/// The command-line flag that sets the number of host threads in this Kokkos.
inline const char* threads_flag() {
#if TERSE_KOKKOS_AT_LEAST(3, 7, 0)
  return "--kokkos-num-threads";
#else
  return "--kokkos-threads";
#endif
}

/// Concurrency of an execution space instance (a static member in 3.4, a member function in 4.x).
template <class ExecSpace>
int concurrency(const ExecSpace& space) {
  return space.concurrency();
}

}  // namespace compat
}  // namespace terse
