#pragma once
// terse_Exchange.hpp: the MPI communication plans of `terse run`, with the server role sharded across ranks.
//
// Rank r of P serves the packed words [floor(r nw / P), floor((r+1) nw / P)) of every message, that is the
// coordinates [64 floor(r nw / P), min(64 floor((r+1) nw / P), d)) (its "slice"; slices start on word
// boundaries, and a rank's slice may be empty when P > nw).
//
//   SignExchange    sign messages (1 bit per coordinate, plus one fp32 scale per message when scaled):
//     uplink        MPI_Alltoallv: each rank sends slice r of each of its workers' packed signs to rank r;
//                   MPI_Allgather of the workers' scales (one value per worker);
//     vote          uplink, majority vote of the slice over all W workers, downlink of the vote bits (plus the
//                   tie mask when W is even) by MPI_Allgatherv: about 2 (d/8)(P-1)/P bytes per rank and
//                   iteration for one worker per rank and odd W (3 (d/8)(P-1)/P with the tie mask of an
//                   even W), whatever P is, instead of 4 d for an fp32 allreduce;
//     gather_words  MPI_Allgatherv of packed slices (the server's compressed downlink);
//     gather_values MPI_Allgatherv of fp32 slices (a mean sent back uncompressed).
//   SparseExchange  top-k messages (k pairs of a 32-bit index and an fp32 value):
//     uplink        MPI_Alltoall of the per-worker counts of each destination slice, then MPI_Alltoallv of
//                   the indices and the values: each pair goes to the rank that serves its coordinate;
//     gather_candidates  MPI_Allgatherv of each rank's local top-k of its slice, from which every rank selects
//                   the global top-k (the union of the slices' top-k holds it);
//     gather_drawn  MPI_Allgatherv of the values of a rand-k draw every rank makes alike (no indices).
//   allreduce_sum   MPI_Allreduce of an fp32 vector: the uncompressed baselines.
//
// What the server receives is ordered by worker (rank q's local workers are workers qR .. qR + R - 1), so an
// aggregate summed in that order does not depend on how workers map to ranks. Buffers pass through host
// mirrors (no GPU-aware MPI assumed; on host backends the mirrors are the views themselves); the execution
// space is fenced before MPI reads a buffer. Everything is allocated once, in the constructors. Every class
// counts the bytes it hands to MPI (sent to other ranks). The exchanges are templates on the execution space
// (BasicSignExchange<ExecSpace>, ...; SignExchange and SparseExchange are those of the default space),
// instantiated in terse_Exchange.cpp for every enabled backend; their host staging goes through one helper,
// StagedGather.

#include <impl/terse_Backends.hpp>
#include <terse_Compat.hpp>
#include <terse_Sign.hpp>

#include <mpi.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace terse {

/// Words [begin, end) of nw that rank r of P serves.
struct WordSlice {
  std::size_t begin = 0, end = 0;
  std::size_t size() const { return end - begin; }
};
WordSlice server_slice(std::size_t nw, int P, int r);

/// Coordinates [begin, end) of d that rank r of P serves (the words of server_slice, cut at d).
struct CoordSlice {
  std::size_t begin = 0, end = 0;
  std::size_t size() const { return end - begin; }
};
CoordSlice server_coords(std::size_t d, int P, int r);

/// Whether MPI needs host copies of views in the memory of execution space E (no GPU-aware MPI assumed).
template <class E>
inline constexpr bool staged_v = !Kokkos::SpaceAccessibility<Kokkos::HostSpace, typename E::memory_space>::accessible;

