#!/usr/bin/env python
"""Compress images with INRs (COIN-style: a SIREN per image, quantised, entropy-coded weights) and compare with JPEG.

    python experiments/compress.py encode photo.png -o photo.inrc --bits 8 --width 32 --depth 3
    python experiments/compress.py decode photo.inrc -o photo_decoded.png
    python experiments/compress.py study                       # scikit-image photos, rate-distortion vs JPEG
    python experiments/compress.py study --images DIR --max-size 512 --targets 0.1 0.2 0.3

``study`` writes results.csv, results.md, rd.png, jpeg.csv and configs.json into its folder (--out).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from inr_utils.applications.compression import (
    CompressionSettings,
    SirenArchitecture,
    compress_image,
    decode,
    jpeg_curve,
    rate_distortion,
)
from inr_utils.applications.compression_format import check_bits
from inr_utils.applications.compression_report import (
    COLUMNS,
    DEFAULT_IMAGES,
    architectures_for,
    load_images,
    rd_figure,
    results_markdown,
)
from inr_utils.cli import OneLineArgumentParser, announce, positive_int, run_cli
from inr_utils.errors import InputError
from inr_utils.files import atomic_write
from inr_utils.images import load_image, save_image
from inr_utils.reports import make_run_dir, settings_markdown, write_configs, write_results
from inr_utils.tables import to_csv


def _bits(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bit depth must be a whole number, got {text!r}") from None
    try:
        return check_bits(value)
    except InputError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _training_flags(p: argparse.ArgumentParser) -> None:
    d = CompressionSettings()
    p.add_argument("--steps", type=positive_int, default=d.steps, help=f"fit steps (default: {d.steps})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate of the fit (default: {d.lr})")
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size,
                   help=f"random pixels per step (default: {d.batch_size}; the whole image when smaller)")
    p.add_argument("--qat-steps", type=int, default=d.qat_steps,
                   help=f"quantisation-aware fine-tuning steps per bit depth, 0 for none (default: {d.qat_steps})")
    p.add_argument("--qat-lr", type=float, default=d.qat_lr, help=f"fine-tuning learning rate (default: {d.qat_lr})")
    p.add_argument("--seed", type=int, default=d.seed, help="initialisation and sampling seed (default: 0)")
    p.add_argument("--depth", type=int, default=3, help="SIREN hidden layers after the first (default: 3)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def build_parser() -> OneLineArgumentParser:
    p = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineArgumentParser)
    e = sub.add_parser("encode", help="fit, quantise and code one image into an .inrc file")
    e.add_argument("image", help="PNG/JPEG file to compress")
    e.add_argument("-o", "--output", required=True, help="the .inrc file to write")
    e.add_argument("--bits", type=_bits, default=8, help="bits per weight, 1-16 (default: 8)")
    e.add_argument("--width", type=positive_int, default=32, help="SIREN width (default: 32)")
    e.add_argument("--max-size", type=positive_int, help="downscale so the longer side is at most this (default: none)")
    _training_flags(e)
    d = sub.add_parser("decode", help="decode an .inrc file to a PNG")
    d.add_argument("file", help="the .inrc file")
    d.add_argument("-o", "--output", required=True, help="the PNG to write")
    s = sub.add_parser("study", help="rate-distortion of SIRENs x bit depths against JPEG")
    s.add_argument("--images", metavar="DIR", help="a folder of images (default: scikit-image photos)")
    s.add_argument("--image", nargs="+", default=list(DEFAULT_IMAGES),
                   help=f"image files or scikit-image names (default: {' '.join(DEFAULT_IMAGES)})")
    s.add_argument("--max-size", type=positive_int, default=256, help="longer side in pixels (default: 256)")
    s.add_argument("--targets", type=float, nargs="+", default=[0.15, 0.25, 0.4],
                   help="bpp at 8 bits per weight that pick the SIREN widths (default: 0.15 0.25 0.4)")
    s.add_argument("--widths", type=positive_int, nargs="+", help="SIREN widths instead of --targets")
    s.add_argument("--bits", type=_bits, nargs="+", default=[16, 8, 6], help="bit depths (default: 16 8 6)")
    s.add_argument("--out", help="output folder, new or empty (default: runs/<time>-compress)")
    _training_flags(s)
    return p


def _settings(args: argparse.Namespace) -> CompressionSettings:
    if args.depth < 0 or args.qat_steps < 0:
        raise InputError("--depth and --qat-steps must be >= 0")
    return CompressionSettings(steps=args.steps, lr=args.lr, batch_size=args.batch_size, qat_steps=args.qat_steps,
                               qat_lr=args.qat_lr, seed=args.seed)


def _check_output(path: Path) -> None:
    if path.is_dir():
        raise InputError(f"output '{path}' is a folder; pass a file name")
    if not path.parent.is_dir():
        raise InputError(f"cannot write '{path}': folder '{path.parent}' does not exist; create it or choose another")


def _write_bytes(path: Path, data: bytes) -> None:
    try:
        atomic_write(path, lambda tmp: tmp.write_bytes(data))
    except OSError as err:
        raise InputError(f"cannot write '{path}' ({err.strerror}); choose a writable location") from None


def encode(args: argparse.Namespace) -> int:
    out = Path(args.output)
    _check_output(out)
    image = load_image(args.image, args.max_size)
    settings = _settings(args)
    architecture = SirenArchitecture(args.width, args.depth)
    result = compress_image(image, architecture, args.bits, settings, progress=not args.no_progress)
    _write_bytes(out, result.data)
    h, w = image.shape[:2]
    print(f"{out}: {len(result.data)} bytes, {result.bpp:.4f} bpp ({w}x{h}, SIREN {architecture.label()}, "
          f"{args.bits} bits, {result.coder}), PSNR {result.psnr:.2f} dB, {result.seconds:.0f} s")
    return 0


def decode_file(args: argparse.Namespace) -> int:
    path, out = Path(args.file), Path(args.output)
    if not path.is_file():
        raise InputError(f"'{path}' is not a file; pass an .inrc file written by encode")
    _check_output(out)
    pixels = decode(path.read_bytes(), name=str(path))
    try:
        save_image(out, pixels.astype(np.float32) / 255.0)
    except OSError as err:
        raise InputError(f"cannot write '{out}' ({err.strerror}); choose a writable location") from None
    print(f"{out}: {pixels.shape[1]}x{pixels.shape[0]} decoded from {path} "
          f"({8 * path.stat().st_size / (pixels.shape[0] * pixels.shape[1]):.4f} bpp)")
    return 0


def study(args: argparse.Namespace) -> int:
    settings = _settings(args)
    images = load_images(args.images, args.image, args.max_size)
    out = make_run_dir(args.out, "compress")
    announce(f"writing to {out}")
    by_image = {}
    for label, image in images.items():
        pixels, channels = image.shape[0] * image.shape[1], image.shape[-1]
        by_image[label] = ([SirenArchitecture(w, args.depth) for w in args.widths] if args.widths else
                           architectures_for(pixels, channels, args.targets, args.depth))
    rows = []
    groups: dict[tuple, list[str]] = {}
    for label, archs in by_image.items():  # images sharing a size and widths are fitted together
        groups.setdefault((images[label].shape, tuple(archs)), []).append(label)
    for (_, archs), labels in groups.items():
        rows += rate_distortion({k: images[k] for k in labels}, archs, args.bits, settings, not args.no_progress,
                                on_row=lambda r: announce(f"{r['image']} {r['arch']} {r['bits']} bits: "
                                                          f"{r['bpp']:.3f} bpp {r['psnr']:.2f} dB "
                                                          f"(JPEG {r['jpeg_psnr']:.2f} dB)"))
    curves = {label: jpeg_curve(image) for label, image in images.items()}
    meta = {"images": {k: list(v.shape) for k, v in images.items()}, "bits": args.bits,
            "architectures": {k: [a.label() for a in v] for k, v in by_image.items()},
            **{k: v for k, v in dataclasses.asdict(settings).items()}}
    write_results(out, rows, COLUMNS, results_markdown(rows, settings_markdown(meta)))
    atomic_write(out / "jpeg.csv", lambda tmp: tmp.write_text(to_csv(
        [{"image": k, **r} for k, v in curves.items() for r in v])))
    rd_figure(out / "rd.png", rows, curves)
    write_configs(out, "compress", args, [{"config": {"architecture": a.label(), **dataclasses.asdict(settings)},
                                           "image": k} for k, v in by_image.items() for a in v])
    print(f"results: {out / 'results.md'}\nfigure: {out / 'rd.png'}")
    print(json.dumps({"files": len(rows)}))
    return 0


def main() -> int:
    args = build_parser().parse_args()
    return {"encode": encode, "decode": decode_file, "study": study}[args.command](args)


if __name__ == "__main__":
    run_cli(main)
