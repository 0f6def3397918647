// terse_Run.cpp: `terse run`: the deck's method (terse::optim::Method, terse_Optim.hpp: the step users call too)
// on the deck's problem, with the monitor, the history, checkpoints and stops.
//
// The pieces own their state: the workers' gradients (WorkerGradients, here), the method (its compressors and
// memories, the sharded server, the downlink, the update rule), the monitor (terse_Monitor.hpp). A Run asks them
// for their memory (before allocating), their arrays (checkpoints) and their steps; Run::iterate() is the loop:
// the workers' gradients, the method's step, a history row, a checkpoint, a stop.
#include "terse_Run.hpp"

#include "terse_Checkpoint.hpp"
#include "terse_Compose.hpp"
#include "terse_Exchange.hpp"
#include "terse_Monitor.hpp"
#include "terse_Optim.hpp"
#include "terse_Problem.hpp"
#include "terse_Runtime.hpp"
#include "terse_Watchdog.hpp"

#include <terse_Sign.hpp>
#include <terse_Statistics.hpp>
#include <terse_Version.hpp>
#include <terse_Vote.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <thread>

namespace terse {
namespace {

using namespace pieces;

/// Combinations the deck accepts key by key but the run cannot do; refused before anything is loaded.
void check_combination(const Deck& deck) {
  const auto& o = deck.optimizer;
  if (o.kind == OptimizerKind::majority_vote && o.lr_schedule == LrSchedule::adaptive && !deck.run.batch_full &&
      deck.run.batch < 2)
    throw DeckError(deck.path + ": optimizer.lr_schedule: adaptive estimates the sign-error rates from each worker's "
                    "batch (seed 000 Sec. II-B) and needs run.batch >= 2 or full, not " +
                    std::to_string(deck.run.batch));
  // run.exchange_chunk set to a number where the composition never chunks would be ignored: refuse it (auto, and
  // 0, one chunk, are what every composition does).
  if (deck.run.exchange_chunk > 0 && !optim::Method<Exec>::chunkable(compose(o)))
    throw DeckError(deck.path + ": run.exchange_chunk: " + to_string(o.kind) +
                    (o.kind == OptimizerKind::cd_adam || o.kind == OptimizerKind::ef21
                         ? std::string(" with compressor: ") + to_string(o.compressor) + " and broadcast: " +
                               to_string(o.broadcast)
                         : std::string()) +
                    " does not exchange in chunks; only the sign wires with a plain downlink do (majority_vote, signum, "
                    "stochastic_sign, ef_signsgd, amsgrad_naive, amsgrad_ef, and cd_adam and ef21 with "
                    "compressor: scaled_sign and broadcast: mean). Leave it out (auto) or set 0");
}

/// The problem, read on every rank (a rank reads only its workers' blocks, so a bad file may fail on some ranks
/// only: the ranks agree before going on).
std::unique_ptr<Problem<Exec>> load_problem(MPI_Comm comm, const Deck& deck, const WorkerRange& workers) {
  std::unique_ptr<Problem<Exec>> problem;
  std::string err;
  try {
    problem = make_problem<Exec>(deck.problem, workers);
  } catch (const UserError& e) {
    err = e.what();
  }
  err = first_error(comm, err);
  if (!err.empty()) throw UserError(err);
  return problem;
}

// ------------------------------------------------------------------------------------------------------------
// The workers' gradients
// ------------------------------------------------------------------------------------------------------------

/// Each local worker's stochastic gradient at its model (rows of all()). With per-sample gradients (vote:
/// samples, lr_schedule: adaptive) also the batch's samples, the worker's eta* estimate (seed 000 Prop. 3) and,
/// for vote: samples, the worker's message: the majority of its samples' signs (seed 000 Alg. 2).
class WorkerGradients {
 public:
  WorkerGradients(const Deck& deck, Problem<Exec>& problem, const WorkerRange& workers)
      : o_(deck.optimizer), run_(deck.run), problem_(problem), workers_(workers), batch_(batch_of(deck.run)),
        grads_("terse::worker.gradients", workers.count, problem.dim()) {
    const std::int64_t rows = sample_rows(deck, problem, workers);
    if (rows == 0) return;
    const std::size_t d = problem.dim();
    samples_ = Mat("terse::worker.samples", rows, d);
    if (o_.vote == VoteMode::samples) {
      sample_signs_ = decltype(sample_signs_)("terse::worker.sample_signs", rows, packed_words(d));
      sample_vote_ = Words("terse::worker.sample_vote", packed_words(d));
      sample_tie_ = Words("terse::worker.sample_tie", packed_words(d));
    }
  }
  /// The largest batch of the rank's workers when the run needs per-sample gradients, else 0.
  static std::int64_t sample_rows(const Deck& deck, const Problem<Exec>& problem, const WorkerRange& workers) {
    const auto& o = deck.optimizer;
    if (o.kind != OptimizerKind::majority_vote || (o.vote != VoteMode::samples && o.lr_schedule != LrSchedule::adaptive))
      return 0;
    std::int64_t rows = 1;
    for (int w = workers.first; w < workers.end(); ++w) rows = std::max(rows, problem.batch_rows(w, batch_of(deck.run)));
    return rows;
  }
  static std::vector<MemoryTerm> memory(const Deck& deck, std::size_t d, std::int64_t sample_rows) {
    const std::uint64_t f = sizeof(float), R = deck.workers.per_rank;
    std::vector<MemoryTerm> t{{"the local workers' gradients", R * d * f}};
    if (sample_rows > 0) {
      const auto rows = static_cast<std::uint64_t>(sample_rows);
      t.push_back({"per-sample gradients", rows * d * f});
      if (deck.optimizer.vote == VoteMode::samples)
        t.push_back({"per-sample signs and their vote", (rows + 2) * packed_words(d) * sizeof(sign_word_t)});
    }
    return t;
  }

