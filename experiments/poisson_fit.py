#!/usr/bin/env python
"""Fit an image from its gradients only and from its Laplacian only (SIREN's Poisson experiments, Sitzmann et al.
2020, Sec. 4.1): a SIREN whose autodiff gradient / Laplacian with respect to its coordinates matches the image's
Sobel gradient / 5-point Laplacian; the image is recovered up to the lost constant (mean matched) or constant and
scale (mean and scale matched) and scored by PSNR.

    python experiments/poisson_fit.py                        # camera, 64 px, gradient and Laplacian
    python experiments/poisson_fit.py --image my.png --size 128 --steps 1000
    python experiments/poisson_fit.py --images photos/ --modes gradient

Writes results.csv, results.md, figure.png, configs.json and the recovered images as PNG into --out.
"""

from __future__ import annotations

import argparse

import numpy as np

from inr_utils.applications.objectives import image_specs, load_gray
from inr_utils.applications.poisson import MODES, fit_poisson, poisson_config, poisson_figure
from inr_utils.cli import OneLineArgumentParser, announce, positive_int, run_cases, run_cli
from inr_utils.errors import InputError
from inr_utils.images import save_image
from inr_utils.reports import make_run_dir, settings_markdown, write_configs, write_results
from inr_utils.tables import to_markdown

COLUMNS = ["image", "supervision", "matched", "psnr", "final_loss", "wall_s"]


def modes_arg(text: str) -> list[str]:
    """``gradient,laplacian`` -> the list, each checked."""
    values = [part.strip() for part in text.split(",") if part.strip()]
    bad = [v for v in values if v not in MODES]
    if not values or bad:
        raise argparse.ArgumentTypeError(f"expected some of {', '.join(MODES)}, got {text!r}")
    return values


def parse_args() -> argparse.Namespace:
    p = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", help="image: a file or a scikit-image name, made gray and square (default: camera)")
    p.add_argument("--images", metavar="DIR", help="every image file of this folder instead (default: none)")
    p.add_argument("--size", type=positive_int, default=64, help="image side in pixels (default: 64)")
    p.add_argument("--modes", type=modes_arg, default=list(MODES),
                   help="supervisions, comma-separated: gradient, laplacian (default: both)")
    p.add_argument("--steps", type=positive_int, default=400, help="training steps per fit (default: 400)")
    p.add_argument("--width", type=positive_int, default=64, help="SIREN hidden width (default: 64)")
    p.add_argument("--omega0", type=float, default=30.0, help="SIREN frequency factor of every layer (default: 30)")
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (default: 1e-4)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--out", help="output folder, must be new or empty (default: runs/<time>-poisson_fit)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar (default: shown)")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    if args.size < 8:
        raise InputError(f"--size must be at least 8 pixels, got {args.size}")
    if not args.lr > 0 or not args.omega0 > 0:
        raise InputError(f"--lr and --omega0 must be positive, got {args.lr} and {args.omega0}")
    images = [load_gray(spec, args.size) for spec in image_specs(args.image, args.images, "camera")]
    config = poisson_config(steps=args.steps, width=args.width, lr=args.lr, seed=args.seed, omega0=args.omega0)
    out = make_run_dir(args.out, "poisson_fit")
    announce(f"writing to {out}")
    settings = {"size": args.size, "steps": args.steps, "model": f"SIREN width {args.width}, omega0 {args.omega0:g}",
                "lr": args.lr, "seed": args.seed}
    rows, figure_rows, runs = [], [], []

    def run_one(case: tuple[str, np.ndarray, str]) -> None:
        label, image, mode = case
        result = fit_poisson(image, mode, config)
        rows.append({"image": label, "supervision": mode,
                     "matched": "mean" if mode == "gradient" else "mean + scale", "psnr": result.psnr,
                     "final_loss": float(result.fit.history.loss[-1, 0]), "wall_s": round(result.fit.wall_s, 1)})
        save_image(out / f"{label}_{mode}_recovered.png", result.recovered.clip(0, 1)[..., None])
        figure_rows.append((f"{label} ({mode})", result))
        runs.append({"image": label, "mode": mode, "config": config.to_dict()})
        write_results(out, rows, COLUMNS, markdown(rows, settings))
        write_configs(out, "poisson_fit", args, runs)

    def finish() -> str:
        poisson_figure(out / "figure.png", figure_rows)
        return markdown(rows, settings) + f"\nresults: {out / 'results.md'}\nfigure: {out / 'figure.png'}\n"

    cases = [(label, image, mode) for label, image in images for mode in args.modes]
    return run_cases(cases, out, "poisson_fit", args.no_progress, lambda c: f"{c[0]}, {c[2]}", run_one, finish)


def markdown(rows: list[dict], settings: dict) -> str:
    return ("# Fitting an image from its gradients or its Laplacian\n\n" + settings_markdown(settings) + "\n"
            + to_markdown(rows, COLUMNS, {"psnr": "{:.2f}", "final_loss": "{:.2e}", "wall_s": "{:.1f}"}) + "\n")


if __name__ == "__main__":
    run_cli(main)
