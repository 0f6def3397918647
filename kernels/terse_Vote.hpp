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

template <class SignsView, class VoteView, class TieView>
struct MajorityVote {
  SignsView signs;  // (W, words)
  VoteView vote;    // (words)
  TieView tie;      // (words)
  int n_voters;
  int planes;

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t w) const {
    sign_word_t count[vote_max_planes];
    for (int l = 0; l < planes; ++l) count[l] = 0;
    for (int v = 0; v < n_voters; ++v) {
      sign_word_t carry = signs(v, w);
      for (int l = 0; l < planes && carry; ++l) {
        const sign_word_t t = count[l] & carry;
        count[l] ^= carry;
        carry = t;
      }
    }
    // Compare the bit-sliced counts with K = floor(W/2), most significant plane first.
    const unsigned half = static_cast<unsigned>(n_voters) / 2u;
    sign_word_t greater = 0, equal = ~sign_word_t(0);
    for (int l = planes - 1; l >= 0; --l) {
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
  Impl::check_access<ExecSpace, VoteView>();
  Impl::check_access<ExecSpace, TieView>();
  Impl::require(signs.extent(0) >= 1 && signs.extent(0) < (std::size_t(1) << 31),
                "terse::majority_vote: needs 1 .. 2^31 - 1 voters");
  const int n_voters = static_cast<int>(signs.extent(0));
  Impl::require(vote.extent(0) >= signs.extent(1) && tie.extent(0) >= signs.extent(1),
                "terse::majority_vote: vote and tie need signs.extent(1) words");
  Kokkos::parallel_for("terse::majority_vote", Kokkos::RangePolicy<ExecSpace>(space, 0, signs.extent(1)),
                       Impl::MajorityVote<SignsView, VoteView, TieView>{signs, vote, tie, n_voters,
                                                                        vote_planes(n_voters)});
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

}  // namespace Impl

/// x(i) <- x(i) - step * vote_i with vote_i in {+1, -1, 0 (tie)} from the packed vote and tie mask.
template <class ExecSpace, class WView, class XView>
void sign_apply_voted(const ExecSpace& space, const WView& vote, const WView& tie, const XView& x,
                      typename XView::non_const_value_type step) {
  Impl::check_access<ExecSpace, WView>();
  Impl::check_access<ExecSpace, XView>();
  Impl::require(vote.extent(0) >= packed_words(x.extent(0)) && tie.extent(0) >= packed_words(x.extent(0)),
                "terse::sign_apply_voted: vote and tie need packed_words(x.extent(0)) words");
  Kokkos::parallel_for("terse::sign_apply_voted", Kokkos::RangePolicy<ExecSpace>(space, 0, x.extent(0)),
                       Impl::SignApplyVoted<WView, XView>{vote, tie, x, step});
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
  Impl::check_access<ExecSpace, OutView>();
  Impl::check_access<ExecSpace, ScalesView>();
  Impl::require(scales.extent(0) == signs.extent(0), "terse::sign_mean: one scale per voter");
  Impl::require(signs.extent(1) >= packed_words(out.extent(0)), "terse::sign_mean: out is longer than the signs");
  using T = typename OutView::non_const_value_type;
  Kokkos::parallel_for("terse::sign_mean", Kokkos::RangePolicy<ExecSpace>(space, 0, out.extent(0)),
                       Impl::SignMean<SignsView, ScalesView, OutView>{signs, scales, out, static_cast<T>(inv_count),
                                                                      accumulate});
}

}  // namespace terse
