"""Video input/output: an MP4 (any format ffmpeg reads), a GIF or a folder of frames -> float32 ``(T, H, W, C)``
frames in [0, 1]; a built-in clip (a pan and zoom across a real photo); MP4/GIF writing; per-frame PSNR.

Reading and writing go through imageio (its Pillow plugin for GIFs and frame files, its ffmpeg plugin, backed by
the ``imageio-ffmpeg`` wheel's bundled ffmpeg binary, for MP4 and other containers). An INR of a video has 3-D
coordinates ``(x, y, t)`` in [-1, 1]^3 (the grid convention of :mod:`inr_utils.grids`: frame ``k`` of ``T`` at
``t = -1 + (2 k + 1) / T``).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from inr_utils.errors import InputError
from inr_utils.files import atomic_write
from inr_utils.images import load_image, resize, to_uint8

__all__ = ["FRAME_SUFFIXES", "VIDEO_SUFFIXES", "Video", "builtin_clip", "find_div2k", "frame_psnr", "load_video",
           "save_video"]

#: Suffixes of frame files read from a folder (sorted by name) and of containers read with ffmpeg.
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm")
#: Where the shared DIV2K photos live, relative to the project root (see ../shared/data/README.md).
DIV2K_DIR = Path("..") / "shared" / "data" / "div2k"


@contextlib.contextmanager
def _ffmpeg_subprocess() -> Iterator[None]:
    """Silences JAX's warning about ``os.fork``: imageio-ffmpeg starts ffmpeg as a subprocess, whose forked child
    runs no JAX code (it execs ffmpeg at once), so the deadlock the warning is about cannot happen."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        yield


@dataclass(frozen=True)
class Video:
    """Frames and their rate.

    Attributes:
      frames: float32 ``(T, H, W, C)`` in [0, 1], C = 3 (colour) or 1 (grayscale).
      fps: frames per second.
    """

    frames: np.ndarray
    fps: float


def _downscale(frames: np.ndarray, max_size: int | None) -> np.ndarray:
    """Frames shrunk (bicubic, aspect kept) so the longer side is at most ``max_size``; never enlarged."""
    h, w = frames.shape[1:3]
    if max_size is None or max(h, w) <= max_size:
        return frames
    scale = max_size / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    return np.clip(np.stack([resize(f, new_h, new_w) for f in frames]), 0.0, 1.0).astype(np.float32)


def _to_float(frames: np.ndarray) -> np.ndarray:
    """uint8/uint16/float frames ``(T, H, W[, C])`` -> float32 ``(T, H, W, C)`` in [0, 1], C in {1, 3} (an alpha
    channel composited over white)."""
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[..., None]
    if np.issubdtype(frames.dtype, np.integer):
        frames = frames.astype(np.float32) / float(np.iinfo(frames.dtype).max)
    frames = np.clip(frames.astype(np.float32), 0.0, 1.0)
    if frames.shape[-1] in (2, 4):  # gray+alpha or RGBA
        alpha = frames[..., -1:]
        frames = frames[..., :-1] * alpha + (1.0 - alpha)
    return frames


def _read_frames_folder(path: Path, max_frames: int | None, frame_step: int) -> tuple[np.ndarray, float]:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
    if not files:
        raise InputError(f"folder '{path}' holds no frame images ({', '.join(FRAME_SUFFIXES)}); pass a video file "
                         "or a folder of frames")
    files = files[::frame_step][:max_frames]
    frames = [load_image(f) for f in files]
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise InputError(f"the frames in '{path}' differ in size or channels ({sorted(shapes)}); give every frame "
                         "the same size")
    return np.stack(frames), 25.0


def _read_file(path: Path, max_frames: int | None, frame_step: int) -> tuple[np.ndarray, float]:
    import imageio.v3 as iio

    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        plugin = "FFMPEG"
        fps = float(iio.immeta(path, plugin=plugin).get("fps") or 25.0)
        frames = []
        for i, frame in enumerate(iio.imiter(path, plugin=plugin)):  # stops early: long videos are not read whole
            if max_frames is not None and len(frames) >= max_frames:
                break
            if i % frame_step == 0:
                frames.append(frame)
        if not frames:
            raise InputError(f"video '{path}' has no frames; pass another video")
        return _to_float(np.stack(frames)), fps / frame_step
    frames = iio.imread(path, index=None)  # GIF, animated PNG/WebP, multi-page TIFF, a single image
    if frames.ndim == 2 or (frames.ndim == 3 and frames.shape[-1] in (3, 4) and suffix not in (".gif",)):
        frames = frames[None]  # one still image: a 1-frame video
    duration = iio.immeta(path).get("duration") or 40  # milliseconds per frame (GIF)
    frames = frames[::frame_step][:max_frames]
    return _to_float(frames), 1000.0 / float(duration) / frame_step


