#pragma once
// terse_Round.hpp: one iteration's communication, composed from the spec: the local workers' encoders
// (terse_Encoders.hpp), the exchange of their messages (comm/: the sharded sign and sparse exchanges, the fp32
// allreduce), the aggregation of this rank's server slice (the mean of sign or sparse messages, or the vote) and
// the downlink (the exchange's gather of the aggregate, or a compressed downlink piece). Round::Plan holds the
// decisions the spec implies (which buffers, which exchange, which downlink, whether it chunks); the constructor
// builds from it and bytes() adds up the same plan, so the memory estimate cannot drift from the allocations.

#include "terse_Encoders.hpp"

#include <terse_Exchange.hpp>
#include <terse_QsgdExchange.hpp>
#include <terse_Region.hpp>

#include <terse_Compress.hpp>
#include <terse_Random.hpp>
#include <terse_Sign.hpp>
#include <terse_TopK.hpp>
#include <terse_Update.hpp>
#include <terse_Vote.hpp>

#include <Kokkos_Core.hpp>
#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace terse::pieces {

using optim::Aggregate;
using optim::Downlink;

/// Row l of an (R, d) matrix.
template <class M>
auto row_of(const M& m, int l) {
  return Kokkos::View<float*, typename M::memory_space>(Kokkos::subview(m, l, Kokkos::ALL));
}
/// The coordinates c of v.
template <class V>
V slice_of(const V& v, const CoordSlice& c) {
  return Kokkos::subview(v, std::make_pair(c.begin, c.end));
}

/// out <- the sum of the rows of every rank's `rows` (the local workers' vectors, summed in worker order, then
/// an fp32 MPI_Allreduce), divided by W when W > 0. Returns the bytes handed to MPI. Collective.
template <class E>
std::uint64_t mean_over_workers(MPI_Comm comm, const E& space, const optim::MatOf<E>& rows, const optim::VecOf<E>& out,
                                const Kokkos::View<float*, Kokkos::HostSpace>& host, int W) {
  Kokkos::deep_copy(space, out, Kokkos::subview(rows, 0, Kokkos::ALL));
  for (std::size_t l = 1; l < rows.extent(0); ++l) {
    auto r = row_of(rows, static_cast<int>(l));
    auto s = out;
    Kokkos::parallel_for("terse::local.sum_rows", Kokkos::RangePolicy<E>(space, 0, out.extent(0)),
                         KOKKOS_LAMBDA(std::size_t i) { s(i) += r(i); });
  }
  const std::uint64_t bytes = allreduce_sum(comm, space, out, host);
  if (W > 0) average_in_place(space, out, 1.0 / W);
  return bytes;
}

// ------------------------------------------------------------------------------------------------------------
// Server: the compressed downlinks (from this rank's slice of the aggregate back to every worker)
// ------------------------------------------------------------------------------------------------------------

/// A compressed downlink: from this rank's slice of the aggregate to the direction every worker steps with (the
/// same on every rank). Each variant owns its buffers and its state; the exchanges count the bytes they carry,
/// the variant the scalar sums it reduces itself. (The plain downlink, the mean as fp32 values, and the vote's
/// bits are the exchange's gathers and need no piece.)
template <class E>
class ServerDownlink {
 public:
  using Vec = optim::VecOf<E>;
  virtual ~ServerDownlink() = default;
  /// Collective. slice: this rank's slice of the aggregate (g^ for the Markov memories); direction: what the
  /// workers step with (the Markov downlinks keep g~ there across rounds); iteration: the round's (draws).
  virtual void send(const E& space, const Vec& slice, const Vec& direction, std::uint64_t iteration) = 0;
  /// The arrays it carries across rounds (direction is g~ for the Markov downlinks).
  virtual void state(std::vector<optim::StateArray<E>>& out, const Vec& direction) = 0;
  /// Bytes it handed MPI itself.
  std::uint64_t bytes_sent() const { return bytes_; }

 protected:
  std::uint64_t bytes_ = 0;
};

