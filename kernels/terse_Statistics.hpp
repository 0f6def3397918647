#pragma once
// terse_Statistics.hpp: statistics of sign compression. Sign agreement on packed words, success-probability
// estimates, the regularized incomplete beta function, the rho-norm and rho_M-norm of seed 001, and the
// adaptive learning rate eta* of seed 000.
//
//   sign_agreement(space, a, b, n)                 #{i < n : bit_i(a) == bit_i(b)}; popcount of XNOR with the
//                                                   padding bits of the last word masked off.
//   sign_agreement_accumulate(space, s, ref, cnt)  cnt(i) += [bit_i(s) == bit_i(ref)] for a rank-1 s (one
//                                                   packed vector) or a rank-2 s (samples, words): the counting
//                                                   half of the success-probability estimator.
//   success_probabilities(space, cnt, samples, rho) rho(i) = cnt(i) / samples, the empirical
//                                                   rho_i = Prob(sign g^_i = sign g_i) (seed 001 Sec. 2, (4)).
//   regularized_incomplete_beta(p, a, b)           I(p; a, b) of seed 001 App. B.7 eq. (22); a
//                                                   KOKKOS_INLINE_FUNCTION usable in kernels.
//   incomplete_beta_equal(p, l)                    I(p; l, l) for integer l (finite sum of eq. (26) for l <= 64).
//   expected_vote_sign(rho, M)                     E[sign(g^(M)_i g_i)] = 2 I(rho; l, l) - 1, l = floor((M+1)/2)
//                                                   (seed 001 Lemma 8, eq. (23)).
//   rho_norm(space, g, rho)                        ||g||_rho   = sum_i (2 rho_i - 1) |g_i|           (seed 001 Def. 1)
//   rho_M_norm(space, g, rho, M)                   ||g||_rho_M = sum_i (2 I(rho_i; l, l) - 1) |g_i|  (seed 001 Def. 2)
//   eta_star(space, grads, L)                      eta*_k of seed 000 Prop. 3 eq. (1) from a batch of per-sample
//   eta_star(space, grads, g, L)                   gradients grads(j, i), estimated as seed 000 Sec. II-B says.
//
// Every function taking an execution space launches Kokkos kernels on it; those returning a number block until
// it is known (a parallel_reduce into a host scalar). Host backends run word- or 64-coordinate-block loops
// (vectorisable, pairwise-summed blocks); device backends one thread per word or coordinate. No allocation.
//
// Sign convention: the project's (terse_Sign.hpp): a value >= 0 (so -0.0 and NaN too) has sign +1, a value
// < 0 has sign -1; "sign agreement" and "sign mismatch" compare these bits.
//
// Choices made where the papers leave one open (with the paper's line):
//
//  * eta* (seed 000, Prop. 3, eq. (1)):
//        eta*_k = sum_i |[g_k]_i| (1 - 2 P[sign([g~_k]_i) != sign([g_k]_i)]) / L.
//    Sec. II-B, last paragraph: "To estimate the sign error probability, one can use the empirical average of
//    the stochastic gradients in a minibatch to approximate the true gradient g_k and count the number of sign
//    mismatches between g~_k and estimated true gradient." We therefore take, for a batch of m per-sample
//    stochastic gradients grads(j, :), j = 0..m-1 (each one a draw of g~_k, as in Alg. 2 line 3):
//        g^_i = (1/m) sum_j grads(j, i)                                  (estimate of [g_k]_i)
//        q^_i = #{j : sign grads(j, i) != sign g^_i} / m                 (estimate of P[...] for coordinate i)
//        eta* = sum_i |g^_i| (1 - 2 q^_i) / L.
//    The sign-error rate is the one printed in eq. (1): that of a single stochastic gradient g~_k (one sample),
//    not that of the majority vote of Alg. 1/2 (which appears in the proof sketch of Theorem 1); a caller who
//    wants the vote's rate can use rho_M_norm (seed 001 Lemma 8) with rho_i = 1 - q^_i.
//    Note 1 - 2 q^_i = 2 rho^_i - 1 with rho^_i = 1 - q^_i, so the numerator is ||g^||_rho^ (seed 001 Def. 1).
//    Sums and the mean are accumulated in double whatever the view's value type. A coordinate with g^_i = 0
//    contributes 0. L is the caller's (seed 000 Sec. III uses the dimension d as an approximation of L).
//    The overload with a given gradient g (e.g. the exact gradient of a synthetic problem) uses g in place of
//    the batch mean for both |g_i| and the mismatch count; then q^_i is an unbiased estimate of P[...].
//
//  * rho_M-norm (seed 001 Def. 2) takes l = floor((M+1)/2), so M = 2l-1 and M = 2l give the same norm
//    (seed 001 Sec. 4.2 "Number of nodes" and the proof of Lemma 8). Def. 2 assumes the SPB condition
//    rho_i > 1/2; the functions here evaluate the formula for any rho_i in [0, 1] (terms may be negative).
//
//  * I(p; l, l) with integer l <= 64 (rho_M_norm, expected_vote_sign) is evaluated by the finite binomial sum
//    of seed 001 eq. (26), which is exact in exact arithmetic and needs no transcendental functions; the
//    general I(p; a, b) (and l > 64) by the continued fraction below.
//
//  * I(p; a, b) is evaluated by the continued fraction of the incomplete beta function (Numerical Recipes
//    6.4 / Abramowitz-Stegun 26.5.8) with the modified Lentz algorithm, on the side p < (a+1)/(a+b+2) where it
//    converges fast, and by the symmetry I(p; a, b) = 1 - I(1-p; b, a) on the other side. The prefactor
//    p^a (1-p)^b / (a B(a, b)) is formed in logs with lgamma. Measured against exact binomial sums
//    (I(p; k, n-k+1) = P(Bin(n, p) >= k)): relative error <= 3e-13 for a = b = l <= 100 and <= 9e-13 for
//    integer a + b <= 201, absolute error of 2 I(p; l, l) - 1 <= 2.2e-13; the error is set by the cancellation
//    in log B(a, b) = lgamma(a) + lgamma(b) - lgamma(a+b) and grows with a, b.

