"""Many-signal datasets for hypernetworks and sweeps: stacks of equal-size images with labels.

An :class:`ImageSet` holds ``N`` images as uint8 ``(N, H, W, C)`` (1 byte per pixel channel, so all of
CIFAR-10 takes 180 MB) with int64 labels. It is what :func:`inr_utils.sweeps.fit_many` fits one INR per image
of (``as_float()``), and what a hypernetwork maps to N sets of INR parameters.

Sources (:func:`load_images` picks one from what a script's ``--data`` says):

- CIFAR-10 (Krizhevsky 2009) in the official python-pickle layout: :func:`load_cifar10`
  (and :func:`load_cifar10_batch`, float images of one batch file, for sweeps and benchmarks);
- a folder of image files, optionally one sub-folder per class: :func:`load_image_folder`;
- scikit-image's bundled LFW faces (no download), for tiny tests: :func:`load_lfw_faces`.

Training input: :func:`train_val_split` (deterministic, disjoint) and :class:`Batches`, which gives the batch of
any global step as a pure function of the step (fixed shapes, so a jitted step compiles once; resuming at step
k gives the batches an uninterrupted run sees; each process of a multi-host run takes its rows of the global
batch).

Pixel values: uint8 ``v`` stands for ``v / 255`` in [0, 1], the range every INR of the library is fitted to.
Resizing (image folders, LFW, CIFAR at another size): the largest centred region of the target's aspect ratio
is resampled to the target size with Pillow's bicubic filter, which is antialiased when downscaling.
"""

from __future__ import annotations

import dataclasses
import pickle
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from inr_utils.errors import InputError
from inr_utils.images import load_image

__all__ = [
    "CIFAR10_CLASSES",
    "IMAGE_SUFFIXES",
    "Batches",
    "ImageSet",
    "cifar10_folder",
    "load_cifar10",
    "load_cifar10_batch",
    "load_image_folder",
    "load_images",
    "load_lfw_faces",
    "resize_images",
    "to_float",
    "train_val_split",
]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
_CIFAR_FOLDER = "cifar-10-batches-py"
_TRAIN_BATCH = re.compile(r"data_batch_(\d+)")
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


# ----------------------------------------------------------------------------------------------------- CIFAR-10

