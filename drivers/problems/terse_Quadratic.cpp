// terse_Quadratic.cpp: f(x) = 0.5 ||x||^2 with Gaussian gradient noise (seed 000 Sec. III);
// terse_Problem.hpp has the formulas, terse_ProblemBase.hpp the parts the problems share.
#include "terse_ProblemBase.hpp"

namespace terse {
namespace Impl {
namespace problem {

// ------------------------------------------------------------------------------------------------ quadratic

template <class XV>
struct HalfSquareTerm {
  XV x;
  KOKKOS_INLINE_FUNCTION double operator()(std::size_t i) const {
    const double v = x(i);
    return 0.5 * v * v;
  }
};

/// g(j) = x(j) + noise_std * mean_b xi(b, j) for j < noisy_end (B samples; B == 0: no noise).
template <class XV, class GV>
struct QuadraticGradient {
  XV x;
  GV g;
  CounterRng noise;
  double noise_std;
  std::uint64_t k;
  std::uint32_t w;
  std::uint64_t B, d, noisy_end;

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t j) const {
    double v = x(j);
    if (j < noisy_end && B > 0) {
      double s = 0;
      for (std::uint64_t b = 0; b < B; ++b) s += noise.normal(k, w, b * d + j);
      v += noise_std * s / static_cast<double>(B);
    }
    g(j) = static_cast<float>(v);
  }
};

/// G(b, j) = x(j) + noise_std * xi(b, j) for j < noisy_end.
template <class XV, class MV>
struct QuadraticSamples {
  XV x;
  MV G;
  CounterRng noise;
  double noise_std;
  std::uint64_t k;
  std::uint32_t w;
  std::uint64_t d, noisy_end;

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t t) const {
    const std::uint64_t b = t / d, j = t % d;
    double v = x(j);
    if (j < noisy_end) v += noise_std * noise.normal(k, w, b * d + j);
    G(b, j) = static_cast<float>(v);
  }
};


}  // namespace problem
}  // namespace Impl

namespace problem_detail {

// ------------------------------------------------------------------------------------------------ quadratic

template <class ExecSpace>
class Quadratic final : public ProblemBase<ExecSpace> {
  using Base = ProblemBase<ExecSpace>;

 public:
  using typename Base::const_vector_type;
  using typename Base::matrix_type;
  using typename Base::vector_type;
  using Mem = typename ExecSpace::memory_space;

  Quadratic(std::int64_t dim, double x0, double noise_std, NoiseCoords coords, const WorkerRange& wr)
      : Base(wr), d_(static_cast<std::uint64_t>(dim)), x0_(x0), noise_std_(noise_std), coords_(coords) {
    if (dim < 1) throw std::invalid_argument("quadratic: dim must be >= 1");
    if (!(noise_std >= 0) || !std::isfinite(noise_std)) throw std::invalid_argument("quadratic: noise_std must be >= 0");
    sum_ = SumWorkspace<ExecSpace>(d_);
  }

  ProblemKind kind() const override { return ProblemKind::quadratic; }
  std::string description() const override {
    return "quadratic f(x) = 0.5 ||x||^2 (seed 000 Sec. III), d = " + std::to_string(d_) + ", x0 = " + fmt(x0_) +
           ", gradient noise N(0, " + fmt(noise_std_) + "^2) per sample on " +
           (coords_ == NoiseCoords::first ? "the first coordinate" : "every coordinate");
  }
  std::size_t dim() const override { return d_; }
  std::uint64_t rows() const override { return 0; }
  std::uint64_t worker_rows(int w) const override { return this->check_worker(w), 0; }
  std::int64_t batch_rows(int w, const Batch& batch) const override {
    this->check_worker(w);
    this->check_batch(batch);
    return batch.full ? 1 : batch.size;
  }
  void initial_model(const vector_type& x, std::uint64_t) override {
    this->check_vector(x, "x");
    Kokkos::parallel_for("terse::quadratic::initial_model", this->policy(d_),
                         Fill<vector_type>{x, static_cast<float>(x0_)});
    this->space_.fence();
  }
  double local_loss_sum(const const_vector_type& x) override {
    this->check_vector(x, "x");
    if (!this->holds_worker0()) return 0.0;
    deterministic_sum(this->space_, HalfSquareTerm<const_vector_type>{x}, d_, sum_);
    return sum_.host_result();
  }
  void local_grad_sum(const const_vector_type& x, const vector_type& g) override {
    this->check_vector(x, "x");
    this->check_vector(g, "g");
    if (this->holds_worker0())
      Kokkos::parallel_for("terse::quadratic::gradient", this->policy(d_),
                           QuadraticGradient<const_vector_type, vector_type>{x, g, CounterRng{}, 0.0, 0, 0, 0, d_, 0});
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
    const std::uint64_t B = batch.full ? 0 : static_cast<std::uint64_t>(batch.size);
    Kokkos::parallel_for("terse::quadratic::stochastic_gradient", this->policy(d_),
                         QuadraticGradient<const_vector_type, vector_type>{
                             x, g, noise(seed), noise_std_, k, static_cast<std::uint32_t>(w), B, d_, noisy_end()});
    this->space_.fence();
  }
  void per_sample_gradients(const const_vector_type& x, int w, std::uint64_t k, const Batch& batch,
                            std::uint64_t seed, const matrix_type& G) override {
    this->check_step(x, w, batch);
    this->check_samples(G, w, batch);
    const std::uint64_t B = G.extent(0);
    Kokkos::parallel_for("terse::quadratic::per_sample_gradients", this->policy(B * d_),
                         QuadraticSamples<const_vector_type, matrix_type>{x, G, noise(seed), noise_std_, k,
                                                                          static_cast<std::uint32_t>(w), d_,
                                                                          batch.full ? 0 : noisy_end()});
    this->space_.fence();
  }

 private:
  static CounterRng noise(std::uint64_t seed) {
    return CounterRng{seed, static_cast<std::uint32_t>(RandomStream::gradient_noise)};
  }
  std::uint64_t noisy_end() const { return noise_std_ == 0 ? 0 : coords_ == NoiseCoords::first ? 1 : d_; }

  std::uint64_t d_;
  double x0_, noise_std_;
  NoiseCoords coords_;
  SumWorkspace<ExecSpace> sum_;
};


}  // namespace problem_detail

using namespace problem_detail;

template <class ExecSpace>
std::unique_ptr<Problem<ExecSpace>> make_quadratic(std::int64_t dim, double x0, double noise_std, NoiseCoords coords,
                                                   const WorkerRange& workers) {
  return std::make_unique<Quadratic<ExecSpace>>(dim, x0, noise_std, coords, workers);
}

#define TERSE_INSTANTIATE(E) \
  template std::unique_ptr<Problem<E>> make_quadratic<E>(std::int64_t, double, double, NoiseCoords, const WorkerRange&);

TERSE_FOR_EACH_BACKEND(TERSE_INSTANTIATE)
#undef TERSE_INSTANTIATE

}  // namespace terse
