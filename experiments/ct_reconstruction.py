#!/usr/bin/env python
"""CT reconstruction from a sparse-view sinogram: an INR fitted through a Radon transform written in JAX, against
filtered back-projection (FBP) and SART from the same views; PSNR / SSIM to the scanned image.

    python experiments/ct_reconstruction.py                          # Shepp-Logan phantom, 96 px, 30 views
    python experiments/ct_reconstruction.py --angles 20,40 --size 128 --steps 800
    python experiments/ct_reconstruction.py --image camera --noise 0.01
    python experiments/ct_reconstruction.py --images my_scans/       # every PNG/JPEG of a folder (gray)

Writes results.csv, results.md, figure.png, configs.json and each reconstruction as PNG into --out.
"""

from __future__ import annotations

import argparse

import numpy as np

from inr_utils.applications.objectives import image_specs, load_gray
from inr_utils.applications.tomography import FORWARD_MODELS, ct_config, ct_figure, reconstruct_ct, shepp_logan
from inr_utils.cli import OneLineArgumentParser, announce, positive_int, run_cases, run_cli
from inr_utils.errors import InputError
from inr_utils.images import save_image
from inr_utils.reports import make_run_dir, settings_markdown, write_configs, write_results
from inr_utils.tables import to_markdown

PHANTOM = "shepp_logan"
COLUMNS = ["image", "views", "method", "psnr", "ssim", "wall_s"]


def angle_counts(text: str) -> list[int]:
    """``20,40`` -> [20, 40] (whole numbers of views, at least 2)."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole numbers such as 20,40, got {text!r}") from None
    if not values or min(values) < 2:
        raise argparse.ArgumentTypeError(f"each view count must be at least 2, got {text!r}")
    return values


def parse_args() -> argparse.Namespace:
    p = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", help=f"image to scan: a file or a scikit-image name, made gray and square (default: "
                                   f"{PHANTOM}, the modified Shepp-Logan phantom)")
    p.add_argument("--images", metavar="DIR", help="scan every image file of this folder instead (default: none)")
    p.add_argument("--size", type=positive_int, default=96, help="image side in pixels (default: 96)")
    p.add_argument("--angles", type=angle_counts, default=[30],
                   help="number(s) of views over [0, 180) degrees, comma-separated (default: 30)")
    p.add_argument("--noise", type=float, default=0.0,
                   help="Gaussian sinogram noise, as a fraction of its maximum (default: 0)")
    p.add_argument("--forward", choices=FORWARD_MODELS, default="grid",
                   help="how the INR is projected while training: on the pixel grid then the Radon transform "
                        "(fast), or sampled along every ray (default: grid)")
    p.add_argument("--steps", type=positive_int, default=400, help="INR training steps (default: 400)")
    p.add_argument("--width", type=positive_int, default=128, help="INR hidden width (default: 128)")
    p.add_argument("--scale", type=float, default=4.0, help="Fourier-feature scale sigma (default: 4)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak Adam learning rate (default: 1e-3)")
    p.add_argument("--sart-iterations", type=positive_int, default=3, help="SART sweeps (default: 3)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the INR and the noise (default: 0)")
    p.add_argument("--out", help="output folder, must be new or empty (default: runs/<time>-ct_reconstruction)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar (default: shown)")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    if not 0.0 <= args.noise < 1.0:
        raise InputError(f"--noise must be in [0, 1) (a fraction of the sinogram's maximum), got {args.noise}")
    if args.size < 8:
        raise InputError(f"--size must be at least 8 pixels, got {args.size}")
    if not args.scale > 0 or not args.lr > 0:
        raise InputError("--scale and --lr must be positive")
    images = []
    for spec in image_specs(args.image, args.images, PHANTOM):
        images.append(("shepp_logan", shepp_logan(args.size)) if spec == PHANTOM else load_gray(spec, args.size))
    config = ct_config(steps=args.steps, width=args.width, scale=args.scale, lr=args.lr, seed=args.seed)
    out = make_run_dir(args.out, "ct_reconstruction")
    announce(f"writing to {out}")
    settings = {"size": args.size, "views": args.angles, "noise": args.noise, "forward": args.forward,
                "steps": args.steps, "inr": f"Fourier features (sigma {args.scale}) + ReLU MLP, width {args.width}",
                "seed": args.seed}
    rows, figure_rows, runs = [], [], []

    def run_one(case: tuple[str, np.ndarray, int]) -> None:
        label, image, views = case
        result = reconstruct_ct(image, views, config, args.forward, args.noise, args.seed, args.sart_iterations)
        for method, score in result.scores.items():
            rows.append({"image": label, "views": views, "method": method, **score,
                         "wall_s": round(result.fit.wall_s, 1) if method == "inr" else None})
            save_image(out / f"{label}_{views}views_{method}.png", result.recons[method][..., None])
        figure_rows.append((f"{label}, {views} views", result))
        runs.append({"image": label, "views": views, "config": config.to_dict()})
        write_results(out, rows, COLUMNS, markdown(rows, settings))
        write_configs(out, "ct_reconstruction", args, runs)

    def finish() -> str:
        ct_figure(out / "figure.png", figure_rows)
        return markdown(rows, settings) + f"\nresults: {out / 'results.md'}\nfigure: {out / 'figure.png'}\n"

    cases = [(label, image, views) for label, image in images for views in args.angles]
    return run_cases(cases, out, "ct_reconstruction", args.no_progress, lambda c: f"{c[0]}, {c[2]} views", run_one,
                     finish)


def markdown(rows: list[dict], settings: dict) -> str:
    return ("# CT reconstruction from a sparse-view sinogram\n\n" + settings_markdown(settings) + "\n"
            + to_markdown(rows, COLUMNS, {"psnr": "{:.2f}", "ssim": "{:.3f}", "wall_s": "{:.1f}"}) + "\n")


if __name__ == "__main__":
    run_cli(main)
