#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Plots bench/accuracy_bench.js's results: accuracy against the parameter ratio achieved.

    /usr/bin/python3 bench/plot_accuracy.py RESULTS.tsv OUT.png   (or OUT.svg)

One panel per model (PP-OCRv4 recognizer, Fashion-MNIST MLP, and the latter again zoomed to within
3 points of its original accuracy), one line per mode (weight-only,
calibrated, calibrated + compensation), the original accuracy as a dashed line and the issue's
targets as crosses (the accuracy a mode must reach at that ratio). Needs python3-matplotlib.
"""

import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# (model, title, zoom): a zoomed panel shows the points within ZOOM_PT points of the original.
PANELS = [("ocr", "PP-OCRv4 recognizer: character accuracy", False),
          ("fashion", "Fashion-MNIST MLP: test accuracy", False),
          ("fashion", "Fashion-MNIST MLP, near the original", True)]
ZOOM_PT = 3.0
MODES = [("weight", "weight-only", "tab:gray", "o"),
         ("calibrated", "calibrated (--calibration-data)", "tab:blue", "s"),
         ("compensated", "calibrated + --compensate", "tab:green", "^")]
# (model, ratio, allowed drop in points)
TARGETS = [("ocr", 0.27, 1.0), ("fashion", 0.1, 0.5), ("fashion", 0.25, 0.2)]


def main():
    if len(sys.argv) != 3:
        raise SystemExit("usage: plot_accuracy.py RESULTS.tsv OUT.png|OUT.svg")
    with open(sys.argv[1], newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    panels = [p for p in PANELS if any(r["model"] == p[0] for r in rows)]
    if not panels:
        raise SystemExit(f"{sys.argv[1]}: no rows")
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), squeeze=False)
    for ax, (model, title, zoom) in zip(axes[0], panels):
        mine = [r for r in rows if r["model"] == model]
        original = next((float(r["accuracy"]) for r in mine if r["mode"] == "original"), None)
        if original is not None:
            ax.axhline(100 * original, color="black", linestyle="--", linewidth=1,
                       label=f"original {100 * original:.2f}%")
        right = max((float(r["achieved_ratio"]) for r in mine if r["mode"] != "original"
                     and r["status"] == "ok"), default=1.0)
        for mode, label, color, marker in MODES:
            pts = sorted((float(r["achieved_ratio"]), 100 * float(r["accuracy"]))
                         for r in mine if r["mode"] == mode and r["status"] == "ok")
            if pts:
                ax.plot(*zip(*pts), color=color, marker=marker, label=label)
        for t_model, ratio, drop in TARGETS:
            if t_model == model and original is not None:
                y = 100 * original - drop
                ax.plot([ratio], [y], "x", color="tab:red", markersize=10, markeredgewidth=2)
                near_right = ratio >= 0.9 * right
                ax.annotate(f"target: -{drop:g} pt at {ratio:g}", (ratio, y),
                            textcoords="offset points", xytext=(-6 if near_right else 6, -14),
                            ha="right" if near_right else "left", fontsize=8, color="tab:red")
        if zoom and original is not None:
            floor = 100 * original - ZOOM_PT
            ax.set_ylim(floor, 100 * original + ZOOM_PT / 6)
            xs = [float(r["achieved_ratio"]) for r in mine if r["mode"] != "original"
                  and r["status"] == "ok" and 100 * float(r["accuracy"]) >= floor]
            if xs:
                pad = 0.1 * (max(xs) - min(xs)) + 0.005
                ax.set_xlim(min(xs) - pad, max(xs) + pad)
        ax.set_title(title, fontsize=11)
        ax.set_xlabel("MatMul/Gemm parameters kept (ratio achieved)")
        ax.set_ylabel("accuracy (%)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