  Mat all() const { return grads_; }
  Vec gradient(int l) const { return row_of(grads_, l); }

  /// Local worker l's gradient at xw, iteration k. Returns false when the worker's message is already in the
  /// round (vote: samples), true when gradient(l) holds its gradient. Adds its eta* estimate to eta_sum.
  bool compute(const Exec& space, int l, const Vec& xw, std::uint64_t k, optim::Method<Exec>& method, double& eta_sum) {
    const int w = workers_.first + l;
    if (samples_.extent(0) > 0) {
      const std::int64_t rows = problem_.batch_rows(w, batch_);
      auto G = Kokkos::subview(samples_, std::make_pair<std::size_t, std::size_t>(0, rows), Kokkos::ALL);
      problem_.per_sample_gradients(xw, w, k, batch_, run_.seed, G);
      if (o_.lr_schedule == LrSchedule::adaptive) eta_sum += eta_star(space, G, *o_.lipschitz);
      if (o_.vote == VoteMode::samples) {
        // Seed 000 Alg. 2 on the worker's batch: the majority of the per-sample signs (a tie sends +1). The
        // worker's compression, timed as such inside terse::gradient.
        Region region("terse::compress");
        for (std::int64_t b = 0; b < rows; ++b)
          sign_pack(space, Kokkos::subview(G, b, Kokkos::ALL), Kokkos::subview(sample_signs_, b, Kokkos::ALL));
        auto S = Kokkos::subview(sample_signs_, std::make_pair<std::size_t, std::size_t>(0, rows), Kokkos::ALL);
        majority_vote(space, S, sample_vote_, sample_tie_);
        auto out_words = method.voted_signs(l);
        auto vv = sample_vote_, tt = sample_tie_;
        Kokkos::parallel_for("terse::worker.sample_vote_bits", Kokkos::RangePolicy<Exec>(space, 0, out_words.extent(0)),
                             KOKKOS_LAMBDA(std::size_t q) { out_words(q) = vv(q) | tt(q); });
        return false;
      }
    }
    problem_.stochastic_gradient(xw, w, k, batch_, run_.seed, gradient(l));
    return true;
  }

 private:
  const OptimizerConfig& o_;
  const RunConfig& run_;
  Problem<Exec>& problem_;
  WorkerRange workers_;
  Batch batch_;
  Mat grads_, samples_;
  Kokkos::View<sign_word_t**, Kokkos::LayoutRight, Mem> sample_signs_;
  Words sample_vote_, sample_tie_;
};

// ------------------------------------------------------------------------------------------------------------
// A run
// ------------------------------------------------------------------------------------------------------------

class Run {
 public:
  Run(MPI_Comm comm, const Deck& deck, const RunOptions& options);
  RunSummary go();

