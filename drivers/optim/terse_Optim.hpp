#pragma once
// terse_Optim.hpp: the compressed step, for `terse run` and for your own training loop (CMake:
// find_package(terse COMPONENTS optim), target terse::optim; docs/library.md).
//
// A Method is one of the seeds' algorithms (signSGD with majority vote, Signum, stochastic sign, error feedback,
// CD-Adam, EF21, 1-bit Adam, AMSGrad, AdaGrad, local SGD, Local AdaAlter, ...) built from a Spec (terse_Spec.hpp:
// the compressor on the wire, the worker memory, the server's aggregation, the downlink, the update rule, their
// hyper-parameters) for a gradient of length d on an MPI communicator with R logical workers on each rank
// (Layout). Each iteration hand it the workers' gradients and the model; it compresses each worker's gradient,
// exchanges the messages (the sharded server: each rank aggregates a slice; chunked and overlapped where the
// method allows), aggregates, sends the result back (compressed where the method does) and updates the model,
// the same on every rank:
//
//   #include <terse_Optim.hpp>
//   terse::optim::Spec spec;                       // majority vote (seed 000 Alg. 1):
//   spec.wire = terse::optim::Wire::sign;          //   1 bit per coordinate up,
//   spec.aggregate = terse::optim::Aggregate::vote;//   the vote of all W workers,
//   spec.rule = terse::optim::Rule::sign;          //   x <- x - lr sign(vote)
//   spec.lr = 1e-3;
//   terse::optim::Method<> method(MPI_COMM_WORLD, spec, {d, /*workers per rank*/ 2, /*seed*/ 7});
//   Kokkos::View<float**, Kokkos::LayoutRight> grads("g", 2, d);   // one row per local worker
//   for (std::int64_t k = 0; k < iterations; ++k) {
//     for (int l = 0; l < 2; ++l) my_gradient(method.model(l, x), k, l, row l of grads);
//     const auto report = method.step(space, grads, x, {k});       // collective
//   }
//
// A Spec from a deck (the optimizer section of `terse run`'s decks): terse::compose(deck.optimizer) in terse_Compose.hpp
// (target terse::deck). What a step reads besides the views: StepInputs (the iteration, which keys the random
// draws and the schedules). What it reports: StepReport (payload bits per worker). bytes_sent() is what this rank
// handed MPI. Checkpoints: state() lists the method's arrays (StateArray: replicated, one row per worker, or split
// by server slices, with their names) and scalars() its scalars; save and restore them (and your model) and the
// continued run is bitwise the uninterrupted one.
//
// Determinism: a worker's message is a pure function of (seed, iteration, worker, its gradient); the server sums
// in worker order; so the trajectory depends on the number W of workers only, not on how they map to ranks
// (bitwise where the arithmetic is elementwise; the fp32 allreduce and the sharded scale's sum follow the rank
// layout at rounding level), nor on the thread count.
//
// The method's pieces (terse::pieces, in impl/: the encoders over the compressor concept of terse_Compressor.hpp,
// the round, the downlinks, the rules) are templated on the execution space, as the kernels are.

#include "terse_Spec.hpp"
#include "terse_State.hpp"
#include "impl/terse_Round.hpp"
#include "impl/terse_Rules.hpp"

#include <terse_Region.hpp>

#include <Kokkos_Core.hpp>
#include <mpi.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace terse::optim {

template <class ExecSpace = Kokkos::DefaultExecutionSpace>
class Method {
 public:
  using execution_space = ExecSpace;
  using Vec = VecOf<ExecSpace>;
  using Mat = MatOf<ExecSpace>;
  using Words = Kokkos::View<sign_word_t*, typename ExecSpace::memory_space>;

  /// Builds the method's pieces (collective: every rank of comm, the same spec and layout). objective: the full
  /// objective at a model, needed by accept_descent. scratch: buffers a local method may borrow for its averages
  /// (two d-vectors and, on device backends, a host buffer of d); left empty, it allocates its own. Throws
  /// std::invalid_argument for a spec it cannot build.
  Method(MPI_Comm comm, const Spec& spec, const Layout& layout, Objective<ExecSpace> objective = {},
         Scratch<ExecSpace> scratch = {});
  /// Its pieces refer to each other: a Method stays where it was built (hold it in a std::optional or a pointer).
  Method(const Method&) = delete;
  Method& operator=(const Method&) = delete;
  Method(Method&&) = delete;
  Method& operator=(Method&&) = delete;

