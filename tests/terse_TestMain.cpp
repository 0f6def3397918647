// GoogleTest main for terse. Kokkos is initialised around the tests; with TERSE_TEST_WITH_MPI (the MPI
// test binary) MPI is initialised first, only rank 0 prints GoogleTest's normal output, every rank reports
// its own failures, and all ranks agree on the exit code. The unit-test binaries do not touch MPI.
#include <Kokkos_Core.hpp>
#include <gtest/gtest.h>
#if defined(TERSE_TEST_WITH_MPI)
#include <mpi.h>
#endif

#include <cstdio>
#include <cstdlib>

namespace {

#if defined(TERSE_TEST_WITH_MPI)
/// Prints failed assertions of non-zero ranks, prefixed with the rank (rank 0 keeps GoogleTest's printer).
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (r.failed())
      std::fprintf(stderr, "[rank %d] %s:%d: failure\n%s\n", rank_, r.file_name() ? r.file_name() : "?",
                   r.line_number(), r.summary());
  }

 private:
  int rank_;
};
#endif

}  // namespace

int main(int argc, char* argv[]) {
#if defined(TERSE_TEST_WITH_MPI)
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
#endif
  // Unit-test setting Kokkos asks for; also keeps its advice off stdout, where test discovery reads names.
  setenv("OMP_PROC_BIND", "false", /*overwrite=*/0);
  Kokkos::initialize(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  int status = 0;
#if defined(TERSE_TEST_WITH_MPI)
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(rank));
  }
  const int local = RUN_ALL_TESTS();
  MPI_Allreduce(&local, &status, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
#else
  status = RUN_ALL_TESTS();
#endif
  Kokkos::finalize();
#if defined(TERSE_TEST_WITH_MPI)
  MPI_Finalize();
#endif
  return status;
}
