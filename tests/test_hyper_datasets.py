"""Tests of hypernetwork_utils.datasets: CIFAR-10 pickles (shared file, synthetic layouts, corrupt input), image
folders, LFW faces, --data specs, the train/validation split and step-indexed batches."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT, write_png

from hypernetwork_utils.batches import Batches, train_val_split
from hypernetwork_utils.cifar10 import CIFAR10_CLASSES, load_cifar10, load_cifar10_batch
from hypernetwork_utils.datasets import ImageSet, load_image_folder, load_images, load_lfw_faces
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
    assert data.subset(np.array([True, False, False, True])).labels.tolist() == [0, 1]
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


# ------------------------------------------------------------------------------------------------ image folders

def test_load_image_folder_flat(tmp_path):
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)  # h=32, w=48: the centre 32 columns, no scaling
    tall = rng.integers(0, 256, (64, 32), dtype=np.uint8)  # gray, h=64: the centre 32 rows
    bands = np.zeros((64, 128, 3), np.uint8)  # red | green (the centre half) | blue, halved by the resize
    bands[:, :32, 0], bands[:, 32:96, 1], bands[:, 96:, 2] = 255, 255, 255
    write_png(tmp_path / "a_wide.png", wide)
    write_png(tmp_path / "b_tall.png", tall)
    write_png(tmp_path / "c_bands.png", bands)
    (tmp_path / "notes.txt").write_text("not an image")
    write_png(tmp_path / ".hidden.png", wide)
    data = load_image_folder(tmp_path, size=(32, 32))
    assert data.images.shape == (3, 32, 32, 3) and data.images.dtype == np.uint8
    assert data.labels.tolist() == [-1, -1, -1] and data.class_names == () and data.source == str(tmp_path)
    assert np.array_equal(data.images[0], wide[:, 8:40])
    assert np.array_equal(data.images[1], np.repeat(tall[16:48, :, None], 3, axis=-1))
    small = load_image_folder(tmp_path, size=(16, 16)).images[2]
    assert np.all(small[:, 1:15] == [0, 255, 0])  # the centre, away from the filter's reach into red and blue
    assert small[:, :, 1].min() > 200 and small[:, :, [0, 2]].max() < 40
    gray = load_image_folder(tmp_path, size=(8, 12), channels=1)
    assert gray.images.shape == (3, 8, 12, 1)
    assert gray.images[2, 4, 6, 0] == round(0.587 * 255)  # BT.601 luma of pure green


def test_load_image_folder_classes_and_errors(tmp_path):
    for cls, names in (("dogs", ["y.png", "x.png"]), ("cats", ["z.png"])):
        (tmp_path / cls).mkdir()
        for i, name in enumerate(names):
            write_png(tmp_path / cls / name, np.full((20, 30, 3), 10 * i + (cls == "dogs"), np.uint8))
    (tmp_path / "empty").mkdir()
    data = load_image_folder(tmp_path, size=(16, 16))
    assert data.class_names == ("cats", "dogs") and data.labels.tolist() == [0, 1, 1]
    assert data.images[:, 5, 5, 0].tolist() == [0, 11, 1]  # cats/z, dogs/x, dogs/y: by name within a class

    write_png(tmp_path / "loose.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError, match="mixes 1 image files"):
        load_image_folder(tmp_path)
    (tmp_path / "loose.png").unlink()
    bad = tmp_path / "dogs" / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(InputError) as info:
        load_image_folder(tmp_path)
    assert str(bad) in str(info.value) and "remove it" in str(info.value)
    with pytest.raises(InputError, match="does not exist"):
        load_image_folder(tmp_path / "missing")
    with pytest.raises(InputError, match="no image files"):
        load_image_folder(tmp_path / "empty")
    with pytest.raises(InputError, match="channels"):
        load_image_folder(tmp_path / "cats", channels=2)


# ----------------------------------------------------------------------------------------------- LFW and specs

def test_load_lfw_faces():
    from skimage import data as skdata

    native = load_lfw_faces(size=25)  # no resampling: the faces themselves
    faces = np.asarray(skdata.lfw_subset()[:100], np.float64)
    assert native.images.shape == (100, 25, 25, 1) and native.source == "lfw"
    assert np.array_equal(native.images[..., 0], np.round(faces * 255).astype(np.uint8))
    small = load_lfw_faces(count=8, size=(32, 32), channels=3)
    assert small.images.shape == (8, 32, 32, 3) and small.labels.tolist() == [-1] * 8
    assert np.array_equal(small.images[..., 0], small.images[..., 2]) and small.images.std() > 10
    with pytest.raises(InputError, match="100 faces"):
        load_lfw_faces(count=101)


def test_load_images_specs(tmp_path, cifar_layout):
    folder, _ = cifar_layout
    lfw = load_images("lfw:4")
    assert lfw.images.shape == (4, 32, 32, 1) and lfw.source == "lfw:4"
    cifar = load_images(folder.parent, size=16)  # recognised by its batch files
    assert cifar.images.shape == (5, 16, 16, 3) and cifar.images[:, 3, 3, 0].tolist() == [10, 11, 12, 20, 21]
    assert load_images(str(folder), split="test").images.shape == (4, 32, 32, 3)
    assert load_images(folder / "data_batch_1", channels=1).images.shape == (3, 32, 32, 1)
    images = tmp_path / "pictures"
    images.mkdir()
    write_png(images / "p.png", np.zeros((40, 50, 3), np.uint8))
    assert load_images(images).images.shape == (1, 32, 32, 3)
    with pytest.raises(InputError, match="neither 'lfw'"):
        load_images(tmp_path / "nowhere")
    with pytest.raises(InputError, match="is one image"):
        load_images(images / "p.png")
    (images / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="notes.txt"):  # a file that is not a CIFAR-10 batch
        load_images(images / "notes.txt")


# ------------------------------------------------------------------------------------------ splits and batches

def numbered(n: int, size: int = 2) -> ImageSet:
    """n images whose every pixel holds the image's index (labels too): batches reveal their indices."""
    return ImageSet(np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, size, size, 1)).copy(),
                    np.arange(n), (), "numbered")