 private:
  template <class... A>
  void say(const char* fmt, A... args) const {
    if (out_) {
      std::fprintf(out_, fmt, args...);
      std::fflush(out_);
    }
  }
  void check_memory();
  void build_pieces();
  std::vector<StateArray> state_arrays();
  Scalars scalars();
  void restore();
  void banner();
  bool iterate();
  bool record(std::int64_t iteration);
  void time_breakdown(double total);
  std::string write_checkpoint(std::int64_t iteration);
  std::uint64_t my_algorithm_bytes() const;
  double bytes_sent_total();
  Vec monitored_model();
  RunSummary finish();

  MPI_Comm comm_;
  const Deck& deck_;
  const RunOptions& options_;
  const OptimizerConfig& o_;
  const RunConfig& run_;
  optim::Spec spec_;
  int rank_ = 0, P_ = 1, R_ = 1, W_ = 1;
  WorkerRange workers_;
  std::FILE* out_ = nullptr;
  std::unique_ptr<Problem<Exec>> problem_;
  std::size_t d_ = 0;
  Exec space_;
  RunSummary summary_;
  HistoryExtras extras_;
  // the pieces
  Vec x_;
  std::optional<Monitor> monitor_;
  std::optional<WorkerGradients> gradients_;
  std::optional<optim::Method<Exec>> method_;
  // what a checkpoint holds besides the arrays, and the counters
  double bits_up_ = 0, bits_down_ = 0, bytes_sent_before_ = 0, seconds_before_ = 0;
  std::optional<HistoryWriter> history_;
  std::optional<CheckpointIdentity> identity_;
  Kokkos::Timer timer_;
  std::int64_t k_first_ = 0, k_done_ = 0, last_checkpoint_ = -1;
  std::string diverged_;  // why the run stopped early (non-finite loss or state), "" otherwise
  int stopped_by_ = 0;    // the signal that stopped the run, 0 otherwise
};

Run::Run(MPI_Comm comm, const Deck& deck, const RunOptions& options)
    : comm_(comm), deck_(deck), options_(options), o_(deck.optimizer), run_(deck.run) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &P_);
  out_ = rank_ == 0 ? options.progress : nullptr;
  check_combination(deck);
  spec_ = compose(o_);
  R_ = static_cast<int>(deck.workers.per_rank);
  workers_ = workers_of_rank(rank_, P_, deck.workers.per_rank);
  W_ = workers_.total;
  problem_ = load_problem(comm_, deck, workers_);  // reads the data files: DataError names the file and line
  d_ = problem_->dim();
  if (d_ > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    throw DeckError(deck.path + ": problem.dim: d = " + std::to_string(d_) +
                    " is beyond what one MPI message of fp32 values or 32-bit indices can count (2^31 - 1)");
  summary_.dim = d_;
  summary_.top_k = spec_.sparse_wire() ? optim::top_k_count(spec_.k_ratio, d_) : 0;
  summary_.workers = W_;
  summary_.ranks = P_;
  char buf[512];
  std::snprintf(buf, sizeof buf, "%s | %s: %s | W = %d workers on %d ranks (%d per rank) | Kokkos %s",
                problem_->description().c_str(), to_string(o_.kind), optim::describe(spec_).c_str(), W_, P_, R_, Exec::name());
  summary_.description = buf;
  extras_ = HistoryExtras{image_classifier(deck.problem.kind), run_.success_probability_samples > 0};
  if (run_.checkpoint_path == run_.output)
    throw DeckError(deck.path + ": run.checkpoint.path: the checkpoint and the history (run.output) are the same file, " +
                    run_.output);
  if (run_.checkpoint_every > 0) check_output_path(run_.checkpoint_path);
  check_memory();
  build_pieces();
}

/// The memory estimate, before anything is allocated; refused when the node's ranks would not fit.
void Run::check_memory() {
  const auto terms = run_footprint(deck_, d_, P_, rank_, WorkerGradients::sample_rows(deck_, *problem_, workers_));
  for (const auto& t : terms) summary_.footprint_bytes += t.bytes;
  MPI_Comm node;
  MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node);
  unsigned long long mine = summary_.footprint_bytes, on_node = 0;
  int node_ranks = 1;
  MPI_Allreduce(&mine, &on_node, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, node);
  MPI_Comm_size(node, &node_ranks);
  MPI_Comm_free(&node);
  std::string err, parts;
  for (const auto& t : terms)
    if (t.bytes > 0) parts += "\n    " + format_bytes(static_cast<double>(t.bytes)) + "  " + t.what;
  if (Kokkos::SpaceAccessibility<Kokkos::HostSpace, Mem>::accessible) {
    const AvailableMemory avail = available_memory();
    if (avail.bytes > 0 && on_node > avail.bytes)
      err = deck_.path + ": this run needs an estimated " + format_bytes(static_cast<double>(mine)) + " per rank (" +
            std::to_string(node_ranks) + " rank(s) on this node: " + format_bytes(static_cast<double>(on_node)) +
            ") besides the data, but only " + format_bytes(static_cast<double>(avail.bytes)) + " is available (" +
            avail.source + "); nothing was allocated. Lower problem.dim or workers.per_rank, or spread the ranks " +
            "over more nodes. Rank " + std::to_string(rank_) + "'s estimate:" + parts;
  } else {
    // One GPU per rank: the rank's own state against its device's free memory.
    const std::size_t free_bytes = compat::device_memory_free();
    if (free_bytes > 0 && mine > free_bytes)
      err = deck_.path + ": this run needs an estimated " + format_bytes(static_cast<double>(mine)) +
            " of device memory on rank " + std::to_string(rank_) + " besides the data, but its device has " +
            format_bytes(static_cast<double>(free_bytes)) + " free; nothing was allocated. Lower problem.dim or " +
            "workers.per_rank, or use more ranks (GPUs). Rank " + std::to_string(rank_) + "'s estimate:" + parts;
  }
  err = first_error(comm_, err);
  if (!err.empty()) throw DeckError(err);
}

