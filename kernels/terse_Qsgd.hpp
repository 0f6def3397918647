#pragma once
// terse_Qsgd.hpp: QSGD (Alistarh, Grubic, Li, Tomioka, Vojnovic, NeurIPS 2017, Sec. 3.1) and TernGrad (Wen et al.,
// NeurIPS 2017) as one compressor with two scales, its packed message and its kernels.
//
//   Q_s(v)_i = scale_b sign(v_i) xi_i,  xi_i = l / s or (l + 1) / s,  l = floor(s |v_i| / scale_b),
//   P[xi_i = (l + 1) / s] = s |v_i| / scale_b - l                       (so E[Q_s(v)] = v: unbiased)
//
// with b the bucket of i (coordinates [b n_b, (b + 1) n_b), one scale per bucket, Sec. 3.1's bucketing) and
//   QSGD      scale_b = ||v_b||_2                 levels s >= 1 (QsgdScale::l2)
//   TernGrad  scale_b = max_{i in b} |v_i|         s = 1: xi_i in {0, 1}, stochastic ternary (QsgdScale::max)
//
// The message (QsgdMessage), packed as the sign words are (docs/architecture.md, Conventions):
//   norms    ceil(n / n_b) fp32 scales, bucket b at b;
//   planes   1 + q bit planes of ceil(n / 64) 64-bit words each, q = ceil(log2(s + 1)) (level_bits(s)):
//            plane 0 is the sign (coordinate i in bit i % 64 of word i / 64, set for v_i >= 0, as the sign
//            words), plane 1 + p holds bit p of the level l_i in 0 .. s of xi_i = l_i / s, same position;
//            padding bits 0.
// On the wire: 4 ceil(n / n_b) + 8 (1 + q) ceil(n / 64) bytes (wire_bytes); the payload 32 ceil(n / n_b) +
// (1 + q) n bits. Planes split at word boundaries, as the server slices do (drivers/comm/terse_QsgdExchange.hpp).
//
// Random draws: the uniform of coordinate i is CounterRng{seed, RandomStream::qsgd}.uniform_lane(iteration,
// worker, i) (lane i % 4 of draw i / 4), the same for TernGrad (docs/random.md). The scales are sums (of squares,
// in double, in coordinate order, one thread per bucket) or maxima of the bucket: deterministic on every backend
// and thread count. Levels: r = s |v_i| / scale (double, from the fp32 scale that travels), l = floor(r), l + 1
// when the uniform < r - l; r >= s gives s; scale 0 gives level 0. Decoding: sign * double(scale) * l_i / s.

#include <terse_Compressor.hpp>
#include <terse_Random.hpp>
#include <terse_Sign.hpp>

#include <Kokkos_Core.hpp>

#include <cstdint>
#include <string>

namespace terse {

/// The scale of a bucket: QSGD's 2-norm or TernGrad's largest magnitude.
enum class QsgdScale { l2, max };

/// Coordinates per bucket when the deck does not say (the paper's experiments used 512).
inline constexpr std::size_t qsgd_default_bucket = 512;

/// Bits of a level in 0 .. s: ceil(log2(s + 1)).
KOKKOS_INLINE_FUNCTION constexpr int qsgd_level_bits(int s) {
  int b = 0;
  while ((1L << b) < static_cast<long>(s) + 1) ++b;
  return b;
}

/// A QSGD / TernGrad message of n coordinates (layout above).
template <class ExecSpace, class T = float>
struct QsgdMessage {
  using execution_space = ExecSpace;
  using memory_space = typename ExecSpace::memory_space;
  using value_type = T;
  using Planes = Kokkos::View<sign_word_t**, Kokkos::LayoutRight, memory_space>;
  Kokkos::View<float*, memory_space> norms;  ///< one scale per bucket
  Planes planes;                             ///< (1 + level_bits, words): the sign plane, then the level bits
  std::size_t n = 0, bucket = 1;
  int levels = 1;

  QsgdMessage() = default;
  QsgdMessage(std::size_t n_, int levels_, std::size_t bucket_, const std::string& label)
      : norms(label + ".norms", buckets(n_, bucket_)),
        planes(label + ".planes", 1 + qsgd_level_bits(levels_), packed_words(n_)), n(n_), bucket(bucket_),
        levels(levels_) {}

  static std::size_t buckets(std::size_t n, std::size_t bucket) { return (n + bucket - 1) / bucket; }
  /// Bytes of one message on the wire (and as allocated): the norms and the planes.
  static std::size_t wire_bytes(std::size_t n, int levels, std::size_t bucket) {
    return sizeof(float) * buckets(n, bucket) +
           sizeof(sign_word_t) * static_cast<std::size_t>(1 + qsgd_level_bits(levels)) * packed_words(n);
  }
  /// Payload bits (docs/hdf5.md): 32 per norm, a sign bit and level_bits(s) bits per coordinate.
  static double payload_bits(std::size_t n, int levels, std::size_t bucket) {
    return 32.0 * static_cast<double>(buckets(n, bucket)) +
           static_cast<double>(1 + qsgd_level_bits(levels)) * static_cast<double>(n);
  }
};

namespace Impl {

/// The decoded value of coordinate i of a message whose planes start at coordinate first (a multiple of 64) and
/// whose norms start at bucket first / bucket... given as first_bucket: sign * scale * level / s.
template <class Planes, class Norms>
struct QsgdDecode {
  Planes planes;  // (1 + q, words) from coordinate `first`
  Norms norms;    // from bucket `first_bucket`
  std::size_t first, first_bucket, bucket;
  int levels, bits;

