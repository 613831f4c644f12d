"""CIFAR-10 (Krizhevsky 2009) in its official python-pickle layout, ``cifar-10-batches-py/{data_batch_1..5,
test_batch, batches.meta}``, read into :class:`hypernetwork_utils.datasets.ImageSet` s (any subset of the files).
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np

from hypernetwork_utils.datasets import ImageSet, to_float
from inr_utils.errors import InputError

__all__ = ["CIFAR10_CLASSES", "cifar10_folder", "load_cifar10", "load_cifar10_batch"]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
_CIFAR_FOLDER = "cifar-10-batches-py"
_TRAIN_BATCH = re.compile(r"data_batch_(\d+)")


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
