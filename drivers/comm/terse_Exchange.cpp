#include "terse_Exchange.hpp"
#include "terse_Region.hpp"

#include <terse_Vote.hpp>

#include <algorithm>
#include <stdexcept>
#include <string>

namespace terse {

WordSlice server_slice(std::size_t nw, int P, int r) {
  return WordSlice{nw * static_cast<std::size_t>(r) / static_cast<std::size_t>(P),
                   nw * static_cast<std::size_t>(r + 1) / static_cast<std::size_t>(P)};
}

CoordSlice server_coords(std::size_t d, int P, int r) {
  const WordSlice s = server_slice(packed_words(d), P, r);
  return CoordSlice{std::min(d, s.begin * sign_word_bits), std::min(d, s.end * sign_word_bits)};
}

namespace {
/// A host view of the same memory when V lives on the host, else a new host allocation.
template <class V>
auto host_buffer(const V& v) {
  return Kokkos::create_mirror_view(Kokkos::HostSpace(), v);
}
}  // namespace

// ------------------------------------------------------------------------------------------------------------
// SignExchange
// ------------------------------------------------------------------------------------------------------------

template <class E>
BasicSignExchange<E>::BasicSignExchange(MPI_Comm comm, std::size_t d, int local_workers, bool sign_buffers, bool voting)
    : comm_(comm), R_(local_workers), d_(d), nw_(packed_words(d)) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &P_);
  W_ = P_ * R_;
  slice_ = server_slice(nw_, P_, rank_);
  coords_ = server_coords(d_, P_, rank_);
  send_counts_.resize(P_);
  send_displs_.resize(P_);
  recv_counts_.resize(P_);
  recv_displs_.resize(P_);
  slice_counts_.resize(P_);
  slice_displs_.resize(P_);
  coord_counts_.resize(P_);
  coord_displs_.resize(P_);
  int offset = 0;
  for (int r = 0; r < P_; ++r) {
    const WordSlice s = server_slice(nw_, P_, r);
    const CoordSlice c = server_coords(d_, P_, r);
    send_counts_[r] = static_cast<int>(R_ * s.size());
    send_displs_[r] = offset;
    offset += send_counts_[r];
    recv_counts_[r] = static_cast<int>(R_ * slice_.size());
    recv_displs_[r] = static_cast<int>(r * R_ * slice_.size());
    slice_counts_[r] = static_cast<int>(s.size());
    slice_displs_[r] = static_cast<int>(s.begin);
    coord_counts_[r] = static_cast<int>(c.size());
    coord_displs_[r] = static_cast<int>(c.begin);
  }
  const Sizes z = Sizes::of(d, R_, P_, rank_, sign_buffers, voting);  // what bytes() counts
  local_ = decltype(local_)("terse::exchange::local_signs", z.sign_rows, nw_);
  local_h_ = Kokkos::create_mirror_view(local_);
  local_scales_ = Kokkos::View<float*, Mem>("terse::exchange::local_scales", z.sign_rows);
  local_scales_h_ = Kokkos::create_mirror_view(local_scales_);
  send_h_ = decltype(send_h_)("terse::exchange::send", z.sign_rows * nw_);
  recv_ = decltype(recv_)("terse::exchange::recv", z.recv_rows, slice_.size());
  recv_h_ = Kokkos::create_mirror_view(recv_);
  scales_ = Kokkos::View<float*, Mem>("terse::exchange::scales", z.recv_rows);
  scales_h_ = host_buffer(scales_);
  // The vote's buffers only where it votes (an empty view is an allocation too).
  if (z.vote_words > 0) {
    vote_slice_ = Words("terse::exchange::vote_slice", slice_.size());
    tie_slice_ = Words("terse::exchange::tie_slice", slice_.size());
    vote_ = Words("terse::exchange::vote", z.vote_words);
    tie_ = Words("terse::exchange::tie", z.vote_words);
  }
  if (z.direct_rows > 0) {
    all_ = decltype(all_)("terse::exchange::all_signs", z.direct_rows, nw_);
    all_h_ = Kokkos::create_mirror_view(all_);
  }
  // Host staging for the gathers, only where the device memory is not host-accessible (MPI reads and writes
  // the callers' views directly otherwise: no full-size temporaries on host backends).
  gather_words_[0] = StagedGather<Exec, sign_word_t>(slice_.size(), nw_, "terse::exchange::words");
  gather_words_[1] = StagedGather<Exec, sign_word_t>(slice_.size(), nw_, "terse::exchange::ties");
  if (z.value_gathers) gather_values_ = StagedGather<Exec, float>(coords_.size(), d_, "terse::exchange::values");
  set_chunk_words(0);
}