  /// What rank `rank` of P allocates for this spec and layout, term by term, before anything is allocated (the
  /// pieces' own sizes, the same their constructors use). scratch_lent: the caller lends the local rules' buffers.
  static std::vector<MemoryTerm> memory(const Spec& spec, const Layout& layout, int P, int rank,
                                        bool scratch_lent = false);

  // ---- each iteration --------------------------------------------------------------------------------------

  /// Where local worker l takes its gradient: its own model for the local methods, else the shared x.
  Vec model(int l, const Vec& x) const { return local_ ? local_->model(l) : x; }
  /// One iteration (collective): grads holds the local workers' gradients, (R, d), at model(l, x); x is the
  /// shared model, updated in place (the local methods move their own models and ignore it). A worker's row may
  /// be overwritten (a message hook: 1-bit Adam's momentum, Signum's weight decay).
  StepReport step(const ExecSpace& space, const Mat& grads, const Vec& x, const StepInputs& in);
  /// Where a worker's own message goes when the caller forms it (StepInputs::messages_given: seed 000 Alg. 2's
  /// vote of the worker's per-sample signs): worker l's packed signs (the sign wire only).
  Words voted_signs(int l) const {
    if (!round_) throw std::logic_error("terse::optim::Method::voted_signs: a local method sends no messages");
    return round_->voted_signs(l);
  }

  /// Local methods: every worker's model starts at x0 (call once before the first step).
  void start(const ExecSpace& space, const Vec& x0) {
    if (local_) local_->start(space, x0);
  }
  /// accept_descent: the loss of the starting model (set before the first step).
  void set_accepted_loss(double f) {
    if (rule_) rule_->set_accepted_loss(f);
  }
  /// Local methods: the workers' average model (collective, into a scratch buffer); adds its bytes to `bytes`.
  Vec average(const ExecSpace& space, std::uint64_t& bytes) const {
    if (!local_) throw std::logic_error("terse::optim::Method::average: only the local methods have workers' models");
    return local_->average(space, bytes);
  }

  // ---- state, for checkpoints --------------------------------------------------------------------------------

  /// The arrays the method carries from one iteration to the next (besides a shared model, which is yours):
  /// the local models, the rule's moments, the workers' memories, the server's slices. Call it at every
  /// checkpoint (and before restoring): it brings the lazy memories up to date, so views kept from an earlier
  /// call may not hold the state.
  void state(const ExecSpace& space, std::vector<StateArray<ExecSpace>>& out);
  /// The scalars beside them (the rule's step size and accepted loss).
  void scalars(Scalars& out) {
    if (local_) local_->scalars(out);
    else rule_->scalars(out);
  }
  /// This rank's server slice of the coordinates (the `slice` arrays' piece).
  CoordSlice server_coords() const { return round_ ? round_->coords() : terse::server_coords(layout_.d, P_, rank_); }

  // ---- what it is and what it sent ---------------------------------------------------------------------------

