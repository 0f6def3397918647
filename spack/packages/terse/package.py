# Spack package recipe for terse (docs/install.md). From a clone of the repository:
#
#   spack repo add spack                          # this directory holds repo.yaml and packages/terse
#   spack install terse@main +openmp              # CPU threads (fetches the main branch with git)
#   spack install terse +cuda cuda_arch=90        # NVIDIA GPUs (Kokkos with CUDA, nvcc_wrapper)
#   spack install terse +rocm amdgpu_target=gfx90a
#   spack develop --path . terse@main             # inside an environment: build this clone instead
#
# The variants map to Kokkos backends; +tests and +benchmarks add GoogleTest and Google Benchmark. Every build
# installs terse::kernels (header-only, Kokkos). +drivers (the default) also builds the terse program and
# installs the CMake components optim (terse::optim, a static library that needs MPI) and deck (terse::deck,
# static, needs yaml-cpp) for a dependent's `find_package(terse COMPONENTS optim deck)`
# (docs/library.md): MPI and yaml-cpp are therefore link and run dependencies of +drivers, so that a
# dependent's build and `spack load terse` find them.
#
# Kokkos: terse needs 3.4 or newer built for C++17 (CMakeLists.txt, kernels/terse_Compat.hpp), with a Kokkos
# Kernels of the same major.minor version; docs/install.md says which versions CI builds and tests (the CPU
# builds on 3.4.01 and 4.6.01, the GPU builds compiled on 4.6.01).
# Checked by spack itself: scripts/test-spack.sh (CI) validates and audits this recipe and concretizes its main
# variant combinations; scripts/spack-install.sh installs terse +openmp with it.

from spack.package import *


class Terse(CMakePackage, CudaPackage, ROCmPackage):
    """Kokkos kernels and MPI drivers for communication-compressed distributed optimization: signSGD with
    majority vote, stochastic sign, error feedback, Markov (EF21) compression with AMSGrad (CD-Adam),
    distributed AdaGrad, local SGD and Local AdaAlter, with HDF5 histories and checkpoints."""

    # The address the project is to be published at (not public yet): the main branch is fetched from `git`,
    # releases (tags vX.Y.Z) from `url`'s scheme. Until then, or for a clone elsewhere, override both in
    # packages.yaml (`terse: package_attributes: {git: ..., url: ...}`, as scripts/test-spack.sh does with the
    # checkout) or build a checkout with `spack develop`.
    homepage = "https://github.com/terse-hpc/terse"
    git = "https://github.com/terse-hpc/terse.git"
    url = "https://github.com/terse-hpc/terse/archive/refs/tags/v0.1.0.tar.gz"

    # A release is added as `version("X.Y.Z", sha256=...)` (`spack checksum terse X.Y.Z` prints the line).
    version("main", branch="main")

    variant("openmp", default=True, description="Kokkos OpenMP backend (CPU threads)")
    variant("serial", default=True, description="Kokkos Serial backend")
    variant("drivers", default=True, description="The terse program (MPI, parallel HDF5, yaml-cpp, CLI11)")
    variant("tests", default=False, description="Build the GoogleTest unit and MPI tests")
    variant("benchmarks", default=False, description="Build the Google Benchmark programs")

    # project(terse LANGUAGES C CXX): C for the MPI and HDF5 C bindings, C++17 for everything else.
    depends_on("c", type="build")
    depends_on("cxx", type="build")
    depends_on("cmake@3.16:", type="build")

    depends_on("kokkos@3.4: cxxstd=17")
    depends_on("kokkos+openmp", when="+openmp")
    depends_on("kokkos+serial", when="+serial")
    depends_on("kokkos+cuda+cuda_lambda+wrapper", when="+cuda")
    depends_on("kokkos+rocm", when="+rocm")
    for arch in CudaPackage.cuda_arch_values:
        depends_on(f"kokkos cuda_arch={arch}", when=f"+cuda cuda_arch={arch}")
    for target in ROCmPackage.amdgpu_targets:
        depends_on(f"kokkos amdgpu_target={target}", when=f"+rocm amdgpu_target={target}")

    # The mlp's dense layers (KokkosBlas::gemm on float views): Kokkos Kernels of the same version as Kokkos,
    # with a host BLAS on CPUs (the products run 5-10x faster than Kokkos Kernels' own host kernels). Spack's
    # kokkos-kernels builds every component and pre-instantiates each for its scalars, offsets and ordinals
    # (default double, int and size_t, int): terse calls gemm on float only and no sparse kernel, so it asks for
    # the one scalar it uses and the fewest offsets and ordinals.
    depends_on("kokkos-kernels@3.4: scalars=float offsets=int ordinals=int", when="+drivers")
    depends_on("kokkos-kernels+blas", when="+drivers+openmp~cuda~rocm")
    # Installed with +drivers: the static terse::optim links MPI and terse::deck links yaml-cpp, and terse's
    # package configuration finds both (find_dependency) in the dependent's build.
    depends_on("mpi", type=("build", "link", "run"), when="+drivers")
    depends_on("yaml-cpp@0.6:", type=("build", "link", "run"), when="+drivers")
    depends_on("mpi", when="+tests")
    depends_on("mpi", when="+benchmarks")
    depends_on("hdf5@1.10: +mpi", when="+drivers")
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
            # kokkos_cxx is a property of the kokkos package (nvcc_wrapper with +wrapper), not of its Spec.
            args.append(self.define("CMAKE_CXX_COMPILER", self["kokkos"].kokkos_cxx))
        if spec.satisfies("+rocm"):
            args.append(self.define("CMAKE_CXX_COMPILER", spec["hip"].hipcc))
        return args

    def check(self):
        if self.spec.satisfies("+tests"):
            with working_dir(self.build_directory):
                ctest("--output-on-failure", "-L", "unit|driver")
