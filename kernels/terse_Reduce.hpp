#pragma once
// terse_Reduce.hpp: deterministic sums. The terms are summed in chunks of 64 consecutive terms in a
// fixed order (eight lanes: lane u adds t_u, t_{u+8}, ..., t_{u+56} in turn, which compilers vectorise as one
// vector accumulator; then the eight lane sums pairwise in double), the chunk sums again in chunks of 64, and
// so on until one value is left. The summation tree depends on n alone: a sum is bitwise the same for any thread count
// and on every backend that does not contract x*y+z into FMAs differently (CUDA/HIP do by default), unlike a
// Kokkos::parallel_reduce, whose join order depends on the scheduling.
//
// 64 terms is one packed sign word: the fused compression kernels (terse_Compress.hpp) produce one chunk
// sum per word they write and hand them to SumWorkspace::finish.
//
// The result stays on the device (a rank-0 view) so that the kernel that needs it (a compression scale)
// reads it there, with no round trip through the host.

#include <terse_Compat.hpp>

#include "impl/terse_Lanes.hpp"

#include <cstddef>
#include <stdexcept>
#include <utility>

namespace terse {

/// Terms per chunk of a deterministic sum.
inline constexpr std::size_t sum_chunk = 64;

KOKKOS_INLINE_FUNCTION constexpr std::size_t sum_chunks(std::size_t n) { return (n + sum_chunk - 1) / sum_chunk; }

namespace Impl {

/// The fixed-order sum of eight accumulators.
KOKKOS_INLINE_FUNCTION double combine8(const double* acc) {
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/// The sum of t[0..63] in the fixed order described above. The lanes add in T, the lane sums in double: for
/// T = float the relative error of a sum of terms of one sign is below 7 * 2^-24 + 3 * 2^-53, about 4.2e-7.
template <class T>
KOKKOS_INLINE_FUNCTION double lane_sum64(const T* t) {
  T acc[8];
  for (int u = 0; u < 8; ++u) acc[u] = t[u];
  for (int j = 8; j < 64; j += 8)
    for (int u = 0; u < 8; ++u) acc[u] += t[j + u];
  double d[8];
  for (int u = 0; u < 8; ++u) d[u] = static_cast<double>(acc[u]);
  return combine8(d);
}

/// out(c) = sum of term(i) over i in [64 c, min(64 c + 64, n)), by lane_sum64 (missing terms are 0).
template <class Term, class Out>
struct ChunkSum {
  Term term;
  Out out;
  std::size_t n;

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t c) const {
    double t[sum_chunk];
    const std::size_t begin = c * sum_chunk;
    if (begin + sum_chunk <= n) {
      for (std::size_t j = 0; j < sum_chunk; ++j) t[j] = static_cast<double>(term(begin + j));
    } else {
      for (std::size_t j = 0; j < sum_chunk; ++j) t[j] = begin + j < n ? static_cast<double>(term(begin + j)) : 0.0;
    }
    out(c) = lane_sum64(t);
  }
};

/// Device path of ChunkSum (impl/terse_Lanes.hpp): a team thread per chunk, lane u adds the chunk's terms
/// u, u+8, ..., u+56 in that order (lane_sum64's lanes), the lane sums combined as combine8 does: bitwise the
/// host's sum, with coalesced reads and no per-thread array.
template <class Term, class Out>
struct ChunkSumLanes {
  Term term;
  Out out;
  std::size_t n;

