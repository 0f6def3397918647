// The device paths of the word kernels (impl/terse_Lanes.hpp: a team thread per word, its coordinates over
// vector lanes) against the scalar references and bit for bit against the host word loops.
//
// On host backends the lanes run under terse::Impl::DevicePathsOnHost (the lanes one after another), so CPU-only CI
// checks the code a GPU runs; on a device backend they run as they do in production. Either way the reference
// is the host word loop on one thread (ReferenceHost), and the lanes must give the same bits: the same signs,
// the same chunk sums in the same order (lane_sum64), the same scales and memories. On CUDA this holds because
// terse compiles device code without contraction (--fmad=false, kernels/CMakeLists.txt); docs/gpu.md.
#include "terse_TestBackends.hpp"
#include "terse_TestReference.hpp"

#include <terse_Compress.hpp>
#include <terse_Compressor.hpp>
#include <terse_Vote.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

namespace {

using namespace terse;
using namespace terse::test;

template <class ExecSpace>
class DevicePaths : public ::testing::Test {};
TYPED_TEST_SUITE(DevicePaths, ExecSpaces);

const std::size_t sizes[] = {0, 1, 7, 63, 64, 65, 127, 129, 1000, 4097, 100003};

template <class T>
std::vector<T> gaussian(std::size_t n, unsigned seed, double scale = 1.0) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal(0.0, scale);
  std::vector<T> x(n);
  for (auto& v : x) v = static_cast<T>(normal(gen));
  return x;
}

/// Finite mixed values (zeros, negative zeros, subnormals; the huge ones clipped so that sums stay finite).
template <class T>
std::vector<T> finite_mixed(std::size_t n, unsigned seed) {
  auto x = mixed_values<T>(n, seed);
  for (auto& v : x)
    if (!std::isfinite(double(v)) || std::fabs(double(v)) > 1e10) v = T(3);
  return x;
}

template <class T>
std::uint64_t bits_of(T v) {
  std::uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}

template <class T>
void expect_same_bits(const std::vector<T>& got, const std::vector<T>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < want.size(); ++i) ASSERT_EQ(bits_of(got[i]), bits_of(want[i])) << what << ", i = " << i;
}

template <class View>
auto scalar_of(const View& v) {
  typename View::non_const_value_type s{};
  Kokkos::deep_copy(s, v);
  return s;
}

// ---- sign_pack -----------------------------------------------------------------------------------------------

template <class ExecSpace, class T>
void check_pack_lanes(std::size_t n, unsigned seed) {
  const auto x = mixed_values<T>(n, seed);
  Kokkos::View<sign_word_t*, typename ExecSpace::memory_space> words("words", packed_words(n));
  Kokkos::deep_copy(words, ~sign_word_t(0));  // a word the kernel does not write shows up
  {
    terse::Impl::DevicePathsOnHost lanes;
    sign_pack(ExecSpace(), to_device<ExecSpace>(x), words);
  }
  const auto got = to_host(words);
  const auto want = reference_pack(x);
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t w = 0; w < want.size(); ++w) ASSERT_EQ(got[w], want[w]) << "word " << w << " of n = " << n;
}

TYPED_TEST(DevicePaths, SignPackLanesMatchTheScalarReference) {
  for (auto n : sizes) {
    check_pack_lanes<TypeParam, float>(n, 31 + static_cast<unsigned>(n));
    check_pack_lanes<TypeParam, double>(n, 37 + static_cast<unsigned>(n));
  }
}

// ---- deterministic sums ----------------------------------------------------------------------------------------

template <class ExecSpace, class T>
void check_sum_lanes(std::size_t n, unsigned seed) {
  const auto x = gaussian<T>(n, seed);
  SumWorkspace<ReferenceHost> ws_ref(n);
  deterministic_sum(ReferenceHost(), to_device<ReferenceHost>(x), n, ws_ref);
  SumWorkspace<ExecSpace> ws(n);
  {
    terse::Impl::DevicePathsOnHost lanes;
    deterministic_sum(ExecSpace(), to_device<ExecSpace>(x), n, ws);
  }
  const double got = ws.host_result(), want = ws_ref.host_result();
  EXPECT_EQ(bits_of(got), bits_of(want)) << "n = " << n << ": " << got << " vs " << want;
  double ref = 0, ref_abs = 0;
  for (T v : x) ref += double(v), ref_abs += std::fabs(double(v));
  EXPECT_NEAR(got, ref, 1e-15 * double(n) * ref_abs + 1e-300) << "n = " << n;
}