#include <terse_Sign.hpp>

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace terse {

// ------------------------------------------------------------------------------------------------------------
// Regularized incomplete beta function (seed 001, App. B.7, eq. (22))
// ------------------------------------------------------------------------------------------------------------

/// log B(a, b) = lgamma(a) + lgamma(b) - lgamma(a + b); a, b > 0.
KOKKOS_INLINE_FUNCTION double log_beta(double a, double b) {
  return compat::lgamma(a) + compat::lgamma(b) - compat::lgamma(a + b);
}

namespace Impl {

/// The continued fraction of B(x; a, b) / (x^a (1-x)^b / a) (NR 6.4.5), by the modified Lentz algorithm.
/// Converges fast for x < (a+1)/(a+b+2).
KOKKOS_INLINE_FUNCTION double incomplete_beta_cf(double x, double a, double b) {
  constexpr int max_iterations = 1000;
  constexpr double eps = 1e-15;  // above half an ulp of 1, so the stopping test can be met
  constexpr double tiny = 1e-300;
  const double qab = a + b, qap = a + 1.0, qam = a - 1.0;
  double c = 1.0;
  double d = 1.0 - qab * x / qap;
  if (compat::fabs(d) < tiny) d = tiny;
  d = 1.0 / d;
  double h = d;
  for (int m = 1; m <= max_iterations; ++m) {
    const double m2 = 2.0 * m;
    // even step: d_{2m} = m (b - m) x / ((a + 2m - 1)(a + 2m))
    double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
    d = 1.0 + aa * d;
    if (compat::fabs(d) < tiny) d = tiny;
    c = 1.0 + aa / c;
    if (compat::fabs(c) < tiny) c = tiny;
    d = 1.0 / d;
    h *= d * c;
    // odd step: d_{2m+1} = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1))
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
    d = 1.0 + aa * d;
    if (compat::fabs(d) < tiny) d = tiny;
    c = 1.0 + aa / c;
    if (compat::fabs(c) < tiny) c = tiny;
    d = 1.0 / d;
    const double del = d * c;
    h *= del;
    if (compat::fabs(del - 1.0) <= eps) break;
  }
  return h;
}

}  // namespace Impl

/// I(p; a, b) = B(p; a, b) / B(a, b) (seed 001 eq. (22)), given lbeta = log B(a, b) (precompute it once when
/// many p share (a, b)). a, b > 0; p is clamped to [0, 1] (I = 0 for p <= 0, 1 for p >= 1; NaN gives NaN).
KOKKOS_INLINE_FUNCTION double regularized_incomplete_beta(double p, double a, double b, double lbeta) {
  if (p <= 0.0) return 0.0;
  if (p >= 1.0) return 1.0;
  if (!(p == p)) return p;  // NaN
  const double log_front = a * compat::log(p) + b * compat::log1p(-p) - lbeta;
  if (p * (a + b + 2.0) < a + 1.0) {
    return compat::exp(log_front) * Impl::incomplete_beta_cf(p, a, b) / a;
  }
  return 1.0 - compat::exp(log_front) * Impl::incomplete_beta_cf(1.0 - p, b, a) / b;
}

/// I(p; a, b), the regularized incomplete beta function; a, b > 0.
KOKKOS_INLINE_FUNCTION double regularized_incomplete_beta(double p, double a, double b) {
  return regularized_incomplete_beta(p, a, b, log_beta(a, b));
}

/// l = floor((M + 1) / 2) of seed 001 Def. 2 and Lemma 8 (so M = 2l - 1 and M = 2l share l).
KOKKOS_INLINE_FUNCTION constexpr int vote_half(int M) { return (M + 1) / 2; }

/// Largest l for which incomplete_beta_equal uses the finite binomial sum instead of the continued fraction.
inline constexpr int incomplete_beta_sum_max_l = 64;

/// I(p; l, l) for an integer l >= 1, the case seed 001 Def. 2 and Lemma 8 need. For l <= 64 by the finite
/// sum of eq. (26), I(p; l, l) = P(Binomial(2l-1, p) >= l) = sum_{k=l}^{2l-1} C(2l-1, k) p^k (1-p)^(2l-1-k),
/// evaluated for x = min(p, 1-p) <= 1/2 (terms positive and decreasing; I(p; l, l) = 1 - I(1-p; l, l) for
/// p > 1/2, and 1 - p is exact there) in O(l) multiplications, no transcendental functions; measured relative
/// error <= 1e-14 for l <= 64.
/// For larger l by the continued fraction with lbeta = log B(l, l).
KOKKOS_INLINE_FUNCTION double incomplete_beta_equal(double p, int l, double lbeta) {
  if (l > incomplete_beta_sum_max_l) return regularized_incomplete_beta(p, l, l, lbeta);
  if (p <= 0.0) return 0.0;
  if (p >= 1.0) return 1.0;
  if (!(p == p)) return p;  // NaN
  const bool upper = p > 0.5;
  const double x = upper ? 1.0 - p : p;
  const double y = 1.0 - x;
  const int n = 2 * l - 1;
  // term_l = C(2l-1, l) x^l y^(l-1) = prod_{j=1..l} ((l-1+j)/j) x * y^(l-1), factors interleaved so that no
  // intermediate overflows; then term_{k+1} = term_k (n-k)/(k+1) x/y.
  double term = 1.0;
  for (int j = 1; j <= l; ++j) term *= static_cast<double>(l - 1 + j) / j * x;
  for (int j = 1; j < l; ++j) term *= y;
  double sum = term;
  const double ratio = x / y;
  for (int k = l; k < n; ++k) {
    term *= static_cast<double>(n - k) / (k + 1) * ratio;
    sum += term;
  }
  return upper ? 1.0 - sum : sum;
}

/// I(p; l, l) for an integer l >= 1 (see above).
KOKKOS_INLINE_FUNCTION double incomplete_beta_equal(double p, int l) {
  return incomplete_beta_equal(p, l, l > incomplete_beta_sum_max_l ? log_beta(l, l) : 0.0);
}

/// E[sign(g^(M)_i * g_i)] = 2 I(rho; l, l) - 1 with l = floor((M+1)/2): the expected majority-vote sign of M
/// independent signs that are each correct with probability rho (seed 001 Lemma 8, eq. (23)); a tie (even M)
/// counts 0. For odd M, (1 + this) / 2 = I(rho; l, l) is the vote's success probability rho^(M) (eq. (26)).
KOKKOS_INLINE_FUNCTION double expected_vote_sign(double rho, int M) {
  return 2.0 * incomplete_beta_equal(rho, vote_half(M)) - 1.0;
}

// ------------------------------------------------------------------------------------------------------------
// Sign agreement on packed words
// ------------------------------------------------------------------------------------------------------------

namespace Impl {

/// Mask of the bits of the last word that hold coordinates < n (all ones when n is a multiple of 64).
KOKKOS_INLINE_FUNCTION constexpr sign_word_t tail_mask(std::size_t n) {
  return (n % sign_word_bits == 0) ? ~sign_word_t(0) : ((sign_word_t(1) << (n % sign_word_bits)) - 1);
}

/// One word per iteration (device backends).
template <class AView, class BView>
struct SignAgreementCount {
  using value_type = std::uint64_t;
  AView a;
  BView b;
  std::size_t last;  // index of the last word
  sign_word_t tail;  // tail_mask(n)

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t w, value_type& acc) const {
    const sign_word_t mask = (w == last) ? tail : ~sign_word_t(0);
    acc += static_cast<value_type>(compat::popcount(~(a(w) ^ b(w)) & mask));
  }
};

/// Host backends: blocks of agreement_block words per iteration (independent popcounts, vectorisable).
inline constexpr int agreement_block = 16;

template <class AView, class BView>
struct SignAgreementCountBlocks {
  using value_type = std::uint64_t;
  AView a;
  BView b;
  std::size_t nw;    // number of words
  sign_word_t tail;  // tail_mask(n)

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t blk, value_type& acc) const {
    const std::size_t begin = blk * agreement_block;
    value_type sum = 0;
    if (begin + agreement_block < nw) {  // the last word (masked) is not in this block
      for (int k = 0; k < agreement_block; ++k)
        sum += static_cast<value_type>(compat::popcount(~(a(begin + k) ^ b(begin + k))));
    } else {
      for (std::size_t w = begin; w < nw; ++w) {
        const sign_word_t mask = (w + 1 == nw) ? tail : ~sign_word_t(0);
        sum += static_cast<value_type>(compat::popcount(~(a(w) ^ b(w)) & mask));
      }
    }
    acc += sum;
  }
};