void Run::build_pieces() {
  x_ = Vec("terse::x", d_);
  problem_->initial_model(x_, run_.seed);
  monitor_.emplace(comm_, *problem_, deck_, workers_);
  // accept: descent's objective: f at a model, the ranks' sums allreduced.
  const auto objective = [this](const Vec& x, std::uint64_t& bytes) {
    double sum = 0, mine = problem_->local_loss_sum(x);
    MPI_Allreduce(&mine, &sum, 1, MPI_DOUBLE, MPI_SUM, comm_);
    if (P_ > 1) bytes += sizeof(double);
    return problem_->finish_loss(sum, x);
  };
  method_.emplace(comm_, spec_, layout_of(deck_, d_), objective, monitor_->scratch());
  method_->start(space_, x_);
  gradients_.emplace(deck_, *problem_, workers_);
  identity_.emplace(CheckpointIdentity::of(deck_, d_, W_));
}

/// Everything carried from one iteration to the next (besides the scalars), by name: what a checkpoint holds.
std::vector<StateArray> Run::state_arrays() {
  std::vector<StateArray> a;
  if (!method_->local()) a.push_back({"x", StateArray::Kind::replicated, {x_}});
  method_->state(space_, a);
  return a;
}

Scalars Run::scalars() {
  Scalars s;
  method_->scalars(s);
  s.emplace_back("bits_up", &bits_up_);
  s.emplace_back("bits_down", &bits_down_);
  s.emplace_back("bytes_sent", &bytes_sent_before_);
  return s;
}

std::uint64_t Run::my_algorithm_bytes() const { return method_->bytes_sent(); }

/// The history's bytes_sent: every rank's bytes since iteration 0 (collective; its own 8 bytes are monitoring).
double Run::bytes_sent_total() {
  double mine = static_cast<double>(my_algorithm_bytes()), all = mine;
  if (P_ > 1) {
    MPI_Allreduce(&mine, &all, 1, MPI_DOUBLE, MPI_SUM, comm_);
    monitor_->bytes() += sizeof(double);
  }
  return bytes_sent_before_ + all;
}

/// The model a row measures: x, or the local workers' average (its allreduce is monitoring).
Vec Run::monitored_model() { return method_->local() ? method_->average(space_, monitor_->bytes()) : x_; }

// ---- checkpoints ----------------------------------------------------------------------------------------

using HostView = Kokkos::View<float*, Kokkos::HostSpace, Kokkos::MemoryUnmanaged>;

