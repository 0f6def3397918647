#!/usr/bin/python3
"""Checkpoints --restart must refuse (docs/checkpoint.md), each with its own message, exit status 2, and no
output file created: missing, empty, not HDF5, truncated (cut in half, and by a few bytes), a bit flipped in
a state array's data, in a history column, in the header attributes, and checkpoints of another deck
(algorithm, dimension, worker count, a trajectory key, fewer iterations). And what a restart may change: the
number of ranks at the same worker count W, and run.iterations upwards."""
import os
import re
import shutil

import h5py

import ckpt_lib as lib

args = lib.arguments(__doc__)
t = lib.failures()
wd = lib.workdir("refusals")
short = ["--set", "run.iterations=300", "--set", "run.log_every=50", "--set", "run.checkpoint.every=100"]
status, out, err = lib.run(args, 2, "--output", "good.h5", *short, cwd=wd)
t.check(status == 0, f"the run that writes the checkpoint exits 0 (got {status}) {err[-300:]}")
good = os.path.join(wd, "good.checkpoint.h5")
size = os.path.getsize(good)


def variant(name, make):
    path = os.path.join(wd, name)
    shutil.copy(good, path)
    make(path)
    return name


def cut(path, n):
    with open(path, "r+b") as f:
        f.truncate(n)


def flip(path, dataset, byte=3, bit=5):
    with h5py.File(path, "r") as f:
        offset = f[dataset].id.get_offset()  # contiguous datasets: where the raw data starts
    assert offset is not None, dataset
    with open(path, "r+b") as f:
        f.seek(offset + byte)
        b = f.read(1)[0]
        f.seek(offset + byte)
        f.write(bytes([b ^ (1 << bit)]))


def flip_attribute_bytes(path):
    # The 'identity' attribute's text on disk: change one character of a value (lr 0.001 -> 0.003).
    with open(path, "rb") as f:
        data = bytearray(f.read())
    i = data.find(b"optimizer.lr: 0.001")
    assert i >= 0
    data[i + len("optimizer.lr: 0.00")] ^= 0x02
    with open(path, "wb") as f:
        f.write(data)


def text_file(path):
    with open(path, "w") as f:
        f.write("problem: {kind: quadratic}\n")


cases = [
    ("missing", "nothing.h5", [], r"nothing\.h5: no such checkpoint file"),
    ("empty", variant("empty.h5", lambda p: cut(p, 0)), [], r"empty\.h5: the checkpoint file is empty"),
    ("not HDF5", variant("text.h5", text_file), [], r"text\.h5: not an HDF5 file, so not a terse checkpoint"),
    ("a history file", "good.h5", [], r"good\.h5: an HDF5 file but not a terse checkpoint"),
    ("truncated to half", variant("half.h5", lambda p: cut(p, size // 2)), [], r"half\.h5: the checkpoint is truncated"),
    ("truncated by 100 bytes", variant("short.h5", lambda p: cut(p, size - 100)), [],
     r"short\.h5: the checkpoint is truncated"),
    ("bit flip in /state/x", variant("flip_x.h5", lambda p: flip(p, "/state/x")), [],
     r"flip_x\.h5: /state/x fails its checksum \(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\): the checkpoint is corrupted"),
    ("bit flip in a worker memory", variant("flip_w.h5", lambda p: flip(p, "/state/worker.markov_estimate", byte=4001)), [],
     r"flip_w\.h5: /state/worker\.markov_estimate fails its checksum"),
    ("bit flip in the history", variant("flip_h.h5", lambda p: flip(p, "/history/loss", byte=9)), [],
     r"flip_h\.h5: /history/loss fails its checksum"),
    ("changed header", variant("flip_a.h5", flip_attribute_bytes), [],
     r"flip_a\.h5: the checkpoint header fails its checksum"),
    ("another algorithm", "good.checkpoint.h5", ["--set", "optimizer.kind=amsgrad"],
     r"does not match the deck: it was written for algorithm cd_adam, the deck's optimizer.kind is amsgrad"),
    ("another dimension", "good.checkpoint.h5", ["--set", "problem.dim=4001"],
     r"does not match the deck: its model has dimension d = 4000, the deck's has d = 4001"),
    ("another worker count", "good.checkpoint.h5", ["--set", "workers.per_rank=3"],
     r"does not match the deck: it was written by W = 4 workers, this run has W = 6"),
    ("another step size", "good.checkpoint.h5", ["--set", "optimizer.lr=0.002"],
     r"does not match the deck: optimizer\.lr is 0\.001 in the checkpoint and 0\.002 in the deck"),
    ("another seed", "good.checkpoint.h5", ["--set", "run.seed=12"],
     r"does not match the deck: run\.seed is 11 in the checkpoint and 12 in the deck"),
    ("fewer iterations", "good.checkpoint.h5", ["--set", "run.iterations=200"],
     r"the checkpoint is at iteration 300, beyond the deck's run\.iterations = 200"),
]
messages = {}
for name, ckpt, extra, pattern in cases:
    out_h5 = os.path.join(wd, "refused.h5")
    status, out, err = lib.run(args, 2, "--output", "refused.h5", *short, *extra, "--restart", ckpt, cwd=wd)
    line = next((l for l in err.splitlines() if l.startswith("terse: error:")), err.strip()[-300:])
    t.check(status == 2, f"{name}: exit status 2 (got {status})")
    t.check(re.search(pattern, line) is not None, f"{name}: message /{pattern}/ in: {line}")
    t.check(err.count("terse: error:") == 1, f"{name}: one message (rank 0's), not one per rank")
    t.check(not os.path.exists(out_h5) and not any(f.startswith("refused.h5.tmp") for f in os.listdir(wd)),
            f"{name}: no output file created")
    messages.setdefault(re.sub(r"^terse: error: \S+: ", "", re.sub(r"0x[0-9a-f]+", "", line)), []).append(name)
t.check(len(messages) == len(cases), f"every case has its own message ({len(messages)} distinct for {len(cases)})")

# What may change. The number of ranks at the same W: 2 ranks x 2 workers -> 1 x 4 and 4 x 1. cd_adam's server
# sums its scale over the ranks' slices (docs/architecture.md): equal to rounding, so compare the loss closely.
for ranks, per_rank in ((1, 4), (4, 1)):
    name = f"restart at {ranks} rank(s) x {per_rank}"
    status, out, err = lib.run(args, ranks, "--output", f"r{ranks}.h5", *short, "--set", "run.iterations=400",
                               "--set", f"workers.per_rank={per_rank}", "--restart", "good.checkpoint.h5", cwd=wd)
    if t.check(status == 0, f"{name}, 100 more updates: exit 0 (got {status}) {err[-300:]}"):
        with h5py.File(os.path.join(wd, f"r{ranks}.h5"), "r") as f, h5py.File(os.path.join(wd, "good.h5"), "r") as g:
            it, loss = f["history/iteration"][...], f["history/loss"][...]
            t.check(list(it) == [0, 50, 100, 150, 200, 250, 300, 350, 400], f"{name}: rows {list(it)}")
            t.check((loss[:7] == g["history/loss"][...]).all(), f"{name}: the first 300 updates' rows are the checkpoint's")
            t.check(loss[-1] < loss[6], f"{name}: and the loss goes on falling: {loss[6]:.4g} -> {loss[-1]:.4g}")
t.exit(wd)
