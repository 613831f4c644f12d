"""Tests of hypernetwork_utils.datasets: CIFAR-10 pickles (shared file, synthetic layouts, corrupt input)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT

from hypernetwork_utils.datasets import CIFAR10_CLASSES, ImageSet, load_cifar10, load_cifar10_batch
from inr_utils.errors import InputError

SHARED_CIFAR = REPO_ROOT.parent / "shared" / "data" / "cifar10"


def write_batch(path: Path, data: np.ndarray, labels, **extra) -> Path:
    """A CIFAR-10 python batch: uint8 data ``(n, 3072)`` channel-major, labels list; bytes keys like the
    official (Python 2) files."""
    with open(path, "wb") as f:
        pickle.dump({b"data": data, b"labels": list(labels), **extra}, f)
    return path


@pytest.fixture
def cifar_layout(tmp_path) -> tuple[Path, dict[str, np.ndarray]]:
    """tmp/cifar-10-batches-py with data_batch_1 (3 images), data_batch_2 (2), test_batch (4), batches.meta.

    Image k of batch b has every byte equal to 10 * b + k (test_batch: b = 9), label (b + k) % 3.
    """
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    values = {}
    for name, b, n in (("data_batch_1", 1, 3), ("data_batch_2", 2, 2), ("test_batch", 9, 4)):
        values[name] = np.array([10 * b + k for k in range(n)], np.uint8)
        write_batch(folder / name, np.repeat(values[name][:, None], 3072, axis=1), [(b + k) % 3 for k in range(n)])
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"cat", b"dog", b"emu"], b"num_vis": 3072}, f)
    return folder, values


# ----------------------------------------------------------------------------------------------------- ImageSet

def test_image_set_basics():
    images = np.arange(4 * 2 * 3 * 1, dtype=np.uint8).reshape(4, 2, 3, 1)
    data = ImageSet(images, [0, 1, -1, 1], ("a", "b"), "test")
    assert len(data) == 4 and data.image_size == (2, 3) and data.channels == 1
    assert data.labels.dtype == np.int64
    sub = data.subset([3, 1])
    assert np.array_equal(sub.images, images[[3, 1]]) and sub.labels.tolist() == [1, 1]
    assert sub.class_names == ("a", "b") and sub.source == "test"
    floats = data.as_float()
    assert floats.dtype == np.float32 and floats.shape == images.shape
    assert floats[3, 1, 2, 0] == pytest.approx(23 / 255)
    with pytest.raises(ValueError, match="uint8"):
        ImageSet(images.astype(np.float32), [0, 0, 0, 0])
    with pytest.raises(ValueError, match="labels"):
        ImageSet(images, [0, 1, 2, 0], ("a", "b"))  # label 2 has no class name
    with pytest.raises(ValueError, match="shape"):
        ImageSet(images, [0, 1])


# ----------------------------------------------------------------------------------------------------- CIFAR-10

@pytest.mark.skipif(not SHARED_CIFAR.is_dir(), reason=f"shared CIFAR-10 batch not found at {SHARED_CIFAR}")
def test_load_cifar10_shared_batch():
    data = load_cifar10(SHARED_CIFAR)  # the folder holding cifar-10-batches-py (data_batch_1 only)
    assert data.images.shape == (10_000, 32, 32, 3) and data.images.dtype == np.uint8
    assert data.labels.dtype == np.int64 and data.class_names == CIFAR10_CLASSES
    # known values of the official data_batch_1 (md5 c99cafc152244af753f735de768cd75f)
    assert data.images[0, 0, :5, 0].tolist() == [59, 43, 50, 68, 98]
    assert data.labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert np.bincount(data.labels).tolist() == [1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981]
    floats = data.subset(range(8)).as_float()
    assert floats.dtype == np.float32 and 0.0 <= floats.min() and floats.max() <= 1.0
    with pytest.raises(InputError, match="test_batch"):  # the shared folder has no test batch
        load_cifar10(SHARED_CIFAR, split="test")


def test_load_cifar10_splits(cifar_layout):
    folder, values = cifar_layout
    train = load_cifar10(folder)
    assert train.images.shape == (5, 32, 32, 3) and train.class_names == ("cat", "dog", "emu")
    assert train.images[:, 7, 9, 2].tolist() == [10, 11, 12, 20, 21]  # data_batch_1 then data_batch_2
    assert train.labels.tolist() == [1, 2, 0, 2, 0]
    assert train.source == str(folder)
    test = load_cifar10(folder.parent, split="test")  # the parent folder works too
    assert test.images[:, 0, 0, 0].tolist() == values["test_batch"].tolist()
    both = load_cifar10(folder, split="all")
    assert both.images[:, 31, 31, 1].tolist() == [10, 11, 12, 20, 21, 90, 91, 92, 93]
    one = load_cifar10(folder / "data_batch_2")  # one file
    assert one.images[:, 0, 0, 0].tolist() == [20, 21] and one.class_names == ("cat", "dog", "emu")
    # any subset of the training files, read in N order (data_batch_10 after data_batch_2)
    (folder / "data_batch_1").unlink()
    write_batch(folder / "data_batch_10", np.full((1, 3072), 7, np.uint8), [1])
    (folder / "batches.meta").unlink()  # then the standard names
    subset = load_cifar10(folder)
    assert subset.images[:, 0, 0, 0].tolist() == [20, 21, 7] and subset.class_names == CIFAR10_CLASSES
    with pytest.raises(InputError, match="split 'valid'"):
        load_cifar10(folder, split="valid")


def test_load_cifar10_channel_order(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (2, 3072), dtype=np.uint8)
    write_batch(tmp_path / "data_batch_1", data, [4, 5])
    images = load_cifar10(tmp_path).images
    # channel-major rows: red plane first; pixel (row 1, column 2) at offset 32 + 2 of each plane
    assert images[1, 1, 2].tolist() == data[1, [34, 1024 + 34, 2048 + 34]].tolist()
    assert np.array_equal(load_cifar10_batch(tmp_path)[0], images / np.float32(255))


def test_load_cifar10_bad_input(tmp_path, cifar_layout):
    folder, _ = cifar_layout
    with pytest.raises(InputError, match="does not exist"):
        load_cifar10(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no CIFAR-10 batch files"):
        load_cifar10(empty)

    def error(path: Path, named: Path | None = None) -> str:
        """The message of load_cifar10(path), which must name the file ``named`` (default: ``path``)."""
        with pytest.raises(InputError) as info:
            load_cifar10(path)
        message = str(info.value)
        assert str(named or path) in message and "\n" not in message
        return message

    original = (folder / "data_batch_2").read_bytes()
    (folder / "data_batch_2").write_bytes(original[: len(original) // 2])  # truncated
    assert "not a readable CIFAR-10 python batch" in error(folder / "data_batch_2")
    error(folder, named=folder / "data_batch_2")  # reading the folder names the bad file
    (folder / "data_batch_2").write_bytes(b"")
    error(folder / "data_batch_2")
    (folder / "data_batch_2").write_bytes(b"not a pickle at all")
    error(folder / "data_batch_2")
    write_batch(folder / "data_batch_2", np.zeros((2, 1024), np.uint8), [0, 1])  # wrong shape
    assert "(n, 3072)" in error(folder / "data_batch_2")
    write_batch(folder / "data_batch_2", np.zeros((2, 3072), np.uint8), [0])  # labels missing
    assert "1 labels for 2 images" in error(folder / "data_batch_2")
    write_batch(folder / "data_batch_2", np.zeros((2, 3072), np.uint8), [0, 3])  # beyond the 3 class names
    assert "labels outside [0, 3)" in error(folder / "data_batch_2")
    with open(folder / "data_batch_2", "wb") as f:
        pickle.dump([1, 2, 3], f)
    assert "not a CIFAR-10 batch dict" in error(folder / "data_batch_2")
    with open(folder / "data_batch_2", "wb") as f:  # a pickle that would call a function: refused
        pickle.dump({b"data": Path("x"), b"labels": []}, f)
    assert "refusing" in error(folder / "data_batch_2")
    (folder / "batches.meta").write_bytes(b"\x80\x04junk")
    error(folder / "data_batch_1", named=folder / "batches.meta")
