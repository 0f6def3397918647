#pragma once
// terse_QsgdExchange.hpp: the uplink of QSGD / TernGrad messages (kernels/terse_Qsgd.hpp) to the sharded server.
//
// Rank r serves the coordinates of server_coords(d, P, r) (terse_Exchange.hpp: whole words of 64 coordinates).
// A message's bit planes split at those word boundaries, so each worker sends rank r, by one MPI_Alltoallv of
// 64-bit words, the 1 + q planes' words of r's slice (plane by plane), and, by a second MPI_Alltoallv of fp32
// values, the norms of the buckets that meet r's slice (a bucket that straddles two slices travels to both).
// A rank's own part stays home. Bytes handed to MPI per uplink on rank `me`:
//
//   R sum_{r != me} ( 8 (1 + q) |words of slice r| + 4 |buckets meeting slice r| )
//
// (bytes(); counted where MPI is called). What the server receives is ordered by worker (rank q's local workers
// are workers q R .. q R + R - 1), so its mean does not depend on how workers map to ranks. The mean goes back
// through BasicSignExchange::gather_values (the exchange's gather of fp32 values). Buffers pass through host
// mirrors (none on host backends); everything is allocated in the constructor.

#include "terse_Exchange.hpp"

#include <terse_Qsgd.hpp>

#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <vector>

namespace terse {

template <class ExecSpace = Kokkos::DefaultExecutionSpace>
class BasicQsgdExchange {
 public:
  using Exec = ExecSpace;
  using Mem = typename ExecSpace::memory_space;
  using Planes = Kokkos::View<sign_word_t**, Kokkos::LayoutRight, Mem>;
  using Norms = Kokkos::View<float*, Mem>;

  /// The buckets [begin, end) that meet the coordinates c (none for an empty slice).
  static std::pair<std::size_t, std::size_t> buckets_of(const CoordSlice& c, std::size_t bucket) {
    if (c.size() == 0) return {0, 0};
    return {c.begin / bucket, (c.end + bucket - 1) / bucket};
  }

