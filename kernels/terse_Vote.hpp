#pragma once
// terse_Vote.hpp: majority vote over W packed sign vectors, computed on the packed words.
//
// For each coordinate, count = number of workers whose bit is set (+1). The vote is +1 when
// count > W/2 and -1 when count < W/2; an exact tie (count == W/2, only possible for even W) gives 0,
// reported as a clear vote bit and a set bit in the tie mask (seed 001 Sec. 4.2).
//
// The counting is bit-sliced: the counts of 64 coordinates are held as ceil(log2(W+1)) bit planes and
// each worker's word is added with a ripple-carry adder, so W words cost O(W log W) word operations,
// never an unpack to integers.

#include <terse_Sign.hpp>

namespace terse {

/// Bit planes of the counts: enough for any int number of voters.
inline constexpr int vote_max_planes = 32;

namespace Impl {

/// Planes > 0: the number of bit planes fixed at compile time (the counts stay in registers and the adder
/// is unrolled; W < 2^Planes); Planes == 0: any W up to 2^31 - 1, the planes counted at run time.
template <class SignsView, class VoteView, class TieView, int Planes = 0>
struct MajorityVote {
  SignsView signs;  // (W, words)
  VoteView vote;    // (words)
  TieView tie;      // (words)
  int n_voters;
  int planes;

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t w) const {
    constexpr int max_planes = Planes > 0 ? Planes : vote_max_planes;
    const int np = Planes > 0 ? Planes : planes;
    sign_word_t count[max_planes];
    for (int l = 0; l < max_planes; ++l) count[l] = 0;
    for (int v = 0; v < n_voters; ++v) {
      sign_word_t carry = signs(v, w);
      if constexpr (Planes > 0) {
        for (int l = 0; l < Planes; ++l) {  // unrolled; no early exit, no branches
          const sign_word_t t = count[l] & carry;
          count[l] ^= carry;
          carry = t;
        }
      } else {
        for (int l = 0; l < np && carry; ++l) {
          const sign_word_t t = count[l] & carry;
          count[l] ^= carry;
          carry = t;
        }
      }
    }
    // Compare the bit-sliced counts with K = floor(W/2), most significant plane first.
    const unsigned half = static_cast<unsigned>(n_voters) / 2u;
    sign_word_t greater = 0, equal = ~sign_word_t(0);
    for (int l = np - 1; l >= 0; --l) {
      if ((half >> l) & 1u) {
        equal &= count[l];
      } else {
        greater |= equal & count[l];
        equal &= ~count[l];
      }
    }
    vote(w) = greater;                                    // count > floor(W/2)
    tie(w) = (n_voters % 2 == 0) ? equal : sign_word_t(0);  // count == W/2
  }
};

/// Device path for 32 or more voters, where the planes counted at run time would keep up to 32 words per
/// thread (spilled on a GPU): a team thread per word, lane u counts the set bits of the word's coordinates u,
/// u+8, ..., u+56 over the voters in eight registers; the vote bits and (slot u) lane u's tie bits are or'ed
/// across the lanes (impl/terse_Lanes.hpp). The same vote and tie as MajorityVote, bit for bit.
template <class SignsView, class VoteView, class TieView>
struct MajorityVoteLanes {
  SignsView signs;  // (W, words)
  VoteView vote;    // (words)
  TieView tie;      // (words)
  int n_voters;