/// MPI_Allgatherv (or MPI_Iallgatherv) of T values from views in E's memory: directly on the views where MPI can
/// read them (host backends), through host buffers of the slice and of the whole otherwise. The blocking and the
/// chunked gathers of the exchanges are this one helper.
template <class E, class T>
class StagedGather {
 public:
  using View = Kokkos::View<T*, typename E::memory_space>;
  StagedGather() = default;
  /// slice: the largest count this rank sends; full: the gathered extent.
  StagedGather(std::size_t slice, std::size_t full, const std::string& label) {
    if constexpr (staged_v<E>) {  // nothing on host backends (not even empty views)
      slice_h_ = Kokkos::View<T*, Kokkos::HostSpace>(label + "_slice_h", slice);
      full_h_ = Kokkos::View<T*, Kokkos::HostSpace>(label + "_h", full);
    } else {
      (void)slice, (void)full, (void)label;
    }
  }
  /// Bytes the constructor allocates.
  static std::size_t bytes(std::size_t slice, std::size_t full) { return staged_v<E> ? (slice + full) * sizeof(T) : 0; }
  /// The gather of mine[lo, lo + n) into full (counts and displacements per rank, in T) on comm; request null:
  /// blocking, and full holds the result on return; otherwise complete the request, then call finish() for the
  /// ranges of full to bring back (device backends; nothing to do on host backends).
  void post(const E& space, const View& mine, std::size_t lo, std::size_t n, const View& full, const int* counts,
            const int* displs, MPI_Datatype type, MPI_Comm comm, MPI_Request* request) {
    if constexpr (!staged_v<E>) {
      space.fence();
      if (request) MPI_Iallgatherv(mine.data() + lo, static_cast<int>(n), type, full.data(), counts, displs, type, comm, request);
      else MPI_Allgatherv(mine.data() + lo, static_cast<int>(n), type, full.data(), counts, displs, type, comm);
    } else {
      const auto range = std::make_pair(lo, lo + n);
      Kokkos::deep_copy(space, Kokkos::subview(slice_h_, range), Kokkos::subview(mine, range));
      space.fence();
      if (request) {
        MPI_Iallgatherv(slice_h_.data() + lo, static_cast<int>(n), type, full_h_.data(), counts, displs, type, comm, request);
      } else {
        MPI_Allgatherv(slice_h_.data() + lo, static_cast<int>(n), type, full_h_.data(), counts, displs, type, comm);
        Kokkos::deep_copy(space, full, full_h_);
      }
    }
  }
  /// After a posted gather completed: full[begin, end) from the host buffer (device backends).
  void finish(const E& space, const View& full, std::size_t begin, std::size_t end) {
    if constexpr (staged_v<E>) {
      if (end > begin) {
        const auto range = std::make_pair(begin, end);
        Kokkos::deep_copy(space, Kokkos::subview(full, range), Kokkos::subview(full_h_, range));
      }
    } else {
      (void)space, (void)full, (void)begin, (void)end;
    }
  }

 private:
  Kokkos::View<T*, Kokkos::HostSpace> slice_h_, full_h_;
};

template <class ExecSpace = Kokkos::DefaultExecutionSpace>
class BasicSignExchange {
 public:
  using Exec = ExecSpace;
  using Mem = typename ExecSpace::memory_space;
  using Words = Kokkos::View<sign_word_t*, Mem>;

  /// The sizes of the buffers a BasicSignExchange allocates on rank `rank` of P: what the constructor allocates
  /// and what bytes() adds up, from one computation.
  struct Sizes {
    std::size_t d = 0, nw = 0, slice = 0, coords = 0;  // dimension, words, this rank's slice (words, coordinates)
    std::size_t R = 0, W = 0;
    std::size_t sign_rows = 0;   // R (or 0 without sign buffers): local signs, scales, send buffer
    std::size_t recv_rows = 0;   // W (or 0): the received slice and the scales
    std::size_t direct_rows = 0; // W for a direct vote, else 0: every worker's signs
    std::size_t vote_words = 0;  // nw when voting (else 0): vote and tie of the whole vector; their slices: slice
    bool value_gathers = false;  // not voting: the host staging of gather_values() (device backends)
    static Sizes of(std::size_t d, int R, int P, int rank, bool sign_buffers, bool voting);
    std::size_t bytes() const;
  };

  /// d coordinates, `local_workers` workers on this rank (the same on every rank), W = P * local_workers.
  /// sign_buffers = false: only the slices and gather_values() (for the fp32 and top-k wires; no sign buffers);
  /// voting = false: vote() is not called (no buffers for the vote: its result, ties, a direct vote).
  BasicSignExchange(MPI_Comm comm, std::size_t d, int local_workers, bool sign_buffers = true, bool voting = true);

  /// Bytes the constructor allocates on rank `rank` of P (device and host buffers).
  static std::size_t bytes(std::size_t d, int local_workers, int P, int rank, bool sign_buffers = true,
                           bool voting = true) {
    return Sizes::of(d, local_workers, P, rank, sign_buffers, voting).bytes();
  }

  std::size_t dim() const { return d_; }
  std::size_t words() const { return nw_; }
  int workers() const { return W_; }
  const WordSlice& slice() const { return slice_; }
  const CoordSlice& coords() const { return coords_; }

