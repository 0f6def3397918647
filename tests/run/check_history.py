#!/usr/bin/python3
"""check_history.py FILE.h5 ALGORITHM PROBLEM WORKERS RANKS ITERATIONS LOG_EVERY D BITS_UP BITS_DOWN

Checks a history written by `terse run` against docs/hdf5.md: every dataset and attribute, a row at 0, every
LOG_EVERY updates and at the end, cumulative bits = rows x the per-iteration payload given, a falling loss,
the effective deck in `config`, and /final/x of length D."""
import sys

import h5py
import numpy as np

path, alg, problem = sys.argv[1:4]
workers, ranks, iterations, log_every, d = map(int, sys.argv[4:9])
bits_up, bits_down = map(float, sys.argv[9:11])
f = h5py.File(path, "r")
h = f["history"]
expected_rows = sorted(set(list(range(0, iterations + 1, log_every)) + [iterations]))
it = h["iteration"][:]
assert it.dtype == np.int64, it.dtype
assert list(it) == expected_rows, (list(it), expected_rows)
for name in ["loss", "grad_norm_sq", "lr", "bits_up", "bits_down", "bytes_sent", "wall_time", "loss_rows",
             "loss_std_error"]:
    v = h[name][:]
    assert v.dtype == np.float64 and v.shape == it.shape, (name, v.dtype, v.shape)
    assert name == "grad_norm_sq" or np.all(np.isfinite(v)), name
# The full objective where run.objective_every says; an estimate elsewhere where the problem has one (the
# mlp): its standard error > 0, no gradient norm, and no test accuracy but on the last row.
gn, se, rows = h["grad_norm_sq"][:], h["loss_std_error"][:], h["loss_rows"][:]
estimated = np.isnan(gn)
assert np.all(np.isfinite(gn[~estimated])) and np.all(se[~estimated] == 0), (gn, se)
assert np.all(se[estimated] > 0), se
assert problem == "mlp" or not np.any(estimated), gn
assert np.all(rows[estimated] > 0), rows
assert np.array_equal(h["bits_up"][:], it * bits_up), (h["bits_up"][:], it * bits_up)
assert np.array_equal(h["bits_down"][:], it * bits_down), (h["bits_down"][:], it * bits_down)
assert np.all(np.diff(h["wall_time"][:]) >= 0)
# Measured bytes: none at row 0, none on one rank (nothing crosses MPI), growing with the rows on several.
sent = h["bytes_sent"][:]
assert sent[0] == 0 and np.all(np.diff(sent) >= 0), sent
assert (sent[-1] > 0) == (ranks > 1), (sent, ranks)
loss = h["loss"][:]
assert loss[-1] < loss[0], loss
if problem == "mlp":
    acc = h["test_accuracy"][:]
    measured = ~estimated
    measured[-1] = True
    assert acc.shape == it.shape and np.all((acc[measured] >= 0) & (acc[measured] <= 1)), acc
    assert np.all(np.isnan(acc[~measured])), acc
else:
    assert "test_accuracy" not in h
x = f["final/x"][:]
assert x.dtype == np.float32 and x.shape == (d,), (x.dtype, x.shape)
assert np.all(np.isfinite(x))
attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
assert attrs["algorithm"] == alg and attrs["problem"] == problem, attrs
assert int(attrs["workers"]) == workers and int(attrs["ranks"]) == ranks, attrs
assert "optimizer:" in attrs["config"] and ("kind: " + alg) in attrs["config"], attrs["config"]
assert attrs["kokkos_backend"] and attrs["terse_version"], attrs
print(f"{path}: {len(it)} rows, loss {loss[0]:.4g} -> {loss[-1]:.4g}, attributes {sorted(attrs)}")
