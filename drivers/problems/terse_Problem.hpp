#pragma once
// terse_Problem.hpp: the optimisation problems of `terse run` (deck section `problem`, docs/deck.md).
//
//   quadratic   f(x) = 0.5 ||x||^2 with Gaussian gradient noise (seed 000 Sec. III: noise N(0, 100^2) on the
//               first coordinate, batch 256). Sample b of worker w at iteration k has the gradient
//               x + noise_std * xi_b, xi_b ~ N(0, I) on every coordinate (noise_coords: all) or on coordinate 0
//               only (noise_coords: first); a batch averages B samples, so the noise variance is noise_std^2/B.
//   rosenbrock  f(x) = sum_{i=1}^{d-1} f_i(x), f_i(x) = 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2 (seed 001 Sec. 5.1).
//               Sample b: grad f_i(x) + noise_std * xi_b with i uniform in 1..d-1 and xi_b ~ N(0, I) (the seed's
//               g^(x) = grad f_i(x) + xi). Scaling: E[g^] = grad f(x) / (d - 1) (the seed calls g^ "biased");
//               sample_gradient_scale() returns 1 / (d - 1). local_loss_sum/finish_* give f and grad f, unscaled.
//               `batch: full` is the noise-free mean over all d - 1 components, grad f / (d - 1).
//   logistic    f(x) = 1/N sum_i log(1 + exp(-y_i a_i^T x)) + lambda sum_j x_j^2 / (1 + x_j^2), y_i = +-1
//               (seed 004 eq. (7.1)). Sample: one row of the worker's block, drawn uniformly with replacement;
//               its gradient is -y_i sigma(-y_i a_i^T x) a_i + lambda grad R(x) (the regulariser is in every
//               sample's gradient, so a worker's stochastic gradient is unbiased for its block's objective).
//   mlp         one hidden layer: logits = W2 relu(W1 a + b1) + b2, softmax cross-entropy, f = mean over the
//               training rows (Fashion-MNIST: 784 pixels / 255, 10 classes). Parameters in x, in this order:
//               W1 (hidden x 784, row h at h*784), b1 (hidden), W2 (10 x hidden, row k at offset + k*hidden),
//               b2 (10); dim = 784 h + h + 10 h + 10. Initial model: W1 ~ U(-1/sqrt(784), 1/sqrt(784)),
//               W2 ~ U(-1/sqrt(hidden), 1/sqrt(hidden)), biases 0, from CounterRng (stream initial_model).
//               Reports the test accuracy (argmax of the logits, ties to the smaller class).
//   cnn         seed 000 Sec. III-2's convolutional network (terse_Cnn.cpp): conv 5x5 (c1 channels) - ReLU - max
//               pool 2x2/2 - conv 5x5 (c2) - ReLU - max pool 2x2/2 - dense (hidden, ReLU) - dense (10) - softmax
//               cross-entropy, stride 1, padding "same" (2) or "valid" (0), images S x S (Fashion-MNIST: 28) / 255.
//               Parameters in x, in this order (each matrix row-major): K1 (c1 x 25), b1 (c1), K2 (c2 x 25 c1),
//               b2 (c2), W3 (hidden x F), b3 (hidden), W4 (10 x hidden), b4 (10), F = c2 s2^2 with s2 the side
//               after the second pooling (7 for 28 and same); a kernel's row o is output channel o's 5 x 5 x c_in
//               taps in the order (ky, kx, c), W3's columns the pooled map in the order (y, x, c). Initial model:
//               He (every weight ~ N(0, 2 / fan_in), fan_in = 25 c_in for a kernel, F or hidden for a dense
//               layer), biases 0, from CounterRng (stream initial_model, iteration 0, worker 0, index =
//               parameter). d = 26 c1 + (25 c1 + 1) c2 + (F + 1) hidden + 10 hidden + 10 (1,663,370 for 28, same,
//               32, 64, 512). Reports the test accuracy as the mlp does.
//
// Workers and ranks. W logical workers; worker w owns rows floor(w N / W) .. floor((w+1) N / W) - 1 (row_block).
// A Problem is built on each rank for the contiguous workers first .. first + count - 1 (WorkerRange) and
// holds only their rows. The problem classes know nothing of MPI: the driver combines ranks like this:
//   f(x)      = finish_loss(MPI_Allreduce(SUM, local_loss_sum(x)), x)
//   grad f(x) : g = local_grad_sum(x) on each rank, MPI_Allreduce(SUM) of g (float), then finish_grad(g, x)
//   accuracy  = MPI_Allreduce(SUM, *local_test_correct(x)) / test_rows()   (mlp; test rows are split over
//               the workers like the training rows, each rank counts the correct ones of its workers' rows)
// Synthetic problems (quadratic, rosenbrock) have no rows: the rank that holds worker 0 returns the whole f and
// grad f from the local_* calls, the others 0; finish_* leave the sum as it is.
//
// Randomness and determinism. Every random number comes from CounterRng keyed by (seed, stream, iteration k,
// worker w, index): sample selection (stream sample_selection, index b: the b-th sample of the batch,
// CounterRng::below over the worker's block, or over 1..d-1 for rosenbrock), gradient noise (stream
// gradient_noise, index b * d + j), the mlp's initial weights (stream initial_model, iteration 0, worker 0,
// index = parameter). So worker w's stochastic gradient is a pure function of (seed, k, w, x, batch): the same
// bits whatever rank computes it and however many threads. No kernel uses floating-point atomics or
// parallel_reduce of floating-point values: every output (a coordinate of a gradient) is computed by one
// thread that sums its terms sequentially in a fixed order (rows or samples in increasing order, in double;
// the mlp's hidden pre-activations in 8 interleaved partial sums over the pixels, combined by a fixed tree),
// and scalar sums (losses) use deterministic_sum (terse_Reduce.hpp), whose summation tree depends on the
// length only. Results are bitwise equal for Serial and OpenMP at any thread count (tested). Local sums over
// a rank's rows depend on the rank layout only through the order of the driver's MPI_Allreduce.
// The mlp's default path (problem.products: library) is the exception: its products over the pixels go through
// KokkosBlas::gemm in float (the host BLAS; Kokkos Kernels' own kernels on GPUs), whose summation order is the
// library's. It keeps what depends only on the shapes of the products: a worker's stochastic gradient is the
// same bits whatever rank computes it (its batch is one product of fixed shape), so restarts and rank layouts
// give the same trajectory (tested), and Serial and OpenMP agree where both call the same host BLAS (tested);
// across BLAS thread counts it holds only as far as the BLAS keeps its order (Debian's OpenBLAS 0.3.21 did at 1
// and 2 threads), across backends not at all, and the full objective's sums over a rank's rows (chunks of 2048
// rows from the rank's first) change with the layout at the 1e-9 level. problem.products: fixed_order keeps the
// guarantees above (tested on both paths).
//
// Cost per call (B = batch size): quadratic O(d) plus B normals per noisy coordinate (noise_coords: all draws
// B d normals: slow for large d and B); rosenbrock O(B d); logistic O(B d) for a sampled batch (dense chunks of
// the samples' gradients, see Memory), O(nnz + d) for `full` and the local sums; mlp O(B 784 hidden) in chunks
// of 2048 rows (library) or 256 (fixed_order) (2 x 10^7 flops for B = 256, hidden = 64); cnn about 7.4 x 10^7
// flops per row forward and backward for the default shape (4.7 GFLOP for a worker's batch of 64, in chunks
// of 64 rows: 46 ms on 2 cores through OpenBLAS, bench/README.md), its fixed-order product ~50x slower.
//
// Kernels: named functors in terse_Problem.cpp, launched with RangePolicy on the problem's execution space
// instance; every public member function returns with its results complete (it fences the space). The objects
// hold workspaces: not thread-safe, one caller at a time. Workspaces are allocated in the constructor (their
// size depends on dim, the local rows and a fixed chunk size, never on the batch size), none in the calls.
//
// Memory per rank (floats are 4 bytes, n = this rank's rows, nnz = their stored entries, d = dim):
//   quadratic, rosenbrock: nothing but the deterministic-sum buffers (d / 64 doubles).
//   logistic: CSR of the local rows (8 (n+1) + 8 nnz + 4 n bytes), a CSC copy per local worker (8 count (d+1)
//             + 8 nnz bytes: parallel-over-columns gradients), per-row loss and coefficient (16 n bytes), a
//             dense chunk of c rows for sampled batches (4 c d bytes, c = clamp(2^22 / d, 1, 64): 16 MiB at most)
//             and a double accumulator (8 d bytes).
//   mlp:      the local training rows, dense (4 * 784 n bytes: 188 MB for all 60000 Fashion-MNIST rows), the
//             local test rows likewise, per-row losses (8 n), chunk workspaces of 256 rows (8 * 256 (2 hidden +
//             10) bytes), a double accumulator (8 d bytes); the library path adds chunks of 2048 rows: gathered
//             rows (4 * 2048 * 784 bytes, 6.4 MB), 4 * 2048 (3 hidden + 2 * 10) bytes of activations and deltas,
//             and the weight gradients' products (4 (784 + 10) hidden bytes). make_problem reads the IDX files as bytes and
//             converts only the local rows.
//   cnn:      the local training and test rows, dense (4 * S^2 bytes each), per-row losses (8 n), and the
//             workspaces of a chunk of 64 images (the patches of both convolutions, their outputs, the pooled
//             maps with their argmax, the dense layers; about 60 MB for the default shape, most of it the second
//             convolution's 12544 x 800 patch matrix): cnn_bytes() gives the total, from the sizes the
//             constructor allocates (tested within 10 % of the allocations' high-water mark).
#include "terse_Data.hpp"
#include "terse_Deck.hpp"

