// The bytes terse says it hands MPI, counted by MPI itself: this file interposes the collectives terse calls
// (MPI_Allreduce, MPI_Alltoall, MPI_Alltoallv, MPI_Allgather, MPI_Allgatherv) through the MPI profiling
// interface (PMPI) and, while a test switches the count on, adds up what each call hands MPI for other ranks
// (the send counts to the other ranks; P - 1 copies of an allgather's buffer; an allreduce's buffer), filed
// under the Kokkos region the call is made in (Kokkos Tools' region callbacks): terse::communicate and
// terse::update are the algorithm's, terse::monitor the history's, anything else the run's control (set-up,
// the stop flag). For every algorithm the algorithm's count must be RunSummary::algorithm_bytes (what the
// history's bytes_sent sums) and the monitor's RunSummary::monitoring_bytes: a collective the exchanges do
// not count, or count wrong, fails it.
#include "terse_MpiTestSupport.hpp"

#include <Kokkos_Core.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace {

struct Count {
  bool on = false;
  std::vector<std::string> regions;
  std::uint64_t algorithm = 0, monitor = 0, control = 0;
};
Count& count() {
  static Count c;
  return c;
}

void on_push(const char* name) { count().regions.emplace_back(name); }
void on_pop() {
  if (!count().regions.empty()) count().regions.pop_back();
}

void add(std::uint64_t bytes) {
  Count& c = count();
  if (!c.on || bytes == 0) return;
  bool monitor = false, algorithm = false;
  for (const auto& r : c.regions) {
    monitor = monitor || r == "terse::monitor";
    algorithm = algorithm || r == "terse::communicate" || r == "terse::update";
  }
  (monitor ? c.monitor : algorithm ? c.algorithm : c.control) += bytes;
}

std::uint64_t type_size(MPI_Datatype t) {
  int s = 0;
  PMPI_Type_size(t, &s);
  return static_cast<std::uint64_t>(s);
}
int comm_size(MPI_Comm c) {
  int s = 1;
  PMPI_Comm_size(c, &s);
  return s;
}
int comm_rank(MPI_Comm c) {
  int r = 0;
  PMPI_Comm_rank(c, &r);
  return r;
}

}  // namespace

extern "C" {

int MPI_Allreduce(const void* sendbuf, void* recvbuf, int count, MPI_Datatype type, MPI_Op op, MPI_Comm comm) {
  if (comm_size(comm) > 1) add(static_cast<std::uint64_t>(count) * type_size(type));
  return PMPI_Allreduce(sendbuf, recvbuf, count, type, op, comm);
}

int MPI_Alltoall(const void* sendbuf, int sendcount, MPI_Datatype sendtype, void* recvbuf, int recvcount,
                 MPI_Datatype recvtype, MPI_Comm comm) {
  add(static_cast<std::uint64_t>(comm_size(comm) - 1) * sendcount * type_size(sendtype));
  return PMPI_Alltoall(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype, comm);
}

int MPI_Alltoallv(const void* sendbuf, const int sendcounts[], const int sdispls[], MPI_Datatype sendtype,
                  void* recvbuf, const int recvcounts[], const int rdispls[], MPI_Datatype recvtype, MPI_Comm comm) {
  const int P = comm_size(comm), me = comm_rank(comm);
  std::uint64_t n = 0;
  for (int r = 0; r < P; ++r)
    if (r != me) n += static_cast<std::uint64_t>(sendcounts[r]);
  add(n * type_size(sendtype));
  return PMPI_Alltoallv(sendbuf, sendcounts, sdispls, sendtype, recvbuf, recvcounts, rdispls, recvtype, comm);
}

int MPI_Allgather(const void* sendbuf, int sendcount, MPI_Datatype sendtype, void* recvbuf, int recvcount,
                  MPI_Datatype recvtype, MPI_Comm comm) {
  add(static_cast<std::uint64_t>(comm_size(comm) - 1) * sendcount * type_size(sendtype));
  return PMPI_Allgather(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype, comm);
}

int MPI_Allgatherv(const void* sendbuf, int sendcount, MPI_Datatype sendtype, void* recvbuf, const int recvcounts[],
                   const int displs[], MPI_Datatype recvtype, MPI_Comm comm) {
  add(static_cast<std::uint64_t>(comm_size(comm) - 1) * sendcount * type_size(sendtype));
  return PMPI_Allgatherv(sendbuf, sendcount, sendtype, recvbuf, recvcounts, displs, recvtype, comm);
}

}  // extern "C"

