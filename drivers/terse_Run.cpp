// terse_Run.cpp: the driver loop of `terse run`, composed of the pieces of terse_Algorithm.hpp.
//
// The communication pieces (encoders, Round) are in terse_Round.hpp; here: the state, the update rules, the
// monitoring rows, checkpoints, and run_deck() which wires them.
#include "terse_Run.hpp"

#include "terse_Algorithm.hpp"
#include "terse_Checkpoint.hpp"
#include "terse_Exchange.hpp"
#include "terse_Round.hpp"
#include "terse_Problem.hpp"
#include "terse_Runtime.hpp"

#include <terse_Compress.hpp>
#include <terse_Random.hpp>
#include <terse_Sign.hpp>
#include <terse_Statistics.hpp>
#include <terse_TopK.hpp>
#include <terse_Update.hpp>
#include <terse_Version.hpp>
#include <terse_Vote.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>

namespace terse {
namespace {

using namespace pieces;



// ------------------------------------------------------------------------------------------------------------
// Helpers of the loop
// ------------------------------------------------------------------------------------------------------------

double allreduce_scalar(MPI_Comm comm, double v, std::uint64_t& bytes, int P) {
  double out = 0;
  MPI_Allreduce(&v, &out, 1, MPI_DOUBLE, MPI_SUM, comm);
  if (P > 1) bytes += sizeof(double);
  return out;
}

/// f(x) of the full objective (collective).
double full_loss(MPI_Comm comm, Problem<Exec>& problem, const Vec& x, std::uint64_t& bytes, int P) {
  return problem.finish_loss(allreduce_scalar(comm, problem.local_loss_sum(x), bytes, P), x);
}

std::string format_bits(double bits) {
  char buf[32];
  const double bytes = bits / 8;
  if (bytes < 1e3) std::snprintf(buf, sizeof buf, "%.0f B", bytes);
  else if (bytes < 1e6) std::snprintf(buf, sizeof buf, "%.1f kB", bytes / 1e3);
  else if (bytes < 1e9) std::snprintf(buf, sizeof buf, "%.1f MB", bytes / 1e6);
  else std::snprintf(buf, sizeof buf, "%.2f GB", bytes / 1e9);
  return buf;
}

std::string format_seconds(double s) {
  char buf[32];
  if (!std::isfinite(s)) return "-";
  if (s < 100) std::snprintf(buf, sizeof buf, "%.1fs", s);
  else if (s < 6000) std::snprintf(buf, sizeof buf, "%.0fm%02.0fs", std::floor(s / 60), std::fmod(s, 60));
  else std::snprintf(buf, sizeof buf, "%.0fh%02.0fm", std::floor(s / 3600), std::fmod(s / 60, 60));
  return buf;
}

/// Combinations the deck accepts key by key but the run cannot do; refused before anything is loaded.
void check_combination(const Deck& deck) {
  const auto& o = deck.optimizer;
  if (o.kind == OptimizerKind::majority_vote && o.lr_schedule == LrSchedule::adaptive && !deck.run.batch_full &&
      deck.run.batch < 2)
    throw DeckError(deck.path + ": optimizer.lr_schedule: adaptive estimates the sign-error rates from each worker's "
                    "batch (seed 000 Sec. II-B) and needs run.batch >= 2 or full, not " +
                    std::to_string(deck.run.batch));
}

}  // namespace

// ------------------------------------------------------------------------------------------------------------
// Memory
// ------------------------------------------------------------------------------------------------------------

std::vector<MemoryTerm> run_footprint(const Deck& deck, std::uint64_t d, int P, int rank, std::int64_t sample_rows) {
  const Composition c = compose(deck.optimizer);
  const auto& o = deck.optimizer;
  const std::uint64_t R = deck.workers.per_rank, f = sizeof(float), nw = packed_words(d);
  const std::uint64_t k = c.wire == Wire::top_k ? top_k_count(o.k_ratio, d) : 0;
  constexpr bool staged = !Kokkos::SpaceAccessibility<Kokkos::HostSpace, Mem>::accessible;
  std::vector<MemoryTerm> t;
  t.push_back({"model x", d * f});
  if (c.local()) t.push_back({"the local workers' models", R * d * f});
  if (c.rule == Rule::local_adaalter) t.push_back({"Local AdaAlter accumulators and denominators", (R + 1) * d * f});
  if (c.rule == Rule::amsgrad) t.push_back({"AMSGrad m, v, v_hat", 3 * d * f});
  if (c.rule == Rule::adagrad) t.push_back({"AdaGrad accumulator", d * f});
  if (c.rule == Rule::onebit_adam) t.push_back({"Adam m, v", 2 * d * f});
  if (o.accept == AcceptRule::descent && o.kind == OptimizerKind::majority_vote) t.push_back({"previous model (accept: descent)", d * f});
  t.push_back({"monitoring: model and full gradient", 2 * d * f + (staged ? d * f : 0)});
  t.push_back({"the local workers' gradients", R * d * f});
  if (sample_rows > 0) {
    const auto rows = static_cast<std::uint64_t>(sample_rows);
    t.push_back({"per-sample gradients", rows * d * f});
    if (o.vote == VoteMode::samples) t.push_back({"per-sample signs and their vote", (rows + 2) * nw * sizeof(sign_word_t)});
  }
  if (deck.run.success_probability_samples > 0)
    t.push_back({"success probabilities: a stochastic gradient, its signs and the true gradient's, counts",
                 d * f + 2 * nw * sizeof(sign_word_t) + d * sizeof(std::uint32_t)});
  if (!c.local())
    t.push_back({"communication: messages, compressor memories, exchange and server buffers",
                 Round::bytes(c, d, static_cast<int>(R), k, P, rank)});
  if (c.has_warmup())
    t.push_back({"communication of the warm-up rounds", Round::bytes(c.warmup(), d, static_cast<int>(R), k, P, rank)});
  return t;
}

// ------------------------------------------------------------------------------------------------------------
// run_deck
// ------------------------------------------------------------------------------------------------------------

RunSummary run_deck(MPI_Comm comm, const Deck& deck, const RunOptions& options) {
  int rank = 0, P = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &P);
  std::FILE* out = rank == 0 ? options.progress : nullptr;
  const auto say = [&](const char* fmt, auto... args) {
    if (out) {
      std::fprintf(out, fmt, args...);
      std::fflush(out);
    }
  };