  KOKKOS_INLINE_FUNCTION double operator()(std::size_t i) const {
    const std::size_t j = i - first, w = j / sign_word_bits;
    const int b = static_cast<int>(j % sign_word_bits);
    unsigned level = 0;
    for (int p = 0; p < bits; ++p) level |= static_cast<unsigned>((planes(1 + p, w) >> b) & 1u) << p;
    const double mag = static_cast<double>(norms(i / bucket - first_bucket)) * static_cast<double>(level) /
                       static_cast<double>(levels);
    return ((planes(0, w) >> b) & 1u) ? mag : -mag;
  }
};

}  // namespace Impl

/// norms(b) <- the scale of bucket b of x: sqrt(sum x_i^2) (in double, coordinate order, rounded to float) or
/// max |x_i|. One thread per bucket.
template <class ExecSpace, class XView, class NView>
void qsgd_scales(const ExecSpace& space, const XView& x, QsgdScale scale, std::size_t bucket, const NView& norms) {
  Impl::check_view<ExecSpace, XView>();
  const std::size_t n = x.extent(0);
  Impl::require(norms.extent(0) == (n + bucket - 1) / bucket, "terse::qsgd_scales: one norm per bucket");
  const bool l2 = scale == QsgdScale::l2;
  Kokkos::parallel_for(
      "terse::qsgd::scales", Kokkos::RangePolicy<ExecSpace>(space, 0, norms.extent(0)), KOKKOS_LAMBDA(std::size_t b) {
        const std::size_t lo = b * bucket, hi = compat::min(n, lo + bucket);
        double acc = 0;
        for (std::size_t i = lo; i < hi; ++i) {
          const double v = static_cast<double>(x(i));
          if (l2) acc += v * v;
          else acc = compat::max(acc, compat::fabs(v));
        }
        norms(b) = static_cast<float>(l2 ? compat::sqrt(acc) : acc);
      });
}

/// The planes of x's message from its norms (qsgd_scales first): one thread per word writes its 1 + q words.
template <class ExecSpace, class XView, class T>
void qsgd_quantize(const ExecSpace& space, const XView& x, const CounterRng& rng, std::uint64_t iteration,
                   std::uint32_t worker, const QsgdMessage<ExecSpace, T>& m) {
  Impl::check_view<ExecSpace, XView>();
  const std::size_t n = x.extent(0), bucket = m.bucket;
  Impl::require(n == m.n, "terse::qsgd_quantize: the message was made for another dimension");
  const int s = m.levels, q = qsgd_level_bits(s);
  auto planes = m.planes;
  auto norms = m.norms;
  Kokkos::parallel_for(
      "terse::qsgd::quantize", Kokkos::RangePolicy<ExecSpace>(space, 0, packed_words(n)), KOKKOS_LAMBDA(std::size_t w) {
        sign_word_t word[1 + 8 * sizeof(int)] = {};
        const std::size_t lo = w * sign_word_bits, hi = compat::min(n, lo + sign_word_bits);
        for (std::size_t i = lo; i < hi; ++i) {
          const double v = static_cast<double>(x(i));
          const double scale = static_cast<double>(norms(i / bucket));
          unsigned level = 0;
          if (scale > 0) {
            const double r = static_cast<double>(s) * compat::fabs(v) / scale;
            const unsigned l = static_cast<unsigned>(compat::floor(r));
            if (l >= static_cast<unsigned>(s)) level = static_cast<unsigned>(s);
            else level = l + (rng.uniform_lane(iteration, worker, i) < r - static_cast<double>(l) ? 1u : 0u);
          }
          const int b = static_cast<int>(i - lo);
          if (!(v < 0)) word[0] |= sign_word_t{1} << b;
          for (int p = 0; p < q; ++p) word[1 + p] |= static_cast<sign_word_t>((level >> p) & 1u) << b;
        }
        for (int p = 0; p <= q; ++p) planes(p, w) = word[p];
      });
}

/// y <- y + alpha * decode(m).
template <class ExecSpace, class T, class YView>
void message_add(const ExecSpace& space, const QsgdMessage<ExecSpace, T>& m, const YView& y,
                 typename YView::non_const_value_type alpha = 1) {
  Impl::check_view<ExecSpace, YView>();
  Impl::require(y.extent(0) == m.n, "terse::message_add: y's extent differs from the message's dimension");
  using T2 = typename YView::non_const_value_type;
  const Impl::QsgdDecode<typename QsgdMessage<ExecSpace, T>::Planes, decltype(m.norms)> decode{
      m.planes, m.norms, 0, 0, m.bucket, m.levels, qsgd_level_bits(m.levels)};
  Kokkos::parallel_for("terse::qsgd::add", Kokkos::RangePolicy<ExecSpace>(space, 0, m.n),
                       KOKKOS_LAMBDA(std::size_t i) { y(i) += alpha * static_cast<T2>(decode(i)); });
}

/// The server's mean of W messages on its slice of coordinates [first, first + out.extent(0)) (first a multiple
/// of 64): planes (W, 1 + q, slice words), norms (W, buckets of the slice from first_bucket); out(i - first) <-
/// (1 / W) sum_w decode_w(i), summed in double in worker order. One thread per coordinate, no atomics.
template <class ExecSpace, class PView, class NView, class OutView>
void qsgd_mean(const ExecSpace& space, const PView& planes, const NView& norms, std::size_t first,
               std::size_t first_bucket, std::size_t bucket, int levels, const OutView& out, double inv_count) {
  static_assert(PView::rank == 3 && NView::rank == 2, "terse::qsgd_mean: (W, planes, words) and (W, buckets)");
  Impl::check_view<ExecSpace, OutView>();
  Impl::require(planes.extent(0) == norms.extent(0), "terse::qsgd_mean: one set of norms per message");
  using T = typename OutView::non_const_value_type;
  const int W = static_cast<int>(planes.extent(0)), q = qsgd_level_bits(levels);
  Kokkos::parallel_for(
      "terse::qsgd::mean", Kokkos::RangePolicy<ExecSpace>(space, 0, out.extent(0)), KOKKOS_LAMBDA(std::size_t j) {
        const std::size_t i = first + j;
        double acc = 0;
        for (int w = 0; w < W; ++w) {
          const auto pw = Kokkos::subview(planes, w, Kokkos::ALL, Kokkos::ALL);
          const auto nw = Kokkos::subview(norms, w, Kokkos::ALL);
          acc += Impl::QsgdDecode<decltype(pw), decltype(nw)>{pw, nw, first, first_bucket, bucket, levels, q}(i);
        }
        out(j) = static_cast<T>(acc * inv_count);
      });
}

// ------------------------------------------------------------------------------------------------------------
// The compressor
// ------------------------------------------------------------------------------------------------------------

/// QSGD (Scale = l2, levels from the options) or TernGrad (Scale = max, one level), bucketed by options.bucket
/// (0: one bucket for the whole vector); unbiased; draws from the qsgd stream at (iteration, worker, i).
template <class ExecSpace, class T, QsgdScale Scale>
class QsgdCompressor {
 public:
  using execution_space = ExecSpace;
  using value_type = T;
  using message_type = QsgdMessage<ExecSpace, T>;
  static constexpr const char* name = Scale == QsgdScale::l2 ? "qsgd" : "terngrad";
  static constexpr bool random = true;
  static constexpr RandomStream stream = RandomStream::qsgd;
  static constexpr bool takes_functors = false;