template <class E>
typename BasicSignExchange<E>::Sizes BasicSignExchange<E>::Sizes::of(std::size_t d, int R, int P, int rank,
                                                                      bool sign_buffers, bool voting) {
  Sizes z;
  z.d = d;
  z.nw = packed_words(d);
  z.slice = server_slice(z.nw, P, rank).size();
  z.coords = server_coords(d, P, rank).size();
  z.R = static_cast<std::size_t>(R);
  z.W = static_cast<std::size_t>(P) * z.R;
  const std::size_t on = sign_buffers ? 1 : 0;  // without sign buffers: views of extent 0
  z.sign_rows = on * z.R;
  z.recv_rows = on * z.W;
  z.direct_rows = sign_buffers && voting && direct_vote(P, R) ? z.W : 0;
  z.vote_words = sign_buffers && voting ? z.nw : 0;  // the vote's result (and ties), whole and this slice's
  z.value_gathers = !voting;                        // gather_values(): the mean sent back as fp32 values
  return z;
}

template <class E>
std::size_t BasicSignExchange<E>::Sizes::bytes() const {
  const std::size_t w = sizeof(sign_word_t), f = sizeof(float), m = staged_v<E> ? 2 : 1;  // m: with host mirrors
  return m * (sign_rows * nw * w + sign_rows * f + recv_rows * slice * w + recv_rows * f)  // local signs and scales,
                                                                                       // received slice, scales
         + sign_rows * nw * w                                       // send buffer
         + m * direct_rows * nw * w                                 // every worker's signs (direct vote)
         + 2 * (vote_words ? slice : 0) * w + 2 * vote_words * w    // vote and tie: slice and whole
         + 2 * StagedGather<E, sign_word_t>::bytes(slice, nw) +
         (value_gathers ? StagedGather<E, float>::bytes(coords, d) : 0);
}

template <class E>
void BasicSignExchange<E>::uplink(const Exec& space, bool with_scales) {
  last_bytes_ = 0;
  // Pack the send buffer by destination: [rank r][local worker l][words of slice r].
  auto local_h = local_h_;
  Kokkos::deep_copy(space, local_h, local_);  // no copy when local_ is on the host
  if (with_scales) Kokkos::deep_copy(space, local_scales_h_, local_scales_);
  space.fence();  // MPI reads the buffers next
  auto send = send_h_;
  const std::size_t nw = nw_;
  const int P = P_, R = R_;
  const int* displs = send_displs_.data();
  Kokkos::parallel_for(
      "terse::exchange::pack_uplink", Kokkos::RangePolicy<Kokkos::DefaultHostExecutionSpace>(0, P * R), [=](int rl) {
        const int r = rl / R, l = rl % R;
        const WordSlice s = server_slice(nw, P, r);
        for (std::size_t j = 0; j < s.size(); ++j) send(displs[r] + l * s.size() + j) = local_h(l, s.begin + j);
      });
  Kokkos::DefaultHostExecutionSpace().fence();
  MPI_Alltoallv(send_h_.data(), send_counts_.data(), send_displs_.data(), MPI_UINT64_T, recv_h_.data(),
                recv_counts_.data(), recv_displs_.data(), MPI_UINT64_T, comm_);
  std::uint64_t bytes = 0;
  for (int r = 0; r < P_; ++r)
    if (r != rank_) bytes += static_cast<std::uint64_t>(send_counts_[r]) * sizeof(sign_word_t);
  if (with_scales) {
    MPI_Allgather(local_scales_h_.data(), R_, MPI_FLOAT, scales_h_.data(), R_, MPI_FLOAT, comm_);
    bytes += static_cast<std::uint64_t>(P_ - 1) * R_ * sizeof(float);
    Kokkos::deep_copy(space, scales_, scales_h_);
  }
  count(bytes);
  // The server's slice, received in worker order (rank q's local workers are workers q R .. q R + R - 1).
  Kokkos::deep_copy(space, recv_, recv_h_);
}