  check_combination(deck);
  const Composition comp = compose(deck.optimizer);
  const auto& o = deck.optimizer;
  const auto& run = deck.run;
  const int R = static_cast<int>(deck.workers.per_rank);
  const WorkerRange workers = workers_of_rank(rank, P, deck.workers.per_rank);
  const int W = workers.total;
  const Batch batch = batch_of(run);

  // The problem (reads the data files: DataError names the file and line). A rank reads only its workers'
  // blocks, so a bad file may fail on some ranks only: the ranks agree before going on.
  std::unique_ptr<Problem<Exec>> problem;
  {
    std::string err;
    try {
      problem = make_problem<Exec>(deck.problem, workers);
    } catch (const UserError& e) {
      err = e.what();
    }
    err = first_error(comm, err);
    if (!err.empty()) throw UserError(err);
  }
  const std::size_t d = problem->dim();
  const std::uint64_t k_top = comp.wire == Wire::top_k ? top_k_count(o.k_ratio, d) : 0;
  if (d > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    throw DeckError(deck.path + ": problem.dim: d = " + std::to_string(d) +
                    " is beyond what one MPI message of fp32 values or 32-bit indices can count (2^31 - 1)");

  Exec space;
  RunSummary summary;
  summary.dim = d;
  summary.top_k = k_top;
  summary.workers = W;
  summary.ranks = P;
  {
    char buf[512];
    std::snprintf(buf, sizeof buf, "%s | %s: %s | W = %d workers on %d ranks (%d per rank) | Kokkos %s",
                  problem->description().c_str(), to_string(o.kind), describe(comp).c_str(), W, P, R, Exec::name());
    summary.description = buf;
  }

  const bool mlp = deck.problem.kind == ProblemKind::mlp;
  const HistoryExtras extras{mlp, run.success_probability_samples > 0};
  const bool checkpointing = run.checkpoint_every > 0;
  if (run.checkpoint_path == run.output)
    throw DeckError(deck.path + ": run.checkpoint.path: the checkpoint and the history (run.output) are the same file, " +
                    run.output);
  if (checkpointing) check_output_path(run.checkpoint_path);

  // Per-sample gradients for vote: samples and the adaptive learning rate.
  const bool per_sample = o.kind == OptimizerKind::majority_vote &&
                          (o.vote == VoteMode::samples || o.lr_schedule == LrSchedule::adaptive);
  std::int64_t sample_rows = 0;
  if (per_sample) {
    sample_rows = 1;
    for (int w = workers.first; w < workers.end(); ++w) sample_rows = std::max(sample_rows, problem->batch_rows(w, batch));
  }

  // ---- memory: estimated before anything is allocated; refused when the node's ranks would not fit ----------
  {
    const auto terms = run_footprint(deck, d, P, rank, sample_rows);
    for (const auto& t : terms) summary.footprint_bytes += t.bytes;
    MPI_Comm node;
    MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
    unsigned long long mine = summary.footprint_bytes, on_node = 0;
    int node_ranks = 1;
    MPI_Allreduce(&mine, &on_node, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, node);
    MPI_Comm_size(node, &node_ranks);
    MPI_Comm_free(&node);
    std::string err;
    std::string parts;
    for (const auto& t : terms)
      if (t.bytes > 0) parts += "\n    " + format_bytes(static_cast<double>(t.bytes)) + "  " + t.what;
    if (Kokkos::SpaceAccessibility<Kokkos::HostSpace, Mem>::accessible) {
      const AvailableMemory avail = available_memory();
      if (avail.bytes > 0 && on_node > avail.bytes)
        err = deck.path + ": this run needs an estimated " + format_bytes(static_cast<double>(mine)) + " per rank (" +
              std::to_string(node_ranks) + " rank(s) on this node: " + format_bytes(static_cast<double>(on_node)) +
              ") besides the data, but only " + format_bytes(static_cast<double>(avail.bytes)) + " is available (" +
              avail.source + "); nothing was allocated. Lower problem.dim or workers.per_rank, or spread the ranks " +
              "over more nodes. Rank " + std::to_string(rank) + "'s estimate:" + parts;
    } else {
      // One GPU per rank: the rank's own state against its device's free memory.
      const std::size_t free_bytes = compat::device_memory_free();
      if (free_bytes > 0 && mine > free_bytes)
        err = deck.path + ": this run needs an estimated " + format_bytes(static_cast<double>(mine)) +
              " of device memory on rank " + std::to_string(rank) + " besides the data, but its device has " +
              format_bytes(static_cast<double>(free_bytes)) + " free; nothing was allocated. Lower problem.dim or " +
              "workers.per_rank, or use more ranks (GPUs). Rank " + std::to_string(rank) + "'s estimate:" + parts;
    }
    err = first_error(comm, err);
    if (!err.empty()) throw DeckError(err);
  }

  // ---- state -------------------------------------------------------------------------------------------
  // Shared model (every worker holds the same x after each round; one copy per rank), or one model per
  // local worker for the local methods.
  Vec x("terse::x", d);
  problem->initial_model(x, run.seed);
  Mat x_local, accum_local;
  Vec denom, m, v, v_hat, accum, x_prev, avg;
  Kokkos::View<float*, Kokkos::HostSpace> host_buf("terse::host_buffer",
                                                   Kokkos::SpaceAccessibility<Kokkos::HostSpace, Mem>::accessible ? 0 : d);
  if (comp.local()) {
    x_local = Mat("terse::x_local", R, d);
    for (int l = 0; l < R; ++l) Kokkos::deep_copy(space, row(x_local, l), x);
    if (comp.rule == Rule::local_adaalter) {
      accum_local = Mat("terse::adaalter.accum", R, d);
      denom = Vec("terse::adaalter.denom", d);
      const float b0sq = static_cast<float>(o.b0 * o.b0);
      Kokkos::deep_copy(space, accum_local, b0sq);
      Kokkos::deep_copy(space, denom, b0sq);
    }
  }
  if (comp.rule == Rule::amsgrad) {
    m = Vec("terse::amsgrad.m", d);
    v = Vec("terse::amsgrad.v", d);
    v_hat = Vec("terse::amsgrad.v_hat", d);
  }
  if (comp.rule == Rule::adagrad) accum = Vec("terse::adagrad.accum", d);
  if (comp.rule == Rule::onebit_adam) {
    m = Vec("terse::adam.m", d);
    v = Vec("terse::adam.v", d);
  }
  if (o.accept == AcceptRule::descent && o.kind == OptimizerKind::majority_vote) x_prev = Vec("terse::x_prev", d);
  avg = Vec("terse::monitor.x", d);
  Vec grad_full("terse::monitor.grad", d);
  // run.success_probability_samples: a stochastic gradient, its packed signs, the true gradient's, the counts.
  const bool sp = run.success_probability_samples > 0;
  Vec sp_g("terse::monitor.success_gradient", sp ? d : 0);
  Words sp_words("terse::monitor.success_signs", sp ? packed_words(d) : 0);
  Words sp_ref("terse::monitor.success_reference", sp ? packed_words(d) : 0);
  Kokkos::View<std::uint32_t*, Mem> sp_count("terse::monitor.success_counts", sp ? d : 0);

  Mat grads("terse::worker.gradients", R, d);
  std::optional<Round> round;
  if (!comp.local()) round.emplace(comm, comp, d, R, k_top, run.seed, workers.first);
  // 1-bit Adam: the warm-up rounds exchange fp32 gradients (comp.warmup()); round takes over after them.
  std::optional<Round> warmup_round;
  if (comp.has_warmup()) warmup_round.emplace(comm, comp.warmup(), d, R, k_top, run.seed, workers.first);
  const auto warming_up = [&](std::int64_t k) { return comp.has_warmup() && k < o.warmup_steps; };

  // Everything carried from one iteration to the next (besides the scalars below), by name: what a
  // checkpoint holds. Temporaries (gradients, messages, x_prev) are not in it.
  const auto state_arrays = [&]() {
    std::vector<StateArray> a;
    if (comp.local()) {
      std::vector<Vec> rows;
      for (int l = 0; l < R; ++l) rows.push_back(row(x_local, l));
      a.push_back({"worker.x", StateArray::Kind::workers, rows});
      if (comp.rule == Rule::local_adaalter) {
        std::vector<Vec> acc;
        for (int l = 0; l < R; ++l) acc.push_back(row(accum_local, l));
        a.push_back({"worker.adaalter_accum", StateArray::Kind::workers, acc});
        a.push_back({"adaalter.denom", StateArray::Kind::replicated, {denom}});
      }
    } else {
      a.push_back({"x", StateArray::Kind::replicated, {x}});
    }
    if (comp.rule == Rule::amsgrad) {
      a.push_back({"amsgrad.m", StateArray::Kind::replicated, {m}});
      a.push_back({"amsgrad.v", StateArray::Kind::replicated, {v}});
      a.push_back({"amsgrad.v_hat", StateArray::Kind::replicated, {v_hat}});
    }
    if (comp.rule == Rule::adagrad) a.push_back({"adagrad.accum", StateArray::Kind::replicated, {accum}});
    if (comp.rule == Rule::onebit_adam) {
      a.push_back({"adam.m", StateArray::Kind::replicated, {m}});
      a.push_back({"adam.v", StateArray::Kind::replicated, {v}});
    }
    if (round) round->state(space, a);
    return a;
  };
  const CheckpointIdentity identity = CheckpointIdentity::of(deck, d, W);
  const CoordSlice my_coords = server_coords(d, P, rank);

  Mat samples;
  Kokkos::View<sign_word_t**, Kokkos::LayoutRight, Mem> sample_signs;
  Words sample_vote, sample_tie;
  if (per_sample) {
    const std::int64_t rows = sample_rows;
    samples = Mat("terse::worker.samples", rows, d);
    if (o.vote == VoteMode::samples) {
      sample_signs = decltype(sample_signs)("terse::worker.sample_signs", rows, packed_words(d));
      sample_vote = Words("terse::worker.sample_vote", packed_words(d));
      sample_tie = Words("terse::worker.sample_tie", packed_words(d));
    }
  }

  const RoundBits rb = round_bits(comp, d, k_top, W);
  const RoundBits rb_warmup = comp.has_warmup() ? round_bits(comp.warmup(), d, k_top, W) : rb;
  const RoundBits rb_start = start_bits(d);  // the exact start's round (iteration 0)
  double bits_up = 0, bits_down = 0;
  std::uint64_t algo_bytes = 0, monitor_bytes = 0;
  double bytes_sent_before = 0;  // the bytes of the iterations before a restart, all ranks (the history's bytes_sent)
  double lr_now = o.lr;
  double f_current = std::numeric_limits<double>::quiet_NaN();  // f at the accepted model (accept: descent)
  double seconds_before = 0;  // wall time of the iterations before a restart
  std::int64_t k_first = 0;   // the first iteration this run does

  // ---- checkpoints -------------------------------------------------------------------------------------
  // The scalars a checkpoint holds besides the arrays (the iteration is in its header; the wall time is passed).
  const std::vector<std::pair<std::string, double*>> scalars{
      {"f_accepted", &f_current}, {"lr", &lr_now}, {"bits_up", &bits_up}, {"bits_down", &bits_down},
      {"bytes_sent", &bytes_sent_before}};
  // Where an array lies in the checkpoint and which piece this rank moves: [W, d] rows of its workers, its
  // server slice of [d], or, for a replicated [d], its slice when writing and all of it when reading.
  const auto layout = [&](const StateArray& a, bool reading) -> std::pair<std::vector<std::uint64_t>, Piece> {
    switch (a.kind) {
      case StateArray::Kind::workers:
        return {{static_cast<std::uint64_t>(W), d},
                Piece{static_cast<std::uint64_t>(workers.first) * d, static_cast<std::uint64_t>(R) * d}};
      case StateArray::Kind::slice: return {{d}, Piece{round->coords().begin, round->coords().size()}};
      case StateArray::Kind::replicated: break;
    }
    return {{d}, reading ? Piece{0, d} : Piece{my_coords.begin, my_coords.size()}};
  };
  // Bytes this rank's exchanges have handed to MPI for the algorithm in this run (counted where they call MPI).
  const auto my_algorithm_bytes = [&]() -> std::uint64_t {
    return algo_bytes + (round ? round->bytes_sent() : 0) + (warmup_round ? warmup_round->bytes_sent() : 0);
  };
  // The history's bytes_sent: every rank's bytes since iteration 0 (collective; its own 8 bytes are monitoring).
  const auto bytes_sent_total = [&]() {
    double mine = static_cast<double>(my_algorithm_bytes()), all = mine;
    if (P > 1) {
      MPI_Allreduce(&mine, &all, 1, MPI_DOUBLE, MPI_SUM, comm);
      monitor_bytes += sizeof(double);
    }
    return bytes_sent_before + all;
  };
  using HostView = Kokkos::View<float*, Kokkos::HostSpace, Kokkos::MemoryUnmanaged>;
  // Returns "" when written, else the name of the first array that is not finite (nothing is written then).
  const auto write_checkpoint = [&](std::int64_t iteration, double seconds) -> std::string {
    Region region("terse::checkpoint");
    std::string bad;
    std::vector<float> host;
    std::optional<CheckpointWriter> w;
    w.emplace(comm, run.checkpoint_path, identity, iteration);
    for (const auto& a : state_arrays()) {
      const auto [shape, piece] = layout(a, false);
      host.resize(piece.count);
      if (a.kind == StateArray::Kind::workers) {
        for (int l = 0; l < R; ++l) Kokkos::deep_copy(HostView(host.data() + l * d, d), a.views[l]);
      } else {
        const Vec src = a.kind == StateArray::Kind::slice ? a.views[0] : slice_of(a.views[0], my_coords);
        Kokkos::deep_copy(HostView(host.data(), piece.count), src);  // fences: the state is complete
      }
      if (bad.empty() && !std::all_of(host.begin(), host.end(), [](float f) { return std::isfinite(f); })) bad = a.name;
      w->write_array(a.name, shape, piece, host.data());
    }
    bad = first_error(comm, bad);
    if (!bad.empty()) {
      w.reset();  // removes the temporary file; the previous checkpoint stays
      return bad;
    }
    std::vector<std::pair<std::string, double>> values{{"seconds", seconds}};
    const double sent = bytes_sent_total();
    for (const auto& [name, value] : scalars) values.emplace_back(name, value == &bytes_sent_before ? sent : *value);
    w->write_scalars(values);
    w->write_history(summary.rows, extras);
    w->commit();
    return {};
  };

  // ---- restart -----------------------------------------------------------------------------------------
  std::vector<HistoryRow> restored_rows;
  if (!options.restart.empty()) {
    CheckpointReader reader(comm, options.restart, identity);
    k_first = reader.iteration();
    if (k_first > run.iterations)
      throw CheckpointError(options.restart + ": the checkpoint is at iteration " + std::to_string(k_first) +
                            ", beyond the deck's run.iterations = " + std::to_string(run.iterations));
    std::vector<float> host;
    for (const auto& a : state_arrays()) {
      const auto [shape, piece] = layout(a, true);
      host.resize(piece.count);
      reader.read_array(a.name, shape, piece, host.data());
      if (a.kind == StateArray::Kind::workers) {
        for (int l = 0; l < R; ++l) Kokkos::deep_copy(a.views[l], HostView(host.data() + l * d, d));
      } else {
        Kokkos::deep_copy(a.views[0], HostView(host.data(), piece.count));
      }
    }
    std::vector<std::string> names{"seconds"};
    for (const auto& sc : scalars) names.push_back(sc.first);
    const auto values = reader.read_scalars(names);
    seconds_before = values[0];
    for (std::size_t i = 0; i < scalars.size(); ++i) *scalars[i].second = values[i + 1];
    restored_rows = reader.read_history(extras);
  }

  // The output file (its directory must exist and be writable): opened before the first iteration.
  std::optional<HistoryWriter> history;
  if (options.write_history) {
    HistoryAttributes attributes;
    attributes.algorithm = to_string(o.kind);
    attributes.problem = to_string(deck.problem.kind);
    attributes.config = effective_config_yaml(deck);
    attributes.workers = W;
    attributes.ranks = P;
    attributes.kokkos_backend = Exec::name();
    attributes.terse_version = TERSE_VERSION_STRING;
    history.emplace(comm, run.output, attributes, extras);
  }
  for (const auto& r : restored_rows) {
    summary.rows.push_back(r);
    if (history) history->append(r);
  }

  // ---- monitoring --------------------------------------------------------------------------------------
  const auto model_for_monitoring = [&]() -> Vec {
    if (!comp.local()) return x;
    monitor_bytes += mean_over_workers(comm, space, x_local, avg, host_buf, W);
    return avg;
  };
  Kokkos::Timer timer;
  double last_print = -1;
  std::int64_t last_print_iter = 0;
  const auto record = [&](std::int64_t iteration) {
    Region region("terse::monitor");
    const Vec xm = model_for_monitoring();
    HistoryRow r;
    r.iteration = iteration;
    r.loss = full_loss(comm, *problem, xm, monitor_bytes, P);
    problem->local_grad_sum(xm, grad_full);
    monitor_bytes += allreduce_sum(comm, space, grad_full, host_buf);
    problem->finish_grad(grad_full, xm);
    double gn = 0;
    auto gf = grad_full;
    Kokkos::parallel_reduce(
        "terse::monitor.grad_norm_sq", Kokkos::RangePolicy<Exec>(space, 0, d),
        KOKKOS_LAMBDA(std::size_t i, double& acc) { acc += static_cast<double>(gf(i)) * gf(i); }, gn);
    r.grad_norm_sq = gn;
    if (sp) {
      // Seed 001 Sec. 2: rho_i = Prob(sign g~_i = sign g_i) at the monitored model, estimated from S stochastic
      // gradients per worker (random keys beyond any iteration's, so the run's own draws are untouched) against
      // the true gradient's signs; the counts are summed over the ranks.
      const auto S = static_cast<std::uint64_t>(run.success_probability_samples);
      Kokkos::deep_copy(space, sp_count, 0u);
      sign_pack(space, grad_full, sp_ref);
      for (int l = 0; l < R; ++l)
        for (std::uint64_t q = 0; q < S; ++q) {
          const std::uint64_t key = (std::uint64_t(1) << 62) + static_cast<std::uint64_t>(iteration) * S + q;
          problem->stochastic_gradient(xm, workers.first + l, key, batch, run.seed, sp_g);
          sign_pack(space, sp_g, sp_words);
          sign_agreement_accumulate(space, sp_words, sp_ref, sp_count);
        }
      auto count_h = Kokkos::create_mirror_view(sp_count);  // the same memory on host backends
      Kokkos::deep_copy(space, count_h, sp_count);
      space.fence();
      if (P > 1) {
        MPI_Allreduce(MPI_IN_PLACE, count_h.data(), static_cast<int>(d), MPI_UINT32_T, MPI_SUM, comm);
        monitor_bytes += d * sizeof(std::uint32_t);
        Kokkos::deep_copy(space, sp_count, count_h);
      }
      std::uint32_t lowest = 0;
      double total = 0;
      auto cnt = sp_count;
      Kokkos::parallel_reduce(
          "terse::monitor.success_min", Kokkos::RangePolicy<Exec>(space, 0, d),
          KOKKOS_LAMBDA(std::size_t i, std::uint32_t& m) { m = cnt(i) < m ? cnt(i) : m; },
          Kokkos::Min<std::uint32_t>(lowest));
      Kokkos::parallel_reduce(
          "terse::monitor.success_sum", Kokkos::RangePolicy<Exec>(space, 0, d),
          KOKKOS_LAMBDA(std::size_t i, double& acc) { acc += cnt(i); }, total);
      const double draws = static_cast<double>(S) * W;
      r.success_probability_min = lowest / draws;
      r.success_probability_mean = total / (draws * static_cast<double>(d));
    } else {
      r.success_probability_min = r.success_probability_mean = std::numeric_limits<double>::quiet_NaN();
    }
    r.lr = lr_now;
    r.bits_up = bits_up;
    r.bits_down = bits_down;
    r.bytes_sent = bytes_sent_total();
    r.wall_time = iteration == 0 ? 0.0 : seconds_before + timer.seconds();  // since the first iteration started
    if (deck.problem.kind == ProblemKind::mlp) {
      const auto correct = problem->local_test_correct(xm);
      const double total = allreduce_scalar(comm, static_cast<double>(correct.value_or(0)), monitor_bytes, P);
      r.test_accuracy = problem->test_rows() ? total / static_cast<double>(problem->test_rows()) : 0.0;
    } else {
      r.test_accuracy = std::numeric_limits<double>::quiet_NaN();
    }
    summary.rows.push_back(r);
    if (history) history->append(r);
    if (options.keep_row_models) {
      auto xm_h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), xm);
      summary.row_models.emplace_back(xm_h.data(), xm_h.data() + d);
    }
    // Progress line.
    const double t = r.wall_time - seconds_before;
    const double rate = iteration > last_print_iter && t > last_print ? (iteration - last_print_iter) / (t - std::max(last_print, 0.0)) : 0;
    const double eta = rate > 0 ? (run.iterations - iteration) / rate : std::numeric_limits<double>::infinity();
    if (deck.problem.kind == ProblemKind::mlp)
      say("%10lld %13.6e %12.4e %9.4f %11.4e %9.1f %9s %10s\n", static_cast<long long>(iteration), r.loss,
          r.grad_norm_sq, r.test_accuracy, r.lr, rate, format_seconds(eta).c_str(), format_bits(r.bits_up).c_str());
    else
      say("%10lld %13.6e %12.4e %11.4e %9.1f %9s %10s\n", static_cast<long long>(iteration), r.loss, r.grad_norm_sq,
          r.lr, rate, format_seconds(eta).c_str(), format_bits(r.bits_up).c_str());
    last_print = t;
    last_print_iter = iteration;
  };

  say("terse run %s\n  %s\n", deck.path.c_str(), summary.description.c_str());
  say("  d = %zu, %lld iterations, batch %s, lr %g, seed %llu, output %s\n", d, static_cast<long long>(run.iterations),
      batch.full ? "full" : std::to_string(batch.size).c_str(), o.lr, static_cast<unsigned long long>(run.seed),
      options.write_history ? run.output.c_str() : "(none)");
  if (comp.local())
    say("  per worker and sync: %s up, %s down (every %lld steps)\n", format_bits(rb.up).c_str(),
        format_bits(rb.down).c_str(), static_cast<long long>(o.sync_period));
  else
    say("  per worker and iteration: %s up, %s down (fp32 would be %s each way)\n", format_bits(rb.up).c_str(),
        format_bits(rb.down).c_str(), format_bits(32.0 * d).c_str());
  if (comp.has_warmup())
    say("  warm-up: the first %lld iterations send fp32 gradients, %s each way\n",
        static_cast<long long>(o.warmup_steps), format_bits(rb_warmup.up).c_str());
  if (comp.exact_start && k_first == 0)
    say("  exact start: iteration 0 sends fp32 gradients, %s each way\n", format_bits(rb_start.up).c_str());
  say("  memory: %s per rank for the state and buffers (estimated; the data besides)\n",
      format_bytes(static_cast<double>(summary.footprint_bytes)).c_str());
  if (k_first > 0)
    say("  restarted from %s at iteration %lld\n", options.restart.c_str(), static_cast<long long>(k_first));
  if (checkpointing)
    say("  checkpoints: %s every %lld updates\n", run.checkpoint_path.c_str(),
        static_cast<long long>(run.checkpoint_every));
  if (deck.problem.kind == ProblemKind::mlp)
    say("%10s %13s %12s %9s %11s %9s %9s %10s\n", "iteration", "loss", "|grad|^2", "test_acc", "lr", "it/s", "ETA",
        "up/worker");
  else
    say("%10s %13s %12s %11s %9s %9s %10s\n", "iteration", "loss", "|grad|^2", "lr", "it/s", "ETA", "up/worker");

  if (k_first == 0) {
    record(0);
    f_current = summary.rows.back().loss;
  }
  timer.reset();
  last_print = 0;
  last_print_iter = k_first;

  // Testing hook (docs/checkpoint.md): TERSE_FAULT_INJECT=RANK:ITERATION makes that rank throw at the start of
  // that iteration, as an error on one rank only would.
  int fault_rank = -1;
  long long fault_iteration = -1;
  if (const char* f = std::getenv("TERSE_FAULT_INJECT")) std::sscanf(f, "%d:%lld", &fault_rank, &fault_iteration);

  std::string diverged;          // why the run stopped early (non-finite loss or state), "" otherwise
  int stopped_by = 0;            // the signal that stopped the run, 0 otherwise
  std::int64_t last_checkpoint = k_first > 0 ? k_first : -1;
  std::int64_t k_done = k_first;

  // ---- iterations --------------------------------------------------------------------------------------
  // An exception here may be on one rank only, with the others already in the next collective: it ends the
  // whole job (MPI_Abort) instead of leaving them waiting.
  try {
  for (std::int64_t k = k_first; k < run.iterations; ++k) {
    if (rank == fault_rank && k == fault_iteration)
      throw std::runtime_error("fault injected by TERSE_FAULT_INJECT=" + std::string(std::getenv("TERSE_FAULT_INJECT")));
    const auto ku = static_cast<std::uint64_t>(k);
    const bool warm = warming_up(k);
    const bool starting = comp.exact_start && k == 0;  // the Markov estimates start at the gradients
    Round* const rnd = warm ? &*warmup_round : round ? &*round : nullptr;
    double eta_sum = 0;
    for (int l = 0; l < R; ++l) {
      const int w = workers.first + l;
      const Vec xw = comp.local() ? row(x_local, l) : x;
      const Vec g = row(grads, l);
      std::optional<Region> gradient_region(std::in_place, "terse::gradient");
      if (per_sample) {
        const std::int64_t rows = problem->batch_rows(w, batch);
        auto G = Kokkos::subview(samples, std::make_pair<std::size_t, std::size_t>(0, rows), Kokkos::ALL);
        problem->per_sample_gradients(xw, w, ku, batch, run.seed, G);
        if (o.lr_schedule == LrSchedule::adaptive) eta_sum += eta_star(space, G, *o.lipschitz);
        if (o.vote == VoteMode::samples) {
          // Seed 000 Alg. 2 on the worker's batch: the majority of the per-sample signs (a tie sends +1).
          for (std::int64_t b = 0; b < rows; ++b)
            sign_pack(space, Kokkos::subview(G, b, Kokkos::ALL), Kokkos::subview(sample_signs, b, Kokkos::ALL));
          auto S = Kokkos::subview(sample_signs, std::make_pair<std::size_t, std::size_t>(0, rows), Kokkos::ALL);
          majority_vote(space, S, sample_vote, sample_tie);
          auto out_words = round->voted_signs(l);
          auto vv = sample_vote, tt = sample_tie;
          Kokkos::parallel_for("terse::worker.sample_vote_bits", Kokkos::RangePolicy<Exec>(space, 0, out_words.extent(0)),
                               KOKKOS_LAMBDA(std::size_t q) { out_words(q) = vv(q) | tt(q); });
          continue;
        }
      }
      problem->stochastic_gradient(xw, w, ku, batch, run.seed, g);
      gradient_region.reset();
      Region phase(comp.local() ? "terse::update" : "terse::compress");
      if (comp.local()) {
        if (comp.rule == Rule::local_sgd) {
          sgd_step(space, xw, g, o.lr);
        } else {
          const long t = static_cast<long>(k) + 1;
          lr_now = adaalter_warmup_lr(o.lr, t, static_cast<long>(o.warmup_steps));
          adaalter_local_step(space, xw, denom, row(accum_local, l), g, lr_now, o.eps,
                              adaalter_local_index(t, static_cast<long>(o.sync_period)));
        }
      } else {
        // 1-bit Adam after the warm-up: the worker compresses its momentum b1 m + (1 - b1) g, not g.
        if (comp.rule == Rule::onebit_adam && !warm) momentum_blend(space, m, g, o.beta1);
        if (!starting) rnd->encode(space, l, g, ku);
      }
    }

    if (comp.local()) {
      const long t = static_cast<long>(k) + 1;
      if (adaalter_is_sync_step(t, static_cast<long>(o.sync_period))) {
        Region region("terse::communicate");
        // x_{i,t} <- (1/W) sum_k y_{k,t} (seed 002 Alg. 2 and 3), and Local AdaAlter's denominators.
        algo_bytes += mean_over_workers(comm, space, x_local, avg, host_buf, W);
        for (int l = 0; l < R; ++l) Kokkos::deep_copy(space, row(x_local, l), avg);
        if (comp.rule == Rule::local_adaalter) {
          // adaalter_sync_denominators averages the sum itself (accum <- sum / W, denom <- accum).
          algo_bytes += mean_over_workers(comm, space, accum_local, grad_full, host_buf, 0);
          adaalter_sync_denominators(space, denom, grad_full, 1.0 / W);
          for (int l = 0; l < R; ++l) Kokkos::deep_copy(space, row(accum_local, l), grad_full);
        }
        bits_up += rb.up;
        bits_down += rb.down;
      }
      if (comp.rule == Rule::local_sgd) lr_now = o.lr;
    } else {
      {
        Region region("terse::communicate");
        if (starting) rnd->start(space, grads);
        else rnd->exchange(space, grads);
      }
      const RoundBits& sent = starting ? rb_start : warm ? rb_warmup : rb;
      bits_up += sent.up;
      bits_down += sent.down;
      Region region("terse::update");
      switch (comp.rule) {
        case Rule::sgd: sgd_step(space, x, round->direction(), o.lr); break;
        case Rule::amsgrad: amsgrad_step(space, x, m, v, v_hat, round->direction(), {o.lr, o.beta1, o.beta2, o.nu}); break;
        case Rule::adagrad: adagrad_step(space, x, accum, round->direction(), o.lr, o.eps); break;
        case Rule::onebit_adam:
          if (warm) adam_step(space, x, m, v, rnd->direction(), {o.lr, o.beta1, o.beta2, o.nu});
          else frozen_adam_step(space, x, m, v, rnd->direction(), o.lr, o.nu);
          break;
        case Rule::sign: {
          switch (o.lr_schedule) {
            case LrSchedule::constant: lr_now = o.lr; break;
            case LrSchedule::inv_sqrt: lr_now = o.lr / std::sqrt(static_cast<double>(k) + 1.0); break;
            case LrSchedule::adaptive: {
              // eta*_k of seed 000 Prop. 3, each worker's estimate from its batch, averaged over the W workers;
              // capped by optimizer.lr, and 0 when the estimate is not positive.
              const double eta = allreduce_scalar(comm, eta_sum, algo_bytes, P) / W;
              lr_now = std::clamp(eta, 0.0, o.lr);
              break;
            }
          }
          if (x_prev.extent(0)) Kokkos::deep_copy(space, x_prev, x);
          sign_apply_voted(space, round->vote_words(), round->tie_words(), x, static_cast<float>(lr_now));
          if (x_prev.extent(0)) {
            // Seed 001 Alg. 1, Option 2: keep x_k unless the step lowers f.
            const double f_new = full_loss(comm, *problem, x, algo_bytes, P);
            if (f_new < f_current) f_current = f_new;
            else Kokkos::deep_copy(space, x, x_prev);
          }
          break;
        }
        default: break;
      }
    }

    const std::int64_t done = k + 1;
    k_done = done;
    if (done % run.log_every == 0 || done == run.iterations) {
      space.fence();
      record(done);
      const HistoryRow& r = summary.rows.back();
      if (!std::isfinite(r.loss) || !std::isfinite(r.grad_norm_sq)) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "non-finite %s at iteration %lld (loss %g, |grad f|^2 %g)",
                      std::isfinite(r.loss) ? "gradient" : "loss", static_cast<long long>(done), r.loss, r.grad_norm_sq);
        diverged = buf;
        break;
      }
    }
    // A stop asked for by a signal on any rank (or by the caller) ends every rank after this iteration.
    // stop: the signal number (> 0), -1 for the caller's stop_after, 0 to go on; the ranks take the largest.
    int stop = stop_signal();
    if (stop == 0 && options.stop_after == done) stop = -1;
    if (P > 1) MPI_Allreduce(MPI_IN_PLACE, &stop, 1, MPI_INT, MPI_MAX, comm);
    if ((checkpointing && (done % run.checkpoint_every == 0 || done == run.iterations)) || stop != 0) {
      const std::string bad = write_checkpoint(done, seconds_before + timer.seconds());
      if (!bad.empty()) {
        diverged = "non-finite values in the state '" + bad + "' at iteration " + std::to_string(done);
        break;
      }
      last_checkpoint = done;
      if (stop == 0) say("  checkpoint %s (iteration %lld)\n", run.checkpoint_path.c_str(), static_cast<long long>(done));
    }
    if (stop != 0) {
      stopped_by = stop;
      break;
    }
  }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "terse: rank %d: error after iteration %lld: %s; ending the job (MPI_Abort)\n", rank,
                 static_cast<long long>(k_done), e.what());
    std::fflush(stderr);
    MPI_Abort(comm, 1);
  }
  space.fence();
  summary.seconds = timer.seconds();
  summary.iterations_done = k_done;

  if (!diverged.empty() || stopped_by != 0) {
    const std::string kept = last_checkpoint >= 0 ? run.checkpoint_path + " (iteration " + std::to_string(last_checkpoint) + ")"
                                                  : std::string("none");
    if (stopped_by != 0) {
      summary.stopped_by_signal = stopped_by;
      if (history) history->discard();  // the checkpoint holds the history; the restart writes the file
      say("stopped by %s after iteration %lld: checkpoint %s written; continue with\n  terse run %s --restart %s\n",
          stopped_by > 0 ? signal_name(stopped_by) : "request", static_cast<long long>(k_done),
          run.checkpoint_path.c_str(), deck.path.c_str(), run.checkpoint_path.c_str());
      return summary;
    }
    if (history) {
      history->write_status("stopped: " + diverged);
      history->close();
    }
    throw DivergedError(diverged + "; the run is stopped" + (history ? ", history so far in " + run.output : std::string()) +
                        "; last good checkpoint: " + kept);
  }

  // ---- final model ---------------------------------------------------------------------------------------
  const Vec xf = [&] {
    Region region("terse::monitor");  // the local methods' average: monitoring, as in every row
    return model_for_monitoring();
  }();
  auto xf_h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), xf);
  summary.final_x.assign(xf_h.data(), xf_h.data() + d);
  if (history) {
    const CoordSlice cs = server_coords(d, P, rank);
    history->write_final_x(d, cs.begin, xf_h.data() + cs.begin, cs.size());
    history->write_status("complete");
    history->close();
  }
  summary.algorithm_bytes = my_algorithm_bytes();
  summary.monitoring_bytes = monitor_bytes;

  const HistoryRow& last = summary.rows.back();
  say("done: %lld iterations in %s, loss %.6e -> %.6e", static_cast<long long>(run.iterations - k_first),
      format_seconds(summary.seconds).c_str(), summary.rows.front().loss, last.loss);
  if (deck.problem.kind == ProblemKind::mlp) say(", test accuracy %.4f", last.test_accuracy);
  say("\n  per worker: %s up, %s down in all; this rank handed MPI %s per iteration for the algorithm\n",
      format_bits(last.bits_up).c_str(), format_bits(last.bits_down).c_str(),
      format_bits(8.0 * summary.algorithm_bytes / std::max<std::int64_t>(1, run.iterations - k_first)).c_str());
  if (history) say("  history: %s\n", history->path().c_str());
  return summary;
}

}  // namespace terse
