// terse_Logistic.cpp: the nonconvex logistic regression of seed 004 eq. (7.1) on sparse rows;
// terse_Problem.hpp has the formulas, terse_ProblemBase.hpp the parts the problems share.
#include "terse_ProblemBase.hpp"

namespace terse {
namespace Impl {
namespace problem {

// ------------------------------------------------------------------------------------------------- logistic

template <class Mem>
struct Csr {
  Kokkos::View<const std::uint64_t*, Mem> row_ptr;
  Kokkos::View<const std::uint32_t*, Mem> col;
  Kokkos::View<const float*, Mem> val;
  Kokkos::View<const float*, Mem> y;

  template <class XV>
  KOKKOS_INLINE_FUNCTION double margin(const XV& x, std::uint64_t r) const {
    double m = 0;
    for (std::uint64_t e = row_ptr(r); e < row_ptr(r + 1); ++e) m += static_cast<double>(val(e)) * x(col(e));
    return m;
  }
  /// d loss_r / d margin = -y sigma(-y m).
  template <class XV>
  KOKKOS_INLINE_FUNCTION double coefficient(const XV& x, std::uint64_t r) const {
    const double yr = y(r);
    return -yr * sigmoid(-yr * margin(x, r));
  }
};

/// loss(r) = log(1 + exp(-y_r a_r^T x)) and/or coef(r) = -y_r sigma(-y_r a_r^T x).
template <class Mem, class XV>
struct LogisticRowTerms {
  Csr<Mem> csr;
  XV x;
  Kokkos::View<double*, Mem> loss, coef;
  bool want_loss, want_coef;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t r) const {
    const double yr = csr.y(r);
    const double m = csr.margin(x, r);
    if (want_loss) loss(r) = softplus(-yr * m);
    if (want_coef) coef(r) = -yr * sigmoid(-yr * m);
  }
};

/// g(j) = scale * sum over the local workers lw in [w_begin, w_end) and their rows r (increasing) of
/// coef(r) a_rj, plus lambda R'(x_j); one thread per column j through the workers' CSC copies.
template <class Mem, class XV, class GV>
struct LogisticColumns {
  Kokkos::View<const std::uint64_t**, Kokkos::LayoutRight, Mem> csc_ptr;
  Kokkos::View<const std::uint32_t*, Mem> csc_row;
  Kokkos::View<const float*, Mem> csc_val;
  Kokkos::View<const double*, Mem> coef;
  XV x;
  GV g;
  int w_begin, w_end;
  double scale, lambda;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t j) const {
    double s = 0;
    for (int lw = w_begin; lw < w_end; ++lw)
      for (std::uint64_t e = csc_ptr(lw, j); e < csc_ptr(lw, j + 1); ++e) s += coef(csc_row(e)) * csc_val(e);
    double v = s * scale;
    if (lambda != 0) v += lambda * reg_grad(x(j));
    g(j) = static_cast<float>(v);
  }
};
template <class Mem, class XV>
struct LogisticChunkScatter {
  Csr<Mem> csr;
  XV x;
  SampleRows rows;
  Kokkos::View<std::uint64_t*, Mem> chunk_rows;
  Kokkos::View<float**, Kokkos::LayoutRight, Mem> buf;
  std::uint64_t b0;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t c) const {
    const std::uint64_t r = rows(b0 + c);
    chunk_rows(c) = r;
    const double co = csr.coefficient(x, r);
    for (std::uint64_t e = csr.row_ptr(r); e < csr.row_ptr(r + 1); ++e)
      buf(c, csr.col(e)) = static_cast<float>(co * csr.val(e));
  }
};

/// Resets the entries LogisticChunkScatter wrote, so the chunk buffer is zero again.
template <class Mem>
struct LogisticChunkClear {
  Csr<Mem> csr;
  Kokkos::View<const std::uint64_t*, Mem> chunk_rows;
  Kokkos::View<float**, Kokkos::LayoutRight, Mem> buf;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t c) const {
    const std::uint64_t r = chunk_rows(c);
    for (std::uint64_t e = csr.row_ptr(r); e < csr.row_ptr(r + 1); ++e) buf(c, csr.col(e)) = 0.0f;
  }
};

/// acc(j) (+)= sum_{c < chunk} buf(c, j), c increasing.
template <class Mem>
struct ChunkAccumulate {
  Kokkos::View<const float**, Kokkos::LayoutRight, Mem> buf;
  Kokkos::View<double*, Mem> acc;
  std::uint64_t chunk;
  bool first;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t j) const {
    double s = first ? 0.0 : acc(j);
    for (std::uint64_t c = 0; c < chunk; ++c) s += buf(c, j);
    acc(j) = s;
  }
};

template <class XV>
struct RegulariserTerm {
  XV x;
  KOKKOS_INLINE_FUNCTION double operator()(std::size_t j) const { return reg_value(x(j)); }
};

