#pragma once
// terse_History.hpp: the HDF5 output of `terse run`, written collectively with parallel HDF5.
//
// Layout (the driver issue fixes it; docs/hdf5.md describes it):
//   /history/iteration      int64   updates done (a row at 0, every run.log_every updates, at the end)
//   /history/loss           float64 full objective at the model (local methods: at the workers' average)
//   /history/grad_norm_sq   float64 ||grad f||^2 of the full objective (NaN where not computable)
//   /history/lr             float64 step size of the last update
//   /history/bits_up        float64 cumulative payload bits per worker, worker -> server
//   /history/bits_down      float64 cumulative payload bits per worker, server -> worker
//   /history/bytes_sent     float64 cumulative bytes the algorithm's exchanges handed to MPI, all ranks together
//                                   (measured where the exchanges call MPI; 0 on one rank; monitoring excluded)
//   /history/wall_time      float64 seconds since the first iteration started
//   /history/test_accuracy  float64 (mlp only)
//   /final/x                float32 the model, written by slices from every rank
//   attributes of /: algorithm, problem, config (the effective deck, YAML), workers, ranks, kokkos_backend,
//   terse_version
//
// The file is written under a temporary name in the destination's directory and renamed over the
// destination by close() only when it is complete, so an interrupted run never leaves a file that looks
// finished. History rows are appended to extendible datasets and flushed as they come, so the temporary file
// holds every row written so far.

#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace terse {

struct HistoryRow {
  std::int64_t iteration = 0;
  double loss = 0, grad_norm_sq = 0, lr = 0, bits_up = 0, bits_down = 0, wall_time = 0, test_accuracy = 0;
  double bytes_sent = 0;  ///< measured: bytes handed to MPI for the algorithm, summed over the ranks, cumulative
  double success_probability_min = 0, success_probability_mean = 0;  ///< run.success_probability_samples > 0
  /// How the row's loss was computed: over loss_rows training rows (all N: the full objective; S W: an estimate
  /// on a sample, with loss_std_error its standard error, and grad_norm_sq NaN); 0 rows for the synthetic
  /// problems, whose objective is exact.
  double loss_rows = 0, loss_std_error = 0;
};

/// Which optional columns a history has: test_accuracy (the mlp), the success probabilities (recorded on request).
struct HistoryExtras {
  bool test_accuracy = false;
  bool success_probability = false;
  HistoryExtras() = default;
  HistoryExtras(bool with_test_accuracy, bool with_success_probability = false)  // NOLINT: a bool reads as the mlp's
      : test_accuracy(with_test_accuracy), success_probability(with_success_probability) {}
};

/// The float64 columns of the history, in file order after /history/iteration (int64); then test_accuracy
/// (the mlp) and success_probability_min, success_probability_mean (when recorded). The history file and the
/// checkpoint both write them from this table.
struct HistoryColumn {
  const char* name;
  double HistoryRow::*member;
};
std::vector<HistoryColumn> history_columns(HistoryExtras extras);

struct HistoryAttributes {
  std::string algorithm, problem, config, kokkos_backend, terse_version;
  std::int64_t workers = 0, ranks = 0;
};

/// Throws UserError, naming the path, when a file cannot be created there (missing or unwritable directory,
/// or the path is a directory).
void check_output_path(const std::string& path);

class HistoryWriter {
 public:
  /// Collective over comm. Creates the temporary file next to `path`; throws UserError (naming the path)
  /// when the directory is missing or not writable.
  HistoryWriter(MPI_Comm comm, const std::string& path, const HistoryAttributes& attributes, HistoryExtras extras);
  ~HistoryWriter();
  HistoryWriter(const HistoryWriter&) = delete;
  HistoryWriter& operator=(const HistoryWriter&) = delete;

  /// Collective: appends one row (every rank passes the same values; rank 0 writes them). Rows are written and
  /// the file flushed in batches: when rank 0 has held rows for kFlushSeconds or holds kFlushRows (one set of
  /// collective HDF5 calls per batch instead of per row: a dozen collectives per row cost as much as the
  /// monitor), and before anything else is written or the file is closed. An interrupted run's temporary file
  /// holds every row but those of its last second.
  void append(const HistoryRow& row);
  static constexpr double kFlushSeconds = 1.0;
  static constexpr std::size_t kFlushRows = 256;

  /// Collective: writes /final/x of global length d; this rank holds x[begin, begin + count).
  void write_final_x(std::uint64_t d, std::uint64_t begin, const float* values, std::uint64_t count);

  /// Collective: the root attribute `status` ("complete", or why the run stopped).
  void write_status(const std::string& status);

  /// Collective: closes the file and renames it to its final name.
  void close();

  /// Collective: closes the file and removes it (a run stopped for a restart: its checkpoint holds the rows).
  void discard();

  const std::string& path() const { return path_; }
  const std::string& temporary_path() const { return tmp_path_; }
  std::size_t rows() const { return rows_ + pending_.size(); }

 private:
  void close_file();  ///< collective: closes the datasets and the file
  void write_pending();  ///< collective: the rows held back, then a flush

  MPI_Comm comm_;
  int rank_ = 0;
  std::string path_, tmp_path_;
  long long file_ = -1;  // hid_t, kept opaque here so that this header does not include hdf5.h
  std::vector<long long> datasets_;
  std::vector<std::string> names_;
  std::vector<HistoryColumn> columns_;
  std::size_t rows_ = 0;  ///< rows in the file
  std::vector<HistoryRow> pending_;
  double last_write_ = 0;  ///< rank 0's clock at the last write
  bool closed_ = false;
};

}  // namespace terse