/// Where an array lies in the checkpoint and which piece rank `rank` moves: [W, d] rows of its workers, its
/// server slice of [d], or, for a replicated [d], its slice when writing and all of it when reading.
std::pair<std::vector<std::uint64_t>, Piece> layout(const StateArray& a, bool reading, const WorkerRange& workers,
                                                    std::uint64_t d, const CoordSlice& server, const CoordSlice& mine) {
  switch (a.kind) {
    case StateArray::Kind::workers:
      return {{static_cast<std::uint64_t>(workers.total), d},
              Piece{static_cast<std::uint64_t>(workers.first) * d, static_cast<std::uint64_t>(workers.count) * d}};
    case StateArray::Kind::slice: return {{d}, Piece{server.begin, server.size()}};
    case StateArray::Kind::replicated: break;
  }
  return {{d}, reading ? Piece{0, d} : Piece{mine.begin, mine.size()}};
}

/// Returns "" when written, else the name of the first array that is not finite (nothing is written then).
std::string Run::write_checkpoint(std::int64_t iteration) {
  Region region("terse::checkpoint");
  const double seconds = seconds_before_ + timer_.seconds();
  const CoordSlice mine = server_coords(d_, P_, rank_), server = method_->server_coords();
  std::string bad;
  std::vector<float> host;
  std::optional<CheckpointWriter> w;
  w.emplace(comm_, run_.checkpoint_path, *identity_, iteration);
  for (const auto& a : state_arrays()) {
    const auto [shape, piece] = layout(a, false, workers_, d_, server, mine);
    host.resize(piece.count);
    if (a.kind == StateArray::Kind::workers) {
      for (int l = 0; l < R_; ++l) Kokkos::deep_copy(HostView(host.data() + l * d_, d_), a.views[l]);
    } else {
      const Vec src = a.kind == StateArray::Kind::slice ? a.views[0] : slice_of(a.views[0], mine);
      Kokkos::deep_copy(HostView(host.data(), piece.count), src);  // fences: the state is complete
    }
    if (bad.empty() && !std::all_of(host.begin(), host.end(), [](float f) { return std::isfinite(f); })) bad = a.name;
    w->write_array(a.name, shape, piece, host.data());
  }
  bad = first_error(comm_, bad);
  if (!bad.empty()) {
    w.reset();  // removes the temporary file; the previous checkpoint stays
    return bad;
  }
  std::vector<std::pair<std::string, double>> values{{"seconds", seconds}};
  const double sent = bytes_sent_total();
  for (const auto& [name, value] : scalars()) values.emplace_back(name, value == &bytes_sent_before_ ? sent : *value);
  w->write_scalars(values);
  w->write_history(summary_.rows, extras_);
  w->commit();
  return {};
}

void Run::restore() {
  CheckpointReader reader(comm_, options_.restart, *identity_);
  k_first_ = reader.iteration();
  if (k_first_ > run_.iterations)
    throw CheckpointError(options_.restart + ": the checkpoint is at iteration " + std::to_string(k_first_) +
                          ", beyond the deck's run.iterations = " + std::to_string(run_.iterations));
  const CoordSlice mine = server_coords(d_, P_, rank_), server = method_->server_coords();
  std::vector<float> host;
  for (const auto& a : state_arrays()) {
    const auto [shape, piece] = layout(a, true, workers_, d_, server, mine);
    host.resize(piece.count);
    reader.read_array(a.name, shape, piece, host.data());
    if (a.kind == StateArray::Kind::workers) {
      for (int l = 0; l < R_; ++l) Kokkos::deep_copy(a.views[l], HostView(host.data() + l * d_, d_));
    } else {
      Kokkos::deep_copy(a.views[0], HostView(host.data(), piece.count));
    }
  }
  const Scalars s = scalars();
  std::vector<std::string> names{"seconds"};
  for (const auto& sc : s) names.push_back(sc.first);
  const auto values = reader.read_scalars(names);
  seconds_before_ = values[0];
  for (std::size_t i = 0; i < s.size(); ++i) *s[i].second = values[i + 1];
  summary_.rows = reader.read_history(extras_);
}

// ---- monitoring ------------------------------------------------------------------------------------------

