#pragma once
// terse_Sign.hpp: 1-bit sign compression. Packs fp32/fp64 vectors into 64-bit words, unpacks them to
// +-scale, and applies x <- x - eta * scale * sign without materialising a vector of signs.
//
// Conventions (fixed for the whole project):
//   * a value >= 0 (so -0.0 too, and NaN) encodes +1 as a set bit; a value < 0 encodes -1 as a clear bit;
//   * coordinate i lives in bit (i % 64) of word (i / 64), least significant bit first, so the packed words
//     read as bytes on a little-endian machine equal numpy.packbits(x >= 0, bitorder='little');
//   * the unused high bits of the last word are 0.

#include <terse_Compat.hpp>

#include "impl/terse_Checks.hpp"

#include "impl/terse_Lanes.hpp"

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <type_traits>

namespace terse {

/// The unit of packed sign vectors.
using sign_word_t = std::uint64_t;
inline constexpr int sign_word_bits = 64;

/// Number of words that hold n packed signs.
KOKKOS_INLINE_FUNCTION constexpr std::size_t packed_words(std::size_t n) {
  return (n + sign_word_bits - 1) / sign_word_bits;
}

/// The bit a value encodes: 1 for +1 (x >= 0, -0.0, NaN), 0 for -1 (x < 0).
template <class T>
KOKKOS_INLINE_FUNCTION constexpr sign_word_t sign_bit(T x) {
  return static_cast<sign_word_t>(!(x < T(0)));
}

/// +1 or -1 from a bit.
template <class T>
KOKKOS_INLINE_FUNCTION constexpr T sign_value(sign_word_t bit) {
  return bit ? T(1) : T(-1);
}

namespace Impl {

template <class XView, class WView>
struct SignPack {
  XView x;
  WView words;
  std::size_t n;

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t w) const {
    const std::size_t begin = w * sign_word_bits;
    sign_word_t bits = 0;
    if (begin + sign_word_bits <= n) {
      // Two 32-bit halves: compilers vectorise this form (compare + variable shift + or-reduction).
      for (int h = 0; h < 2; ++h) {
        std::uint32_t half = 0;
        for (int j = 0; j < 32; ++j) half |= static_cast<std::uint32_t>(sign_bit(x(begin + 32 * h + j))) << j;
        bits |= static_cast<sign_word_t>(half) << (32 * h);
      }
    } else {
      for (std::size_t j = 0; begin + j < n; ++j) bits |= sign_bit(x(begin + j)) << j;
    }
    words(w) = bits;
  }
};

/// Device path of sign_pack (impl/terse_Lanes.hpp): a team thread per word, its 64 coordinates over the
/// word's vector lanes (lane u reads u, u+8, ..., u+56: coalesced), the bits or'ed across the lanes.
template <class XView, class WView>
struct SignPackLanes {
  XView x;
  WView words;
  std::size_t n;

  template <class Member>
  KOKKOS_INLINE_FUNCTION void operator()(const Member& team) const {
    for_team_words(team, packed_words(n), [&](std::size_t w) {
      const std::size_t begin = w * sign_word_bits;
      sign_word_t bits = 0;
      Kokkos::parallel_reduce(
          Kokkos::ThreadVectorRange(team, word_lanes),
          [&](int u, sign_word_t& acc) {
            for (int j = u; j < sign_word_bits && begin + j < n; j += word_lanes) acc |= sign_bit(x(begin + j)) << j;
          },
          Kokkos::BOr<sign_word_t>(bits));
      Kokkos::single(Kokkos::PerThread(team), [&]() { words(w) = bits; });
    });
  }
};

template <class ExecSpace, class XView, class WView>
void launch_sign_pack_lanes(const ExecSpace& space, const XView& x, const WView& words) {
  const std::size_t n = x.extent(0);
  Kokkos::parallel_for("terse::sign_pack", word_lanes_policy(space, packed_words(n)),
                       SignPackLanes<XView, WView>{x, words, n});
}

/// y(i) = (bit i ? s : -s) for a whole word at a time (host backends).
template <class WView, class YView>
struct SignUnpackWords {
  WView words;
  YView y;
  typename YView::non_const_value_type scale;
  std::size_t n;

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t w) const {
    using T = typename YView::non_const_value_type;
    const std::size_t begin = w * sign_word_bits;
    const sign_word_t bits = words(w);
    if (begin + sign_word_bits <= n) {
      for (int h = 0; h < 2; ++h) {
        const std::uint32_t half = static_cast<std::uint32_t>(bits >> (32 * h));
        for (int j = 0; j < 32; ++j) y(begin + 32 * h + j) = ((half >> j) & 1u) ? scale : T(-scale);
      }
    } else {
      for (std::size_t j = 0; begin + j < n; ++j) y(begin + j) = ((bits >> j) & 1u) ? scale : T(-scale);
    }
  }
};

