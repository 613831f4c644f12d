#!/usr/bin/env python
"""Weight interpolation: fit two INRs from the same initialisation (same config and seed, one fit_many call) to
two images, then render the straight line between their weights, (1 - t) theta_A + t theta_B, as an animated
GIF, next to the pixel cross-fade (1 - t) f_A + t f_B of the two fits.

    python experiments/interpolate_weights.py                              # astronaut -> coffee, 128x128
    python experiments/interpolate_weights.py --images a.png b.png --model siren
    python experiments/interpolate_weights.py --images photos/             # the folder's first two images

Writes into --out (default runs/<time>-interpolate_weights): weights.gif and crossfade.gif (there and back),
figure.png (both at a few t), results.csv and results.md (per t: PSNR of the weight frame to each fit and to
the cross-fade frame) and configs.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from inr_utils.applications.interpolation import interpolate_weights
from inr_utils.applications.restoration import image_inputs
from inr_utils.cli import OneLineArgumentParser, add_run_flags, announce, positive_int, run_cli
from inr_utils.errors import InputError
from inr_utils.images import save_image
from inr_utils.metrics import psnr
from inr_utils.plots import save_figure, show
from inr_utils.reports import make_run_dir, settings_markdown, write_configs, write_results
from inr_utils.studies import experiment_config
from inr_utils.tables import to_markdown
from inr_utils.video import save_video
from model_components.presets import MODEL_PRESETS

EXPERIMENT = "interpolate_weights"
COLUMNS = ("t", "psnr_to_fit_a", "psnr_to_fit_b", "psnr_to_crossfade")


def build_parser() -> OneLineArgumentParser:
    p = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("experiment")
    g.add_argument("--images", nargs="+", default=["astronaut", "coffee"], metavar="IMAGE",
                   help="two images (PNG/JPEG paths or scikit-image names), or a folder whose first two images "
                        "(by name) are used; both are resized to a --size square (default: astronaut coffee)")
    g.add_argument("--model", default="ffn", choices=sorted(MODEL_PRESETS),
                   help="model preset, trained with its recommended settings (default: ffn, 128 Fourier features)")
    g.add_argument("--width", type=int, default=128, help="hidden width (default: 128)")
    g.add_argument("--depth", type=int, default=2, help="hidden layers after the first (default: 2)")
    g.add_argument("--frames", type=positive_int, default=17, help="interpolation points t in [0, 1] (default: 17)")
    g.add_argument("--fps", type=float, default=8.0, help="frames per second of the GIFs (default: 8)")
    add_run_flags(p, EXPERIMENT, steps=500, size=128)
    return p


def square(image: np.ndarray, size: int) -> np.ndarray:
    from inr_utils.images import centre_square, fit_size

    return fit_size(centre_square(image), size)


def figure(path: Path, result, shown: list[int]) -> None:
    fig, axes = plt.subplots(2, len(shown), figsize=(2.3 * len(shown), 5.2), squeeze=False)
    for j, k in enumerate(shown):
        t = result.ts[k]
        show(axes[0, j], result.frames[k], f"t = {t:.2f}\n{result.psnr_to_crossfade[k]:.1f} dB to cross-fade")
        show(axes[1, j], result.crossfade[k], f"cross-fade t = {t:.2f}")
    axes[0, 0].set_ylabel("interpolated weights")
    axes[1, 0].set_ylabel("pixel cross-fade")
    fig.tight_layout()
    save_figure(fig, path)


def main() -> int:
    args = build_parser().parse_args()
    if args.frames < 2:
        raise InputError(f"--frames must be at least 2, got {args.frames}")
    if not args.fps > 0:
        raise InputError(f"--fps must be positive, got {args.fps}")
    images = image_inputs(args.images, args.size)
    if len(images) < 2:
        raise InputError(f"weight interpolation needs two images, got {len(images)}; pass two with --images")
    if len(images) > 2:
        announce(f"note: {len(images)} images given; interpolating between the first two "
                 f"({images[0][0]}, {images[1][0]})")
    (label_a, a), (label_b, b) = ((label, square(image, args.size)) for label, image in images[:2])
    if a.shape[-1] != b.shape[-1]:  # a grayscale and a colour image: both in colour
        a, b = (np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x for x in (a, b))
    ffn = {"fourier_features": 128} if args.model == "ffn" else {}
    config = experiment_config(args.model, args.steps, args.size, args.batch_size, args.seed, width=args.width,
                               depth=args.depth, **ffn)
    out = make_run_dir(args.out, EXPERIMENT)
    announce(f"writing to {out}")
    write_configs(out, EXPERIMENT, args, [{"image": label, "config": config.to_dict()} for label in (label_a,
                                                                                                      label_b)])
    r = interpolate_weights(a, b, config, args.frames, progress=not args.no_progress)
    there_and_back = list(range(args.frames)) + list(range(args.frames - 2, 0, -1))
    save_video(out / "weights.gif", r.frames[there_and_back], args.fps)
    save_video(out / "crossfade.gif", r.crossfade[there_and_back], args.fps)
    for i, label in enumerate((label_a, label_b)):
        save_image(out / f"fit_{label}.png", r.fits[i])
    rows = [{"t": round(float(t), 4), "psnr_to_fit_a": round(float(psnr(f, r.fits[0])), 3),
             "psnr_to_fit_b": round(float(psnr(f, r.fits[1])), 3), "psnr_to_crossfade": round(float(p), 3)}
            for t, f, p in zip(r.ts, r.frames, r.psnr_to_crossfade, strict=True)]
    settings = {"model": args.model, "width": args.width, "depth": args.depth,
                "steps": args.steps, "size": args.size, "seed": args.seed,
                "images": f"{label_a} (t = 0), {label_b} (t = 1)",
                "fit PSNR": f"{r.fit_psnr[0]:.2f} dB, {r.fit_psnr[1]:.2f} dB"}
    write_results(out, rows, COLUMNS, markdown(rows, settings))
    shown = sorted({round(x) for x in np.linspace(0, args.frames - 1, min(5, args.frames))})
    figure(out / "figure.png", r, shown)
    announce(f"results in {out}")
    print(markdown(rows, settings), end="")
    return 0


def markdown(rows: list[dict], settings: dict) -> str:
    table = to_markdown(rows, COLUMNS, formats={"t": "{:.3f}", **{c: "{:.2f}" for c in COLUMNS[1:]}},
                        headers={"psnr_to_fit_a": "dB to fit A", "psnr_to_fit_b": "dB to fit B",
                                 "psnr_to_crossfade": "dB to cross-fade"})
    return f"# Weight interpolation against pixel cross-fade\n\n{table}\n{settings_markdown(settings)}"


if __name__ == "__main__":
    run_cli(main)