namespace {

using namespace terse;
using namespace terse::test_support;

/// Counts while it lives (one at a time).
struct Counting {
  Counting() {
    count() = Count{};
    count().on = true;
    Kokkos::Tools::Experimental::set_push_region_callback(&on_push);
    Kokkos::Tools::Experimental::set_pop_region_callback(&on_pop);
  }
  ~Counting() {
    count().on = false;
    Kokkos::Tools::Experimental::set_push_region_callback(nullptr);
    Kokkos::Tools::Experimental::set_pop_region_callback(nullptr);
  }
};

TEST(RunBytes, TerseCountsWhatItHandsMpi) {
  const int P = size_of();
  const std::vector<std::string> decks = {
      "kind: sgd, lr: 0.1",
      "kind: majority_vote, lr: 0.01",
      "kind: majority_vote, lr: 0.01, lr_schedule: adaptive, lipschitz: 300, accept: descent",
      "kind: majority_vote, lr: 0.01, vote: samples",
      "kind: stochastic_sign, lr: 0.01",
      "kind: ef_signsgd, lr: 0.1",
      "kind: amsgrad, lr: 0.01",
      "kind: amsgrad_naive, lr: 0.01",
      "kind: amsgrad_ef, lr: 0.01",
      "kind: cd_adam, lr: 0.01",
      "kind: cd_adam, lr: 0.01, compressor: top_k, broadcast: mean, estimate_start: gradient",
      "kind: ef21, lr: 0.1, k_ratio: 0.05",
      "kind: ef21, lr: 0.1, compressor: scaled_sign, estimate_start: gradient",
      "kind: adagrad, lr: 0.1",
      "kind: local_sgd, lr: 0.1, sync_period: 3",
      "kind: local_adaalter, lr: 0.1, sync_period: 3",
      "kind: onebit_adam, lr: 0.01, warmup_steps: 3",
      "kind: qsgd, lr: 0.1, levels: 4, bucket: 100",
      "kind: ef_qsgd, lr: 0.1",
      "kind: terngrad, lr: 0.1, bucket: 64",
  };
  for (int per_rank : {1, 2}) {
    for (const auto& o : decks) {
      SCOPED_TRACE("{" + o + "} with " + std::to_string(per_rank) + " workers on each of " + std::to_string(P) +
                   " ranks");
      const Deck deck = parse_deck_string("problem: {kind: logistic, data: '" + files().svm_wide + "'}\n"
                                          "optimizer: {" + o + "}\n"
                                          "run: {iterations: 7, batch: 4, seed: 2, log_every: 2}\n"
                                          "workers: {per_rank: " + std::to_string(per_rank) + "}\n",
                                          "test:count");
      RunSummary s;
      Count c;
      {
        Counting counting;
        s = run_deck(MPI_COMM_WORLD, deck, quiet());
        c = count();
      }
      EXPECT_EQ(c.algorithm, s.algorithm_bytes);
      EXPECT_EQ(c.monitor, s.monitoring_bytes);
      if (P > 1) EXPECT_GT(s.algorithm_bytes, 0u);
      // The history's bytes_sent is the algorithm's bytes summed over the ranks.
      unsigned long long mine = c.algorithm, all = 0;
      MPI_Allreduce(&mine, &all, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
      EXPECT_EQ(s.rows.back().bytes_sent, static_cast<double>(all));
    }
  }
}

}  // namespace
