#pragma once
// terse_Region.hpp: the phases of an iteration as Kokkos Tools regions, and their wall time on this rank.
//
// Region("terse::gradient") pushes a Kokkos Tools region (what space-time-stack or nvtx-connector show) and
// times it. The times are exclusive: a region nested in another (terse::aggregate inside terse::communicate,
// terse::compress inside terse::gradient for the per-sample vote) counts only in the inner one, so the regions'
// times add up to the time spent inside any of them. On device backends a region ends with a fence, so the
// kernels it launched count in it and not in the next one that waits for them. RegionTimes::get() is
// per process and not thread-safe (the driver runs one thread per rank); `terse run` prints it at the end.

#include <Kokkos_Core.hpp>

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace terse::pieces {

class RegionTimes {
 public:
  static RegionTimes& get() {
    static RegionTimes times;
    return times;
  }
  void enter(const char* name) { stack_.push_back({name, now(), 0.0}); }
  void leave() {
    if (stack_.empty()) return;
    const Open o = stack_.back();
    stack_.pop_back();
    const double elapsed = now() - o.start;
    seconds_[o.name] += elapsed - o.children;
    if (!stack_.empty()) stack_.back().children += elapsed;
  }
  /// Exclusive seconds per region name since the last reset.
  const std::map<std::string, double>& seconds() const { return seconds_; }
  void reset() {
    seconds_.clear();
    stack_.clear();
  }

 private:
  struct Open {
    const char* name;
    double start, children;
  };
  static double now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }
  std::vector<Open> stack_;
  std::map<std::string, double> seconds_;
};

/// A Kokkos Tools region for a phase of the iteration (gradient, compress, communicate, aggregate, update,
/// monitor, checkpoint), timed into RegionTimes.
struct Region {
  explicit Region(const char* name) {
    Kokkos::Profiling::pushRegion(name);
    RegionTimes::get().enter(name);
  }
  ~Region() {
#if defined(KOKKOS_ENABLE_CUDA) || defined(KOKKOS_ENABLE_HIP)
    Kokkos::fence();
#endif
    RegionTimes::get().leave();
    Kokkos::Profiling::popRegion();
  }
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
};

}  // namespace terse::pieces