  template <class Member>
  KOKKOS_INLINE_FUNCTION void operator()(const Member& team) const {
    const int half = n_voters / 2;
    const bool even = n_voters % 2 == 0;
    for_team_words(team, signs.extent(1), [&](std::size_t w) {
      WordPartial<sign_word_t> r;  // bits: the vote; acc[u]: the tie bits of lane u
      Kokkos::parallel_reduce(
          Kokkos::ThreadVectorRange(team, word_lanes),
          [&](int u, WordPartial<sign_word_t>& acc) {
            int count[sign_word_bits / word_lanes];
            for (int k = 0; k < sign_word_bits / word_lanes; ++k) count[k] = 0;
            for (int v = 0; v < n_voters; ++v) {
              const sign_word_t s = signs(v, w) >> u;
              for (int k = 0; k < sign_word_bits / word_lanes; ++k) count[k] += static_cast<int>((s >> (word_lanes * k)) & 1u);
            }
            sign_word_t ties = 0;
            for (int k = 0; k < sign_word_bits / word_lanes; ++k) {
              const sign_word_t bit = sign_word_t(1) << (u + word_lanes * k);
              if (count[k] > half) acc.bits |= bit;
              if (even && count[k] == half) ties |= bit;
            }
            acc.add_to_slot(u, ties);  // slot u starts at 0: adding is or-ing
          },
          WordPartialReducer<sign_word_t>(r));
      Kokkos::single(Kokkos::PerThread(team), [&]() {
        sign_word_t t = 0;
        for (int u = 0; u < word_lanes; ++u) t |= r.acc[u];
        vote(w) = r.bits;
        tie(w) = t;
      });
    });
  }
};

template <class ExecSpace, class SignsView, class VoteView, class TieView>
void launch_majority_vote_lanes(const ExecSpace& space, const SignsView& signs, const VoteView& vote, const TieView& tie,
                                int n_voters) {
  Kokkos::parallel_for("terse::majority_vote", word_lanes_policy(space, signs.extent(1)),
                       MajorityVoteLanes<SignsView, VoteView, TieView>{signs, vote, tie, n_voters});
}

}  // namespace Impl

/// Number of bit planes that hold counts 0..n_voters.
KOKKOS_INLINE_FUNCTION constexpr int vote_planes(int n_voters) {
  int planes = 1;
  while (planes < vote_max_planes && (static_cast<unsigned long long>(1) << planes) <= static_cast<unsigned long long>(n_voters)) ++planes;
  return planes;
}

/// Majority vote of signs(v, :) over v = 0..W-1 into vote(:) (packed, set bit = +1) and tie(:)
/// (set bit = exact tie, vote 0). With zero padding bits in the inputs (the packing convention) the padding
/// bits of vote and tie are 0 too.
template <class ExecSpace, class SignsView, class VoteView, class TieView>
void majority_vote(const ExecSpace& space, const SignsView& signs, const VoteView& vote, const TieView& tie) {
  static_assert(SignsView::rank == 2, "majority_vote takes a (voters, words) view");
  static_assert(Kokkos::SpaceAccessibility<ExecSpace, typename SignsView::memory_space>::accessible, "");
  Impl::check_view<ExecSpace, VoteView>();
  Impl::check_view<ExecSpace, TieView>();
  Impl::require(signs.extent(0) >= 1 && signs.extent(0) < (std::size_t(1) << 31),
                "terse::majority_vote: needs 1 .. 2^31 - 1 voters");
  const int n_voters = static_cast<int>(signs.extent(0));
  Impl::require(vote.extent(0) >= signs.extent(1) && tie.extent(0) >= signs.extent(1),
                "terse::majority_vote: vote and tie need signs.extent(1) words");
  const int planes = vote_planes(n_voters);
  const Kokkos::RangePolicy<ExecSpace> policy(space, 0, signs.extent(1));
  // Up to 31 voters (the usual worker counts) with the planes fixed at compile time.
  switch (planes) {
    case 1: Kokkos::parallel_for("terse::majority_vote", policy, Impl::MajorityVote<SignsView, VoteView, TieView, 1>{signs, vote, tie, n_voters, 1}); break;
    case 2: Kokkos::parallel_for("terse::majority_vote", policy, Impl::MajorityVote<SignsView, VoteView, TieView, 2>{signs, vote, tie, n_voters, 2}); break;
    case 3: Kokkos::parallel_for("terse::majority_vote", policy, Impl::MajorityVote<SignsView, VoteView, TieView, 3>{signs, vote, tie, n_voters, 3}); break;
    case 4: Kokkos::parallel_for("terse::majority_vote", policy, Impl::MajorityVote<SignsView, VoteView, TieView, 4>{signs, vote, tie, n_voters, 4}); break;
    case 5: Kokkos::parallel_for("terse::majority_vote", policy, Impl::MajorityVote<SignsView, VoteView, TieView, 5>{signs, vote, tie, n_voters, 5}); break;
    default:
      if constexpr (Impl::host_loops_v<ExecSpace>) {
        if (!Impl::device_paths_on_host()) {
          Kokkos::parallel_for("terse::majority_vote", policy, Impl::MajorityVote<SignsView, VoteView, TieView>{signs, vote, tie, n_voters, planes});
          return;
        }
      }
      Impl::launch_majority_vote_lanes(space, signs, vote, tie, n_voters);
  }
}