/// counts(i) += agree_i for the 64 coordinates of one word at a time (host backends).
template <class SView, class RView, class CView>
struct SignAgreementAccumulateWords {
  SView s;
  RView ref;
  CView counts;
  std::size_t n;

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t w) const {
    using C = typename CView::non_const_value_type;
    const std::size_t begin = w * sign_word_bits;
    const sign_word_t agree = ~(s(w) ^ ref(w));
    const std::size_t count = compat::min<std::size_t>(sign_word_bits, n - begin);
    for (std::size_t j = 0; j < count; ++j) counts(begin + j) += static_cast<C>((agree >> j) & 1u);
  }
};

template <class SView, class RView, class CView>
struct SignAgreementAccumulateCoords {
  SView s;
  RView ref;
  CView counts;

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t i) const {
    using C = typename CView::non_const_value_type;
    const std::size_t w = i / sign_word_bits;
    counts(i) += static_cast<C>((~(s(w) ^ ref(w)) >> (i % sign_word_bits)) & 1u);
  }
};

/// Rank-2 signs (samples, words), host backends: one word of 64 coordinates, all samples. The agreement
/// bits are counted SWAR-style: byte q of acc[b] counts bit 8q + b, so one sample costs 8 shift/and/add
/// steps instead of 64; the byte counters are flushed into 32-bit counters every 255 samples.
template <class SView, class RView, class CView>
struct SignAgreementAccumulateBatchWords {
  SView s;
  RView ref;
  CView counts;
  std::size_t n;

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t w) const {
    using C = typename CView::non_const_value_type;
    constexpr sign_word_t lanes = 0x0101010101010101ull;
    const std::size_t begin = w * sign_word_bits;
    const std::size_t count = compat::min<std::size_t>(sign_word_bits, n - begin);
    const sign_word_t r = ref(w);
    const std::size_t samples = s.extent(0);
    std::uint32_t local[sign_word_bits];
    for (int j = 0; j < sign_word_bits; ++j) local[j] = 0;
    sign_word_t acc[8];
    for (std::size_t k0 = 0; k0 < samples; k0 += 255) {
      for (int b = 0; b < 8; ++b) acc[b] = 0;
      const std::size_t k1 = compat::min<std::size_t>(samples, k0 + 255);
      for (std::size_t k = k0; k < k1; ++k) {
        const sign_word_t agree = ~(s(k, w) ^ r);
        for (int b = 0; b < 8; ++b) acc[b] += (agree >> b) & lanes;
      }
      for (int b = 0; b < 8; ++b)
        for (int q = 0; q < 8; ++q) local[8 * q + b] += static_cast<std::uint32_t>((acc[b] >> (8 * q)) & 0xffu);
    }
    for (std::size_t j = 0; j < count; ++j) counts(begin + j) += static_cast<C>(local[j]);
  }
};