bool Run::record(std::int64_t iteration) {
  Region region("terse::monitor");
  const Vec xm = monitored_model();
  HistoryRow r;
  r.iteration = iteration;
  const bool full = monitor_->measure(space_, xm, r);
  r.lr = method_->lr();
  r.bits_up = bits_up_;
  r.bits_down = bits_down_;
  r.bytes_sent = bytes_sent_total();
  r.wall_time = iteration == 0 ? 0.0 : seconds_before_ + timer_.seconds();  // since the first iteration started
  summary_.rows.push_back(r);
  if (history_) {
    Region write("terse::history");  // the row into the HDF5 file (collective, flushed)
    history_->append(r);
  }
  if (options_.keep_row_models) {
    auto xm_h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), xm);
    summary_.row_models.emplace_back(xm_h.data(), xm_h.data() + d_);
  }
  monitor_->print_row(out_, r, r.wall_time - seconds_before_, run_.iterations);
  return full;
}

/// Where this rank's time went, from the first row to the end: the regions' exclusive times (terse_Region.hpp).
void Run::time_breakdown(double total) {
  if (!out_ || total <= 0) return;
  const auto& t = RegionTimes::get().seconds();
  std::string line;
  double inside = 0;
  const auto add = [&](const char* label, double s) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s%s %.1f %% (%s)", line.empty() ? "" : ", ", label, 100.0 * s / total,
                  format_seconds(s).c_str());
    line += buf;
  };
  for (const char* phase : {"gradient", "compress", "communicate", "aggregate", "update", "monitor", "history", "checkpoint"}) {
    const auto it = t.find(std::string("terse::") + phase);
    const double s = it == t.end() ? 0.0 : it->second;
    inside += s;
    add(phase, s);
  }
  add("other", std::max(0.0, total - inside));
  say("  time on rank %d, %s in all: %s\n", rank_, format_seconds(total).c_str(), line.c_str());
}

void Run::banner() {
  say("terse run %s\n  %s\n", deck_.path.c_str(), summary_.description.c_str());
  const Batch batch = batch_of(run_);
  say("  d = %zu, %lld iterations, batch %s, lr %g, seed %llu, output %s\n", d_, static_cast<long long>(run_.iterations),
      batch.full ? "full" : std::to_string(batch.size).c_str(), o_.lr, static_cast<unsigned long long>(run_.seed),
      options_.write_history ? run_.output.c_str() : "(none)");
  const optim::RoundBits rb = method_->bits();
  if (spec_.local())
    say("  per worker and sync: %s up, %s down (every %lld steps)\n", format_bits(rb.up).c_str(),
        format_bits(rb.down).c_str(), static_cast<long long>(o_.sync_period));
  else
    say("  per worker and iteration: %s up, %s down (fp32 would be %s each way)\n", format_bits(rb.up).c_str(),
        format_bits(rb.down).c_str(), format_bits(32.0 * d_).c_str());
  if (spec_.has_warmup())
    say("  warm-up: the first %lld iterations send fp32 gradients, %s each way\n",
        static_cast<long long>(o_.warmup_steps), format_bits(method_->warmup_bits().up).c_str());
  if (spec_.exact_start && k_first_ == 0)
    say("  exact start: iteration 0 sends fp32 gradients, %s each way\n", format_bits(method_->start_bits().up).c_str());
  if (method_->chunks() > 1)
    say("  exchange in %zu chunks of each server slice (run.exchange_chunk %lld), overlapped with %s\n",
        method_->chunks(), static_cast<long long>(method_->layout().chunk_for(P_)),
        method_->updates_by_piece() ? "compression, aggregation and the update" : "compression and aggregation");
  say("  memory: %s per rank for the state and buffers (estimated; the data besides)\n",
      format_bytes(static_cast<double>(summary_.footprint_bytes)).c_str());
  if (k_first_ > 0)
    say("  restarted from %s at iteration %lld\n", options_.restart.c_str(), static_cast<long long>(k_first_));
  if (run_.checkpoint_every > 0)
    say("  checkpoints: %s every %lld updates\n", run_.checkpoint_path.c_str(),
        static_cast<long long>(run_.checkpoint_every));
  monitor_->print_header(out_);
}

// ---- the iterations --------------------------------------------------------------------------------------