def test_train_val_split():
    data = numbered(50)
    train, val = train_val_split(data, seed=3)
    assert len(val) == 5 and len(train) == 45
    assert sorted(train.labels.tolist() + val.labels.tolist()) == list(range(50))  # disjoint, covering
    again_train, again_val = train_val_split(data, seed=3)
    assert np.array_equal(again_val.labels, val.labels) and np.array_equal(again_train.labels, train.labels)
    assert not np.array_equal(train_val_split(data, seed=4)[1].labels, val.labels)
    assert np.array_equal(val.images[:, 0, 0, 0], val.labels)  # images and labels stay together
    assert len(train_val_split(data, val_count=49)[1]) == 49
    for count in (0, 50):
        with pytest.raises(InputError, match="validation"):
            train_val_split(data, val_count=count)


def test_batches_pure_function_of_step():
    data = numbered(12)
    batches = Batches(data, batch_size=4, seed=1)
    assert batches.steps_per_epoch == 3
    first = batches.batch(4)
    assert first.dtype == np.float32 and first.shape == (4, 2, 2, 1)
    assert np.array_equal(np.round(first[:, 0, 0, 0] * 255).astype(int), batches.indices(4))
    uninterrupted = [batches.indices(s).tolist() for s in range(9)]
    resumed = Batches(data, batch_size=4, seed=1)  # a fresh run resumed at step 5, asked in any order
    assert [resumed.indices(s).tolist() for s in (8, 5, 7, 6)] == [uninterrupted[s] for s in (8, 5, 7, 6)]
    assert np.array_equal(batches.batch(4), first)
    for epoch in range(3):  # every image exactly once per epoch, a new order each epoch
        seen = sum(uninterrupted[3 * epoch:3 * epoch + 3], [])
        assert sorted(seen) == list(range(12))
    assert uninterrupted[:3] != uninterrupted[3:6]
    assert Batches(data, batch_size=4, seed=2).indices(0).tolist() != uninterrupted[0]
    dropped = Batches(numbered(10), batch_size=4)  # the remainder is dropped: 2 steps of distinct images
    assert dropped.steps_per_epoch == 2 and len(set(np.concatenate([dropped.indices(0), dropped.indices(1)]))) == 8
    chunk = batches.chunk(2, 4)
    assert chunk.shape == (4, 4, 2, 2, 1) and np.array_equal(chunk, np.stack([batches.batch(s) for s in range(2, 6)]))


def test_batches_processes_and_errors():
    data = numbered(20)
    single = Batches(data, batch_size=8, seed=5)
    for count in (2, 4):
        shards = [Batches(data, batch_size=8, seed=5, process_index=p, process_count=count) for p in range(count)]
        for step in (0, 3, 7):
            assert shards[0].global_indices(step).tolist() == single.indices(step).tolist()
            local = [s.indices(step) for s in shards]
            assert all(len(rows) == 8 // count for rows in local)
            assert np.concatenate(local).tolist() == single.indices(step).tolist()
            assert np.array_equal(np.concatenate([s.batch(step) for s in shards]), single.batch(step))
    with pytest.raises(InputError, match="divisible"):
        Batches(data, batch_size=6, process_count=4)
    with pytest.raises(InputError, match="batch size 21"):
        Batches(data, batch_size=21)
    with pytest.raises(ValueError, match="process_index"):
        Batches(data, batch_size=8, process_index=2, process_count=2)
