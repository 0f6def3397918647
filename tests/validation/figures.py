#!/usr/bin/python3
"""Draw the validation figures (docs/figures/*.png) from the histories tests/validation/validate.py wrote.

    tests/validation/figures.py [--runs build/validation] [--out docs/figures]

One PNG per experiment whose histories exist; scripts/figures.sh runs the experiments and then this.
Uses Debian's python3-matplotlib, python3-h5py and python3-numpy (hence /usr/bin/python3).
"""
import argparse
import json
import sys
from pathlib import Path

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def history(path):
    with h5py.File(path, "r") as f:
        return {k: np.asarray(f["history"][k]) for k in f["history"].keys()}


def runs(d, pattern):
    return sorted(d.glob(pattern))


def mean_curve(files, key):
    """The rows' iterations, the mean over the runs, the 25 % and 75 % quantiles, the histories."""
    hs = [history(f) for f in files]
    y = np.array([h[key] for h in hs])
    return hs[0]["iteration"], y.mean(axis=0), np.quantile(y, [0.25, 0.75], axis=0), hs


def note(fig, d):
    s = d / "summary.json"
    if s.exists():
        claims = json.loads(s.read_text())["claims"]
        text = "  ".join(f"[{'PASS' if c['passed'] else 'FAIL'}] {c['claim'][:70]}" for c in claims)
        fig.text(0.01, -0.03, text[:400], fontsize=6, color="0.3")


def seed000(d, out):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    labels = {"sgd": "SGD", "signsgd": "signSGD", "mh_signsgd": "MH-signSGD (4 workers)",
              "mh_signsgd_adaptive": "MH-signSGD, adaptive eta*", "noise_free_adaptive": "noise-free (ideal)"}
    for v, label in labels.items():
        files = runs(d, f"{v}_seed*.h5")
        if not files:
            continue
        it, m, _, _ = mean_curve(files, "loss")
        ax.plot(it[1:], np.maximum(m[1:], 1e-12), label=f"{label} ({len(files)} trials)")
    ax.set(xscale="log", yscale="log", xlabel="iteration", ylabel="f(x) = 0.5 ||x||^2 (mean over trials)",
           title="Seed 000 Sec. III (Fig. 1): noise N(0, 100^2) on x_1, batch 256, lr 0.05")
    ax.legend(fontsize=8)
    note(fig, d)
    fig.savefig(out / "seed000_quadratic.png", dpi=110, bbox_inches="tight")


def seed001_batch(d, out):
    batches = [1, 2, 5, 8]
    fig, axes = plt.subplots(2, 4, figsize=(13, 6), sharex=True)
    for j, b in enumerate(batches):
        files = runs(d, f"batch{b}_seed*.h5")
        if not files:
            continue
        it, m, q, hs = mean_curve(files, "loss")
        axes[0, j].plot(it, m)
        axes[0, j].fill_between(it, q[0], q[1], alpha=0.3)
        axes[0, j].axhline(m[0], color="0.5", ls=":")
        axes[0, j].set(yscale="log", title=f"mini-batch {b} ({len(files)} runs)")
        rho = np.array([h["success_probability_min"] for h in hs])
        rq = np.quantile(rho, [0.25, 0.75], axis=0)
        axes[1, j].plot(it[1:], rho.mean(axis=0)[1:])
        axes[1, j].fill_between(it[1:], rq[0][1:], rq[1][1:], alpha=0.3)
        axes[1, j].axhline(0.5, color="red", ls="--")
        axes[1, j].set(ylim=(0, 1), xlabel="iteration")
    axes[0, 0].set_ylabel("f (Rosenbrock, d = 10): mean, quartiles;\ndotted: the start")
    axes[1, 0].set_ylabel("min_i rho_i")
    fig.suptitle("Seed 001 Sec. 5.1 (Fig. 2): signSGD, constant step 0.25")
    note(fig, d)
    fig.savefig(out / "seed001_rosenbrock_batch.png", dpi=100, bbox_inches="tight")


def seed001_vote(d, out):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for m in range(1, 9):
        files = runs(d, f"nodes{m}_seed*.h5")
        if not files:
            continue
        it, _, _, hs = mean_curve(files, "loss")
        geo = 10 ** np.mean([np.log10(h["loss"]) for h in hs], axis=0)  # the runs span orders of magnitude
        ax.plot(it, geo, label=f"M = {m}", ls="-" if m % 2 else "--", color=plt.cm.viridis((m - 1) / 7))
    ax.set(yscale="log", xlabel="iteration", ylabel="f (geometric mean over the runs)",
           title="Seed 001 Sec. 5.1 (Fig. 4): majority vote over M nodes, step 0.02, batch 1")
    ax.legend(fontsize=8, ncol=2)
    note(fig, d)
    fig.savefig(out / "seed001_rosenbrock_vote.png", dpi=110, bbox_inches="tight")


def seed002(d, out):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name in ["adagrad", "adaalter_H1", "adaalter_H4", "adaalter_H8", "adaalter_H16"]:
        f = d / f"{name}.h5"
        if not f.exists():
            continue
        h = history(f)
        label = "AdaGrad" if name == "adagrad" else f"Local AdaAlter H = {name.split('H')[1]}"
        axes[0].plot(h["iteration"], h["test_accuracy"], label=label)
        mb, what = ((h["bytes_sent"][1:] / 1e6, "MB handed to MPI (all ranks)") if "bytes_sent" in h else
                    (h["bits_up"][1:] / 8e6, "MB sent per worker"))
        axes[1].plot(mb, h["test_accuracy"][1:], marker=".", label=label)
    axes[0].set(xlabel="iteration", ylabel="test accuracy")
    axes[1].set(xscale="log", xlabel=what, ylabel="test accuracy")
    axes[0].legend(fontsize=8)
    fig.suptitle("Seed 002: Local AdaAlter against AdaGrad, mlp on Fashion-MNIST, 4 workers, eta = 0.5, "
                 "eps = b0 = 1 (seed 0)")
    note(fig, d)
    fig.savefig(out / "seed002_mlp_adaalter.png", dpi=100, bbox_inches="tight")


