// terse_Rosenbrock.cpp: the Rosenbrock function with sampled components (seed 001 Sec. 5.1);
// terse_Problem.hpp has the formulas, terse_ProblemBase.hpp the parts the problems share.
#include "terse_ProblemBase.hpp"

namespace terse {
namespace Impl {
namespace problem {

// ----------------------------------------------------------------------------------------------- rosenbrock

/// f_i(x) = 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2, i 0-based in 0 .. d-2.
template <class XV>
struct RosenbrockTerm {
  XV x;
  KOKKOS_INLINE_FUNCTION double operator()(std::size_t i) const {
    const double a = x(i), b = x(i + 1), r = b - a * a;
    return 100.0 * r * r + (1.0 - a) * (1.0 - a);
  }
};

/// d f_i / d x_j.
template <class XV>
KOKKOS_INLINE_FUNCTION double rosenbrock_partial(const XV& x, std::uint64_t i, std::uint64_t j) {
  if (j != i && j != i + 1) return 0.0;
  const double a = x(i), b = x(i + 1), r = b - a * a;
  return j == i ? -400.0 * a * r - 2.0 * (1.0 - a) : 200.0 * r;
}

/// g(j) = scale * d f / d x_j.
template <class XV, class GV>
struct RosenbrockGradient {
  XV x;
  GV g;
  std::uint64_t d;
  double scale;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t j) const {
    double s = 0;
    if (j >= 1) s += rosenbrock_partial(x, j - 1, j);
    if (j + 1 < d) s += rosenbrock_partial(x, j, j);
    g(j) = static_cast<float>(s * scale);
  }
};

/// g(j) = mean_b [ d f_{i_b} / d x_j + noise_std xi(b, j) ], i_b uniform in 0 .. d-2.
template <class XV, class GV>
struct RosenbrockStochastic {
  XV x;
  GV g;
  CounterRng select, noise;
  double noise_std;
  std::uint64_t k;
  std::uint32_t w;
  std::uint64_t B, d;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t j) const {
    double s = 0;
    for (std::uint64_t b = 0; b < B; ++b) {
      const std::uint64_t i = select.below(static_cast<std::uint32_t>(d - 1), k, w, b);
      s += rosenbrock_partial(x, i, j);
      if (noise_std != 0) s += noise_std * noise.normal(k, w, b * d + j);
    }
    g(j) = static_cast<float>(s / static_cast<double>(B));
  }
};

/// G(b, j) = d f_{i_b} / d x_j + noise_std xi(b, j); full: i_b = b, no noise.
template <class XV, class MV>
struct RosenbrockSamples {
  XV x;
  MV G;
  CounterRng select, noise;
  double noise_std;
  std::uint64_t k;
  std::uint32_t w;
  std::uint64_t d;
  bool full;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t t) const {
    const std::uint64_t b = t / d, j = t % d;
    const std::uint64_t i = full ? b : select.below(static_cast<std::uint32_t>(d - 1), k, w, b);
    double v = rosenbrock_partial(x, i, j);
    if (!full && noise_std != 0) v += noise_std * noise.normal(k, w, b * d + j);
    G(b, j) = static_cast<float>(v);
  }
};


}  // namespace problem
}  // namespace Impl

namespace problem_detail {

// ----------------------------------------------------------------------------------------------- rosenbrock

template <class ExecSpace>
class Rosenbrock final : public ProblemBase<ExecSpace> {
  using Base = ProblemBase<ExecSpace>;

 public:
  using typename Base::const_vector_type;
  using typename Base::matrix_type;
  using typename Base::vector_type;

  Rosenbrock(std::int64_t dim, double x0, double noise_std, const WorkerRange& wr)
      : Base(wr), d_(static_cast<std::uint64_t>(dim)), x0_(x0), noise_std_(noise_std) {
    if (dim < 2) throw std::invalid_argument("rosenbrock: dim must be >= 2");
    if (d_ - 1 > std::numeric_limits<std::uint32_t>::max()) throw std::invalid_argument("rosenbrock: dim must be < 2^32");
    if (!(noise_std >= 0) || !std::isfinite(noise_std)) throw std::invalid_argument("rosenbrock: noise_std must be >= 0");
    sum_ = SumWorkspace<ExecSpace>(d_);
  }

