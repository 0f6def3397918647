// QSGD and TernGrad (kernels/terse_Qsgd.hpp) on every backend, against references written here from the papers
// (Alistarh et al. 2017 Sec. 3.1; Wen et al. 2017) and docs/random.md, sharing no code with the kernels but the
// generator's uniforms (the compressor's random input):
//   * the message of a vector is the definition's, coordinate by coordinate, bit by bit in the documented layout,
//     and message_add decodes it;
//   * unbiasedness by Monte Carlo: over N draws the mean of the decoded messages is within 5 standard errors of v
//     in every coordinate (the standard error from the two-point law of each coordinate: scale / s sqrt(p (1 - p)
//     / N)), and the same statistic rejects a biased rounding (nearest level, and floor) on the same draws;
//   * the sizes: ceil(log2(s + 1)) level bits, the wire bytes and payload bits by the documented formulas.
#include "terse_TestBackends.hpp"

#include <terse_Qsgd.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace {

using namespace terse;
using namespace terse::test;

std::vector<float> mixed(std::size_t n, unsigned seed) {  // magnitudes over three decades, both signs, some zeros
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> x(n);
  for (std::size_t i = 0; i < n; ++i) x[i] = i % 17 == 5 ? 0.0f : g(gen) * std::pow(10.0f, float(i % 3) - 1.0f);
  return x;
}

/// The definition: per bucket the scale, per coordinate the level and the decoded value, in double from the fp32
/// scale; `rounding` 0: the stochastic rounding of the paper, 1: to the nearest level, 2: down (biased, for power).
struct Reference {
  std::vector<float> scales;
  std::vector<unsigned> levels;
  std::vector<double> value;
  std::vector<double> p;  // P[level = l + 1]
};
Reference reference(const std::vector<float>& x, int s, std::size_t bucket, bool max_scale, const CounterRng& rng,
                    std::uint64_t k, std::uint32_t w, int rounding = 0) {
  const std::size_t n = x.size();
  Reference r;
  for (std::size_t b = 0; b * bucket < n; ++b) {
    double acc = 0;
    for (std::size_t i = b * bucket; i < std::min(n, (b + 1) * bucket); ++i)
      acc = max_scale ? std::max(acc, std::fabs(double(x[i]))) : acc + double(x[i]) * double(x[i]);
    r.scales.push_back(static_cast<float>(max_scale ? acc : std::sqrt(acc)));
  }
  for (std::size_t i = 0; i < n; ++i) {
    const double scale = r.scales[i / bucket];
    const double q = scale > 0 ? s * std::fabs(double(x[i])) / scale : 0;
    const double l = std::floor(q);
    unsigned level = 0;
    if (l >= s) level = static_cast<unsigned>(s);
    else if (rounding == 1) level = static_cast<unsigned>(std::lround(q));
    else if (rounding == 2) level = static_cast<unsigned>(l);
    else level = static_cast<unsigned>(l) + (rng.uniform_lane(k, w, i) < q - l ? 1 : 0);
    r.levels.push_back(level);
    r.p.push_back(l >= s ? 0.0 : q - l);
    r.value.push_back((x[i] >= 0 ? 1 : -1) * scale * level / s);
  }
  return r;
}

template <class E, QsgdScale S>
QsgdCompressor<E, float, S> make(std::size_t n, int s, std::size_t bucket, std::uint64_t seed, std::uint32_t w) {
  CompressorOptions o;
  o.levels = s;
  o.bucket = bucket;
  o.rng = CounterRng{seed, static_cast<std::uint32_t>(RandomStream::qsgd)};
  o.worker = w;
  return QsgdCompressor<E, float, S>(n, o);
}

template <class ExecSpace>
class Qsgd : public ::testing::Test {};
TYPED_TEST_SUITE(Qsgd, ExecSpaces);