/// G(b, j) = lambda R'(x_j) (the regulariser's share of every sample's gradient).
template <class XV, class MV>
struct FillRegulariser {
  XV x;
  MV G;
  std::uint64_t d;
  double lambda;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t t) const {
    const std::uint64_t b = t / d, j = t % d;
    G(b, j) = static_cast<float>(lambda * reg_grad(x(j)));
  }
};

/// G(b, :) += coef a_r for the batch's row r of sample b.
template <class Mem, class XV, class MV>
struct LogisticSampleScatter {
  Csr<Mem> csr;
  XV x;
  SampleRows rows;
  MV G;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t b) const {
    const std::uint64_t r = rows(b);
    const double co = csr.coefficient(x, r);
    for (std::uint64_t e = csr.row_ptr(r); e < csr.row_ptr(r + 1); ++e)
      G(b, csr.col(e)) += static_cast<float>(co * csr.val(e));
  }
};


}  // namespace problem
}  // namespace Impl

namespace problem_detail {

// ------------------------------------------------------------------------------------------------- logistic

template <class ExecSpace>
class Logistic final : public ProblemBase<ExecSpace> {
  using Base = ProblemBase<ExecSpace>;

 public:
  using typename Base::const_vector_type;
  using typename Base::matrix_type;
  using typename Base::vector_type;
  using Mem = typename ExecSpace::memory_space;

  Logistic(const SparseDataset& data, double lambda, const WorkerRange& wr) : Base(wr), lambda_(lambda) {
    if (!(lambda >= 0) || !std::isfinite(lambda)) throw std::invalid_argument("logistic: lambda must be >= 0");
    n_ = data.rows();
    d_ = data.dim;
    source_ = data.source;
    if (d_ < 1) throw DataError(data.source + ": the dimension is 0");
    if (data.row_ptr.size() != n_ + 1 || data.col.size() != data.val.size() || data.row_ptr.back() != data.nnz())
      throw std::invalid_argument("logistic: inconsistent CSR dataset");
    lr_ = local_rows(n_, wr, data.source.empty() ? "data" : data.source);
    const std::uint64_t nl = lr_.size();
    if (nl >= (std::uint64_t(1) << 32)) throw DataError(source_ + ": 2^32 rows or more on one rank; use more ranks");

    // Labels: -1/+1 as they are (both present), otherwise the two values mapped by binary_labels(), which refuses
    // one class or more than two.
    std::vector<double> y = data.labels;
    const bool plus_minus = std::all_of(y.begin(), y.end(), [](double v) { return v == -1.0 || v == 1.0; });
    const bool both = std::find(y.begin(), y.end(), 1.0) != y.end() && std::find(y.begin(), y.end(), -1.0) != y.end();
    if (!plus_minus || !both) y = binary_labels(data.labels, data.source).y;

    // CSR of the local rows.
    const std::uint64_t e0 = data.row_ptr[lr_.begin], e1 = data.row_ptr[lr_.end];
    std::vector<std::uint64_t> row_ptr(nl + 1);
    for (std::uint64_t r = 0; r <= nl; ++r) row_ptr[r] = data.row_ptr[lr_.begin + r] - e0;
    std::vector<std::uint32_t> col(data.col.begin() + e0, data.col.begin() + e1);
    std::vector<float> val(data.val.begin() + e0, data.val.begin() + e1);
    std::vector<float> yl(nl);
    for (std::uint64_t r = 0; r < nl; ++r) yl[r] = static_cast<float>(y[lr_.begin + r]);
    for (auto c : col)
      if (c >= d_) throw std::invalid_argument("logistic: a column index exceeds data.dim");

    // One CSC copy per local worker: column j of worker lw holds entries csc_ptr(lw, j) .. csc_ptr(lw, j+1) - 1
    // with increasing rows.
    const int count = wr.count;
    Kokkos::View<std::uint64_t**, Kokkos::LayoutRight, Mem> csc_ptr(
        Kokkos::ViewAllocateWithoutInitializing("terse::logistic::csc_ptr"), count, d_ + 1);
    auto ptr_h = Kokkos::create_mirror_view(csc_ptr);
    std::vector<std::uint32_t> csc_row(col.size());
    std::vector<float> csc_val(col.size());
    std::vector<std::uint64_t> next(d_);
    for (int lw = 0; lw < count; ++lw) {
      const std::uint64_t r0 = lr_.block[lw], r1 = lr_.block[lw + 1];
      std::vector<std::uint64_t> cnt(d_ + 1, 0);
      for (std::uint64_t e = row_ptr[r0]; e < row_ptr[r1]; ++e) ++cnt[col[e] + 1];
      std::uint64_t off = row_ptr[r0];
      for (std::uint64_t j = 0; j <= d_; ++j) {
        off += cnt[j];
        ptr_h(lw, j) = off;
        if (j < d_) next[j] = off;
      }
      for (std::uint64_t r = r0; r < r1; ++r)
        for (std::uint64_t e = row_ptr[r]; e < row_ptr[r + 1]; ++e) {
          const std::uint64_t pos = next[col[e]]++;
          csc_row[pos] = static_cast<std::uint32_t>(r);
          csc_val[pos] = val[e];
        }
    }
    Kokkos::deep_copy(csc_ptr, ptr_h);
    csc_ptr_ = csc_ptr;
    csc_row_ = upload<Mem>(csc_row, "terse::logistic::csc_row");
    csc_val_ = upload<Mem>(csc_val, "terse::logistic::csc_val");
    csr_.row_ptr = upload<Mem>(row_ptr, "terse::logistic::row_ptr");
    csr_.col = upload<Mem>(col, "terse::logistic::col");
    csr_.val = upload<Mem>(val, "terse::logistic::val");
    csr_.y = upload<Mem>(yl, "terse::logistic::y");

    loss_ = Kokkos::View<double*, Mem>("terse::logistic::loss", nl);
    coef_ = Kokkos::View<double*, Mem>("terse::logistic::coef", nl);
    chunk_ = std::max<std::uint64_t>(1, std::min<std::uint64_t>(64, (std::uint64_t(1) << 22) / d_));
    buf_ = Kokkos::View<float**, Kokkos::LayoutRight, Mem>("terse::logistic::chunk", chunk_, d_);  // zero
    chunk_rows_ = Kokkos::View<std::uint64_t*, Mem>("terse::logistic::chunk_rows", chunk_);
    acc_ = Kokkos::View<double*, Mem>("terse::logistic::acc", d_);
    sum_ = SumWorkspace<ExecSpace>(std::max<std::uint64_t>({nl, d_, 1}));
  }