/// The algorithm, one iteration after the other: every local worker's gradient and message (or local step),
/// the round (uplink, aggregation on the sharded server, downlink; or the local methods' periodic average),
/// the update, a history row every log_every updates, checkpoints, and a stop when a rank is signalled.
/// Returns false when the run stopped early (diverged_ or stopped_by_ says why).
bool Run::iterate() {
  // Testing hook (docs/checkpoint.md): TERSE_FAULT_INJECT=RANK:ITERATION makes that rank throw at the start of
  // that iteration, as an error on one rank only would; RANK:ITERATION:hang makes it stop there and wait, as a
  // rank behind a dead link would (the watchdog's test).
  int fault_rank = -1;
  long long fault_iteration = -1;
  char fault_kind[8] = "";
  if (const char* f = std::getenv("TERSE_FAULT_INJECT"))
    std::sscanf(f, "%d:%lld:%7s", &fault_rank, &fault_iteration, fault_kind);
  const bool fault_hangs = std::string(fault_kind) == "hang";
  // A rank stuck in a collective (a peer or a link gone) ends the job after run.watchdog seconds.
  Watchdog watchdog(run_.watchdog, rank_);
  for (std::int64_t k = k_first_; k < run_.iterations; ++k) {
    if (rank_ == fault_rank && k == fault_iteration && fault_hangs)
      for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
    if (rank_ == fault_rank && k == fault_iteration)
      throw std::runtime_error("fault injected by TERSE_FAULT_INJECT=" + std::string(std::getenv("TERSE_FAULT_INJECT")));
    const auto ku = static_cast<std::uint64_t>(k);
    optim::StepInputs in;
    in.k = k;
    for (int l = 0; l < R_; ++l) {  // the workers' gradients (vote: samples: their messages)
      Region region("terse::gradient");
      in.messages_given = !gradients_->compute(space_, l, method_->model(l, x_), ku, *method_, in.eta_sum);
    }
    const optim::StepReport sent = method_->step(space_, gradients_->all(), x_, in);  // compress, exchange, update
    bits_up_ += sent.bits_up, bits_down_ += sent.bits_down;
    const std::int64_t done = k + 1;
    k_done_ = done;
    if (done % run_.log_every == 0 || done == run_.iterations) {
      space_.fence();
      const bool full = record(done);
      const HistoryRow& r = summary_.rows.back();
      if (!std::isfinite(r.loss) || (full && !std::isfinite(r.grad_norm_sq))) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "non-finite %s at iteration %lld (loss %g, |grad f|^2 %g)",
                      std::isfinite(r.loss) ? "gradient" : "loss", static_cast<long long>(done), r.loss, r.grad_norm_sq);
        diverged_ = buf;
        return false;
      }
    }
    // A stop asked for by a signal on any rank (or by the caller) ends every rank after this iteration.
    // stop: the signal number (> 0), -1 for the caller's stop_after, 0 to go on; the ranks take the largest.
    int stop = stop_signal();
    if (stop == 0 && options_.stop_after == done) stop = -1;
    if (P_ > 1) MPI_Allreduce(MPI_IN_PLACE, &stop, 1, MPI_INT, MPI_MAX, comm_);
    const bool due = run_.checkpoint_every > 0 && (done % run_.checkpoint_every == 0 || done == run_.iterations);
    if (due || stop != 0) {
      const std::string bad = write_checkpoint(done);
      if (!bad.empty()) {
        diverged_ = "non-finite values in the state '" + bad + "' at iteration " + std::to_string(done);
        return false;
      }
      last_checkpoint_ = done;
      if (stop == 0) say("  checkpoint %s (iteration %lld)\n", run_.checkpoint_path.c_str(), static_cast<long long>(done));
    }
    if (stop != 0) {
      stopped_by_ = stop;
      return false;
    }
    watchdog.beat(done);
  }
  return true;
}

RunSummary Run::go() {
  if (!options_.restart.empty()) {
    restore();
    last_checkpoint_ = k_first_;
  }
  k_done_ = k_first_;
  if (options_.write_history) {  // opened before the first iteration (its directory must exist and be writable)
    HistoryAttributes attributes;
    attributes.algorithm = to_string(o_.kind);
    attributes.problem = to_string(deck_.problem.kind);
    attributes.config = effective_config_yaml(deck_);
    attributes.workers = W_;
    attributes.ranks = P_;
    attributes.kokkos_backend = Exec::name();
    attributes.terse_version = TERSE_VERSION_STRING;
    history_.emplace(comm_, run_.output, attributes, extras_);
    for (const auto& r : summary_.rows) history_->append(r);
  }
  banner();
  RegionTimes::get().reset();
  Kokkos::Timer total;
  if (k_first_ == 0) {
    record(0);
    method_->set_accepted_loss(summary_.rows.back().loss);
  }
  timer_.reset();
  monitor_->start_clock(k_first_);
  // An exception here may be on one rank only, with the others already in the next collective: it ends the
  // whole job (MPI_Abort) instead of leaving them waiting.
  try {
    iterate();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "terse: rank %d: error after iteration %lld: %s; ending the job (MPI_Abort)\n", rank_,
                 static_cast<long long>(k_done_), e.what());
    std::fflush(stderr);
    MPI_Abort(comm_, 1);
  }
  space_.fence();
  summary_.seconds = timer_.seconds();
  summary_.iterations_done = k_done_;
  RunSummary s = finish();
  time_breakdown(total.seconds());
  return s;
}