/// The server's scaled sign of a vector split over the ranks' slices: the Markov downlink c~ = C(g^ - g~),
/// g~ <- g~ + c~ (seed 004 Alg. 1, lines 9-12), or 1-bit Adam's c = C(mean + e_s), e_s <- mean + e_s - c (Tang et
/// al. 2021), one scale for the whole vector: each rank packs its slice and sums |p| over it, the scale is the
/// sum over the ranks times 1 / d (rounded to float as set_scale() forms it), every rank gathers the words.
template <class E>
class ScaledSignDownlink final : public ServerDownlink<E> {
 public:
  using Vec = optim::VecOf<E>;
  using Words = Kokkos::View<sign_word_t*, typename E::memory_space>;
  ScaledSignDownlink(MPI_Comm comm, BasicSignExchange<E>& signs, std::size_t d, bool error_feedback)
      : comm_(comm), signs_(signs), d_(d), cs_(signs.coords()), error_feedback_(error_feedback) {
    MPI_Comm_size(comm_, &P_);
    if (error_feedback_) e_ = Vec("terse::server.error_feedback", cs_.size());
    words_ = Words("terse::server.down_slice_words", signs.slice().size());
    down_ = SignMessage<E, float>(d, "terse::server.down");
    ws_ = SumWorkspace<E>(std::max<std::size_t>(cs_.size(), 1));
  }
  static std::size_t bytes(std::size_t d, int P, int rank, bool error_feedback) {
    const std::size_t cs = server_coords(d, P, rank).size();
    return (error_feedback ? cs * sizeof(float) : 0) +
           server_slice(packed_words(d), P, rank).size() * sizeof(sign_word_t) + SignMessage<E, float>::bytes(d) +
           SumWorkspace<E>::bytes(std::max<std::size_t>(cs, 1));
  }
  void send(const E& space, const Vec& slice, const Vec& direction, std::uint64_t) override {
    double partial = 0;
    if (error_feedback_) {
      if (cs_.size() > 0) {
        error_feedback_sign_block(space, slice, e_, words_, ws_);
        partial = ws_.host_result();
      }
      finish(space, partial);
      if (cs_.size() > 0) {
        SignMessage<E, float> mine;  // this slice's part of c: its words, the global scale
        mine.words = words_;
        mine.scale = down_.scale;
        mine.n = cs_.size();
        message_add(space, mine, e_, -1.0f);
      }
      Kokkos::deep_copy(space, direction, 0.0f);
      message_add(space, down_, direction, 1.0f);
      return;
    }
    if (cs_.size() > 0) {
      markov_sign_block(space, slice, slice_of(direction, cs_), words_, ws_);
      partial = ws_.host_result();
    }
    finish(space, partial);
    message_add(space, down_, direction, 1.0f);
  }
  void state(std::vector<optim::StateArray<E>>& out, const Vec& direction) override {
    using K = typename optim::StateArray<E>::Kind;
    if (error_feedback_) out.push_back({"server.error_feedback", K::slice, {e_}});
    else out.push_back({"server.g_tilde", K::replicated, {direction}});
  }

 private:
  void finish(const E& space, double partial) {
    double total = 0;
    MPI_Allreduce(&partial, &total, 1, MPI_DOUBLE, MPI_SUM, comm_);
    this->bytes_ += P_ > 1 ? sizeof(double) : 0;
    Kokkos::deep_copy(space, down_.scale, static_cast<float>(total * (1.0 / static_cast<double>(d_))));
    signs_.gather_words(space, words_, down_.words);
  }

  MPI_Comm comm_;
  BasicSignExchange<E>& signs_;
  std::size_t d_;
  CoordSlice cs_;
  bool error_feedback_;
  int P_ = 1;
  Vec e_;
  Words words_;
  SignMessage<E, float> down_;
  SumWorkspace<E> ws_;
};