template <class SView, class RView, class CView>
struct SignAgreementAccumulateBatchCoords {
  SView s;
  RView ref;
  CView counts;

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t i) const {
    using C = typename CView::non_const_value_type;
    const std::size_t w = i / sign_word_bits;
    const int b = static_cast<int>(i % sign_word_bits);
    const sign_word_t r = ref(w);
    const std::size_t samples = s.extent(0);
    std::uint32_t c = 0;
    for (std::size_t k = 0; k < samples; ++k) c += static_cast<std::uint32_t>((~(s(k, w) ^ r) >> b) & 1u);
    counts(i) += static_cast<C>(c);
  }
};

template <class CView, class RhoView>
struct SuccessProbabilities {
  CView counts;
  RhoView rho;
  double inv_samples;

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t i) const {
    using R = typename RhoView::non_const_value_type;
    rho(i) = static_cast<R>(static_cast<double>(counts(i)) * inv_samples);
  }
};

}  // namespace Impl

/// Number of coordinates i < n where the packed sign vectors a and b agree: popcount(~(a ^ b)) over
/// packed_words(n) words, with the padding bits of the last word masked off (their contents do not matter).
/// a, b: rank-1 views of sign_word_t with at least packed_words(n) words. Blocks until the count is known.
template <class ExecSpace, class AView, class BView>
std::uint64_t sign_agreement(const ExecSpace& space, const AView& a, const BView& b, std::size_t n) {
  Impl::check_view<ExecSpace, AView, 1>();
  Impl::check_view<ExecSpace, BView, 1>();
  static_assert(std::is_same<typename AView::non_const_value_type, sign_word_t>::value &&
                    std::is_same<typename BView::non_const_value_type, sign_word_t>::value,
                "packed words are sign_word_t");
  const std::size_t nw = packed_words(n);
  Impl::require(a.extent(0) >= nw && b.extent(0) >= nw, "terse::sign_agreement: views of the wrong extent");
  std::uint64_t count = 0;
  if (nw == 0) return 0;
  if constexpr (Impl::host_loops_v<ExecSpace>) {
    const std::size_t blocks = (nw + Impl::agreement_block - 1) / Impl::agreement_block;
    Kokkos::parallel_reduce("terse::sign_agreement", Kokkos::RangePolicy<ExecSpace>(space, 0, blocks),
                            Impl::SignAgreementCountBlocks<AView, BView>{a, b, nw, Impl::tail_mask(n)}, count);
  } else {
    Kokkos::parallel_reduce("terse::sign_agreement", Kokkos::RangePolicy<ExecSpace>(space, 0, nw),
                            Impl::SignAgreementCount<AView, BView>{a, b, nw - 1, Impl::tail_mask(n)}, count);
  }
  return count;
}

