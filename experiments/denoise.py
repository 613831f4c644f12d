#!/usr/bin/env python
"""Denoising: fit INRs to an image with Gaussian noise (sigma 0.1, seeded, not clipped: 20 dB) and follow their
PSNR to the clean image while they train. Early stopping: the PSNR rises above the noisy input's, peaks, then
falls as the INR fits the noise. Encoding bandwidth: the Fourier-feature scale sigma (Tancik et al. 2020) sets how
fast (and whether) it gets to the noise; all scales train together in one fit_many call.

    python experiments/denoise.py                                   # astronaut 128x128, scales 5 10 20 40
    python experiments/denoise.py --images photos/ --sigma 0.05 --scales 5 10

Writes into --out (default runs/<time>-denoise): results.csv and results.md (per image and scale: the noisy
input's PSNR, the final PSNR to the clean image, the best one and its step, SSIM), curves.csv (PSNR to clean at
every evaluation), figure.png (the curves, PSNR against the scale, clean | noisy | best early-stopped | final
renders), denoised_<image>.png and configs.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from inr_utils.applications.restoration import denoise, image_inputs
from inr_utils.cli import OneLineArgumentParser, add_run_flags, announce, run_cases, run_cli
from inr_utils.errors import InputError
from inr_utils.files import write_text
from inr_utils.images import save_image
from inr_utils.plots import save_figure, show
from inr_utils.reports import make_run_dir, settings_markdown, write_configs, write_results
from inr_utils.studies import experiment_config
from inr_utils.sweeps import sweep_grid
from inr_utils.tables import to_csv, to_markdown

EXPERIMENT = "denoise"
COLUMNS = ("image", "fourier_scale", "psnr_noisy", "psnr_final", "ssim_final", "psnr_best", "best_step", "ssim_best",
           "psnr_fit_to_noisy", "wall_s")


def build_parser() -> OneLineArgumentParser:
    p = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("experiment")
    g.add_argument("--images", nargs="+", default=["astronaut"], metavar="IMAGE",
                   help="images: PNG/JPEG paths, folders of them or scikit-image names (default: astronaut)")
    g.add_argument("--sigma", type=float, default=0.1, help="standard deviation of the Gaussian noise (default: 0.1)")
    g.add_argument("--scales", nargs="+", type=float, default=[5.0, 10.0, 20.0, 40.0], metavar="SIGMA",
                   help="Fourier-feature scales of the ffn model (128 features), one fit each (default: 5 10 20 40)")
    g.add_argument("--width", type=int, default=128, help="hidden width (default: 128)")
    g.add_argument("--depth", type=int, default=2, help="hidden layers after the first (default: 2)")
    g.add_argument("--eval-every", type=int, default=50,
                   help="steps between evaluations against the clean image (default: 50)")
    add_run_flags(p, EXPERIMENT, steps=600, size=128)
    return p


def figure(path: Path, cases: list[dict], scales: list[float]) -> None:
    """Per image: PSNR to clean vs step per scale (with the noisy input's), best and final PSNR vs scale, and
    the clean, noisy, best early-stopped and final images of the best scale."""
    fig, axes = plt.subplots(len(cases), 6, figsize=(17, 3.0 * len(cases) + 0.4), squeeze=False,
                             gridspec_kw={"width_ratios": [1.6, 1.3, 1, 1, 1, 1]})
    for row, case in zip(axes, cases, strict=True):
        r = case["result"]
        colors = plt.cm.viridis(np.linspace(0, 0.9, len(scales)))
        for i, scale in enumerate(scales):
            row[0].plot(r.steps, r.psnr[:, i], color=colors[i], label=f"scale {scale:g}")
        row[0].axhline(r.noisy_psnr, color="k", ls="--", lw=1, label="noisy input")
        row[0].set(xlabel="step", ylabel="PSNR to clean (dB)", title=f"{case['label']}: early stopping")
        row[0].legend(fontsize=7)
        row[0].grid(alpha=0.3)
        best = [s["psnr"] for s in r.best_scores]
        final = [s["psnr"] for s in r.final_scores]
        row[1].semilogx(scales, best, "o-", label="best (early stopped)")
        row[1].semilogx(scales, final, "s-", label="final")
        row[1].axhline(r.noisy_psnr, color="k", ls="--", lw=1, label="noisy input")
        row[1].set(xlabel="Fourier scale sigma", ylabel="PSNR to clean (dB)", title="encoding bandwidth")
        row[1].xaxis.set_minor_locator(plt.NullLocator())
        row[1].set_xticks(scales, [f"{s:g}" for s in scales])
        row[1].legend(fontsize=7)
        row[1].grid(alpha=0.3)
        k = int(np.argmax(best))
        show(row[2], case["image"], "clean")
        show(row[3], r.noisy, f"noisy {r.noisy_psnr:.2f} dB")
        show(row[4], r.best[k], f"scale {scales[k]:g}, step {r.best_step[k]}\n{best[k]:.2f} dB (best)")
        show(row[5], r.final[k], f"scale {scales[k]:g}, final\n{final[k]:.2f} dB")
    fig.tight_layout()
    save_figure(fig, path)


def main() -> int:
    args = build_parser().parse_args()
    if not args.sigma > 0:
        raise InputError(f"--sigma must be positive, got {args.sigma}")
    if args.eval_every <= 0:
        raise InputError(f"--eval-every must be positive, got {args.eval_every}")
    images = image_inputs(args.images, args.size)
    base = experiment_config("ffn", args.steps, args.size, args.batch_size, args.seed, width=args.width,
                             depth=args.depth, fourier_features=128, steps_per_call=min(args.eval_every, args.steps))
    configs, labels = sweep_grid(base, fourier_scale=args.scales)
    out = make_run_dir(args.out, EXPERIMENT)
    announce(f"writing to {out}")
    write_configs(out, EXPERIMENT, args, [{"image": label, "fourier_scale": s, "config": c.to_dict()}
                                          for label, _ in images for s, c in zip(args.scales, configs, strict=True)])
    settings = {"model": "ffn", "width": args.width, "depth": args.depth,
                "steps": args.steps, "batch size": args.batch_size,
                "size": args.size, "sigma": args.sigma, "seed": args.seed}
    rows, curves, cases = [], [], []

    def run_one(case: tuple[str, np.ndarray]) -> None:
        label, image = case
        r = denoise(image, configs, args.sigma, args.seed, args.eval_every)
        for i, scale in enumerate(args.scales):
            rows.append({"image": label, "fourier_scale": scale, "psnr_noisy": round(r.noisy_psnr, 3),
                         "psnr_final": r.final_scores[i]["psnr"], "ssim_final": r.final_scores[i]["ssim"],
                         "psnr_best": r.best_scores[i]["psnr"], "best_step": int(r.best_step[i]),
                         "ssim_best": r.best_scores[i]["ssim"], "psnr_fit_to_noisy": round(float(r.fit_psnr[i]), 3),
                         "wall_s": round(r.wall_s, 1)})
        curves.extend({"image": label, "step": int(s), **{f"scale_{x:g}": round(float(v), 3)
                                                          for x, v in zip(args.scales, p, strict=True)}}
                      for s, p in zip(r.steps, r.psnr, strict=True))
        cases.append({"label": label, "image": image, "result": r})
        save_image(out / f"noisy_{label}.png", r.noisy)
        save_image(out / f"denoised_{label}.png", r.best[int(np.argmax([s["psnr"] for s in r.best_scores]))])
        write_results(out, rows, COLUMNS, markdown(rows, settings))
        write_text(out / "curves.csv", to_csv(curves))

    def finish() -> str:
        figure(out / "figure.png", cases, args.scales)
        return markdown(rows, settings)

    return run_cases(images, out, EXPERIMENT, args.no_progress, lambda case: case[0], run_one, finish)


def markdown(rows: list[dict], settings: dict) -> str:
    table = to_markdown(rows, COLUMNS[:-1], formats={c: "{:.2f}" for c in COLUMNS if c.startswith("psnr")},
                        headers={"fourier_scale": "scale", "psnr_noisy": "noisy dB", "psnr_final": "final dB",
                                 "ssim_final": "final SSIM", "psnr_best": "best dB", "best_step": "at step",
                                 "ssim_best": "best SSIM", "psnr_fit_to_noisy": "fit to noisy dB"})
    return (f"# Denoising: PSNR to the clean image\n\n{table}\n{settings_markdown(settings)}\n'best' is the "
            "evaluation with the highest PSNR to the clean image (early stopping with an oracle, every "
            "--eval-every steps); 'final' the last step.\n")


if __name__ == "__main__":
    run_cli(main)