  /// TernGrad is s = 1 whatever the options say.
  static int levels_of(const CompressorOptions& o) { return Scale == QsgdScale::max ? 1 : o.levels; }
  static std::size_t bucket_of(std::size_t n, const CompressorOptions& o) {
    return o.bucket == 0 || o.bucket > n ? (n > 0 ? n : 1) : o.bucket;
  }
  static CompressorSizes sizes(std::size_t n, const CompressorOptions& o = {}) {
    const int s = levels_of(o);
    const std::size_t b = bucket_of(n, o), bytes = message_type::wire_bytes(n, s, b);
    return {bytes, bytes, bytes, message_type::payload_bits(n, s, b)};
  }
  explicit QsgdCompressor(std::size_t n, const CompressorOptions& o = {})
      : msg_(n, levels_of(o), bucket_of(n, o), std::string("terse::") + name + ".message"), rng_(o.rng),
        worker_(o.worker) {
    Impl::require(levels_of(o) >= 1, "terse::QsgdCompressor: levels must be >= 1");
  }
  std::size_t size() const { return msg_.n; }
  int levels() const { return msg_.levels; }
  std::size_t bucket() const { return msg_.bucket; }

  template <class X>
  const message_type& compress(const ExecSpace& space, const X& x, std::uint64_t iteration = 0) {
    Impl::require(x.extent(0) == msg_.n, "terse::QsgdCompressor::compress: x has another dimension");
    qsgd_scales(space, x, Scale, msg_.bucket, msg_.norms);
    qsgd_quantize(space, x, rng_, iteration, worker_, msg_);
    return msg_;
  }
  const message_type& message() const { return msg_; }
  template <class YView>
  static void add(const ExecSpace& space, const message_type& m, const YView& y,
                  typename YView::non_const_value_type alpha) {
    message_add(space, m, y, alpha);
  }

 private:
  message_type msg_;
  CounterRng rng_;
  std::uint32_t worker_;
};

/// The families (terse_Compressor.hpp's tags): QSGD's 2-norm scale, TernGrad's max scale.
struct Qsgd {
  template <class E, class T>
  using compressor = QsgdCompressor<E, T, QsgdScale::l2>;
};
struct TernGrad {
  template <class E, class T>
  using compressor = QsgdCompressor<E, T, QsgdScale::max>;
};

}  // namespace terse
