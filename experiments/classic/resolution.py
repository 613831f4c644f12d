#!/usr/bin/env python
"""Resolution: an INR is a continuous function, so it renders at any size. Train once at 256x256 (the ffn
preset with the default FitConfig), render at 128, 256, 512 and 1024, and compare with resizing the 256 image
bicubically.

    python experiments/classic/resolution.py                         # astronaut, train 256, render 128..1024
    python experiments/classic/resolution.py --size 32 --steps 20    # renders at 16, 32, 64 and 128

Reference images: below the training size (downsampling) the ground truth is the training image
area-downsampled (box filter); at the training size it is the training image; above it, the source image
area-resized when the source has that many pixels (scikit-image's astronaut is 512x512: exact at 512), and
otherwise there is none: the table then reports the PSNR of the INR render against the bicubic upsampling of
the training image, for reference only (it measures agreement, not quality). The INR samples one point per
pixel, so its downsampled renders alias where the area-averaged ground truth does not.

Writes into --out (default runs/<time>-resolution): results.csv and results.md (sizes, render seconds
including compilation, PSNRs), figure.png (the same zoomed crop of every render next to the bicubic
baseline and the reference), render_<W>x<H>.png and bicubic_<W>x<H>.png, and configs.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib.patches as patches
import matplotlib.pyplot as plt
import numpy as np

from inr_utils.cli import OneLineArgumentParser, add_run_flags, announce, interrupted, progress_bar, run_cli
from inr_utils.config import FitConfig
from inr_utils.errors import InputError
from inr_utils.images import crop_fraction, fit_size, load_source, resize, save_image
from inr_utils.metrics import psnr
from inr_utils.plots import save_figure, show
from inr_utils.reports import make_run_dir, settings_markdown, write_configs, write_results
from inr_utils.studies import experiment_config, fit_and_score
from inr_utils.tables import to_markdown
from inr_utils.training import TrainingInterrupted
from model_components.presets import MODEL_PRESETS

EXPERIMENT = "resolution"
COLUMNS = ("scale", "width", "height", "role", "render_s", "reference", "psnr_inr", "psnr_bicubic",
           "psnr_inr_vs_bicubic")
DEFAULT_CROP = (0.375, 0.625, 0.375, 0.625)


def build_parser() -> OneLineArgumentParser:
    p = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("experiment")
    g.add_argument("--image", default="astronaut",
                   help="image to fit: a PNG/JPEG path or a scikit-image test image name (default: astronaut)")
    g.add_argument("--model", default="ffn", choices=sorted(MODEL_PRESETS),
                   help="model preset, trained with its recommended settings (default: ffn)")
    g.add_argument("--scales", nargs="+", type=float, default=[0.5, 1.0, 2.0, 4.0], metavar="SCALE",
                   help="render sizes as multiples of the training size (default: 0.5 1 2 4)")
    g.add_argument("--crop", nargs=4, type=float, default=list(DEFAULT_CROP), metavar=("X0", "X1", "Y0", "Y1"),
                   help="zoomed region of the figure, as fractions of width and height "
                        f"(default: {' '.join(map(str, DEFAULT_CROP))}, the centre)")
    add_run_flags(p, EXPERIMENT, steps=FitConfig.steps)
    return p


def reference_image(scale: float, train: np.ndarray, source: np.ndarray, height: int, width: int,
                    ) -> tuple[np.ndarray | None, str]:
    """The ground truth at ``height x width`` and its description (see the module docstring)."""
    if (height, width) == train.shape[:2]:
        return train, "training image"
    if scale < 1:
        return np.clip(resize(train, height, width, "area"), 0, 1), "training image area-downsampled"
    sh, sw = source.shape[:2]
    if sh >= height and sw >= width:
        if (sh, sw) == (height, width):
            return source, f"source image {sw}x{sh}"
        return np.clip(resize(source, height, width, "area"), 0, 1), f"source {sw}x{sh} area-downsampled"
    return None, "none"


def check_args(args: argparse.Namespace) -> None:
    """One-line errors for bad --scales / --crop."""
    if any(not s > 0 for s in args.scales):
        raise InputError(f"--scales must be positive, got {' '.join(map(str, args.scales))}")
    x0, x1, y0, y1 = args.crop
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise InputError(f"--crop X0 X1 Y0 Y1 needs 0 <= X0 < X1 <= 1 and 0 <= Y0 < Y1 <= 1, got {args.crop}")


def make_figure(path: Path, train: np.ndarray, renders: list[dict], crop: list[float], title: str) -> None:
    """First column: the training image with the crop box; then per render size the crop of the INR render,
    of the bicubic resize and of the reference (when there is one)."""
    cols = len(renders) + 1
    fig, axes = plt.subplots(3, cols, figsize=(2.6 * cols, 8.2), squeeze=False)
    show(axes[0, 0], train, f"training image {train.shape[1]}x{train.shape[0]}")
    h, w = train.shape[:2]
    x0, x1, y0, y1 = crop
    axes[0, 0].add_patch(patches.Rectangle((x0 * w - 0.5, y0 * h - 0.5), (x1 - x0) * w, (y1 - y0) * h,
                                           fill=False, edgecolor="yellow", linewidth=1.5))
    axes[1, 0].axis("off")
    axes[2, 0].axis("off")
    for c, item in enumerate(renders, start=1):
        size = f"{item['width']}x{item['height']}"
        inr = f"\n{item['psnr_inr']:.2f} dB" if item["psnr_inr"] is not None else \
            f"\nvs bicubic {item['psnr_inr_vs_bicubic']:.2f} dB"
        show(axes[0, c], crop_fraction(item["render"], crop), f"INR render {size}{inr}")
        bicubic = f"\n{item['psnr_bicubic']:.2f} dB" if item["psnr_bicubic"] is not None else ""
        show(axes[1, c], crop_fraction(item["bicubic"], crop), f"bicubic {size} (from {w}x{h}){bicubic}")
        if item["reference_image"] is not None:
            show(axes[2, c], crop_fraction(item["reference_image"], crop), f"reference:\n{item['reference']}")
        else:
            axes[2, c].axis("off")
            axes[2, c].text(0.5, 0.5, "no ground truth\nat this size", ha="center", va="center", fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def markdown(rows: list[dict], settings: dict) -> str:
    """results.md: the table and the settings."""
    table = to_markdown(rows, ("width", "height", "role", "render_s", "reference", "psnr_inr", "psnr_bicubic",
                                  "psnr_inr_vs_bicubic"),
                           formats={"render_s": "{:.2f}", "psnr_inr": "{:.2f}", "psnr_bicubic": "{:.2f}",
                                    "psnr_inr_vs_bicubic": "{:.2f}"},
                           headers={"render_s": "render s (incl. compile)", "psnr_inr": "INR PSNR vs reference",
                                    "psnr_bicubic": "bicubic PSNR vs reference",
                                    "psnr_inr_vs_bicubic": "INR PSNR vs bicubic"})
    return (f"# Resolution: one INR rendered at several sizes\n\n{table}\n{settings_markdown(settings)}"
            "\nPSNRs in dB. 'bicubic' resizes the training image; where there is no reference, 'INR PSNR vs "
            "bicubic' is the only comparison (agreement, not quality).\n")


def main() -> int:
    args = build_parser().parse_args()
    check_args(args)
    label, source = load_source(args.image)
    train = fit_size(source, args.size)
    h, w = train.shape[:2]
    image_file = args.image if Path(args.image).is_file() else None
    config = experiment_config(args.model, args.steps, args.size, args.batch_size, args.seed, image_file)
    sizes = [(s, max(1, round(h * s)), max(1, round(w * s))) for s in dict.fromkeys(args.scales)]
    out = make_run_dir(args.out, EXPERIMENT)
    announce(f"writing to {out}")
    write_configs(out, EXPERIMENT, args, [{"image": args.image, "config": config.to_dict()}])
    settings = {"model": args.model, "image": f"{label} trained at {w}x{h} (source {source.shape[1]}x"
                f"{source.shape[0]})", "steps": args.steps, "batch size": args.batch_size, "seed": args.seed}
    bar = progress_bar(1 + len(sizes), EXPERIMENT, args.no_progress)
    bar.set_postfix_str(f"fitting {w}x{h}")
    try:
        fitted = fit_and_score(train, config)
    except TrainingInterrupted:
        bar.close()
        return interrupted(out)
    bar.update()
    settings.update({"params": f"{fitted.params:,}", "training PSNR": f"{fitted.psnr:.2f} dB"})
    announce(f"{args.model}: {fitted.params:,} params, {fitted.psnr:.2f} dB at {w}x{h}")
    rows, renders = [], []
    for scale, rh, rw in sizes:
        bar.set_postfix_str(f"rendering {rw}x{rh}")
        t0 = time.perf_counter()
        rendered = np.clip(fitted.render(rh, rw), 0, 1)
        render_s = time.perf_counter() - t0
        bicubic = train if (rh, rw) == (h, w) else np.clip(resize(train, rh, rw, "bicubic"), 0, 1)
        reference, kind = reference_image(scale, train, source, rh, rw)
        role = "downsample" if scale < 1 else "training size" if (rh, rw) == (h, w) else "upsample"
        row = {"scale": scale, "width": rw, "height": rh, "role": role, "render_s": round(render_s, 3),
               "reference": kind,
               "psnr_inr": None if reference is None else round(float(psnr(rendered, reference)), 3),
               "psnr_bicubic": None if reference is None or role == "training size"
               else round(float(psnr(bicubic, reference)), 3),
               "psnr_inr_vs_bicubic": round(float(psnr(rendered, bicubic)), 3)}
        rows.append(row)
        renders.append({**row, "render": rendered, "bicubic": bicubic, "reference_image": reference})
        save_image(out / f"render_{rw}x{rh}.png", rendered)
        save_image(out / f"bicubic_{rw}x{rh}.png", bicubic)
        write_results(out, rows, COLUMNS, markdown(rows, settings))
        bar.update()
    bar.close()
    make_figure(out / "figure.png", train, renders, args.crop,
                f"{args.model} trained on {label} {w}x{h} ({fitted.psnr:.2f} dB), rendered at other sizes")
    announce(f"results in {out}")
    print(markdown(rows, settings), end="")
    return 0


if __name__ == "__main__":
    run_cli(main)