TYPED_TEST(DevicePaths, ChunkSumLanesAreBitwiseTheHostSum) {
  // 300001 terms: three levels of chunk sums (the partials are summed by the lanes too).
  for (std::size_t n : {0ul, 1ul, 63ul, 64ul, 65ul, 4096ul, 4097ul, 300001ul}) {
    check_sum_lanes<TypeParam, double>(n, 41 + static_cast<unsigned>(n));
    check_sum_lanes<TypeParam, float>(n, 43 + static_cast<unsigned>(n));
  }
}

TYPED_TEST(DevicePaths, ChunkSumLanesKeepNegativeZero) {
  // One whole chunk of -0.0 terms sums to -0.0 on the host (the first term starts each lane); the lanes'
  // identity is -0.0, not +0.0, so they agree. (A partial chunk is padded with +0.0 and sums to +0.0 on both.)
  const std::vector<double> x(64, -0.0);
  SumWorkspace<TypeParam> ws(x.size());
  {
    terse::Impl::DevicePathsOnHost lanes;
    deterministic_sum(TypeParam(), to_device<TypeParam>(x), x.size(), ws);
  }
  SumWorkspace<ReferenceHost> ws_ref(x.size());
  deterministic_sum(ReferenceHost(), to_device<ReferenceHost>(x), x.size(), ws_ref);
  EXPECT_EQ(bits_of(ws.host_result()), bits_of(ws_ref.host_result()));
  EXPECT_TRUE(std::signbit(ws_ref.host_result()));
}

// ---- fused compressions ----------------------------------------------------------------------------------------

template <class ExecSpace, class T>
void check_scaled_sign_lanes(std::size_t n, unsigned seed) {
  const auto x = finite_mixed<T>(n, seed);
  SignMessage<ReferenceHost, T> ref(n);
  SumWorkspace<ReferenceHost> ws_ref(n);
  scaled_sign_compress(ReferenceHost(), to_device<ReferenceHost>(x), ref, ws_ref);
  SignMessage<ExecSpace, T> msg(n);
  SumWorkspace<ExecSpace> ws(n);
  {
    terse::Impl::DevicePathsOnHost lanes;
    scaled_sign_compress(ExecSpace(), to_device<ExecSpace>(x), msg, ws);
  }
  ASSERT_EQ(to_host(msg.words), reference_pack(x)) << "n = " << n;
  EXPECT_EQ(bits_of(scalar_of(msg.scale)), bits_of(scalar_of(ref.scale))) << "n = " << n;
}

TYPED_TEST(DevicePaths, ScaledSignLanesAreBitwiseTheHostPass) {
  for (auto n : sizes) {
    check_scaled_sign_lanes<TypeParam, float>(n, 51 + static_cast<unsigned>(n));
    check_scaled_sign_lanes<TypeParam, double>(n, 53 + static_cast<unsigned>(n));
  }
}

