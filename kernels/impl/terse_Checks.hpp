#pragma once
// terse_Checks.hpp: the kernels' one way to check their arguments, and their one host-backend trait.
//
//   check_view<ExecSpace, View, Rank = 1>()  compile time: a Kokkos::View of that rank whose memory space the
//                                            execution space can access
//   require(condition, what)                 run time, in release builds too: throws std::invalid_argument
//                                            (a wrong size, a bad parameter); host code, before a launch.
//                                            The kernels do not use KOKKOS_ASSERT, which NDEBUG compiles out.
//   host_loops_v<ExecSpace>                  whether an execution space takes the host loops (Serial, OpenMP,
//                                            Threads: whole words or blocks per work item, contiguous and
//                                            vectorisable) or the device paths. Chosen by the execution space,
//                                            not its memory space, which is host-accessible for CUDA UVM too.

#include <Kokkos_Core.hpp>

#include <stdexcept>

namespace terse::Impl {

template <class ExecSpace, class View, int Rank = 1>
constexpr void check_view() {
  static_assert(Kokkos::is_view<View>::value, "terse kernels take Kokkos::View arguments");
  static_assert(Kokkos::SpaceAccessibility<ExecSpace, typename View::memory_space>::accessible,
                "the view's memory space is not accessible from the execution space");
  static_assert(static_cast<int>(View::rank) == Rank, "a view of the wrong rank");
}

inline void require(bool condition, const char* what) {
  if (!condition) throw std::invalid_argument(what);
}

template <class ExecSpace>
inline constexpr bool host_loops_v = Kokkos::SpaceAccessibility<ExecSpace, Kokkos::HostSpace>::accessible;

}  // namespace terse::Impl