/// The Markov downlink with top-k: c~ = the k largest |g^_i - g~_i| over all slices (each rank's top-k of its
/// slice are the candidates, gathered; every rank selects the global top-k from them), g~ <- g~ + c~.
template <class E>
class TopKDownlink final : public ServerDownlink<E> {
 public:
  using Vec = optim::VecOf<E>;
  TopKDownlink(BasicSparseExchange<E>& sparse, std::size_t k, int rank) : sparse_(sparse), cs_(sparse.coords()) {
    const std::size_t mine = sparse_.candidate_count(rank);
    if (mine > 0) local_.emplace(cs_.size(), mine);
    if (sparse_.candidates() > 0) global_.emplace(sparse_.candidates(), k);
    down_idx_ = Kokkos::View<std::uint32_t*, typename E::memory_space>("terse::server.down_indices", k);
  }
  static std::size_t bytes(std::size_t d, std::size_t k, int P, int rank) {
    std::size_t candidates = 0, b = 0;
    for (int r = 0; r < P; ++r) candidates += std::min<std::size_t>(k, server_coords(d, P, r).size());
    const std::size_t cs = server_coords(d, P, rank).size(), mine = std::min<std::size_t>(k, cs);
    if (mine > 0) b += TopKWorkspace<E, float>::bytes(cs, mine);
    if (candidates > 0) b += TopKWorkspace<E, float>::bytes(candidates, k);
    return b + k * sizeof(std::uint32_t);
  }
  void send(const E& space, const Vec& slice, const Vec& direction, std::uint64_t) override {
    auto g_tilde_slice = slice_of(direction, cs_);
    typename BasicSparseExchange<E>::Indices idx;
    typename BasicSparseExchange<E>::Values val;
    if (local_) {
      top_k_select(space, Impl::Difference<Vec, decltype(g_tilde_slice)>{slice, g_tilde_slice}, *local_);
      idx = local_->indices();
      val = local_->values();
    }
    sparse_.gather_candidates(space, idx, val);
    top_k_select(space, sparse_.candidate_values(), *global_);
    auto pos = global_->indices();
    auto cand = sparse_.candidate_indices();
    auto down = down_idx_;
    Kokkos::parallel_for("terse::server.candidate_index", Kokkos::RangePolicy<E>(space, 0, pos.extent(0)),
                         KOKKOS_LAMBDA(std::size_t j) { down(j) = cand(pos(j)); });
    top_k_scatter_add(space, down_idx_, global_->values(), direction, 1.0f);
  }
  void state(std::vector<optim::StateArray<E>>& out, const Vec& direction) override {
    out.push_back({"server.g_tilde", optim::StateArray<E>::Kind::replicated, {direction}});
  }

 private:
  BasicSparseExchange<E>& sparse_;
  CoordSlice cs_;
  std::optional<TopKWorkspace<E, float>> local_, global_;
  Kokkos::View<std::uint32_t*, typename E::memory_space> down_idx_;
};

/// The Markov downlink with rand-k: c~ = rand-k of (g^ - g~), g~ <- g~ + c~. Every rank draws the same k
/// coordinates (the rand_k stream at the iteration and kServerDraw, a draw index no worker has), sends the
/// scaled values (d / k)(g^_i - g~_i) of those in its slice, and adds the gathered message to g~: only the values
/// travel, the indices are the shared draw.
template <class E>
class RandKDownlink final : public ServerDownlink<E> {
 public:
  using Vec = optim::VecOf<E>;
  static constexpr std::uint32_t kServerDraw = 0xFFFFFFFFu;
  RandKDownlink(MPI_Comm comm, BasicSparseExchange<E>& sparse, std::size_t d, std::size_t k, std::uint64_t seed)
      : sparse_(sparse), d_(d), cs_(sparse.coords()), draw_(d, k),
        rng_{seed, static_cast<std::uint32_t>(RandomStream::rand_k)}, values_("terse::server.down_values", k),
        mine_("terse::server.down_values_of_slice", k), idx_h_("terse::server.down_indices_host", k) {
    MPI_Comm_size(comm, &P_);
    MPI_Comm_rank(comm, &rank_);
    counts_.resize(P_);
  }
  static std::size_t bytes(std::size_t d, std::size_t k) {
    return TopKWorkspace<E, float>::bytes(d, k) + 2 * k * sizeof(float) + k * sizeof(std::uint32_t);
  }
  void send(const E& space, const Vec& slice, const Vec& direction, std::uint64_t iteration) override {
    top_k_select(space, Impl::RandKKeys<float>{rng_, iteration, kServerDraw}, draw_);
    const auto idx = draw_.indices();
    Kokkos::deep_copy(space, idx_h_, idx);  // k indices: the split by rank is MPI's counts, on the host
    space.fence();
    std::vector<int>& counts = counts_;  // how many drawn coordinates each rank serves (host, for MPI)
    std::size_t lo = 0, hi = 0;
    const std::uint32_t* first = idx_h_.data();
    const std::uint32_t* last = first + idx_h_.extent(0);
    for (int r = 0; r < P_; ++r) {
      const CoordSlice c = server_coords(d_, P_, r);
      const auto a = static_cast<std::size_t>(std::lower_bound(first, last, static_cast<std::uint32_t>(c.begin)) - first);
      const auto b = static_cast<std::size_t>(std::lower_bound(first, last, static_cast<std::uint32_t>(c.end)) - first);
      counts[r] = static_cast<int>(b - a);
      if (r == rank_) lo = a, hi = b;
    }
    const float scale = static_cast<float>(static_cast<double>(d_) / static_cast<double>(idx.extent(0)));
    auto mine = mine_;
    auto g_hat = slice;
    auto g_tilde = direction;
    const auto begin = static_cast<std::uint32_t>(cs_.begin);
    Kokkos::parallel_for("terse::server.rand_k_values", Kokkos::RangePolicy<E>(space, lo, hi),
                         KOKKOS_LAMBDA(std::size_t j) { mine(j - lo) = scale * (g_hat(idx(j) - begin) - g_tilde(idx(j))); });
    sparse_.gather_drawn(space, mine_, counts, values_);
    top_k_scatter_add(space, idx, values_, direction, 1.0f);
  }
  void state(std::vector<optim::StateArray<E>>& out, const Vec& direction) override {
    out.push_back({"server.g_tilde", optim::StateArray<E>::Kind::replicated, {direction}});
  }