/// counts(i) += [sign_i(signs) == sign_i(ref)] for i < n = counts.extent(0): the per-coordinate agreement
/// count of one packed sign vector (rank-1 `signs`) or of every row of a batch (rank-2 `signs`, shape
/// (samples, words), counts(i) += number of rows that agree). Feeding the packed signs of stochastic gradients
/// against the packed signs of the true gradient and dividing by the number of samples
/// (success_probabilities) estimates the success probabilities rho_i of seed 001 (Sec. 2, SPB assumption).
/// counts: a rank-1 view of an integer type; the caller keeps it wide enough for the number of samples.
template <class ExecSpace, class SView, class RView, class CView>
void sign_agreement_accumulate(const ExecSpace& space, const SView& signs, const RView& ref,
                               const CView& counts) {
  Impl::check_view<ExecSpace, RView, 1>();
  Impl::check_view<ExecSpace, CView, 1>();
  static_assert(Kokkos::is_view<SView>::value && (SView::rank == 1 || SView::rank == 2),
                "signs is a rank-1 (words) or rank-2 (samples, words) view");
  static_assert(Kokkos::SpaceAccessibility<ExecSpace, typename SView::memory_space>::accessible,
                "the view's memory space is not accessible from the execution space");
  static_assert(std::is_same<typename SView::non_const_value_type, sign_word_t>::value &&
                    std::is_same<typename RView::non_const_value_type, sign_word_t>::value,
                "packed words are sign_word_t");
  static_assert(std::is_integral<typename CView::value_type>::value, "counts are integers");
  const std::size_t n = counts.extent(0);
  const std::size_t nw = packed_words(n);
  Impl::require(ref.extent(0) >= nw, "terse::sign_agreement_accumulate: views of the wrong extent");
  if constexpr (SView::rank == 1) {
    Impl::require(signs.extent(0) >= nw, "terse::sign_agreement_accumulate: views of the wrong extent");
    if constexpr (Impl::host_loops_v<ExecSpace>) {
      Kokkos::parallel_for("terse::sign_agreement_accumulate", Kokkos::RangePolicy<ExecSpace>(space, 0, nw),
                           Impl::SignAgreementAccumulateWords<SView, RView, CView>{signs, ref, counts, n});
    } else {
      Kokkos::parallel_for("terse::sign_agreement_accumulate", Kokkos::RangePolicy<ExecSpace>(space, 0, n),
                           Impl::SignAgreementAccumulateCoords<SView, RView, CView>{signs, ref, counts});
    }
  } else {
    Impl::require(signs.extent(1) >= nw, "terse::sign_agreement_accumulate: views of the wrong extent");
    if constexpr (Impl::host_loops_v<ExecSpace>) {
      Kokkos::parallel_for("terse::sign_agreement_accumulate", Kokkos::RangePolicy<ExecSpace>(space, 0, nw),
                           Impl::SignAgreementAccumulateBatchWords<SView, RView, CView>{signs, ref, counts, n});
    } else {
      Kokkos::parallel_for("terse::sign_agreement_accumulate", Kokkos::RangePolicy<ExecSpace>(space, 0, n),
                           Impl::SignAgreementAccumulateBatchCoords<SView, RView, CView>{signs, ref, counts});
    }
  }
}

/// rho(i) = counts(i) / samples for i < rho.extent(0): the empirical success probabilities
/// rho_i = Prob(sign g^_i = sign g_i) (seed 001 Sec. 2) from agreement counts over `samples` stochastic signs.
template <class ExecSpace, class CView, class RhoView>
void success_probabilities(const ExecSpace& space, const CView& counts, double samples, const RhoView& rho) {
  Impl::check_view<ExecSpace, CView, 1>();
  Impl::check_view<ExecSpace, RhoView, 1>();
  static_assert(std::is_floating_point<typename RhoView::value_type>::value, "rho is fp32 or fp64");
  Impl::require(counts.extent(0) >= rho.extent(0) && samples > 0,
                "terse::success_probabilities: views of the wrong extent, or no samples");
  Kokkos::parallel_for("terse::success_probabilities", Kokkos::RangePolicy<ExecSpace>(space, 0, rho.extent(0)),
                       Impl::SuccessProbabilities<CView, RhoView>{counts, rho, 1.0 / samples});
}

