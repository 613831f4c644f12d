"""Image input/output: any PNG/JPEG (RGB, grayscale, RGBA, palette, 16-bit) -> float32 ``(H, W, C)`` in [0, 1].

Colour images give C = 3 (an alpha channel is composited over white), grayscale images C = 1.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from inr_utils.errors import InputError

DEFAULT_IMAGE_NAME = "astronaut"


def _to_float_array(img: Image.Image) -> np.ndarray:
    """PIL image of any mode -> float32 ``(H, W, C)`` in [0, 1], C in {1, 3}."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        return np.clip(arr / peak, 0.0, 1.0).astype(np.float32)[..., None]
    if mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        peak = 1.0 if arr.max() <= 1.0 else 255.0
        return np.clip(arr / peak, 0.0, 1.0)[..., None]
    if mode in ("1", "L"):
        return (np.asarray(img.convert("L"), dtype=np.float32) / 255.0)[..., None]
    if mode == "LA" or mode == "P" and "transparency" not in img.info and img.palette.mode == "L":
        img = img.convert("LA") if mode == "LA" else img.convert("L")
        if img.mode == "L":
            return (np.asarray(img, dtype=np.float32) / 255.0)[..., None]
        la = np.asarray(img, dtype=np.float32) / 255.0
        return (la[..., :1] * la[..., 1:] + (1.0 - la[..., 1:]))
    rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
    alpha = rgba[..., 3:]
    return rgba[..., :3] * alpha + (1.0 - alpha)  # composite over white


def resize_to_max_size(image: np.ndarray, max_size: int | None) -> np.ndarray:
    """Downscales ``(H, W, C)`` so that max(H, W) <= max_size, keeping the aspect ratio (bicubic via PIL on
    float data; never upscales). ``None`` leaves the image as it is."""
    if max_size is None:
        return image
    if max_size <= 0:
        raise InputError(f"--max-size must be a positive number of pixels, got {max_size}")
    h, w = image.shape[:2]
    if max(h, w) <= max_size:
        return image
    scale = max_size / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    channels = [
        np.asarray(Image.fromarray(image[..., c]).resize((new_w, new_h), Image.BICUBIC))
        for c in range(image.shape[-1])
    ]
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0).astype(np.float32)


def load_image(path: str | os.PathLike, max_size: int | None = None) -> np.ndarray:
    """Reads an image file into float32 ``(H, W, C)`` in [0, 1] (C = 3 for colour, 1 for grayscale).

    Args:
      path: PNG, JPEG or anything else Pillow reads (8- or 16-bit, palette, alpha).
      max_size: if given, downscale so the longer side is at most this many pixels (aspect kept).

    Raises:
      InputError: the file is missing, a directory, empty, truncated, not an image, or has no pixels;
        the message says which and what to do.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"image file '{path}' does not exist; check the path (or omit --image for the default)")
    if path.is_dir():
        raise InputError(f"'{path}' is a directory, not an image file; pass the path of a PNG or JPEG file")
    if path.stat().st_size == 0:
        raise InputError(f"image file '{path}' is empty (0 bytes); pass a valid PNG or JPEG file")
    try:
        with Image.open(path) as img:
            img.load()
            array = _to_float_array(img)
    except UnidentifiedImageError:
        raise InputError(f"'{path}' is not an image Pillow can read; pass a PNG or JPEG file") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise InputError(f"image file '{path}' is corrupt or truncated ({err}); re-export or re-download it") from None
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise InputError(f"image '{path}' has no pixels (size {array.shape[1]}x{array.shape[0]}); pass a real image")
    return resize_to_max_size(array, max_size)


def default_image(size: int = 256) -> np.ndarray:
    """scikit-image's public-domain ``astronaut`` photo (512x512 RGB, bundled with the package, no download),
    resized to ``size x size`` with bicubic resampling; float32 ``(size, size, 3)`` in [0, 1]."""
    from skimage import data

    img = Image.fromarray(data.astronaut()).resize((size, size), Image.BICUBIC)
    return np.asarray(img, dtype=np.float32) / 255.0


def skimage_image(name: str, size: int | None = 256) -> np.ndarray:
    """A test image bundled with scikit-image (``astronaut``, ``camera``, ``coffee``, ...) as float32
    ``(H, W, C)`` in [0, 1], resized to ``size x size`` (bicubic) unless ``size`` is None."""
    from skimage import data

    if not hasattr(data, name):
        raise InputError(f"scikit-image has no test image {name!r}; try astronaut, camera, coffee or chelsea")
    arr = np.asarray(getattr(data, name)())
    img = Image.fromarray(arr)
    if size is not None:
        img = img.resize((size, size), Image.BICUBIC)
    return _to_float_array(img)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] (values outside are clipped) -> uint8 ``(H, W)`` or ``(H, W, 3)``."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def save_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Writes a float ``(H, W, C)`` image in [0, 1] as an 8-bit PNG, atomically (a temporary file in the same
    folder is renamed into place, so an interrupted save never leaves half a file)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".png")
    os.close(fd)
    try:
        Image.fromarray(to_uint8(image)).save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
