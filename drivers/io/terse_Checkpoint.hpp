#pragma once
// terse_Checkpoint.hpp: the restart file of `terse run`, one parallel-HDF5 file written collectively.
//
// Layout (docs/hdf5.md, "Checkpoint"):
//   attributes of /: format ("terse checkpoint"), format_version, algorithm, problem, dim, workers, iteration,
//                    identity (the deck keys that define the trajectory, "key: value" lines), header_crc32
//   /state/NAME      float32, flattened row-major; attribute shape (e.g. [W, d] for the workers' memories,
//                    [d] for the model) and crc32 (zlib CRC-32 of the dataset's bytes, little-endian)
//   /scalars         float64 (iteration, loss of the accepted model, step size, bits, seconds, ...); names
//                    attribute; crc32
//   /history/FIELD   the history rows so far (as in the history file), each with crc32
//
// Every array is written and read by contiguous ranges of its flattened form (a rank's rows of [W, d], a
// server slice of [d]); the CRC-32 of the whole dataset is combined from the ranks' pieces
// (crc32_combine), so the checksum does not depend on the number of ranks that wrote or read it.
//
// Writes are atomic: the file is written under PATH.tmp in the destination's directory, flushed to disk
// (fsync), renamed over PATH, and the directory is synced. A job killed at any moment leaves the previous
// checkpoint intact.
//
// Loading refuses, with a message naming the file, a checkpoint that is missing, not HDF5, truncated, not a
// terse checkpoint, written for another deck (algorithm, problem, dimension, worker count, or any key of
// CheckpointIdentity), or whose header or any dataset fails its checksum. Every refusal is collective: all
// ranks throw the same CheckpointError.

#include "terse_Error.hpp"
#include "terse_History.hpp"

#include <mpi.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace terse {

struct Deck;

struct CheckpointError : UserError {
  using UserError::UserError;
};

/// What a checkpoint must match to be loaded by a deck.
struct CheckpointIdentity {
  std::string algorithm, problem;
  std::uint64_t dim = 0;
  std::int64_t workers = 0;
  /// (key, value) of every deck key that shapes the trajectory: the problem and optimizer sections, run.batch
  /// and run.seed. Keys a restart may change (run.iterations, run.log_every, run.output, run.checkpoint,
  /// workers.per_rank with the same worker count) are not in it.
  std::vector<std::pair<std::string, std::string>> keys;

  static CheckpointIdentity of(const Deck& deck, std::uint64_t dim, std::int64_t workers);
};

/// A contiguous range [offset, offset + count) of a dataset's flattened elements, held by this rank.
struct Piece {
  std::uint64_t offset = 0, count = 0;
};

class CheckpointWriter {
 public:
  /// Collective. Creates PATH.tmp; throws UserError naming the path when it cannot.
  CheckpointWriter(MPI_Comm comm, const std::string& path, const CheckpointIdentity& id, std::int64_t iteration);
  ~CheckpointWriter();  ///< without commit(): closes and removes the temporary file
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  /// Collective: /state/NAME of shape `shape` (product n); this rank writes `values` at `piece`. The pieces of
  /// the ranks, in rank order, tile [0, n) (a rank may hold an empty piece).
  void write_array(const std::string& name, const std::vector<std::uint64_t>& shape, Piece piece, const float* values);
  /// Collective: /scalars (every rank passes the same values; rank 0 writes them).
  void write_scalars(const std::vector<std::pair<std::string, double>>& scalars);
  /// Collective: /history (every rank passes the same rows).
  void write_history(const std::vector<HistoryRow>& rows, HistoryExtras extras);

  /// Collective: closes the file, syncs it to disk and renames it over PATH (then syncs the directory).
  void commit();

 private:
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  std::string path_, tmp_;
  long long file_ = -1;
  bool done_ = false;
};

class CheckpointReader {
 public:
  /// Collective. Opens PATH and checks its header against `expected`; throws CheckpointError otherwise.
  CheckpointReader(MPI_Comm comm, const std::string& path, const CheckpointIdentity& expected);
  ~CheckpointReader();
  CheckpointReader(const CheckpointReader&) = delete;
  CheckpointReader& operator=(const CheckpointReader&) = delete;

  std::int64_t iteration() const { return iteration_; }

  /// Collective: reads `piece` of /state/NAME (which must have `shape`) into values and verifies the dataset's
  /// checksum from the ranks' pieces. Pieces tile [0, n) in rank order, or every rank reads all of it.
  void read_array(const std::string& name, const std::vector<std::uint64_t>& shape, Piece piece, float* values);
  /// Collective: /scalars by name (every name must be present).
  std::vector<double> read_scalars(const std::vector<std::string>& names);
  /// Collective: the history rows.
  std::vector<HistoryRow> read_history(HistoryExtras extras);

 private:
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  std::string path_;
  long long file_ = -1;
  std::int64_t iteration_ = 0;
};

}  // namespace terse
