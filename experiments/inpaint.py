#!/usr/bin/env python
"""Inpainting: fit an INR to the known pixels of an image only, and score what it predicts on the hidden ones
against scikit-image's biharmonic inpainting and nearest-neighbour fill.

Masks: a random one hiding 50% of the pixels (seeded), a box hiding the centre (1/4 of each side), and, with
--mask FILE, a mask image of the training size (white = hidden, black = known).

    python experiments/inpaint.py                                   # astronaut, 128x128, random + box masks
    python experiments/inpaint.py --images photos/ --mask holes.png --size 256

Writes into --out (default runs/<time>-inpaint): results.csv and results.md (per image and mask: PSNR on the
hidden pixels, SSIM over the hidden pixels' bounding box, for the INR and the baselines), figure.png (per row:
original | mask | INR | biharmonic | nearest), inr_<image>_<mask>.png and configs.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from inr_utils.applications.restoration import box_mask, image_inputs, inpaint, load_mask, random_mask
from inr_utils.cli import OneLineArgumentParser, add_run_flags, announce, run_cases, run_cli
from inr_utils.errors import InputError
from inr_utils.images import save_image
from inr_utils.plots import save_figure, show
from inr_utils.reports import make_run_dir, settings_markdown, write_configs, write_results
from inr_utils.studies import experiment_config
from inr_utils.tables import to_markdown
from model_components.presets import MODEL_PRESETS

EXPERIMENT = "inpaint"
COLUMNS = ("image", "mask", "hidden_fraction", "psnr_inr", "psnr_biharmonic", "psnr_nearest", "ssim_inr",
           "ssim_biharmonic", "ssim_nearest", "train_psnr", "wall_s")


def build_parser() -> OneLineArgumentParser:
    p = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("experiment")
    g.add_argument("--images", nargs="+", default=["astronaut"], metavar="IMAGE",
                   help="images: PNG/JPEG paths, folders of them or scikit-image names (default: astronaut)")
    g.add_argument("--masks", nargs="*", default=["random", "box"], choices=["random", "box"],
                   help="built-in masks: random (--hidden-fraction of the pixels) and box (the centre) "
                        "(default: random box)")
    g.add_argument("--mask", help="a mask image of the training size, white = hidden, black = known (default: none)")
    g.add_argument("--hidden-fraction", type=float, default=0.5,
                   help="fraction of pixels the random mask hides (default: 0.5)")
    g.add_argument("--model", default="ffn", choices=sorted(MODEL_PRESETS),
                   help="model preset, with its recommended training (default: ffn, 128 Fourier features)")
    g.add_argument("--width", type=int, default=128, help="hidden width (default: 128)")
    g.add_argument("--depth", type=int, default=2, help="hidden layers after the first (default: 2)")
    g.add_argument("--fourier-scale", type=float, default=6.0,
                   help="sigma of the ffn preset's Fourier features (default: 3, a low bandwidth that interpolates)")
    add_run_flags(p, EXPERIMENT, steps=500, size=128)
    return p


def figure(path: Path, cases: list[dict]) -> None:
    """One row per image and mask: original | mask | INR | biharmonic | nearest."""
    fig, axes = plt.subplots(len(cases), 5, figsize=(11, 2.4 * len(cases) + 0.3), squeeze=False)
    for row, case in zip(axes, cases, strict=True):
        r, known = case["result"], case["result"].known
        show(row[0], case["image"], f"{case['label']}")
        show(row[1], np.where(known[..., None], case["image"], 0.0), f"{case['mask']} mask\n(black = hidden)")
        for ax, name in zip(row[2:], ("inr", "biharmonic", "nearest"), strict=True):
            shown = r.inr if name == "inr" else r.fills[name]
            s = r.scores[name]
            show(ax, shown, f"{'INR' if name == 'inr' else name}\n{s['psnr_hidden']:.2f} dB hidden")
    fig.tight_layout()
    save_figure(fig, path)


def main() -> int:
    args = build_parser().parse_args()
    images = image_inputs(args.images, args.size)
    mask_file = None
    if args.mask is not None:
        shapes = {image.shape[:2] for _, image in images}
        mask_file = {shape: load_mask(args.mask, shape) for shape in shapes}
    if not args.masks and mask_file is None:
        raise InputError("no mask to inpaint with; give --masks random box and/or --mask FILE")
    ffn = {"fourier_scale": args.fourier_scale, "fourier_features": 128} if args.model == "ffn" else {}
    config = experiment_config(args.model, args.steps, args.size, args.batch_size, args.seed, width=args.width,
                               depth=args.depth, **ffn)
    jobs = []
    for label, image in images:
        for name in args.masks:
            known = random_mask(image.shape[:2], args.hidden_fraction, args.seed) if name == "random" else \
                box_mask(image.shape[:2])
            jobs.append((label, image, name, known))
        if mask_file is not None:
            jobs.append((label, image, Path(args.mask).name, mask_file[image.shape[:2]]))
    out = make_run_dir(args.out, EXPERIMENT)
    announce(f"writing to {out}")
    write_configs(out, EXPERIMENT, args, [{"image": label, "mask": name, "config": config.to_dict()}
                                          for label, _, name, _ in jobs])
    settings = {"model": args.model, "width": args.width, "depth": args.depth,
                "steps": args.steps, "batch size": args.batch_size,
                "size": args.size, "seed": args.seed}
    rows, cases = [], []

    def run_one(job: tuple[str, np.ndarray, str, np.ndarray]) -> None:
        label, image, name, known = job
        result = inpaint(image, known, config)
        s = result.scores
        rows.append({"image": label, "mask": name, "hidden_fraction": round(float((~known).mean()), 4),
                     **{f"psnr_{m}": s[m]["psnr_hidden"] for m in s}, **{f"ssim_{m}": s[m]["ssim_box"] for m in s},
                     "train_psnr": round(result.train_psnr, 3), "wall_s": round(result.wall_s, 1)})
        cases.append({"label": label, "image": image, "mask": name, "result": result})
        save_image(out / f"inr_{label}_{Path(name).stem}.png", result.inr)
        write_results(out, rows, COLUMNS, markdown(rows, settings))

    def finish() -> str:
        figure(out / "figure.png", cases)
        return markdown(rows, settings)

    return run_cases(jobs, out, EXPERIMENT, args.no_progress, lambda job: f"{job[0]}, {job[2]}", run_one, finish)


def markdown(rows: list[dict], settings: dict) -> str:
    table = to_markdown(rows, COLUMNS[:-2] + ("train_psnr",), formats={c: "{:.2f}" for c in COLUMNS if "psnr" in c},
                        headers={"psnr_inr": "INR dB", "psnr_biharmonic": "biharmonic dB",
                                 "psnr_nearest": "nearest dB", "ssim_inr": "INR SSIM",
                                 "ssim_biharmonic": "biharmonic SSIM", "ssim_nearest": "nearest SSIM",
                                 "train_psnr": "INR dB on known", "hidden_fraction": "hidden"})
    return (f"# Inpainting: PSNR on the hidden pixels\n\n{table}\n{settings_markdown(settings)}\nPSNR in dB over the "
            "hidden pixels only; SSIM of the image with its known pixels restored, over the bounding box of the "
            "hidden ones.\n")


if __name__ == "__main__":
    run_cli(main)