 private:
  BasicSparseExchange<E>& sparse_;
  std::size_t d_;
  CoordSlice cs_;
  int P_ = 1, rank_ = 0;
  TopKWorkspace<E, float> draw_;
  CounterRng rng_;
  Vec values_, mine_;
  Kokkos::View<std::uint32_t*, Kokkos::HostSpace> idx_h_;
  std::vector<int> counts_;
};

// ------------------------------------------------------------------------------------------------------------
// The round
// ------------------------------------------------------------------------------------------------------------

/// One communication round: the local workers' gradients in, the aggregate (the same on every rank) out:
/// direction() for the mean methods, vote_words()/tie_words() for the majority vote.
///
/// Chunked (set_chunk(), run.exchange_chunk): the sign wires with a plain downlink (the sharded vote, the mean of
/// signs or scaled signs sent back as fp32 values) exchange each server slice in pieces, as a pipeline of
/// nonblocking collectives: while chunk j's words are formed (the sign wire's compression, deferred from encode())
/// and sent, chunk j-1 is aggregated on the server's slice and its result sent back, and chunk j-2, back on every
/// rank, is handed to the caller (exchange()'s on_piece: the update rule's step on those coordinates). Each
/// coordinate goes through the same arithmetic as unchunked, so the results are bitwise the same.
template <class E = Kokkos::DefaultExecutionSpace>
class Round {
 public:
  using Vec = optim::VecOf<E>;
  using Mat = optim::MatOf<E>;
  using Words = Kokkos::View<sign_word_t*, typename E::memory_space>;
  /// What exchange() hands back as each piece of the aggregate arrives: its coordinates.
  using OnPiece = std::function<void(const CoordSlice&)>;

  /// The server's downlink pieces (the plain downlink is the exchange's gather).
  enum class DownlinkPiece { none, scaled_sign_markov, scaled_sign_error_feedback, top_k, rand_k };

  /// What the spec implies for a round of d coordinates with R workers on rank `rank` of P: the decisions the
  /// constructor builds from and bytes() adds up.
  struct Plan {
    std::size_t d = 0, k = 0;
    int R = 1, P = 1, rank = 0;
    bool sign_buffers = false;   // the wire sends packed signs (the SignExchange's sign buffers)
    bool voting = false;         // the aggregate is the vote
    bool own_direction = false;  // the round allocates the direction it hands the update rule
    bool host_staging = false;   // an fp32 allreduce through a host buffer (device backends)
    bool sparse = false;         // the sparse exchange and its encoders
    bool quantized = false;      // the QSGD exchange and its encoders (qsgd, terngrad)
    bool server_slice = false;   // this rank's slice of a mean aggregate (kept across rounds for Markov memories)
    DownlinkPiece downlink = DownlinkPiece::none;

