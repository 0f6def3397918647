#include "terse_Watchdog.hpp"

#include "terse_Error.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace terse {

Watchdog::Watchdog(double seconds, int rank) : seconds_(seconds), rank_(rank) {
  if (seconds_ > 0) thread_ = std::thread([this] { watch(); });
}

Watchdog::~Watchdog() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void Watchdog::beat(std::int64_t done) {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    done_ = done;
    ++beats_;
  }
  wake_.notify_one();
}

void Watchdog::watch() {
  const auto limit = std::chrono::duration<double>(seconds_);
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    const std::uint64_t seen = beats_;
    // Woken by a beat (the clock starts again), by the destructor, or by the limit with no beat in between.
    if (wake_.wait_for(lock, limit, [&] { return stop_ || beats_ != seen; })) continue;
    std::fprintf(stderr,
                 "terse: rank %d: no progress for %g s after iteration %lld (run.watchdog): a rank or a network "
                 "link is not answering; ending the job (restart from the last checkpoint)\n",
                 rank_, seconds_, static_cast<long long>(done_));
    std::fflush(stderr);
    std::fflush(stdout);
    std::_Exit(exit_no_progress);
  }
}

}  // namespace terse
