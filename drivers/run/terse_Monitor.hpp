#pragma once
// terse_Monitor.hpp: the measurements of a history row (docs/hdf5.md) and rank 0's progress line.
//
// At the row's model (the shared x, or the workers' average for the local methods): the full objective and the
// squared norm of its gradient (allreduced over the ranks) on the rows that carry it (multiples of
// run.objective_every, the first under accept: descent), otherwise an estimate of the objective on
// run.objective_sample rows per worker with its standard error (problems that offer one: the mlp; the others
// always give the full objective); with run.success_probability_samples the estimated success probabilities of
// seed 001 Sec. 2, and on the mlp the test accuracy over all test rows, with the full objective and on the last
// row. Its buffers (the model for the
// local methods' average, the full gradient, the host staging buffer of device backends, the success
// probabilities' arrays) are lent to the local rules' averages between rows (pieces::Scratch).

#include "terse_Deck.hpp"
#include "terse_Exchange.hpp"
#include "terse_History.hpp"
#include "terse_Problem.hpp"
#include "terse_Spec.hpp"
#include "terse_State.hpp"

#include <terse_Sign.hpp>

#include <mpi.h>

#include <cstdio>
#include <string>
#include <vector>

namespace terse::pieces {

/// The run's types: the default execution space's views, and the method's state and scratch on it.
using Exec = Kokkos::DefaultExecutionSpace;
using Mem = Exec::memory_space;
using Vec = optim::VecOf<Exec>;
using Mat = optim::MatOf<Exec>;
using Words = Kokkos::View<sign_word_t*, Mem>;
using StateArray = optim::StateArray<Exec>;
using Scratch = optim::Scratch<Exec>;
using optim::MemoryTerm;
using optim::Scalars;

class Monitor {
 public:
  Monitor(MPI_Comm comm, Problem<Exec>& problem, const Deck& deck, const WorkerRange& workers);
  /// What the constructor allocates, for the memory estimate.
  static std::vector<MemoryTerm> memory(const Deck& deck, std::size_t d);

  /// Buffers the local rules may use between rows.
  Scratch scratch() const { return {avg_, grad_, host_}; }
  /// Whether the row at this iteration carries the full objective (multiples of run.objective_every, the first
  /// under accept: descent).
  bool full_row(std::int64_t iteration) const;
  /// Fills the row's loss (full or estimated: loss_rows, loss_std_error), |grad f|^2 (full rows; NaN otherwise),
  /// success probabilities and test accuracy at the model xm. Collective. Returns whether the loss is the full
  /// objective (false: an estimate, grad_norm_sq NaN).
  bool measure(const Exec& space, const Vec& xm, HistoryRow& r);
  /// Bytes the monitoring handed MPI (the rows' sums); the local rules' averages for a row add theirs here.
  std::uint64_t& bytes() { return bytes_; }

  /// Rank 0's progress: the header (before the first row) and a line per row, with the rate and ETA of the
  /// iterations since the last line. `out` may be nullptr (silent).
  void print_header(std::FILE* out) const;
  /// The rate (it/s) counts the algorithm's time alone: seconds_this_run less the time spent measuring rows;
  /// the ETA adds the rows still to come at the measured cost of each.
  void print_row(std::FILE* out, const HistoryRow& r, double seconds_this_run, std::int64_t iterations);
  /// The iterations start (after the row at iteration `first`): the next line's rate counts from here.
  void start_clock(std::int64_t first) {
    last_print_ = 0;
    last_iteration_ = first;
    monitor_seconds_ = 0;
    rows_timed_ = 0;
  }
  /// Seconds spent in measure() since start_clock.
  double seconds() const { return monitor_seconds_; }

 private:
  MPI_Comm comm_;
  int P_ = 1;
  Problem<Exec>& problem_;
  const Deck& deck_;
  WorkerRange workers_;
  Batch batch_;
  Vec avg_, grad_;
  Kokkos::View<float*, Kokkos::HostSpace> host_;
  Vec sp_g_;
  Words sp_words_, sp_ref_;
  Kokkos::View<std::uint32_t*, Mem> sp_count_;
  std::uint64_t bytes_ = 0;
  double last_print_ = -1, last_monitor_ = 0;
  std::int64_t last_iteration_ = 0;
  double monitor_seconds_ = 0;
  std::int64_t rows_timed_ = 0;
};

/// "12.3 kB" for a number of bits (as bytes).
std::string format_bits(double bits);
/// "12.3s", "4m05s", "2h10m"; "-" when not finite.
std::string format_seconds(double s);

}  // namespace terse::pieces
