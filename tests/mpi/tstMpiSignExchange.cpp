// MPI: every rank packs its own vector, the packed words travel with MPI_Allgather, and every rank checks
// what it received against a scalar reference of every other rank's signs, then votes and applies.
#include "../terse_TestReference.hpp"

#include <terse_Sign.hpp>
#include <terse_Vote.hpp>

#include <Kokkos_Core.hpp>
#include <gtest/gtest.h>
#include <mpi.h>

namespace {

using namespace terse;

struct Comm {
  int rank = 0, size = 1;
  Comm() {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
  }
};

TEST(MpiSignExchange, AllgatheredPackedSignsMatchEveryRanksReference) {
  using Exec = Kokkos::DefaultExecutionSpace;
  const Comm comm;
  const std::size_t n = 10000 + 13;  // not a multiple of 64
  const std::size_t nw = packed_words(n);

  const auto mine = test::mixed_values<float>(n, 100 + comm.rank);
  Kokkos::View<float*, Exec::memory_space> x("x", n);
  auto x_h = Kokkos::create_mirror_view(x);
  for (std::size_t i = 0; i < n; ++i) x_h(i) = mine[i];
  Kokkos::deep_copy(x, x_h);

  Kokkos::View<sign_word_t*, Exec::memory_space> words("words", nw);
  sign_pack(Exec(), x, words);
  auto words_h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), words);
  Kokkos::View<sign_word_t**, Kokkos::LayoutRight, Kokkos::HostSpace> all("all", comm.size, nw);
  ASSERT_EQ(MPI_Allgather(words_h.data(), static_cast<int>(nw), MPI_UINT64_T, all.data(), static_cast<int>(nw),
                          MPI_UINT64_T, MPI_COMM_WORLD),
            MPI_SUCCESS);

  std::vector<std::vector<std::uint64_t>> refs;
  for (int r = 0; r < comm.size; ++r) {
    refs.push_back(test::reference_pack(test::mixed_values<float>(n, 100 + r)));
    for (std::size_t j = 0; j < nw; ++j) ASSERT_EQ(all(r, j), refs[r][j]) << "from rank " << r << ", word " << j;
  }

  // Vote over the ranks and step: the result must be the same on every rank and match the scalar vote.
  auto all_d = Kokkos::create_mirror_view_and_copy(Exec::memory_space(), all);
  Kokkos::View<sign_word_t*, Exec::memory_space> vote("vote", nw), tie("tie", nw);
  majority_vote(Exec(), all_d, vote, tie);
  Kokkos::View<double*, Exec::memory_space> y("y", n);
  sign_apply_voted(Exec(), vote, tie, y, 0.5);
  auto y_h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), y);
  for (std::size_t i = 0; i < n; ++i) {
    int count = 0;
    for (int r = 0; r < comm.size; ++r) count += test::reference_bit(refs[r], i);
    const double s = (2 * count > comm.size) ? 1.0 : (2 * count < comm.size ? -1.0 : 0.0);
    ASSERT_EQ(y_h(i), -0.5 * s) << "coordinate " << i;
  }
  double local_sum = 0;
  for (std::size_t i = 0; i < n; ++i) local_sum += y_h(i) * double(i % 7 + 1);
  double min_sum = 0, max_sum = 0;
  MPI_Allreduce(&local_sum, &min_sum, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&local_sum, &max_sum, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  EXPECT_EQ(min_sum, max_sum) << "ranks disagree on the voted step";
}

}  // namespace
