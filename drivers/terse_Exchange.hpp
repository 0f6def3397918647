#pragma once
// terse_Exchange.hpp: the communication plan of the sign methods, with the server role sharded across
// ranks. Rank r serves the packed words [floor(r nw / P), floor((r+1) nw / P)) of every message.
//
//   uplink   MPI_Alltoallv: each rank sends slice r of each of its workers' packed signs to rank r, and
//            MPI_Allgather of the workers' scales (one value per worker);
//   server   rank r aggregates its slice over all W workers (majority vote, or the mean of scale * sign);
//   downlink MPI_Allgatherv of the aggregated slices (the vote bits, plus the tie mask when W is even).
//
// So a rank hands MPI about 2 (d/8) (P-1)/P bytes per iteration for one worker per rank, whatever P is,
// instead of 4 d bytes for an fp32 allreduce. Buffers live in host memory: a device backend's views are
// copied through host mirrors (no GPU-aware MPI assumed). Everything is allocated once, in the constructor.

#include <terse_Compat.hpp>
#include <terse_Sign.hpp>

#include <mpi.h>

#include <cstdint>
#include <vector>

namespace terse {

/// Words [begin, end) of nw that rank r of P serves.
struct WordSlice {
  std::size_t begin = 0, end = 0;
  std::size_t size() const { return end - begin; }
};
WordSlice server_slice(std::size_t nw, int P, int r);

class SignExchange {
 public:
  using Exec = Kokkos::DefaultExecutionSpace;
  using Mem = Exec::memory_space;
  using Words = Kokkos::View<sign_word_t*, Mem>;

  /// d coordinates, `local_workers` workers on this rank (the same on every rank), W = P * local_workers.
  SignExchange(MPI_Comm comm, std::size_t d, int local_workers);

  std::size_t dim() const { return d_; }
  std::size_t words() const { return nw_; }
  int workers() const { return W_; }
  const WordSlice& slice() const { return slice_; }

  /// The packed signs of local worker l (extent words()); fill them, then call vote().
  Words local_signs(int l) const { return Kokkos::subview(local_, l, Kokkos::ALL); }

  /// Uplink, sharded majority vote, downlink: on return vote_words()/tie_words() hold the full vote
  /// (ties only for even W). Collective.
  void vote(const Exec& space);

  Words vote_words() const { return vote_; }
  Words tie_words() const { return tie_; }

  /// Bytes this rank handed to MPI (sent) in the last vote(), and in total.
  std::uint64_t last_bytes_sent() const { return last_bytes_; }
  std::uint64_t total_bytes_sent() const { return total_bytes_; }

 private:
  MPI_Comm comm_;
  int rank_ = 0, P_ = 1, R_ = 1, W_ = 1;
  std::size_t d_ = 0, nw_ = 0;
  WordSlice slice_;
  std::vector<int> send_counts_, send_displs_, recv_counts_, recv_displs_, slice_counts_, slice_displs_;
  Kokkos::View<sign_word_t**, Kokkos::LayoutRight, Mem> local_;     // (R, nw)
  typename decltype(local_)::HostMirror local_h_;                    // the same memory on host backends
  Kokkos::View<sign_word_t*, Kokkos::HostSpace> send_h_;            // (R * nw), ordered by destination rank
  Kokkos::View<sign_word_t**, Kokkos::LayoutRight, Kokkos::HostSpace> recv_h_;  // (W, slice)
  Kokkos::View<sign_word_t**, Kokkos::LayoutRight, Mem> recv_;      // (W, slice) on the device
  Words vote_slice_, tie_slice_, vote_, tie_;
  Kokkos::View<sign_word_t*, Kokkos::HostSpace> vote_slice_h_, tie_slice_h_, vote_h_, tie_h_;
  std::uint64_t last_bytes_ = 0, total_bytes_ = 0;
};

}  // namespace terse