    static Plan of(const Spec& s, std::size_t d, int R, std::size_t k, int P, int rank) {
      Plan p;
      p.d = d, p.k = k, p.R = R, p.P = P, p.rank = rank;
      p.sign_buffers = optim::signs(s.wire);
      p.voting = s.aggregate == Aggregate::vote;
      // The vote has its bits; one fp32 worker per rank averages its gradient in place (direction is that row).
      p.own_direction = s.aggregate == Aggregate::mean && !(s.wire == Wire::fp32 && R == 1);
      p.host_staging = (s.wire == Wire::fp32 || s.exact_start) && staged_v<E>;
      p.sparse = optim::sparse(s.wire);
      p.quantized = optim::quantized(s.wire);
      p.server_slice = s.aggregate == Aggregate::mean && s.wire != Wire::fp32;
      if (s.downlink == Downlink::error_feedback) p.downlink = DownlinkPiece::scaled_sign_error_feedback;
      else if (s.downlink == Downlink::markov)
        p.downlink = s.wire == Wire::top_k    ? DownlinkPiece::top_k
                     : s.wire == Wire::rand_k ? DownlinkPiece::rand_k
                                              : DownlinkPiece::scaled_sign_markov;
      return p;
    }
    /// Bytes of everything the round allocates under this plan.
    std::size_t bytes(const Spec& s) const {
      const CoordSlice cs = server_coords(d, P, rank);
      std::size_t b = (own_direction ? d * sizeof(float) : 0) + (host_staging ? d * sizeof(float) : 0) +
                      BasicSignExchange<E>::bytes(d, R, P, rank, sign_buffers, voting) +
                      (server_slice ? cs.size() * sizeof(float) : 0);
      if (sparse) b += BasicSparseExchange<E>::bytes(d, R, k, P, rank);
      if (quantized) b += BasicQsgdExchange<E>::bytes(d, R, qsgd_levels(s), qsgd_bucket(s, d), P, rank);
      if (sparse || sign_buffers || quantized) b += static_cast<std::size_t>(R) * encoder_bytes<E>(s, d, k);
      switch (downlink) {
        case DownlinkPiece::none: break;
        case DownlinkPiece::scaled_sign_markov: b += ScaledSignDownlink<E>::bytes(d, P, rank, false); break;
        case DownlinkPiece::scaled_sign_error_feedback: b += ScaledSignDownlink<E>::bytes(d, P, rank, true); break;
        case DownlinkPiece::top_k: b += TopKDownlink<E>::bytes(d, k, P, rank); break;
        case DownlinkPiece::rand_k: b += RandKDownlink<E>::bytes(d, k); break;
      }
      return b;
    }
    /// Whether the spec's exchange can ever run in chunks: the sign wires with a plain downlink.
    static bool chunks(const Spec& s) { return !s.local() && optim::signs(s.wire) && s.downlink == Downlink::plain; }
    /// Whether this exchange runs in chunks: chunks(spec), except the direct vote (P = 2, one worker each).
    bool chunkable() const {
      return sign_buffers && downlink == DownlinkPiece::none &&
             !(voting && BasicSignExchange<E>::direct_vote(P, R));
    }
  };

  /// Its downlink refers to its exchanges: a Round stays where it was built.
  Round(const Round&) = delete;
  Round& operator=(const Round&) = delete;
  Round(Round&&) = delete;
  Round& operator=(Round&&) = delete;

  Round(MPI_Comm comm, const Spec& s, std::size_t d, int R, std::size_t k, std::uint64_t seed, int first_worker)
      : comm_(comm), s_(s), d_(d), R_(R), P_(size_of(comm)),
        plan_(Plan::of(s, d, R, k, P_, rank_of(comm))),
        signs_(comm, d, R, plan_.sign_buffers, plan_.voting) {
    W_ = P_ * R_;
    // Only what the plan needs is allocated (an empty view is an allocation too).
    if (plan_.own_direction) direction_ = Vec("terse::round.direction", d);
    if (plan_.host_staging) host_ = Kokkos::View<float*, Kokkos::HostSpace>("terse::round.allreduce_host", d);
    if (plan_.sparse) {
      sparse_.emplace(comm, d, R, k);
      for (int l = 0; l < R; ++l) topk_.push_back(make_sparse_encoder<E>(s, d, k, seed, first_worker + l));
      indices_.resize(R);
      values_.resize(R);
    } else if (plan_.sign_buffers) {
      for (int l = 0; l < R; ++l) sign_.push_back(make_sign_encoder<E>(s, d, seed, first_worker + l));
    } else if (plan_.quantized) {
      qsgd_.emplace(comm, d, R, qsgd_levels(s), qsgd_bucket(s, d));
      for (int l = 0; l < R; ++l) quant_.push_back(make_qsgd_encoder<E>(s, d, seed, first_worker + l));
    }
    // mean: this rank's slice of the aggregate (with a Markov memory: g^, kept across rounds)
    if (plan_.server_slice) slice_ = Vec("terse::server.slice", signs_.coords().size());
    switch (plan_.downlink) {
      case DownlinkPiece::none: break;
      case DownlinkPiece::scaled_sign_markov:
        downlink_ = std::make_unique<ScaledSignDownlink<E>>(comm, signs_, d, false);
        break;
      case DownlinkPiece::scaled_sign_error_feedback:
        downlink_ = std::make_unique<ScaledSignDownlink<E>>(comm, signs_, d, true);
        break;
      case DownlinkPiece::top_k: downlink_ = std::make_unique<TopKDownlink<E>>(*sparse_, k, rank()); break;
      case DownlinkPiece::rand_k: downlink_ = std::make_unique<RandKDownlink<E>>(comm, *sparse_, d, k, seed); break;
    }
  }

