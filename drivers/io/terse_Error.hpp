#pragma once
// terse_Error.hpp: the error type for problems a user can fix (bad options, decks, data files, output
// paths, checkpoints). `terse` prints its message, which names the file, key or line, and exits with status 2.

#include <stdexcept>

namespace terse {

struct UserError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A run that produced a non-finite loss, gradient or state: `terse` prints the message (it names the
/// iteration and the last good checkpoint) and exits with status 3.
struct DivergedError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Exit statuses of `terse` (docs/checkpoint.md).
enum ExitStatus : int {
  exit_ok = 0,
  exit_internal_error = 1,  ///< a bug or a failure on one rank: the job is ended with MPI_Abort
  exit_user_error = 2,      ///< bad deck, data file, output path or checkpoint: fix and rerun
  exit_diverged = 3,        ///< non-finite loss, gradient or state
  exit_no_progress = 4,     ///< run.watchdog: no iteration ended for that long (a rank or a link gone)
  exit_stopped = 75,        ///< SIGTERM/SIGUSR1: checkpoint written, continue with --restart (EX_TEMPFAIL)
};

}  // namespace terse
