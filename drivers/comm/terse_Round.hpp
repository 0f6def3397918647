#pragma once
// terse_Round.hpp: the pieces of one iteration's communication that the driver composes (terse_Algorithm.hpp):
// a worker's encoder (compressor + memory: SignEncoder, SparseEncoder) and the Round (uplink, aggregation on
// this rank's server slice, downlink). `terse run` (terse_Run.cpp) and the end-to-end benchmark
// (bench/bench_pipeline.cpp) use the same classes, so the benchmark times the code the runs execute.

#include "terse_Algorithm.hpp"
#include "terse_Exchange.hpp"
#include "terse_Region.hpp"

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

using Exec = Kokkos::DefaultExecutionSpace;
using Mem = Exec::memory_space;
using Vec = Kokkos::View<float*, Mem>;
using Words = Kokkos::View<sign_word_t*, Mem>;
using Mat = Kokkos::View<float**, Kokkos::LayoutRight, Mem>;

inline Vec row(const Mat& m, int l) { return Kokkos::subview(m, l, Kokkos::ALL); }
inline Vec slice_of(const Vec& v, const CoordSlice& c) { return Kokkos::subview(v, std::make_pair(c.begin, c.end)); }

/// One array of the state a run carries from one iteration to the next, as a checkpoint stores it.
struct StateArray {
  enum class Kind {
    replicated,  ///< every rank holds all d values, the same (the shared model, the server's broadcast g~, ...)
    workers,     ///< one row per worker, [W, d]; this rank holds its R local workers' rows
    slice,       ///< [d] split by server slices; this rank holds its slice
  };
  std::string name;
  Kind kind;
  std::vector<Vec> views;  ///< workers: one per local worker; else one
};

// ------------------------------------------------------------------------------------------------------------
// Workers: compressor + memory of one worker
// ------------------------------------------------------------------------------------------------------------

/// A sign-type message (sign, scaled sign, stochastic sign) of one worker, written into its slot of the
/// SignExchange. With a memory the message is the memory's scaled sign; the sign wire sends only its bits.
class SignEncoder {
 public:
  SignEncoder(const Composition& c, std::size_t d, std::uint64_t seed, int worker)
      : wire_(c.wire), memory_(c.memory), worker_(worker), momentum_(c.momentum),
        rng_{seed, static_cast<std::uint32_t>(RandomStream::stochastic_sign)} {
    switch (memory_) {
      case Memory::error_feedback: ef_.emplace(d, "terse::worker.error_feedback"); break;
      case Memory::markov: markov_.emplace(d, "terse::worker.markov"); break;
      case Memory::momentum: m_ = Vec("terse::worker.momentum", d); break;
      case Memory::none:
        if (wire_ != Wire::sign) {
          msg_ = SignMessage<Exec, float>(d, "terse::worker.message");
          ws_ = SumWorkspace<Exec>(d);
        }
        break;
    }
  }

  /// Bytes the constructor allocates.
  static std::size_t bytes(const Composition& c, std::size_t d) {
    switch (c.memory) {
      case Memory::error_feedback: return ErrorFeedback<Exec, float, ScaledSign>::bytes(d);
      case Memory::markov: return MarkovCompressor<Exec, float, ScaledSign>::bytes(d);
      case Memory::momentum: return d * sizeof(float);
      case Memory::none: break;
    }
    return c.wire == Wire::sign ? 0 : SignMessage<Exec, float>::bytes(d) + SumWorkspace<Exec>::bytes(d);
  }

  void encode(const Exec& space, const Vec& g, std::uint64_t k, const Words& out, const Kokkos::View<float, Mem>& scale) {
    if (memory_ == Memory::none && wire_ == Wire::sign) {
      sign_pack(space, g, out);
      return;
    }
    if (memory_ == Memory::momentum) {  // Signum: m <- b m + (1 - b) g, its sign goes up
      momentum_update(space, m_, g, momentum_);
      sign_pack(space, m_, out);
      return;
    }
    const SignMessage<Exec, float>* m = &msg_;
    if (memory_ == Memory::error_feedback) m = &ef_->compress(space, g);
    else if (memory_ == Memory::markov) m = &markov_->compress(space, g);
    else if (wire_ == Wire::stochastic_sign) stochastic_sign_compress(space, g, rng_, k, worker_, msg_, ws_);
    else scaled_sign_compress(space, g, msg_, ws_);
    Kokkos::deep_copy(space, out, m->words);
    if (wire_ != Wire::sign) Kokkos::deep_copy(space, scale, m->scale);
  }