def load_video(path: str | os.PathLike, max_frames: int | None = None, frame_step: int = 1,
               max_size: int | None = None) -> Video:
    """Reads a video into float32 frames ``(T, H, W, C)`` in [0, 1].

    Args:
      path: an MP4/MOV/AVI/MKV/WebM file (ffmpeg), a GIF (or animated PNG/WebP), or a folder of frame images
        (PNG/JPEG/..., sorted by file name, all of one size; 25 fps assumed).
      max_frames: keep at most this many frames (after ``frame_step``), from the start.
      frame_step: keep every ``frame_step``-th frame (the frame rate drops accordingly).
      max_size: downscale (bicubic) so the longer frame side is at most this many pixels.

    Raises:
      InputError: missing path, unreadable or corrupt file, no frames, frames of different sizes, bad limits.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"video '{path}' does not exist; pass an MP4 or GIF file or a folder of frames as --input")
    if frame_step <= 0 or (max_frames is not None and max_frames <= 0) or (max_size is not None and max_size <= 0):
        raise InputError(f"frame step, frame count and frame size must be positive, got {frame_step}, {max_frames} "
                         f"and {max_size}")
    try:
        if path.is_dir():
            frames, fps = _read_frames_folder(path, max_frames, frame_step)
        else:
            with _ffmpeg_subprocess():
                frames, fps = _read_file(path, max_frames, frame_step)
    except InputError:
        raise
    except Exception as err:  # noqa: BLE001 - imageio/ffmpeg/Pillow raise many types for a corrupt file
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        reason = lines[-1][:160] if lines else type(err).__name__  # ffmpeg's last line names the problem
        raise InputError(f"cannot read video '{path}' ({reason}); pass a valid MP4 or GIF file or a folder of "
                         "frames") from None
    if frames.ndim != 4 or min(frames.shape) == 0:
        raise InputError(f"video '{path}' gave frames of shape {frames.shape}, expected (T, H, W, C); pass another "
                         "video")
    return Video(_downscale(frames, max_size), fps)


def find_div2k() -> list[Path]:
    """The shared DIV2K photos (``../shared/data/div2k/*.png`` from the working directory), sorted; empty when the
    folder is absent (a fresh machine)."""
    folder = Path.cwd() / DIV2K_DIR
    return sorted(folder.glob("*.png")) if folder.is_dir() else []


def builtin_clip(frames: int = 25, height: int = 64, width: int = 96, fps: float = 12.0,
                 photo: np.ndarray | None = None) -> Video:
    """A short clip made from one real photo, so the video path runs without a video file: a camera pan from
    left to right across the photo while zooming in (the crop window shrinks from 70% to 45% of the photo's
    height), each frame resampled (bicubic, sub-pixel crop boxes) to ``height x width``.

    Args:
      frames, height, width: the clip's shape ``(frames, height, width, 3)``.
      fps: its frame rate.
      photo: float ``(H, W, C)`` in [0, 1] or uint8 (default: the first shared DIV2K photo from
        :func:`find_div2k` if present, else scikit-image's astronaut).

    Returns:
      :class:`Video` with float32 frames in [0, 1].
    """
    if min(frames, height, width) <= 0:
        raise InputError(f"the built-in clip needs a positive shape, got {frames}x{height}x{width}")
    if photo is None:
        found = find_div2k()
        if found:
            photo = np.asarray(Image.open(found[0]).convert("RGB"))
        else:
            from skimage import data

            photo = data.astronaut()
    if photo.dtype != np.uint8:
        photo = to_uint8(photo)
    source = Image.fromarray(photo)
    src_w, src_h = source.size
    out = []
    for k in range(frames):
        s = k / max(1, frames - 1)
        box_h = src_h * (0.70 - 0.25 * s)
        box_w = min(src_w, box_h * width / height)
        cx = box_w / 2 + (src_w - box_w) * (0.15 + 0.7 * s)
        cy = src_h * (0.5 + 0.1 * (s - 0.5))
        cy = min(max(cy, box_h / 2), src_h - box_h / 2)
        box = (cx - box_w / 2, cy - box_h / 2, cx + box_w / 2, cy + box_h / 2)
        out.append(np.asarray(source.resize((width, height), Image.BICUBIC, box=box), np.float32) / 255.0)
    return Video(np.stack(out)[..., :3], fps)


def save_video(path: str | os.PathLike, frames: np.ndarray, fps: float) -> None:
    """Writes float frames ``(T, H, W, C)`` in [0, 1] (clipped) as ``.mp4`` (H.264 at high quality through
    imageio's ffmpeg plugin; odd sides are padded by one repeated row/column, as H.264's 4:2:0 colour needs even
    sides) or ``.gif`` (Pillow), atomically.

    Raises:
      InputError: another suffix, or an unwritable folder.
    """
    import imageio.v3 as iio

    path = Path(path)
    pixels = to_uint8(frames)
    if pixels.ndim == 3:  # grayscale (T, H, W)
        pixels = np.repeat(pixels[..., None], 3, axis=-1)
    suffix = path.suffix.lower()
    if suffix == ".mp4":
        pad = ((0, 0), (0, pixels.shape[1] % 2), (0, pixels.shape[2] % 2), (0, 0))
        pixels = np.pad(pixels, pad, mode="edge")

        def write(tmp: Path) -> None:
            iio.imwrite(tmp, pixels, plugin="FFMPEG", fps=float(fps), macro_block_size=1, quality=9)
    elif suffix == ".gif":
        def write(tmp: Path) -> None:
            iio.imwrite(tmp, pixels, duration=max(20, int(round(1000 / fps))), loop=0)
    else:
        raise InputError(f"cannot write a video as '{suffix}'; use .mp4 or .gif")
    try:
        with _ffmpeg_subprocess():
            atomic_write(path, write)
    except OSError as err:
        raise InputError(f"cannot write '{path}' ({err.strerror or err}); choose a writable --out") from None


def frame_psnr(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """PSNR in dB of each frame of ``(T, H, W, C)`` videos in [0, 1]: ``10 log10(1 / mean_{h,w,c}(pred -
    target)^2)`` per frame; float64 ``(T,)`` (inf for an exact frame)."""
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    if pred.shape != target.shape or pred.ndim != 4:
        raise ValueError(f"frame_psnr needs two (T, H, W, C) arrays of one shape, got {pred.shape} and "
                         f"{target.shape}")
    mse = np.mean(np.square(pred - target), axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(1.0 / mse)