  const Spec& spec() const { return spec_; }
  const Layout& layout() const { return layout_; }
  bool local() const { return static_cast<bool>(local_); }
  int workers() const { return W_; }
  /// k of the sparse wires (0 otherwise).
  std::size_t top_k() const { return k_; }
  /// Bytes this rank handed MPI for the method since it was built.
  std::uint64_t bytes_sent() const;
  /// The step size of the last update (the history's lr).
  double lr() const { return local_ ? local_->lr() : rule_->lr(); }
  /// Payload bits per worker of a round (a sync for the local methods), of a warm-up round, of the exact start.
  RoundBits bits() const { return rb_; }
  RoundBits warmup_bits() const { return rb_warmup_; }
  RoundBits start_bits() const { return {32.0 * static_cast<double>(layout_.d), 32.0 * static_cast<double>(layout_.d)}; }
  /// Chunks of each exchange (1: not chunked), and whether the update runs on each piece as it returns.
  std::size_t chunks() const { return round_ ? round_->chunks() : 1; }
  bool updates_by_piece() const { return round_ && round_->chunked() && rule_->by_piece(); }
  /// Which compositions chunk at all: the sign wires with a plain downlink (the sharded vote, the mean of signs
  /// or scaled signs sent back as fp32 values).
  static bool chunkable(const Spec& spec) { return pieces::Round<ExecSpace>::Plan::chunks(spec); }
  /// Whether it chunks on P ranks with this layout (not the direct vote of two ranks of one worker each).
  static bool chunkable(const Spec& spec, const Layout& layout, int P) {
    if (spec.local()) return false;
    const std::size_t k = spec.sparse_wire() ? top_k_count(spec.k_ratio, layout.d) : 0;
    return pieces::Round<ExecSpace>::Plan::of(spec, layout.d, layout.workers_per_rank, k, P, 0).chunkable();
  }
  /// Payload bits per worker of one round of the spec (docs/hdf5.md: 32 per fp32 value, 1 per sign, 32 per
  /// scale, 64 per top-k or rand-k entry; 32 per entry of the server's rand-k message, whose indices every rank
  /// draws itself; a local method's sync sends the models, and Local AdaAlter its denominators, as fp32).
  static RoundBits round_bits(const Spec& spec, std::size_t d, std::size_t k, int W);

 private:
  MPI_Comm comm_;
  Spec spec_;
  Layout layout_;
  int rank_ = 0, P_ = 1, R_ = 1, W_ = 1;
  std::size_t k_ = 0;
  std::unique_ptr<pieces::UpdateRule<ExecSpace>> rule_;
  std::unique_ptr<pieces::LocalRule<ExecSpace>> local_;
  std::optional<pieces::Round<ExecSpace>> round_, warmup_round_;  // 1-bit Adam's warm-up rounds exchange fp32
  RoundBits rb_, rb_warmup_;
};

// ------------------------------------------------------------------------------------------------------------
// Definitions
// ------------------------------------------------------------------------------------------------------------

template <class E>
RoundBits Method<E>::round_bits(const Spec& c, std::size_t d, std::size_t k, int W) {
  RoundBits b;
  const double dd = static_cast<double>(d);
  if (c.local()) {
    const double factor = c.rule == Rule::local_adaalter ? 2 : 1;  // models, plus the denominators
    b.up = b.down = factor * 32.0 * dd;
    return b;
  }
  b.up = pieces::message_bits<E>(c, d, k);
  if (c.downlink == Downlink::markov && c.wire == Wire::rand_k) {
    b.down = 32 * static_cast<double>(k);  // the server's rand-k values; every rank draws their indices
  } else if (c.downlink == Downlink::markov || c.downlink == Downlink::error_feedback) {
    b.down = pieces::message_bits<E>(c, d, k);
  } else if (c.aggregate == Aggregate::vote) {
    b.down = dd * (W % 2 == 0 ? 2 : 1);  // the vote, plus the tie mask for even W
  } else {
    b.down = 32.0 * dd;  // the mean, as fp32 values
  }
  return b;
}

