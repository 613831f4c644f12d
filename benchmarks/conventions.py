#!/usr/bin/env python
"""Conventions against the reference code (README "Conventions"): the effect of each convention on PSNR.

Every variant is one preset with one convention switched, fitted with the preset's training settings (its
learning rate, batches of 4096 random pixels, cosine decay) for --steps steps to shoot-out images at --size
pixels (area-downsampled from the image at 2 x --size), then scored twice:

* ``psnr_train``: the render at the training pixels against the training image;
* ``psnr_2x``: the render at 2 x --size (pixel centres between the training ones) against the image at
  2 x --size (scikit-image's photo resized with bicubic), i.e. how the fit behaves off the training grid.

The sizes are scaled down from the shoot-out's 256 pixels for a shared CPU; where a convention depends on
the resolution the variants are the 128-pixel equivalents of the 256-pixel defaults (e.g. L = 9 octaves at
128 pixels put the same octaves on the grid as L = 10 at 256). Items:

  1 nerf_pi / nerf: NeRF PE with 2^k pi (the paper's Eq. 4) or 2^k (the NeRF code), L = 9 and 14;
  2 ffn sigma: 10 and 20 in the paper's unit (cycles per image side);
  4 finer first-layer bias: U(-1, 1) or PyTorch's U(-1/sqrt(2), 1/sqrt(2));
  5 wire (omega0, s0): the preset's (10, 10), the layer default (20, 10), WIRE's image setting (20, 30);
    wire_real: one linear map or the reference's two;
  6 hashgrid: position x N_l or tiny-cuda-nn's x (N_l - 1) + 0.5, N_max = 2 x --size and = --size;
  7 siren and finer: targets in [0, 1] with a +0.5 offset, or in [-1, 1] (SIREN's and FINER's code).

    python benchmarks/conventions.py                       # 2 images at 128 px, 300 steps (~30 min, 2 cores)
    python benchmarks/conventions.py --items 1 6 --steps 50 --size 32

Writes JSON (``runs/benchmarks/conventions.json``, or ``benchmarks/results/conventions.json`` with --record)
after every fit, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import common
import numpy as np

from inr_utils import FitConfig, fit, psnr, render
from inr_utils.images import resize, skimage_image
from inr_utils.presets import TRAINING_PRESETS
from model_components import model_config


def variants(size: int) -> list[dict[str, Any]]:
    """Every measured variant: item, label, preset, model overrides, target range."""
    out: list[dict[str, Any]] = []

    def add(item: int, label: str, preset: str, target: str = "01", **model: Any) -> None:
        out.append({"item": item, "label": label, "preset": preset, "model": model, "target": target})

    for octaves in (9, 14):
        for pi in (True, False):
            add(1, f"PE L={octaves} 2^k{' pi' if pi else ''}", "relu_pe",
                encoding_options={"num_frequencies": octaves, "pi": pi})
    for sigma in (10.0, 20.0):
        add(2, f"ffn sigma={sigma:g} (paper unit)", "ffn", encoding_options={"num_features": 256, "scale": sigma})
    add(4, "finer first bias U(-1, 1)", "finer", layer_options={"omega0": 30.0, "first_bias_scale": 1.0})
    add(4, "finer first bias PyTorch default", "finer", layer_options={"omega0": 30.0, "first_bias_scale": None})
    for omega0, s0 in ((10.0, 10.0), (20.0, 10.0), (20.0, 30.0)):
        add(5, f"wire omega0={omega0:g} s0={s0:g}", "wire", layer_options={"omega0": omega0, "s0": s0})
    for two in (False, True):
        add(5, f"wire_real {'two maps' if two else 'one map'}", "wire_real",
            layer_options={"omega0": 20.0, "s0": 10.0, "two_maps": two})
    for n_max in (2 * size, size):
        for offset in (False, True):
            add(6, f"hashgrid N_max={n_max} {'x(N-1)+0.5' if offset else 'x N'}", "hashgrid",
                encoding_options={"num_levels": 16, "features_per_level": 2, "log2_table_size": 15,
                                  "base_resolution": 16, "max_resolution": n_max, "half_cell_offset": offset})
    for preset in ("siren", "finer"):
        add(7, f"{preset} targets [0, 1] + 0.5", preset)
        add(7, f"{preset} targets [-1, 1]", preset, target="pm1", output_offset=0.0)
    return out


def run_variant(variant: dict[str, Any], image: np.ndarray, big: np.ndarray, steps: int) -> dict[str, Any]:
    """Fits one variant to ``image`` and scores it at the training pixels and at ``big``'s size."""
    training = dict(TRAINING_PRESETS.get(variant["preset"], {}))
    training.update(steps=steps, batch_size=4096)
    config = FitConfig(model=model_config(variant["preset"], **variant["model"]), **training)
    pm1 = variant["target"] == "pm1"
    target = 2.0 * image - 1.0 if pm1 else image
    start = time.perf_counter()
    result = fit(target, config, progress=False, eval_every=10**9)
    seconds = time.perf_counter() - start

    def to01(x: np.ndarray) -> np.ndarray:
        return np.clip((np.asarray(x) + 1.0) * 0.5 if pm1 else np.asarray(x), 0.0, 1.0)

    at_train = to01(render(result.model.apply, result.variables, *image.shape[:2]))
    at_2x = to01(render(result.model.apply, result.variables, *big.shape[:2]))
    return {"psnr_train": float(psnr(at_train, image)), "psnr_2x": float(psnr(at_2x, big)),
            "lr": config.lr, "seconds": round(seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = common.make_parser(__doc__)
    parser.add_argument("--size", type=int, default=128, help="training size in pixels (default: 128)")
    parser.add_argument("--steps", type=int, default=300, help="steps per fit (default: 300)")
    parser.add_argument("--images", nargs="+", default=["astronaut", "camera"], help="scikit-image names")
    parser.add_argument("--items", nargs="+", type=int, default=None, help="items to run (default: all)")
    common.add_json_arg(parser, "conventions")
    args = parser.parse_args(argv)
    todo = [v for v in variants(args.size) if args.items is None or v["item"] in args.items]
    rows: list[dict[str, Any]] = []
    for name in args.images:
        big = np.clip(skimage_image(name, 2 * args.size), 0.0, 1.0)
        image = np.clip(resize(big, args.size, args.size, "area"), 0.0, 1.0)
        for variant in todo:
            row = {"image": name, "item": variant["item"], "variant": variant["label"],
                   **run_variant(variant, image, big, args.steps)}
            rows.append(row)
            print(f"{name:10s} item {row['item']}  {row['variant']:40s} train {row['psnr_train']:6.2f} dB  "
                  f"2x {row['psnr_2x']:6.2f} dB  ({row['seconds']} s)", flush=True)
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"benchmark": "conventions", "size": args.size, "steps": args.steps,
                                             "images": args.images, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