TEST(QsgdLevels, BitsOfALevelAreCeilLog2OfSPlusOne) {
  const int want[] = {0, 1, 2, 2, 3, 3, 3, 3, 4};  // s = 0 .. 8
  for (int s = 1; s <= 8; ++s) EXPECT_EQ(qsgd_level_bits(s), want[s]) << s;
  EXPECT_EQ(qsgd_level_bits(15), 4);
  EXPECT_EQ(qsgd_level_bits(16), 5);
}

// The message is the definition's, in the documented layout; the kernel's decoding (message_add) is the value.
TYPED_TEST(Qsgd, TheMessageIsTheDefinitionBitByBit) {
  using E = TypeParam;
  const std::size_t n = 1000;
  const auto x = mixed(n, 3);
  const std::uint64_t seed = 17, k = 9;
  const std::uint32_t w = 2;
  const CounterRng rng{seed, static_cast<std::uint32_t>(RandomStream::qsgd)};
  struct Case {
    int s;
    std::size_t bucket;
    bool tern;
  };
  for (const Case c : {Case{1, 128, false}, Case{3, 100, false}, Case{16, 512, false}, Case{7, 0, false},
                       Case{1, 128, true}, Case{1, 0, true}}) {
    SCOPED_TRACE("s = " + std::to_string(c.s) + ", bucket " + std::to_string(c.bucket) + (c.tern ? ", terngrad" : ""));
    const std::size_t bucket = c.bucket == 0 ? n : c.bucket;
    const auto ref = reference(x, c.s, bucket, c.tern, rng, k, w);
    QsgdMessage<E, float> m;
    auto q = make<E, QsgdScale::l2>(n, c.s, c.bucket, seed, w);
    auto t = make<E, QsgdScale::max>(n, c.s, c.bucket, seed, w);
    m = c.tern ? t.compress(E(), to_device<E>(x), k) : q.compress(E(), to_device<E>(x), k);
    ASSERT_EQ(m.bucket, bucket);
    ASSERT_EQ(m.levels, c.s);
    const auto norms = to_host(m.norms);
    ASSERT_EQ(norms.size(), ref.scales.size());
    for (std::size_t b = 0; b < norms.size(); ++b) EXPECT_EQ(norms[b], ref.scales[b]) << "bucket " << b;
    const auto planes = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), m.planes);
    const int qb = qsgd_level_bits(c.s);
    ASSERT_EQ(planes.extent(0), std::size_t(1 + qb));
    ASSERT_EQ(planes.extent(1), packed_words(n));
    std::size_t nonzero = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const bool sign = (planes(0, i / 64) >> (i % 64)) & 1u;
      ASSERT_EQ(sign, x[i] >= 0) << i;
      unsigned level = 0;
      for (int p = 0; p < qb; ++p) level |= ((planes(1 + p, i / 64) >> (i % 64)) & 1u) << p;
      ASSERT_EQ(level, ref.levels[i]) << "coordinate " << i << ": x " << x[i];
      nonzero += ref.levels[i] != 0;
    }
    EXPECT_GT(nonzero, 20u);  // levels above 0 (most are 0 with s = 1 or one norm over 1000 coordinates)
    for (std::size_t p = 0; p < planes.extent(0); ++p) EXPECT_EQ(planes(p, n / 64) >> (n % 64), 0u) << "padding bits";
    Kokkos::View<float*, typename E::memory_space> y("y", n);
    Kokkos::deep_copy(y, 1.0f);
    message_add(E(), m, y, 2.0f);
    const auto yh = to_host(y);
    for (std::size_t i = 0; i < n; ++i) EXPECT_FLOAT_EQ(yh[i], 1.0f + 2.0f * static_cast<float>(ref.value[i])) << i;
    // TernGrad: {-1, 0, +1} times the bucket's max.
    if (c.tern)
      for (std::size_t i = 0; i < n; ++i) EXPECT_TRUE(ref.levels[i] <= 1u);
  }
}

