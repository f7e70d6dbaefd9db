#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Renders text lines for the PP-OCRv4 recognizer benchmark (bench/accuracy_bench.js).

    /usr/bin/python3 bench/ocr_accuracy.py OUT_DIR [--lines N] [--seed S] [--width W]

Writes OUT_DIR/lines.npy, float32 [N, 3, 48, W]: each line rendered black on white with one of
Debian's DejaVu fonts (fonts-dejavu-core; Sans, Serif, Sans Mono, Bold, Oblique) at 26-40 px,
cropped to its ink plus a small margin, resized to height 48 keeping its aspect ratio (capped at
W), normalized as PaddleOCR's RecResizeImg does ((pixel / 255 - 0.5) / 0.5, BGR order is moot for
grey text) and padded with zeros on the right to W; and OUT_DIR/lines.json, the texts in order.

Texts: words from a fixed English list, numbers, dates and prices, 12-28 characters, seeded, so a
different --seed gives disjoint material for calibration and testing. Needs python3-pil and
python3-numpy.
"""

import argparse
import json
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIR = "/usr/share/fonts/truetype/dejavu"
FONTS = ["DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf", "DejaVuSans-Bold.ttf",
         "DejaVuSerif-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSansCondensed.ttf"]
WORDS = ("the quick brown fox jumps over lazy dog invoice total amount paid due date order number "
         "street avenue city station platform train departs arrives minutes hours open closed "
         "monday tuesday friday sunday coffee bread milk apples price sale discount free entry "
         "exit north south east west floor room building page chapter section figure table "
         "model layer weight error ratio rank matrix vector tensor graph node input output "
         "Paris London Berlin Tokyo Madrid Oslo Kyoto Lima Cairo Delhi").split()
HEIGHT = 48


def random_text(rng):
    target = int(rng.integers(12, 29))
    parts = []
    while len(" ".join(parts)) < target:
        kind = rng.random()
        if kind < 0.65:
            w = WORDS[rng.integers(len(WORDS))]
            parts.append(w.capitalize() if rng.random() < 0.2 else w)
        elif kind < 0.8:
            parts.append(str(int(rng.integers(0, 100000))))
        elif kind < 0.9:
            parts.append(f"{int(rng.integers(1, 29)):02d}/{int(rng.integers(1, 13)):02d}/"
                         f"{int(rng.integers(1990, 2030))}")
        else:
            parts.append(f"${int(rng.integers(1, 1000))}.{int(rng.integers(0, 100)):02d}")
    return " ".join(parts)[:28].strip()


def render(text, font_file, size):
    font = ImageFont.truetype(os.path.join(FONT_DIR, font_file), size)
    left, top, right, bottom = font.getbbox(text)
    margin = size // 5
    img = Image.new("L", (right - left + 2 * margin, bottom - top + 2 * margin), 255)
    ImageDraw.Draw(img).text((margin - left, margin - top), text, font=font, fill=0)
    return img


def preprocess(img, width):
    w = min(width, int(np.ceil(HEIGHT * img.width / img.height)))
    resized = np.asarray(img.resize((w, HEIGHT), Image.BILINEAR), dtype=np.float32)
    norm = (resized / 255.0 - 0.5) / 0.5
    out = np.zeros((3, HEIGHT, width), dtype=np.float32)
    out[:, :, :w] = norm[None, :, :]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--width", type=int, default=640)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    os.makedirs(args.out_dir, exist_ok=True)
    texts, images = [], []
    for _ in range(args.lines):
        text = random_text(rng)
        font = FONTS[rng.integers(len(FONTS))]
        images.append(preprocess(render(text, font, int(rng.integers(26, 41))), args.width))
        texts.append(text)
    np.save(os.path.join(args.out_dir, "lines.npy"), np.stack(images))
    with open(os.path.join(args.out_dir, "lines.json"), "w") as f:
        json.dump(texts, f, indent=0, ensure_ascii=False)
    print(f"ocr_accuracy.py: {len(texts)} lines [3, {HEIGHT}, {args.width}] in {args.out_dir}")


if __name__ == "__main__":
    main()