namespace Impl {

template <class WView, class XView>
struct SignApplyVoted {
  WView vote, tie;
  XView x;
  typename XView::non_const_value_type step;

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t i) const {
    using T = typename XView::non_const_value_type;
    const std::size_t w = i / sign_word_bits;
    const int b = static_cast<int>(i % sign_word_bits);
    const T s = ((vote(w) >> b) & 1u) ? step : T(-step);
    x(i) -= ((tie(w) >> b) & 1u) ? T(0) : s;
  }
};

/// The same, one word at a time (host backends): 32-bit halves and a branch-free coefficient in {-1, 0, +1},
/// so the inner loop vectorises as SignApplyWords does.
template <class WView, class XView>
struct SignApplyVotedWords {
  WView vote, tie;
  XView x;
  typename XView::non_const_value_type step;
  std::size_t n;

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t w) const {
    using T = typename XView::non_const_value_type;
    const std::size_t begin = w * sign_word_bits;
    const sign_word_t v = vote(w), t = tie(w);
    if (begin + sign_word_bits <= n) {
      for (int h = 0; h < 2; ++h) {
        const auto vh = static_cast<std::uint32_t>(v >> (32 * h)), th = static_cast<std::uint32_t>(t >> (32 * h));
        for (int j = 0; j < 32; ++j) {
          const T sign = static_cast<T>(2 * static_cast<int>((vh >> j) & 1u) - 1);
          const T keep = static_cast<T>(1 - static_cast<int>((th >> j) & 1u));
          x(begin + 32 * h + j) -= step * sign * keep;
        }
      }
    } else {
      for (std::size_t j = 0; begin + j < n; ++j)
        x(begin + j) -= ((t >> j) & 1u) ? T(0) : (((v >> j) & 1u) ? step : T(-step));
    }
  }
};

}  // namespace Impl

/// x(i) <- x(i) - step * vote_i with vote_i in {+1, -1, 0 (tie)} from the packed vote and tie mask.
template <class ExecSpace, class WView, class XView>
void sign_apply_voted(const ExecSpace& space, const WView& vote, const WView& tie, const XView& x,
                      typename XView::non_const_value_type step) {
  Impl::check_view<ExecSpace, WView>();
  Impl::check_view<ExecSpace, XView>();
  Impl::require(vote.extent(0) >= packed_words(x.extent(0)) && tie.extent(0) >= packed_words(x.extent(0)),
                "terse::sign_apply_voted: vote and tie need packed_words(x.extent(0)) words");
  const std::size_t n = x.extent(0);
  if constexpr (Impl::host_loops_v<ExecSpace>) {
    Kokkos::parallel_for("terse::sign_apply_voted", Kokkos::RangePolicy<ExecSpace>(space, 0, packed_words(n)),
                         Impl::SignApplyVotedWords<WView, XView>{vote, tie, x, step, n});
  } else {
    Kokkos::parallel_for("terse::sign_apply_voted", Kokkos::RangePolicy<ExecSpace>(space, 0, n),
                         Impl::SignApplyVoted<WView, XView>{vote, tie, x, step});
  }
}

namespace Impl {

template <class SignsView, class ScalesView, class OutView>
struct SignMean {
  SignsView signs;  // (W, words)
  ScalesView scales;  // (W)
  OutView out;
  typename OutView::non_const_value_type inv_count;
  bool accumulate;

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t i) const {
    using T = typename OutView::non_const_value_type;
    const std::size_t w = i / sign_word_bits;
    const int b = static_cast<int>(i % sign_word_bits);
    T sum = 0;
    for (std::size_t v = 0; v < signs.extent(0); ++v) {
      const T s = static_cast<T>(scales(v));
      sum += ((signs(v, w) >> b) & 1u) ? s : T(-s);
    }
    out(i) = accumulate ? out(i) + inv_count * sum : inv_count * sum;
  }
};