  /// The packed signs of local worker l (extent words()) and its message's scale; fill them, then call
  /// uplink() or vote().
  Words local_signs(int l) const { return Kokkos::subview(local_, l, Kokkos::ALL); }
  Kokkos::View<float, Mem> local_scale(int l) const { return Kokkos::subview(local_scales_, l); }

  /// Collective. On return received() holds every worker's signs of this rank's slice, (W, slice words),
  /// and, with_scales, received_scales() every worker's scale (W).
  void uplink(const Exec& space, bool with_scales);
  Kokkos::View<sign_word_t**, Kokkos::LayoutRight, Mem> received() const { return recv_; }
  Kokkos::View<float*, Mem> received_scales() const { return scales_; }

  /// Uplink, sharded majority vote, downlink: on return vote_words()/tie_words() hold the full vote
  /// (ties only for even W). Collective. When sending every local worker's signs to every other rank and
  /// voting on all d coordinates everywhere moves fewer bytes than the sharded vote ((P-1) R words against
  /// (P-1)/P (R + 1 + [W even]) words per word of d: P = 2 with W = 2), it does that instead (direct_vote()).
  void vote(const Exec& space);
  /// Whether vote() exchanges all signs directly instead of sharding the vote.
  static bool direct_vote(int P, int R) { return P > 1 && P * R < R + 1 + ((P * R) % 2 == 0 ? 1 : 0); }
  Words vote_words() const { return vote_; }
  Words tie_words() const { return tie_; }

  /// Collective: every rank's slice words (slice().size() of them in `slice_words`) into `full` (words()).
  void gather_words(const Exec& space, const Words& slice_words, const Words& full);
  /// Collective: every rank's slice values (coords().size()) into `full` (dim()).
  void gather_values(const Exec& space, const Kokkos::View<float*, Mem>& slice_values,
                     const Kokkos::View<float*, Mem>& full);

  // ---- The chunked exchange (run.exchange_chunk) ------------------------------------------------------------
  // Every rank's slice is cut into pieces of at most chunk_words() words; chunk j of an exchange is the j-th
  // piece of every slice (possibly empty where a slice is short), so that the server can aggregate a chunk as soon
  // as it is in and the workers can apply it as soon as it is back. The calls below are nonblocking collectives
  // (MPI_Ialltoallv, MPI_Iallgatherv) that every rank posts in the same order; at most kChunkSlots chunks are in
  // flight at once. They move the same bytes to the same places as the blocking calls: the receive buffers hold
  // chunk j's (W, piece) block at W j chunk_words() (with one chunk, received()'s layout).

  /// Pieces of at most `words` words per slice; 0 or at least the largest slice: one chunk (the blocking calls).
  void set_chunk_words(std::size_t words);
  std::size_t chunk_words() const { return chunk_words_; }
  std::size_t chunks() const { return chunks_; }
  static constexpr std::size_t kChunkSlots = 4;
  /// Words (global indices) of rank r's piece of chunk j.
  WordSlice piece(int r, std::size_t j) const;
  /// Its coordinates (the words cut at d).
  CoordSlice piece_coords(int r, std::size_t j) const;

  /// Collective (blocking): every worker's scale into received_scales(), as uplink(space, true) sends them.
  void exchange_scales(const Exec& space);
  /// Posts chunk j's uplink: the words of chunk j of local_signs(l), for every l, must be written (space is
  /// fenced). Chunk 0 starts the exchange's byte count (last_bytes_sent()).
  void post_uplink(const Exec& space, std::size_t j);
  /// Waits for chunk j's uplink; returns every worker's piece of this rank's slice, (W, piece(rank, j) words).
  Kokkos::View<sign_word_t**, Kokkos::LayoutRight, Mem, Kokkos::MemoryTraits<Kokkos::Unmanaged>> wait_uplink(
      const Exec& space, std::size_t j);
  /// Posts the gather of chunk j of `slice_words` (this rank's slice, slice().size() words) into `full` (words());
  /// `slot` 0 or 1: two gathers of one chunk may be in flight (the vote and its ties).
  void post_gather_words(const Exec& space, std::size_t j, const Words& slice_words, const Words& full, int slot);
  /// Posts the gather of chunk j of `slice_values` (coords().size()) into `full` (dim()).
  void post_gather_values(const Exec& space, std::size_t j, const Kokkos::View<float*, Mem>& slice_values,
                          const Kokkos::View<float*, Mem>& full);
  /// Waits for chunk j's gathers; on return their pieces of `full` hold every rank's values.
  void wait_gathers(const Exec& space, std::size_t j);
  /// The sharded vote of chunk j: waits for its uplink, votes on this rank's piece, posts the gathers of the vote
  /// (and of the ties when W is even) into vote_words()/tie_words() (wait_gathers(j) completes them). Not for
  /// direct_vote() layouts.
  void vote_chunk(const Exec& space, std::size_t j);
  /// Lets MPI progress the chunks in flight (Open MPI moves nonblocking collectives only inside MPI calls).
  void progress();

