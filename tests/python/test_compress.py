# SPDX-License-Identifier: Apache-2.0
"""kfc_compress (the Python module) against the kfc-compress binary it wraps.

Run by ctest (python_module) with PYTHONPATH at the built module and KFC_COMPRESS, KFC_SOURCE_DIR
set; or by hand:
  PYTHONPATH=build/python KFC_COMPRESS=build/kfc-compress KFC_SOURCE_DIR=. \
    python3 -m unittest discover -s tests/python
"""
import json
import os
import pathlib
import subprocess
import tempfile
import threading
import time
import unittest

import kfc_compress

SOURCE = pathlib.Path(os.environ.get("KFC_SOURCE_DIR", pathlib.Path(__file__).parents[2]))
CLI = os.environ["KFC_COMPRESS"]
DIGITS = SOURCE / "testdata" / "digits_mlp.onnx"
FASHION = SOURCE / "testdata" / "fashion_mlp.onnx"
SYNTHETIC = SOURCE / "testdata" / "synthetic"


def run_cli(*args):
    return subprocess.run([CLI, "-q", *map(str, args)], capture_output=True, text=True)


class Scratch(unittest.TestCase):
    def setUp(self):
        self._dir = tempfile.TemporaryDirectory()
        self.dir = pathlib.Path(self._dir.name)

    def tearDown(self):
        self._dir.cleanup()

    def cli_output(self, model, *args):
        """The model bytes and JSON report kfc-compress writes for `args`."""
        out = self.dir / "cli.onnx"
        done = run_cli(model, "-o", out, "--json", *args)
        self.assertEqual(done.returncode, 0, done.stderr)
        data = out.read_bytes()
        out.unlink()
        return data, json.loads(done.stdout)


# (model, CLI arguments, the same as keyword arguments): every mode and several option kinds.
CASES = [
    (DIGITS, ["-r", "4"], dict(rank=4)),
    (DIGITS, ["--max-error", "0.5"], dict(max_error=0.5)),
    (DIGITS, ["--ratio", "0.2"], dict(ratio=0.2)),
    (DIGITS, ["-r", "2", "--shape", "lowrank"], dict(rank=2, shape="lowrank")),
    (DIGITS, ["-r", "3", "--shape", "16x32", "--threads", "1"],
     dict(rank=3, shape="16x32", threads=1)),
    (DIGITS, ["--max-error", "0.3", "--min-params", "1000", "--exclude", "fc2"],
     dict(max_error=0.3, min_params=1000, exclude=["fc2"])),
    (FASHION, ["--ratio", "0.1"], dict(ratio=0.1)),
    (DIGITS, ["--max-error", "0.4", "--objective", "macs"], dict(max_error=0.4, objective="macs")),
    (DIGITS, ["-r", "40", "--shape", "auto", "--allow-slower-than-dense"],
     dict(rank=40, shape="auto", allow_slower_than_dense=True)),
    (DIGITS, ["-r", "4", "--node-cost", "0"], dict(rank=4, node_cost=0)),
    (FASHION, ["--ratio", "0.1", "--allocation", "uniform"], dict(ratio=0.1, allocation="uniform")),
    (DIGITS, ["-r", "4", "--fail-if-nothing-compressed"],
     dict(rank=4, fail_if_nothing_compressed=True)),
    (FASHION, ["-r", "8", "--include", "fc1", "--include", "fc2"],
     dict(rank=8, include=["fc1", "fc2"])),
    (SYNTHETIC / "gemm_fp16.onnx", ["-r", "2", "--min-params", "0"], dict(rank=2, min_params=0)),
    (SYNTHETIC / "gemm_fp64.onnx", ["--max-error", "0.9"], dict(max_error=0.9)),
    (SYNTHETIC / "if_gemm_branches.onnx", ["-r", "2", "--min-params", "0"],
     dict(rank=2, min_params=0)),
    (SYNTHETIC / "matmul_shared_weight.onnx", ["-r", "3", "--min-params", "0"],
     dict(rank=3, min_params=0)),
]


def without_paths(report):
    """The report minus what names files (the in-memory run has none)."""
    report = dict(report)
    for key in ("input", "output", "output_written", "external_data_file"):
        report.pop(key, None)
    return report