TYPED_TEST(DevicePaths, StochasticSignLanesAreBitwiseTheHostPass) {
  const CounterRng rng{77, static_cast<std::uint32_t>(RandomStream::stochastic_sign)};
  for (auto n : sizes) {
    const auto x = gaussian<float>(n, 61 + static_cast<unsigned>(n));
    SignMessage<ReferenceHost, float> ref(n);
    SumWorkspace<ReferenceHost> ws_ref(n);
    stochastic_sign_compress(ReferenceHost(), to_device<ReferenceHost>(x), rng, 5, 3, ref, ws_ref);
    SignMessage<TypeParam, float> msg(n);
    SumWorkspace<TypeParam> ws(n);
    {
      terse::Impl::DevicePathsOnHost lanes;
      stochastic_sign_compress(TypeParam(), to_device<TypeParam>(x), rng, 5, 3, msg, ws);
    }
    ASSERT_EQ(to_host(msg.words), to_host(ref.words)) << "n = " << n;
    EXPECT_EQ(bits_of(scalar_of(msg.scale)), bits_of(scalar_of(ref.scale))) << "n = " << n;
  }
  // The all-zero vector: every sign +1 (norm 0), on both paths.
  const std::vector<float> zeros(200, 0.0f);
  SignMessage<TypeParam, float> msg(zeros.size());
  SumWorkspace<TypeParam> ws(zeros.size());
  {
    terse::Impl::DevicePathsOnHost lanes;
    stochastic_sign_compress(TypeParam(), to_device<TypeParam>(zeros), rng, 1, 0, msg, ws);
  }
  EXPECT_EQ(to_host(msg.words), reference_pack(zeros));
}

TYPED_TEST(DevicePaths, ErrorFeedbackAndMarkovLanesFollowTheHostRecursionsBitwise) {
  const std::size_t n = 4099;
  ErrorFeedback<ReferenceHost, float> ef_ref(n);
  ErrorFeedback<TypeParam, float> ef(n);
  MarkovCompressor<ReferenceHost, double> mk_ref(n);
  MarkovCompressor<TypeParam, double> mk(n);
  for (int t = 0; t < 5; ++t) {
    const auto g = gaussian<float>(n, 300 + t, std::pow(0.5, t));
    const auto w = gaussian<double>(n, 400 + t);
    const auto& a_ref = ef_ref.compress(ReferenceHost(), to_device<ReferenceHost>(g));
    const auto& b_ref = mk_ref.compress(ReferenceHost(), to_device<ReferenceHost>(w));
    terse::Impl::DevicePathsOnHost lanes;
    const auto& a = ef.compress(TypeParam(), to_device<TypeParam>(g));
    const auto& b = mk.compress(TypeParam(), to_device<TypeParam>(w));
    ASSERT_EQ(to_host(a.words), to_host(a_ref.words)) << "t = " << t;
    ASSERT_EQ(bits_of(scalar_of(a.scale)), bits_of(scalar_of(a_ref.scale))) << "t = " << t;
    ASSERT_EQ(to_host(b.words), to_host(b_ref.words)) << "t = " << t;
    ASSERT_EQ(bits_of(scalar_of(b.scale)), bits_of(scalar_of(b_ref.scale))) << "t = " << t;
  }
  expect_same_bits(to_host(ef.error(TypeParam())), to_host(ef_ref.error(ReferenceHost())), "error feedback memory");
  expect_same_bits(to_host(mk.estimate(TypeParam())), to_host(mk_ref.estimate(ReferenceHost())), "Markov estimate");
}

TYPED_TEST(DevicePaths, ShardedBlocksLanesAreBitwiseTheHostPass) {
  // markov_sign_block and error_feedback_sign_block (the sharded server's fused passes) on a block that is a
  // subview starting on a word boundary.
  const std::size_t n = 70001, off = 640, len = 50001;
  const auto w = gaussian<float>(n, 501), w_hat = gaussian<float>(n, 502), g = gaussian<float>(n, 503);
  const auto e0 = gaussian<float>(n, 504, 0.1);
  const auto block = std::make_pair(off, off + len);
  auto run = [&](auto space, bool lanes, std::vector<sign_word_t>& mw, double& msum, std::vector<sign_word_t>& ew,
                 double& esum, std::vector<float>& e_out) {
    using S = decltype(space);
    using Mem = typename S::memory_space;
    const auto dw = to_device<S>(w), dh = to_device<S>(w_hat), dg = to_device<S>(g);
    auto de = to_device<S>(e0);
    Kokkos::View<sign_word_t*, Mem> words("words", packed_words(len));
    SumWorkspace<S> ws(len);
    terse::Impl::DevicePathsOnHost path(lanes);
    markov_sign_block(space, Kokkos::subview(dw, block), Kokkos::subview(dh, block), words, ws);
    mw = to_host(words);
    msum = ws.host_result();
    error_feedback_sign_block(space, Kokkos::subview(dg, block), Kokkos::subview(de, block), words, ws);
    ew = to_host(words);
    esum = ws.host_result();
    e_out = to_host(de);
  };
  std::vector<sign_word_t> mw_ref, ew_ref, mw, ew;
  double msum_ref = 0, esum_ref = 0, msum = 0, esum = 0;
  std::vector<float> e_ref, e;
  run(ReferenceHost(), false, mw_ref, msum_ref, ew_ref, esum_ref, e_ref);
  run(TypeParam(), true, mw, msum, ew, esum, e);
  EXPECT_EQ(mw, mw_ref);
  EXPECT_EQ(ew, ew_ref);
  EXPECT_EQ(bits_of(msum), bits_of(msum_ref));
  EXPECT_EQ(bits_of(esum), bits_of(esum_ref));
  expect_same_bits(e, e_ref, "error block (p = g + e)");
  // And against the definitions: sign(w - w_hat) of the block.
  std::vector<float> diff(len);
  for (std::size_t i = 0; i < len; ++i) diff[i] = w[off + i] - w_hat[off + i];
  EXPECT_EQ(mw, reference_pack(diff));
}

