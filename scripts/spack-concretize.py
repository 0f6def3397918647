"""Run by scripts/test-spack.sh as `spack python scripts/spack-concretize.py`: concretizes the terse recipe's main
variant combinations with spack's own solver (separately, in parallel processes) and checks that each one's
graph holds what the variant is for. Prints one line per combination with the solve's Kokkos and Kokkos Kernels.
"""
import os
import sys
import time

import spack.concretize
import spack.config
import spack.repo
import spack.spec
import spack.util.parallel

# spec to concretize -> what its concrete graph must satisfy
CASES = {
    "terse@main +openmp": ["+openmp+drivers", "^kokkos@3.4:+openmp+serial cxxstd=17",
                           "^kokkos-kernels+blas scalars=float offsets=int ordinals=int", "^openblas", "^openmpi",
                           "^hdf5+mpi", "^yaml-cpp", "^cli11", "^zlib"],
    "terse@main +cuda cuda_arch=90": ["^kokkos+cuda+cuda_lambda+wrapper cuda_arch=90", "^cuda",
                                      "^kokkos-kernels scalars=float"],
    "terse@main +rocm amdgpu_target=gfx90a": ["^kokkos+rocm amdgpu_target=gfx90a", "^hip",
                                              "^kokkos-kernels scalars=float"],
    "terse@main +tests": ["^googletest", "^openmpi"],
    "terse@main +benchmarks": ["^benchmark", "^openmpi"],
}

start = time.time()
# As spack.concretize.concretize_separately does (one process per solve, as many as spack's build jobs), without
# its bootstrap check, which stops when bootstrapping is disabled (it is: clingo comes from PYTHONPATH).
_ = spack.repo.PATH.provider_index  # build the repository indexes once, before the processes start
tasks = [(i, s, False) for i, s in enumerate(CASES)]
jobs = min(len(tasks), spack.config.determine_number_of_jobs(parallel=True))
solved = sorted(spack.util.parallel.imap_unordered(spack.concretize._concretize_task, tasks, processes=jobs))
results = [(spack.spec.Spec(s), concrete) for (_, concrete, _), s in zip(solved, CASES)]
failures = 0
for (name, wanted), (abstract, concrete) in zip(CASES.items(), results):
    missing = [w for w in wanted if not concrete.satisfies(w)]
    kokkos, kk = concrete["kokkos"], concrete["kokkos-kernels"] if "kokkos-kernels" in concrete else None
    line = (f"{name}: {concrete.format('{name}@{version}{variants}')} over "
            f"{kokkos.format('kokkos@{version}{variants}')}"
            + (f", {kk.format('kokkos-kernels@{version}')} scalars={','.join(kk.variants['scalars'].value)}" if kk else "")
            + f" ({len(list(concrete.traverse()))} nodes)")
    print(("ok:   " if not missing else "FAIL: ") + line)
    for w in missing:
        print(f"      does not satisfy {w}")
    failures += bool(missing)
print(f"{len(results)} variant combinations concretized in {time.time() - start:.0f} s, {failures} failed")

# terse@main from its git address: scripts/test-spack.sh points the recipe's git at this clone
# (packages:terse:package_attributes:git), so the fetcher spack makes for version main is tried offline.
git = spack.config.get("packages:terse:package_attributes:git", None)
if git and not failures:
    pkg = results[0][1].package
    pkg.do_stage()
    source = pkg.stage.source_path
    ok = os.path.isfile(os.path.join(source, "CMakeLists.txt")) and os.path.isfile(
        os.path.join(source, "spack", "packages", "terse", "package.py"))
    print(("ok:   " if ok else "FAIL: ") + f"terse@main fetched from {git} ({pkg.fetcher}) into {source}")
    pkg.stage.destroy()
    failures += not ok
sys.exit(1 if failures else 0)