  ProblemKind kind() const override { return ProblemKind::logistic; }
  std::string description() const override {
    return "logistic regression with the nonconvex regulariser of seed 004 eq. (7.1) on " + source_ + ": " +
           std::to_string(n_) + " rows, d = " + std::to_string(d_) + ", lambda = " + fmt(lambda_);
  }
  std::size_t dim() const override { return d_; }
  std::uint64_t rows() const override { return n_; }
  std::uint64_t worker_rows(int w) const override {
    this->check_worker(w);
    const int lw = w - this->workers_.first;
    return lr_.block[lw + 1] - lr_.block[lw];
  }
  std::int64_t batch_rows(int w, const Batch& batch) const override {
    this->check_batch(batch);
    const std::uint64_t n = worker_rows(w);
    return batch.full ? static_cast<std::int64_t>(n) : batch.size;
  }
  void initial_model(const vector_type& x, std::uint64_t) override {
    this->check_vector(x, "x");
    Kokkos::deep_copy(this->space_, x, 0.0f);
    this->space_.fence();
  }
  double local_loss_sum(const const_vector_type& x) override {
    this->check_vector(x, "x");
    Kokkos::parallel_for("terse::logistic::row_losses", this->policy(lr_.size()),
                         LogisticRowTerms<Mem, const_vector_type>{csr_, x, loss_, coef_, true, false});
    deterministic_sum(this->space_, loss_, lr_.size(), sum_);
    return sum_.host_result();
  }
  void local_grad_sum(const const_vector_type& x, const vector_type& g) override {
    this->check_vector(x, "x");
    this->check_vector(g, "g");
    Kokkos::parallel_for("terse::logistic::row_coefficients", this->policy(lr_.size()),
                         LogisticRowTerms<Mem, const_vector_type>{csr_, x, loss_, coef_, false, true});
    Kokkos::parallel_for("terse::logistic::columns", this->policy(d_),
                         LogisticColumns<Mem, const_vector_type, vector_type>{
                             csc_ptr_, csc_row_, csc_val_, coef_, x, g, 0, this->workers_.count, 1.0, 0.0});
    this->space_.fence();
  }
  double finish_loss(double global_sum, const const_vector_type& x) override {
    this->check_vector(x, "x");
    double reg = 0;
    if (lambda_ != 0) {
      deterministic_sum(this->space_, RegulariserTerm<const_vector_type>{x}, d_, sum_);
      reg = sum_.host_result();
    }
    return global_sum / static_cast<double>(n_) + lambda_ * reg;
  }
  void finish_grad(const vector_type& g, const const_vector_type& x) override {
    this->check_vector(x, "x");
    this->check_vector(g, "g");
    Kokkos::parallel_for("terse::logistic::finish_grad", this->policy(d_),
                         ScaleAddRegulariser<const_vector_type, vector_type>{x, g, 1.0 / static_cast<double>(n_),
                                                                              lambda_});
    this->space_.fence();
  }

