#pragma once
// terse_Watchdog.hpp: ends a job that stopped making progress (run.watchdog, docs/checkpoint.md).
//
// A rank whose peer or network link is gone waits in the next collective until TCP gives up, which can take
// many minutes (or forever on a link that is down rather than reset). The watchdog is a thread that the run
// tells, once per iteration, that it is alive (beat); when no beat comes for `seconds`, it prints
//   terse: rank R: no progress for S s after iteration K (run.watchdog): ...; ending the job
// and ends the process with exit_no_progress, without calling MPI (the thread that would have to is the one
// that is stuck). The launcher then ends the other ranks, as it does for a rank that dies; the last checkpoint
// is intact (checkpoints and the history are written under temporary names and renamed when complete).

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

namespace terse {

class Watchdog {
 public:
  /// seconds <= 0: no thread, beat() does nothing. `rank` is named in the message.
  Watchdog(double seconds, int rank);
  ~Watchdog();  ///< stops the thread (the run ended, or an exception unwinds)
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  /// Iteration `done` finished: the clock starts again.
  void beat(std::int64_t done);

 private:
  void watch();

  double seconds_;
  int rank_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::int64_t done_ = 0;
  std::uint64_t beats_ = 0;
  std::thread thread_;
};

}  // namespace terse