def seed004_logistic(d, out):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    labels = {"cd_adam": "CD-Adam", "amsgrad_ef": "AMSGrad + error feedback",
              "amsgrad_naive": "AMSGrad, naive compression", "amsgrad": "AMSGrad, uncompressed"}
    for k, label in labels.items():
        f = d / f"{k}.h5"
        if not f.exists():
            continue
        h = history(f)
        bits = (h["bits_up"] + h["bits_down"])[1:]
        axes[0].plot(bits, h["grad_norm_sq"][1:], label=label)
        axes[1].plot(h["iteration"], h["grad_norm_sq"], label=label)
    axes[0].set(xscale="log", yscale="log", xlabel="bits per worker (both ways)", ylabel="||grad f||^2")
    axes[1].set(yscale="log", xlabel="iteration")
    axes[0].legend(fontsize=8)
    fig.suptitle("Seed 004 Sec. 7.1 (Fig. 2): nonconvex logistic regression, Fashion-MNIST 0 vs 6, 20 workers")
    note(fig, d)
    fig.savefig(out / "seed004_logistic.png", dpi=100, bbox_inches="tight")


def seed004_mlp(d, out):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    labels = {"cd_adam": "CD-Adam", "ef21": "EF21 (top-k, 0.016 d)", "onebit_adam": "1-bit Adam",
              "amsgrad": "AMSGrad, uncompressed"}
    for k, label in labels.items():
        f = d / f"{k}.h5"
        if not f.exists():
            continue
        h = history(f)
        mb, what = ((h["bytes_sent"][1:] / 1e6, "MB handed to MPI (all ranks)") if "bytes_sent" in h else
                    ((h["bits_up"] + h["bits_down"])[1:] / 8e6, "MB per worker (payload, both ways)"))
        axes[0].plot(mb, h["test_accuracy"][1:], marker=".", label=label)
        axes[1].plot(mb, h["loss"][1:], marker=".", label=label)
    axes[0].set(xscale="log", xlabel=what, ylabel="test accuracy")
    axes[1].set(xscale="log", xlabel=what, ylabel="training loss")
    axes[0].legend(fontsize=8)
    fig.suptitle("Seed 004 Sec. 7.2 in small (Fig. 3): mlp on Fashion-MNIST, 4 workers, each method until it has "
                 "spent AMSGrad's first 100 rounds of bytes (seed 0)", fontsize=9)
    note(fig, d)
    fig.savefig(out / "seed004_mlp.png", dpi=100, bbox_inches="tight")


def seed000_cnn(d, out):
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    labels = {"sgd": "SGD (lr 0.1)", "mh_signsgd": "MH-signSGD (lr 0.001)",
              "adaptive": "adaptive MH-signSGD (eta*, L = d)"}
    for k, label in labels.items():
        f = d / f"{k}.h5"
        if not f.exists():
            continue
        h = history(f)
        ax.errorbar(h["iteration"], h["loss"], yerr=2 * h["loss_std_error"], marker=".", capsize=2,
                    label=f"{label}: test accuracy {h['test_accuracy'][-1]:.3f}")
        if k == "adaptive":
            bx.plot(h["iteration"][1:], h["lr"][1:], marker=".", color="C2", label="eta* (L = d), cap 0.1")
    bx.axhline(0.001, color="C1", ls="--", label="MH-signSGD's tuned fixed rate")
    bx.set(xlabel="iteration", ylabel="step", yscale="log")
    bx.legend(fontsize=8)
    ax.set(xlabel="iteration (batch 256: 4 workers x 64)", ylabel="training loss (estimate, +- 2 s.e.)")
    ax.legend(fontsize=8)
    fig.suptitle("Seed 000 Sec. III-2 (Fig. 2) on Fashion-MNIST: the seed's CNN, each method at its best rate "
                 "(adaptive: none to tune)", fontsize=9)
    note(fig, d)
    fig.savefig(out / "seed000_cnn.png", dpi=100, bbox_inches="tight")


DRAW = {"seed000_quadratic": seed000, "seed000_cnn": seed000_cnn, "seed001_rosenbrock_batch": seed001_batch,
        "seed001_rosenbrock_vote": seed001_vote, "seed002_mlp_adaalter": seed002,
        "seed004_logistic": seed004_logistic, "seed004_mlp": seed004_mlp}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default=str(ROOT / "build" / "validation"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "figures"))
    a = ap.parse_args()
    runs_dir, out = Path(a.runs), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    drawn = 0
    for name, draw in DRAW.items():
        d = runs_dir / name
        if not d.is_dir():
            print(f"figures.py: no histories for {name} in {d} (run tests/validation/validate.py)", file=sys.stderr)
            continue
        draw(d, out)
        plt.close("all")
        drawn += 1
        print(f"figures.py: {out / (name + '.png')}")
    return 0 if drawn else 1


if __name__ == "__main__":
    sys.exit(main())
