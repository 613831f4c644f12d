#!/usr/bin/env python
"""Layer shoot-out: every model preset (ReLU + positional encoding, Fourier features, SIREN and the layer zoo;
each about 200k parameters) fitted with its recommended training settings to the same four images: a photo
(astronaut), a grayscale photo (camera), a colour photo (coffee) and a texture (grass), 2000 steps each.

    python experiments/classic/layer_shootout.py                     # every preset x 4 images, 256x256
    python experiments/classic/layer_shootout.py --size 32 --steps 20 --models relu_pe siren

Where ``inr_utils.sweeps`` is available, the images of one preset that share a shape are fitted at once with
``fit_many`` (one vmapped program; the same fits up to float rounding); --no-sweep fits them one by one.
Seconds per step are per model: a sweep's time is divided by its number of models.

Writes into --out (default runs/<time>-layer_shootout): results.csv (one row per preset and image: params,
PSNR, SSIM, seconds per step, learning rate), results.md (presets ranked by mean PSNR with per-image PSNR,
mean SSIM and time per step; then every fit), figure.png (PSNR per preset and image, and seconds per step),
renders.png (every reconstruction) and configs.json.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from inr_utils.cli import OneLineArgumentParser, announce, interrupted, run_cli
from inr_utils.plots import image_grid, save_figure
from inr_utils.reports import settings_markdown
from inr_utils.studies import grid_parser, run_model_image_grid
from inr_utils.tables import is_missing, mean_of, pivot, to_markdown

EXPERIMENT = "layer_shootout"
DEFAULT_IMAGES = ("astronaut", "camera", "coffee", "grass")


def build_parser() -> OneLineArgumentParser:
    return grid_parser(__doc__, EXPERIMENT, DEFAULT_IMAGES, "chelsea, brick", OneLineArgumentParser)


def summary_rows(rows: list[dict]) -> tuple[list[dict], list[str]]:
    """One row per preset, best mean PSNR first: params, lr, per-image PSNR, mean PSNR, mean SSIM, mean s/step."""
    wide, names = pivot(rows, "model", "image", "psnr")
    images = names[1:]
    summary = []
    for row in wide:
        mine = [r for r in rows if r["model"] == row["model"]]
        summary.append({**row, "params": mine[0]["params"], "lr": mine[0]["lr"],
                        "mean_psnr": mean_of(row[n] for n in images),
                        "mean_ssim": mean_of(r["ssim"] for r in mine),
                        "s_per_step": mean_of(r["s_per_step"] for r in mine),
                        "notes": "; ".join(dict.fromkeys(r["note"] for r in mine if r["note"]))})
    summary.sort(key=lambda r: -r["mean_psnr"] if not is_missing(r["mean_psnr"]) else float("inf"))
    return summary, images


def markdown(rows: list[dict], settings: dict) -> str:
    """results.md: the ranking, then every fit, then the settings."""
    summary, images = summary_rows(rows)
    columns = ["model", "params", "lr", *images, "mean_psnr", "mean_ssim", "s_per_step", "notes"]
    ranking = to_markdown(summary, columns,
                             formats={**{n: "{:.2f}" for n in images}, "mean_psnr": "{:.2f}", "mean_ssim": "{:.4f}",
                                      "s_per_step": "{:.4g}", "lr": "{:g}"},
                             headers={"mean_psnr": "mean PSNR (dB)", "mean_ssim": "mean SSIM",
                                      "s_per_step": "s/step"})
    every = to_markdown(rows, ("model", "image", "params", "psnr", "ssim", "s_per_step", "fitted_with", "note"),
                           formats={"psnr": "{:.2f}", "ssim": "{:.4f}", "s_per_step": "{:.4g}"},
                           headers={"psnr": "PSNR (dB)", "ssim": "SSIM", "s_per_step": "s/step"})
    return (f"# Layer shoot-out\n\nPSNR in dB per image; s/step is per model (a fit_many sweep's time divided by "
            f"its models), compilation excluded.\n\n{ranking}\n## Every fit\n\n{every}\n"
            f"{settings_markdown(settings)}")


def make_figure(path: Path, rows: list[dict]) -> None:
    """Grouped bars of PSNR per preset and image (presets ranked by mean PSNR), and seconds per step."""
    summary, images = summary_rows(rows)
    models = [r["model"] for r in summary]
    x = np.arange(len(models))
    fig, (ax, ax_time) = plt.subplots(1, 2, figsize=(max(9.0, 0.8 * len(models) + 5), 5.2),
                                      gridspec_kw={"width_ratios": [3, 1]})
    width = 0.8 / max(1, len(images))
    for i, image in enumerate(images):
        values = [np.nan if is_missing(r[image]) else r[image] for r in summary]
        ax.bar(x + (i - (len(images) - 1) / 2) * width, values, width, label=image)
    ax.plot(x, [r["mean_psnr"] for r in summary], "k_", markersize=18, markeredgewidth=2, label="mean")
    ax.set_xticks(x, models, rotation=45, ha="right")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("PSNR by preset and image (ranked by mean)", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    top = np.nanmax([np.nan if is_missing(r[n]) else r[n] for r in summary for n in images] + [1.0])
    ax.set_ylim(0, 1.25 * top)
    ax.legend(fontsize=8, ncol=len(images) + 1, loc="upper center")
    ax_time.barh(x, [np.nan if is_missing(r["s_per_step"]) else r["s_per_step"] for r in summary],
                 height=0.6, color="tab:gray")
    ax_time.set_yticks(x, models)
    ax_time.invert_yaxis()
    ax_time.set_xlabel("seconds per step (per model)")
    ax_time.set_title("time per step", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def renders_figure(path: Path, images: list, fits: list, models: list[str]) -> None:
    """A grid: the originals on top, then one row per preset with its reconstructions."""
    cells = [[image for _, _, image in images]]
    titles = [[f"{label} (original)" for label, _, _ in images]]
    for model in models:
        row, row_titles = [], []
        for label, _, _ in images:
            match = [f for job, f in fits if job.model == model and job.image_label == label]
            row.append(match[0].reconstruction if match else None)
            row_titles.append(f"{match[0].psnr:.2f} dB, SSIM {match[0].ssim:.3f}" if match else "")
        cells.append(row)
        titles.append(row_titles)
    image_grid(path, cells, titles, row_labels=["original", *models], suptitle="layer shoot-out reconstructions",
                  cell_inches=2.4)


def main() -> int:
    args = build_parser().parse_args()
    run = run_model_image_grid(args, EXPERIMENT, markdown)
    if run.fits is None:
        return interrupted(run.out)
    make_figure(run.out / "figure.png", run.rows)
    renders_figure(run.out / "renders.png", run.images, run.fits, run.models)
    announce(f"results in {run.out}")
    print(markdown(run.rows, run.settings), end="")
    return 0


if __name__ == "__main__":
    run_cli(main)