namespace detail {
inline void check_spec(const Spec& s, const Layout& l) {
  const auto bad = [](const std::string& what) { throw std::invalid_argument("terse::optim::Method: " + what); };
  if (l.d == 0) bad("the gradient's length d is 0");
  if (l.workers_per_rank < 1) bad("workers_per_rank must be >= 1");
  if (!(s.lr > 0)) bad("lr must be > 0");
  if (s.aggregate == Aggregate::vote && s.wire != Wire::sign) bad("the vote aggregates sign messages (wire: sign)");
  if (s.wire == Wire::sign && s.aggregate != Aggregate::vote)
    bad("the plain sign has no scale to average: it is aggregated by the vote (aggregate: vote); a mean needs "
        "scaled_sign or stochastic_sign");
  if (s.rule == Rule::sign && s.aggregate != Aggregate::vote) bad("the sign step moves by the vote (aggregate: vote)");
  if (s.aggregate == Aggregate::vote && s.rule != Rule::sign) bad("the vote's result is a sign (rule: sign)");
  if (s.local() && (s.wire != Wire::fp32 || s.memory != Memory::none))
    bad("the local rules average fp32 models (wire: fp32, memory: none)");
  if (s.memory == Memory::momentum && !(s.wire == Wire::sign && s.aggregate == Aggregate::vote))
    bad("the workers' momentum is Signum's (wire: sign, aggregate: vote)");
  if (s.wire == Wire::fp32 && s.memory != Memory::none) bad("the fp32 wire keeps no worker memory");
  if (s.wire == Wire::fp32 && s.downlink != Downlink::plain) bad("the fp32 wire has the plain downlink");
  if (s.exact_start && s.memory != Memory::markov) bad("exact_start starts the Markov memories");
  if (s.memory == Memory::markov && s.aggregate != Aggregate::mean)
    bad("the Markov memories are averaged by the server (aggregate: mean)");
  if (s.downlink == Downlink::markov && s.memory != Memory::markov) bad("the Markov downlink goes with Markov memories");
  if (s.downlink == Downlink::error_feedback && !(s.wire == Wire::scaled_sign && s.rule == Rule::onebit_adam))
    bad("the error-feedback downlink is 1-bit Adam's (wire: scaled_sign, rule: onebit_adam)");
  if (s.rule == Rule::onebit_adam && s.warmup_steps < 1) bad("1-bit Adam needs warmup_steps >= 1");
  if (s.sparse_wire() && !(s.k_ratio > 0 && s.k_ratio <= 1)) bad("k_ratio must be in (0, 1]");
  if (optim::quantized(s.wire)) {
    if (s.aggregate != Aggregate::mean || s.downlink != Downlink::plain)
      bad("QSGD and TernGrad messages are averaged by the server and sent back as fp32 values (aggregate: mean, "
          "downlink: plain)");
    if (s.memory != Memory::none && s.memory != Memory::error_feedback)
      bad("QSGD and TernGrad keep no worker memory or error feedback (memory: none or error_feedback)");
    if (s.wire == Wire::qsgd && s.levels < 1) bad("levels must be >= 1");
    if (s.bucket < 1) bad("bucket must be >= 1");
  }
}
}  // namespace detail

template <class E>
Method<E>::Method(MPI_Comm comm, const Spec& spec, const Layout& layout, Objective<E> objective, Scratch<E> scratch)
    : comm_(comm), spec_(spec), layout_(layout) {
  detail::check_spec(spec, layout);
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &P_);
  R_ = layout.workers_per_rank;
  W_ = P_ * R_;
  const std::size_t d = layout.d;
  k_ = spec.sparse_wire() ? top_k_count(spec.k_ratio, d) : 0;
  const int first = rank_ * R_;
  if (spec.local()) {
    // Lent buffers of at least d values are used on their first d; what is missing is allocated here.
    const auto first_d = std::make_pair(std::size_t(0), d);
    if (scratch.a.extent(0) < d || scratch.b.extent(0) < d) {
      scratch.a = Vec("terse::method.scratch_a", d);
      scratch.b = Vec("terse::method.scratch_b", d);
    } else {
      scratch.a = Kokkos::subview(scratch.a, first_d);
      scratch.b = Kokkos::subview(scratch.b, first_d);
    }
    if (staged_v<E> && scratch.host.extent(0) < d)
      scratch.host = Kokkos::View<float*, Kokkos::HostSpace>("terse::method.scratch_host", d);
    local_ = pieces::make_local_rule<E>(spec, d, R_, comm_, W_, std::move(scratch));
  } else {
    rule_ = pieces::make_update_rule<E>(spec, d, comm_, W_, std::move(objective));
    round_.emplace(comm_, spec, d, R_, k_, layout.seed, first);
    round_->set_chunk(static_cast<std::size_t>(layout.chunk_for(P_)));
  }
  if (spec.has_warmup()) warmup_round_.emplace(comm_, spec.warmup(), d, R_, k_, layout.seed, first);
  rb_ = round_bits(spec, d, k_, W_);
  rb_warmup_ = spec.has_warmup() ? round_bits(spec.warmup(), d, k_, W_) : rb_;
}