#include <terse_Compat.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace terse {

/// Samples per worker per iteration (`run.batch`), or the worker's whole block (`batch: full`).
struct Batch {
  bool full = false;
  std::int64_t size = 1;  ///< >= 1 unless full
};

/// run.batch of a deck.
inline Batch batch_of(const RunConfig& run) { return Batch{run.batch_full, run.batch_full ? 0 : run.batch}; }

/// An estimate of the loss's data term from a sample of rows (the monitor's rows between full evaluations).
/// Summed over the ranks: mean is unbiased for (1/N) sum_i loss_i, variance is the variance of that estimate.
struct LossSample {
  double mean = 0;        ///< sum over this rank's workers w of (n_w / N) * the mean loss of w's sampled rows
  double variance = 0;    ///< sum over them of (n_w / N)^2 * s_w^2 / S (s_w^2: the sample variance)
  std::uint64_t rows = 0; ///< rows evaluated (S per worker)
};

/// A named block of the model x (the problem's parameters as blocks: a weight matrix or a vector), for methods
/// that treat matrices as matrices (low-rank compression). Row-major: block(i, j) = x[offset + i * cols + j].
struct ParameterBlock {
  std::string name;
  std::size_t offset = 0;
  std::size_t rows = 0, cols = 1;
  bool matrix = false;  ///< a weight matrix (rows x cols); false: a vector of rows * cols values (biases, a model)
  std::size_t size() const { return rows * cols; }
};