  /// Bytes this rank handed to MPI since the last uplink() began, and in total.
  std::uint64_t last_bytes_sent() const { return last_bytes_; }
  std::uint64_t total_bytes_sent() const { return total_bytes_; }

 private:
  void count(std::uint64_t bytes) {
    last_bytes_ += bytes;
    total_bytes_ += bytes;
  }

  MPI_Comm comm_;
  int rank_ = 0, P_ = 1, R_ = 1, W_ = 1;
  std::size_t d_ = 0, nw_ = 0;
  WordSlice slice_;
  CoordSlice coords_;
  std::vector<int> send_counts_, send_displs_, recv_counts_, recv_displs_, slice_counts_, slice_displs_,
      coord_counts_, coord_displs_;
  Kokkos::View<sign_word_t**, Kokkos::LayoutRight, Mem> local_;     // (R, nw)
  typename decltype(local_)::HostMirror local_h_;                    // the same memory on host backends
  Kokkos::View<float*, Mem> local_scales_;                           // (R)
  typename decltype(local_scales_)::HostMirror local_scales_h_;
  Kokkos::View<sign_word_t*, Kokkos::HostSpace> send_h_;            // (R * nw), ordered by destination rank
  Kokkos::View<sign_word_t**, Kokkos::LayoutRight, Mem> recv_;      // (W, slice)
  typename decltype(recv_)::HostMirror recv_h_;                      // the same memory on host backends
  Kokkos::View<sign_word_t**, Kokkos::LayoutRight, Mem> all_;       // (W, nw): direct_vote() only
  typename decltype(all_)::HostMirror all_h_;
  Kokkos::View<float*, Kokkos::HostSpace> scales_h_;                 // (W)
  Kokkos::View<float*, Mem> scales_;                                 // (W)
  Words vote_slice_, tie_slice_, vote_, tie_;
  StagedGather<Exec, sign_word_t> gather_words_[2];  // the word gathers (the vote, and its ties)
  StagedGather<Exec, float> gather_values_;
  std::uint64_t last_bytes_ = 0, total_bytes_ = 0;
  // The chunked exchange: the plan of each chunk in flight (MPI reads the counts until it completes).
  struct ChunkPlan {
    std::size_t chunk = 0;
    std::vector<int> send_counts, send_displs, recv_counts, recv_displs, gather_counts[2], gather_displs[2];
    MPI_Request up = MPI_REQUEST_NULL, gather[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
    bool live = false;  // posted (post_uplink) and not yet completed (wait_gathers)
    // What wait_gathers() copies back on staged backends: the full views and whether values (else words).
    Words full_words[2];
    Kokkos::View<float*, Mem> full_values;
  };
  ChunkPlan& plan(std::size_t j) { return plans_[j % kChunkSlots]; }
  std::size_t chunk_words_ = 0, chunks_ = 1;
  ChunkPlan plans_[kChunkSlots];
};

template <class ExecSpace = Kokkos::DefaultExecutionSpace>
class BasicSparseExchange {
 public:
  using Exec = ExecSpace;
  using Mem = typename ExecSpace::memory_space;
  using Indices = Kokkos::View<std::uint32_t*, Mem>;
  using Values = Kokkos::View<float*, Mem>;

  /// d coordinates, local_workers per rank, at most k pairs per message (and per slice in the downlink).
  BasicSparseExchange(MPI_Comm comm, std::size_t d, int local_workers, std::size_t k);
  /// Bytes the constructor allocates on rank `rank` of P (device and host buffers).
  static std::size_t bytes(std::size_t d, int local_workers, std::size_t k, int P, int rank);