  /// Whether the message can be formed piece by piece (run.exchange_chunk): the sign wire without a memory or with
  /// momentum (no scale over the whole vector); encode_piece() then gives encode()'s bits, piece by piece.
  bool by_piece() const {
    return wire_ == Wire::sign && (memory_ == Memory::none || memory_ == Memory::momentum);
  }
  /// The coordinates c of the message (c.begin on a word boundary) into their words of `out` (by_piece() only).
  void encode_piece(const Exec& space, const Vec& g, const CoordSlice& c, const Words& out) {
    const auto words = Kokkos::subview(out, std::make_pair(c.begin / sign_word_bits,
                                                           c.begin / sign_word_bits + packed_words(c.size())));
    if (memory_ == Memory::momentum) {
      momentum_update(space, slice_of(m_, c), slice_of(g, c), momentum_);
      sign_pack(space, slice_of(m_, c), words);
    } else {
      sign_pack(space, slice_of(g, c), words);
    }
  }

  /// The memory as the algorithm defines it (error e, or the Markov estimate), writable; empty without one.
  Vec memory(const Exec& space) {
    if (ef_) return ef_->error(space);
    if (markov_) return markov_->estimate(space);
    return m_;
  }

 private:
  Wire wire_;
  Memory memory_;
  std::uint32_t worker_;
  double momentum_;
  Vec m_;
  CounterRng rng_;
  SignMessage<Exec, float> msg_;
  SumWorkspace<Exec> ws_;
  std::optional<ErrorFeedback<Exec, float, ScaledSign>> ef_;
  std::optional<MarkovCompressor<Exec, float, ScaledSign>> markov_;
};

/// A sparse message of one worker, top-k or rand-k (index, value) pairs, views valid until its next encode.
/// rand-k draws from the generator's rand_k stream at (iteration, the worker's global index).
class SparseEncoder {
 public:
  SparseEncoder(const Composition& c, std::size_t d, std::size_t k, std::uint64_t seed, int worker)
      : memory_(c.memory), rand_(c.wire == Wire::rand_k) {
    const CounterRng rng{seed, static_cast<std::uint32_t>(RandomStream::rand_k)};
    const auto w = static_cast<std::uint32_t>(worker);
    switch (memory_) {
      case Memory::error_feedback:
        if (rand_) ef_rand_.emplace(d, k, rng, w, "terse::worker.error_feedback_rand_k");
        else ef_.emplace(d, k, "terse::worker.error_feedback_top_k");
        break;
      case Memory::markov:
        if (rand_) markov_rand_.emplace(d, k, rng, w, "terse::worker.markov_rand_k");
        else markov_.emplace(d, k, "terse::worker.markov_top_k");
        break;
      default:
        ws_.emplace(d, k);
        rng_ = rng;
        worker_ = w;
        break;
    }
  }
  /// Bytes the constructor allocates (a memory of d values and the selection's workspace; the same for both).
  static std::size_t bytes(Memory memory, std::size_t d, std::size_t k) {
    switch (memory) {
      case Memory::error_feedback: return ErrorFeedback<Exec, float, TopK>::bytes(d, k);
      case Memory::markov: return MarkovCompressor<Exec, float, TopK>::bytes(d, k);
      default: break;
    }
    return TopKWorkspace<Exec, float>::bytes(d, k);
  }

  SparseMessage<Exec, float> encode(const Exec& space, const Vec& g, std::uint64_t iteration) {
    if (ef_) return ef_->compress(space, g);
    if (markov_) return markov_->compress(space, g);
    if (ef_rand_) return ef_rand_->compress(space, g, iteration);
    if (markov_rand_) return markov_rand_->compress(space, g, iteration);
    return rand_ ? rand_k_compress(space, g, rng_, iteration, worker_, *ws_) : top_k_compress(space, g, *ws_);
  }

  Vec memory(const Exec& space) {
    if (ef_) return ef_->error(space);
    if (markov_) return markov_->estimate(space);
    if (ef_rand_) return ef_rand_->error(space);
    if (markov_rand_) return markov_rand_->estimate(space);
    return {};
  }