/// The cnn's shape (problem.channels, problem.padding, problem.hidden; the image side S from the data).
struct CnnShape {
  std::int64_t side = 28;                 ///< S: images are S x S
  std::array<std::int64_t, 2> channels{{32, 64}};
  bool same = true;                       ///< padding "same" (2 pixels) or "valid" (none)
  std::int64_t hidden = 512;
  int classes = 10;
};

/// The W logical workers and the contiguous ones that live on this rank.
struct WorkerRange {
  int total = 1;  ///< W
  int first = 0;  ///< the first worker of this rank
  int count = 1;  ///< workers on this rank
  int end() const { return first + count; }
  bool holds(int w) const { return w >= first && w < first + count; }
};

/// Rank `rank` of `ranks` with per_rank workers each (workers.per_rank): W = ranks * per_rank, first = rank *
/// per_rank (worker w lives on rank floor(w / per_rank)).
WorkerRange workers_of_rank(int rank, int ranks, std::int64_t per_rank);

/// One rank's share of an optimisation problem (see the top of this file). ExecSpace: where the kernels run;
/// the driver uses the default, the tests also Serial and OpenMP to compare them bitwise.
template <class ExecSpace = Kokkos::DefaultExecutionSpace>
class Problem {
 public:
  using execution_space = ExecSpace;
  using memory_space = typename ExecSpace::memory_space;
  using vector_type = Kokkos::View<float*, memory_space>;              ///< a model or a gradient, length dim()
  using const_vector_type = Kokkos::View<const float*, memory_space>;
  using matrix_type = Kokkos::View<float**, Kokkos::LayoutRight, memory_space>;  ///< (samples, dim)

  virtual ~Problem() = default;