  void stochastic_gradient(const const_vector_type& x, int w, std::uint64_t k, const Batch& batch, std::uint64_t seed,
                           const vector_type& g) override {
    this->check_step(x, w, batch);
    this->check_vector(g, "g");
    const int lw = w - this->workers_.first;
    const std::uint64_t r0 = lr_.block[lw], r1 = lr_.block[lw + 1];
    if (batch.full) {
      Kokkos::parallel_for("terse::logistic::row_coefficients", Kokkos::RangePolicy<ExecSpace>(this->space_, r0, r1),
                           LogisticRowTerms<Mem, const_vector_type>{csr_, x, loss_, coef_, false, true});
      Kokkos::parallel_for("terse::logistic::columns", this->policy(d_),
                           LogisticColumns<Mem, const_vector_type, vector_type>{
                               csc_ptr_, csc_row_, csc_val_, coef_, x, g, lw, lw + 1,
                               1.0 / static_cast<double>(r1 - r0), lambda_});
    } else {
      // Chunks of samples: scatter each sample's gradient into a zeroed dense row, add the rows up column by
      // column in sample order, clear what was written.
      const SampleRows rows{select(seed), k, static_cast<std::uint32_t>(w), r0, r1 - r0, false};
      const std::uint64_t B = static_cast<std::uint64_t>(batch.size);
      for (std::uint64_t b0 = 0; b0 < B; b0 += chunk_) {
        const std::uint64_t c = std::min(chunk_, B - b0);
        Kokkos::parallel_for("terse::logistic::chunk_scatter", this->policy(c),
                             LogisticChunkScatter<Mem, const_vector_type>{csr_, x, rows, chunk_rows_, buf_, b0});
        Kokkos::parallel_for("terse::logistic::chunk_accumulate", this->policy(d_),
                             ChunkAccumulate<Mem>{buf_, acc_, c, b0 == 0});
        Kokkos::parallel_for("terse::logistic::chunk_clear", this->policy(c),
                             LogisticChunkClear<Mem>{csr_, chunk_rows_, buf_});
      }
      Kokkos::parallel_for("terse::logistic::finish_batch", this->policy(d_),
                           FinishAccumulated<Mem, const_vector_type, vector_type>{
                               acc_, x, g, 1.0 / static_cast<double>(B), lambda_});
    }
    this->space_.fence();
  }
  void per_sample_gradients(const const_vector_type& x, int w, std::uint64_t k, const Batch& batch,
                            std::uint64_t seed, const matrix_type& G) override {
    this->check_step(x, w, batch);
    this->check_samples(G, w, batch);
    const int lw = w - this->workers_.first;
    const std::uint64_t r0 = lr_.block[lw], r1 = lr_.block[lw + 1];
    const std::uint64_t B = G.extent(0);
    const SampleRows rows{select(seed), k, static_cast<std::uint32_t>(w), r0, r1 - r0, batch.full};
    Kokkos::parallel_for("terse::logistic::per_sample_regulariser", this->policy(B * d_),
                         FillRegulariser<const_vector_type, matrix_type>{x, G, d_, lambda_});
    Kokkos::parallel_for("terse::logistic::per_sample_gradients", this->policy(B),
                         LogisticSampleScatter<Mem, const_vector_type, matrix_type>{csr_, x, rows, G});
    this->space_.fence();
  }

 private:
  static CounterRng select(std::uint64_t seed) {
    return CounterRng{seed, static_cast<std::uint32_t>(RandomStream::sample_selection)};
  }

  double lambda_;
  std::uint64_t n_ = 0, d_ = 0, chunk_ = 1;
  std::string source_;
  LocalRows lr_;
  Csr<Mem> csr_;
  Kokkos::View<const std::uint64_t**, Kokkos::LayoutRight, Mem> csc_ptr_;
  Kokkos::View<const std::uint32_t*, Mem> csc_row_;
  Kokkos::View<const float*, Mem> csc_val_;
  Kokkos::View<double*, Mem> loss_, coef_, acc_;
  Kokkos::View<float**, Kokkos::LayoutRight, Mem> buf_;
  Kokkos::View<std::uint64_t*, Mem> chunk_rows_;
  SumWorkspace<ExecSpace> sum_;
};


}  // namespace problem_detail

using namespace problem_detail;

template <class ExecSpace>
std::unique_ptr<Problem<ExecSpace>> make_logistic(const SparseDataset& data, double lambda, const WorkerRange& workers) {
  return std::make_unique<Logistic<ExecSpace>>(data, lambda, workers);
}

#define TERSE_INSTANTIATE(E) \
  template std::unique_ptr<Problem<E>> make_logistic<E>(const SparseDataset&, double, const WorkerRange&);

TERSE_FOR_EACH_BACKEND(TERSE_INSTANTIATE)
#undef TERSE_INSTANTIATE

}  // namespace terse