/// Host backends: one word (64 coordinates) per work item; the voters' words and scales are read once per
/// word and the 64 sums, kept in registers, vectorise. The same sums in the same order (v = 0 .. W-1, from 0)
/// as SignMean, whose fields it uses and which it runs on the last, partial word: the two give identical results.
template <class SignsView, class ScalesView, class OutView>
struct SignMeanWords {
  SignMean<SignsView, ScalesView, OutView> coords;
  std::size_t n;

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t w) const {
    using T = typename OutView::non_const_value_type;
    const std::size_t begin = w * sign_word_bits;
    if (begin + sign_word_bits > n) {
      for (std::size_t i = begin; i < n; ++i) coords(i);
      return;
    }
    T sum[sign_word_bits];
    for (int j = 0; j < sign_word_bits; ++j) sum[j] = T(0);
    for (std::size_t v = 0; v < coords.signs.extent(0); ++v) {
      const T s = static_cast<T>(coords.scales(v));
      const sign_word_t bits = coords.signs(v, w);
      for (int h = 0; h < 2; ++h) {  // 32-bit halves vectorise (compare of the shifted bit, blend)
        const std::uint32_t half = static_cast<std::uint32_t>(bits >> (32 * h));
        for (int j = 0; j < 32; ++j) sum[32 * h + j] += ((half >> j) & 1u) ? s : T(-s);
      }
    }
    const auto& out = coords.out;
    if (coords.accumulate) {
      for (int j = 0; j < sign_word_bits; ++j) out(begin + j) = out(begin + j) + coords.inv_count * sum[j];
    } else {
      for (int j = 0; j < sign_word_bits; ++j) out(begin + j) = coords.inv_count * sum[j];
    }
  }
};

}  // namespace Impl

/// The server's aggregation of W scaled-sign messages (seed 004 Sec. 4, naive compression and error feedback;
/// with accumulate, the Markov update g^ <- g^ + (1/W) sum_v c_v of seed 004 Alg. 1, line 8):
///   out(i) [+]= inv_count * sum_{v = 0}^{W-1} scales(v) * (+-1)_{v,i}
/// summed in T in the order v = 0, 1, ..., W-1, so the result depends on the voters' order only, never on how
/// they are spread over threads or ranks. signs (W, words) packed as in terse_Sign.hpp; out has
/// n <= 64 * words coordinates (the block the signs describe).
template <class ExecSpace, class SignsView, class ScalesView, class OutView>
void sign_mean(const ExecSpace& space, const SignsView& signs, const ScalesView& scales, const OutView& out,
               double inv_count, bool accumulate = false) {
  static_assert(SignsView::rank == 2, "sign_mean takes a (voters, words) view");
  static_assert(Kokkos::SpaceAccessibility<ExecSpace, typename SignsView::memory_space>::accessible, "");
  Impl::check_view<ExecSpace, OutView>();
  Impl::check_view<ExecSpace, ScalesView>();
  Impl::require(scales.extent(0) == signs.extent(0), "terse::sign_mean: one scale per voter");
  Impl::require(signs.extent(1) >= packed_words(out.extent(0)), "terse::sign_mean: out is longer than the signs");
  using T = typename OutView::non_const_value_type;
  const std::size_t n = out.extent(0);
  const Impl::SignMean<SignsView, ScalesView, OutView> coords{signs, scales, out, static_cast<T>(inv_count), accumulate};
  if constexpr (Impl::host_loops_v<ExecSpace>) {
    Kokkos::parallel_for("terse::sign_mean", Kokkos::RangePolicy<ExecSpace>(space, 0, packed_words(n)),
                         Impl::SignMeanWords<SignsView, ScalesView, OutView>{coords, n});
  } else {
    Kokkos::parallel_for("terse::sign_mean", Kokkos::RangePolicy<ExecSpace>(space, 0, n), coords);
  }
}

}  // namespace terse