  virtual ProblemKind kind() const = 0;
  /// One line for the log, e.g. "logistic regression (seed 004 eq. (7.1)) on FILE: N rows, d features, ...".
  virtual std::string description() const = 0;
  /// d, the length of the model.
  virtual std::size_t dim() const = 0;
  /// N, the global number of training rows; 0 for the synthetic problems.
  virtual std::uint64_t rows() const = 0;
  /// Rows of worker w's block (w on this rank); 0 for the synthetic problems.
  virtual std::uint64_t worker_rows(int w) const = 0;
  /// Rows of the matrix per_sample_gradients() fills: batch.size, or for `full` the block's rows (logistic,
  /// mlp), d - 1 (rosenbrock: one per component f_i) or 1 (quadratic: the noise-free gradient).
  virtual std::int64_t batch_rows(int w, const Batch& batch) const = 0;
  /// s with E[stochastic_gradient] = s * grad f for a worker holding all rows: 1 / (d - 1) for rosenbrock
  /// (seed 001's g^), 1 for the others.
  virtual double sample_gradient_scale() const { return 1.0; }

  /// The initial model (the same on every rank): quadratic and rosenbrock x0 in every coordinate, logistic 0,
  /// mlp seeded random weights.
  virtual void initial_model(const vector_type& x, std::uint64_t seed) = 0;

  /// Sum of the per-row losses over this rank's rows (synthetic: f on the rank of worker 0, 0 elsewhere).
  virtual double local_loss_sum(const const_vector_type& x) = 0;
  /// The loss of S = per_worker rows drawn uniformly with replacement from each local worker's block (the draw
  /// keyed by (seed, stream monitor_sample, key, worker)), as LossSample; the estimate of f is finish_loss(N *
  /// the ranks' summed mean). nullopt where the problem has no rows to sample (the synthetic ones, whose full
  /// objective costs O(d)) or no estimate (logistic: its full objective is used).
  virtual std::optional<LossSample> local_loss_sample(const const_vector_type& /*x*/, std::uint64_t /*per_worker*/,
                                                      std::uint64_t /*key*/, std::uint64_t /*seed*/) {
    return std::nullopt;
  }
  /// local_loss_sum(x) and local_grad_sum(x, g) together (the mlp: in one forward pass).
  virtual double local_loss_and_grad_sum(const const_vector_type& x, const vector_type& g) {
    const double l = local_loss_sum(x);
    local_grad_sum(x, g);
    return l;
  }
  /// Sum of the per-row loss gradients over this rank's rows into g (synthetic: grad f on the rank of worker
  /// 0, zeros elsewhere). The regulariser is not in it.
  virtual void local_grad_sum(const const_vector_type& x, const vector_type& g) = 0;
  /// f(x) from the sum of local_loss_sum over all ranks: sum / N plus the regulariser (logistic).
  virtual double finish_loss(double global_sum, const const_vector_type& x) = 0;
  /// grad f(x) in place from the sum of local_grad_sum over all ranks: g / N plus the regulariser's gradient.
  virtual void finish_grad(const vector_type& g, const const_vector_type& x) = 0;

  /// Worker w's stochastic gradient at iteration k into g: the mean of the batch's per-sample gradients (see
  /// per_sample_gradients), or for `full` the exact mean over its whole block (no sampling, no noise).
  virtual void stochastic_gradient(const const_vector_type& x, int w, std::uint64_t k, const Batch& batch,
                                   std::uint64_t seed, const vector_type& g) = 0;
  /// The per-sample gradients of the same batch: G(b, :) for b = 0 .. batch_rows(w, batch) - 1 (the same rows
  /// and noise as stochastic_gradient with these arguments, whose result is their mean up to the order of
  /// floating-point sums). For majority vote over samples (seed 000 Alg. 2) and the eta* estimate (Prop. 3).
  virtual void per_sample_gradients(const const_vector_type& x, int w, std::uint64_t k, const Batch& batch,
                                    std::uint64_t seed, const matrix_type& G) = 0;

  /// The parameters as blocks, in the order of x (they tile it): the networks' weight matrices and bias vectors;
  /// one vector of length dim() for the problems without matrices.
  virtual std::vector<ParameterBlock> blocks() const { return {ParameterBlock{"x", 0, dim(), 1, false}}; }

