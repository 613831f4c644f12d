"""Image input/output: any PNG/JPEG (RGB, grayscale, RGBA, palette, 16-bit) -> float32 ``(H, W, C)`` in [0, 1];
scikit-image's test images by name; resizing and cropping.

Colour images give C = 3 (an alpha channel is composited over white), grayscale images C = 1.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from inr_utils.errors import InputError
from inr_utils.files import atomic_write

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


#: Suffixes of the files :func:`image_files` reads from a folder (any case).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The image files of ``folder`` (suffixes :data:`IMAGE_SUFFIXES`, any case; hidden files skipped), sorted
    by name: what a script's ``--images DIR`` reads.

    Raises:
      InputError: ``folder`` is not a folder, or holds no image file.
    """
    path = Path(folder)
    if not path.is_dir():
        raise InputError(f"'{folder}' is not a folder; pass a folder of images ({', '.join(IMAGE_SUFFIXES)})")
    files = sorted((p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                    and p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: p.name)
    if not files:
        raise InputError(f"folder '{folder}' holds no image files ({', '.join(IMAGE_SUFFIXES)}); pass a folder of "
                         "images")
    return files


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
    folder is renamed into place, see :mod:`inr_utils.files`)."""
    pixels = Image.fromarray(to_uint8(image))
    atomic_write(path, lambda tmp: pixels.save(tmp, format="PNG"))


# --------------------------------------------------------------------------------------------- by name, resizing

#: Test images bundled with scikit-image that the experiments use by name (no download), with their kind.
IMAGE_KINDS = {
    "astronaut": "smooth photo", "camera": "photo (grayscale)", "coffee": "photo", "chelsea": "photo (cat)",
    "logo": "graphics, sharp edges", "horse": "binary silhouette", "grass": "texture (grayscale)",
    "brick": "texture (grayscale)", "gravel": "texture (grayscale)",
}


def centre_square(image: np.ndarray) -> np.ndarray:
    """The largest centred square of an ``(H, W, C)`` image."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return image[top:top + side, left:left + side]


def resize(image: np.ndarray, height: int, width: int, method: str = "bicubic") -> np.ndarray:
    """Resizes a float ``(H, W, C)`` image channel by channel with Pillow on float data.

    Args:
      method: ``bicubic`` (antialiased when shrinking), ``area`` (box filter: the mean over each output
        pixel's footprint, exact area averaging for integer factors), ``bilinear`` or ``nearest``.

    Returns:
      float32 ``(height, width, C)``, not clipped (bicubic may overshoot [0, 1] slightly).

    Raises:
      ValueError: unknown method or a non-positive size.
    """
    filters = {"bicubic": Image.BICUBIC, "area": Image.BOX, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST}
    if method not in filters:
        raise ValueError(f"unknown resize method {method!r}; choose one of: {', '.join(filters)}")
    if height <= 0 or width <= 0:
        raise ValueError(f"resize target must be positive, got {height}x{width}")
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32))
                           .resize((width, height), filters[method])) for c in range(image.shape[-1])]
    return np.stack(channels, axis=-1).astype(np.float32)


def fit_size(image: np.ndarray, size: int) -> np.ndarray:
    """Resizes (bicubic) so the longer side is ``size`` pixels (up or down), keeping the aspect ratio; clipped
    to [0, 1]."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    if (new_h, new_w) == (h, w):
        return image
    return np.clip(resize(image, new_h, new_w, "bicubic"), 0.0, 1.0)


def crop_fraction(image: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """The part of ``image`` inside ``box = (x0, x1, y0, y1)``, given as fractions of width and height in
    [0, 1]; at least one pixel."""
    x0, x1, y0, y1 = box
    h, w = image.shape[:2]
    left, top = min(w - 1, int(round(x0 * w))), min(h - 1, int(round(y0 * h)))
    right, bottom = max(left + 1, int(round(x1 * w))), max(top + 1, int(round(y1 * h)))
    return image[top:bottom, left:right]


def load_source(spec: str) -> tuple[str, np.ndarray]:
    """An image at its native resolution by scikit-image name (:data:`IMAGE_KINDS` or any other
    ``skimage.data`` image, centre-cropped to a square) or by file path; returns ``(label, image)`` with
    ``image`` float32 ``(H, W, C)`` in [0, 1] and ``label`` the name or the file's stem.

    Raises:
      InputError: neither a readable image file nor a scikit-image test image.
    """
    path = Path(spec)
    if path.suffix or os.sep in spec or path.exists():
        return path.stem, load_image(path)
    try:
        image = skimage_image(spec, size=None)
    except InputError:
        raise InputError(f"--image {spec!r} is neither an image file nor a scikit-image test image; pass a "
                         f"PNG/JPEG path or one of: {', '.join(IMAGE_KINDS)}") from None
    except Exception as err:  # noqa: BLE001 - skimage.data members that are not images, downloads failing
        raise InputError(f"cannot load scikit-image image {spec!r} ({err}); pass a PNG/JPEG path or one of: "
                         f"{', '.join(IMAGE_KINDS)}") from None
    return spec, centre_square(image)


def load_named_image(spec: str, size: int) -> tuple[str, np.ndarray]:
    """:func:`load_source` resized so the longer side is ``size`` pixels (square for scikit-image names)."""
    label, image = load_source(spec)
    return label, fit_size(image, size)
