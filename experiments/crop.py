#!/usr/bin/env python
"""Crop a fitted Local-Global INR without retraining: remove partitions (and their local weights), decode the kept
region, and write it with the parameter counts before and after and the PSNR of the kept region.

    python experiments/crop.py runs/x --crop-partitions 0,1,2 --out runs/x-crop
    python experiments/crop.py runs/video --crop-along 1:0,7 --crop-along 2:0,7     # the border of every frame
    python experiments/crop.py runs/audio --crop-along 0:24,25,26,27,28,29,30,31     # the last quarter

RUN is a run folder of experiments/fit_signal.py with --mode lg or lc. Partitions are numbered row-major over the
grid (printed by fit_signal.py and stored in RUN/config.json), axes in the signal's order: (T, H, W) for video,
(H, W) for images, (N,) for audio. The output is a run folder of its own (cropped.png/.wav/.mp4, metrics.json,
config.json, signal.json, checkpoints/), so the cropped model can be cropped again.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from inr_utils.cli import OneLineArgumentParser, run_cli
from inr_utils.signal_crops import axis_values, crop_run


def int_list(text: str) -> list[int]:
    """``0,3,5`` -> [0, 3, 5]."""
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated partition indices such as 0,3,5, got {text!r}"
                                         ) from None


def along_arg(text: str) -> tuple[int, list[int]]:
    try:
        return axis_values(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def main() -> int:
    p = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", metavar="RUN", help="run folder of fit_signal.py (--mode lg or lc), or its checkpoints/")
    p.add_argument("--crop-partitions", type=int_list, action="append", default=[], metavar="I,J,...",
                   help="flat indices of partitions to remove, repeatable (default: none)")
    p.add_argument("--crop-along", type=along_arg, action="append", default=[], metavar="AXIS:I,J,...",
                   help="remove every partition whose index along sample AXIS is one of I,J,..., repeatable, e.g. "
                   "--crop-along 1:0,7 --crop-along 2:0,7 for the spatial border of a 5x8x8 video grid (default: none)")
    p.add_argument("--input", help="the fitted signal's file if it moved since the fit (default: the path in "
                   "RUN/signal.json)")
    p.add_argument("--video-format", choices=["mp4", "gif"], default="mp4",
                   help="file format of a cropped video (default: mp4)")
    p.add_argument("--out", help="output folder, must be new or empty (default: RUN-cropped)")
    args = p.parse_args()
    along: dict[int, list[int]] = {}
    for axis, values in args.crop_along:
        along.setdefault(axis, []).extend(values)
    partitions = [i for group in args.crop_partitions for i in group]

    def announce(folder: Path) -> None:
        print(f"writing to {folder}", file=sys.stderr, flush=True)

    metrics = crop_run(args.run, args.out, partitions, along, args.input, args.video_format, announce)
    m = metrics
    print(f"{m['partitions_before']} -> {m['partitions_after']} partitions, {m['params_before']:,} -> "
          f"{m['params_after']:,} parameters ({100 * m['params_removed_fraction']:.1f}% removed); kept region PSNR "
          f"{m['psnr_kept']:.2f} dB (uncropped {m['psnr_kept_uncropped']:.2f} dB)", file=sys.stderr)
    print(json.dumps(metrics))
    return 0


if __name__ == "__main__":
    run_cli(main)
