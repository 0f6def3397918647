#pragma once
// terse_TestBackends.hpp: the execution spaces the unit tests run on (every enabled backend), and small
// helpers to move test data between the host and a backend's memory space.

#include <terse_Compat.hpp>

#include <Kokkos_Core.hpp>
#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

namespace terse::test {

namespace Impl {
template <class Tuple>
struct ToTypes;
template <class... T>
struct ToTypes<std::tuple<T...>> {
  using type = ::testing::Types<T...>;
};
}  // namespace Impl

using ExecSpaceTuple = decltype(std::tuple_cat(
#if defined(KOKKOS_ENABLE_SERIAL)
    std::declval<std::tuple<Kokkos::Serial>>(),
#endif
#if defined(KOKKOS_ENABLE_OPENMP)
    std::declval<std::tuple<Kokkos::OpenMP>>(),
#endif
#if defined(KOKKOS_ENABLE_THREADS)
    std::declval<std::tuple<Kokkos::Threads>>(),
#endif
#if defined(KOKKOS_ENABLE_CUDA)
    std::declval<std::tuple<Kokkos::Cuda>>(),
#endif
#if defined(KOKKOS_ENABLE_HIP)
    std::declval<std::tuple<terse::compat::HIP>>(),
#endif
    std::declval<std::tuple<>>()));

/// ::testing::Types<every enabled execution space>
using ExecSpaces = Impl::ToTypes<ExecSpaceTuple>::type;

/// A one-thread host backend to compare other backends and thread counts with.
#if defined(KOKKOS_ENABLE_SERIAL)
using ReferenceHost = Kokkos::Serial;
#else
using ReferenceHost = Kokkos::DefaultHostExecutionSpace;
#endif

/// A device view of the space's memory filled from a host vector.
template <class ExecSpace, class T>
Kokkos::View<T*, typename ExecSpace::memory_space> to_device(const std::vector<T>& host, const char* label = "data") {
  Kokkos::View<T*, typename ExecSpace::memory_space> v(std::string(label), host.size());
  auto h = Kokkos::create_mirror_view(v);
  for (std::size_t i = 0; i < host.size(); ++i) h(i) = host[i];
  Kokkos::deep_copy(v, h);
  return v;
}

/// The contents of a rank-1 view as a host vector.
template <class View>
std::vector<typename View::non_const_value_type> to_host(const View& v) {
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), v);
  return std::vector<typename View::non_const_value_type>(h.data(), h.data() + h.extent(0));
}

}  // namespace terse::test
