#include "terse_Exchange.hpp"

#include <terse_Vote.hpp>

#include <string>

namespace terse {

WordSlice server_slice(std::size_t nw, int P, int r) {
  return WordSlice{nw * static_cast<std::size_t>(r) / static_cast<std::size_t>(P),
                   nw * static_cast<std::size_t>(r + 1) / static_cast<std::size_t>(P)};
}

SignExchange::SignExchange(MPI_Comm comm, std::size_t d, int local_workers)
    : comm_(comm), R_(local_workers), d_(d), nw_(packed_words(d)) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &P_);
  W_ = P_ * R_;
  slice_ = server_slice(nw_, P_, rank_);
  send_counts_.resize(P_);
  send_displs_.resize(P_);
  recv_counts_.resize(P_);
  recv_displs_.resize(P_);
  slice_counts_.resize(P_);
  slice_displs_.resize(P_);
  int offset = 0;
  for (int r = 0; r < P_; ++r) {
    const WordSlice s = server_slice(nw_, P_, r);
    send_counts_[r] = static_cast<int>(R_ * s.size());
    send_displs_[r] = offset;
    offset += send_counts_[r];
    recv_counts_[r] = static_cast<int>(R_ * slice_.size());
    recv_displs_[r] = static_cast<int>(r * R_ * slice_.size());
    slice_counts_[r] = static_cast<int>(s.size());
    slice_displs_[r] = static_cast<int>(s.begin);
  }
  local_ = decltype(local_)("terse::exchange::local_signs", R_, nw_);
  local_h_ = Kokkos::create_mirror_view(local_);
  send_h_ = decltype(send_h_)("terse::exchange::send", R_ * nw_);
  recv_h_ = decltype(recv_h_)("terse::exchange::recv", W_, slice_.size());
  recv_ = decltype(recv_)("terse::exchange::recv_device", W_, slice_.size());
  vote_slice_ = Words("terse::exchange::vote_slice", slice_.size());
  tie_slice_ = Words("terse::exchange::tie_slice", slice_.size());
  vote_ = Words("terse::exchange::vote", nw_);
  tie_ = Words("terse::exchange::tie", nw_);
  vote_slice_h_ = Kokkos::create_mirror_view(Kokkos::HostSpace(), vote_slice_);
  tie_slice_h_ = Kokkos::create_mirror_view(Kokkos::HostSpace(), tie_slice_);
  vote_h_ = Kokkos::create_mirror_view(Kokkos::HostSpace(), vote_);
  tie_h_ = Kokkos::create_mirror_view(Kokkos::HostSpace(), tie_);
}

void SignExchange::vote(const Exec& space) {
  // Pack the send buffer by destination: [rank r][local worker l][words of slice r].
  auto local_h = local_h_;
  Kokkos::deep_copy(space, local_h, local_);  // no copy when local_ is on the host
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
  MPI_Alltoallv(send_h_.data(), send_counts_.data(), send_displs_.data(), MPI_UINT64_T, recv_h_.data(),
                recv_counts_.data(), recv_displs_.data(), MPI_UINT64_T, comm_);

  // The server's slice: received in worker order (rank q's local workers are workers q R .. q R + R - 1).
  Kokkos::deep_copy(space, recv_, recv_h_);
  majority_vote(space, recv_, vote_slice_, tie_slice_);
  Kokkos::deep_copy(space, vote_slice_h_, vote_slice_);
  const bool ties = W_ % 2 == 0;
  if (ties) Kokkos::deep_copy(space, tie_slice_h_, tie_slice_);
  space.fence();
  MPI_Allgatherv(vote_slice_h_.data(), static_cast<int>(slice_.size()), MPI_UINT64_T, vote_h_.data(),
                 slice_counts_.data(), slice_displs_.data(), MPI_UINT64_T, comm_);
  if (ties) {
    MPI_Allgatherv(tie_slice_h_.data(), static_cast<int>(slice_.size()), MPI_UINT64_T, tie_h_.data(),
                   slice_counts_.data(), slice_displs_.data(), MPI_UINT64_T, comm_);
  }
  Kokkos::deep_copy(space, vote_, vote_h_);
  if (ties) Kokkos::deep_copy(space, tie_, tie_h_);

  // Bytes handed to MPI: the uplink words sent to other ranks, and the slice sent to every other rank.
  std::uint64_t bytes = 0;
  for (int r = 0; r < P_; ++r)
    if (r != rank_) bytes += static_cast<std::uint64_t>(send_counts_[r]) * sizeof(sign_word_t);
  bytes += static_cast<std::uint64_t>(P_ - 1) * slice_.size() * sizeof(sign_word_t) * (ties ? 2 : 1);
  last_bytes_ = bytes;
  total_bytes_ += bytes;
}

}  // namespace terse