template <class E>
void BasicSignExchange<E>::vote(const Exec& space) {
  if (direct_vote(P_, R_)) {
    if (all_.extent(0) != static_cast<std::size_t>(W_))
      throw std::logic_error("terse::SignExchange::vote: constructed with voting = false");
    last_bytes_ = 0;
    Kokkos::deep_copy(space, local_h_, local_);  // no copy when local_ is on the host
    space.fence();
    MPI_Allgather(local_h_.data(), static_cast<int>(R_ * nw_), MPI_UINT64_T, all_h_.data(), static_cast<int>(R_ * nw_),
                  MPI_UINT64_T, comm_);
    count(static_cast<std::uint64_t>(P_ - 1) * R_ * nw_ * sizeof(sign_word_t));
    Kokkos::deep_copy(space, all_, all_h_);
    {
      pieces::Region aggregate("terse::aggregate");
      majority_vote(space, all_, vote_, tie_);
    }
    return;
  }
  uplink(space, false);
  {
    pieces::Region aggregate("terse::aggregate");
    majority_vote(space, recv_, vote_slice_, tie_slice_);
  }
  gather_words(space, vote_slice_, vote_);
  if (W_ % 2 == 0) gather_words(space, tie_slice_, tie_);
}

template <class E>
void BasicSignExchange<E>::gather_words(const Exec& space, const Words& slice_words, const Words& full) {
  if (slice_words.extent(0) != slice_.size() || full.extent(0) != nw_)
    throw std::invalid_argument("terse::SignExchange::gather_words: views of the wrong extent");
  gather_words_[0].post(space, slice_words, 0, slice_.size(), full, slice_counts_.data(), slice_displs_.data(),
                        MPI_UINT64_T, comm_, nullptr);
  count(static_cast<std::uint64_t>(P_ - 1) * slice_.size() * sizeof(sign_word_t));
}

template <class E>
void BasicSignExchange<E>::gather_values(const Exec& space, const Kokkos::View<float*, Mem>& slice_values,
                                         const Kokkos::View<float*, Mem>& full) {
  if (slice_values.extent(0) != coords_.size() || full.extent(0) != d_)
    throw std::invalid_argument("terse::SignExchange::gather_values: views of the wrong extent");
  gather_values_.post(space, slice_values, 0, coords_.size(), full, coord_counts_.data(), coord_displs_.data(),
                      MPI_FLOAT, comm_, nullptr);
  count(static_cast<std::uint64_t>(P_ - 1) * coords_.size() * sizeof(float));
}

// ---- the chunked exchange ----------------------------------------------------------------------------------

template <class E>
void BasicSignExchange<E>::set_chunk_words(std::size_t words) {
  std::size_t largest = 0;
  for (int r = 0; r < P_; ++r) largest = std::max(largest, server_slice(nw_, P_, r).size());
  if (words == 0 || words >= largest) {
    chunk_words_ = std::max<std::size_t>(largest, 1);
    chunks_ = 1;
  } else {
    chunk_words_ = words;
    chunks_ = (largest + words - 1) / words;
  }
}

template <class E>
WordSlice BasicSignExchange<E>::piece(int r, std::size_t j) const {
  const WordSlice s = server_slice(nw_, P_, r);
  const std::size_t a = std::min(j * chunk_words_, s.size()), b = std::min((j + 1) * chunk_words_, s.size());
  return WordSlice{s.begin + a, s.begin + b};
}

template <class E>
CoordSlice BasicSignExchange<E>::piece_coords(int r, std::size_t j) const {
  const WordSlice w = piece(r, j);
  return CoordSlice{std::min(d_, w.begin * sign_word_bits), std::min(d_, w.end * sign_word_bits)};
}

template <class E>
void BasicSignExchange<E>::exchange_scales(const Exec& space) {
  Kokkos::deep_copy(space, local_scales_h_, local_scales_);
  space.fence();
  MPI_Allgather(local_scales_h_.data(), R_, MPI_FLOAT, scales_h_.data(), R_, MPI_FLOAT, comm_);
  count(static_cast<std::uint64_t>(P_ - 1) * R_ * sizeof(float));
  Kokkos::deep_copy(space, scales_, scales_h_);
}