  ProblemKind kind() const override { return ProblemKind::rosenbrock; }
  std::string description() const override {
    return "Rosenbrock f(x) = sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2 (seed 001 Sec. 5.1), d = " +
           std::to_string(d_) + ", x0 = " + fmt(x0_) + ", sample gradient grad f_i + N(0, " + fmt(noise_std_) +
           "^2 I), i uniform in 1..d-1";
  }
  std::size_t dim() const override { return d_; }
  std::uint64_t rows() const override { return 0; }
  std::uint64_t worker_rows(int w) const override { return this->check_worker(w), 0; }
  std::int64_t batch_rows(int w, const Batch& batch) const override {
    this->check_worker(w);
    this->check_batch(batch);
    return batch.full ? static_cast<std::int64_t>(d_ - 1) : batch.size;
  }
  double sample_gradient_scale() const override { return 1.0 / static_cast<double>(d_ - 1); }
  void initial_model(const vector_type& x, std::uint64_t) override {
    this->check_vector(x, "x");
    Kokkos::parallel_for("terse::rosenbrock::initial_model", this->policy(d_),
                         Fill<vector_type>{x, static_cast<float>(x0_)});
    this->space_.fence();
  }
  double local_loss_sum(const const_vector_type& x) override {
    this->check_vector(x, "x");
    if (!this->holds_worker0()) return 0.0;
    deterministic_sum(this->space_, RosenbrockTerm<const_vector_type>{x}, d_ - 1, sum_);
    return sum_.host_result();
  }
  void local_grad_sum(const const_vector_type& x, const vector_type& g) override {
    this->check_vector(x, "x");
    this->check_vector(g, "g");
    if (this->holds_worker0())
      Kokkos::parallel_for("terse::rosenbrock::gradient", this->policy(d_),
                           RosenbrockGradient<const_vector_type, vector_type>{x, g, d_, 1.0});
    else
      Kokkos::deep_copy(this->space_, g, 0.0f);
    this->space_.fence();
  }
  double finish_loss(double global_sum, const const_vector_type&) override { return global_sum; }
  void finish_grad(const vector_type& g, const const_vector_type&) override { this->check_vector(g, "g"); }

  void stochastic_gradient(const const_vector_type& x, int w, std::uint64_t k, const Batch& batch, std::uint64_t seed,
                           const vector_type& g) override {
    this->check_step(x, w, batch);
    this->check_vector(g, "g");
    if (batch.full)
      Kokkos::parallel_for("terse::rosenbrock::full_gradient", this->policy(d_),
                           RosenbrockGradient<const_vector_type, vector_type>{x, g, d_, sample_gradient_scale()});
    else
      Kokkos::parallel_for("terse::rosenbrock::stochastic_gradient", this->policy(d_),
                           RosenbrockStochastic<const_vector_type, vector_type>{
                               x, g, select(seed), noise(seed), noise_std_, k, static_cast<std::uint32_t>(w),
                               static_cast<std::uint64_t>(batch.size), d_});
    this->space_.fence();
  }
  void per_sample_gradients(const const_vector_type& x, int w, std::uint64_t k, const Batch& batch,
                            std::uint64_t seed, const matrix_type& G) override {
    this->check_step(x, w, batch);
    this->check_samples(G, w, batch);
    Kokkos::parallel_for("terse::rosenbrock::per_sample_gradients", this->policy(G.extent(0) * d_),
                         RosenbrockSamples<const_vector_type, matrix_type>{
                             x, G, select(seed), noise(seed), noise_std_, k, static_cast<std::uint32_t>(w), d_,
                             batch.full});
    this->space_.fence();
  }

 private:
  static CounterRng noise(std::uint64_t seed) {
    return CounterRng{seed, static_cast<std::uint32_t>(RandomStream::gradient_noise)};
  }
  static CounterRng select(std::uint64_t seed) {
    return CounterRng{seed, static_cast<std::uint32_t>(RandomStream::sample_selection)};
  }

  std::uint64_t d_;
  double x0_, noise_std_;
  SumWorkspace<ExecSpace> sum_;
};


}  // namespace problem_detail

using namespace problem_detail;

template <class ExecSpace>
std::unique_ptr<Problem<ExecSpace>> make_rosenbrock(std::int64_t dim, double x0, double noise_std,
                                                    const WorkerRange& workers) {
  return std::make_unique<Rosenbrock<ExecSpace>>(dim, x0, noise_std, workers);
}

#define TERSE_INSTANTIATE(E) \
  template std::unique_ptr<Problem<E>> make_rosenbrock<E>(std::int64_t, double, double, const WorkerRange&);

TERSE_FOR_EACH_BACKEND(TERSE_INSTANTIATE)
#undef TERSE_INSTANTIATE

}  // namespace terse