// ---- majority vote over 32 or more voters --------------------------------------------------------------------

TYPED_TEST(DevicePaths, MajorityVoteLanesMatchScalarCounts) {
  for (int voters : {32, 33, 64, 100, 257}) {
    const std::size_t n = 1000 + 37 * static_cast<std::size_t>(voters);
    const std::size_t nw = packed_words(n);
    std::mt19937_64 gen(900 + voters);
    std::bernoulli_distribution plus(0.5);
    std::vector<std::vector<std::uint64_t>> signs(voters, std::vector<std::uint64_t>(nw, 0));
    std::vector<std::uint64_t> vote(nw, 0), tie(nw, 0);
    for (std::size_t i = 0; i < n; ++i) {
      int count = 0;
      for (int v = 0; v < voters; ++v)
        if (plus(gen)) signs[v][i / 64] |= std::uint64_t(1) << (i % 64), ++count;
      if (2 * count > voters) vote[i / 64] |= std::uint64_t(1) << (i % 64);
      if (2 * count == voters) tie[i / 64] |= std::uint64_t(1) << (i % 64);
    }
    using Mem = typename TypeParam::memory_space;
    Kokkos::View<sign_word_t**, Kokkos::LayoutRight, Mem> d_signs("signs", voters, nw);
    auto h = Kokkos::create_mirror_view(d_signs);
    for (int v = 0; v < voters; ++v)
      for (std::size_t j = 0; j < nw; ++j) h(v, j) = signs[v][j];
    Kokkos::deep_copy(d_signs, h);
    Kokkos::View<sign_word_t*, Mem> d_vote("vote", nw), d_tie("tie", nw);
    Kokkos::deep_copy(d_vote, ~sign_word_t(0));
    Kokkos::deep_copy(d_tie, ~sign_word_t(0));
    {
      terse::Impl::DevicePathsOnHost lanes;
      majority_vote(TypeParam(), d_signs, d_vote, d_tie);
    }
    EXPECT_EQ(to_host(d_vote), vote) << "W = " << voters;
    EXPECT_EQ(to_host(d_tie), tie) << "W = " << voters;
  }
}

// ---- what only a device exercises: the lanes' join and teams of more than one word ---------------------------
//
// On host backends the vector lanes run one after another into one accumulator, so the reducer's join and the
// split of a league over team threads of more than one word never run there. These two tests cover them.