template <class E>
void BasicSignExchange<E>::post_uplink(const Exec& space, std::size_t j) {
  ChunkPlan& p = plan(j);
  if (p.live) throw std::logic_error("terse::SignExchange::post_uplink: more than kChunkSlots chunks in flight");
  if (local_.extent(0) == 0) throw std::logic_error("terse::SignExchange::post_uplink: constructed without sign buffers");
  if (j == 0) last_bytes_ = 0;
  p.chunk = j;
  p.live = true;
  p.send_counts.resize(P_), p.send_displs.resize(P_), p.recv_counts.resize(P_), p.recv_displs.resize(P_);
  const std::size_t cw = chunk_words_, mine = piece(rank_, j).size();
  const std::size_t recv_at = W_ * std::min(j * cw, slice_.size());  // chunk j's (W, piece) block
  for (int r = 0; r < P_; ++r) {
    const WordSlice s = server_slice(nw_, P_, r);
    p.send_counts[r] = static_cast<int>(R_ * piece(r, j).size());
    p.send_displs[r] = send_displs_[r] + static_cast<int>(R_ * std::min(j * cw, s.size()));
    p.recv_counts[r] = static_cast<int>(R_ * mine);
    p.recv_displs[r] = static_cast<int>(recv_at + r * R_ * mine);
  }
  // This chunk's words to the host (no copy on host backends), then the send buffer by destination:
  // [rank r][chunk j][local worker l][words of r's piece].
  if constexpr (staged_v<E>) {
    for (int l = 0; l < R_; ++l)
      for (int r = 0; r < P_; ++r) {
        const WordSlice w = piece(r, j);
        if (w.size() == 0) continue;
        const auto range = std::make_pair(w.begin, w.end);
        Kokkos::deep_copy(space, Kokkos::subview(local_h_, l, range), Kokkos::subview(local_, l, range));
      }
  }
  space.fence();
  auto local_h = local_h_;
  auto send = send_h_;
  const std::size_t nw = nw_;
  const int P = P_, R = R_;
  const int* displs = p.send_displs.data();
  Kokkos::parallel_for(
      "terse::exchange::pack_uplink_chunk", Kokkos::RangePolicy<Kokkos::DefaultHostExecutionSpace>(0, P * R),
      [=](int rl) {
        const int r = rl / R, l = rl % R;
        const WordSlice s = server_slice(nw, P, r);
        const std::size_t a = std::min(j * cw, s.size()), n = std::min((j + 1) * cw, s.size()) - a;
        for (std::size_t t = 0; t < n; ++t) send(displs[r] + l * n + t) = local_h(l, s.begin + a + t);
      });
  Kokkos::DefaultHostExecutionSpace().fence();
  MPI_Ialltoallv(send_h_.data(), p.send_counts.data(), p.send_displs.data(), MPI_UINT64_T, recv_h_.data(),
                 p.recv_counts.data(), p.recv_displs.data(), MPI_UINT64_T, comm_, &p.up);
  std::uint64_t bytes = 0;
  for (int r = 0; r < P_; ++r)
    if (r != rank_) bytes += static_cast<std::uint64_t>(p.send_counts[r]) * sizeof(sign_word_t);
  count(bytes);
}

template <class E>
Kokkos::View<sign_word_t**, Kokkos::LayoutRight, typename BasicSignExchange<E>::Mem, Kokkos::MemoryTraits<Kokkos::Unmanaged>>
BasicSignExchange<E>::wait_uplink(const Exec& space, std::size_t j) {
  ChunkPlan& p = plan(j);
  if (p.chunk != j) throw std::logic_error("terse::SignExchange::wait_uplink: chunk not posted");
  MPI_Wait(&p.up, MPI_STATUS_IGNORE);
  const std::size_t mine = piece(rank_, j).size(), at = W_ * std::min(j * chunk_words_, slice_.size());
  using Block = Kokkos::View<sign_word_t*, Mem, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
  using HostBlock = Kokkos::View<sign_word_t*, Kokkos::HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
  Kokkos::deep_copy(space, Block(recv_.data() + at, W_ * mine), HostBlock(recv_h_.data() + at, W_ * mine));
  using Chunk = decltype(wait_uplink(space, j));
  return Chunk(recv_.data() + at, static_cast<std::size_t>(W_), mine);
}

template <class E>
void BasicSignExchange<E>::post_gather_words(const Exec& space, std::size_t j, const Words& slice_words, const Words& full,
                                     int slot) {
  if (slice_words.extent(0) != slice_.size() || full.extent(0) != nw_ || slot < 0 || slot > 1)
    throw std::invalid_argument("terse::SignExchange::post_gather_words: views of the wrong extent");
  ChunkPlan& p = plan(j);
  if (p.chunk != j || p.gather[slot] != MPI_REQUEST_NULL)
    throw std::logic_error("terse::SignExchange::post_gather_words: chunk not posted, or its slot in use");
  p.gather_counts[slot].resize(P_), p.gather_displs[slot].resize(P_);
  for (int r = 0; r < P_; ++r) {
    const WordSlice w = piece(r, j);
    p.gather_counts[slot][r] = static_cast<int>(w.size());
    p.gather_displs[slot][r] = static_cast<int>(w.begin);
  }
  const WordSlice mine = piece(rank_, j);
  const std::size_t lo = mine.begin - slice_.begin, n = mine.size();
  gather_words_[slot].post(space, slice_words, lo, n, full, p.gather_counts[slot].data(), p.gather_displs[slot].data(),
                           MPI_UINT64_T, comm_, &p.gather[slot]);
  p.full_words[slot] = full;
  count(static_cast<std::uint64_t>(P_ - 1) * n * sizeof(sign_word_t));
}

