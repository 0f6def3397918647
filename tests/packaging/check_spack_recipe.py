#!/usr/bin/python3
"""The spack recipe (spack/packages/terse/package.py) against the CMake build, without spack (CTest
packaging.spack_recipe): the recipe is valid Python that defines the package class when run against a stub of
spack's package API; its dependencies are exactly the packages the CMake files find with find_package (a
spack name per CMake name, below); its variants map to the CMake options; and spack.yaml lists the same
packages. Usage: check_spack_recipe.py REPOSITORY_ROOT"""
import ast
import pathlib
import re
import sys
import types

root = pathlib.Path(sys.argv[1])
recipe = root / "spack" / "packages" / "terse" / "package.py"
failures = []


def check(ok, what):
    print(("ok:   " if ok else "FAIL: ") + what)
    if not ok:
        failures.append(what)


# spack package name -> the find_package name CMake uses for it
SPACK_TO_CMAKE = {"kokkos": "Kokkos", "kokkos-kernels": "KokkosKernels", "mpi": "MPI", "hdf5": "HDF5", "yaml-cpp": "yaml-cpp", "cli11": "CLI11",
                  "googletest": "GTest", "benchmark": "benchmark", "zlib-api": "ZLIB", "zlib": "ZLIB"}
BUILD_TOOLS = {"cmake"}
# find_package names of what the compiler and the C library provide (no spack package): the threads library
SYSTEM = {"Threads"}

# 1. Valid Python.
source = recipe.read_text()
try:
    ast.parse(source, str(recipe))
    check(True, f"{recipe.relative_to(root)} parses as Python")
except SyntaxError as e:
    check(False, f"{recipe} is not valid Python: {e}")
    sys.exit(1)

# 2. Run it against a stub of spack.package that records the directives.
calls = {"depends_on": [], "variant": [], "version": [], "conflicts": []}


def recorder(name):
    def f(*args, **kwargs):
        calls.setdefault(name, []).append((args, kwargs))
    return f


stub = types.ModuleType("spack.package")


class CMakePackage:
    def define(self, name, value):
        return f"-D{name}={value}"

    def define_from_variant(self, name, variant):
        return f"-D{name}=<{variant}>"


class CudaPackage:
    cuda_arch_values = ("70", "80", "90")


class ROCmPackage:
    amdgpu_targets = ("gfx90a", "gfx942")


for name in ("depends_on", "variant", "version", "conflicts", "maintainers", "license", "working_dir", "ctest"):
    setattr(stub, name, recorder(name))
stub.CMakePackage, stub.CudaPackage, stub.ROCmPackage = CMakePackage, CudaPackage, ROCmPackage
sys.modules["spack"] = types.ModuleType("spack")
sys.modules["spack.package"] = stub
namespace = {}
exec(compile(source, str(recipe), "exec"), namespace)
cls = namespace.get("Terse")
check(cls is not None and issubclass(cls, CMakePackage), "the recipe defines class Terse(CMakePackage, ...)")
check(bool(calls["version"]), f"it declares versions {[a[0] for a, _ in calls['version']]}")


def package_name(spec):
    return re.match(r"[A-Za-z0-9_-]+", spec.strip()).group(0)


deps = {package_name(a[0]) for a, _ in calls["depends_on"]}
variants = {a[0] for a, _ in calls["variant"]}
print(f"      spack dependencies: {sorted(deps)}; variants: {sorted(variants)}")

# 3. The CMake side: every find_package / find_dependency name in the build.
cmake_files = [p for p in root.rglob("*") if p.is_file() and (p.name == "CMakeLists.txt" or p.suffix == ".cmake"
               or p.name.endswith(".cmake.in")) and not any(part.startswith("build") or part == "downstream"
               for part in p.relative_to(root).parts)]
found = set()
for f in cmake_files:
    for m in re.finditer(r"^\s*find_(?:package|dependency)\(\s*([A-Za-z0-9_-]+)", f.read_text(), re.M):
        found.add(m.group(1))
found -= SYSTEM
print(f"      CMake find_package: {sorted(found)} in {len(cmake_files)} files")
unknown = deps - set(SPACK_TO_CMAKE) - BUILD_TOOLS
check(not unknown, f"every spack dependency has a CMake name ({sorted(unknown)} do not)")
mapped = {SPACK_TO_CMAKE[d] for d in deps if d in SPACK_TO_CMAKE}
check(mapped == found, f"spack dependencies = CMake find_package names "
      f"(missing in the recipe: {sorted(found - mapped)}; not found by CMake: {sorted(mapped - found)})")
check("cmake" in deps, "cmake is a build dependency")

# 4. Variants: the backends and the CMake options.
for v in ("openmp", "tests", "benchmarks", "drivers"):
    check(v in variants, f"variant +{v}")
class FakeDep:
    prefix = "/opt/kokkos"
    kokkos_cxx = "/opt/kokkos/bin/nvcc_wrapper"
    hipcc = "/opt/rocm/bin/hipcc"


class FakeSpec:
    def __init__(self, on):
        self.on = on

    def satisfies(self, s):
        return s in self.on

    def __getitem__(self, name):
        return FakeDep()


options = set(re.findall(r"option\((terse_ENABLE_[A-Z_]+)", (root / "CMakeLists.txt").read_text()))
for on in ((), ("+cuda",), ("+rocm",)):
    pkg = cls.__new__(cls)
    pkg.spec = FakeSpec(on)
    args = pkg.cmake_args()
    set_options = {re.match(r"-D(\w+)=", a).group(1) for a in args}
    check(options <= set_options, f"cmake_args() {' '.join(on) or '(CPU)'} sets every CMake option "
          f"{sorted(options)}: {args}")
    if on:
        check(any(a.startswith("-DCMAKE_CXX_COMPILER=") for a in args), f"{on[0]} sets the GPU compiler wrapper")
check(issubclass(cls, CudaPackage) and issubclass(cls, ROCmPackage), "CUDA and ROCm variants (CudaPackage, ROCmPackage)")
for backend in ("kokkos+openmp", "kokkos+cuda", "kokkos+rocm"):
    check(any(a[0].startswith(backend) for a, _ in calls["depends_on"]), f"a variant asks for {backend}")

# 5. spack.yaml lists the same packages.
env = (root / "spack.yaml").read_text()
specs = {package_name(m.group(1)) for m in re.finditer(r"^\s*-\s*(\S+)", env, re.M)}
env_mapped = {SPACK_TO_CMAKE.get(s, s) for s in specs} - BUILD_TOOLS
check(env_mapped == found, f"spack.yaml's specs = CMake find_package names ({sorted(specs)})")

print(f"{len(failures)} failed check(s)" if failures else "all checks passed")
sys.exit(1 if failures else 0)
