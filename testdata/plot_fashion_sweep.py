#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Plots test accuracy against FC parameter ratio from tests/ort/bench_fashion_sweep.js results.

    /usr/bin/python3 testdata/plot_fashion_sweep.py RESULTS.tsv OUT.png   (or OUT.svg)

RESULTS.tsv is the sweep's results.tsv: a header row, then one row per run with at least the
columns policy, mode, target, status, fc_ratio, accuracy. The row with policy `original` gives
the dashed reference line; rows whose status is not `ok` are left out (and counted on stdout).
x = layer params after / before over the Gemm/MatMul layers (log scale), y = test accuracy; one
line per policy, each point labelled with its --ratio or -r value.
"""

import csv
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

STYLES = {"balanced": ("tab:blue", "o"), "lowrank": ("tab:orange", "s"),
          "auto": ("tab:green", "^"), "auto+calibration": ("tab:red", "D")}


def read_rows(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    missing = {"policy", "mode", "target", "status", "fc_ratio", "accuracy"} - set(rows[0] if rows
                                                                                      else {})
    if missing:
        raise SystemExit(f"{path}: no rows, or missing columns {sorted(missing)}")
    return rows


def main():
    if len(sys.argv) != 3:
        raise SystemExit("usage: plot_fashion_sweep.py RESULTS.tsv OUT.png|OUT.svg")
    tsv, out = sys.argv[1:]
    rows = read_rows(tsv)
    original = next((r for r in rows if r["policy"] == "original"), None)
    runs = [r for r in rows if r["policy"] != "original"]
    ok = [r for r in runs if r["status"] == "ok"]
    if not ok:
        raise SystemExit(f"{tsv}: none of the {len(runs)} runs succeeded; nothing to plot")
    flag = "-r" if ok[0]["mode"] == "r" else "--ratio"

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    policies = list(dict.fromkeys(r["policy"] for r in ok))
    for policy in policies:
        points = sorted((float(r["fc_ratio"]), float(r["accuracy"]), r["target"])
                        for r in ok if r["policy"] == policy)
        color, marker = STYLES.get(policy, (None, "D"))
        xs, ys, labels = zip(*points)
        ax.plot(xs, ys, marker=marker, color=color, label=f"--shape {policy}".replace("+calibration", " --calibration"))
        if policy == "balanced":  # one set of labels: the policies share their targets
            for x, y, label in points:
                ax.annotate(f"{flag} {label}", (x, y), textcoords="offset points",
                            xytext=(4, -11), fontsize=7, color=color or "black")
    if original:
        acc = float(original["accuracy"])
        ax.axhline(acc, color="gray", linestyle="--", linewidth=1,
                   label=f"original ({acc:.4f})")
    xs = [float(r["fc_ratio"]) for r in ok]
    ax.set_xscale("log")
    lo, hi = min(xs), max(xs)
    ax.set_xlim(lo / 1.3, min(1.0, hi * 1.3) if hi < 1 else hi * 1.1)
    ticks = [t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0) if lo / 1.3 <= t <= hi * 1.3]
    ax.set_xticks(ticks)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ymin = min(float(r["accuracy"]) for r in ok)
    ax.set_ylim(max(0.0, math.floor(ymin * 20) / 20 - 0.02), 1.0 if ymin < 0.5 else 0.92)
    ax.set_xlabel("FC parameter ratio (Gemm/MatMul weight params after / before, log scale)")
    ax.set_ylabel("test accuracy (10,000 images, ONNX Runtime)")
    ax.set_title(f"Fashion-MNIST MLP compressed by kfc-compress: {flag} sweep")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out, metadata={"Software": None} if out.endswith(".png") else None)
    skipped = len(runs) - len(ok)
    print(f"wrote {out}: {len(ok)} points, {len(policies)} policies"
          + (f", {skipped} failed runs left out" if skipped else ""))


if __name__ == "__main__":
    main()
