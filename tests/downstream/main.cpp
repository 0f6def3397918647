// Downstream use of the installed kernels: pack the signs of a vector with terse::sign_pack and majority-vote
// three packed vectors with terse::majority_vote, on the default execution space, and check both against
// plain loops. Exit status 0 when they agree.
#include <terse_Sign.hpp>
#include <terse_Version.hpp>
#include <terse_Vote.hpp>

#include <Kokkos_Core.hpp>

#include <cstdio>

int main(int argc, char* argv[]) {
  int failures = 0;
  Kokkos::initialize(argc, argv);
  {
    using Exec = Kokkos::DefaultExecutionSpace;
    const std::size_t n = 1000, words = terse::packed_words(n);
    Kokkos::View<float**, Kokkos::LayoutRight> x("x", 3, n);
    auto xh = Kokkos::create_mirror_view(x);
    for (std::size_t r = 0; r < 3; ++r)
      for (std::size_t i = 0; i < n; ++i) xh(r, i) = ((i * (r + 3) + r) % 7 < 3) ? -1.0f - i : 0.5f * i;
    Kokkos::deep_copy(x, xh);
    Kokkos::View<terse::sign_word_t**, Kokkos::LayoutRight> packed("packed", 3, words);
    Exec space;
    for (std::size_t r = 0; r < 3; ++r)
      terse::sign_pack(space, Kokkos::subview(x, r, Kokkos::ALL), Kokkos::subview(packed, r, Kokkos::ALL));
    Kokkos::View<terse::sign_word_t*> vote("vote", words), tie("tie", words);
    terse::majority_vote(space, packed, vote, tie);
    auto ph = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), packed);
    auto vh = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), vote);
    for (std::size_t i = 0; i < n; ++i) {
      int plus = 0;
      for (std::size_t r = 0; r < 3; ++r) {
        const bool bit = (ph(r, i / 64) >> (i % 64)) & 1u;
        if (bit != (xh(r, i) >= 0)) ++failures;
        plus += xh(r, i) >= 0;
      }
      if (((vh(i / 64) >> (i % 64)) & 1u) != static_cast<unsigned>(plus >= 2)) ++failures;
    }
    std::printf("downstream: terse %s, Kokkos %s: sign_pack and majority_vote on %zu coordinates: %d mismatches\n",
                TERSE_VERSION_STRING, Exec::name(), n, failures);
  }
  Kokkos::finalize();
  return failures == 0 ? 0 : 1;
}