  /// The levels and the bucket of a QSGD wire's messages, as its compressor resolves them.
  static int qsgd_levels(const Spec& s) { return s.wire == Wire::terngrad ? 1 : s.levels; }
  static std::size_t qsgd_bucket(const Spec& s, std::size_t d) {
    CompressorOptions o;
    o.bucket = static_cast<std::size_t>(s.bucket);
    return QsgdCompressor<E, float, QsgdScale::l2>::bucket_of(d, o);
  }

  /// Bytes the constructor allocates on rank `rank` of P (the arguments of the constructor otherwise).
  static std::size_t bytes(const Spec& s, std::size_t d, int R, std::size_t k, int P, int rank) {
    return Plan::of(s, d, R, k, P, rank).bytes(s);
  }

  /// Pieces of at most `coordinates` coordinates (rounded up to whole words) of each server slice per chunk; 0:
  /// one chunk. Only the compositions Plan::chunkable() names are chunked; the others ignore it.
  void set_chunk(std::size_t coordinates) {
    const bool able = plan_.chunkable();
    signs_.set_chunk_words(able ? packed_words(coordinates) : 0);
    chunked_ = able && signs_.chunks() > 1;
    pending_.assign(R_, Vec());
  }
  /// Whether exchange() runs the chunked pipeline (and hands the aggregate back piece by piece).
  bool chunked() const { return chunked_; }
  std::size_t chunks() const { return chunked_ ? signs_.chunks() : 1; }

  int rank() const { return rank_of(comm_); }

  /// Local worker l's gradient (or, for vote: samples, its already voted bits through voted_signs()).
  void encode(const E& space, int l, const Vec& g, std::uint64_t k) {
    iteration_ = k;
    if (plan_.sparse) {
      const auto m = topk_[l]->encode(space, g, k);
      indices_[l] = m.indices;
      values_[l] = m.values;
    } else if (plan_.sign_buffers) {
      if (chunked_ && sign_[l]->by_piece()) pending_[l] = g;  // formed chunk by chunk in exchange()
      else sign_[l]->encode(space, g, k, signs_.local_signs(l), signs_.local_scale(l));
    } else if (plan_.quantized) {
      quant_[l]->encode(space, g, k, qsgd_->local_planes(l), qsgd_->local_norms(l));
    }  // fp32: exchange() averages the gradients in place
  }
  /// Where vote: samples puts worker l's voted bits (the sign wire only).
  Words voted_signs(int l) const { return signs_.local_signs(l); }
  /// The iteration of the last encode (the rand-k downlink's draw); set by encode(), or by hand for given messages.
  void set_iteration(std::uint64_t k) { iteration_ = k; }

  /// The exchange: uplink, aggregation, downlink. Collective. grads: the local workers' gradients, (R, d)
  /// (read by the fp32 wire; the compressed wires were given theirs through encode()). on_piece, when given, is
  /// called on pieces of the aggregate that cover [0, d) as they are complete: as each chunk comes back when
  /// chunked(), else once with [0, d) at the end.
  void exchange(const E& space, const Mat& grads, const OnPiece& on_piece = {}) {
    if (chunked_) {
      exchange_chunked(space, on_piece);
      return;
    }
    exchange_whole(space, grads);
    if (on_piece) on_piece(CoordSlice{0, d_});
  }

