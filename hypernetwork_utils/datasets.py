"""Many-signal datasets for hypernetworks and sweeps: CIFAR-10 batches and stacks of equal-size images.

A stack ``(N, H, W, C)`` is what :func:`inr_utils.sweeps.fit_many` fits one INR per image of, and what a
hypernetwork maps to N sets of INR parameters (stacking and the model-axis pixel data:
:mod:`inr_utils.model_axis`).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from inr_utils.errors import InputError

__all__ = ["load_cifar10_batch"]


def load_cifar10_batch(path: str | Path, count: int | None = None, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images of one CIFAR-10 training batch (Krizhevsky 2009) in the official python-pickle layout.

    Args:
      path: a batch file (``data_batch_1``), or the ``cifar-10-batches-py`` folder (its ``data_batch_1``
        is read), or the folder holding that folder.
      count: number of images to return (default: all from ``start``).
      start: index of the first image.

    Returns:
      ``(images, labels)``: float32 ``(count, 32, 32, 3)`` in [0, 1] and int64 ``(count,)`` class indices.
      The file stores each image as 3072 bytes, channel-major (1024 red, then green, then blue, rows first).

    Raises:
      InputError: the file is missing, is not a CIFAR-10 batch, or holds fewer than ``start + count`` images.
    """
    path = Path(path)
    for candidate in (path, path / "data_batch_1", path / "cifar-10-batches-py" / "data_batch_1"):
        if candidate.is_file():
            path = candidate
            break
    else:
        raise InputError(f"CIFAR-10 batch '{path}' not found; download CIFAR-10 (python version) from "
                         "https://www.cs.toronto.edu/~kriz/cifar.html and pass its data_batch_1 or folder")
    try:
        with open(path, "rb") as f:
            # the official format is a pickle; load only files you trust
            batch = pickle.load(f, encoding="bytes")
        data, labels = np.asarray(batch[b"data"], np.uint8), np.asarray(batch[b"labels"], np.int64)
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as err:
        raise InputError(f"'{path}' is not a CIFAR-10 python batch ({type(err).__name__}: {err})") from None
    if data.ndim != 2 or data.shape[1] != 3072:
        raise InputError(f"'{path}' has data of shape {data.shape}, expected (n, 3072)")
    stop = data.shape[0] if count is None else start + count
    if start < 0 or stop > data.shape[0] or stop <= start:
        raise InputError(f"'{path}' holds {data.shape[0]} images; cannot take {count} from index {start}")
    images = data[start:stop].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float32) / 255.0
    return images, labels[start:stop]
