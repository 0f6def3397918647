#!/usr/bin/env python3
"""replay.py: recompute terse's random draws from docs/random.md alone and compare them with what terse drew.

usage: DRAWS_PROGRAM | replay.py      (CTest random.replay runs tests/random/draws.cpp into it)

A separate implementation: plain Python integers and floats, nothing of terse's code. Every raw word must match
exactly, and so must every value derived from it (uniforms, normals, integers below n, the stochastic sign's
bits, the rand-k selection); the normals and the stochastic sign's scale are compared to 1e-15 and 1e-7 relative
(the platform's log, cos and a sum in another order).
"""
import json
import math
import struct
import sys

MASK = 0xFFFFFFFF


def philox4x32_10(c, k):
    """Philox-4x32 with 10 rounds (Salmon et al., SC'11), docs/random.md "The generator"."""
    c0, c1, c2, c3 = c
    k0, k1 = k
    for _ in range(10):
        p0 = 0xD2511F53 * c0
        p1 = 0xCD9E8D57 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0) & MASK, p1 & MASK, ((p0 >> 32) ^ c3 ^ k1) & MASK, p0 & MASK
        k0 = (k0 + 0x9E3779B9) & MASK
        k1 = (k1 + 0xBB67AE85) & MASK
    return [c0, c1, c2, c3]


def draw(seed, stream, iteration, worker, index):
    """docs/random.md "Key and counter"."""
    counter = (index & MASK,
               ((index >> 32) ^ (((iteration >> 32) * 0x9E3779B9) & MASK)) & MASK,
               iteration & MASK,
               worker & MASK)
    key = ((seed & MASK) ^ ((stream * 0x85EBCA6B) & MASK), (seed >> 32) & MASK)
    return philox4x32_10(counter, key)


def to_uniform(hi, lo):
    return ((((hi << 32) | lo) >> 12) + 0.5) * (1.0 / 4503599627370496.0)


def uniform(seed, stream, it, w, i):
    v = draw(seed, stream, it, w, i)
    return to_uniform(v[0], v[1])


