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

from pathlib import Path

from inr_utils.cli import OneLineArgumentParser, announce, interrupted, run_cli
from inr_utils.images import IMAGE_KINDS
from inr_utils.plots import image_grid
from inr_utils.reports import settings_markdown
from inr_utils.studies import grid_parser, run_model_image_grid
from inr_utils.tables import is_missing, mean_of, pivot, to_markdown

EXPERIMENT = "image_types"
DEFAULT_IMAGES = ("astronaut", "logo", "grass")


def build_parser() -> OneLineArgumentParser:
    return grid_parser(__doc__, EXPERIMENT, DEFAULT_IMAGES, "horse, brick, gravel", OneLineArgumentParser)


def markdown(rows: list[dict], settings: dict) -> str:
    """results.md: PSNR and SSIM image x model tables (plus the mean over models), the hardest image per model,
    and the long table."""
    sections = ["# Image types: PSNR by image and model\n"]
    for value, unit in (("psnr", "PSNR (dB)"), ("ssim", "SSIM")):
        wide, names = pivot(rows, "image", "model", value)
        for row in wide:
            row["mean"] = mean_of(row[n] for n in names[1:])
        fmt = "{:.2f}" if value == "psnr" else "{:.4f}"
        sections.append(f"## {unit}\n\n" + to_markdown(wide, [*names, "mean"],
                                                            formats={n: fmt for n in [*names[1:], "mean"]}))
    hardest = []
    for model in dict.fromkeys(r["model"] for r in rows):
        scored = [r for r in rows if r["model"] == model and not is_missing(r["psnr"])]
        if scored:
            worst = min(scored, key=lambda r: r["psnr"])
            hardest.append({"model": model, "hardest image": worst["image"], "PSNR (dB)": worst["psnr"],
                            "easiest image": max(scored, key=lambda r: r["psnr"])["image"]})
    wide, names = pivot(rows, "image", "model", "psnr")
    means = {row["image"]: mean_of(row[n] for n in names[1:]) for row in wide}
    overall = min(means, key=lambda k: means[k]) if means else "n/a"
    sections.append("## Hardest image per model\n\n" + to_markdown(
        hardest, ("model", "hardest image", "PSNR (dB)", "easiest image"), formats={"PSNR (dB)": "{:.2f}"})
        + f"\nHardest overall (lowest mean PSNR over models): **{overall}**.\n")
    sections.append("## All fits\n\n" + to_markdown(
        rows, ("image", "kind", "model", "params", "psnr", "ssim", "s_per_step", "lr", "fitted_with", "note"),
        formats={"psnr": "{:.2f}", "ssim": "{:.4f}", "s_per_step": "{:.4g}", "lr": "{:g}"},
        headers={"psnr": "PSNR (dB)", "ssim": "SSIM", "s_per_step": "s/step"}))
    sections.append(settings_markdown(settings))
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
    image_grid(path, cells, titles, row_labels=[IMAGE_KINDS.get(spec, label) for label, spec, _ in images],
                  suptitle="reconstructions by image type and model")


def main() -> int:
    args = build_parser().parse_args()
    run = run_model_image_grid(args, EXPERIMENT, markdown)
    if run.fits is None:
        return interrupted(run.out)
    make_figure(run.out / "figure.png", run.images, run.fits, run.models)
    announce(f"results in {run.out}")
    print(markdown(run.rows, run.settings), end="")
    return 0


if __name__ == "__main__":
    run_cli(main)