  /// The exact start of the Markov memories (Spec::exact_start; Richtarik et al. 2021, Alg. 1: g_i^0 =
  /// grad f_i(x^0)): every local worker's estimate becomes its gradient, and g^ (this rank's slice) and
  /// direction() (g~ with a Markov downlink) the mean of all W gradients, sent once as fp32 values (an
  /// allreduce). Replaces encode() and exchange() at iteration 0. Collective.
  void start(const E& space, const Mat& grads) {
    for (int l = 0; l < R_; ++l) {
      const Vec estimate = plan_.sparse ? topk_[l]->memory(space) : sign_[l]->memory(space);
      Kokkos::deep_copy(space, estimate, row_of(grads, l));
    }
    fp32_bytes_ += mean_over_workers<E>(comm_, space, grads, direction_, host_, W_);
    Kokkos::deep_copy(space, slice_, slice_of(direction_, signs_.coords()));
  }

  /// The state the round carries across iterations: the workers' compressor memories; with Markov memories
  /// the server's g^ (its slice) and, with a Markov downlink, g~ (the same on every rank); with an
  /// error-feedback downlink, the server's error (its slice).
  void state(const E& space, std::vector<optim::StateArray<E>>& out) {
    using K = typename optim::StateArray<E>::Kind;
    std::vector<Vec> mem;
    const char* name = nullptr;
    for (auto& e : sign_) mem.push_back(e->memory(space)), name = e->state_name();
    for (auto& e : topk_) mem.push_back(e->memory(space)), name = e->state_name();
    for (auto& e : quant_) mem.push_back(e->memory(space)), name = e->state_name();
    if (name && !mem.empty() && mem.front().extent(0) > 0) out.push_back({name, K::workers, mem});
    if (s_.memory == Memory::markov) out.push_back({"server.g_hat", K::slice, {slice_}});
    if (downlink_) downlink_->state(out, direction_);
  }

  /// This rank's server slice of the coordinates.
  CoordSlice coords() const { return signs_.coords(); }
  Vec direction() const { return direction_; }
  Words vote_words() const { return signs_.vote_words(); }
  Words tie_words() const { return signs_.tie_words(); }

  std::uint64_t bytes_sent() const {
    return signs_.total_bytes_sent() + (sparse_ ? sparse_->total_bytes_sent() : 0) +
           (qsgd_ ? qsgd_->total_bytes_sent() : 0) + fp32_bytes_ +
           (downlink_ ? downlink_->bytes_sent() : 0);
  }

 private:
  static int size_of(MPI_Comm c) {
    int p = 1;
    MPI_Comm_size(c, &p);
    return p;
  }
  static int rank_of(MPI_Comm c) {
    int r = 0;
    MPI_Comm_rank(c, &r);
    return r;
  }

  void exchange_chunked(const E& space, const OnPiece& on_piece) {
    const std::size_t n = signs_.chunks();
    const bool vote = plan_.voting, markov = s_.memory == Memory::markov;
    const double inv_w = 1.0 / static_cast<double>(W_);
    const int me = rank();
    const CoordSlice mine = signs_.coords();
    const auto form = [&](std::size_t j) {  // the deferred compression of chunk j: every destination's piece
      for (int l = 0; l < R_; ++l) {
        if (!pending_[l].data()) continue;
        Region region("terse::compress");
        for (int r = 0; r < P_; ++r) {
          const CoordSlice c = signs_.piece_coords(r, j);
          if (c.size() > 0) sign_[l]->encode_piece(space, pending_[l], c, signs_.local_signs(l));
        }
        signs_.progress();
      }
    };
    const auto aggregate = [&](std::size_t j) {  // chunk j on this rank's slice, and its downlink posted
      if (vote) {
        signs_.vote_chunk(space, j);
        return;
      }
      const auto recv = signs_.wait_uplink(space, j);
      const CoordSlice c = signs_.piece_coords(me, j);
      if (c.size() > 0) {
        Region region("terse::aggregate");
        sign_mean(space, recv, signs_.received_scales(),
                  Kokkos::subview(slice_, std::make_pair(c.begin - mine.begin, c.end - mine.begin)), inv_w, markov);
      }
      signs_.post_gather_values(space, j, slice_, direction_);
    };
    const auto back = [&](std::size_t j) {  // chunk j complete on every rank
      signs_.wait_gathers(space, j);
      if (!on_piece) return;
      for (int r = 0; r < P_; ++r) {
        const CoordSlice c = signs_.piece_coords(r, j);
        if (c.size() > 0) on_piece(c);
        signs_.progress();
      }
    };
    // The pipeline, the same collectives in the same order on every rank: uplink j, downlink j - 1.
    for (std::size_t j = 0; j < n + 2; ++j) {
      if (j < n) {
        form(j);
        signs_.post_uplink(space, j);
        if (j == 0 && !vote) signs_.exchange_scales(space);
      }
      if (j >= 1 && j <= n) aggregate(j - 1);
      if (j >= 2) back(j - 2);
      signs_.progress();
    }
    for (auto& g : pending_) g = Vec();
  }