def uniform_lane(seed, stream, it, w, i):
    v = draw(seed, stream, it, w, i // 4)
    return (v[i % 4] + 0.5) * (1.0 / 4294967296.0)


def normal(seed, stream, it, w, i):
    v = draw(seed, stream, it, w, i)
    u1, u2 = to_uniform(v[0], v[1]), to_uniform(v[2], v[3])
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(6.283185307179586476925286766559 * u2)


def below(n, seed, stream, it, w, i):
    return (draw(seed, stream, it, w, i)[0] * n) >> 32


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def vector_x(n):
    """The vector draws.cpp compresses: x_i = sin(0.37 i) (1 + i mod 7), rounded to float."""
    return [f32(math.sin(0.37 * i) * (1 + i % 7)) for i in range(n)]


STOCHASTIC_SIGN, RAND_K, QSGD = 2, 5, 7


def stochastic_sign(seed, it, w, n):
    """docs/random.md "Stochastic sign": +1 when u_i < 1/2 + (0.5 / ||x||_2) x_i (or ||x|| = 0)."""
    x = vector_x(n)
    norm = math.sqrt(math.fsum(v * v for v in x))
    half_inv = 0.5 / norm if norm else 0.0
    words = [0] * ((n + 63) // 64)
    for i in range(n):
        if norm == 0 or uniform_lane(seed, STOCHASTIC_SIGN, it, w, i) < 0.5 + half_inv * x[i]:
            words[i // 64] |= 1 << (i % 64)
    return words, f32(norm)


def rand_k(seed, it, w, n, k):
    """docs/random.md "rand-k": the k largest 24-bit keys, ties to the lower index; values (n / k) x_i in float."""
    keys = []
    for i in range(n):
        v = draw(seed, RAND_K, it, w, i // 4)[i % 4]
        keys.append(((v >> 8) + 1) * (1.0 / 16777216.0))
    order = sorted(range(n), key=lambda i: (-keys[i], i))[:k]
    chosen = sorted(order)
    x = vector_x(n)
    scale = f32(n / k)
    return chosen, [f32(scale * x[i]) for i in chosen]


def qsgd(kind, seed, it, w, n, s, bucket):
    """docs/random.md "QSGD and TernGrad": per bucket the fp32 scale (2-norm in double, coordinate order, or max
    |x_i|); level l = floor(r), r = s |x_i| / scale, plus 1 when uniform_lane < r - l, s when r >= s; sign plane
    bit set for x_i >= 0, level bit p in plane 1 + p."""
    x = vector_x(n)
    if bucket == 0 or bucket > n:
        bucket = n
    nb = (n + bucket - 1) // bucket
    norms = []
    for b in range(nb):
        part = x[b * bucket:(b + 1) * bucket]
        if kind == "terngrad":
            norms.append(f32(max(abs(v) for v in part)))
        else:
            acc = 0.0
            for v in part:
                acc += v * v
            norms.append(f32(math.sqrt(acc)))
    q = 0
    while (1 << q) < s + 1:
        q += 1
    nw = (n + 63) // 64
    planes = [[0] * nw for _ in range(1 + q)]
    for i in range(n):
        scale = norms[i // bucket]
        level = 0
        if scale > 0:
            r = s * abs(x[i]) / scale
            l = math.floor(r)
            level = s if l >= s else l + (1 if uniform_lane(seed, QSGD, it, w, i) < r - l else 0)
        if x[i] >= 0:
            planes[0][i // 64] |= 1 << (i % 64)
        for p in range(q):
            if (level >> p) & 1:
                planes[1 + p][i // 64] |= 1 << (i % 64)
    return norms, planes


def main():
    failures, checked = [], 0
    for line in sys.stdin:
        line = line.strip()
        if not line.startswith("{"):
            continue
        d = json.loads(line)
        checked += 1
        if d["kind"] == "raw":
            a = (d["seed"], d["stream"], d["iteration"], d["worker"], d["index"])
            want = {
                "v": draw(*a),
                "uniform": uniform(*a),
                "uniform_lane": uniform_lane(*a),
                "below_1000": below(1000, *a),
                "below_7": below(7, *a),
            }
            for name, value in want.items():
                if d[name] != value:
                    failures.append("raw %s %s: terse %r, replay %r" % (a, name, d[name], value))
            nrm = normal(*a)
            if abs(d["normal"] - nrm) > 1e-15 * max(1.0, abs(nrm)):
                failures.append("raw %s normal: terse %r, replay %r" % (a, d["normal"], nrm))
        elif d["kind"] == "stochastic_sign":
            words, scale = stochastic_sign(d["seed"], d["iteration"], d["worker"], d["n"])
            got = [int(h, 16) for h in d["words"]]
            if got != words:
                bad = [i for i in range(d["n"]) if ((got[i // 64] ^ words[i // 64]) >> (i % 64)) & 1]
                failures.append("stochastic_sign %s: %d bits differ (first %s)" % (d["seed"], len(bad), bad[:5]))
            if abs(d["scale"] - scale) > 1e-7 * scale:
                failures.append("stochastic_sign scale: terse %r, replay %r" % (d["scale"], scale))
        elif d["kind"] == "rand_k":
            idx, val = rand_k(d["seed"], d["iteration"], d["worker"], d["n"], d["k"])
            if d["indices"] != idx:
                failures.append("rand_k %s: indices terse %s, replay %s" % (d["seed"], d["indices"][:8], idx[:8]))
            elif any(f32(a) != b for a, b in zip(d["values"], val)):
                failures.append("rand_k %s: values differ" % d["seed"])
        elif d["kind"] in ("qsgd", "terngrad"):
            norms, planes = qsgd(d["kind"], d["seed"], d["iteration"], d["worker"], d["n"], d["levels"], d["bucket"])
            got = [[int(h, 16) for h in row] for row in d["planes"]]
            if any(f32(a) != b for a, b in zip(d["norms"], norms)) or len(d["norms"]) != len(norms):
                failures.append("%s %s: norms terse %s, replay %s" % (d["kind"], d["seed"], d["norms"][:4], norms[:4]))
            if got != planes:
                failures.append("%s %s: planes differ" % (d["kind"], d["seed"]))
    for f in failures:
        print("MISMATCH " + f)
    print("replay.py: %d records of terse's draws recomputed from docs/random.md: %d mismatches" % (checked, len(failures)))
    return 1 if failures or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