  /// d coordinates, R local workers, s levels, buckets of `bucket` coordinates (as the compressor resolved it).
  BasicQsgdExchange(MPI_Comm comm, std::size_t d, int R, int levels, std::size_t bucket)
      : comm_(comm), R_(R), d_(d), nw_(packed_words(d)), q_(1 + qsgd_level_bits(levels)), bucket_(bucket),
        nb_(QsgdMessage<Exec>::buckets(d, bucket)) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &P_);
    W_ = P_ * R_;
    slice_ = server_slice(nw_, P_, rank_);
    coords_ = server_coords(d_, P_, rank_);
    mine_ = buckets_of(coords_, bucket_);
    const std::size_t my_nb = mine_.second - mine_.first;
    wsend_.resize(P_), wsdis_.resize(P_), wrecv_.resize(P_), wrdis_.resize(P_);
    nsend_.resize(P_), nsdis_.resize(P_), nrecv_.resize(P_), nrdis_.resize(P_);
    int wo = 0, no = 0;
    for (int r = 0; r < P_; ++r) {
      const auto b = buckets_of(server_coords(d_, P_, r), bucket_);
      wsend_[r] = static_cast<int>(R_ * q_ * server_slice(nw_, P_, r).size());
      wsdis_[r] = wo;
      wo += wsend_[r];
      nsend_[r] = static_cast<int>(R_ * (b.second - b.first));
      nsdis_[r] = no;
      no += nsend_[r];
      wrecv_[r] = static_cast<int>(R_ * q_ * slice_.size());
      wrdis_[r] = r * wrecv_[r];
      nrecv_[r] = static_cast<int>(R_ * my_nb);
      nrdis_[r] = r * nrecv_[r];
    }
    local_planes_ = decltype(local_planes_)("terse::qsgd_exchange::local_planes", R_, q_, nw_);
    local_norms_ = decltype(local_norms_)("terse::qsgd_exchange::local_norms", R_, nb_);
    local_planes_h_ = Kokkos::create_mirror_view(local_planes_);
    local_norms_h_ = Kokkos::create_mirror_view(local_norms_);
    send_words_h_ = decltype(send_words_h_)("terse::qsgd_exchange::send_words", static_cast<std::size_t>(wo));
    send_norms_h_ = decltype(send_norms_h_)("terse::qsgd_exchange::send_norms", static_cast<std::size_t>(no));
    recv_planes_ = decltype(recv_planes_)("terse::qsgd_exchange::recv_planes", W_, q_, slice_.size());
    recv_norms_ = decltype(recv_norms_)("terse::qsgd_exchange::recv_norms", W_, my_nb);
    recv_planes_h_ = Kokkos::create_mirror_view(recv_planes_);
    recv_norms_h_ = Kokkos::create_mirror_view(recv_norms_);
  }

  /// Bytes the constructor allocates on rank `rank` of P.
  static std::size_t bytes(std::size_t d, int R, int levels, std::size_t bucket, int P, int rank) {
    const std::size_t nw = packed_words(d), q = 1 + qsgd_level_bits(levels), nb = QsgdMessage<Exec>::buckets(d, bucket);
    const std::size_t m = staged_v<Exec> ? 2 : 1, W = static_cast<std::size_t>(P) * R;
    std::size_t send_w = 0, send_n = 0;
    for (int r = 0; r < P; ++r) {
      const auto b = buckets_of(server_coords(d, P, r), bucket);
      send_w += R * q * server_slice(nw, P, r).size();
      send_n += R * (b.second - b.first);
    }
    const auto mb = buckets_of(server_coords(d, P, rank), bucket);
    const std::size_t sw = server_slice(nw, P, rank).size();
    return m * (R * q * nw * sizeof(sign_word_t) + R * nb * sizeof(float)) + send_w * sizeof(sign_word_t) +
           send_n * sizeof(float) + m * (W * q * sw * sizeof(sign_word_t) + W * (mb.second - mb.first) * sizeof(float));
  }

  /// Local worker l's message slot: its planes (1 + q, words) and norms; fill them, then call uplink().
  Planes local_planes(int l) const { return Kokkos::subview(local_planes_, l, Kokkos::ALL, Kokkos::ALL); }
  Norms local_norms(int l) const { return Kokkos::subview(local_norms_, l, Kokkos::ALL); }

  /// Collective. On return received_planes() (W, 1 + q, slice words) and received_norms() (W, buckets meeting
  /// the slice, from first_bucket()) hold every worker's part of this rank's slice.
  void uplink(const Exec& space) {
    Kokkos::deep_copy(space, local_planes_h_, local_planes_);  // no copy on host backends
    Kokkos::deep_copy(space, local_norms_h_, local_norms_);
    space.fence();
    // [rank r][local worker l][plane p][words of slice r]; [rank r][local worker l][buckets meeting slice r]
    auto planes = local_planes_h_;
    auto norms = local_norms_h_;
    auto sw = send_words_h_;
    auto sn = send_norms_h_;
    const std::size_t nw = nw_, d = d_, bucket = bucket_;
    const int P = P_, R = R_, q = q_;
    const int* wd = wsdis_.data();
    const int* nd = nsdis_.data();
    Kokkos::parallel_for(
        "terse::qsgd_exchange::pack_uplink", Kokkos::RangePolicy<Kokkos::DefaultHostExecutionSpace>(0, P * R),
        [=](int rl) {
          const int r = rl / R, l = rl % R;
          const WordSlice s = server_slice(nw, P, r);
          const auto b = buckets_of(server_coords(d, P, r), bucket);
          for (int p = 0; p < q; ++p)
            for (std::size_t j = 0; j < s.size(); ++j)
              sw(wd[r] + (static_cast<std::size_t>(l) * q + p) * s.size() + j) = planes(l, p, s.begin + j);
          const std::size_t nbr = b.second - b.first;
          for (std::size_t j = 0; j < nbr; ++j) sn(nd[r] + l * nbr + j) = norms(l, b.first + j);
        });
    Kokkos::DefaultHostExecutionSpace().fence();
    MPI_Alltoallv(send_words_h_.data(), wsend_.data(), wsdis_.data(), MPI_UINT64_T, recv_planes_h_.data(),
                  wrecv_.data(), wrdis_.data(), MPI_UINT64_T, comm_);
    MPI_Alltoallv(send_norms_h_.data(), nsend_.data(), nsdis_.data(), MPI_FLOAT, recv_norms_h_.data(), nrecv_.data(),
                  nrdis_.data(), MPI_FLOAT, comm_);
    for (int r = 0; r < P_; ++r)
      if (r != rank_)
        total_bytes_ += static_cast<std::uint64_t>(wsend_[r]) * sizeof(sign_word_t) +
                        static_cast<std::uint64_t>(nsend_[r]) * sizeof(float);
    Kokkos::deep_copy(space, recv_planes_, recv_planes_h_);
    Kokkos::deep_copy(space, recv_norms_, recv_norms_h_);
  }

  Kokkos::View<sign_word_t***, Kokkos::LayoutRight, Mem> received_planes() const { return recv_planes_; }
  Kokkos::View<float**, Kokkos::LayoutRight, Mem> received_norms() const { return recv_norms_; }
  /// The first bucket that meets this rank's slice (received_norms()'s column 0).
  std::size_t first_bucket() const { return mine_.first; }
  const CoordSlice& coords() const { return coords_; }
  std::size_t bucket() const { return bucket_; }
  std::uint64_t total_bytes_sent() const { return total_bytes_; }

 private:
  MPI_Comm comm_;
  int rank_ = 0, P_ = 1, R_ = 1, W_ = 1;
  std::size_t d_ = 0, nw_ = 0;
  int q_ = 1;
  std::size_t bucket_ = 1, nb_ = 0;
  WordSlice slice_;
  CoordSlice coords_;
  std::pair<std::size_t, std::size_t> mine_;
  std::vector<int> wsend_, wsdis_, wrecv_, wrdis_, nsend_, nsdis_, nrecv_, nrdis_;
  Kokkos::View<sign_word_t***, Kokkos::LayoutRight, Mem> local_planes_;
  typename decltype(local_planes_)::HostMirror local_planes_h_;
  Kokkos::View<float**, Kokkos::LayoutRight, Mem> local_norms_;
  typename decltype(local_norms_)::HostMirror local_norms_h_;
  Kokkos::View<sign_word_t*, Kokkos::HostSpace> send_words_h_;
  Kokkos::View<float*, Kokkos::HostSpace> send_norms_h_;
  Kokkos::View<sign_word_t***, Kokkos::LayoutRight, Mem> recv_planes_;
  typename decltype(recv_planes_)::HostMirror recv_planes_h_;
  Kokkos::View<float**, Kokkos::LayoutRight, Mem> recv_norms_;
  typename decltype(recv_norms_)::HostMirror recv_norms_h_;
  std::uint64_t total_bytes_ = 0;
};

}  // namespace terse
