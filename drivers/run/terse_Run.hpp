#pragma once
// terse_Run.hpp: `terse run DECK.yaml`, the MPI driver of every algorithm and problem of the seeds.
//
// run_deck() builds, once, the method a deck's algorithm is (terse::optim::Method, terse_Optim.hpp, from the spec
// terse::compose() maps the deck onto: the workers' compressors and memories, the sharded server's aggregation and
// downlink, the update rule) and runs it on the deck's problem:
//
//   for k = 0 .. iterations-1:
//     every local worker w: g_w = stochastic gradient at its model (problem, seed, k, w); with vote: samples
//                           its message is the majority vote of its batch's per-sample signs
//     local methods:        a local step per worker; every sync_period steps the models (and Local AdaAlter's
//                           denominators) are averaged by an fp32 allreduce
//     the others:           messages up (compressed as the wire says), aggregated on the sharded server,
//                           sent back (plain or as a Markov sequence), one update of the shared model
//     accept: descent       the step is undone when it does not lower f (seed 001 Alg. 1, Option 2)
//     every log_every steps and at the end: a history row (f, ||grad f||^2, lr, bits, time, accuracy) and a
//                           progress line on rank 0
//
// Workers: W = ranks x workers.per_rank, worker w on rank floor(w / per_rank). A worker's stochastic gradient
// is a pure function of (seed, k, w, its model) and every server aggregate is summed in worker order, so the
// trajectory depends on W only: bitwise where the arithmetic is elementwise or integer; the fp32 allreduce of
// the uncompressed methods and the global scale of the server's sharded scaled sign (cd_adam) are sums over
// ranks, whose order follows the rank layout (differences at rounding level).
//
// Errors the user must fix (deck, data files, output path, a combination the seeds do not define) are thrown
// as UserError before the first iteration, with the file and the key, file or line.

#include "terse_Deck.hpp"
#include "terse_History.hpp"
#include "terse_Spec.hpp"

#include <mpi.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace terse {

struct RunOptions {
  bool write_history = true;  ///< write deck.run.output (HDF5); tests may run without
  std::FILE* progress = stdout;  ///< rank 0's progress lines; nullptr: silent
  std::string restart;           ///< a checkpoint to continue from (`--restart`); "" starts afresh
  /// Stop after this many updates as SIGTERM would (checkpoint, then return with stopped_by_signal = -1);
  /// for tests. -1: never.
  std::int64_t stop_after = -1;
  /// Keep the model of every history row in RunSummary::row_models (for tests that follow a trajectory).
  bool keep_row_models = false;
};

struct RunSummary {
  std::vector<HistoryRow> rows;      ///< the history rows, the same on every rank
  std::vector<float> final_x;        ///< the final model (averaged over workers for local methods), every rank
  std::uint64_t dim = 0;             ///< d
  std::uint64_t top_k = 0;           ///< k of the top-k compressor (0 when the wire is not top-k)
  int workers = 0, ranks = 0;
  std::uint64_t algorithm_bytes = 0;   ///< bytes this rank handed to MPI for the algorithm (this run's iterations)
  std::uint64_t monitoring_bytes = 0;  ///< bytes for the history (loss, gradient norm, accuracy)
  double seconds = 0;                  ///< wall time of the iterations
  std::string description;            ///< problem and composition, as printed
  std::int64_t iterations_done = 0;    ///< updates done when the run returned (run.iterations unless stopped)
  int stopped_by_signal = 0;           ///< the signal that stopped the run after a checkpoint (-1: stop_after)
  std::uint64_t footprint_bytes = 0;   ///< this rank's estimated allocations (run_footprint), before they were made
  std::size_t exchange_chunks = 1;     ///< chunks of each exchange (run.exchange_chunk; 1: not chunked)
  std::vector<std::vector<float>> row_models;  ///< RunOptions::keep_row_models: the model of each row in `rows`
};

/// What rank `rank` of P allocates for a run of the deck at dimension d besides the problem's own data: the
/// state, the workers' gradients, the compressors' memories and messages, the exchange buffers, monitoring.
/// sample_rows: the largest batch of the rank's workers when the run needs per-sample gradients (majority_vote
/// with vote: samples or lr_schedule: adaptive), else 0. Computed from the same sizes the constructors use, so
/// run_deck can refuse a deck before allocating (docs/architecture.md, "Memory").
std::vector<optim::MemoryTerm> run_footprint(const Deck& deck, std::uint64_t d, int P, int rank, std::int64_t sample_rows);

/// Runs the deck on the ranks of comm (collective). Throws UserError for anything the user must fix, before
/// the first iteration (CheckpointError for a checkpoint --restart refuses), DivergedError when the loss,
/// gradient or state is no longer finite. An error on one rank during the iterations ends the job
/// (MPI_Abort). With run.checkpoint, writes a checkpoint every run.checkpoint.every updates and at the end;
/// a stop signal (install_stop_handlers) on any rank makes every rank write one after the current iteration
/// and return with stopped_by_signal set (no history file then: the checkpoint holds the rows).
RunSummary run_deck(MPI_Comm comm, const Deck& deck, const RunOptions& options = {});

}  // namespace terse
