#pragma once
// terse_AllocationTracker.hpp: the bytes Kokkos has allocated, now and at their peak, observed through Kokkos
// Tools' allocate/deallocate callbacks (no tool library needed). The tests compare a run's peak with its
// estimate (run_footprint), the end-to-end benchmark reports it beside the process's peak resident memory.
// One tracker at a time; it replaces any allocate/deallocate callbacks while it lives.

#include <Kokkos_Core.hpp>

#include <cstdint>
#include <mutex>
#include <stdexcept>

namespace terse {

class AllocationTracker {
 public:
  AllocationTracker() {
    std::lock_guard<std::mutex> lock(mutex());
    if (state().active) throw std::logic_error("terse::AllocationTracker: one tracker at a time");
    state() = State{};
    state().active = true;
    Kokkos::Tools::Experimental::set_allocate_data_callback(&on_allocate);
    Kokkos::Tools::Experimental::set_deallocate_data_callback(&on_deallocate);
  }
  ~AllocationTracker() {
    Kokkos::Tools::Experimental::set_allocate_data_callback(nullptr);
    Kokkos::Tools::Experimental::set_deallocate_data_callback(nullptr);
    std::lock_guard<std::mutex> lock(mutex());
    state().active = false;
  }
  AllocationTracker(const AllocationTracker&) = delete;
  AllocationTracker& operator=(const AllocationTracker&) = delete;

  /// Bytes allocated since the tracker started and not yet freed (frees of older allocations count as 0).
  std::int64_t current() const {
    std::lock_guard<std::mutex> lock(mutex());
    return state().current;
  }
  /// The largest current() since the tracker started or since reset_peak().
  std::int64_t peak() const {
    std::lock_guard<std::mutex> lock(mutex());
    return state().peak;
  }
  void reset_peak() {
    std::lock_guard<std::mutex> lock(mutex());
    state().peak = state().current;
  }

 private:
  struct State {
    bool active = false;
    std::int64_t current = 0, peak = 0, freed_before = 0;
  };
  static State& state() {
    static State s;
    return s;
  }
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  static void on_allocate(Kokkos::Tools::SpaceHandle, const char*, const void*, std::uint64_t size) {
    std::lock_guard<std::mutex> lock(mutex());
    State& s = state();
    s.current += static_cast<std::int64_t>(size);
    if (s.current > s.peak) s.peak = s.current;
  }
  static void on_deallocate(Kokkos::Tools::SpaceHandle, const char*, const void*, std::uint64_t size) {
    std::lock_guard<std::mutex> lock(mutex());
    State& s = state();
    s.current -= static_cast<std::int64_t>(size);
    if (s.current < 0) {  // an allocation made before the tracker started
      s.freed_before -= s.current;
      s.current = 0;
    }
  }
};

}  // namespace terse