template <class E>
std::vector<MemoryTerm> Method<E>::memory(const Spec& s, const Layout& l, int P, int rank, bool scratch_lent) {
  const std::size_t d = l.d, k = s.sparse_wire() ? top_k_count(s.k_ratio, d) : 0;
  const int R = l.workers_per_rank;
  std::vector<MemoryTerm> t;
  const auto add = [&](const std::vector<MemoryTerm>& more) { t.insert(t.end(), more.begin(), more.end()); };
  if (s.local()) {
    add(pieces::local_rule_memory<E>(s, d, R));
    if (!scratch_lent)
      t.push_back({"the local averages' buffers", 2 * d * sizeof(float) + (staged_v<E> ? d * sizeof(float) : 0)});
  } else {
    add(pieces::update_rule_memory<E>(s, d));
    t.push_back({"communication: messages, compressor memories, exchange and server buffers",
                 pieces::Round<E>::bytes(s, d, R, k, P, rank)});
  }
  if (s.has_warmup())
    t.push_back({"communication of the warm-up rounds", pieces::Round<E>::bytes(s.warmup(), d, R, k, P, rank)});
  return t;
}

template <class E>
StepReport Method<E>::step(const E& space, const Mat& grads, const Vec& x, const StepInputs& in) {
  using pieces::Region;
  StepReport report;
  Kokkos::Timer timer;
  const auto phase_end = [&](int q) {
    if (!in.time_phases) return;
    space.fence();
    report.seconds[q] = timer.seconds() - (q > 0 ? report.seconds[0] : 0) - (q > 1 ? report.seconds[1] : 0);
  };
  const std::int64_t k = in.k;
  const auto ku = static_cast<std::uint64_t>(k);
  if (local_) {  // the local methods: a step per worker, an average every sync_period steps
    {
      Region region("terse::update");
      for (int l = 0; l < R_; ++l) local_->step(space, l, pieces::row_of(grads, l), k);
    }
    phase_end(0);
    Region region("terse::communicate");
    if (local_->sync(space, k)) {
      report.communicated = true;
      report.bits_up = rb_.up, report.bits_down = rb_.down;
    }
    phase_end(1);
    return report;
  }
  const bool warm = spec_.has_warmup() && k < spec_.warmup_steps;
  const bool starting = spec_.exact_start && k == 0;  // the Markov estimates start at the gradients
  pieces::Round<E>& round = warm ? *warmup_round_ : *round_;
  if (in.messages_given) {
    round.set_iteration(ku);
  } else {
    for (int l = 0; l < R_; ++l) {  // the workers' messages
      Region region("terse::compress");
      const Vec g = pieces::row_of(grads, l);
      rule_->message(space, g, x, warm);
      if (!starting) round.encode(space, l, g, ku);
    }
  }
  phase_end(0);
  // A chunked round hands the aggregate back piece by piece: a coordinate-wise rule steps on each piece while
  // the rest is still in flight.
  const bool by_piece = !starting && round.chunked() && rule_->by_piece();
  {
    Region region("terse::communicate");  // uplink, aggregation, downlink
    if (starting) {
      round.start(space, grads);
    } else if (by_piece) {
      {
        Region update("terse::update");
        rule_->begin_step(space, x, in);
      }
      round.exchange(space, grads, [&](const CoordSlice& c) {
        Region update("terse::update");
        rule_->step_piece(space, x, round, c);
      });
    } else {
      round.exchange(space, grads);
    }
  }
  const RoundBits sent = starting ? start_bits() : warm ? rb_warmup_ : rb_;
  report.bits_up = sent.up, report.bits_down = sent.down;
  report.communicated = true;
  phase_end(1);
  {
    Region region("terse::update");
    if (by_piece) rule_->end_step(space, x);
    else rule_->step(space, x, round, in, warm);
  }
  phase_end(2);
  return report;
}

template <class E>
void Method<E>::state(const E& space, std::vector<StateArray<E>>& out) {
  if (local_) local_->state(out);
  if (rule_) rule_->state(out);
  if (round_) round_->state(space, out);
}

template <class E>
std::uint64_t Method<E>::bytes_sent() const {
  return (round_ ? round_->bytes_sent() : 0) + (warmup_round_ ? warmup_round_->bytes_sent() : 0) +
         (rule_ ? rule_->bytes_sent() : 0) + (local_ ? local_->bytes_sent() : 0);
}

#define TERSE_METHOD_EXTERN(E) extern template class Method<E>;
TERSE_FOR_EACH_BACKEND(TERSE_METHOD_EXTERN)
#undef TERSE_METHOD_EXTERN

}  // namespace terse::optim