 private:
  Memory memory_;
  bool rand_;
  CounterRng rng_{};
  std::uint32_t worker_ = 0;
  std::optional<ErrorFeedback<Exec, float, TopK>> ef_;
  std::optional<MarkovCompressor<Exec, float, TopK>> markov_;
  std::optional<ErrorFeedback<Exec, float, RandK>> ef_rand_;
  std::optional<MarkovCompressor<Exec, float, RandK>> markov_rand_;
  std::optional<TopKWorkspace<Exec, float>> ws_;
};

/// out <- the sum of the rows of every rank's `rows` (the local workers' vectors, summed in worker order, then
/// an fp32 MPI_Allreduce), divided by W when W > 0. Returns the bytes handed to MPI. Collective.
inline std::uint64_t mean_over_workers(MPI_Comm comm, const Exec& space, const Mat& rows, const Vec& out,
                                const Kokkos::View<float*, Kokkos::HostSpace>& host, int W) {
  Kokkos::deep_copy(space, out, Kokkos::subview(rows, 0, Kokkos::ALL));
  for (std::size_t l = 1; l < rows.extent(0); ++l) {
    auto r = row(rows, static_cast<int>(l));
    auto s = out;
    Kokkos::parallel_for("terse::local.sum_rows", Kokkos::RangePolicy<Exec>(space, 0, out.extent(0)),
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
class ServerDownlink {
 public:
  virtual ~ServerDownlink() = default;
  /// Collective. slice: this rank's slice of the aggregate (g^ for the Markov memories); direction: what the
  /// workers step with (the Markov downlinks keep g~ there across rounds); iteration: the round's (draws).
  virtual void send(const Exec& space, const Vec& slice, const Vec& direction, std::uint64_t iteration) = 0;
  /// The arrays it carries across rounds (direction is g~ for the Markov downlinks).
  virtual void state(std::vector<StateArray>& out, const Vec& direction) = 0;
  /// Bytes it handed MPI itself.
  std::uint64_t bytes_sent() const { return bytes_; }

 protected:
  std::uint64_t bytes_ = 0;
};

/// The server's scaled sign of a vector split over the ranks' slices: the Markov downlink c~ = C(g^ - g~),
/// g~ <- g~ + c~ (seed 004 Alg. 1, lines 9-12), or 1-bit Adam's c = C(mean + e_s), e_s <- mean + e_s - c (Tang et
/// al. 2021), one scale for the whole vector: each rank packs its slice and sums |p| over it, the scale is the
/// sum over the ranks times 1 / d (rounded to float as set_scale() forms it), every rank gathers the words.
class ScaledSignDownlink final : public ServerDownlink {
 public:
  ScaledSignDownlink(MPI_Comm comm, SignExchange& signs, std::size_t d, bool error_feedback)
      : comm_(comm), signs_(signs), d_(d), cs_(signs.coords()), error_feedback_(error_feedback) {
    MPI_Comm_size(comm_, &P_);
    if (error_feedback_) e_ = Vec("terse::server.error_feedback", cs_.size());
    words_ = Words("terse::server.down_slice_words", signs.slice().size());
    down_ = SignMessage<Exec, float>(d, "terse::server.down");
    ws_ = SumWorkspace<Exec>(std::max<std::size_t>(cs_.size(), 1));
  }
  static std::size_t bytes(std::size_t d, int P, int rank, bool error_feedback) {
    const std::size_t cs = server_coords(d, P, rank).size();
    return (error_feedback ? cs * sizeof(float) : 0) +
           server_slice(packed_words(d), P, rank).size() * sizeof(sign_word_t) + SignMessage<Exec, float>::bytes(d) +
           SumWorkspace<Exec>::bytes(std::max<std::size_t>(cs, 1));
  }
  void send(const Exec& space, const Vec& slice, const Vec& direction, std::uint64_t) override {
    double partial = 0;
    if (error_feedback_) {
      if (cs_.size() > 0) {
        error_feedback_sign_block(space, slice, e_, words_, ws_);
        partial = ws_.host_result();
      }
      finish(space, partial);
      if (cs_.size() > 0) {
        SignMessage<Exec, float> mine;  // this slice's part of c: its words, the global scale
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
  void state(std::vector<StateArray>& out, const Vec& direction) override {
    if (error_feedback_) out.push_back({"server.error_feedback", StateArray::Kind::slice, {e_}});
    else out.push_back({"server.g_tilde", StateArray::Kind::replicated, {direction}});
  }

 private:
  void finish(const Exec& space, double partial) {
    double total = 0;
    MPI_Allreduce(&partial, &total, 1, MPI_DOUBLE, MPI_SUM, comm_);
    bytes_ += P_ > 1 ? sizeof(double) : 0;
    Kokkos::deep_copy(space, down_.scale, static_cast<float>(total * (1.0 / static_cast<double>(d_))));
    signs_.gather_words(space, words_, down_.words);
  }

  MPI_Comm comm_;
  SignExchange& signs_;
  std::size_t d_;
  CoordSlice cs_;
  bool error_feedback_;
  int P_ = 1;
  Vec e_;
  Words words_;
  SignMessage<Exec, float> down_;
  SumWorkspace<Exec> ws_;
};

/// The Markov downlink with top-k: c~ = the k largest |g^_i - g~_i| over all slices (each rank's top-k of its
/// slice are the candidates, gathered; every rank selects the global top-k from them), g~ <- g~ + c~.
class TopKDownlink final : public ServerDownlink {
 public:
  TopKDownlink(SparseExchange& sparse, std::size_t k, int rank) : sparse_(sparse), cs_(sparse.coords()) {
    const std::size_t mine = sparse_.candidate_count(rank);
    if (mine > 0) local_.emplace(cs_.size(), mine);
    if (sparse_.candidates() > 0) global_.emplace(sparse_.candidates(), k);
    down_idx_ = Kokkos::View<std::uint32_t*, Mem>("terse::server.down_indices", k);
  }
  static std::size_t bytes(std::size_t d, std::size_t k, int P, int rank) {
    std::size_t candidates = 0, b = 0;
    for (int r = 0; r < P; ++r) candidates += std::min<std::size_t>(k, server_coords(d, P, r).size());
    const std::size_t cs = server_coords(d, P, rank).size(), mine = std::min<std::size_t>(k, cs);
    if (mine > 0) b += TopKWorkspace<Exec, float>::bytes(cs, mine);
    if (candidates > 0) b += TopKWorkspace<Exec, float>::bytes(candidates, k);
    return b + k * sizeof(std::uint32_t);
  }
  void send(const Exec& space, const Vec& slice, const Vec& direction, std::uint64_t) override {
    auto g_tilde_slice = slice_of(direction, cs_);
    SparseExchange::Indices idx;
    SparseExchange::Values val;
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
    Kokkos::parallel_for("terse::server.candidate_index", Kokkos::RangePolicy<Exec>(space, 0, pos.extent(0)),
                         KOKKOS_LAMBDA(std::size_t j) { down(j) = cand(pos(j)); });
    top_k_scatter_add(space, down_idx_, global_->values(), direction, 1.0f);
  }
  void state(std::vector<StateArray>& out, const Vec& direction) override {
    out.push_back({"server.g_tilde", StateArray::Kind::replicated, {direction}});
  }

 private:
  SparseExchange& sparse_;
  CoordSlice cs_;
  std::optional<TopKWorkspace<Exec, float>> local_, global_;
  Kokkos::View<std::uint32_t*, Mem> down_idx_;
};

/// The Markov downlink with rand-k: c~ = rand-k of (g^ - g~), g~ <- g~ + c~. Every rank draws the same k
/// coordinates (the rand_k stream at the iteration and kServerDraw, a draw index no worker has), sends the
/// scaled values (d / k)(g^_i - g~_i) of those in its slice, and adds the gathered message to g~: only the values
/// travel, the indices are the shared draw.
class RandKDownlink final : public ServerDownlink {
 public:
  static constexpr std::uint32_t kServerDraw = 0xFFFFFFFFu;
  RandKDownlink(MPI_Comm comm, SparseExchange& sparse, std::size_t d, std::size_t k, std::uint64_t seed)
      : sparse_(sparse), d_(d), cs_(sparse.coords()), draw_(d, k),
        rng_{seed, static_cast<std::uint32_t>(RandomStream::rand_k)}, values_("terse::server.down_values", k),
        mine_("terse::server.down_values_of_slice", k), idx_h_("terse::server.down_indices_host", k) {
    MPI_Comm_size(comm, &P_);
    MPI_Comm_rank(comm, &rank_);
    counts_.resize(P_);
  }
  static std::size_t bytes(std::size_t d, std::size_t k) {
    return TopKWorkspace<Exec, float>::bytes(d, k) + 2 * k * sizeof(float) + k * sizeof(std::uint32_t);
  }
  void send(const Exec& space, const Vec& slice, const Vec& direction, std::uint64_t iteration) override {
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
    Kokkos::parallel_for("terse::server.rand_k_values", Kokkos::RangePolicy<Exec>(space, lo, hi),
                         KOKKOS_LAMBDA(std::size_t j) { mine(j - lo) = scale * (g_hat(idx(j) - begin) - g_tilde(idx(j))); });
    sparse_.gather_drawn(space, mine_, counts, values_);
    top_k_scatter_add(space, idx, values_, direction, 1.0f);
  }
  void state(std::vector<StateArray>& out, const Vec& direction) override {
    out.push_back({"server.g_tilde", StateArray::Kind::replicated, {direction}});
  }

 private:
  SparseExchange& sparse_;
  std::size_t d_;
  CoordSlice cs_;
  int P_ = 1, rank_ = 0;
  TopKWorkspace<Exec, float> draw_;
  CounterRng rng_;
  Vec values_, mine_;
  Kokkos::View<std::uint32_t*, Kokkos::HostSpace> idx_h_;
  std::vector<int> counts_;
};

// ------------------------------------------------------------------------------------------------------------
// Server: aggregation on this rank's slice, and the downlink
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
class Round {
 public:
  /// What exchange() hands back as each piece of the aggregate arrives: its coordinates.
  using OnPiece = std::function<void(const CoordSlice&)>;

  Round(MPI_Comm comm, const Composition& c, std::size_t d, int R, std::size_t k, std::uint64_t seed, int first_worker)
      : comm_(comm), c_(c), d_(d), R_(R), signs_(comm, d, R, sign_wire(c), c.aggregate == Aggregate::vote) {
    MPI_Comm_size(comm, &P_);
    W_ = P_ * R_;
    // The vote has its bits; one fp32 worker per rank averages its gradient in place (direction_ is that row).
    direction_ = Vec("terse::round.direction", own_direction(c, R) ? d : 0);
    const CoordSlice cs = signs_.coords();
    if (c.wire == Wire::fp32 || c.exact_start) {
      host_ = Kokkos::View<float*, Kokkos::HostSpace>("terse::round.allreduce_host",
                                                      Kokkos::SpaceAccessibility<Kokkos::HostSpace, Mem>::accessible ? 0 : d);
    }
    if (sparse(c.wire)) {
      sparse_.emplace(comm, d, R, k);
      for (int l = 0; l < R; ++l) topk_.emplace_back(c, d, k, seed, first_worker + l);
      indices_.resize(R);
      values_.resize(R);
    } else if (c.wire != Wire::fp32) {
      for (int l = 0; l < R; ++l) sign_.emplace_back(c, d, seed, first_worker + l);
    }
    if (c.aggregate == Aggregate::mean && c.wire != Wire::fp32) {
      // mean: this rank's slice of the aggregate (with a Markov downlink: g^, kept across rounds)
      slice_ = Vec("terse::server.slice", cs.size());
    }
    // The compressed downlinks (the plain one is the exchange's gather).
    if (c.downlink == Downlink::error_feedback || (c.downlink == Downlink::markov && !sparse(c.wire)))
      downlink_ = std::make_unique<ScaledSignDownlink>(comm, signs_, d, c.downlink == Downlink::error_feedback);
    else if (c.downlink == Downlink::markov && c.wire == Wire::top_k)
      downlink_ = std::make_unique<TopKDownlink>(*sparse_, k, rank());
    else if (c.downlink == Downlink::markov && c.wire == Wire::rand_k)
      downlink_ = std::make_unique<RandKDownlink>(comm, *sparse_, d, k, seed);
  }

  /// Bytes the constructor allocates on rank `rank` of P (the arguments of the constructor otherwise).
  static std::size_t bytes(const Composition& c, std::size_t d, int R, std::size_t k, int P, int rank) {
    constexpr bool staged = !Kokkos::SpaceAccessibility<Kokkos::HostSpace, Mem>::accessible;
    const CoordSlice cs = server_coords(d, P, rank);
    std::size_t b = (own_direction(c, R) ? d * sizeof(float) : 0) +  // direction
                    SignExchange::bytes(d, R, P, rank, sign_wire(c), c.aggregate == Aggregate::vote);
    if (c.wire == Wire::fp32 || c.exact_start) b += staged ? d * sizeof(float) : 0;
    if (sparse(c.wire)) {
      b += SparseExchange::bytes(d, R, k, P, rank) + R * SparseEncoder::bytes(c.memory, d, k);
    } else if (c.wire != Wire::fp32) {
      b += R * SignEncoder::bytes(c, d);
    }
    if (c.aggregate == Aggregate::mean && c.wire != Wire::fp32) b += cs.size() * sizeof(float);
    if (c.downlink == Downlink::error_feedback || (c.downlink == Downlink::markov && !sparse(c.wire)))
      b += ScaledSignDownlink::bytes(d, P, rank, c.downlink == Downlink::error_feedback);
    else if (c.downlink == Downlink::markov && c.wire == Wire::top_k)
      b += TopKDownlink::bytes(d, k, P, rank);
    else if (c.downlink == Downlink::markov && c.wire == Wire::rand_k)
      b += RandKDownlink::bytes(d, k);
    return b;
  }

  /// Pieces of at most `coordinates` coordinates (rounded up to whole words) of each server slice per chunk; 0:
  /// one chunk. Only the compositions chunked() names are chunked; the others ignore it.
  void set_chunk(std::size_t coordinates) {
    const bool able = sign_wire(c_) && c_.downlink == Downlink::plain &&
                      !(c_.aggregate == Aggregate::vote && SignExchange::direct_vote(P_, R_));
    signs_.set_chunk_words(able ? packed_words(coordinates) : 0);
    chunked_ = able && signs_.chunks() > 1;
    pending_.assign(R_, Vec());
  }
  /// Whether exchange() runs the chunked pipeline (and hands the aggregate back piece by piece).
  bool chunked() const { return chunked_; }
  std::size_t chunks() const { return chunked_ ? signs_.chunks() : 1; }

  /// Whether the round allocates its direction (the mean it hands the update rule).
  static bool own_direction(const Composition& c, int R) {
    return c.aggregate == Aggregate::mean && !(c.wire == Wire::fp32 && R == 1);
  }
  /// Whether the wire sends signs (the SignExchange needs its sign buffers).
  static bool sign_wire(const Composition& c) { return c.wire != Wire::fp32 && !sparse(c.wire); }

  int rank() const {
    int r = 0;
    MPI_Comm_rank(comm_, &r);
    return r;
  }

  /// Local worker l's gradient (or, for vote: samples, its already voted bits through voted_signs()).
  void encode(const Exec& space, int l, const Vec& g, std::uint64_t k) {
    iteration_ = k;
    switch (c_.wire) {
      case Wire::fp32: break;  // exchange() averages the gradients in place
      case Wire::top_k:
      case Wire::rand_k: {
        const auto m = topk_[l].encode(space, g, k);
        indices_[l] = m.indices;
        values_[l] = m.values;
        break;
      }
      default:
        if (chunked_ && sign_[l].by_piece()) pending_[l] = g;  // formed chunk by chunk in exchange()
        else sign_[l].encode(space, g, k, signs_.local_signs(l), signs_.local_scale(l));
        break;
    }
  }
  /// Where vote: samples puts worker l's voted bits (the sign wire only).
  Words voted_signs(int l) const { return signs_.local_signs(l); }

  /// The exchange: uplink, aggregation, downlink. Collective. grads: the local workers' gradients, (R, d)
  /// (read by the fp32 wire; the compressed wires were given theirs through encode()). on_piece, when given, is
  /// called on pieces of the aggregate that cover [0, d) as they are complete: as each chunk comes back when
  /// chunked(), else once with [0, d) at the end.
  void exchange(const Exec& space, const Mat& grads, const OnPiece& on_piece = {}) {
    if (chunked_) {
      exchange_chunked(space, on_piece);
      return;
    }
    exchange_whole(space, grads);
    if (on_piece) on_piece(CoordSlice{0, d_});
  }

 private:
  void exchange_chunked(const Exec& space, const OnPiece& on_piece) {
    const std::size_t n = signs_.chunks();
    const bool vote = c_.aggregate == Aggregate::vote, markov = c_.memory == Memory::markov;
    const double inv_w = 1.0 / static_cast<double>(W_);
    const int me = rank();
    const CoordSlice mine = signs_.coords();
    const auto form = [&](std::size_t j) {  // the deferred compression of chunk j: every destination's piece
      for (int l = 0; l < R_; ++l) {
        if (!pending_[l].data()) continue;
        Region region("terse::compress");
        for (int r = 0; r < P_; ++r) {
          const CoordSlice c = signs_.piece_coords(r, j);
          if (c.size() > 0) sign_[l].encode_piece(space, pending_[l], c, signs_.local_signs(l));
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

  void exchange_whole(const Exec& space, const Mat& grads) {
    const double inv_w = 1.0 / static_cast<double>(W_);
    if (c_.aggregate == Aggregate::vote) {
      signs_.vote(space);
      return;
    }
    if (c_.wire == Wire::fp32) {
      if (R_ == 1) {  // the allreduce in place on the gradient: no copy (what a plain fp32 code does)
        direction_ = row(grads, 0);
        fp32_bytes_ += allreduce_sum(comm_, space, direction_, host_);
        average_in_place(space, direction_, inv_w);
      } else {
        fp32_bytes_ += mean_over_workers(comm_, space, grads, direction_, host_, W_);
      }
      return;
    }
    // Uplink and the mean (or, for Markov memories, g^ <- g^ + mean) on this rank's slice.
    const bool markov = c_.memory == Memory::markov;
    if (sparse(c_.wire)) {
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

 public:

  /// The exact start of the Markov memories (optimizer.estimate_start: gradient; Richtarik et al. 2021, Alg. 1:
  /// g_i^0 = grad f_i(x^0)): every local worker's estimate becomes its gradient, and g^ (this rank's slice) and
  /// direction() (g~ with a Markov downlink) the mean of all W gradients, sent once as fp32 values (an
  /// allreduce). Replaces encode() and exchange() at iteration 0. Collective.
  void start(const Exec& space, const Mat& grads) {
    for (int l = 0; l < R_; ++l) {
      const Vec estimate = sparse(c_.wire) ? topk_[l].memory(space) : sign_[l].memory(space);
      Kokkos::deep_copy(space, estimate, row(grads, l));
    }
    fp32_bytes_ += mean_over_workers(comm_, space, grads, direction_, host_, W_);
    Kokkos::deep_copy(space, slice_, slice_of(direction_, signs_.coords()));
  }

  /// The state the round carries across iterations: the workers' compressor memories; with Markov memories
  /// the server's g^ (its slice) and, with a Markov downlink, g~ (the same on every rank); with an
  /// error-feedback downlink, the server's error (its slice).
  void state(const Exec& space, std::vector<StateArray>& out) {
    std::vector<Vec> mem;
    for (auto& e : sign_) mem.push_back(e.memory(space));
    for (auto& e : topk_) mem.push_back(e.memory(space));
    if (!mem.empty() && mem.front().extent(0) > 0)
      out.push_back({c_.memory == Memory::markov     ? "worker.markov_estimate"
                     : c_.memory == Memory::momentum ? "worker.momentum"
                                                     : "worker.error_feedback",
                     StateArray::Kind::workers, mem});
    if (c_.memory == Memory::markov) out.push_back({"server.g_hat", StateArray::Kind::slice, {slice_}});
    if (downlink_) downlink_->state(out, direction_);
  }

  /// This rank's server slice of the coordinates.
  CoordSlice coords() const { return signs_.coords(); }
  Vec direction() const { return direction_; }
  Words vote_words() const { return signs_.vote_words(); }
  Words tie_words() const { return signs_.tie_words(); }

  std::uint64_t bytes_sent() const {
    return signs_.total_bytes_sent() + (sparse_ ? sparse_->total_bytes_sent() : 0) + fp32_bytes_ +
           (downlink_ ? downlink_->bytes_sent() : 0);
  }

 private:
  MPI_Comm comm_;
  Composition c_;
  std::size_t d_;
  int R_, P_ = 1, W_ = 1;
  SignExchange signs_;
  std::optional<SparseExchange> sparse_;
  std::vector<SignEncoder> sign_;
  std::vector<SparseEncoder> topk_;
  std::vector<SparseExchange::Indices> indices_;
  std::vector<SparseExchange::Values> values_;
  Vec direction_, slice_;
  Kokkos::View<float*, Kokkos::HostSpace> host_;
  std::unique_ptr<ServerDownlink> downlink_;
  std::uint64_t iteration_ = 0;  // the iteration of the last encode (the rand-k downlink's draw)
  bool chunked_ = false;
  std::vector<Vec> pending_;     // chunked: the gradients whose messages exchange() forms chunk by chunk
  std::uint64_t fp32_bytes_ = 0;
};


}  // namespace terse::pieces
