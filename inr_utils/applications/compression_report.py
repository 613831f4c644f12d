"""The rate-distortion study's inputs and outputs: the images (scikit-image photos, a folder, files), the
architectures sized for bpp targets, the figure and the Markdown summary
(:mod:`inr_utils.applications.compression`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from inr_utils.applications.compression import COIN_KODAK, JPEG_KODAK, SirenArchitecture  # noqa: E402
from inr_utils.images import image_files, load_image, load_named_image, resize_to_max_size  # noqa: E402
from inr_utils.plots import save_figure  # noqa: E402
from inr_utils.tables import to_markdown  # noqa: E402

#: The default photos (scikit-image, bundled: no download).
DEFAULT_IMAGES = ("astronaut", "camera", "coffee", "chelsea")


def load_images(folder: str | None, specs: Sequence[str], max_size: int) -> dict[str, np.ndarray]:
    """``label -> float (H, W, C) image``: every image file of ``folder`` (sorted), else each of ``specs`` (a file
    or a scikit-image name), downscaled so the longer side is at most ``max_size`` (never upscaled).

    Raises:
      InputError: a missing or empty folder, an unreadable image.
    """
    images: dict[str, np.ndarray] = {}
    if folder is not None:
        for file in image_files(folder):
            images[file.stem] = load_image(file, max_size)
        return images
    for spec in specs:
        if Path(spec).suffix:
            images[Path(spec).stem] = load_image(spec, max_size)
        else:
            label, image = load_named_image(spec, max_size)
            images[label] = resize_to_max_size(image, max_size)
    return images


def architectures_for(pixels: int, channels: int, targets: Sequence[float], depth: int,
                      bits_per_weight: float = 8.0) -> list[SirenArchitecture]:
    """One SIREN per bpp target: the width whose weights at ``bits_per_weight`` bits each come closest to
    ``target * pixels`` bits (distinct widths, at least 4)."""
    widths = []
    for target in targets:
        budget = target * pixels / bits_per_weight
        # SirenArchitecture.num_params without building models: 3w + depth (w^2 + w) + (w + 1) C
        best = min(range(4, 513), key=lambda w: abs(3 * w + depth * (w * w + w) + (w + 1) * channels - budget))
        if best not in widths:
            widths.append(best)
    return [SirenArchitecture(w, depth) for w in sorted(widths)]


def rd_figure(path: str | Path, rows: Sequence[Mapping[str, Any]], curves: Mapping[str, Sequence[Mapping]]) -> None:
    """One panel per image: PSNR against bpp of the INR files (a line per bit depth through the architectures),
    JPEG's quality sweep and COIN's published Kodak points (other images: a reference, not a comparison)."""
    labels = list(curves)
    cols = min(4, len(labels))
    nrows = -(-len(labels) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.6 * nrows), squeeze=False)
    for ax, label in zip(axes.ravel(), labels, strict=False):
        mine = [r for r in rows if r["image"] == label]
        top = max([r["bpp"] for r in mine] + [0.35])
        jpeg = sorted((r["bpp"], r["psnr"]) for r in curves[label] if r["bpp"] <= 1.3 * top)
        if jpeg:
            ax.plot(*zip(*jpeg, strict=True), "k-", lw=1.2, label="JPEG (Pillow)")
        for bits in sorted({r["bits"] for r in mine}, reverse=True):
            points = sorted((r["bpp"], r["psnr"]) for r in mine if r["bits"] == bits)
            ax.plot(*zip(*points, strict=True), "o-", ms=4, label=f"SIREN, {bits}-bit")
        ax.plot(*zip(*COIN_KODAK, strict=True), "r*", ms=9, label="COIN, Kodak (other images)")
        ax.plot(*zip(*JPEG_KODAK, strict=True), "rx", ms=7, label="JPEG, Kodak (COIN paper)")
        ax.axvline(0.3, color="0.7", lw=0.8, ls=":")
        ax.set(title=f"{label} ({mine[0]['size'] if mine else ''})", xlabel="bits per pixel", ylabel="PSNR (dB)",
               xlim=(0, 1.3 * top))
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(labels):]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


#: Columns of results.csv.
COLUMNS = ("image", "size", "arch", "params", "bits", "coder", "bytes", "bpp", "psnr", "float_psnr", "jpeg_psnr",
           "gain_vs_jpeg_db", "coin_kodak_psnr", "encode_s")
FORMATS = {"bpp": "{:.3f}", "psnr": "{:.2f}", "float_psnr": "{:.2f}", "jpeg_psnr": "{:.2f}",
           "gain_vs_jpeg_db": "{:+.2f}", "coin_kodak_psnr": "{:.2f}", "encode_s": "{:.0f}"}


def summary(rows: Sequence[Mapping[str, Any]], max_bpp: float = 0.3) -> list[dict[str, Any]]:
    """Per image, the best INR file at ``<= max_bpp`` and JPEG's PSNR at its bpp (the target's test)."""
    out = []
    for label in dict.fromkeys(r["image"] for r in rows):
        low = [r for r in rows if r["image"] == label and r["bpp"] <= max_bpp]
        if not low:
            out.append({"image": label, "best_bpp": float("nan")})
            continue
        best = max(low, key=lambda r: r["psnr"])
        out.append({"image": label, "arch": best["arch"], "bits": best["bits"], "best_bpp": best["bpp"],
                    "psnr": best["psnr"], "jpeg_psnr": best["jpeg_psnr"], "gain_vs_jpeg_db": best["gain_vs_jpeg_db"],
                    "coin_kodak_psnr": best["coin_kodak_psnr"]})
    return out


def results_markdown(rows: Sequence[Mapping[str, Any]], settings: str) -> str:
    """``results.md``: the settings, the per-image summary at <= 0.3 bpp and every file."""
    return ("# INR compression (COIN-style) against JPEG\n\n" + settings + "\n## Best file at <= 0.3 bpp\n\n"
            + to_markdown(summary(rows), formats={"best_bpp": "{:.3f}", **FORMATS}) + "\n## Every file\n\n"
            + to_markdown(rows, list(COLUMNS), formats=FORMATS) + "\nCOIN's Kodak points are of other images "
            "(Kodak, 768x512): a reference, not a like-for-like comparison; JPEG is interpolated along its "
            "quality sweep on the same pixels (NaN: outside JPEG's range).\n")
