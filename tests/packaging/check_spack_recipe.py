#!/usr/bin/python3
"""The spack recipe (spack/packages/terse/package.py) against the CMake build, without spack (CTest
packaging.spack_recipe): the recipe is valid Python that defines the package class when run against a stub of
spack's package API; its dependencies are exactly the packages the CMake files find with find_package (a
spack name per CMake name, below) and the languages of project(); main can be fetched (git); its variants map
to the CMake options and cmake_args() reads the GPU compiler from the kokkos package, not from its Spec; and
spack.yaml lists the same packages, every spec quoted, with the recipe's Kokkos Kernels instantiations.
The real spack checks the same files in CI (scripts/test-spack.sh: spack's loader, spack audit, concretization).
Usage: check_spack_recipe.py REPOSITORY_ROOT"""
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
# spack 1.0 language virtuals (build dependencies; CMake's project(... LANGUAGES ...), no find_package)
LANGUAGES = {"c": "C", "cxx": "CXX"}
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


class FakePackageDep:
    """A dependency's package object (self["kokkos"] in a recipe): has the package's properties."""
    prefix = "/opt/kokkos"
    kokkos_cxx = "/opt/kokkos/bin/nvcc_wrapper"


class CMakePackage:
    def __getitem__(self, name):
        return FakePackageDep()

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
unknown = deps - set(SPACK_TO_CMAKE) - BUILD_TOOLS - set(LANGUAGES)
check(not unknown, f"every spack dependency has a CMake name ({sorted(unknown)} do not)")
mapped = {SPACK_TO_CMAKE[d] for d in deps if d in SPACK_TO_CMAKE}
check(mapped == found, f"spack dependencies = CMake find_package names "
      f"(missing in the recipe: {sorted(found - mapped)}; not found by CMake: {sorted(mapped - found)})")
check("cmake" in deps, "cmake is a build dependency")
project = re.search(r"^project\(\s*terse\b[^)]*\bLANGUAGES\s+([A-Z ]+)\)", (root / "CMakeLists.txt").read_text(), re.M)
languages = set(project.group(1).split()) if project else set()
declared = {LANGUAGES[d] for d in deps & set(LANGUAGES)}
check(bool(languages) and declared == languages,
      f"the recipe declares the languages of project() {sorted(languages)} (depends_on c/cxx: {sorted(declared)})")
build_only = all(kw.get("type") == "build" for a, kw in calls["depends_on"] if package_name(a[0]) in LANGUAGES)
check(build_only, "the languages are build dependencies (type=\"build\")")
# The components +drivers installs (terse::optim links MPI, terse::deck yaml-cpp; static libraries whose
# dependencies a dependent links and terseConfig.cmake finds): link and run dependencies of +drivers.
for dep in ("mpi", "yaml-cpp"):
    types = [kw.get("type", ("build", "link")) for a, kw in calls["depends_on"]
             if package_name(a[0]) == dep and kw.get("when") == "+drivers"]
    types = [{t} if isinstance(t, str) else set(t) for t in types]
    check(any({"link", "run"} <= t for t in types),
          f"{dep} is a link and run dependency of +drivers (the installed optim/deck components need it): {types}")

# 3b. Every version can be fetched: a git or url on the class, or on the version itself.
for a, kw in calls["version"]:
    fetchable = bool(kw.get("git") or kw.get("url") or kw.get("sha256") and getattr(cls, "url", None)
                     or (kw.get("branch") or kw.get("tag") or kw.get("commit")) and getattr(cls, "git", None))
    check(fetchable, f"version {a[0]!r} has a fetcher (git= / url=, or the class's git / url)")
check(bool(getattr(cls, "url", None)), "a url scheme for releases")

# 4. Variants: the backends and the CMake options.
for v in ("openmp", "tests", "benchmarks", "drivers"):
    check(v in variants, f"variant +{v}")
class FakeSpecDep:
    """A dependency's Spec (spec["kokkos"]): a prefix, and hipcc, which hip's setup_dependent_package sets; not
    the properties of the package (kokkos_cxx), which raise AttributeError in spack."""
    prefix = "/opt/kokkos"
    hipcc = "/opt/rocm/bin/hipcc"


class FakeSpec:
    def __init__(self, on):
        self.on = on

    def satisfies(self, s):
        return s in self.on

    def __getitem__(self, name):
        return FakeSpecDep()


options = set(re.findall(r"option\((terse_ENABLE_[A-Z_]+)", (root / "CMakeLists.txt").read_text()))
for on in ((), ("+cuda",), ("+rocm",)):
    pkg = cls.__new__(cls)
    pkg.spec = FakeSpec(on)
    try:
        args = pkg.cmake_args()
    except AttributeError as e:
        check(False, f"cmake_args() {' '.join(on) or '(CPU)'} runs: {e}")
        continue
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
items = re.findall(r"^\s*-\s*(.+?)\s*$", env.split("specs:", 1)[1].split("\n  view:", 1)[0], re.M)
unquoted = [i for i in items if not re.fullmatch(r"\"[^\"]*\"|'[^']*'", i)]
check(bool(items) and not unquoted, f"every spec in spack.yaml is quoted (YAML reads `- kokkos@3.4: +openmp` as a "
      f"mapping): {unquoted or 'all quoted'}")
items = [i.strip("\"'") for i in items]
specs = {package_name(i) for i in items}
env_mapped = {SPACK_TO_CMAKE.get(s, s) for s in specs} - BUILD_TOOLS
check(env_mapped == found, f"spack.yaml's specs = CMake find_package names ({sorted(specs)})")
recipe_kk = {w for a, _ in calls["depends_on"] if package_name(a[0]) == "kokkos-kernels"
             for w in a[0].split() if re.match(r"(scalars|offsets|ordinals)=", w)}
env_kk = {w for i in items if package_name(i) == "kokkos-kernels" for w in i.split() if re.match(r"(scalars|offsets|ordinals)=", w)}
check(bool(recipe_kk) and recipe_kk == env_kk, f"the recipe and spack.yaml ask for the same Kokkos Kernels "
      f"instantiations ({sorted(recipe_kk)}, {sorted(env_kk)})")

print(f"{len(failures)} failed check(s)" if failures else "all checks passed")
sys.exit(1 if failures else 0)
