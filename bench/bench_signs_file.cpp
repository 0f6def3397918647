// bench_signs_file.cpp: sign pack and unpack of a vector read from a file, for bench/numpy_compare.py, which
// writes the vector, times numpy's packbits/unpackbits on the same values and compares the packed bytes.
//
// usage: terse_bench_signs_file VECTOR.f32 PACKED.out [REPEATS]
//   VECTOR.f32: raw little-endian float32 values; PACKED.out receives terse's packed signs (little-endian
//   64-bit words = numpy.packbits(x >= 0, bitorder='little') bytes, padded to whole words).
// Prints one JSON object: n, threads, the median and minimum seconds of sign_pack and of sign_unpack (to +-1
// floats), each timed with fences on both sides, and whether unpacking gave back sign(x) exactly.
#include <terse_Compat.hpp>
#include <terse_Sign.hpp>

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  Kokkos::ScopeGuard guard(argc, argv);
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s VECTOR.f32 PACKED.out [REPEATS]\n", argv[0]);
    return 2;
  }
  const int repeats = argc > 3 ? std::max(1, std::atoi(argv[3])) : 20;
  using Exec = Kokkos::DefaultExecutionSpace;
  std::ifstream in(argv[1], std::ios::binary | std::ios::ate);
  if (!in) {
    std::fprintf(stderr, "%s: cannot open\n", argv[1]);
    return 2;
  }
  const std::size_t n = static_cast<std::size_t>(in.tellg()) / sizeof(float);
  in.seekg(0);
  Kokkos::View<float*, Kokkos::HostSpace> host("vector", n);
  in.read(reinterpret_cast<char*>(host.data()), static_cast<std::streamsize>(n * sizeof(float)));
  Kokkos::View<float*, Exec::memory_space> x("x", n), y("y", n);
  Kokkos::deep_copy(x, host);
  Kokkos::View<terse::sign_word_t*, Exec::memory_space> words("words", terse::packed_words(n));
  Exec space;
  const auto timed = [&](auto&& f) {
    std::vector<double> t;
    for (int r = 0; r < repeats + 1; ++r) {  // the first run warms the pages up and is not counted
      space.fence();
      Kokkos::Timer timer;
      f();
      space.fence();
      if (r > 0) t.push_back(timer.seconds());
    }
    std::sort(t.begin(), t.end());
    return std::make_pair(t[t.size() / 2], t.front());
  };
  const auto pack = timed([&] { terse::sign_pack(space, x, words); });
  const auto unpack = timed([&] { terse::sign_unpack(space, words, y); });
  auto words_h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), words);
  auto y_h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), y);
  bool exact = true;
  for (std::size_t i = 0; i < n && exact; ++i) exact = y_h(i) == (host(i) >= 0 || host(i) != host(i) ? 1.0f : -1.0f);
  std::ofstream out(argv[2], std::ios::binary);
  out.write(reinterpret_cast<const char*>(words_h.data()),
            static_cast<std::streamsize>(words_h.extent(0) * sizeof(terse::sign_word_t)));
  std::printf("{\"n\": %zu, \"threads\": %d, \"execution_space\": \"%s\", \"pack_median_s\": %.6e, \"pack_min_s\": %.6e, "
              "\"unpack_median_s\": %.6e, \"unpack_min_s\": %.6e, \"unpack_exact\": %s}\n",
              n, terse::compat::concurrency(space), Exec::name(), pack.first, pack.second, unpack.first, unpack.second,
              exact ? "true" : "false");
  return 0;
}