class SameAsCli(Scratch):
    def test_compress_gives_the_cli_bytes_and_report(self):
        for model, args, kwargs in CASES:
            with self.subTest(model=model.name, args=args):
                expected, cli_report = self.cli_output(model, *args)
                data, report = kfc_compress.compress(model.read_bytes(), **kwargs)
                self.assertIsInstance(data, bytes)
                self.assertEqual(data, expected)
                self.assertEqual(without_paths(report), without_paths(cli_report))
                self.assertTrue(report["output_written"])
                self.assertEqual(report["input"], "")

    def test_compress_file_gives_the_cli_bytes_and_report(self):
        for model, args, kwargs in CASES[:6]:
            with self.subTest(model=model.name, args=args):
                expected, cli_report = self.cli_output(model, *args)
                out = self.dir / "cli.onnx"  # same path, so the reports match whole
                report = kfc_compress.compress_file(str(model), out, **kwargs)
                self.assertEqual(out.read_bytes(), expected)
                self.assertEqual(report, cli_report)

    def test_compress_file_side_files_and_dry_run(self):
        out, rep, plan = self.dir / "m.onnx", self.dir / "r.json", self.dir / "p.json"
        report = kfc_compress.compress_file(DIGITS, out, rank=4, report=rep, plan_out=plan)
        self.assertEqual(json.loads(rep.read_text()), report)
        self.assertIn("fc1", plan.read_text())
        # The plan it wrote gives the CLI's bytes for that plan (the provenance names the plan,
        # so not the -r 4 run's bytes).
        pinned, _ = kfc_compress.compress(DIGITS.read_bytes(), plan=plan)
        expected, _ = self.cli_output(DIGITS, "--plan", plan)
        self.assertEqual(pinned, expected)
        dry = kfc_compress.compress_file(DIGITS, None, rank=4, dry_run=True)
        self.assertTrue(dry["dry_run"])
        self.assertFalse(dry["output_written"])

    def test_external_data(self):
        out = self.dir / "m.onnx"
        report = kfc_compress.compress_file(FASHION, out, rank=4, external_data="w.bin",
                                            external_data_threshold=0)
        self.assertTrue((self.dir / "w.bin").exists())
        self.assertTrue(report["external_data_file"].endswith("w.bin"))
        cli_out = self.dir / "c.onnx"
        done = run_cli(FASHION, "-o", cli_out, "-r", "4", "--external-data=c.bin",
                       "--external-data-threshold", "0")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual((self.dir / "c.bin").read_bytes(), (self.dir / "w.bin").read_bytes())


