// draws.cpp: what terse draws, printed for tests/random/replay.py, which recomputes every value from
// docs/random.md alone (a separate implementation in Python, without terse's headers) and compares.
// One JSON object per line: raw draws with their conversions, a stochastic sign message, a rand-k selection, QSGD
// and TernGrad messages.
#include <terse_Compress.hpp>
#include <terse_Qsgd.hpp>
#include <terse_Random.hpp>

#include <Kokkos_Core.hpp>

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace {

using Exec = Kokkos::DefaultExecutionSpace;

void raw(std::uint64_t seed, std::uint32_t stream, std::uint64_t k, std::uint32_t w, std::uint64_t i) {
  const terse::CounterRng rng{seed, stream};
  const terse::Philox4x32 r = rng.draw(k, w, i);
  std::printf("{\"kind\": \"raw\", \"seed\": %" PRIu64 ", \"stream\": %u, \"iteration\": %" PRIu64 ", \"worker\": %u, "
              "\"index\": %" PRIu64 ", \"v\": [%u, %u, %u, %u], \"uniform\": %.17g, \"uniform_lane\": %.17g, "
              "\"normal\": %.17g, \"below_1000\": %u, \"below_7\": %u}\n",
              seed, stream, k, w, i, r.v[0], r.v[1], r.v[2], r.v[3], rng.uniform(k, w, i), rng.uniform_lane(k, w, i),
              rng.normal(k, w, i), rng.below(1000, k, w, i), rng.below(7, k, w, i));
}

/// The vector the message tests compress: x_i = sin(0.37 i) (1 + i mod 7), in float.
std::vector<float> vector_x(std::size_t n) {
  std::vector<float> x(n);
  for (std::size_t i = 0; i < n; ++i) x[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i)) * (1 + i % 7));
  return x;
}

Kokkos::View<float*, Exec::memory_space> upload(const std::vector<float>& x) {
  Kokkos::View<float*, Exec::memory_space> v("x", x.size());
  auto h = Kokkos::create_mirror_view(v);
  for (std::size_t i = 0; i < x.size(); ++i) h(i) = x[i];
  Kokkos::deep_copy(v, h);
  return v;
}

void stochastic_sign(std::uint64_t seed, std::uint64_t k, std::uint32_t w, std::size_t n) {
  const terse::CounterRng rng{seed, static_cast<std::uint32_t>(terse::RandomStream::stochastic_sign)};
  terse::SignMessage<Exec, float> msg(n);
  terse::SumWorkspace<Exec> ws(n);
  terse::stochastic_sign_compress(Exec(), upload(vector_x(n)), rng, k, w, msg, ws);
  auto words = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), msg.words);
  float scale = 0;
  Kokkos::deep_copy(scale, msg.scale);
  std::printf("{\"kind\": \"stochastic_sign\", \"seed\": %" PRIu64 ", \"iteration\": %" PRIu64 ", \"worker\": %u, "
              "\"n\": %zu, \"scale\": %.9g, \"words\": [",
              seed, k, w, n, static_cast<double>(scale));
  for (std::size_t q = 0; q < words.extent(0); ++q) std::printf("%s\"%016" PRIx64 "\"", q ? ", " : "", words(q));
  std::printf("]}\n");
}

void rand_k(std::uint64_t seed, std::uint64_t k, std::uint32_t w, std::size_t n, std::size_t count) {
  const terse::CounterRng rng{seed, static_cast<std::uint32_t>(terse::RandomStream::rand_k)};
  terse::TopKWorkspace<Exec, float> ws(n, count);
  const auto m = terse::rand_k_compress(Exec(), upload(vector_x(n)), rng, k, w, ws);
  auto idx = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), m.indices);
  auto val = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), m.values);
  std::printf("{\"kind\": \"rand_k\", \"seed\": %" PRIu64 ", \"iteration\": %" PRIu64 ", \"worker\": %u, \"n\": %zu, "
              "\"k\": %zu, \"indices\": [",
              seed, k, w, n, count);
  for (std::size_t j = 0; j < idx.extent(0); ++j) std::printf("%s%u", j ? ", " : "", idx(j));
  std::printf("], \"values\": [");
  for (std::size_t j = 0; j < val.extent(0); ++j) std::printf("%s%.9g", j ? ", " : "", static_cast<double>(val(j)));
  std::printf("]}\n");
}

void qsgd(const char* kind, std::uint64_t seed, std::uint64_t k, std::uint32_t w, std::size_t n, int levels,
          std::size_t bucket) {
  terse::CompressorOptions o;
  o.rng = terse::CounterRng{seed, static_cast<std::uint32_t>(terse::RandomStream::qsgd)};
  o.worker = w;
  o.levels = levels;
  o.bucket = bucket;
  const auto x = upload(vector_x(n));
  const bool tern = std::string(kind) == "terngrad";
  terse::QsgdMessage<Exec, float> m;
  terse::QsgdCompressor<Exec, float, terse::QsgdScale::l2> q(n, o);
  terse::QsgdCompressor<Exec, float, terse::QsgdScale::max> t(n, o);
  m = tern ? t.compress(Exec(), x, k) : q.compress(Exec(), x, k);
  auto planes = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), m.planes);
  auto norms = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), m.norms);
  std::printf("{\"kind\": \"%s\", \"seed\": %" PRIu64 ", \"iteration\": %" PRIu64 ", \"worker\": %u, \"n\": %zu, "
              "\"levels\": %d, \"bucket\": %zu, \"norms\": [",
              kind, seed, k, w, n, m.levels, m.bucket);
  for (std::size_t b = 0; b < norms.extent(0); ++b) std::printf("%s%.9g", b ? ", " : "", static_cast<double>(norms(b)));
  std::printf("], \"planes\": [");
  for (std::size_t p = 0; p < planes.extent(0); ++p) {
    std::printf("%s[", p ? ", " : "");
    for (std::size_t q2 = 0; q2 < planes.extent(1); ++q2) std::printf("%s\"%016" PRIx64 "\"", q2 ? ", " : "", planes(p, q2));
    std::printf("]");
  }
  std::printf("]}\n");
}

}  // namespace

int main(int argc, char* argv[]) {
  Kokkos::initialize(argc, argv);
  {
    // Every stream, small and large seeds, iterations and indices beyond 2^32, the server's draw index.
    for (std::uint32_t stream = 0; stream <= 7; ++stream) raw(1, stream, 0, 0, 0);
    raw(0, 0, 0, 0, 0);
    raw(3, 2, 17, 5, 123456);
    raw(0xDEADBEEFCAFEF00Dull, 5, 99, 0xFFFFFFFFu, 7);
    raw(42, 1, (std::uint64_t{1} << 32) + 3, 2, (std::uint64_t{1} << 33) + 11);
    raw(7, 3, 1000000, 63, 4095);
    raw(7, 6, 250, 1, 127);
    stochastic_sign(3, 11, 2, 300);
    stochastic_sign(0xABCDEF12345ull, 0, 0, 129);
    rand_k(3, 11, 2, 1000, 25);
    rand_k(9, 4, 0xFFFFFFFFu, 200, 50);
    qsgd("qsgd", 3, 11, 2, 300, 3, 128);
    qsgd("qsgd", 0xABCDEF12345ull, 0, 0, 129, 1, 1000);
    qsgd("qsgd", 5, 7, 1, 200, 16, 64);
    qsgd("terngrad", 3, 11, 2, 300, 1, 100);
  }
  Kokkos::finalize();
  return 0;
}
