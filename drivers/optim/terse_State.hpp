#pragma once
// terse_State.hpp: what a Method (terse_Optim.hpp) and its pieces hand their caller besides the model: the
// state arrays a checkpoint saves, the scalars beside them, what a step reads, the buffers a caller may lend.

#include <Kokkos_Core.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace terse::optim {

template <class ExecSpace>
using VecOf = Kokkos::View<float*, typename ExecSpace::memory_space>;
template <class ExecSpace>
using MatOf = Kokkos::View<float**, Kokkos::LayoutRight, typename ExecSpace::memory_space>;

/// One array of the state a method carries from one iteration to the next, as a checkpoint stores it.
template <class ExecSpace = Kokkos::DefaultExecutionSpace>
struct StateArray {
  enum class Kind {
    replicated,  ///< every rank holds all d values, the same (the shared model, the server's broadcast g~, ...)
    workers,     ///< one row per worker, [W, d]; this rank holds its R local workers' rows
    slice,       ///< [d] split by server slices (Method::server_coords()); this rank holds its slice
  };
  std::string name;
  Kind kind;
  std::vector<VecOf<ExecSpace>> views;  ///< workers: one per local worker; else one
};

/// The scalars a checkpoint holds besides the arrays, by name (the rule's step size and accepted loss).
using Scalars = std::vector<std::pair<std::string, double*>>;

/// What a step reads besides the gradients and the model.
struct StepInputs {
  std::int64_t k = 0;       ///< the iteration (0-based): the random draws, the step size schedules, the warm-up
  double eta_sum = 0;       ///< StepSize::adaptive: this rank's workers' eta* estimates, summed (seed 000 Prop. 3)
  /// The workers' messages are already in the method (Method::voted_signs(l): seed 000 Alg. 2's per-sample
  /// vote): the step compresses nothing.
  bool messages_given = false;
  /// Fence between the phases and report their seconds (StepReport::seconds; the end-to-end benchmark).
  bool time_phases = false;
};

/// What a step did.
struct StepReport {
  double bits_up = 0, bits_down = 0;  ///< payload bits per worker it sent (docs/hdf5.md)
  bool communicated = false;          ///< a local method's step that averaged the models
  double seconds[3] = {0, 0, 0};      ///< with time_phases: compress, exchange (and a chunked update), update
};

/// Buffers a local rule borrows for its averages (a caller's, e.g. the monitor's: two d-vectors and the host
/// staging buffer of device backends); they hold nothing from one call to the next. Empty: the method
/// allocates its own.
template <class ExecSpace = Kokkos::DefaultExecutionSpace>
struct Scratch {
  VecOf<ExecSpace> a, b;
  Kokkos::View<float*, Kokkos::HostSpace> host;
};

/// The full objective at a model (collective), for accept: descent; adds the bytes it hands MPI to the second
/// argument.
template <class ExecSpace = Kokkos::DefaultExecutionSpace>
using Objective = std::function<double(const VecOf<ExecSpace>&, std::uint64_t&)>;

}  // namespace terse::optim