  template <class Member>
  KOKKOS_INLINE_FUNCTION void operator()(const Member& team) const {
    for_team_words(team, sum_chunks(n), [&](std::size_t c) {
      const std::size_t begin = c * sum_chunk;
      WordPartial<double> r;
      Kokkos::parallel_reduce(
          Kokkos::ThreadVectorRange(team, word_lanes),
          [&](int u, WordPartial<double>& acc) {
            double lane = -0.0;  // lane_sum64's lane u: t_u + t_{u+8} + ... in turn
            for (std::size_t j = u; j < sum_chunk; j += word_lanes)
              lane += begin + j < n ? static_cast<double>(term(begin + j)) : 0.0;
            acc.add_to_slot(u, lane);
          },
          WordPartialReducer<double>(r));
      Kokkos::single(Kokkos::PerThread(team), [&]() { out(c) = combine8(r.acc); });
    });
  }
};

/// out(c) = the sum of chunk c of term(0 .. n-1), for every chunk: ChunkSum on host backends, ChunkSumLanes on
/// devices (both bitwise the same).
template <class ExecSpace, class Term, class Out>
void launch_chunk_sums(const ExecSpace& space, const char* label, const Term& term, const Out& out, std::size_t n) {
  if constexpr (host_loops_v<ExecSpace>) {
    if (!device_paths_on_host()) {
      Kokkos::parallel_for(label, Kokkos::RangePolicy<ExecSpace>(space, 0, sum_chunks(n)), ChunkSum<Term, Out>{term, out, n});
      return;
    }
  }
  Kokkos::parallel_for(label, word_lanes_policy(space, sum_chunks(n)), ChunkSumLanes<Term, Out>{term, out, n});
}

}  // namespace Impl

/// Buffers of a deterministic sum of up to n terms; allocate once, reuse for every sum.
template <class ExecSpace>
class SumWorkspace {
 public:
  using memory_space = typename ExecSpace::memory_space;
  using partials_type = Kokkos::View<double*, memory_space>;

  SumWorkspace() = default;
  explicit SumWorkspace(std::size_t n)
      : n_(n),
        a_(Kokkos::ViewAllocateWithoutInitializing("terse::sum_partials_a"), compat::max<std::size_t>(1, sum_chunks(n))),
        b_(Kokkos::ViewAllocateWithoutInitializing("terse::sum_partials_b"),
           compat::max<std::size_t>(1, sum_chunks(sum_chunks(n)))),
        result_("terse::sum_result") {}

  /// Bytes the constructor allocates for sums of up to n terms.
  static constexpr std::size_t bytes(std::size_t n) {
    return sizeof(double) * (compat::max<std::size_t>(1, sum_chunks(n)) +
                             compat::max<std::size_t>(1, sum_chunks(sum_chunks(n))) + 1);
  }

  std::size_t capacity() const { return n_; }
  /// The last sum, on the device.
  Kokkos::View<double, memory_space> result() const { return result_; }
  /// The last sum, copied to the host (this waits for the kernels that produce it).
  double host_result() const {
    double v = 0;
    Kokkos::deep_copy(v, result_);
    return v;
  }

  /// Level-0 chunk sums: a fused kernel writes the sum of its terms 64c .. 64c+63 to partials()(c), then
  /// calls finish(space, sum_chunks(n)).
  partials_type partials() const { return a_; }

  /// Reduces partials()(0 .. chunks-1) to result().
  void finish(const ExecSpace& space, std::size_t chunks) const {
    partials_type in = a_, out = b_;
    while (chunks > 1) {
      const std::size_t next = sum_chunks(chunks);
      Impl::launch_chunk_sums(space, "terse::sum_partials", in, out, chunks);
      std::swap(in, out);
      chunks = next;
    }
    auto r = result_;
    if (chunks == 0) {
      Kokkos::deep_copy(space, r, 0.0);
    } else {
      Kokkos::parallel_for("terse::sum_result", Kokkos::RangePolicy<ExecSpace>(space, 0, 1),
                           KOKKOS_LAMBDA(std::size_t) { r() = in(0); });
    }
  }

 private:
  std::size_t n_ = 0;
  partials_type a_, b_;
  Kokkos::View<double, memory_space> result_;
};

/// Deterministic sum of term(i), i in [0, n), into ws.result(). Term: a rank-1 view or a copyable functor
/// `KOKKOS_INLINE_FUNCTION value operator()(std::size_t i) const`.
template <class ExecSpace, class Term>
void deterministic_sum(const ExecSpace& space, const Term& term, std::size_t n, const SumWorkspace<ExecSpace>& ws) {
  if (n > ws.capacity()) throw std::invalid_argument("terse::deterministic_sum: n exceeds the SumWorkspace's capacity");
  const std::size_t chunks = sum_chunks(n);
  Impl::launch_chunk_sums(space, "terse::deterministic_sum", term, ws.partials(), n);
  ws.finish(space, chunks);
}

}  // namespace terse