  void exchange_whole(const E& space, const Mat& grads) {
    const double inv_w = 1.0 / static_cast<double>(W_);
    if (plan_.voting) {
      signs_.vote(space);
      return;
    }
    if (s_.wire == Wire::fp32) {
      if (R_ == 1) {  // the allreduce in place on the gradient: no copy (what a plain fp32 code does)
        direction_ = row_of(grads, 0);
        fp32_bytes_ += allreduce_sum(comm_, space, direction_, host_);
        average_in_place(space, direction_, inv_w);
      } else {
        fp32_bytes_ += mean_over_workers<E>(comm_, space, grads, direction_, host_, W_);
      }
      return;
    }
    // Uplink and the mean (or, for Markov memories, g^ <- g^ + mean) on this rank's slice.
    const bool markov = s_.memory == Memory::markov;
    if (plan_.sparse) {
      sparse_->uplink(space, indices_, values_);
      if (!markov) Kokkos::deep_copy(space, slice_, 0.0f);
      const auto& off = sparse_->worker_offsets();
      Region aggregate("terse::aggregate");
      for (int w = 0; w < W_; ++w) {
        if (off[w + 1] == off[w]) continue;
        const auto range = std::make_pair(off[w], off[w + 1]);
        top_k_scatter_add(space, Kokkos::subview(sparse_->received_indices(), range),
                          Kokkos::subview(sparse_->received_values(), range), slice_, static_cast<float>(inv_w));
      }
    } else if (plan_.quantized) {  // the mean of the decoded messages on this rank's slice
      qsgd_->uplink(space);
      Region aggregate("terse::aggregate");
      qsgd_mean(space, qsgd_->received_planes(), qsgd_->received_norms(), qsgd_->coords().begin, qsgd_->first_bucket(),
                qsgd_->bucket(), qsgd_levels(s_), slice_, inv_w);
    } else {
      signs_.uplink(space, true);
      Region aggregate("terse::aggregate");
      sign_mean(space, signs_.received(), signs_.received_scales(), slice_, inv_w, markov);
    }
    if (downlink_) {  // the compressed downlinks: Markov (seed 004 Alg. 1, lines 9-12) or 1-bit Adam's
      downlink_->send(space, slice_, direction_, iteration_);
      return;
    }
    signs_.gather_values(space, slice_, direction_);  // the mean (g^ for Markov memories, one-way) as fp32 values
  }

  MPI_Comm comm_;
  Spec s_;
  std::size_t d_;
  int R_, P_ = 1, W_ = 1;
  Plan plan_;
  BasicSignExchange<E> signs_;
  std::optional<BasicSparseExchange<E>> sparse_;
  std::optional<BasicQsgdExchange<E>> qsgd_;
  std::vector<std::unique_ptr<QsgdWireEncoder<E>>> quant_;
  std::vector<std::unique_ptr<SignWireEncoder<E>>> sign_;
  std::vector<std::unique_ptr<SparseWireEncoder<E>>> topk_;
  std::vector<typename BasicSparseExchange<E>::Indices> indices_;
  std::vector<typename BasicSparseExchange<E>::Values> values_;
  Vec direction_, slice_;
  Kokkos::View<float*, Kokkos::HostSpace> host_;
  std::unique_ptr<ServerDownlink<E>> downlink_;
  std::uint64_t iteration_ = 0;  // the iteration of the last encode (the rand-k downlink's draw)
  bool chunked_ = false;
  std::vector<Vec> pending_;     // chunked: the gradients whose messages exchange() forms chunk by chunk
  std::uint64_t fp32_bytes_ = 0;
};

}  // namespace terse::pieces