TEST(DevicePathsReducer, LanesJoinedInAnyOrderGiveTheSequentialAccumulator) {
  // Each of the 8 lanes gets its own accumulator from init(), adds its lane sum to its slot and its bits;
  // the lanes are then joined as CUDA's shuffle-down does (strides 4, 2, 1) and in random orders. Every order
  // must give, bit for bit, the host's single accumulator (lanes one after another).
  using terse::Impl::WordPartial;
  using terse::Impl::WordPartialReducer;
  using terse::Impl::word_lanes;
  std::mt19937_64 gen(2024);
  std::normal_distribution<float> normal;
  for (int trial = 0; trial < 200; ++trial) {
    float lane_sum[word_lanes];
    std::uint64_t lane_bits[word_lanes];
    for (int u = 0; u < word_lanes; ++u) {
      const int kind = static_cast<int>(gen() % 5);
      lane_sum[u] = kind == 0 ? -0.0f : kind == 1 ? 0.0f : kind == 2 ? 1e-42f * normal(gen) : normal(gen);
      lane_bits[u] = (gen() & 0x0101010101010101ull) << u;  // the bits of lane u's coordinates u, u+8, ...
    }
    WordPartial<float> seq{};
    WordPartialReducer<float>(seq).init(seq);
    for (int u = 0; u < word_lanes; ++u) {
      seq.bits |= lane_bits[u];
      seq.add_to_slot(u, lane_sum[u]);
    }
    const auto lanes = [&] {
      std::vector<WordPartial<float>> a(word_lanes);
      for (int u = 0; u < word_lanes; ++u) {
        WordPartialReducer<float>(a[u]).init(a[u]);
        a[u].bits |= lane_bits[u];
        a[u].add_to_slot(u, lane_sum[u]);
      }
      return a;
    };
    const auto expect_same = [&](const WordPartial<float>& got, const char* order) {
      ASSERT_EQ(got.bits, seq.bits) << order << ", trial " << trial;
      for (int u = 0; u < word_lanes; ++u)
        ASSERT_EQ(bits_of(got.acc[u]), bits_of(seq.acc[u])) << order << ", slot " << u << ", trial " << trial;
    };
    auto tree = lanes();
    WordPartialReducer<float> r(tree[0]);
    for (int stride = word_lanes / 2; stride >= 1; stride /= 2)
      for (int u = 0; u < stride; ++u) r.join(tree[u], tree[u + stride]);
    expect_same(tree[0], "shuffle-down tree");
    auto any = lanes();
    std::vector<int> order(word_lanes);
    for (int u = 0; u < word_lanes; ++u) order[u] = u;
    std::shuffle(order.begin(), order.end(), gen);
    WordPartial<float> acc = any[order[0]];
    for (int i = 1; i < word_lanes; ++i) r.join(acc, any[order[i]]);
    expect_same(acc, "random order");
  }
}

TEST(DevicePathsTeams, EveryWordBelongsToExactlyOneTeamThread) {
  // team_words() splits the league as a device runs it (32 words per team); the host runs teams of 1.
  for (int team : {1, 2, 3, 8, 32}) {
    for (std::size_t words : {0ul, 1ul, 31ul, 32ul, 33ul, 100ul, 1000ul, 4097ul}) {
      const std::size_t league = (words + team - 1) / team;
      std::vector<int> seen(words, 0);
      for (std::size_t t = 0; t < league; ++t) {
        const auto tw = terse::Impl::team_words(static_cast<int>(t), team, words);
        ASSERT_EQ(tw.first, t * team) << "team " << t;
        ASSERT_GE(tw.count, 1);
        ASSERT_LE(tw.count, team);
        for (int i = 0; i < tw.count; ++i) ++seen.at(tw.first + i);
      }
      for (std::size_t w = 0; w < words; ++w) ASSERT_EQ(seen[w], 1) << "word " << w << ", team " << team;
      EXPECT_EQ(terse::Impl::team_words(static_cast<int>(league), team, words).count, 0);
    }
  }
}

TEST(DevicePathsHook, RestoresTheHostPathsWhenItEnds) {
  EXPECT_FALSE(terse::Impl::device_paths_on_host());
  {
    terse::Impl::DevicePathsOnHost on;
    EXPECT_TRUE(terse::Impl::device_paths_on_host());
    {
      terse::Impl::DevicePathsOnHost off(false);
      EXPECT_FALSE(terse::Impl::device_paths_on_host());
    }
    EXPECT_TRUE(terse::Impl::device_paths_on_host());
  }
  EXPECT_FALSE(terse::Impl::device_paths_on_host());
}

}  // namespace
