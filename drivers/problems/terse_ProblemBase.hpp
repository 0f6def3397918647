#pragma once
// terse_ProblemBase.hpp: what the problems share (internal to drivers/problems/): the numerically safe scalar
// functions, the functors two problems use (the batch's sample rows, the regulariser added to a gradient), the
// rows of this rank's workers, uploads, and ProblemBase, the argument checks of the public calls. Each problem
// is one file (terse_Quadratic.cpp, terse_Rosenbrock.cpp, terse_Logistic.cpp, terse_Mlp.cpp) with its kernels,
// its class and its factory; terse_Problem.cpp builds the problem a deck asks for.
#include "terse_Problem.hpp"

#include <terse_Random.hpp>
#include <terse_Reduce.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <utility>
#include <vector>

#include <memory>
#include <string>

// TERSE_FOR_EACH_BACKEND (impl/terse_Backends.hpp): the problems' explicit instantiations.
#include <impl/terse_Backends.hpp>

namespace terse {
namespace Impl {
namespace problem {

// ------------------------------------------------------------------------------------------- scalar helpers

/// 1 / (1 + exp(-z)) without overflow.
KOKKOS_INLINE_FUNCTION double sigmoid(double z) {
  if (z >= 0) return 1.0 / (1.0 + compat::exp(-z));
  const double e = compat::exp(z);
  return e / (1.0 + e);
}

/// log(1 + exp(t)) without overflow.
KOKKOS_INLINE_FUNCTION double softplus(double t) {
  return (t > 0 ? t : 0.0) + compat::log1p(compat::exp(-compat::fabs(t)));
}

/// The nonconvex regulariser of seed 004 eq. (7.1), one coordinate: x^2 / (1 + x^2), and its derivative.
KOKKOS_INLINE_FUNCTION double reg_value(double x) { return x * x / (1.0 + x * x); }
KOKKOS_INLINE_FUNCTION double reg_grad(double x) {
  const double q = 1.0 + x * x;
  return 2.0 * x / (q * q);
}


/// The local row of sample b of a worker's batch: drawn uniformly with replacement from its block, or the
/// block's b-th row for a full batch.
struct SampleRows {
  CounterRng select;
  std::uint64_t k;
  std::uint32_t w;
  std::uint64_t block_begin, block_rows;
  bool full;
  KOKKOS_INLINE_FUNCTION std::uint64_t operator()(std::uint64_t b) const {
    return block_begin + (full ? b : select.below(static_cast<std::uint32_t>(block_rows), k, w, b));
  }
};

/// Sample b = b0 + c of a chunk: buf(c, :) = coef a_r (the chunk's rows are zero outside their entries).
/// g(j) = acc(j) * scale + lambda R'(x_j).
template <class Mem, class XV, class GV>
struct FinishAccumulated {
  Kokkos::View<const double*, Mem> acc;
  XV x;
  GV g;
  double scale, lambda;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t j) const {
    double v = acc(j) * scale;
    if (lambda != 0) v += lambda * reg_grad(x(j));
    g(j) = static_cast<float>(v);
  }
};

/// g(j) = g(j) * scale + lambda R'(x_j) (finish_grad).
template <class XV, class GV>
struct ScaleAddRegulariser {
  XV x;
  GV g;
  double scale, lambda;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t j) const {
    double v = static_cast<double>(g(j)) * scale;
    if (lambda != 0) v += lambda * reg_grad(x(j));
    g(j) = static_cast<float>(v);
  }
};

template <class XV>
struct Fill {
  XV x;
  float v;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t i) const { x(i) = v; }
};


}  // namespace problem
}  // namespace Impl

