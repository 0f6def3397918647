# Spack package recipe for terse. Use it from a clone of the repository:
#
#   spack repo add spack                          # this directory holds repo.yaml and packages/terse
#   spack develop --path . terse@main             # build this clone (inside an environment, e.g. spack.yaml's)
#   spack install terse +openmp                   # CPU threads
#   spack install terse +cuda cuda_arch=90        # NVIDIA GPUs (Kokkos with CUDA, nvcc_wrapper)
#   spack install terse +rocm amdgpu_target=gfx90a
#
# The variants map to Kokkos backends; +tests and +benchmarks add GoogleTest and Google Benchmark.
#
# What is checked (docs/gpu.md): the CPU builds against Kokkos 3.4.01 and 4.6.01 are tested in CI; +cuda and
# +rocm are compiled in CI against Kokkos 4.6.01 only (CUDA 11.8 for cuda_arch=90 and 80, hipcc 5.2.3 for
# amdgpu_target=gfx90a), with no warning in terse's own code, and have not yet run on a GPU. The GPU variants
# therefore ask for Kokkos 4.6 or newer; terse with Kokkos 3.x on a GPU was never compiled.
# tests/packaging/check_spack_recipe.py checks (in CTest) that this file is valid Python and that its
# dependencies are exactly the packages the CMake build finds with find_package.

from spack.package import *


class Terse(CMakePackage, CudaPackage, ROCmPackage):
    """Kokkos kernels and MPI drivers for communication-compressed distributed optimization: signSGD with
    majority vote, stochastic sign, error feedback, Markov (EF21) compression with AMSGrad (CD-Adam),
    distributed AdaGrad, local SGD and Local AdaAlter, with HDF5 histories and checkpoints."""

    # No public address yet: build a clone with `spack develop --path . terse@main` (above); set homepage and
    # git here when the project is published.
    version("main")

    variant("openmp", default=True, description="Kokkos OpenMP backend (CPU threads)")
    variant("serial", default=True, description="Kokkos Serial backend")
    variant("drivers", default=True, description="The terse program (MPI, parallel HDF5, yaml-cpp, CLI11)")
    variant("tests", default=False, description="Build the GoogleTest unit and MPI tests")
    variant("benchmarks", default=False, description="Build the Google Benchmark programs")

    depends_on("cmake@3.16:", type="build")
    depends_on("kokkos@3.4: cxxstd=17")
    depends_on("kokkos+openmp", when="+openmp")
    depends_on("kokkos+serial", when="+serial")
    depends_on("kokkos+cuda+cuda_lambda+wrapper", when="+cuda")
    depends_on("kokkos+rocm", when="+rocm")
    depends_on("kokkos@4.6:", when="+cuda")
    depends_on("kokkos@4.6:", when="+rocm")
    for arch in CudaPackage.cuda_arch_values:
        depends_on(f"kokkos cuda_arch={arch}", when=f"+cuda cuda_arch={arch}")
    for target in ROCmPackage.amdgpu_targets:
        depends_on(f"kokkos amdgpu_target={target}", when=f"+rocm amdgpu_target={target}")

    # The mlp's dense layers (KokkosBlas::gemm): Kokkos Kernels of the same version as Kokkos, with a host BLAS
    # on CPUs (the products run 5-10x faster than Kokkos Kernels' own host kernels).
    depends_on("kokkos-kernels@3.4:", when="+drivers")
    depends_on("kokkos-kernels+blas", when="+drivers+openmp~cuda~rocm")
    depends_on("kokkos-kernels@4.6:", when="+drivers+cuda")
    depends_on("kokkos-kernels@4.6:", when="+drivers+rocm")
    depends_on("mpi", when="+drivers")
    depends_on("mpi", when="+tests")
    depends_on("mpi", when="+benchmarks")
    depends_on("hdf5@1.10: +mpi", when="+drivers")
    depends_on("yaml-cpp@0.6:", when="+drivers")
    depends_on("cli11@2:", when="+drivers")
    depends_on("zlib-api", when="+drivers")
    depends_on("googletest@1.10:", when="+tests")
    depends_on("benchmark@1.5:", when="+benchmarks")

    conflicts("+cuda", when="+rocm", msg="one GPU backend at a time")
    conflicts("+tests", when="~drivers", msg="the tests exercise the drivers")

    def cmake_args(self):
        spec = self.spec
        args = [
            self.define_from_variant("terse_ENABLE_DRIVERS", "drivers"),
            self.define_from_variant("terse_ENABLE_TESTS", "tests"),
            self.define_from_variant("terse_ENABLE_BENCHMARKS", "benchmarks"),
            self.define("terse_ENABLE_NATIVE", False),  # spack sets the target's flags
            self.define("terse_ENABLE_SANITIZERS", False),
            self.define("terse_ENABLE_FUZZING", False),
            self.define("Kokkos_ROOT", spec["kokkos"].prefix),
        ]
        if spec.satisfies("+drivers"):
            args.append(self.define("KokkosKernels_ROOT", spec["kokkos-kernels"].prefix))
        if spec.satisfies("+cuda"):
            args.append(self.define("CMAKE_CXX_COMPILER", spec["kokkos"].kokkos_cxx))
        if spec.satisfies("+rocm"):
            args.append(self.define("CMAKE_CXX_COMPILER", spec["hip"].hipcc))
        return args

    def check(self):
        if self.spec.satisfies("+tests"):
            with working_dir(self.build_directory):
                ctest("--output-on-failure", "-L", "unit|driver")