/// The end of a run: a stop (checkpoint written, no history file), a divergence (the history so far, an
/// error naming the last good checkpoint), or completion (the final model, the history closed).
RunSummary Run::finish() {
  if (!diverged_.empty() || stopped_by_ != 0) {
    const std::string kept = last_checkpoint_ >= 0
                                 ? run_.checkpoint_path + " (iteration " + std::to_string(last_checkpoint_) + ")"
                                 : std::string("none");
    if (stopped_by_ != 0) {
      summary_.stopped_by_signal = stopped_by_;
      if (history_) history_->discard();  // the checkpoint holds the history; the restart writes the file
      say("stopped by %s after iteration %lld: checkpoint %s written; continue with\n  terse run %s --restart %s\n",
          stopped_by_ > 0 ? signal_name(stopped_by_) : "request", static_cast<long long>(k_done_),
          run_.checkpoint_path.c_str(), deck_.path.c_str(), run_.checkpoint_path.c_str());
      return summary_;
    }
    if (history_) {
      history_->write_status("stopped: " + diverged_);
      history_->close();
    }
    throw DivergedError(diverged_ + "; the run is stopped" +
                        (history_ ? ", history so far in " + run_.output : std::string()) +
                        "; last good checkpoint: " + kept);
  }
  const Vec xf = [&] {
    Region region("terse::monitor");
    return monitored_model();
  }();
  auto xf_h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), xf);
  summary_.final_x.assign(xf_h.data(), xf_h.data() + d_);
  if (history_) {
    const CoordSlice cs = server_coords(d_, P_, rank_);
    history_->write_final_x(d_, cs.begin, xf_h.data() + cs.begin, cs.size());
    history_->write_status("complete");
    history_->close();
  }
  summary_.algorithm_bytes = my_algorithm_bytes();
  summary_.exchange_chunks = method_->chunks();
  summary_.monitoring_bytes = monitor_->bytes();
  const HistoryRow& last = summary_.rows.back();
  say("done: %lld iterations in %s, loss %.6e -> %.6e", static_cast<long long>(run_.iterations - k_first_),
      format_seconds(summary_.seconds).c_str(), summary_.rows.front().loss, last.loss);
  if (image_classifier(deck_.problem.kind)) say(", test accuracy %.4f", last.test_accuracy);
  say("\n  per worker: %s up, %s down in all; this rank handed MPI %s per iteration for the algorithm\n",
      format_bits(last.bits_up).c_str(), format_bits(last.bits_down).c_str(),
      format_bits(8.0 * summary_.algorithm_bytes / std::max<std::int64_t>(1, run_.iterations - k_first_)).c_str());
  if (history_) say("  history: %s\n", history_->path().c_str());
  return summary_;
}

}  // namespace

// ------------------------------------------------------------------------------------------------------------

std::vector<MemoryTerm> run_footprint(const Deck& deck, std::uint64_t d, int P, int rank, std::int64_t sample_rows) {
  std::vector<MemoryTerm> t{{"model x", d * sizeof(float)}};
  const auto add = [&](const std::vector<MemoryTerm>& more) { t.insert(t.end(), more.begin(), more.end()); };
  // the method (the local rules borrow the monitor's buffers)
  add(optim::Method<Exec>::memory(compose(deck.optimizer), layout_of(deck, d), P, rank, true));
  add(Monitor::memory(deck, d));
  add(WorkerGradients::memory(deck, d, sample_rows));
  return t;
}

RunSummary run_deck(MPI_Comm comm, const Deck& deck, const RunOptions& options) {
  Run run(comm, deck, options);
  return run.go();
}

}  // namespace terse
