#!/usr/bin/env python
"""Super-resolution: shrink an image 4x (area: the mean of each 4x4 block, or --downsample bicubic), fit INRs to
the small image (Fourier features at a few scales, one fit_many call), render them at the original size and
score them against the original, next to bicubic and nearest-neighbour upsampling (Pillow) of the small image.

    python experiments/super_resolve.py                              # astronaut 256 -> 64 -> 256
    python experiments/super_resolve.py --images photos/ --factor 2 --scales 5

Writes into --out (default runs/<time>-super_resolve): results.csv and results.md (per image and method: PSNR and
SSIM to the original; the INRs' PSNR to the small training image), figure.png (small | INR | bicubic | nearest |
original, whole and a zoomed centre), sr_<image>.png and configs.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from inr_utils.applications.restoration import downsample, image_inputs, super_resolve
from inr_utils.cli import OneLineArgumentParser, add_run_flags, announce, run_cases, run_cli
from inr_utils.images import crop_fraction, resize, save_image
from inr_utils.plots import save_figure, show
from inr_utils.reports import make_run_dir, settings_markdown, write_configs, write_results
from inr_utils.studies import experiment_config
from inr_utils.sweeps import sweep_grid
from inr_utils.tables import to_markdown

EXPERIMENT = "super_resolve"
COLUMNS = ("image", "method", "psnr", "ssim", "psnr_train", "wall_s")
CROP = (0.3, 0.7, 0.1, 0.5)


def build_parser() -> OneLineArgumentParser:
    p = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("experiment")
    g.add_argument("--images", nargs="+", default=["astronaut"], metavar="IMAGE",
                   help="images: PNG/JPEG paths, folders of them or scikit-image names (default: astronaut)")
    g.add_argument("--factor", type=int, default=4, help="downsampling factor (default: 4)")
    g.add_argument("--downsample", choices=["area", "bicubic"], default="area",
                   help="how the small image is made (default: area, the mean of each block)")
    g.add_argument("--scales", nargs="+", type=float, default=[5.0, 10.0, 20.0], metavar="SIGMA",
                   help="Fourier-feature scales of the ffn model (128 features), one fit each (default: 2.5 5 10)")
    g.add_argument("--width", type=int, default=128, help="hidden width (default: 128)")
    g.add_argument("--depth", type=int, default=2, help="hidden layers after the first (default: 2)")
    add_run_flags(p, EXPERIMENT, steps=500, size=256, batch_size=None)
    return p


def figure(path: Path, cases: list[dict], scales: list[float]) -> None:
    """Per image two rows: the whole images, then the same zoomed region."""
    fig, axes = plt.subplots(2 * len(cases), 5, figsize=(13, 5.4 * len(cases) + 0.3), squeeze=False)
    for c, case in enumerate(cases):
        r = case["result"]
        k = int(np.argmax([r.scores[f"inr_{i}"]["psnr"] for i in range(len(scales))]))
        h, w = r.reference.shape[:2]
        panels = [(resize(r.small, h, w, "nearest"), f"training image {r.small.shape[1]}x{r.small.shape[0]}"),
                  (r.renders[k], f"INR (scale {scales[k]:g})"), (r.baselines["bicubic"], "bicubic"),
                  (r.baselines["nearest"], "nearest"), (r.reference, f"original {w}x{h}")]
        scores = [None, r.scores[f"inr_{k}"], r.scores["bicubic"], r.scores["nearest"], None]
        for j, ((image, title), s) in enumerate(zip(panels, scores, strict=True)):
            text = title if s is None else f"{title}\n{s['psnr']:.2f} dB, SSIM {s['ssim']:.3f}"
            show(axes[2 * c, j], image, text)
            show(axes[2 * c + 1, j], crop_fraction(image, CROP), "zoom" if j else f"{case['label']}: zoom")
    fig.tight_layout()
    save_figure(fig, path)


def main() -> int:
    args = build_parser().parse_args()
    images = image_inputs(args.images, args.size)
    for _, image in images:  # bad factors are refused before the run folder is made
        downsample(image, args.factor, args.downsample)
    base = experiment_config("ffn", args.steps, args.size // args.factor, args.batch_size, args.seed,
                             width=args.width, depth=args.depth, fourier_features=128)
    configs, _ = sweep_grid(base, fourier_scale=args.scales)
    out = make_run_dir(args.out, EXPERIMENT)
    announce(f"writing to {out}")
    write_configs(out, EXPERIMENT, args, [{"image": label, "fourier_scale": s, "config": c.to_dict()}
                                          for label, _ in images for s, c in zip(args.scales, configs, strict=True)])
    settings = {"model": "ffn", "width": args.width, "depth": args.depth,
                "steps": args.steps, "size": args.size, "factor": args.factor,
                "downsampling": args.downsample, "upsampling baselines": "Pillow bicubic / nearest", "seed": args.seed}
    rows, cases = [], []

    def run_one(case: tuple[str, np.ndarray]) -> None:
        label, image = case
        r = super_resolve(image, configs, args.factor, args.downsample)
        for i, scale in enumerate(args.scales):
            rows.append({"image": label, "method": f"INR scale {scale:g}", **r.scores[f"inr_{i}"],
                         "psnr_train": round(float(r.train_psnr[i]), 3), "wall_s": round(r.wall_s, 1)})
        rows.extend({"image": label, "method": name, **r.scores[name]} for name in ("bicubic", "nearest"))
        best = int(np.argmax([r.scores[f"inr_{i}"]["psnr"] for i in range(len(args.scales))]))
        save_image(out / f"sr_{label}.png", r.renders[best])
        cases.append({"label": label, "result": r})
        write_results(out, rows, COLUMNS, markdown(rows, settings))

    def finish() -> str:
        figure(out / "figure.png", cases, args.scales)
        return markdown(rows, settings)

    return run_cases(images, out, EXPERIMENT, args.no_progress, lambda case: case[0], run_one, finish)


def markdown(rows: list[dict], settings: dict) -> str:
    table = to_markdown(rows, COLUMNS[:-1], formats={"psnr": "{:.2f}", "ssim": "{:.4f}", "psnr_train": "{:.2f}"},
                        headers={"psnr": "PSNR dB", "ssim": "SSIM", "psnr_train": "INR dB on the small image"})
    return (f"# Super-resolution: PSNR and SSIM to the original\n\n{table}\n{settings_markdown(settings)}")


if __name__ == "__main__":
    run_cli(main)
