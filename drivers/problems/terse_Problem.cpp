// terse_Problem.cpp: the problem a deck asks for (make_problem), and the workers of a rank. The problems are one
// file each (terse_Quadratic.cpp, terse_Rosenbrock.cpp, terse_Logistic.cpp, terse_Mlp.cpp, their shared parts in
// terse_ProblemBase.hpp); terse_Problem.hpp has the formulas, the seeds they come from, and the determinism and
// memory rules.
#include "terse_ProblemBase.hpp"

namespace terse {

WorkerRange workers_of_rank(int rank, int ranks, std::int64_t per_rank) {
  if (ranks < 1 || rank < 0 || rank >= ranks || per_rank < 1 ||
      per_rank > std::numeric_limits<int>::max() / ranks)
    throw std::invalid_argument("workers_of_rank: need 0 <= rank < ranks, per_rank >= 1 and ranks * per_rank < 2^31");
  const int p = static_cast<int>(per_rank);
  return WorkerRange{ranks * p, rank * p, p};
}

using namespace problem_detail;

template <class ExecSpace>
std::unique_ptr<Problem<ExecSpace>> make_problem(const ProblemConfig& config, const WorkerRange& workers) {
  check_workers(workers);
  switch (config.kind) {
    case ProblemKind::quadratic:
      if (!config.dim) throw UserError("problem.dim: required for problem.kind quadratic");
      return make_quadratic<ExecSpace>(*config.dim, config.x0, config.noise_std, config.noise_coords, workers);
    case ProblemKind::rosenbrock:
      return make_rosenbrock<ExecSpace>(config.dim.value_or(10), config.x0, config.noise_std, workers);
    case ProblemKind::logistic: {
      SparseDataset data;
      if (config.data_format == DataFormat::libsvm) {
        if (!config.data) throw UserError("problem.data: required for problem.data_format libsvm");
        LibsvmOptions options;
        if (config.dim) options.dim = static_cast<std::uint64_t>(*config.dim);
        data = read_libsvm(*config.data, options);
      } else {
        data = fashion_mnist_binary(config.train_images, config.train_labels, config.classes[0], config.classes[1]);
        if (config.dim) {
          if (static_cast<std::uint64_t>(*config.dim) < data.dim)
            throw UserError("problem.dim: " + std::to_string(*config.dim) + " is smaller than the " +
                            std::to_string(data.dim) + " pixels of " + config.train_images);
          data.dim = static_cast<std::uint64_t>(*config.dim);
        }
      }
      return make_logistic<ExecSpace>(data, config.lambda, workers);
    }
    case ProblemKind::mlp:
      return problem_detail::make_mlp_from_files<ExecSpace>(config, workers);
    case ProblemKind::cnn:
      return problem_detail::make_cnn_from_files<ExecSpace>(config, workers);
  }
  throw std::invalid_argument("make_problem: unknown problem kind");
}

#define TERSE_INSTANTIATE(E)                                                                                \
  template class Problem<E>;                                                                                        \
  template std::unique_ptr<Problem<E>> make_problem<E>(const ProblemConfig&, const WorkerRange&);

TERSE_FOR_EACH_BACKEND(TERSE_INSTANTIATE)
#undef TERSE_INSTANTIATE

}  // namespace terse
