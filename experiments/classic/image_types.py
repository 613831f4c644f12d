#!/usr/bin/env python
"""Image types: which kind of image is hardest for which layer type? Every model preset (or --models) is
fitted, with its recommended training settings, to a smooth photo (astronaut), graphics with sharp edges
(scikit-image's logo, composited over white) and a high-frequency texture (grass, grayscale).

    python experiments/classic/image_types.py                        # all presets x 3 images, 256x256, 2000 steps
    python experiments/classic/image_types.py --size 32 --steps 20 --models relu_pe siren

Writes into --out (default runs/<time>-image_types): results.csv (one row per model and image: params, PSNR,
SSIM, seconds per step), results.md (PSNR and SSIM as image x model tables, the hardest image per model, and
the long table), figure.png (a grid: one row per image, the original then every model's reconstruction) and
configs.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import classic_common as cc  # noqa: E402
from cli_common import OneLineArgumentParser, run_cli  # noqa: E402

EXPERIMENT = "image_types"
DEFAULT_IMAGES = ("astronaut", "logo", "grass")


def build_parser() -> OneLineArgumentParser:
    return cc.grid_parser(__doc__, EXPERIMENT, DEFAULT_IMAGES, "horse, brick, gravel", OneLineArgumentParser)


def markdown(rows: list[dict], settings: dict) -> str:
    """results.md: PSNR and SSIM image x model tables (plus the mean over models), the hardest image per model,
    and the long table."""
    sections = ["# Image types: PSNR by image and model\n"]
    for value, unit in (("psnr", "PSNR (dB)"), ("ssim", "SSIM")):
        wide, names = cc.pivot(rows, "image", "model", value)
        for row in wide:
            row["mean"] = cc.mean_of(row[n] for n in names[1:])
        fmt = "{:.2f}" if value == "psnr" else "{:.4f}"
        sections.append(f"## {unit}\n\n" + cc.to_markdown(wide, [*names, "mean"],
                                                            formats={n: fmt for n in [*names[1:], "mean"]}))
    hardest = []
    for model in dict.fromkeys(r["model"] for r in rows):
        scored = [r for r in rows if r["model"] == model and not cc.is_missing(r["psnr"])]
        if scored:
            worst = min(scored, key=lambda r: r["psnr"])
            hardest.append({"model": model, "hardest image": worst["image"], "PSNR (dB)": worst["psnr"],
                            "easiest image": max(scored, key=lambda r: r["psnr"])["image"]})
    wide, names = cc.pivot(rows, "image", "model", "psnr")
    means = {row["image"]: cc.mean_of(row[n] for n in names[1:]) for row in wide}
    overall = min(means, key=lambda k: means[k]) if means else "n/a"
    sections.append("## Hardest image per model\n\n" + cc.to_markdown(
        hardest, ("model", "hardest image", "PSNR (dB)", "easiest image"), formats={"PSNR (dB)": "{:.2f}"})
        + f"\nHardest overall (lowest mean PSNR over models): **{overall}**.\n")
    sections.append("## All fits\n\n" + cc.to_markdown(
        rows, ("image", "kind", "model", "params", "psnr", "ssim", "s_per_step", "lr", "fitted_with", "note"),
        formats={"psnr": "{:.2f}", "ssim": "{:.4f}", "s_per_step": "{:.4g}", "lr": "{:g}"},
        headers={"psnr": "PSNR (dB)", "ssim": "SSIM", "s_per_step": "s/step"}))
    sections.append(cc.settings_markdown(settings))
    return "\n".join(sections)


def make_figure(path: Path, images: list, fits: list, models: list[str]) -> None:
    """One row per image: the original, then every model's reconstruction with its PSNR."""
    cells, titles = [], []
    for label, _, image in images:
        row, row_titles = [image], [f"{label} (original)"]
        for model in models:
            match = [f for job, f in fits if job.model == model and job.image_label == label]
            row.append(match[0].reconstruction if match else None)
            row_titles.append(f"{model}\n{match[0].psnr:.2f} dB" if match else "")
        cells.append(row)
        titles.append(row_titles)
    cc.image_grid(path, cells, titles, row_labels=[cc.IMAGE_KINDS.get(spec, label) for label, spec, _ in images],
                  suptitle="reconstructions by image type and model")


def main() -> int:
    args = build_parser().parse_args()
    run = cc.run_model_image_grid(args, EXPERIMENT, markdown)
    if run.fits is None:
        return cc.interrupted(run.out)
    make_figure(run.out / "figure.png", run.images, run.fits, run.models)
    cc.announce(f"results in {run.out}")
    print(markdown(run.rows, run.settings), end="")
    return 0


if __name__ == "__main__":
    run_cli(main)