template <class E>
void BasicSignExchange<E>::post_gather_values(const Exec& space, std::size_t j, const Kokkos::View<float*, Mem>& slice_values,
                                      const Kokkos::View<float*, Mem>& full) {
  if (slice_values.extent(0) != coords_.size() || full.extent(0) != d_)
    throw std::invalid_argument("terse::SignExchange::post_gather_values: views of the wrong extent");
  ChunkPlan& p = plan(j);
  if (p.chunk != j || p.gather[0] != MPI_REQUEST_NULL)
    throw std::logic_error("terse::SignExchange::post_gather_values: chunk not posted, or its slot in use");
  p.gather_counts[0].resize(P_), p.gather_displs[0].resize(P_);
  for (int r = 0; r < P_; ++r) {
    const CoordSlice c = piece_coords(r, j);
    p.gather_counts[0][r] = static_cast<int>(c.size());
    p.gather_displs[0][r] = static_cast<int>(c.begin);
  }
  const CoordSlice mine = piece_coords(rank_, j);
  const std::size_t lo = mine.begin - coords_.begin, n = mine.size();
  gather_values_.post(space, slice_values, lo, n, full, p.gather_counts[0].data(), p.gather_displs[0].data(), MPI_FLOAT,
                      comm_, &p.gather[0]);
  p.full_values = full;
  count(static_cast<std::uint64_t>(P_ - 1) * n * sizeof(float));
}

template <class E>
void BasicSignExchange<E>::wait_gathers(const Exec& space, std::size_t j) {
  ChunkPlan& p = plan(j);
  if (p.chunk != j) throw std::logic_error("terse::SignExchange::wait_gathers: chunk not posted");
  MPI_Waitall(2, p.gather, MPI_STATUSES_IGNORE);
  p.live = false;
  // The staged gathers back to the device, piece by piece (each rank's piece is contiguous, the chunk is not).
  if constexpr (staged_v<E>) {
    for (int r = 0; r < P_; ++r) {
      const WordSlice w = piece(r, j);
      const CoordSlice c = piece_coords(r, j);
      for (int slot = 0; slot < 2; ++slot)
        if (p.full_words[slot].extent(0) > 0) gather_words_[slot].finish(space, p.full_words[slot], w.begin, w.end);
      if (p.full_values.extent(0) > 0) gather_values_.finish(space, p.full_values, c.begin, c.end);
    }
  }
  p.full_words[0] = p.full_words[1] = Words();
  p.full_values = Kokkos::View<float*, Mem>();
}

template <class E>
void BasicSignExchange<E>::vote_chunk(const Exec& space, std::size_t j) {
  const auto recv = wait_uplink(space, j);
  const WordSlice w = piece(rank_, j);
  if (w.size() > 0) {
    pieces::Region aggregate("terse::aggregate");
    const auto range = std::make_pair(w.begin - slice_.begin, w.end - slice_.begin);
    majority_vote(space, recv, Kokkos::subview(vote_slice_, range), Kokkos::subview(tie_slice_, range));
  }
  post_gather_words(space, j, vote_slice_, vote_, 0);
  if (W_ % 2 == 0) post_gather_words(space, j, tie_slice_, tie_, 1);
}

template <class E>
void BasicSignExchange<E>::progress() {
  MPI_Request reqs[3 * kChunkSlots];
  int n = 0;
  for (auto& p : plans_)
    for (MPI_Request* r : {&p.up, &p.gather[0], &p.gather[1]}) reqs[n++] = *r;
  int flag = 0;
  MPI_Testall(n, reqs, &flag, MPI_STATUSES_IGNORE);
  n = 0;  // when all completed (flag), MPI set them to MPI_REQUEST_NULL; otherwise it left every handle as it was
  for (auto& p : plans_)
    for (MPI_Request* r : {&p.up, &p.gather[0], &p.gather[1]}) *r = reqs[n++];
}

