#!/usr/bin/env bash
# Prepares the GPU check of an NVIDIA H200 (Hopper, sm_90) node that may have only a newer CUDA (13) than
# Kokkos 4.6 knows, no MPI and no network: `bash scripts/prepare-h200.sh [FOLDER]` (default ./build-h200).
#
#  1. builds terse for CUDA here (scripts/build-gpu.sh cuda: Debian's CUDA 11.8, Kokkos 4.6.01, HOPPER90): the
#     program and the two binaries below;
#  2. fills FOLDER with the stripped CUDA builds of terse_unit_tests and terse_bench_kernels and every shared
#     library they load except libcuda (the node's driver provides it): libcudart 11.8, libstdc++, GoogleTest,
#     Google Benchmark, glibc and its loader. The binaries are started through the folder's own loader, so
#     nothing of the node's userland but libcuda is used. (The terse program is not carried: it needs Open
#     MPI's runtime, its daemon and plugins, which such a node lacks.)
#  3. writes FOLDER/run.sh, which on the node runs the unit tests on the GPU and the kernel benchmarks at
#     d = 2^28 and writes JSON into $OUT (or FOLDER/results): unit-tests.json, kernels-h200.json, the logs
#     and nvidia-smi's view of the device;
#  4. checks the folder: under 64 MiB, and the folder's loader, with the system's library cache off, resolves
#     every library of each binary inside the folder but libcuda.
#
# Then, on the node: `bash FOLDER/run.sh`; here: `python3 bench/compare.py FOLDER/results/kernels-h200.json`.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build-h200}
# The folder's two binaries and the terse program (the drivers' device code: comm/, problems/, run/); the HIP job
# compiles every target. TERSE_GPU_TARGETS="" builds all of them here too.
TERSE_CUDA_ARCH=HOPPER90 TERSE_GPU_TARGETS=${TERSE_GPU_TARGETS-terse terse_unit_tests terse_bench_kernels} \
  bash scripts/build-gpu.sh cuda
source scripts/kokkos4.sh
build=${TERSE_BUILD_DIR:-build-cuda-hopper90}
binaries=(terse_unit_tests terse_bench_kernels)

rm -rf "$out"
mkdir -p "$out/bin" "$out/lib"
for b in "${binaries[@]}"; do
  cp "$build/bin/$b" "$out/bin/$b"
  strip "$out/bin/$b"
done

# Every library ldd resolves for the binaries, libcuda and the vDSO aside, and the loader itself.
loader=
for b in "${binaries[@]}"; do
  while read -r name arrow path _; do
    if [[ $arrow == "=>" && $path == /* ]]; then
      [[ $name == libcuda.so* ]] && continue
      cp -L "$path" "$out/lib/$name"
    elif [[ $name == /*ld-linux* ]]; then
      loader=$name
    fi
  done < <(ldd "$out/bin/$b")
done
[[ -n $loader ]] || k4_die "ldd named no dynamic loader"
cp -L "$loader" "$out/lib/ld-linux-x86-64.so.2"
strip --strip-unneeded "$out"/lib/*.so* 2>/dev/null || true

cat >"$out/run.sh" <<'EOF'
#!/usr/bin/env bash
# terse's GPU check (made by scripts/prepare-h200.sh): the unit tests on the GPU, then the kernel benchmarks
# at d = 2^28 against the device's STREAM-like references, as JSON in $OUT (default: results/ beside this).
# The binaries run through this folder's loader and libraries; only libcuda comes from the node.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$here/results}
mkdir -p "$OUT"
run() { "$here/lib/ld-linux-x86-64.so.2" --library-path "$here/lib" "$here/bin/$@"; }
export OMP_PROC_BIND=false OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
{ nvidia-smi; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.memory --format=csv; } \
  >"$OUT/nvidia-smi.txt" 2>&1 || echo "nvidia-smi not found" >"$OUT/nvidia-smi.txt"
status=0
echo "[terse gpu check] unit tests"
start=$SECONDS
run terse_unit_tests --gtest_output="json:$OUT/unit-tests.json" >"$OUT/unit-tests.log" 2>&1 || status=1
tail -n 5 "$OUT/unit-tests.log"
echo "[terse gpu check] unit tests: $((SECONDS - start)) s, status $status"
echo "[terse gpu check] kernel benchmarks at d = 2^28"
start=$SECONDS
TERSE_BENCH_LOG2_MAX=28 run terse_bench_kernels --benchmark_filter="${TERSE_BENCH_FILTER:-/268435456}" \
  --benchmark_min_time=0.2 --benchmark_out="$OUT/kernels-h200.json" --benchmark_out_format=json \
  >"$OUT/kernels-h200.log" 2>&1 || status=1
tail -n 8 "$OUT/kernels-h200.log"
echo "[terse gpu check] kernel benchmarks: $((SECONDS - start)) s"
exit $status
EOF
chmod +x "$out/run.sh"

# The check: the folder's size, and every library resolved inside it (libcuda aside) with the cache off, so that
# the machine's own library directories (Debian's multiarch /lib/x86_64-linux-gnu) are not searched.
size=$(du -sb "$out" | awk '{print $1}')
((size <= 64 * 1024 * 1024)) || k4_die "$out is $((size / 1024 / 1024)) MiB, over the 64 MiB a GPU check may carry"
abs=$(readlink -f "$out")
for b in "${binaries[@]}"; do
  listing=$("$abs/lib/ld-linux-x86-64.so.2" --inhibit-cache --library-path "$abs/lib" --list "$abs/bin/$b" 2>&1 || true)
  outside=$(grep -vE "^\s*(linux-vdso|libcuda\.so)|=> $abs/lib/|^\s*/.*ld-linux" <<<"$listing" | grep -v '^\s*$' || true)
  [[ -z $outside ]] || { echo "$listing" >&2; k4_die "$b loads libraries from outside $out: $outside"; }
done
k4_log "prepared $out ($((size / 1024 / 1024)) MiB): $(ls "$out/bin" | tr '\n' ' ')+ $(ls "$out/lib" | wc -l) libraries; run: bash $out/run.sh"