// E[Q_s(v)] = v: the mean of N draws within 5 standard errors in every coordinate; a biased rounding fails it.
TYPED_TEST(Qsgd, UnbiasedByMonteCarlo) {
  using E = TypeParam;
  const std::size_t n = 96, N = 20000;  // two buckets of 64, the second partial
  const auto x = mixed(n, 5);
  const std::uint64_t seed = 23;
  const CounterRng rng{seed, static_cast<std::uint32_t>(RandomStream::qsgd)};
  for (const bool tern : {false, true}) {
    const int s = tern ? 1 : 4;
    SCOPED_TRACE(tern ? "terngrad" : "qsgd, s = 4");
    auto q = make<E, QsgdScale::l2>(n, s, 64, seed, 1);
    auto t = make<E, QsgdScale::max>(n, s, 64, seed, 1);
    Kokkos::View<double*, typename E::memory_space> sum("sum", n);  // summed in double: no rounding to speak of
    const auto xd = to_device<E>(x);
    for (std::uint64_t k = 0; k < N; ++k) {
      const auto& m = tern ? t.compress(E(), xd, k) : q.compress(E(), xd, k);
      message_add(E(), m, sum, 1.0);
    }
    const auto ref = reference(x, s, 64, tern, rng, 0, 1);
    const auto nearest = reference(x, s, 64, tern, rng, 0, 1, 1), down = reference(x, s, 64, tern, rng, 0, 1, 2);
    std::vector<double> mean = to_host(sum);
    for (double& v : mean) v /= N;
    double worst = 0, worst_nearest = 0, worst_down = 0;
    int random_coords = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const double step = ref.scales[i / 64] / s, p = ref.p[i];
      const double se = step * std::sqrt(p * (1 - p) / N);
      const double tol = 5 * se + 1e-6 * std::fabs(x[i]) + 1e-6 * step;  // + the float sum's rounding
      const double z = std::fabs(mean[i] - x[i]) / tol;
      if (z > 1) ADD_FAILURE() << "coordinate " << i << ": x " << x[i] << ", mean " << mean[i] << ", p " << p << ", step " << step;
      worst = std::max(worst, z);
      if (p > 0.05 && p < 0.95) ++random_coords;
      // The biased roundings are deterministic: their mean over any N draws is their one value.
      worst_nearest = std::max(worst_nearest, std::fabs(nearest.value[i] - x[i]) / tol);
      worst_down = std::max(worst_down, std::fabs(down.value[i] - x[i]) / tol);
    }
    EXPECT_GT(random_coords, 25) << "too few coordinates between levels for the test to mean something";
    EXPECT_LE(worst, 1.0) << "the mean of " << N << " draws is further than 5 standard errors from v";
    EXPECT_GT(worst_nearest, 10.0) << "a rounding to the nearest level is not told apart";
    EXPECT_GT(worst_down, 10.0) << "a rounding down is not told apart";
  }
}

// The sizes by the documented formulas: 4 ceil(n / B) + 8 (1 + q) ceil(n / 64) bytes, 32 ceil(n / B) + (1 + q) n
// bits.
TEST(QsgdSizes, WireBytesAndBitsAreTheFormula) {
  using E = Kokkos::DefaultHostExecutionSpace;
  for (const std::size_t n : {1u, 63u, 64u, 65u, 1000u, 100000u})
    for (const int s : {1, 2, 4, 16})
      for (const std::size_t B : {1u, 64u, 100u, 512u}) {
        CompressorOptions o;
        o.levels = s;
        o.bucket = B;
        const auto z = QsgdCompressor<E, float, QsgdScale::l2>::sizes(n, o);
        const std::size_t q = static_cast<std::size_t>(std::ceil(std::log2(s + 1.0)));
        const std::size_t nb = (n + B - 1) / B, nw = (n + 63) / 64;
        EXPECT_EQ(z.wire, 4 * nb + 8 * (1 + q) * nw) << n << " " << s << " " << B;
        EXPECT_EQ(z.bits, 32.0 * nb + double(1 + q) * n);
        const auto zt = QsgdCompressor<E, float, QsgdScale::max>::sizes(n, o);  // s = 1 whatever o says
        EXPECT_EQ(zt.wire, 4 * nb + 8 * 2 * nw);
      }
}

}  // namespace