// ------------------------------------------------------------------------------------------------------------
// SparseExchange
// ------------------------------------------------------------------------------------------------------------

template <class E>
BasicSparseExchange<E>::BasicSparseExchange(MPI_Comm comm, std::size_t d, int local_workers, std::size_t k)
    : comm_(comm), R_(local_workers), d_(d), k_(k) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &P_);
  W_ = P_ * R_;
  coords_ = server_coords(d_, P_, rank_);
  for (int r = 0; r < P_; ++r) all_coords_.push_back(server_coords(d_, P_, r));
  send_counts_.resize(P_);
  send_displs_.resize(P_);
  recv_counts_.resize(P_);
  recv_displs_.resize(P_);
  cand_counts_.resize(P_);
  cand_displs_.resize(P_);
  pair_counts_send_.resize(static_cast<std::size_t>(P_) * R_);
  pair_counts_recv_.resize(static_cast<std::size_t>(P_) * R_);
  worker_offsets_.assign(W_ + 1, 0);
  for (int l = 0; l < R_; ++l) {
    idx_h_.emplace_back("terse::sparse_exchange::idx_h", k_);
    val_h_.emplace_back("terse::sparse_exchange::val_h", k_);
  }
  send_idx_h_ = decltype(send_idx_h_)("terse::sparse_exchange::send_idx", R_ * k_);
  send_val_h_ = decltype(send_val_h_)("terse::sparse_exchange::send_val", R_ * k_);
  // A slice receives at most min(k, slice) pairs from each worker.
  const std::size_t per_worker = std::min(k_, coords_.size());
  recv_idx_h_ = decltype(recv_idx_h_)("terse::sparse_exchange::recv_idx_h", W_ * per_worker);
  recv_val_h_ = decltype(recv_val_h_)("terse::sparse_exchange::recv_val_h", W_ * per_worker);
  recv_idx_ = Indices("terse::sparse_exchange::recv_idx", W_ * per_worker);
  recv_val_ = Values("terse::sparse_exchange::recv_val", W_ * per_worker);
  int offset = 0;
  for (int r = 0; r < P_; ++r) {
    cand_counts_[r] = static_cast<int>(candidate_count(r));
    cand_displs_[r] = offset;
    offset += cand_counts_[r];
  }
  candidates_ = static_cast<std::size_t>(offset);
  my_idx_h_ = decltype(my_idx_h_)("terse::sparse_exchange::my_idx", candidate_count(rank_));
  my_val_h_ = decltype(my_val_h_)("terse::sparse_exchange::my_val", candidate_count(rank_));
  cand_idx_h_ = decltype(cand_idx_h_)("terse::sparse_exchange::cand_idx_h", candidates_);
  cand_val_h_ = decltype(cand_val_h_)("terse::sparse_exchange::cand_val_h", candidates_);
  cand_idx_ = Indices("terse::sparse_exchange::cand_idx", candidates_);
  cand_val_ = Values("terse::sparse_exchange::cand_val", candidates_);
  drawn_mine_h_ = decltype(drawn_mine_h_)("terse::sparse_exchange::drawn_mine", k_);
  drawn_all_h_ = decltype(drawn_all_h_)("terse::sparse_exchange::drawn_all", k_);
  drawn_displs_.resize(P_);
}

template <class E>
std::size_t BasicSparseExchange<E>::bytes(std::size_t d, int R, std::size_t k, int P, int rank) {
  const std::size_t pair = sizeof(std::uint32_t) + sizeof(float), W = static_cast<std::size_t>(P) * R;
  const std::size_t pw = std::min(k, server_coords(d, P, rank).size());
  std::size_t candidates = 0;
  for (int r = 0; r < P; ++r) candidates += std::min(k, server_coords(d, P, r).size());
  return pair * (R * k + R * k   // the messages on the host, the send buffer
                 + 2 * W * pw    // received pairs: host and device
                 + pw            // this rank's candidates
                 + 2 * candidates)   // all candidates: host and device
         + 2 * k * sizeof(float);    // a drawn message's values on the host: this rank's and all
}

template <class E>
std::size_t BasicSparseExchange<E>::candidate_count(int rank) const { return std::min(k_, all_coords_[rank].size()); }