// ------------------------------------------------------------------------------------------------------------
// rho-norm and rho_M-norm (seed 001, Def. 1 and Def. 2)
// ------------------------------------------------------------------------------------------------------------

namespace Impl {

/// Host backends reduce blocks of this many coordinates per iteration: the block's terms are independent
/// (vectorisable) and summed by a pairwise tree, instead of one long chain of dependent additions.
inline constexpr int stats_block = 64;

/// Pairwise sum of t[0 .. stats_block-1] (destroys t).
KOKKOS_INLINE_FUNCTION double block_tree_sum(double* t) {
  for (int w = stats_block / 2; w > 0; w /= 2)
    for (int j = 0; j < w; ++j) t[j] += t[j + w];
  return t[0];
}

/// (2 rho_i - 1) |g_i|, the term of Def. 1.
KOKKOS_INLINE_FUNCTION double rho_norm_term(double rho, double g) { return (2.0 * rho - 1.0) * compat::fabs(g); }

template <class GView, class RhoView>
struct RhoNorm {
  using value_type = double;
  GView g;
  RhoView rho;

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t i, double& acc) const {
    acc += rho_norm_term(static_cast<double>(rho(i)), static_cast<double>(g(i)));
  }
};

/// Host backends: stats_block coordinates per iteration.
template <class GView, class RhoView>
struct RhoNormBlocks {
  using value_type = double;
  GView g;
  RhoView rho;
  std::size_t n;

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t b, double& acc) const {
    const std::size_t begin = b * stats_block;
    double t[stats_block];
    if (begin + stats_block <= n) {
      for (int j = 0; j < stats_block; ++j)
        t[j] = rho_norm_term(static_cast<double>(rho(begin + j)), static_cast<double>(g(begin + j)));
    } else {
      for (int j = 0; j < stats_block; ++j)
        t[j] = (begin + j < n) ? rho_norm_term(static_cast<double>(rho(begin + j)), static_cast<double>(g(begin + j)))
                               : 0.0;
    }
    acc += block_tree_sum(t);
  }
};

template <class GView, class RhoView>
struct RhoMNorm {
  using value_type = double;
  GView g;
  RhoView rho;
  int l;
  double lbeta;  // log B(l, l)

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t i, double& acc) const {
    const double vote = 2.0 * incomplete_beta_equal(static_cast<double>(rho(i)), l, lbeta) - 1.0;
    acc += vote * compat::fabs(static_cast<double>(g(i)));
  }
};

/// Host backends, l <= incomplete_beta_sum_max_l: stats_block coordinates per iteration, the finite sum of
/// incomplete_beta_equal run with the coordinate as the inner (vectorisable) loop. The same operations in
/// the same order as incomplete_beta_equal, per coordinate; p <= 0 and p >= 1 fall out of clamping x at 0.
template <class GView, class RhoView>
struct RhoMNormSumBlocks {
  using value_type = double;
  GView g;
  RhoView rho;
  std::size_t n;
  int l;

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t b, double& acc) const {
    const std::size_t begin = b * stats_block;
    const int count = static_cast<int>(compat::min<std::size_t>(stats_block, n - begin));
    const int nn = 2 * l - 1;
    double x[stats_block], ratio[stats_block], term[stats_block], sum[stats_block];
    for (int c = 0; c < count; ++c) {
      const double p = static_cast<double>(rho(begin + c));
      const double xc = p > 0.5 ? 1.0 - p : p;
      x[c] = xc < 0.0 ? 0.0 : xc;
      ratio[c] = x[c] / (1.0 - x[c]);
      term[c] = 1.0;
    }
    for (int j = 1; j <= l; ++j) {
      const double f = static_cast<double>(l - 1 + j) / j;
      for (int c = 0; c < count; ++c) term[c] *= f * x[c];
    }
    for (int j = 1; j < l; ++j)
      for (int c = 0; c < count; ++c) term[c] *= 1.0 - x[c];
    for (int c = 0; c < count; ++c) sum[c] = term[c];
    for (int k = l; k < nn; ++k) {
      const double f = static_cast<double>(nn - k) / (k + 1);
      for (int c = 0; c < count; ++c) {
        term[c] *= f * ratio[c];
        sum[c] += term[c];
      }
    }
    double t[stats_block];
    for (int c = 0; c < stats_block; ++c) t[c] = 0.0;
    for (int c = 0; c < count; ++c) {
      const double p = static_cast<double>(rho(begin + c));
      const double I = p > 0.5 ? 1.0 - sum[c] : sum[c];
      t[c] = (2.0 * I - 1.0) * compat::fabs(static_cast<double>(g(begin + c)));
    }
    acc += block_tree_sum(t);
  }
};

}  // namespace Impl

