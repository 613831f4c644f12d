#!/usr/bin/env python
"""Positional-encoding ablation (Tancik et al. 2020, "Fourier Features Let Networks Learn High Frequency
Functions"; Mildenhall et al. 2020, NeRF): the same ReLU MLP (the relu_pe preset, 1+4 x 256) fitted to one
image with no encoding (raw x, y), with the NeRF positional encoding at L = 5, 10 and 15 octaves, and with
Gaussian Fourier features (the ffn preset, m = 256, sigma = 20 cycles per image side).

    python experiments/classic/positional_encoding.py                  # astronaut 256x256, 2000 steps
    python experiments/classic/positional_encoding.py --size 32 --steps 20 --variants none pe10 ffn

Writes into --out (default runs/<time>-positional_encoding): results.csv and results.md (variant, params,
PSNR, SSIM, seconds per step), curves.csv (full-image PSNR at log-spaced steps), figure.png (those curves on
a log step axis, and the final renders side by side) and configs.json. Seconds per step leave out compilation
and the PSNR-curve evaluations.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt

from inr_utils.cli import (
    OneLineArgumentParser,
    add_run_flags,
    announce,
    interrupted,
    positive_int,
    progress_bar,
    run_cli,
)
from inr_utils.errors import InputError
from inr_utils.files import write_text
from inr_utils.images import load_named_image
from inr_utils.plots import save_figure, show
from inr_utils.reports import make_run_dir, settings_markdown, write_configs, write_results
from inr_utils.studies import ScoredFit, experiment_config, fit_and_score
from inr_utils.tables import to_csv, to_markdown
from inr_utils.training import TrainingInterrupted
from model_components.presets import MODEL_PRESETS

EXPERIMENT = "positional_encoding"
DEFAULT_VARIANTS = ("none", "pe5", "pe10", "pe15", "ffn")
COLUMNS = ("variant", "preset", "encoding", "params", "psnr", "ssim", "s_per_step", "compile_s", "note")


@dataclass(frozen=True)
class Variant:
    """One encoding of the ablation: its name on the command line, its label, preset and model overrides."""

    name: str
    label: str
    preset: str
    overrides: dict


def parse_variant(name: str) -> Variant:
    """``none`` (no encoding), ``peN`` (NeRF positional encoding, L = N) or ``ffn`` (Gaussian Fourier features)."""
    if name == "none":
        return Variant(name, "no encoding", "relu_pe", {"num_frequencies": 0})
    if name == "ffn":
        options = MODEL_PRESETS["ffn"].get("encoding_options", {})
        detail = ", ".join(f"{k}={v}" for k, v in (("m", options.get("num_features")), ("σ", options.get("scale")))
                           if v is not None)
        return Variant(name, f"Fourier features {detail}".strip(), "ffn", {})
    match = re.fullmatch(r"pe(\d+)", name)
    if match:
        return Variant(name, f"PE L={int(match.group(1))}", "relu_pe", {"num_frequencies": int(match.group(1))})
    raise InputError(f"unknown variant {name!r}; use none, peN (e.g. pe10) or ffn")


def build_parser() -> OneLineArgumentParser:
    p = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("experiment")
    g.add_argument("--image", default="astronaut",
                   help="image to fit: a PNG/JPEG path or a scikit-image test image name (default: astronaut)")
    g.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), metavar="VARIANT",
                   help="encodings to compare: none (raw coordinates), peN (NeRF encoding with L = N), ffn "
                        f"(Gaussian Fourier features, the ffn preset) (default: {' '.join(DEFAULT_VARIANTS)})")
    g.add_argument("--steps-per-call", type=positive_int, default=10,
                   help="steps per compiled call; the PSNR curve is sampled at log-spaced chunk ends (default: 10)")
    add_run_flags(p, EXPERIMENT, steps=2000)
    return p


def make_figure(path: Path, image, fits: list[tuple[Variant, ScoredFit]], title: str) -> None:
    """PSNR-vs-step curves (log step axis) above the ground truth and the final renders."""
    n = len(fits) + 1
    fig = plt.figure(figsize=(max(8.0, 2.4 * n), 7.2))
    grid = fig.add_gridspec(2, n, height_ratios=[1.3, 1])
    ax = fig.add_subplot(grid[0, :])
    for variant, result in fits:
        ax.plot(result.curve_steps, result.curve_psnr, "o-", markersize=3, label=variant.label)
    ax.set_xscale("log")
    ax.set_xlabel("step (log scale)")
    ax.set_ylabel("full-image PSNR (dB)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    show(fig.add_subplot(grid[1, 0]), image, "ground truth")
    for i, (variant, result) in enumerate(fits, start=1):
        show(fig.add_subplot(grid[1, i]), result.reconstruction, f"{variant.label}\n{result.psnr:.2f} dB")
    fig.tight_layout()
    save_figure(fig, path)


def main() -> int:
    args = build_parser().parse_args()
    variants = [parse_variant(v) for v in dict.fromkeys(args.variants)]
    label, image = load_named_image(args.image, args.size)
    image_file = args.image if Path(args.image).is_file() else None
    configs = [experiment_config(v.preset, args.steps, args.size, args.batch_size, args.seed, image_file,
                                    steps_per_call=args.steps_per_call, **v.overrides) for v in variants]
    out = make_run_dir(args.out, EXPERIMENT)
    announce(f"writing to {out}")
    write_configs(out, EXPERIMENT, args, [{"variant": v.name, "label": v.label, "image": args.image,
                                              "config": c.to_dict()} for v, c in zip(variants, configs, strict=True)])
    settings = {"image": f"{label} {image.shape[1]}x{image.shape[0]}", "steps": args.steps,
                "batch size": args.batch_size, "seed": args.seed}
    rows, fits = [], []
    bar = progress_bar(len(variants), EXPERIMENT, args.no_progress)
    try:
        for variant, config in zip(variants, configs, strict=True):
            bar.set_postfix_str(variant.label)
            result = fit_and_score(image, config, curve=True)
            encoding = config.model.encoding + "".join(f" {k}={v}" for k, v in config.model.encoding_options.items())
            rows.append({"variant": variant.label, "preset": variant.preset, "encoding": encoding,
                         **result.metrics()})
            fits.append((variant, result))
            announce(f"{variant.label}: {result.params:,} params, {result.psnr:.2f} dB, SSIM {result.ssim:.3f}")
            write_results(out, rows, COLUMNS, markdown(rows, settings))
            curves = [{"variant": v.label, "step": step, "psnr": round(value, 3)}
                      for v, f in fits for step, value in zip(f.curve_steps, f.curve_psnr, strict=True)]
            write_text(out / "curves.csv", to_csv(curves, ("variant", "step", "psnr")))
            bar.update()
    except TrainingInterrupted:
        return interrupted(out)
    finally:
        bar.close()
    make_figure(out / "figure.png", image, fits,
                f"positional encoding ablation: {label} {image.shape[1]}x{image.shape[0]}, {args.steps} steps")
    announce(f"results in {out}")
    print(markdown(rows, settings), end="")
    return 0


def markdown(rows: list[dict], settings: dict) -> str:
    """results.md: the table and the settings."""
    table = to_markdown(rows, ("variant", "params", "psnr", "ssim", "s_per_step", "note"),
                           formats={"psnr": "{:.2f}", "ssim": "{:.4f}", "s_per_step": "{:.4g}"},
                           headers={"psnr": "PSNR (dB)", "ssim": "SSIM", "s_per_step": "s/step"})
    return f"# Positional-encoding ablation\n\n{table}\n{settings_markdown(settings)}"


if __name__ == "__main__":
    run_cli(main)