template <class E>
void BasicSparseExchange<E>::uplink(const Exec& space, const std::vector<Indices>& indices, const std::vector<Values>& values) {
  if (static_cast<int>(indices.size()) != R_ || static_cast<int>(values.size()) != R_)
    throw std::invalid_argument("terse::SparseExchange::uplink: one message per local worker");
  for (int l = 0; l < R_; ++l) {
    if (indices[l].extent(0) > k_ || values[l].extent(0) != indices[l].extent(0))
      throw std::invalid_argument("terse::SparseExchange::uplink: a message has more than k pairs");
    auto ih = Kokkos::subview(idx_h_[l], std::make_pair<std::size_t, std::size_t>(0, indices[l].extent(0)));
    auto vh = Kokkos::subview(val_h_[l], std::make_pair<std::size_t, std::size_t>(0, values[l].extent(0)));
    Kokkos::deep_copy(space, ih, indices[l]);
    Kokkos::deep_copy(space, vh, values[l]);
  }
  space.fence();
  // Split each worker's ascending indices by destination slice: [rank r][local worker l][pairs].
  std::size_t pos = 0;
  for (int r = 0; r < P_; ++r) {
    send_displs_[r] = static_cast<int>(pos);
    for (int l = 0; l < R_; ++l) {
      const std::size_t n = indices[l].extent(0);
      const std::uint32_t* first = idx_h_[l].data();
      const std::uint32_t* lo = std::lower_bound(first, first + n, static_cast<std::uint32_t>(all_coords_[r].begin));
      const std::uint32_t* hi = std::lower_bound(first, first + n, static_cast<std::uint32_t>(all_coords_[r].end));
      const std::size_t a = static_cast<std::size_t>(lo - first), b = static_cast<std::size_t>(hi - first);
      for (std::size_t j = a; j < b; ++j, ++pos) {
        send_idx_h_(pos) = idx_h_[l](j);
        send_val_h_(pos) = val_h_[l](j);
      }
      pair_counts_send_[static_cast<std::size_t>(r) * R_ + l] = static_cast<int>(b - a);
    }
    send_counts_[r] = static_cast<int>(pos) - send_displs_[r];
  }
  MPI_Alltoall(pair_counts_send_.data(), R_, MPI_INT, pair_counts_recv_.data(), R_, MPI_INT, comm_);
  std::size_t total = 0;
  for (int q = 0; q < P_; ++q) {
    recv_displs_[q] = static_cast<int>(total);
    int from_q = 0;
    for (int l = 0; l < R_; ++l) {
      worker_offsets_[q * R_ + l] = total;
      total += static_cast<std::size_t>(pair_counts_recv_[static_cast<std::size_t>(q) * R_ + l]);
      from_q += pair_counts_recv_[static_cast<std::size_t>(q) * R_ + l];
    }
    recv_counts_[q] = from_q;
  }
  worker_offsets_[W_] = total;
  MPI_Alltoallv(send_idx_h_.data(), send_counts_.data(), send_displs_.data(), MPI_UINT32_T, recv_idx_h_.data(),
                recv_counts_.data(), recv_displs_.data(), MPI_UINT32_T, comm_);
  MPI_Alltoallv(send_val_h_.data(), send_counts_.data(), send_displs_.data(), MPI_FLOAT, recv_val_h_.data(),
                recv_counts_.data(), recv_displs_.data(), MPI_FLOAT, comm_);
  for (int r = 0; r < P_; ++r)
    if (r != rank_)
      total_bytes_ += static_cast<std::uint64_t>(send_counts_[r]) * (sizeof(std::uint32_t) + sizeof(float)) +
                      static_cast<std::uint64_t>(R_) * sizeof(int);
  Kokkos::deep_copy(space, recv_idx_, recv_idx_h_);
  Kokkos::deep_copy(space, recv_val_, recv_val_h_);
  // Indices relative to the slice.
  auto idx = recv_idx_;
  const auto begin = static_cast<std::uint32_t>(coords_.begin);
  Kokkos::parallel_for(
      "terse::sparse_exchange::localize", Kokkos::RangePolicy<Exec>(space, 0, total),
      KOKKOS_LAMBDA(std::size_t j) { idx(j) -= begin; });
}