  int workers() const { return W_; }
  const CoordSlice& coords() const { return coords_; }

  /// Collective. indices/values of local worker l: count pairs each, indices ascending (top-k outputs are).
  /// On return received_indices()/received_values() hold, worker by worker (w = 0 .. W-1, worker w's pairs
  /// at positions worker_offsets()[w] .. worker_offsets()[w+1] - 1), the pairs of this rank's slice, with
  /// indices relative to coords().begin.
  void uplink(const Exec& space, const std::vector<Indices>& indices, const std::vector<Values>& values);
  Indices received_indices() const { return recv_idx_; }
  Values received_values() const { return recv_val_; }
  const std::vector<std::size_t>& worker_offsets() const { return worker_offsets_; }

  /// Collective: this rank's candidates (count = candidate_count(rank) pairs, indices relative to its slice)
  /// into candidate_indices()/candidate_values() (global indices, ascending: ranks in order, each rank's in
  /// index order), candidates() of them in all.
  void gather_candidates(const Exec& space, const Indices& indices, const Values& values);
  std::size_t candidate_count(int rank) const;
  std::size_t candidates() const { return candidates_; }
  Indices candidate_indices() const { return cand_idx_; }
  Values candidate_values() const { return cand_val_; }

  /// Collective: every rank's values of a draw every rank knows (the server's rand-k message: rank r holds
  /// counts[r] of them, in `mine`) into `all` (k values, ranks in order). Only values travel.
  void gather_drawn(const Exec& space, const Values& mine, const std::vector<int>& counts, const Values& all);

  std::uint64_t total_bytes_sent() const { return total_bytes_; }

 private:
  MPI_Comm comm_;
  int rank_ = 0, P_ = 1, R_ = 1, W_ = 1;
  std::size_t d_ = 0, k_ = 0;
  Kokkos::View<float*, Kokkos::HostSpace> drawn_mine_h_, drawn_all_h_;
  std::vector<int> drawn_displs_;
  CoordSlice coords_;
  std::vector<CoordSlice> all_coords_;
  std::vector<int> send_counts_, send_displs_, recv_counts_, recv_displs_, cand_counts_, cand_displs_;
  std::vector<int> pair_counts_send_, pair_counts_recv_;  // (P * R): per destination, per local worker
  std::vector<std::size_t> worker_offsets_;
  std::vector<Kokkos::View<std::uint32_t*, Kokkos::HostSpace>> idx_h_;
  std::vector<Kokkos::View<float*, Kokkos::HostSpace>> val_h_;
  Kokkos::View<std::uint32_t*, Kokkos::HostSpace> send_idx_h_, recv_idx_h_, cand_idx_h_, my_idx_h_;
  Kokkos::View<float*, Kokkos::HostSpace> send_val_h_, recv_val_h_, cand_val_h_, my_val_h_;
  Indices recv_idx_, cand_idx_;
  Values recv_val_, cand_val_;
  std::size_t candidates_ = 0;
  std::uint64_t total_bytes_ = 0;
};

/// Values per MPI_Allreduce call of allreduce_sum on host backends (4 Mi fp32 values: 16 MiB).
inline constexpr int allreduce_chunk = 1 << 22;

/// Collective: v <- sum of v over the ranks of comm (MPI_Allreduce, fp32), through `host` (a host buffer of
/// v's extent; unused on host backends). Returns the bytes handed to MPI: the buffer, 4 n, when P > 1 (how
/// much of it crosses the network is up to the MPI library's algorithm), 0 on one rank.
template <class E>
std::uint64_t allreduce_sum(MPI_Comm comm, const E& space, const Kokkos::View<float*, typename E::memory_space>& v,
                            const Kokkos::View<float*, Kokkos::HostSpace>& host);

using SignExchange = BasicSignExchange<>;
using SparseExchange = BasicSparseExchange<>;

#define TERSE_EXCHANGE_EXTERN(E)                \
  extern template class BasicSignExchange<E>;   \
  extern template class BasicSparseExchange<E>; \
  extern template std::uint64_t allreduce_sum<E>(MPI_Comm, const E&, const Kokkos::View<float*, typename E::memory_space>&, \
                                                 const Kokkos::View<float*, Kokkos::HostSpace>&);
TERSE_FOR_EACH_BACKEND(TERSE_EXCHANGE_EXTERN)
#undef TERSE_EXCHANGE_EXTERN

}  // namespace terse