/// Host backends, fp32, vectors larger than the caches: the words of one block per work item, each full word
/// written with streaming stores (terse::compat::streaming_signs64). A vector that is only written then costs
/// its bytes once instead of twice (no read-for-ownership of each line). Host-only functor: launched on host
/// execution spaces only.
inline constexpr std::size_t streaming_min_coords = std::size_t(1) << 22;  ///< 16 MiB of fp32
inline constexpr std::size_t streaming_block_words = 64;                   ///< 16 KiB of fp32 per work item

template <class WView, class YView>
struct SignUnpackStreaming {
  SignUnpackWords<WView, YView> plain;  // its views and scale; it writes the last, partial word

  void operator()(std::size_t b) const {
    const std::size_t w_end = compat::min(packed_words(plain.n), (b + 1) * streaming_block_words);
    for (std::size_t w = b * streaming_block_words; w < w_end; ++w) {
      const std::size_t begin = w * sign_word_bits;
      if (begin + sign_word_bits <= plain.n) {
        compat::streaming_signs64(plain.y.data() + begin, plain.words(w), plain.scale);
      } else {
        plain(w);
      }
    }
    compat::streaming_fence();
  }
};

template <class WView, class YView>
struct SignUnpackCoords {
  WView words;
  YView y;
  typename YView::non_const_value_type scale;

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t i) const {
    using T = typename YView::non_const_value_type;
    y(i) = ((words(i / sign_word_bits) >> (i % sign_word_bits)) & 1u) ? scale : T(-scale);
  }
};

/// The step of a sign apply: a value known on the host (sign_apply), or one computed on the device from a
/// message's scale (message_add in terse_Compress.hpp).
template <class T>
struct ConstantStep {
  T value;
  KOKKOS_INLINE_FUNCTION T operator()() const { return value; }
};

/// x(i) -= step * sign_i, one word at a time (host backends).
template <class WView, class XView, class Step = ConstantStep<typename XView::non_const_value_type>>
struct SignApplyWords {
  WView words;
  XView x;
  Step step_of;
  std::size_t n;

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t w) const {
    using T = typename XView::non_const_value_type;
    const T step = step_of();
    const std::size_t begin = w * sign_word_bits;
    const sign_word_t bits = words(w);
    if (begin + sign_word_bits <= n) {
      for (int h = 0; h < 2; ++h) {
        const std::uint32_t half = static_cast<std::uint32_t>(bits >> (32 * h));
        for (int j = 0; j < 32; ++j) x(begin + 32 * h + j) -= ((half >> j) & 1u) ? step : T(-step);
      }
    } else {
      for (std::size_t j = 0; begin + j < n; ++j) x(begin + j) -= ((bits >> j) & 1u) ? step : T(-step);
    }
  }
};

/// The same, one coordinate per thread (device backends).
template <class WView, class XView, class Step = ConstantStep<typename XView::non_const_value_type>>
struct SignApplyCoords {
  WView words;
  XView x;
  Step step_of;

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t i) const {
    using T = typename XView::non_const_value_type;
    const T step = step_of();
    x(i) -= ((words(i / sign_word_bits) >> (i % sign_word_bits)) & 1u) ? step : T(-step);
  }
};

