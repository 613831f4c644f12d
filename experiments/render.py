#!/usr/bin/env python
"""Render a saved INR at any resolution, or any rectangle of its domain, in bounded memory.

    python experiments/render.py runs/x --height 2048 --width 3072
    python experiments/render.py runs/x --height 1024 --width 1024 --region -0.25 0.25 -0.25 0.25 --out zoom.png

CHECKPOINT is a run folder written by fit_image.py (or its checkpoints/ folder). The region is given in the
[-1, 1] domain coordinates as X0 X1 Y0 Y1 (x grows to the right, y downwards; see inr_utils/grids.py).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from inr_utils.checkpoints import load_config, restore_params
from inr_utils.cli import OneLineArgumentParser, run_cli
from inr_utils.config import FitConfig
from inr_utils.errors import InputError
from inr_utils.grids import Region
from inr_utils.images import save_image
from inr_utils.rendering import render
from inr_utils.training import merge_variables
from model_components.inrs import build_model


def main() -> int:
    p = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="run folder (or its checkpoints/ folder) written by fit_image.py")
    p.add_argument("--height", type=int, default=1024, help="output rows (default: 1024)")
    p.add_argument("--width", type=int, default=1024, help="output columns (default: 1024)")
    p.add_argument("--region", type=float, nargs=4, metavar=("X0", "X1", "Y0", "Y1"), default=None,
                   help="rectangle of the [-1, 1] domain to render (default: the whole domain)")
    p.add_argument("--chunk-pixels", type=int, default=1 << 16,
                   help="pixels evaluated per compiled call; bounds memory (default: 65536)")
    p.add_argument("--out", help="output PNG (default: CHECKPOINT/render_<H>x<W>.png)")
    args = p.parse_args()

    if args.height <= 0 or args.width <= 0:
        raise InputError(f"--height and --width must be positive, got {args.height}x{args.width}")
    if args.chunk_pixels <= 0:
        raise InputError(f"--chunk-pixels must be positive, got {args.chunk_pixels}")
    region = Region(*args.region) if args.region else Region()
    if region.x0 == region.x1 or region.y0 == region.y1:
        raise InputError(f"--region must have non-zero width and height, got {tuple(region)}")
    run = Path(args.checkpoint)
    if not run.exists():
        raise InputError(f"checkpoint '{run}' does not exist; pass a run folder written by fit_image.py")
    ckpt_dir = run / "checkpoints" if (run / "checkpoints").is_dir() else run
    config = FitConfig.from_dict(load_config(ckpt_dir))
    model = build_model(config.model)
    # the newest intact checkpoint (a damaged one is named); only the model's variables are read, so a checkpoint
    # whose optimizer state has an older layout renders too
    params, constants, step = restore_params(ckpt_dir, with_step=True)
    out = Path(args.out) if args.out else (ckpt_dir.parent if ckpt_dir.name == "checkpoints" else ckpt_dir) / (
        f"render_{args.height}x{args.width}.png")
    if not out.parent.is_dir():
        raise InputError(f"output folder '{out.parent}' does not exist; create it or choose another --out")
    t0 = time.perf_counter()
    image = render(model.apply, merge_variables(params, constants), args.height, args.width, region,
                   args.chunk_pixels)
    seconds = time.perf_counter() - t0
    try:
        save_image(out, image)
    except OSError as err:
        raise InputError(f"cannot write '{out}' ({err.strerror}); choose a writable --out") from None
    print(json.dumps({"out": str(out), "height": args.height, "width": args.width, "region": list(region),
                      "step": step, "render_s": round(seconds, 2)}))
    return 0


if __name__ == "__main__":
    run_cli(main)
