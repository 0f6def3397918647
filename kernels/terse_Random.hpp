#pragma once
// terse_Random.hpp: a counter-based random number generator (Philox-4x32-10, Salmon et al., SC'11).
//
// Every random number in terse is a pure function of (seed, stream, iteration, worker, index): no state,
// no generator pool, so a run gives the same numbers on any backend, thread count or rank layout.
// `stream` separates independent uses (gradient noise, stochastic sign, sample selection, ...).

#include <terse_Compat.hpp>

#include <cstdint>

namespace terse {

struct Philox4x32 {
  std::uint32_t v[4];
};

/// Philox-4x32 with 10 rounds: counter (c0..c3) and key (k0, k1) to 128 random bits.
KOKKOS_INLINE_FUNCTION Philox4x32 philox4x32(std::uint32_t c0, std::uint32_t c1, std::uint32_t c2,
                                             std::uint32_t c3, std::uint32_t k0, std::uint32_t k1) {
  constexpr std::uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  constexpr std::uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = static_cast<std::uint64_t>(M0) * c0;
    const std::uint64_t p1 = static_cast<std::uint64_t>(M1) * c2;
    const std::uint32_t hi0 = static_cast<std::uint32_t>(p0 >> 32), lo0 = static_cast<std::uint32_t>(p0);
    const std::uint32_t hi1 = static_cast<std::uint32_t>(p1 >> 32), lo1 = static_cast<std::uint32_t>(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += W0;
    k1 += W1;
  }
  return Philox4x32{{c0, c1, c2, c3}};
}

/// Well-known uses of the generator; each is an independent stream.
enum class RandomStream : std::uint32_t {
  none = 0,  ///< a compressor that draws nothing (terse_Compressor.hpp: C::stream of the deterministic ones)
  gradient_noise = 1,
  stochastic_sign = 2,
  sample_selection = 3,
  initial_model = 4,
  rand_k = 5,
  monitor_sample = 6,  ///< the rows of the monitor's loss estimates (drivers: pieces::Monitor)
  qsgd = 7,            ///< QSGD's and TernGrad's stochastic levels (terse_Qsgd.hpp)
};

/// The generator keyed by (seed, stream); draw(iteration, worker, index) gives 128 bits.
struct CounterRng {
  std::uint64_t seed = 0;
  std::uint32_t stream = 0;

  KOKKOS_INLINE_FUNCTION Philox4x32 draw(std::uint64_t iteration, std::uint32_t worker,
                                         std::uint64_t index) const {
    // counter: index (low 32 bits), index high bits + iteration high bits, iteration (low 32 bits), worker;
    // key: the 64-bit seed, its low word mixed with the stream. Distinct for every (seed, stream, iteration,
    // worker, index) with index < 2^32 and iteration < 2^32; beyond that, index and iteration high words share
    // one counter word (a run of 2^32 iterations over 2^32-coordinate vectors would be needed to collide).
    return philox4x32(static_cast<std::uint32_t>(index),
                      static_cast<std::uint32_t>(index >> 32) ^ (static_cast<std::uint32_t>(iteration >> 32) * 0x9E3779B9u),
                      static_cast<std::uint32_t>(iteration), worker,
                      static_cast<std::uint32_t>(seed) ^ (stream * 0x85EBCA6Bu), static_cast<std::uint32_t>(seed >> 32));
  }

  /// Uniform double in (0, 1) (never 0 or 1): the 52 high random bits, centred in their cells, so every
  /// value k + 1/2 over 2^52 is exact and the largest is 1 - 2^-53.
  KOKKOS_INLINE_FUNCTION static double to_uniform(std::uint32_t hi, std::uint32_t lo) {
    const std::uint64_t bits = ((static_cast<std::uint64_t>(hi) << 32) | lo) >> 12;
    return (static_cast<double>(bits) + 0.5) * (1.0 / 4503599627370496.0);
  }

  KOKKOS_INLINE_FUNCTION double uniform(std::uint64_t iteration, std::uint32_t worker, std::uint64_t index) const {
    const Philox4x32 r = draw(iteration, worker, index);
    return to_uniform(r.v[0], r.v[1]);
  }

  /// Uniform double in (0, 1) with 32 random bits, four coordinates per draw: coordinate `index` takes lane
  /// index % 4 of draw(iteration, worker, index / 4). For kernels that need one cheap uniform per coordinate.
  KOKKOS_INLINE_FUNCTION static double lane_to_uniform(std::uint32_t bits) {
    return (static_cast<double>(bits) + 0.5) * (1.0 / 4294967296.0);
  }
  KOKKOS_INLINE_FUNCTION double uniform_lane(std::uint64_t iteration, std::uint32_t worker, std::uint64_t index) const {
    const Philox4x32 r = draw(iteration, worker, index / 4);
    return lane_to_uniform(r.v[index % 4]);
  }

  /// Standard normal N(0, 1) by the Box-Muller transform of two uniforms of one draw.
  KOKKOS_INLINE_FUNCTION double normal(std::uint64_t iteration, std::uint32_t worker, std::uint64_t index) const {
    const Philox4x32 r = draw(iteration, worker, index);
    const double u1 = to_uniform(r.v[0], r.v[1]);
    const double u2 = to_uniform(r.v[2], r.v[3]);
    constexpr double two_pi = 6.283185307179586476925286766559;
    return compat::sqrt(-2.0 * compat::log(u1)) * compat::cos(two_pi * u2);
  }

  /// Uniform integer in [0, n) (n < 2^32), by the multiply-shift map of 32 random bits.
  KOKKOS_INLINE_FUNCTION std::uint32_t below(std::uint32_t n, std::uint64_t iteration, std::uint32_t worker,
                                             std::uint64_t index) const {
    const Philox4x32 r = draw(iteration, worker, index);
    return static_cast<std::uint32_t>((static_cast<std::uint64_t>(r.v[0]) * n) >> 32);
  }
};

}  // namespace terse