/// ||g||_rho = sum_i (2 rho_i - 1) |g_i| (seed 001 Def. 1), over i < g.extent(0); accumulated in double.
template <class ExecSpace, class GView, class RhoView>
double rho_norm(const ExecSpace& space, const GView& g, const RhoView& rho) {
  Impl::check_view<ExecSpace, GView, 1>();
  Impl::check_view<ExecSpace, RhoView, 1>();
  Impl::require(rho.extent(0) >= g.extent(0), "terse::rho_norm: views of the wrong extent");
  const std::size_t n = g.extent(0);
  double sum = 0;
  if constexpr (Impl::host_loops_v<ExecSpace>) {
    const std::size_t blocks = (n + Impl::stats_block - 1) / Impl::stats_block;
    Kokkos::parallel_reduce("terse::rho_norm", Kokkos::RangePolicy<ExecSpace>(space, 0, blocks),
                            Impl::RhoNormBlocks<GView, RhoView>{g, rho, n}, sum);
  } else {
    Kokkos::parallel_reduce("terse::rho_norm", Kokkos::RangePolicy<ExecSpace>(space, 0, n),
                            Impl::RhoNorm<GView, RhoView>{g, rho}, sum);
  }
  return sum;
}

/// ||g||_rho_M = sum_i (2 I(rho_i; l, l) - 1) |g_i| with l = floor((M+1)/2) (seed 001 Def. 2); M >= 1 nodes.
/// By Lemma 8 each weight is the expected majority-vote sign E[sign(g^(M)_i g_i)]. Accumulated in double.
template <class ExecSpace, class GView, class RhoView>
double rho_M_norm(const ExecSpace& space, const GView& g, const RhoView& rho, int M) {
  Impl::check_view<ExecSpace, GView, 1>();
  Impl::check_view<ExecSpace, RhoView, 1>();
  Impl::require(rho.extent(0) >= g.extent(0) && M >= 1, "terse::rho_M_norm: views of the wrong extent, or M < 1");
  const int l = vote_half(M);
  const std::size_t n = g.extent(0);
  double sum = 0;
  if constexpr (Impl::host_loops_v<ExecSpace>) {
    if (l <= incomplete_beta_sum_max_l) {
      const std::size_t blocks = (n + Impl::stats_block - 1) / Impl::stats_block;
      Kokkos::parallel_reduce("terse::rho_M_norm", Kokkos::RangePolicy<ExecSpace>(space, 0, blocks),
                              Impl::RhoMNormSumBlocks<GView, RhoView>{g, rho, n, l}, sum);
      return sum;
    }
  }
  Kokkos::parallel_reduce("terse::rho_M_norm", Kokkos::RangePolicy<ExecSpace>(space, 0, n),
                          Impl::RhoMNorm<GView, RhoView>{g, rho, l, log_beta(l, l)}, sum);
  return sum;
}

// ------------------------------------------------------------------------------------------------------------
// Adaptive learning rate eta* (seed 000, Prop. 3, eq. (1); estimator of Sec. II-B)
// ------------------------------------------------------------------------------------------------------------

namespace Impl {

/// One coordinate's |g^_i| (1 - 2 q^_i) with g^_i the batch mean (see the header comment); device backends.
template <class GradView>
struct EtaStarBatchMean {
  using value_type = double;
  GradView grads;  // (m, d)
  double inv_m;

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t i, double& acc) const {
    const std::size_t m = grads.extent(0);
    double sum = 0;
    for (std::size_t j = 0; j < m; ++j) sum += static_cast<double>(grads(j, i));
    const double mean = sum * inv_m;
    const sign_word_t ref = sign_bit(mean);
    std::size_t mismatches = 0;
    for (std::size_t j = 0; j < m; ++j) mismatches += (sign_bit(grads(j, i)) != ref);
    acc += compat::fabs(mean) * (1.0 - 2.0 * static_cast<double>(mismatches) * inv_m);
  }
};

/// One coordinate's |g_i| (1 - 2 q^_i) with a given gradient g; device backends.
template <class GradView, class GView>
struct EtaStarGiven {
  using value_type = double;
  GradView grads;  // (m, d)
  GView g;         // (d)
  double inv_m;

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t i, double& acc) const {
    const std::size_t m = grads.extent(0);
    const double gi = static_cast<double>(g(i));
    const sign_word_t ref = sign_bit(gi);
    std::size_t mismatches = 0;
    for (std::size_t j = 0; j < m; ++j) mismatches += (sign_bit(grads(j, i)) != ref);
    acc += compat::fabs(gi) * (1.0 - 2.0 * static_cast<double>(mismatches) * inv_m);
  }
};