class Errors(Scratch):
    def cli_error(self, *args):
        done = run_cli(*args)
        return done.returncode, done.stderr.splitlines()[0].removeprefix("kfc-compress: error: ")

    def test_usage_errors_are_value_errors_with_the_cli_message(self):
        cases = [
            (dict(rank=0), ["-r", "0"]),
            (dict(rank="x"), ["-r", "x"]),
            (dict(rank=4, ratio=0.5), ["-r", "4", "--ratio", "0.5"]),
            (dict(max_error=float("nan")), ["--max-error", "nan"]),
            (dict(max_error=2.0), ["--max-error", "2.0"]),
            (dict(rank=4, shape="0x3"), ["-r", "4", "--shape", "0x3"]),
            (dict(rank=4, threads=5000), ["-r", "4", "-j", "5000"]),
            (dict(rank=4, include="("), ["-r", "4", "--include", "("]),
            (dict(rank=4, allocation="uniform"), ["-r", "4", "--allocation", "uniform"]),
            (dict(rank=4, calibration_regularization=1),
             ["-r", "4", "--calibration-regularization", "1"]),
            (dict(), []),
        ]
        for kwargs, args in cases:
            with self.subTest(kwargs=kwargs):
                code, message = self.cli_error(DIGITS, "-o", self.dir / "x.onnx", *args)
                self.assertEqual(code, 2)
                with self.assertRaises(ValueError) as caught:
                    kfc_compress.compress(DIGITS.read_bytes(), **kwargs)
                self.assertEqual(str(caught.exception), message)
                with self.assertRaises(ValueError) as caught:
                    kfc_compress.compress_file(DIGITS, self.dir / "x.onnx", **kwargs)
                self.assertEqual(str(caught.exception), message)
                self.assertFalse((self.dir / "x.onnx").exists())

    def test_unknown_options_are_named(self):
        with self.assertRaises(ValueError) as caught:
            kfc_compress.compress(DIGITS.read_bytes(), rank=4, rnak=2, verbose=True)
        self.assertIn("rnak", str(caught.exception))
        self.assertIn("verbose", str(caught.exception))
        # File options do not apply in memory.
        with self.assertRaisesRegex(ValueError, "report"):
            kfc_compress.compress(DIGITS.read_bytes(), rank=4, report="r.json")
        with self.assertRaisesRegex(ValueError, "dry_run: expected True or False"):
            kfc_compress.compress_file(DIGITS, None, rank=4, dry_run="yes")
        # The runner's options name files: compress_file only, where the CLI's checks apply.
        for kwargs in (dict(compensate=True), dict(runner_timeout=5)):
            with self.assertRaisesRegex(ValueError, "^unknown"):
                kfc_compress.compress(DIGITS.read_bytes(), rank=4, **kwargs)
            with self.assertRaisesRegex(ValueError, "needs --calibration-data"):
                kfc_compress.compress_file(DIGITS, self.dir / "x.onnx", rank=4, **kwargs)
        with self.assertRaises(kfc_compress.GateFailedError):
            kfc_compress.compress(DIGITS.read_bytes(), rank=4, min_params=10**6,
                                  fail_if_nothing_compressed=True)

    def test_runtime_errors_are_runtime_errors_with_the_cli_message(self):
        missing = self.dir / "missing.onnx"
        code, message = self.cli_error(missing, "-o", self.dir / "x.onnx", "-r", "4")
        self.assertEqual(code, 1)
        with self.assertRaises(RuntimeError) as caught:
            kfc_compress.compress_file(missing, self.dir / "x.onnx", rank=4)
        self.assertEqual(str(caught.exception), message)
        for junk in (b"", b"not a model", DIGITS.read_bytes()[:100]):
            with self.assertRaisesRegex(RuntimeError, "^model bytes: "):
                kfc_compress.compress(junk, rank=4)
        with self.assertRaisesRegex(TypeError, "model_bytes: expected bytes"):
            kfc_compress.compress(str(DIGITS), rank=4)

    def test_bytes_like_input(self):
        model = DIGITS.read_bytes()
        expected, _ = kfc_compress.compress(model, rank=4)
        for view in (bytearray(model), memoryview(model)):
            self.assertEqual(kfc_compress.compress(view, rank=4)[0], expected)

    def test_gate_failure(self):
        with self.assertRaises(kfc_compress.GateFailedError) as caught:
            kfc_compress.compress(DIGITS.read_bytes(), rank=1, fail_if_error_above=0.01)
        self.assertIn("gate failed: ", str(caught.exception))
        self.assertFalse(caught.exception.report["gates_passed"])
        data, report = kfc_compress.compress(DIGITS.read_bytes(), rank=1,
                                             fail_if_error_above=0.01, write_on_gate_failure=True)
        self.assertFalse(report["gates_passed"])
        self.assertGreater(len(data), 0)
        out = self.dir / "g.onnx"
        with self.assertRaises(kfc_compress.GateFailedError):
            kfc_compress.compress_file(DIGITS, out, rank=1, fail_if_error_above=0.01)
        self.assertFalse(out.exists())
        done = run_cli(DIGITS, "-o", out, "-r", "1", "--fail-if-error-above", "0.01")
        self.assertEqual(done.returncode, 3)


class Module(unittest.TestCase):
    def test_version_matches_the_cli(self):
        done = subprocess.run([CLI, "--version"], capture_output=True, text=True)
        self.assertEqual(done.stdout.strip(), "kfc-compress " + kfc_compress.__version__)

    def test_the_gil_is_released_while_compressing(self):
        # While a thread compresses, this thread keeps running Python code: with the GIL held
        # through the call it could not run at all between the call's start and end.
        model = FASHION.read_bytes()
        span = {}

        def work():
            span["start"] = time.monotonic()
            kfc_compress.compress(model, rank=8)
            span["end"] = time.monotonic()

        worker = threading.Thread(target=work)
        ticks = []
        worker.start()
        while worker.is_alive():
            ticks.append(time.monotonic())
            time.sleep(0.001)
        worker.join()
        margin = 0.05  # well above the interpreter's 5 ms switch interval
        inside = [t for t in ticks if span["start"] + margin < t < span["end"] - margin]
        self.assertGreater(span["end"] - span["start"], 4 * margin, "compression too quick to tell")
        self.assertGreater(len(inside), 10)

    def test_threads_compress_concurrently(self):
        # Each of several threads gets the bytes a lone call gets.
        model = DIGITS.read_bytes()
        alone, _ = kfc_compress.compress(model, ratio=0.2)
        results = [None] * 3

        def work(i):
            results[i] = kfc_compress.compress(model, ratio=0.2)[0]

        threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(results, [alone] * 3)

if __name__ == "__main__":
    unittest.main()
