#pragma once
// impl/terse_Lanes.hpp: the device idiom of terse's word kernels (packing, fused compression, chunk sums).
//
// A packed word covers 64 consecutive coordinates. Host backends give a work item a whole word (contiguous
// loops the compiler vectorises). Device backends give a word to one team thread and its 64 coordinates to
// `word_lanes` = 8 vector lanes: lane u handles coordinates u, u+8, ..., u+56 of the word in that order. Eight
// lanes then read 8 consecutive values per step (one 32-byte sector of fp32) and the 4 words of a 32-lane warp
// are consecutive, so every sector a warp touches is used whole (coalesced), with no per-thread arrays. The
// lanes combine their bits and partial sums with one vector reduction (WordPartialReducer) whose slots are
// disjoint: slot u is written by lane u alone and the others add the identity, so the result does not depend
// on the reduction's join order, and a chunk sum (lane u adds t_u, t_{u+8}, ... in turn, as lane_sum64 does)
// is bitwise the host's.
//
// The same functors run on host backends (vector length 1, the lanes one after another), which is how the CPU
// test suite checks the device paths against the scalar references.

#include <terse_Compat.hpp>

#include "terse_Checks.hpp"

#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

namespace terse {
namespace Impl {

/// Vector lanes per 64-coordinate word on device backends.
inline constexpr int word_lanes = 8;
/// Words (team threads) per team on device backends: 32 x 8 = 256 device threads.
inline constexpr int lane_words_per_team = 32;

/// What the lanes of one word reduce: its packed bits and one partial sum per lane (slot u: lane u's terms).
template <class T>
struct WordPartial {
  std::uint64_t bits;  // a packed sign word (terse_Sign.hpp)
  T acc[word_lanes];

  /// slot u <- slot u + v, with u known only at run time (the lane), written so that every index is a
  /// constant: the value stays in registers on a GPU instead of going to local memory.
  KOKKOS_INLINE_FUNCTION void add_to_slot(int u, T v) {
    for (int s = 0; s < word_lanes; ++s)
      if (s == u) acc[s] += v;
  }
};

/// A Kokkos reducer over WordPartial: bits or'ed, slots added. Slots start at -0.0, the exact additive
/// identity of IEEE arithmetic (x + -0.0 == x for every x, +0.0 and -0.0 included), so the slot a lane did not
/// touch changes nothing when joined.
template <class T>
struct WordPartialReducer {
  using reducer = WordPartialReducer;
  using value_type = WordPartial<T>;
  using result_view_type = Kokkos::View<value_type, Kokkos::HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

  value_type* value;

  KOKKOS_INLINE_FUNCTION explicit WordPartialReducer(value_type& v) : value(&v) {}
  KOKKOS_INLINE_FUNCTION void join(value_type& dest, const value_type& src) const {
    dest.bits |= src.bits;
    for (int u = 0; u < word_lanes; ++u) dest.acc[u] += src.acc[u];
  }
  KOKKOS_INLINE_FUNCTION void init(value_type& v) const {
    v.bits = 0;
    for (int u = 0; u < word_lanes; ++u) v.acc[u] = T(-0.0);
  }
  KOKKOS_INLINE_FUNCTION value_type& reference() const { return *value; }
  KOKKOS_INLINE_FUNCTION result_view_type view() const { return result_view_type(value); }
  KOKKOS_INLINE_FUNCTION bool references_scalar() const { return true; }
};

// host_loops_v (impl/terse_Checks.hpp) decides between the host word loops and these device paths: the lanes
// above for kernels that read coordinates and write words; one thread per coordinate for kernels that read
// words and write coordinates, so neighbouring threads touch neighbouring addresses.

/// Test hook: while a DevicePathsOnHost(true) lives, host backends run the device paths (the lanes) of the
/// kernels that have one, so the CPU test suite checks them against the same references bit for bit
/// (tests/tstDevicePaths.cpp). Host code; one at a time, not across threads.
inline bool& device_paths_on_host() {
  static bool on = false;
  return on;
}
class DevicePathsOnHost {
 public:
  explicit DevicePathsOnHost(bool on = true) : before_(device_paths_on_host()) { device_paths_on_host() = on; }
  ~DevicePathsOnHost() { device_paths_on_host() = before_; }
  DevicePathsOnHost(const DevicePathsOnHost&) = delete;
  DevicePathsOnHost& operator=(const DevicePathsOnHost&) = delete;

 private:
  bool before_;
};

/// The team policy of a lanes kernel over `words` words: lane_words_per_team team threads of word_lanes lanes
/// each on devices; one thread per team on host backends (there the lanes run one after another).
template <class ExecSpace>
Kokkos::TeamPolicy<ExecSpace> word_lanes_policy(const ExecSpace& space, std::size_t words) {
  const int team = host_loops_v<ExecSpace> ? 1 : lane_words_per_team;
  const std::size_t league = (words + team - 1) / team;
  if (league > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    throw std::invalid_argument("terse: a vector of " + std::to_string(words) + " words exceeds a team policy's league");
  return Kokkos::TeamPolicy<ExecSpace>(space, static_cast<int>(league), team, word_lanes);
}

/// The words of team `league_rank` of `team_size` threads: [first, first + count) of [0, words).
struct TeamWords {
  std::size_t first;
  int count;
};
KOKKOS_INLINE_FUNCTION TeamWords team_words(int league_rank, int team_size, std::size_t words) {
  const std::size_t first = static_cast<std::size_t>(league_rank) * static_cast<std::size_t>(team_size);
  const std::size_t count = first >= words ? 0 : compat::min<std::size_t>(static_cast<std::size_t>(team_size), words - first);
  return {first, static_cast<int>(count)};
}

/// Calls f(word) once per word in [0, words) from the team threads of a word_lanes_policy team; f runs the
/// word's vector lanes itself.
template <class Member, class F>
KOKKOS_INLINE_FUNCTION void for_team_words(const Member& team, std::size_t words, const F& f) {
  const TeamWords tw = team_words(team.league_rank(), team.team_size(), words);
  Kokkos::parallel_for(Kokkos::TeamThreadRange(team, tw.count), [&](int t) { f(tw.first + static_cast<std::size_t>(t)); });
}

}  // namespace Impl
}  // namespace terse
