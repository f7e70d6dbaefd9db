#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The HTML report in a real browser: headless Chromium loads it, and the test checks that the
rendered DOM names every layer and holds the charts, and that a screenshot shows the charts' blue.

usage: html_report_browser_test.py KFC_COMPRESS SOURCE_DIR CHROMIUM WORK_DIR
Standard library only (the PNG is decoded here).
"""
import html
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib


def fail(message):
    print("html_report_browser_test: FAIL: " + message, file=sys.stderr)
    sys.exit(1)


def run(argv, **kwargs):
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, **kwargs)
    if result.returncode != 0:
        fail(" ".join(argv) + " exited " + str(result.returncode) + ": " + result.stderr[-2000:])
    return result.stdout


def chromium(browser, work, *args):
    return run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                "--user-data-dir=" + os.path.join(work, "profile"), *args])


def png_pixels(path):
    """(width, height, rows of RGB(A) bytes) of an 8-bit RGB or RGBA PNG."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        fail(path + " is not a PNG")
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            if depth != 8 or color not in (2, 6):
                fail("unexpected PNG format: depth %d color type %d" % (depth, color))
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, prev, at = [], bytearray(stride), 0
    for _ in range(height):
        kind, line = raw[at], bytearray(raw[at + 1:at + 1 + stride])
        at += 1 + stride
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return width, height, channels, rows


def main():
    if len(sys.argv) != 5:
        fail("usage: html_report_browser_test.py KFC_COMPRESS SOURCE_DIR CHROMIUM WORK_DIR")
    tool, source, browser, work = sys.argv[1:]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    model = os.path.join(source, "testdata", "digits_mlp.onnx")
    cases = {
        # --ratio: the allocation's curve; --min-params keeps one layer dense (a skip reason).
        "ratio": ["--ratio", "0.3", "--min-params", "2000"],
        # -r: the curve from the chosen shapes' spectra.
        "rank": ["-r", "4", "--shape", "auto"],
    }
    for name, options in cases.items():
        page = os.path.join(work, name + ".html")
        report = json.loads(run([tool, model, "-o", os.path.join(work, name + ".onnx"), "--json",
                                 "--report", page, "-q", *options]))
        layers = report["layers"]
        compressed = sum(1 for l in layers if l["compressed"])
        if compressed == 0:
            fail(name + ": no layer compressed, nothing to chart")
        dom = chromium(browser, work, "--dump-dom", "file://" + page)
        if "</html>" not in dom or "<body" not in dom:
            fail(name + ": Chromium returned no document:\n" + dom[:500])
        for l in layers:
            label = l["node_name"] or "(unnamed)"
            if l["graph"] != "main":
                label = l["graph"] + "/" + label
            if html.escape(label, quote=False) not in dom:
                fail(name + ": layer '" + label + "' is not in the rendered DOM")
        svgs = dom.count("<svg")
        # The layer chart, one spectrum per compressed layer, the size-error curve.
        if svgs != 1 + compressed + 1:
            fail("%s: %d <svg> elements in the DOM, expected %d" % (name, svgs, compressed + 2))
        for section in ('id="summary"', 'id="layers"', 'id="spectra"', 'id="curve"',
                        'id="layer-table"', 'id="checks"'):
            if section not in dom:
                fail(name + ": no " + section + " in the rendered DOM")
        shot = os.path.join(work, name + ".png")
        chromium(browser, work, "--screenshot=" + shot, "--window-size=1000,2600",
                 "file://" + page)
        width, height, channels, rows = png_pixels(shot)
        blue = 0
        for row in rows:
            for x in range(0, width * channels, channels):
                r, g, b = row[x], row[x + 1], row[x + 2]
                if abs(r - 0x25) < 24 and abs(g - 0x63) < 24 and abs(b - 0xEB) < 24:
                    blue += 1
        # Bars, spectra and the curve are drawn in #2563eb: rendered SVG shows up as its pixels.
        if blue < 2000:
            fail("%s: only %d chart-blue pixels in a %dx%d screenshot: the SVG did not render"
                 % (name, blue, width, height))
        print("%s: %d layers named in the DOM, %d SVG charts, %d chart pixels in the screenshot"
              % (name, len(layers), svgs, blue))


if __name__ == "__main__":
    main()