  /// Global number of test rows (mlp), 0 when the problem has no test set.
  virtual std::uint64_t test_rows() const { return 0; }
  /// Number of this rank's test rows classified correctly (mlp), nullopt when the problem has no test set.
  virtual std::optional<std::uint64_t> local_test_correct(const const_vector_type& /*x*/) { return std::nullopt; }

  /// The workers of this rank.
  const WorkerRange& workers() const { return workers_; }
  const ExecSpace& space() const { return space_; }

  /// f(x) and grad f(x) when this rank holds every worker (one rank, or tests); throws std::logic_error otherwise.
  double loss(const const_vector_type& x) {
    require_all_workers("loss");
    return finish_loss(local_loss_sum(x), x);
  }
  void gradient(const const_vector_type& x, const vector_type& g) {
    require_all_workers("gradient");
    local_grad_sum(x, g);
    finish_grad(g, x);
  }
  /// Test accuracy when this rank holds every worker (mlp), nullopt when the problem has no test set.
  std::optional<double> test_accuracy(const const_vector_type& x) {
    require_all_workers("test_accuracy");
    const auto correct = local_test_correct(x);
    if (!correct || test_rows() == 0) return std::nullopt;
    return static_cast<double>(*correct) / static_cast<double>(test_rows());
  }

 protected:
  explicit Problem(const WorkerRange& workers, const ExecSpace& space = ExecSpace()) : workers_(workers), space_(space) {}

  WorkerRange workers_;
  ExecSpace space_;

 private:
  void require_all_workers(const char* what) const {
    if (workers_.first != 0 || workers_.count != workers_.total)
      throw std::logic_error(std::string("terse::Problem::") + what +
                             ": this rank does not hold every worker; combine local sums with MPI_Allreduce");
  }
};

/// The problem a deck describes, for the workers of this rank: reads the data files (each rank reads them and
/// keeps the rows of its workers). Throws DataError for bad data files or more workers than rows, UserError for
/// a `dim` smaller than the data's (fashion_mnist), std::invalid_argument for a bad WorkerRange.
template <class ExecSpace = Kokkos::DefaultExecutionSpace>
std::unique_ptr<Problem<ExecSpace>> make_problem(const ProblemConfig& config, const WorkerRange& workers);

/// The problems from values in memory (make_problem calls these; tests too).
template <class ExecSpace = Kokkos::DefaultExecutionSpace>
std::unique_ptr<Problem<ExecSpace>> make_quadratic(std::int64_t dim, double x0, double noise_std, NoiseCoords coords,
                                                   const WorkerRange& workers);
template <class ExecSpace = Kokkos::DefaultExecutionSpace>
std::unique_ptr<Problem<ExecSpace>> make_rosenbrock(std::int64_t dim, double x0, double noise_std,
                                                    const WorkerRange& workers);
/// data: all N rows (this rank keeps its workers' rows); labels -1/+1, or two distinct values mapped by
/// binary_labels(); dimension data.dim.
template <class ExecSpace = Kokkos::DefaultExecutionSpace>
std::unique_ptr<Problem<ExecSpace>> make_logistic(const SparseDataset& data, double lambda, const WorkerRange& workers);
/// train, test: all rows (this rank keeps its workers' share of each); the same dim and num_classes (<= 16).
/// products: how the two products over the pixels are computed (problem.products, docs/deck.md).
template <class ExecSpace = Kokkos::DefaultExecutionSpace>
std::unique_ptr<Problem<ExecSpace>> make_mlp(const DenseDataset& train, const DenseDataset& test, std::int64_t hidden,
                                             const WorkerRange& workers,
                                             DenseProducts products = DenseProducts::library);

/// The cnn (train, test as for make_mlp; dim must be S^2 for the shape's side S, which make_cnn takes from it).
template <class ExecSpace = Kokkos::DefaultExecutionSpace>
std::unique_ptr<Problem<ExecSpace>> make_cnn(const DenseDataset& train, const DenseDataset& test, const CnnShape& shape,
                                             const WorkerRange& workers,
                                             DenseProducts products = DenseProducts::library);

/// The bytes the cnn allocates on a rank holding `train_rows` and `test_rows` rows (the data, its workspaces,
/// the per-row losses): the sizes its constructor allocates, from the same sizing struct.
std::uint64_t cnn_bytes(const CnnShape& shape, std::uint64_t train_rows, std::uint64_t test_rows);

}  // namespace terse
