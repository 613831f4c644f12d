"""Many-signal datasets for hypernetworks and sweeps: stacks of equal-size images with labels.

An :class:`ImageSet` holds ``N`` images as uint8 ``(N, H, W, C)`` (1 byte per pixel channel, so all of
CIFAR-10 takes 180 MB) with int64 labels. It is what :func:`inr_utils.sweeps.fit_many` fits one INR per image
of (``as_float()``), and what a hypernetwork maps to N sets of INR parameters.

Sources (:func:`load_images` picks one from what a script's ``--data`` says):

- CIFAR-10 (Krizhevsky 2009) in the official python-pickle layout: :func:`hypernetwork_utils.cifar10.load_cifar10`
  (and ``load_cifar10_batch``, float images of one batch file, for sweeps and benchmarks);
- a folder of image files, optionally one sub-folder per class: :func:`load_image_folder`;
- scikit-image's bundled LFW faces (no download), for tiny tests: :func:`load_lfw_faces`.

Training input: :mod:`hypernetwork_utils.batches` (the train/validation split and step-indexed batches).

Pixel values: uint8 ``v`` stands for ``v / 255`` in [0, 1], the range every INR of the library is fitted to.
Resizing (image folders, LFW, CIFAR at another size): the largest centred region of the target's aspect ratio
is resampled to the target size with Pillow's bicubic filter, which is antialiased when downscaling.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from inr_utils.errors import InputError
from inr_utils.images import load_image

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageSet",
    "load_image_folder",
    "load_images",
    "load_lfw_faces",
    "resize_images",
    "to_float",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
DEFAULT_SIZE = (32, 32)


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 images of any shape -> float32 of the same shape in [0, 1] (``v / 255``); float input is returned
    as float32 unchanged in value."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(255.0)
    return np.asarray(images, np.float32)


@dataclasses.dataclass(frozen=True, eq=False)
class ImageSet:
    """``N`` images of one size with their class labels.

    Attributes:
      images: uint8 ``(N, H, W, C)``; value ``v`` means intensity ``v / 255``. C is 1 (gray) or 3 (RGB).
      labels: int64 ``(N,)`` class indices into ``class_names``; -1 where the class is unknown.
      class_names: names of the classes (empty when there are none).
      source: where the images came from (a path or a name), for reports and run configs.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...] = ()
    source: str = ""

    def __post_init__(self) -> None:
        images, labels = np.asarray(self.images), np.asarray(self.labels)
        if images.dtype != np.uint8 or images.ndim != 4:
            raise ValueError(f"ImageSet.images must be uint8 (N, H, W, C), got {images.dtype} {images.shape}")
        if labels.shape != images.shape[:1]:
            raise ValueError(f"ImageSet.labels must have shape ({images.shape[0]},), got {labels.shape}")
        labels = labels.astype(np.int64, copy=False)
        top = len(self.class_names) if self.class_names else np.iinfo(np.int64).max
        if labels.size and (labels.min() < -1 or labels.max() >= top):
            raise ValueError(f"ImageSet.labels must lie in [-1, {len(self.class_names)}), got "
                             f"[{labels.min()}, {labels.max()}]")
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` in pixels."""
        return int(self.images.shape[1]), int(self.images.shape[2])

    @property
    def channels(self) -> int:
        """C: 1 (gray) or 3 (RGB)."""
        return int(self.images.shape[3])

    def subset(self, indices: Sequence[int] | np.ndarray) -> ImageSet:
        """The images at ``indices`` (int ``(K,)``, in that order, repeats allowed; or a boolean mask ``(N,)``),
        with the same class names and source."""
        indices = np.asarray(indices)
        indices = np.flatnonzero(indices) if indices.dtype == bool else indices.astype(np.int64).reshape(-1)
        return ImageSet(self.images[indices], self.labels[indices], self.class_names, self.source)

    def as_float(self) -> np.ndarray:
        """float32 ``(N, H, W, C)`` in [0, 1] (a new array)."""
        return to_float(self.images)


# ----------------------------------------------------------------------------------------------------- resizing

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601, as Pillow's RGB -> "L"


def _image_size(size: int | Sequence[int]) -> tuple[int, int]:
    """``(H, W)`` from ``(H, W)`` or one side ``S`` (square); positive ints."""
    if isinstance(size, (int, np.integer)):
        size = (size, size)
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError):
        raise InputError(f"image size must be (height, width) or one number of pixels, got {size!r}") from None
    if height < 1 or width < 1:
        raise InputError(f"image size must be positive, got {height}x{width}")
    return height, width


def _check_channels(channels: int) -> int:
    if channels not in (1, 3):
        raise InputError(f"channels must be 1 (gray) or 3 (RGB), got {channels}")
    return channels


def _crop_box(height: int, width: int, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """(left, upper, right, lower) of the largest centred region of ``height x width`` pixels with the aspect
    ratio of ``size`` (H, W), in pixel-edge coordinates (fractions allowed)."""
    target_h, target_w = size
    if height * target_w > target_h * width:  # taller than the target: crop rows
        crop = width * target_h / target_w
        return 0.0, (height - crop) / 2, float(width), (height + crop) / 2
    crop = height * target_w / target_h
    return (width - crop) / 2, 0.0, (width + crop) / 2, float(height)


def _resize_crop(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """float32 ``(h, w, C)`` in [0, 1] -> float32 ``(H, W, C)`` in [0, 1]: the centred region of the target's
    aspect ratio, resampled bicubically (antialiased when shrinking: Pillow widens the filter by the scale)."""
    if image.shape[:2] == size:
        return image.astype(np.float32, copy=False)
    box = _crop_box(image.shape[0], image.shape[1], size)
    planes = [np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], np.float32))
                         .resize((size[1], size[0]), Image.BICUBIC, box=box)) for c in range(image.shape[-1])]
    return np.clip(np.stack(planes, axis=-1), 0.0, 1.0)  # bicubic overshoots at edges


def _convert_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """float ``(..., C)`` with C in {1, 3} -> ``(..., channels)``: gray repeated, or RGB to BT.601 luma."""
    if image.shape[-1] == channels:
        return image
    if channels == 3:
        return np.repeat(image, 3, axis=-1)
    return (image @ _LUMA)[..., None]


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def resize_images(images: np.ndarray, size: int | Sequence[int], channels: int | None = None) -> np.ndarray:
    """Centre-crops and resizes a stack of images (see the module docstring), optionally changing channels.

    Args:
      images: uint8 ``(N, h, w, C)``, C in {1, 3}.
      size: ``(H, W)`` in pixels, or one side for a square.
      channels: 1 (RGB -> BT.601 luma) or 3 (gray repeated); ``None`` keeps C.

    Returns:
      uint8 ``(N, H, W, channels)``; the input itself when nothing changes.
    """
    size = _image_size(size)
    channels = images.shape[-1] if channels is None else _check_channels(channels)
    if images.shape[1:3] == size and images.shape[-1] == channels:
        return images
    out = np.empty((images.shape[0], *size, channels), np.uint8)
    for i, image in enumerate(images):
        out[i] = _to_uint8(_convert_channels(_resize_crop(to_float(image), size), channels))
    return out


# ------------------------------------------------------------------------------------------ folders, LFW, specs

def _image_files(folder: Path) -> list[Path]:
    """Image files of ``folder`` (suffixes :data:`IMAGE_SUFFIXES`, any case; hidden files skipped), by name."""
    return sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: p.name)


def load_image_folder(path: str | Path, size: int | Sequence[int] = DEFAULT_SIZE, channels: int = 3) -> ImageSet:
    """Every image file of a folder, centre-cropped and resized to one size.

    Two layouts: image files directly in ``path`` (labels -1, no class names), or one sub-folder per class
    (``path/cat/*.png``, ``path/dog/*.png``; class names = the sorted names of the sub-folders holding images,
    labels = their indices). Files are read in name order (class by class). Other files (``README.txt``,
    hidden files) are ignored. Pixels: 8- or 16-bit, gray, RGB, palette; alpha is composited over white
    (:func:`inr_utils.images.load_image`).

    Args:
      path: the folder.
      size: ``(H, W)`` in pixels (or one side for a square): each image is scaled so that its shorter side
        (relative to the target's aspect ratio) fits, then centre-cropped (see the module docstring).
      channels: 3 (RGB; gray images repeated) or 1 (gray; RGB converted to BT.601 luma).

    Returns:
      An :class:`ImageSet` of uint8 ``(N, H, W, channels)``; ``source`` is ``str(path)``.

    Raises:
      InputError: the folder is missing or has no images, mixes loose images with class sub-folders, or a
        file cannot be read (the message names the file and suggests removing it).
    """
    path, size, channels = Path(path), _image_size(size), _check_channels(channels)
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is a file, not a folder"
        raise InputError(f"image folder '{path}' {what}; pass a folder of image files ({', '.join(IMAGE_SUFFIXES)})")
    loose = _image_files(path)
    classes = [d for d in sorted(path.iterdir(), key=lambda d: d.name)
               if d.is_dir() and not d.name.startswith(".") and _image_files(d)]
    if classes and loose:
        raise InputError(f"image folder '{path}' mixes {len(loose)} image files (e.g. '{loose[0].name}') with class "
                         f"sub-folders ({', '.join(d.name for d in classes)}); move the loose files into a class "
                         "sub-folder or remove them")
    if classes:
        files = [(f, label) for label, d in enumerate(classes) for f in _image_files(d)]
    elif loose:
        files = [(f, -1) for f in loose]
    else:
        raise InputError(f"image folder '{path}' has no image files ({', '.join(IMAGE_SUFFIXES)}) in it or in "
                         "its sub-folders; pass a folder of images")
    images = np.empty((len(files), *size, channels), np.uint8)
    for i, (file, _) in enumerate(files):
        try:
            image = load_image(file)
        except InputError as err:
            raise InputError(f"{err}, or remove it from the image folder '{path}'") from None
        if channels == 1:  # convert first: resample one plane instead of three
            image = _resize_crop(_convert_channels(image, 1), size)
        else:
            image = _convert_channels(_resize_crop(image, size), 3)
        images[i] = _to_uint8(image)
    labels = np.array([label for _, label in files], np.int64)
    return ImageSet(images, labels, tuple(d.name for d in classes), str(path))


LFW_FACES = 100


def load_lfw_faces(count: int | None = None, size: int | Sequence[int] = DEFAULT_SIZE, channels: int = 1
                   ) -> ImageSet:
    """Faces of scikit-image's ``skimage.data.lfw_subset()`` (Labeled Faces in the Wild, Huang et al. 2007):
    shipped with scikit-image, no download, loads in milliseconds; for tiny tests and demos.

    That subset holds 100 faces followed by 100 non-face background patches, 25x25 gray; only the faces are
    returned.

    Args:
      count: the first ``count`` faces, 1 to 100 (default: all 100).
      size: ``(H, W)`` in pixels (or one side): the 25x25 faces are resized bicubically (centre-cropped if the
        aspect ratio differs).
      channels: 1 (gray) or 3 (gray repeated, for RGB models).

    Returns:
      An :class:`ImageSet` of uint8 ``(count, H, W, channels)``, labels -1, no class names; ``source`` is
      ``"lfw"`` or ``"lfw:COUNT"`` (what :func:`load_images` accepts).
    """
    from skimage import data as skdata  # here: importing scikit-image costs a fraction of a second

    size, channels = _image_size(size), _check_channels(channels)
    if count is not None and not 1 <= count <= LFW_FACES:
        raise InputError(f"lfw has {LFW_FACES} faces; ask for 1 to {LFW_FACES}, got {count}")
    faces = np.asarray(skdata.lfw_subset()[:LFW_FACES], np.float32)
    if faces.max() > 1.0:  # documented as uint8 by some scikit-image versions, float in [0, 1] by others
        faces = faces / np.float32(255.0)
    faces = faces[:count, :, :, None]
    images = np.stack([_to_uint8(_resize_crop(face, size)) for face in faces])
    return ImageSet(resize_images(images, size, channels), np.full(len(images), -1, np.int64), (),
                    "lfw" if count is None else f"lfw:{count}")


def load_images(spec: str | Path, size: int | Sequence[int] | None = None, split: str = "train",
                channels: int | None = None) -> ImageSet:
    """The images a script's ``--data`` names.

    Args:
      spec: ``"lfw"`` or ``"lfw:N"`` (scikit-image's faces, :func:`load_lfw_faces`; a folder really named
        ``lfw`` is reached as ``./lfw``); a CIFAR-10 folder or batch file (recognised by its ``data_batch_N`` /
        ``test_batch`` files, :func:`load_cifar10`); or any other folder of images (:func:`load_image_folder`).
      size: ``(H, W)`` (or one side). Default: 32x32 for LFW and image folders, CIFAR-10's own 32x32; CIFAR-10
        is resized when another size is asked for.
      split: CIFAR-10 split: ``"train"``, ``"test"`` or ``"all"`` (ignored by the other sources).
      channels: 1 or 3; default: 1 for LFW, 3 for CIFAR-10 and image folders.

    Returns:
      An :class:`ImageSet` of uint8 ``(N, H, W, C)``.

    Raises:
      InputError: ``spec`` names nothing of the above, or the loader of the source refuses its files.
    """
    text = str(spec)
    match = re.fullmatch(r"lfw(?::(\d+))?", text)
    if match:
        count = int(match.group(1)) if match.group(1) else None
        return load_lfw_faces(count, DEFAULT_SIZE if size is None else size, 1 if channels is None else channels)
    path = Path(text)
    if not path.exists():
        raise InputError(f"data '{text}' is neither 'lfw', 'lfw:N' nor an existing folder or file; pass a CIFAR-10 "
                         "folder (cifar-10-batches-py), a folder of images, or lfw")
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        raise InputError(f"data '{text}' is one image; pass the folder of images holding it ('{path.parent}'), a "
                         "CIFAR-10 folder, or lfw")
    from hypernetwork_utils.cifar10 import cifar10_folder, load_cifar10  # cifar10 builds on this module

    if path.is_file() or cifar10_folder(path) is not None:
        data = load_cifar10(path, split)
        images = resize_images(data.images, data.image_size if size is None else size, channels)
        return dataclasses.replace(data, images=images)
    return load_image_folder(path, DEFAULT_SIZE if size is None else size, 3 if channels is None else channels)