/// Host backends: stats_block coordinates per iteration, samples in the outer loop, so the inner loops run
/// along a row of a LayoutRight batch (vectorisable). Each coordinate's mean is still the sequential sum over
/// j = 0..m-1, as in EtaStarBatchMean. With GView = void the batch mean is the reference gradient.
template <class GradView, class GView>
struct EtaStarBlocks {
  using value_type = double;
  static constexpr bool given = !std::is_void<GView>::value;
  using GHolder = std::conditional_t<given, GView, int>;
  GradView grads;  // (m, d)
  GHolder g;       // (d) when given
  double inv_m;

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t b, double& acc) const {
    const std::size_t m = grads.extent(0), d = grads.extent(1);
    const std::size_t begin = b * stats_block;
    const int count = static_cast<int>(compat::min<std::size_t>(stats_block, d - begin));
    double ref[stats_block];
    if constexpr (given) {
      for (int c = 0; c < count; ++c) ref[c] = static_cast<double>(g(begin + c));
    } else {
      for (int c = 0; c < count; ++c) ref[c] = 0.0;
      for (std::size_t j = 0; j < m; ++j)
        for (int c = 0; c < count; ++c) ref[c] += static_cast<double>(grads(j, begin + c));
      for (int c = 0; c < count; ++c) ref[c] *= inv_m;
    }
    std::uint32_t ref_minus[stats_block], mismatches[stats_block];
    for (int c = 0; c < count; ++c) {
      ref_minus[c] = ref[c] < 0 ? 1u : 0u;  // sign convention: >= 0, -0.0 and NaN are +1
      mismatches[c] = 0;
    }
    for (std::size_t j = 0; j < m; ++j)
      for (int c = 0; c < count; ++c)
        mismatches[c] += (grads(j, begin + c) < 0 ? 1u : 0u) ^ ref_minus[c];
    double t[stats_block];
    for (int c = 0; c < stats_block; ++c) t[c] = 0.0;
    for (int c = 0; c < count; ++c)
      t[c] = compat::fabs(ref[c]) * (1.0 - 2.0 * static_cast<double>(mismatches[c]) * inv_m);
    acc += block_tree_sum(t);
  }
};

}  // namespace Impl

/// eta*_k = sum_i |g^_i| (1 - 2 q^_i) / L (seed 000 Prop. 3, eq. (1)) estimated from a batch of m per-sample
/// stochastic gradients grads(j, i) (rank 2, shape (m, d), any layout; LayoutLeft/Right both work, LayoutRight
/// coalesces on GPUs): g^_i = batch mean, q^_i = fraction of samples whose sign differs from sign g^_i
/// (seed 000 Sec. II-B). Returns 0 for an empty batch. Blocks until the value is known.
template <class ExecSpace, class GradView>
double eta_star(const ExecSpace& space, const GradView& grads, double L) {
  Impl::check_view<ExecSpace, GradView, 2>();
  const std::size_t m = grads.extent(0), d = grads.extent(1);
  if (m == 0) return 0.0;
  const double inv_m = 1.0 / static_cast<double>(m);
  double sum = 0;
  if constexpr (Impl::host_loops_v<ExecSpace>) {
    const std::size_t blocks = (d + Impl::stats_block - 1) / Impl::stats_block;
    Kokkos::parallel_reduce("terse::eta_star", Kokkos::RangePolicy<ExecSpace>(space, 0, blocks),
                            Impl::EtaStarBlocks<GradView, void>{grads, 0, inv_m}, sum);
  } else {
    Kokkos::parallel_reduce("terse::eta_star", Kokkos::RangePolicy<ExecSpace>(space, 0, d),
                            Impl::EtaStarBatchMean<GradView>{grads, inv_m}, sum);
  }
  return sum / L;
}

/// eta*_k of seed 000 eq. (1) with the gradient g_k given (g, rank 1, length d) and the sign-error
/// probabilities estimated from the batch grads (m, d): q^_i = #{j : sign grads(j, i) != sign g_i} / m.
template <class ExecSpace, class GradView, class GView>
double eta_star(const ExecSpace& space, const GradView& grads, const GView& g, double L) {
  Impl::check_view<ExecSpace, GradView, 2>();
  Impl::check_view<ExecSpace, GView, 1>();
  const std::size_t m = grads.extent(0), d = grads.extent(1);
  Impl::require(g.extent(0) >= d, "terse::eta_star: views of the wrong extent");
  if (m == 0) return 0.0;
  const double inv_m = 1.0 / static_cast<double>(m);
  double sum = 0;
  if constexpr (Impl::host_loops_v<ExecSpace>) {
    const std::size_t blocks = (d + Impl::stats_block - 1) / Impl::stats_block;
    Kokkos::parallel_reduce("terse::eta_star", Kokkos::RangePolicy<ExecSpace>(space, 0, blocks),
                            Impl::EtaStarBlocks<GradView, GView>{grads, g, inv_m}, sum);
  } else {
    Kokkos::parallel_reduce("terse::eta_star", Kokkos::RangePolicy<ExecSpace>(space, 0, d),
                            Impl::EtaStarGiven<GradView, GView>{grads, g, inv_m}, sum);
  }
  return sum / L;
}

}  // namespace terse
