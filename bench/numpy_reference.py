#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""NumPy reference for kfc_kron_bench: the textbook nearest-Kronecker-product factorization.

For each weight kfc_kron_bench dumped (--dump DIR writes DIR/manifest.tsv and one float32 .npy per
weight), this times

    rearrangement R[i1*n1 + j1, i2*n2 + j2] = W[i1*k2 + i2, j1*n2 + j2]  (in float64, like kfc)
    + np.linalg.svd(R, full_matrices=False)                             (LAPACK gesdd, all of it)
    + the factor split A_t = sqrt(s_t) U[:, t], B_t = sqrt(s_t) V[:, t]  (at the largest rank)

once per weight: the full SVD costs the same whatever the rank, so one timing serves every rank.
The rank-r relative error is sqrt(sum_{t >= r} s_t^2) / ||W||_F, the optimum for that shape.
Small weights are also reconstructed from their factors to check that formula and the index
convention independently of kfc.

Each weight runs in a subprocess with a time limit (--limit, default 600 s); a weight whose SVD
is predicted (from a smaller measured one, cost ~ m*n*min(m, n)) to need over twice the limit is
not started. Either way it is reported as not measured, with the reason.

With --kfc-tsv (kfc_kron_bench's --tsv output) it prints the combined table and the target check.
Run with Debian's /usr/bin/python3 (its numpy uses the same OpenBLAS as kfc here). It does not
touch OPENBLAS_* variables.
"""

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time


def run_one(path, k1, n1, k2, n2, ranks):
    """Times the reference factorization of one weight; prints one JSON line."""
    import numpy as np

    w = np.load(path)
    K, N = w.shape
    assert K == k1 * k2 and N == n1 * n2, "shape does not divide the weight"
    norm = float(np.linalg.norm(w.astype(np.float64)))
    t0 = time.perf_counter()
    r = np.ascontiguousarray(
        w.reshape(k1, k2, n1, n2).transpose(0, 2, 1, 3).reshape(k1 * n1, k2 * n2),
        dtype=np.float64)
    t1 = time.perf_counter()
    u, s, vt = np.linalg.svd(r, full_matrices=False)
    t2 = time.perf_counter()
    rmax = max(ranks)
    root = np.sqrt(s[:rmax])
    a = (u[:, :rmax] * root).T.reshape(rmax, k1, n1).astype(np.float32)
    b = (vt[:rmax] * root[:, None]).reshape(rmax, k2, n2).astype(np.float32)
    t3 = time.perf_counter()
    sq = s.astype(np.float64) ** 2
    tail = np.cumsum(sq[::-1])[::-1]  # tail[r] = sum_{t >= r} s_t^2, summed smallest first
    errors = {}
    check = {}
    for rank in ranks:
        err = math.sqrt(float(tail[rank])) / norm if rank < len(s) and norm > 0 else 0.0
        errors[str(rank)] = err
        if K * N <= (1 << 20):
            # W_hat[i1*k2 + i2, j1*n2 + j2] = sum_t A_t[i1, j1] B_t[i2, j2]
            w_hat = np.einsum("tac,tbd->abcd", a[:rank].astype(np.float64),
                              b[:rank].astype(np.float64)).reshape(K, N)
            direct = float(np.linalg.norm(w - w_hat)) / norm
            check[str(rank)] = abs(direct - err)
    print(json.dumps({
        "rearrange_s": t1 - t0, "svd_s": t2 - t1, "split_s": t3 - t2, "total_s": t3 - t0,
        "errors": errors, "reconstruction_check": check,
    }), flush=True)


def read_tsv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def measure_all(args):
    """Runs every manifest entry; returns {(kind, K, N): result dict}."""
    results = {}
    seconds_per_unit = None  # full SVD seconds / (m*n*min(m, n)), from the largest run
    unit_done = 0.0
    for row in read_tsv(os.path.join(args.dir, "manifest.tsv")):
        k1, n1, k2, n2 = (int(row[x]) for x in ("k1", "n1", "k2", "n2"))
        m, n = k1 * n1, k2 * n2
        ranks = [int(x) for x in row["ranks"].split(",") if x]
        key = (row["kind"], int(row["K"]), int(row["N"]))
        unit = float(m) * n * min(m, n)
        label = "%s %sx%s (R %dx%d)" % (key[0], key[1], key[2], m, n)
        if seconds_per_unit is not None and seconds_per_unit * unit > 2 * args.limit:
            estimate = seconds_per_unit * unit
            results[key] = {"skipped": "not measured: full SVD of the %dx%d R estimated at %.0f s "
                                       "(from a smaller run), over 2x the %.0f s limit"
                                       % (m, n, estimate, args.limit)}
            print("[numpy] %s: skipped (estimated %.0f s)" % (label, estimate), file=sys.stderr)
            continue
        cmd = [sys.executable, os.path.abspath(__file__), "--one",
               os.path.join(args.dir, row["file"]), str(k1), str(n1), str(k2), str(n2),
               row["ranks"]]
        print("[numpy] %s: running" % label, file=sys.stderr, flush=True)
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.limit,
                                 check=True)
        except subprocess.TimeoutExpired:
            results[key] = {"skipped": "not measured: full SVD of the %dx%d R did not finish "
                                       "within %.0f s" % (m, n, args.limit)}
            print("[numpy] %s: timed out" % label, file=sys.stderr)
            continue
        except subprocess.CalledProcessError as e:
            results[key] = {"skipped": "failed: " + e.stderr.strip().splitlines()[-1]}
            print("[numpy] %s: failed\n%s" % (label, e.stderr), file=sys.stderr)
            continue
        res = json.loads(out.stdout.strip().splitlines()[-1])
        res["ranks"] = ranks
        res["R"] = (m, n)
        results[key] = res
        if unit >= unit_done:
            seconds_per_unit, unit_done = res["svd_s"] / unit, unit
        print("[numpy] %s: %.2f s (svd %.2f s)" % (label, res["total_s"], res["svd_s"]),
              file=sys.stderr, flush=True)
    return results


def fmt_s(x):
    if x is None or x < 0:
        return "n/a"
    return "%.4f" % x if x < 0.1 else ("%.3f" % x if x < 10 else "%.1f" % x)


def print_numpy_table(results):
    print("| kind | size | R | rearrange s | full SVD s | split s | total s | note |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    for (kind, K, N), r in results.items():
        if "skipped" in r:
            print("| %s | %dx%d | | n/a | n/a | n/a | n/a | %s |" % (kind, K, N, r["skipped"]))
            continue
        check = r["reconstruction_check"]
        note = ("reconstruction matches the formula within %.1e" % max(check.values())
                if check else "")
        print("| %s | %dx%d | %dx%d | %s | %s | %s | %s | %s |" % (
            kind, K, N, r["R"][0], r["R"][1], fmt_s(r["rearrange_s"]), fmt_s(r["svd_s"]),
            fmt_s(r["split_s"]), fmt_s(r["total_s"]), note))
    print()


def num(row, key):
    try:
        return float(row[key])
    except (KeyError, ValueError):
        return -1.0


def print_combined(kfc_rows, results):
    print("| kind | size | rank | kfc s (auto) | numpy s | speedup | kfc error | exact/numpy error "
          "| error diff % | search / fixed | peak extra mem / W |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    checks = []
    notes = set()
    agreement = []
    for row in kfc_rows:
        kind, K, N, rank = row["kind"], int(row["K"]), int(row["N"]), int(row["rank"])
        np_res = results.get((kind, K, N), {})
        kfc_s, kfc_err = num(row, "auto_s"), num(row, "auto_error")
        exact_err = num(row, "exact_error")
        np_s = np_res.get("total_s", -1.0)
        np_err = np_res.get("errors", {}).get(str(rank), -1.0)
        if "skipped" in np_res:
            notes.add("%s %dx%d numpy: %s" % (kind, K, N, np_res["skipped"]))
        if np_err >= 0 and exact_err >= 0:
            agreement.append(abs(np_err - exact_err) / max(exact_err, 1e-300))
        ref, ref_tag = (np_err, "np") if np_err >= 0 else (exact_err, "exact")
        speedup = np_s / kfc_s if np_s > 0 and kfc_s > 0 else -1.0
        diff = 100.0 * (kfc_err - ref) / ref if ref > 0 and kfc_err >= 0 else None
        search_s = num(row, "search_s")
        search_ratio = search_s / kfc_s if search_s > 0 and kfc_s > 0 else -1.0
        search_state = row.get("search_state", "ok")
        if search_state == "timed_out":
            search_text = "> %.0fx (killed at %.0f s)" % (search_ratio, search_s)
        elif search_state == "skipped":
            search_text = "skipped (lower rank hit the limit)"
        else:
            search_text = "%.1fx" % search_ratio if search_ratio > 0 else "n/a"
        mem = num(row, "auto_extra_bytes") / num(row, "weight_bytes")
        print("| %s | %dx%d | %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            kind, K, N, rank, fmt_s(kfc_s), fmt_s(np_s) if np_s > 0 else "not measured",
            "%.1fx" % speedup if speedup > 0 else "n/a",
            "%.6f" % kfc_err if kfc_err >= 0 else "n/a",
            "%.6f (%s)" % (ref, ref_tag) if ref >= 0 else "n/a",
            "%+.3f" % diff if diff is not None else "n/a",
            search_text, "%.2f" % mem if mem >= 0 else "n/a"))
        if search_state in ("timed_out", "skipped"):
            search_ratio = float("inf")
        checks.append((kind, K, N, rank, speedup, diff, search_ratio, mem))
    print()
    print("Notes: numpy s is one measurement per weight (rearrangement + full float64 SVD + "
          "factor split), shared by all ranks. Reference error: numpy's (np) where measured, else "
          "kfc's exact-SVD error (exact). Speedup = numpy s / kfc s. Memory: auto Factorize only.")
    if agreement:
        print("kfc exact vs numpy optimal error: largest relative difference %.1e over %d rows."
              % (max(agreement), len(agreement)))
    for note in sorted(notes):
        print("- " + note)
    print()
    print("Targets (reported, not enforced):")

    def verdict(ok):
        return "met" if ok else "MISSED"

    for kind, K, N, rank, speedup, diff, search_ratio, mem in checks:
        if (K, N) == (4096, 4096) and rank <= 16:
            ok = speedup >= 50 and diff is not None and diff <= 1.0
            print("- 4096x4096 %s rank %d: >= 50x faster than numpy and error within 1%%: "
                  "%.1fx, %s%% -> %s" % (kind, rank, speedup,
                                        "%+.3f" % diff if diff is not None else "n/a",
                                        verdict(ok)))
    for kind, K, N, rank, speedup, diff, search_ratio, mem in checks:
        if (K, N) == (4096, 4096):
            print("- 4096x4096 %s rank %d: shape search <= 10x one fixed-shape factorization: "
                  "%s -> %s" % (kind, rank,
                                "%.1fx" % search_ratio if 0 < search_ratio < float("inf")
                                else ("over the time limit" if search_ratio > 0 else "n/a"),
                                verdict(0 < search_ratio <= 10)))
    worst = max(checks, key=lambda c: c[7]) if checks else None
    if worst:
        print("- peak extra memory <= 3x weight bytes: worst %.2fx (%s %dx%d rank %d); %d of %d "
              "rows over -> %s" % (worst[7], worst[0], worst[1], worst[2], worst[3],
                                   sum(1 for c in checks if c[7] > 3), len(checks),
                                   verdict(all(0 <= c[7] <= 3 for c in checks))))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        path, k1, n1, k2, n2, ranks = sys.argv[2:8]
        run_one(path, int(k1), int(n1), int(k2), int(n2), [int(x) for x in ranks.split(",")])
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dir", required=True, help="kfc_kron_bench --dump directory")
    p.add_argument("--kfc-tsv", help="kfc_kron_bench --tsv output: print the combined table")
    p.add_argument("--limit", type=float, default=600.0,
                   help="seconds allowed per weight (default 600)")
    p.add_argument("--json", help="also write the numpy results here")
    args = p.parse_args()
    load_start = open("/proc/loadavg").read().split()[:3]
    results = measure_all(args)
    load_end = open("/proc/loadavg").read().split()[:3]
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"%s_%dx%d" % k: v for k, v in results.items()}, f, indent=1)
    print("## NumPy reference (np.linalg.svd, float64)\n")
    import numpy
    print("numpy %s, OPENBLAS_CORETYPE=%s, load average %s at the start and %s at the end\n"
          % (numpy.__version__, os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
             " ".join(load_start), " ".join(load_end)))
    print_numpy_table(results)
    if args.kfc_tsv:
        print("## Combined\n")
        print_combined(read_tsv(args.kfc_tsv), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