class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: any other global (which a malicious pickle would use
    to run code) is refused. The official CIFAR-10 files need just numpy's ``_reconstruct``, ``ndarray`` and
    ``dtype``."""

    _ALLOWED = {("numpy._core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype"),
                ("numpy._core.multiarray", "scalar")}

    def find_class(self, module: str, name: str):
        module = re.sub(r"^numpy\.core\b", "numpy._core", module)  # pickles written by numpy < 2
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load '{module}.{name}' (only numpy arrays are allowed)")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    """The dict of a CIFAR-10 pickle with str keys (the official files, written by Python 2, have bytes keys)."""
    try:
        with open(path, "rb") as f:
            content = _ArrayUnpickler(f, encoding="bytes").load()
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, KeyError,
            TypeError, ValueError) as err:
        raise InputError(f"'{path}' is not a readable CIFAR-10 python batch ({type(err).__name__}: {err}); "
                         f"re-download CIFAR-10 (python version) from {CIFAR10_URL}") from None
    if not isinstance(content, dict):
        raise InputError(f"'{path}' holds a {type(content).__name__}, not a CIFAR-10 batch dict; "
                         f"re-download CIFAR-10 (python version) from {CIFAR10_URL}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in content.items()}


def _read_batch(path: Path, num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> (uint8 ``(n, 32, 32, 3)``, int64 ``(n,)``).

    The file stores each image as 3,072 bytes, channel-major: 1,024 red values (rows first), then green, then
    blue.
    """
    batch = _unpickle(path)
    fix = f"re-download CIFAR-10 (python version) from {CIFAR10_URL}"
    if "data" not in batch or "labels" not in batch:
        raise InputError(f"'{path}' lacks the 'data' and 'labels' entries of a CIFAR-10 batch; {fix}")
    data = np.asarray(batch["data"])
    try:
        labels = np.asarray(batch["labels"], np.int64)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"'{path}' has labels that are not integers; {fix}") from None
    if data.ndim != 2 or data.shape[1] != 3072 or not np.issubdtype(data.dtype, np.integer):
        raise InputError(f"'{path}' has data of shape {data.shape} ({data.dtype}), expected (n, 3072) uint8; {fix}")
    if data.size and (data.min() < 0 or data.max() > 255):
        raise InputError(f"'{path}' has pixel values outside [0, 255]; {fix}")
    if labels.shape != (data.shape[0],):
        raise InputError(f"'{path}' has {labels.size} labels for {data.shape[0]} images; {fix}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise InputError(f"'{path}' has labels outside [0, {num_classes}); {fix}")
    images = data.astype(np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _class_names(folder: Path) -> tuple[str, ...]:
    """``label_names`` of ``folder/batches.meta``, or the 10 standard names when that file is absent."""
    meta = folder / "batches.meta"
    if not meta.is_file():
        return CIFAR10_CLASSES
    names = _unpickle(meta).get("label_names")
    if not isinstance(names, (list, tuple)) or not names:
        raise InputError(f"'{meta}' has no 'label_names' list; delete it (the standard names are then used) or "
                         f"re-download CIFAR-10 (python version) from {CIFAR10_URL}")
    return tuple(n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names)


def cifar10_folder(path: str | Path) -> Path | None:
    """The folder holding CIFAR-10 batch files: ``path`` itself if it holds ``data_batch_N`` or ``test_batch``,
    else its ``cifar-10-batches-py`` sub-folder if that does; ``None`` when neither (or ``path`` is no folder)."""
    path = Path(path)
    for folder in (path, path / _CIFAR_FOLDER):
        if folder.is_dir() and any(_TRAIN_BATCH.fullmatch(p.name) or p.name == "test_batch"
                                   for p in folder.iterdir() if p.is_file()):
            return folder
    return None


def _train_files(folder: Path) -> list[Path]:
    """``data_batch_N`` files of ``folder`` in increasing N."""
    files = [p for p in folder.iterdir() if p.is_file() and _TRAIN_BATCH.fullmatch(p.name)]
    return sorted(files, key=lambda p: int(_TRAIN_BATCH.fullmatch(p.name).group(1)))


def load_cifar10(path: str | Path, split: str = "train") -> ImageSet:
    """CIFAR-10 (Krizhevsky 2009, "Learning multiple layers of features from tiny images") from the official
    python-pickle layout: ``cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``.

    Any subset of the batch files may be present (e.g. ``data_batch_1`` alone). The files are pickles: load
    only files you trust. As a precaution they are read with an unpickler that accepts numpy arrays and plain
    containers only, and refuses anything else.

    Args:
      path: the ``cifar-10-batches-py`` folder, the folder holding it, or one batch file (which is read
        whatever ``split`` says).
      split: ``"train"``: every ``data_batch_N`` present, in increasing N (10,000 images each);
        ``"test"``: ``test_batch``; ``"all"``: the training batches, then ``test_batch`` (those present).

    Returns:
      An :class:`ImageSet` of uint8 ``(N, 32, 32, 3)`` RGB images and int64 labels in [0, 10), with the class
      names of ``batches.meta`` (the 10 standard names when that file is absent); ``source`` is the folder
      (or file) read.

    Raises:
      InputError: ``split`` is unknown, the folder or the files of the split are missing, or a file is
        corrupt, truncated or not a CIFAR-10 batch; the message names the file and the fix.
    """
    if split not in ("train", "test", "all"):
        raise InputError(f"unknown CIFAR-10 split '{split}'; use 'train', 'test' or 'all'")
    path = Path(path)
    if path.is_file():
        folder, files = path.parent, [path]
    else:
        folder = cifar10_folder(path)
        if folder is None:
            what = "does not exist" if not path.exists() else "holds no CIFAR-10 batch files (data_batch_N, test_batch)"
            raise InputError(f"CIFAR-10 folder '{path}' {what}; download CIFAR-10 (python version) from "
                             f"{CIFAR10_URL} and pass its cifar-10-batches-py folder")
        train = _train_files(folder) if split in ("train", "all") else []
        test = [folder / "test_batch"] if split in ("test", "all") and (folder / "test_batch").is_file() else []
        files = train + test
        if not files:
            wanted = {"train": "data_batch_N files", "test": "test_batch", "all": "batch files"}[split]
            raise InputError(f"CIFAR-10 folder '{folder}' has no {wanted} for split '{split}'; download them from "
                             f"{CIFAR10_URL} or choose another split")
    class_names = _class_names(folder)
    parts = [_read_batch(f, len(class_names)) for f in files]
    images = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    labels = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
    return ImageSet(images, labels, class_names, str(path if path.is_file() else folder))


def load_cifar10_batch(path: str | Path, count: int | None = None, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images of one CIFAR-10 training batch (Krizhevsky 2009) in the official python-pickle layout, as floats.

    Args:
      path: a batch file (``data_batch_1``), or the ``cifar-10-batches-py`` folder (its ``data_batch_1``
        is read), or the folder holding that folder. A pickle: load only files you trust.
      count: number of images to return (default: all from ``start``).
      start: index of the first image.

    Returns:
      ``(images, labels)``: float32 ``(count, 32, 32, 3)`` in [0, 1] and int64 ``(count,)`` class indices.
      The file stores each image as 3072 bytes, channel-major (1024 red, then green, then blue, rows first).

    Raises:
      InputError: the file is missing, is not a CIFAR-10 batch, or holds fewer than ``start + count`` images.
    """
    path = Path(path)
    for candidate in (path, path / "data_batch_1", path / _CIFAR_FOLDER / "data_batch_1"):
        if candidate.is_file():
            path = candidate
            break
    else:
        raise InputError(f"CIFAR-10 batch '{path}' not found; download CIFAR-10 (python version) from "
                         f"{CIFAR10_URL} and pass its data_batch_1 or folder")
    images, labels = _read_batch(path)
    stop = images.shape[0] if count is None else start + count
    if start < 0 or stop > images.shape[0] or stop <= start:
        raise InputError(f"'{path}' holds {images.shape[0]} images; cannot take {count} from index {start}")
    return to_float(images[start:stop]), labels[start:stop]


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
    if path.is_file() or cifar10_folder(path) is not None:
        data = load_cifar10(path, split)
        images = resize_images(data.images, data.image_size if size is None else size, channels)
        return dataclasses.replace(data, images=images)
    return load_image_folder(path, DEFAULT_SIZE if size is None else size, 3 if channels is None else channels)


# ----------------------------------------------------------------------------------------- splits and batches

def train_val_split(images: ImageSet, val_count: int | None = None, val_fraction: float = 0.1, seed: int = 0
                    ) -> tuple[ImageSet, ImageSet]:
    """Splits a set into disjoint training and validation sets covering it, the same for the same seed.

    The validation images are the first ``val_count`` of ``numpy.random.default_rng(seed).permutation(N)``;
    both parts keep the original order (indices ascending), so the split depends on N and the seed only.

    Args:
      images: the set (N images).
      val_count: number of validation images, 1 to N - 1; default ``round(val_fraction * N)`` (at least 1).
      val_fraction: used when ``val_count`` is None; in (0, 1).
      seed: non-negative seed of the permutation.

    Returns:
      ``(train, val)`` with ``N - val_count`` and ``val_count`` images.

    Raises:
      InputError: the counts leave either part empty.
    """
    n = len(images)
    if val_count is None:
        if not 0.0 < val_fraction < 1.0:
            raise InputError(f"validation fraction must lie in (0, 1), got {val_fraction}")
        val_count = max(1, round(val_fraction * n))
    if not 1 <= val_count < n:
        raise InputError(f"cannot hold out {val_count} of {n} images for validation; pass a validation count from 1 "
                         f"to {n - 1}" + (" (or more images)" if n < 2 else ""))
    order = np.random.default_rng(seed).permutation(n)
    return images.subset(np.sort(order[val_count:])), images.subset(np.sort(order[:val_count]))


class Batches:
    """Shuffled fixed-size batches as a pure function of the global step, for a jitted training step.

    Epoch ``e = step // steps_per_epoch`` visits the images in the order
    ``numpy.random.default_rng([seed, e]).permutation(N)``; step ``s`` takes positions
    ``[(s % steps_per_epoch) * B, ... + B)`` of it. The last ``N % B`` images of each permutation are dropped so
    that every batch has the same shape (one compilation); a different permutation each epoch drops different
    ones. Nothing depends on earlier calls: resuming at step ``k`` gives the batches an uninterrupted run sees.

    Several processes (multi-host data parallelism) each build a ``Batches`` over the same images with the same
    seed and their own ``process_index``: process ``p`` of ``P`` gets rows ``[p * B / P, (p + 1) * B / P)`` of the
    global batch, so the processes' rows, concatenated in process order, are the global batch (what
    ``jax.make_array_from_process_local_data`` assembles).

    Args:
      images: an :class:`ImageSet` (uint8, returned as float32 ``v / 255``), or an array ``(N, H, W, C)`` (uint8
        likewise; float returned as float32).
      batch_size: B, the global batch size (over all processes), 1 to N, divisible by ``process_count``.
      seed: non-negative shuffling seed.
      process_index: this process, 0 to ``process_count - 1`` (``jax.process_index()``).
      process_count: number of processes P (``jax.process_count()``).

    Attributes:
      steps_per_epoch: ``N // B``.
      local_batch_size: ``B / P``, the rows this process gets.
    """

    def __init__(self, images: ImageSet | np.ndarray, batch_size: int, seed: int = 0, process_index: int = 0,
                 process_count: int = 1):
        array = images.images if isinstance(images, ImageSet) else np.asarray(images)
        if array.ndim != 4:
            raise ValueError(f"images must be (N, H, W, C), got shape {array.shape}")
        n = array.shape[0]
        if batch_size < 1 or n < batch_size:
            raise InputError(f"batch size {batch_size} does not fit {n} training images; use a batch size from 1 to "
                             f"{n}" + (" or more images" if n < batch_size else ""))
        if seed < 0:
            raise InputError(f"the shuffling seed must be non-negative, got {seed}")
        if process_count < 1 or not 0 <= process_index < process_count:
            raise ValueError(f"process_index {process_index} is not in [0, process_count={process_count})")
        if batch_size % process_count:
            raise InputError(f"batch size {batch_size} is not divisible by the {process_count} processes; use a "
                             f"multiple of {process_count}")
        self.images = array
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.process_index = int(process_index)
        self.process_count = int(process_count)
        self.local_batch_size = self.batch_size // self.process_count
        self.steps_per_epoch = n // self.batch_size
        self._cached: tuple[int, np.ndarray] | None = None

    @property
    def num_images(self) -> int:
        """N."""
        return int(self.images.shape[0])

    def epoch(self, step: int) -> int:
        """The epoch of global step ``step`` (steps count from 0)."""
        return int(step) // self.steps_per_epoch

    def permutation(self, epoch: int) -> np.ndarray:
        """int64 ``(N,)``: the order in which epoch ``epoch`` visits the images."""
        if self._cached is None or self._cached[0] != epoch:
            self._cached = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.num_images))
        return self._cached[1]

    def global_indices(self, step: int) -> np.ndarray:
        """int64 ``(B,)``: image indices of the whole batch of global step ``step`` (over all processes)."""
        if step < 0:
            raise ValueError(f"step must be non-negative, got {step}")
        start = (int(step) % self.steps_per_epoch) * self.batch_size
        return self.permutation(self.epoch(step))[start:start + self.batch_size]

    def indices(self, step: int) -> np.ndarray:
        """int64 ``(B / P,)``: image indices of this process's rows of the batch of step ``step`` (with one
        process: the whole batch)."""
        start = self.process_index * self.local_batch_size
        return self.global_indices(step)[start:start + self.local_batch_size]

    def batch(self, step: int) -> np.ndarray:
        """float32 ``(B / P, H, W, C)`` in [0, 1]: this process's images of step ``step``."""
        return to_float(self.images[self.indices(step)])

    def chunk(self, step: int, num_steps: int) -> np.ndarray:
        """float32 ``(num_steps, B / P, H, W, C)``: the batches of steps ``step .. step + num_steps - 1`` stacked
        (the input of a ``lax.scan`` over that many steps); ``chunk(s, k)[i] == batch(s + i)``."""
        if num_steps < 1:
            raise ValueError(f"num_steps must be positive, got {num_steps}")
        indices = np.stack([self.indices(step + i) for i in range(num_steps)])
        return to_float(self.images[indices])