template <class E>
void BasicSparseExchange<E>::gather_candidates(const Exec& space, const Indices& indices, const Values& values) {
  const std::size_t mine = candidate_count(rank_);
  if (indices.extent(0) != mine || values.extent(0) != mine)
    throw std::invalid_argument("terse::SparseExchange::gather_candidates: candidate_count(rank) pairs expected");
  Kokkos::deep_copy(space, my_idx_h_, indices);
  Kokkos::deep_copy(space, my_val_h_, values);
  space.fence();
  for (std::size_t j = 0; j < mine; ++j) my_idx_h_(j) += static_cast<std::uint32_t>(coords_.begin);
  MPI_Allgatherv(my_idx_h_.data(), static_cast<int>(mine), MPI_UINT32_T, cand_idx_h_.data(), cand_counts_.data(),
                 cand_displs_.data(), MPI_UINT32_T, comm_);
  MPI_Allgatherv(my_val_h_.data(), static_cast<int>(mine), MPI_FLOAT, cand_val_h_.data(), cand_counts_.data(),
                 cand_displs_.data(), MPI_FLOAT, comm_);
  total_bytes_ += static_cast<std::uint64_t>(P_ - 1) * mine * (sizeof(std::uint32_t) + sizeof(float));
  Kokkos::deep_copy(space, cand_idx_, cand_idx_h_);
  Kokkos::deep_copy(space, cand_val_, cand_val_h_);
}

template <class E>
void BasicSparseExchange<E>::gather_drawn(const Exec& space, const Values& mine, const std::vector<int>& counts,
                                  const Values& all) {
  if (static_cast<int>(counts.size()) != P_) throw std::invalid_argument("terse::SparseExchange::gather_drawn: a count per rank");
  int total = 0;
  for (int r = 0; r < P_; ++r) {
    drawn_displs_[r] = total;
    total += counts[r];
  }
  const auto n = static_cast<std::size_t>(counts[rank_]);
  if (static_cast<std::size_t>(total) != all.extent(0) || static_cast<std::size_t>(total) > k_ || mine.extent(0) < n)
    throw std::invalid_argument("terse::SparseExchange::gather_drawn: views of the wrong extent");
  const auto first_n = std::make_pair(std::size_t(0), n);
  Kokkos::deep_copy(space, Kokkos::subview(drawn_mine_h_, first_n), Kokkos::subview(mine, first_n));
  space.fence();
  MPI_Allgatherv(drawn_mine_h_.data(), counts[rank_], MPI_FLOAT, drawn_all_h_.data(), counts.data(), drawn_displs_.data(),
                 MPI_FLOAT, comm_);
  total_bytes_ += static_cast<std::uint64_t>(P_ - 1) * n * sizeof(float);
  Kokkos::deep_copy(space, all, Kokkos::subview(drawn_all_h_, std::make_pair(std::size_t(0), static_cast<std::size_t>(total))));
}

// ------------------------------------------------------------------------------------------------------------

template <class E>
std::uint64_t allreduce_sum(MPI_Comm comm, const E& space, const Kokkos::View<float*, typename E::memory_space>& v,
                            const Kokkos::View<float*, Kokkos::HostSpace>& host) {
  int P = 1;
  MPI_Comm_size(comm, &P);
  const int n = static_cast<int>(v.extent(0));
  if constexpr (!staged_v<E>) {
    (void)host;
    space.fence();
    // In pieces of at most allreduce_chunk values: MPI's large-message algorithms allocate temporaries in
    // proportion to the message (Open MPI's ring: half the vector on 2 ranks), which would add a d-sized
    // buffer to the run's memory; pieces of 16 MiB keep it bounded and cost a few latencies.
    for (int begin = 0; begin < n; begin += allreduce_chunk)
      MPI_Allreduce(MPI_IN_PLACE, v.data() + begin, std::min(allreduce_chunk, n - begin), MPI_FLOAT, MPI_SUM, comm);
  } else {
    if (host.extent(0) < v.extent(0)) throw std::invalid_argument("terse::allreduce_sum: host buffer too small");
    auto h = Kokkos::subview(host, std::make_pair<std::size_t, std::size_t>(0, v.extent(0)));
    Kokkos::deep_copy(space, h, v);
    space.fence();
    MPI_Allreduce(MPI_IN_PLACE, h.data(), n, MPI_FLOAT, MPI_SUM, comm);
    Kokkos::deep_copy(space, v, h);
  }
  return P > 1 ? static_cast<std::uint64_t>(n) * sizeof(float) : 0;
}

#define TERSE_EXCHANGE_INSTANTIATE(E)    \
  template class BasicSignExchange<E>;   \
  template class BasicSparseExchange<E>; \
  template std::uint64_t allreduce_sum<E>(MPI_Comm, const E&, const Kokkos::View<float*, typename E::memory_space>&, \
                                          const Kokkos::View<float*, Kokkos::HostSpace>&);
TERSE_FOR_EACH_BACKEND(TERSE_EXCHANGE_INSTANTIATE)
#undef TERSE_EXCHANGE_INSTANTIATE

}  // namespace terse