/// x(i) -= step_of() * sign_i over the n = x.extent(0) coordinates, by words or by coordinates.
template <class ExecSpace, class WView, class XView, class Step>
void launch_sign_apply(const ExecSpace& space, const char* label, const WView& words, const XView& x,
                       const Step& step_of) {
  const std::size_t n = x.extent(0);
  if constexpr (host_loops_v<ExecSpace>) {
    Kokkos::parallel_for(label, Kokkos::RangePolicy<ExecSpace>(space, 0, packed_words(n)),
                         SignApplyWords<WView, XView, Step>{words, x, step_of, n});
  } else {
    Kokkos::parallel_for(label, Kokkos::RangePolicy<ExecSpace>(space, 0, n),
                         SignApplyCoords<WView, XView, Step>{words, x, step_of});
  }
}

}  // namespace Impl

/// Packs the signs of x (fp32 or fp64) into words(0 .. packed_words(n)-1); n = x.extent(0).
template <class ExecSpace, class XView, class WView>
void sign_pack(const ExecSpace& space, const XView& x, const WView& words) {
  Impl::check_view<ExecSpace, XView>();
  Impl::check_view<ExecSpace, WView>();
  static_assert(std::is_floating_point<typename XView::value_type>::value, "sign_pack packs fp32 or fp64");
  static_assert(std::is_same<typename WView::value_type, sign_word_t>::value, "packed words are sign_word_t");
  const std::size_t n = x.extent(0);
  Impl::require(words.extent(0) >= packed_words(n), "terse::sign_pack: words.extent(0) < packed_words(x.extent(0))");
  if constexpr (Impl::host_loops_v<ExecSpace>) {
    if (!Impl::device_paths_on_host()) {
      Kokkos::parallel_for("terse::sign_pack", Kokkos::RangePolicy<ExecSpace>(space, 0, packed_words(n)),
                           Impl::SignPack<XView, WView>{x, words, n});
      return;
    }
  }
  Impl::launch_sign_pack_lanes(space, x, words);
}

/// Unpacks n = y.extent(0) signs into y(i) = +scale or -scale.
template <class ExecSpace, class WView, class YView>
void sign_unpack(const ExecSpace& space, const WView& words, const YView& y,
                 typename YView::non_const_value_type scale = 1) {
  Impl::check_view<ExecSpace, WView>();
  Impl::check_view<ExecSpace, YView>();
  const std::size_t n = y.extent(0);
  Impl::require(words.extent(0) >= packed_words(n), "terse::sign_unpack: words.extent(0) < packed_words(y.extent(0))");
  if constexpr (Impl::host_loops_v<ExecSpace>) {
    using T = typename YView::non_const_value_type;
    if constexpr (compat::has_streaming_stores && std::is_same<T, float>::value) {
      if (n >= Impl::streaming_min_coords && y.span_is_contiguous() &&
          reinterpret_cast<std::uintptr_t>(y.data()) % 32 == 0) {
        const std::size_t blocks = (packed_words(n) + Impl::streaming_block_words - 1) / Impl::streaming_block_words;
        Kokkos::parallel_for("terse::sign_unpack", Kokkos::RangePolicy<ExecSpace>(space, 0, blocks),
                             Impl::SignUnpackStreaming<WView, YView>{{words, y, scale, n}});
        return;
      }
    }
    Kokkos::parallel_for("terse::sign_unpack", Kokkos::RangePolicy<ExecSpace>(space, 0, packed_words(n)),
                         Impl::SignUnpackWords<WView, YView>{words, y, scale, n});
  } else {
    Kokkos::parallel_for("terse::sign_unpack", Kokkos::RangePolicy<ExecSpace>(space, 0, n),
                         Impl::SignUnpackCoords<WView, YView>{words, y, scale});
  }
}

/// Fused unpack-and-apply: x(i) <- x(i) - step * sign_i with sign_i = +-1 from the packed words.
template <class ExecSpace, class WView, class XView>
void sign_apply(const ExecSpace& space, const WView& words, const XView& x,
                typename XView::non_const_value_type step) {
  Impl::check_view<ExecSpace, WView>();
  Impl::check_view<ExecSpace, XView>();
  const std::size_t n = x.extent(0);
  Impl::require(words.extent(0) >= packed_words(n), "terse::sign_apply: words.extent(0) < packed_words(x.extent(0))");
  Impl::launch_sign_apply(space, "terse::sign_apply", words, x,
                          Impl::ConstantStep<typename XView::non_const_value_type>{step});
}

}  // namespace terse
