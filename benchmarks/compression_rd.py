#!/usr/bin/env python
"""INR compression (COIN-style SIRENs, quantised and entropy-coded) against JPEG: the rate-distortion curve.

Per image (scikit-image photos by default, or --images DIR), SIRENs sized for the --targets bpp (at 8 bits a
weight) are fitted with the engine (images of one size share a model axis), quantised at each --bits with
quantisation-aware fine-tuning (up to 10 bits), entropy-coded into ``.inrc`` files and decoded; bpp is from the
file's bytes. JPEG (Pillow, quality swept, optimised Huffman tables) is interpolated at the same bpp.

Targets (issue 13): above JPEG at <= 0.3 bpp, and above COIN's published Kodak curve (24.64 dB at 0.16 bpp,
26.41 dB at 0.31 bpp) at equal bpp -- COIN's points are of other images (Kodak 768x512), so that comparison is
indicative only.

    python benchmarks/compression_rd.py                                  # ~10 min on a 2-core CPU
    python benchmarks/compression_rd.py --images ../shared/data/div2k --max-size 512 --record
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from common import add_json_arg, environment, make_parser, positive_int, print_table, write_json

from inr_utils.applications.compression import CompressionSettings, jpeg_curve, rate_distortion
from inr_utils.applications.compression_report import (
    DEFAULT_IMAGES,
    architectures_for,
    load_images,
    rd_figure,
    summary,
)

NAME = "compression"  # the script is not called compression.py: that name would shadow the stdlib's package


def main() -> int:
    p = make_parser(__doc__)
    p.add_argument("--images", help="a folder of images (default: --image)")
    p.add_argument("--image", nargs="+", default=list(DEFAULT_IMAGES), help="scikit-image names or files")
    p.add_argument("--max-size", type=positive_int, default=256, help="longer side in pixels (default: 256)")
    p.add_argument("--targets", type=float, nargs="+", default=[0.15, 0.25, 0.4])
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--bits", type=int, nargs="+", default=[16, 8, 6])
    p.add_argument("--steps", type=positive_int, default=2000)
    p.add_argument("--qat-steps", type=int, default=100)
    p.add_argument("--figure", type=Path, help="also write the rate-distortion figure here (PNG)")
    add_json_arg(p, NAME)
    args = p.parse_args()
    settings = CompressionSettings(steps=args.steps, qat_steps=args.qat_steps)
    images = load_images(args.images, args.image, args.max_size)
    start = time.perf_counter()
    rows = []
    groups: dict[tuple, list[str]] = {}
    for label, image in images.items():
        archs = architectures_for(image.shape[0] * image.shape[1], image.shape[-1], args.targets, args.depth)
        groups.setdefault((image.shape, tuple(archs)), []).append(label)
    for (_, archs), labels in groups.items():
        rows += rate_distortion({k: images[k] for k in labels}, list(archs), args.bits, settings,
                                progress=sys.stderr.isatty())
    wall = time.perf_counter() - start
    curves = {label: jpeg_curve(image) for label, image in images.items()}
    print_table(["image", "arch", "bits", "coder", "bpp", "PSNR", "JPEG", "gain"],
                [[r["image"], r["arch"], r["bits"], r["coder"], r["bpp"], r["psnr"], r["jpeg_psnr"],
                  r["gain_vs_jpeg_db"]] for r in rows], title="SIREN files vs JPEG at the same bpp")
    best = summary(rows)
    print_table(["image", "arch", "bits", "bpp", "PSNR", "JPEG", "COIN (Kodak)"],
                [[b["image"], b.get("arch"), b.get("bits"), b["best_bpp"], b.get("psnr"), b.get("jpeg_psnr"),
                  b.get("coin_kodak_psnr")] for b in best], title="best file at <= 0.3 bpp")
    if args.figure:
        rd_figure(args.figure, rows, curves)
    write_json(args.json, {
        "benchmark": NAME, "environment": environment(),
        "settings": {"images": {k: list(v.shape) for k, v in images.items()}, "targets": args.targets,
                     "depth": args.depth, "bits": args.bits, **vars(settings)},
        "wall_s": wall, "rows": rows, "best_at_0.3_bpp": best,
        "jpeg": {k: v for k, v in curves.items()},
        "targets_met": {
            "above_jpeg_at_0.3_bpp": all(b.get("gain_vs_jpeg_db", float("nan")) > 0 for b in best),
            "above_coin_kodak_at_equal_bpp": [r["psnr"] > r["coin_kodak_psnr"] for r in rows
                                              if r["coin_kodak_psnr"] == r["coin_kodak_psnr"]]},
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
