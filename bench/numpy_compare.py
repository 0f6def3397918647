#!/usr/bin/python3
"""terse's sign pack and unpack against numpy on the same vector (bench/README.md).

usage: numpy_compare.py [--log2-n 26] [--threads 2] [--rounds 5] [--repeats 20] [--build build] [--out FILE.json]

Writes one fp32 vector of N(0, 1) values (with some exact zeros and negative zeros), times
  pack:   numpy.packbits(g >= 0, bitorder='little')             against terse sign_pack
  unpack: numpy.unpackbits(bytes, bitorder='little') -> +-1 fp32 against terse sign_unpack
numpy single-threaded (as numpy is), terse with --threads OpenMP threads (build/bin/terse_bench_signs_file on
the same values). The machines are shared and their memory bandwidth drifts within seconds, so the two are
timed side by side: --rounds rounds, each timing terse (median of --repeats) and then numpy (median of
--repeats); the speedup is the median over the rounds of the per-round ratios. Checks that terse's packed
bytes equal numpy's and that both unpack to the same +-1 vector. Needs Debian's python3-numpy: run it with
/usr/bin/python3.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def median_time(f, repeats):
    f()  # warm-up
    t = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        t.append(time.perf_counter() - t0)
    return float(np.median(t))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log2-n", type=int, default=26)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--build", default="build")
    ap.add_argument("--out")
    a = ap.parse_args()
    n = 1 << a.log2_n
    rng = np.random.default_rng(7)
    g = rng.standard_normal(n, dtype=np.float32)
    g[::1000] = 0.0
    g[1::1000] = -0.0  # -0.0 >= 0 holds: both conventions give +1
    packed = np.packbits(g >= 0, bitorder="little")

    def np_unpack():
        bits = np.unpackbits(packed, bitorder="little", count=n)
        return bits.astype(np.float32) * 2.0 - 1.0  # 1 -> +1, 0 -> -1

    rounds = []  # (terse pack, numpy pack, terse unpack, numpy unpack) seconds
    terse_exact = True  # terse unpacked sign(g) exactly in every round
    with tempfile.TemporaryDirectory() as tmp:
        vec = os.path.join(tmp, "g.f32")
        packed_path = os.path.join(tmp, "packed.bin")
        g.tofile(vec)
        env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OMP_PROC_BIND=os.environ.get("OMP_PROC_BIND", "false"))
        for _ in range(a.rounds):
            r = subprocess.run([os.path.join(a.build, "bin", "terse_bench_signs_file"), vec, packed_path, str(a.repeats)],
                               env=env, check=True, capture_output=True, text=True)
            terse = json.loads(r.stdout.strip().splitlines()[-1])
            terse_exact = terse_exact and terse["unpack_exact"]
            t_pack = median_time(lambda: np.packbits(g >= 0, bitorder="little"), a.repeats)
            t_unpack = median_time(np_unpack, a.repeats)
            rounds.append((terse["pack_median_s"], t_pack, terse["unpack_median_s"], t_unpack))
        terse_bytes = np.fromfile(packed_path, dtype=np.uint8)

    same_bytes = bool(np.array_equal(terse_bytes[: packed.size], packed)) and not terse_bytes[packed.size:].any()
    same_unpack = bool(np.array_equal(np_unpack(), np.where(g >= 0, 1.0, -1.0).astype(np.float32))) and terse_exact
    med = lambda xs: float(np.median(xs))
    terse_pack, t_pack = med([x[0] for x in rounds]), med([x[1] for x in rounds])
    terse_unpack, t_unpack = med([x[2] for x in rounds]), med([x[3] for x in rounds])
    pack_speedups = [x[1] / x[0] for x in rounds]
    unpack_speedups = [x[3] / x[2] for x in rounds]
    res = {
        "n": n, "numpy_version": np.__version__, "terse_threads": terse["threads"], "rounds": a.rounds,
        "repeats": a.repeats,
        "numpy_pack_s": t_pack, "terse_pack_s": terse_pack, "pack_speedup": med(pack_speedups),
        "pack_speedup_rounds": pack_speedups,
        "numpy_unpack_s": t_unpack, "terse_unpack_s": terse_unpack, "unpack_speedup": med(unpack_speedups),
        "unpack_speedup_rounds": unpack_speedups, "packed_bytes_equal": same_bytes, "unpacked_equal": same_unpack,
    }
    print(f"n = 2^{a.log2_n}; numpy {np.__version__} (1 thread), terse {terse['threads']} threads "
          f"({terse['execution_space']}); {a.rounds} rounds of {a.repeats} repetitions each, side by side")
    print("| operation | numpy s | terse s | speedup (median of rounds) | speedup per round |")
    print("|---|---:|---:|---:|---|")
    print(f"| pack: `packbits(g >= 0, bitorder='little')` vs `sign_pack` | {t_pack:.4f} | {terse_pack:.4f} | "
          f"{res['pack_speedup']:.1f}x | {' '.join(f'{x:.1f}' for x in pack_speedups)} |")
    print(f"| unpack: `unpackbits` + to +-1 fp32 vs `sign_unpack` | {t_unpack:.4f} | {terse_unpack:.4f} | "
          f"{res['unpack_speedup']:.1f}x | {' '.join(f'{x:.1f}' for x in unpack_speedups)} |")
    print(f"packed bytes identical: {same_bytes}; unpacked vectors identical: {same_unpack}")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=2)
    if not (same_bytes and same_unpack):
        sys.exit("terse and numpy disagree")


if __name__ == "__main__":
    main()
