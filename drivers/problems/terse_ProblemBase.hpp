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

/// At most this many classes (the output kernels keep a row's logits in a local array).
inline constexpr int max_classes = 16;

/// Where an output kernel writes a row's loss: nowhere, at its local row (loss(r_c)), or at its chunk position
/// (loss(offset + c): the sampled rows of a loss estimate, which may repeat).
enum class LossAt { none, row, position };

/// Softmax cross-entropy of a chunk row's logits o[0..K) (row r, label y, chunk position c): D(c, k) = p_k -
/// [k == y] in D's type, and the row's loss logsumexp(o) - o_y where loss_at says. The output kernels of the
/// mlp (both product paths) and the cnn.
template <class DV, class LV>
KOKKOS_INLINE_FUNCTION void softmax_xent(std::uint64_t K, const double* o, std::uint64_t r, std::int32_t y,
                                         std::size_t c, const DV& D, const LV& loss, LossAt loss_at,
                                         std::uint64_t offset) {
  double m = o[0];
  for (std::uint64_t k = 1; k < K; ++k) m = o[k] > m ? o[k] : m;
  double s = 0;
  for (std::uint64_t k = 0; k < K; ++k) s += compat::exp(o[k] - m);
  const double lse = m + compat::log(s);
  for (std::uint64_t k = 0; k < K; ++k)
    D(c, k) = static_cast<typename DV::value_type>(compat::exp(o[k] - lse) - (static_cast<std::int32_t>(k) == y ? 1.0 : 0.0));
  if (loss_at == LossAt::row) loss(r) = lse - o[y];
  else if (loss_at == LossAt::position) loss(offset + c) = lse - o[y];
}

/// The predicted class: the first maximum of the logits o[0..K) (ties to the smaller class).
KOKKOS_INLINE_FUNCTION std::uint64_t argmax_class(std::uint64_t K, const double* o) {
  std::uint64_t best = 0;
  for (std::uint64_t k = 1; k < K; ++k)
    if (o[k] > o[best]) best = k;
  return best;
}

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

// ---------------------------------------------------------------------------------- dense (image) rows

/// Local rows of a dense dataset on the device.
template <class Mem>
struct DenseRows {
  Kokkos::View<const float**, Kokkos::LayoutRight, Mem> feats;
  Kokkos::View<const std::int32_t*, Mem> labels;
  std::uint64_t size() const { return labels.extent(0); }
};

template <class Mem>
DenseRows<Mem> upload_rows(const DenseDataset& data, RowRange range, const std::string& label) {
  const std::uint64_t n = range.size(), P = data.dim;
  Kokkos::View<float**, Kokkos::LayoutRight, Mem> feats(Kokkos::ViewAllocateWithoutInitializing(label + "_features"),
                                                        n, P);
  auto fh = Kokkos::create_mirror_view(feats);
  for (std::uint64_t r = 0; r < n; ++r)
    for (std::uint64_t p = 0; p < P; ++p) fh(r, p) = data.features[(range.begin + r) * P + p];
  Kokkos::deep_copy(feats, fh);
  std::vector<std::int32_t> labels(data.labels.begin() + range.begin, data.labels.begin() + range.end);
  return DenseRows<Mem>{feats, upload<Mem>(labels, label + "_labels")};
}

inline void check_dense(const DenseDataset& d, const char* what) {
  if (d.rows() == 0 || d.dim == 0 || d.features.size() != d.rows() * d.dim)
    throw std::invalid_argument(std::string("terse problem: the ") + what + " set is empty or inconsistent");
  for (auto y : d.labels)
    if (y < 0 || y >= d.num_classes)
      throw DataError(d.source + ": label " + std::to_string(y) + " outside 0.." + std::to_string(d.num_classes - 1));
}

/// Dense [0, 1] features of the IDX images in `range` (pixel / 255, as idx_to_dense), converted row by row so
/// that only this rank's rows become floats.
inline DenseDataset idx_rows(const IdxPair& pair, RowRange range, int num_classes) {
  DenseDataset out;
  out.dim = pair.images.pixels_per_image();
  out.num_classes = num_classes;
  out.source = pair.images.source;
  out.features.resize(range.size() * out.dim);
  for (std::uint64_t k = 0; k < out.features.size(); ++k)
    out.features[k] = pair.images.pixels[range.begin * out.dim + k] / 255.0f;
  out.labels.assign(pair.labels.labels.begin() + range.begin, pair.labels.labels.begin() + range.end);
  return out;
}

/// The training and test images of a deck's IDX files, only this rank's workers' share of each as floats.
struct ImageRows {
  DenseDataset train, test;    ///< this rank's rows
  std::uint64_t n = 0, nt = 0; ///< the global counts
  std::uint64_t pixels = 0;    ///< per image
  RowRange train_range, test_range;
};

inline ImageRows read_image_rows(const ProblemConfig& config, const WorkerRange& workers) {
  const IdxPair train = read_idx_pair(config.train_images, config.train_labels, fashion_mnist_classes);
  const IdxPair test = read_idx_pair(config.test_images, config.test_labels, fashion_mnist_classes);
  if (train.images.pixels_per_image() != test.images.pixels_per_image())
    throw DataError(config.test_images + ": images of " + std::to_string(test.images.pixels_per_image()) +
                    " pixels, the training images have " + std::to_string(train.images.pixels_per_image()));
  ImageRows out;
  out.n = train.images.count;
  out.nt = test.images.count;
  out.pixels = train.images.pixels_per_image();
  out.train_range = rank_range(out.n, workers, config.train_images);
  out.test_range = rank_range(out.nt, workers, config.test_images);
  out.train = idx_rows(train, out.train_range, fashion_mnist_classes);
  out.test = idx_rows(test, out.test_range, fashion_mnist_classes);
  return out;
}

/// The LossSample of per_worker sampled losses of each local worker l, held at host(l per_worker + b): the
/// worker's sample mean and its variance s^2 / S, weighted by its share n_w / N of the rows.
template <class HostView>
LossSample loss_sample_of(const HostView& host, const LocalRows& lr, int count, std::uint64_t per_worker,
                          std::uint64_t n) {
  LossSample out;
  for (int l = 0; l < count; ++l) {
    const std::uint64_t r0 = lr.block[l], r1 = lr.block[l + 1], o = l * per_worker;
    double mean = 0, sq = 0;
    for (std::uint64_t b = o; b < o + per_worker; ++b) mean += host(b);
    mean /= static_cast<double>(per_worker);
    for (std::uint64_t b = o; b < o + per_worker; ++b) sq += (host(b) - mean) * (host(b) - mean);
    const double var = per_worker > 1 ? sq / static_cast<double>(per_worker - 1) / static_cast<double>(per_worker) : 0.0;
    const double share = static_cast<double>(r1 - r0) / static_cast<double>(n);
    out.mean += share * mean;
    out.variance += share * share * var;
    out.rows += per_worker;
  }
  return out;
}

/// The mlp from the deck's IDX files, reading only this rank's rows (terse_Mlp.cpp).
template <class ExecSpace>
std::unique_ptr<Problem<ExecSpace>> make_mlp_from_files(const ProblemConfig& config, const WorkerRange& workers);
/// The cnn likewise (terse_Cnn.cpp).
template <class ExecSpace>
std::unique_ptr<Problem<ExecSpace>> make_cnn_from_files(const ProblemConfig& config, const WorkerRange& workers);

}  // namespace problem_detail
}  // namespace terse