namespace problem_detail {

using namespace Impl::problem;


inline std::string fmt(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

inline void check_workers(const WorkerRange& wr) {
  if (wr.total < 1 || wr.count < 1 || wr.first < 0 || wr.first > wr.total - wr.count)
    throw std::invalid_argument("terse problem: bad worker range (W = " + std::to_string(wr.total) + ", first " +
                                std::to_string(wr.first) + ", count " + std::to_string(wr.count) + ")");
}

/// Host copy of a vector into a new device view.
template <class Mem, class T>
Kokkos::View<T*, Mem> upload(const std::vector<T>& v, const std::string& label) {
  Kokkos::View<T*, Mem> d(Kokkos::ViewAllocateWithoutInitializing(label), v.size());
  auto h = Kokkos::create_mirror_view(d);
  for (std::size_t i = 0; i < v.size(); ++i) h(i) = v[i];
  Kokkos::deep_copy(d, h);
  return d;
}

/// The rows of this rank's workers: [begin, end) globally and each worker's block start relative to begin.
struct LocalRows {
  std::uint64_t begin = 0, end = 0;
  std::vector<std::uint64_t> block;  ///< count + 1 offsets into the local rows
  std::uint64_t size() const { return end - begin; }
};

inline LocalRows local_rows(std::uint64_t n, const WorkerRange& wr, const std::string& source) {
  LocalRows lr;
  lr.begin = row_block(n, wr.total, wr.first, source).begin;
  lr.end = row_block(n, wr.total, wr.end() - 1, source).end;
  for (int w = wr.first; w < wr.end(); ++w) lr.block.push_back(row_block(n, wr.total, w, source).begin - lr.begin);
  lr.block.push_back(lr.size());
  for (int w = wr.first; w < wr.end(); ++w)
    if (row_block(n, wr.total, w, source).size() >= (std::uint64_t(1) << 32))
      throw DataError(source + ": a worker's block has 2^32 rows or more; use more workers");
  return lr;
}

/// Shared argument checks of the public calls.
template <class ExecSpace>
class ProblemBase : public Problem<ExecSpace> {
 public:
  using typename Problem<ExecSpace>::vector_type;
  using typename Problem<ExecSpace>::const_vector_type;
  using typename Problem<ExecSpace>::matrix_type;
  using Policy = Kokkos::RangePolicy<ExecSpace>;

 protected:
  using Problem<ExecSpace>::workers_;
  using Problem<ExecSpace>::space_;

  explicit ProblemBase(const WorkerRange& wr) : Problem<ExecSpace>(wr) { check_workers(wr); }

  template <class V>
  void check_vector(const V& v, const char* what) const {
    if (v.extent(0) != this->dim())
      throw std::invalid_argument(std::string("terse problem: ") + what + " has length " +
                                  std::to_string(v.extent(0)) + ", expected dim = " + std::to_string(this->dim()));
  }
  void check_worker(int w) const {
    if (!workers_.holds(w))
      throw std::out_of_range("terse problem: worker " + std::to_string(w) + " is not on this rank (workers " +
                              std::to_string(workers_.first) + ".." + std::to_string(workers_.end() - 1) + ")");
  }
  void check_batch(const Batch& batch) const {
    if (!batch.full && batch.size < 1)
      throw std::invalid_argument("terse problem: batch size " + std::to_string(batch.size) + " < 1");
    if (!batch.full && static_cast<std::uint64_t>(batch.size) > (std::uint64_t(1) << 40))
      throw std::invalid_argument("terse problem: batch size " + std::to_string(batch.size) + " is absurd");
  }
  void check_samples(const matrix_type& G, int w, const Batch& batch) const {
    const auto rows = static_cast<std::uint64_t>(this->batch_rows(w, batch));
    if (G.extent(0) != rows || G.extent(1) != this->dim())
      throw std::invalid_argument("terse problem: per-sample gradients need a (" + std::to_string(rows) + ", " +
                                  std::to_string(this->dim()) + ") matrix, got (" + std::to_string(G.extent(0)) +
                                  ", " + std::to_string(G.extent(1)) + ")");
  }
  void check_step(const const_vector_type& x, int w, const Batch& batch) const {
    check_vector(x, "x");
    check_worker(w);
    check_batch(batch);
  }
  bool holds_worker0() const { return workers_.first == 0; }
  Policy policy(std::uint64_t n) const { return Policy(space_, 0, n); }
};


/// The rows of this rank's workers of a dataset of n rows split over the workers.
inline RowRange rank_range(std::uint64_t n, const WorkerRange& wr, const std::string& source) {
  return RowRange{row_block(n, wr.total, wr.first, source).begin, row_block(n, wr.total, wr.end() - 1, source).end};
}

/// The mlp from the deck's IDX files, reading only this rank's rows (terse_Mlp.cpp).
template <class ExecSpace>
std::unique_ptr<Problem<ExecSpace>> make_mlp_from_files(const ProblemConfig& config, const WorkerRange& workers);

}  // namespace problem_detail
}  // namespace terse
