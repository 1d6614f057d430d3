"""The data loaders in dlcli.data.sources, on tiny files written into tmp_path,
plus the MNIST shipped with dlcli. No test touches the network."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import re
import shutil
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from dlcli.data import DATASETS, MNIST_DIR, load_dataset
from dlcli.data.sources.mnist import load_mnist_idx
from dlcli.data.sources.torchvision import load_torchvision
from dlcli.data._tensors import Splits
from dlcli.errors import DataError


TORCHVISION_SETS = {"fashion_mnist": "FashionMNIST", "kmnist": "KMNIST", "cifar10": "CIFAR10",
                    "cifar100": "CIFAR100"}


# ---------------------------------------------------------------------------
# MNIST: shipped IDX files
# ---------------------------------------------------------------------------

def test_shipped_mnist_loads_through_the_registry():
    splits = load_dataset("mnist", {})
    assert isinstance(splits, Splits)
    assert splits.train.x.shape == (60000, 1, 28, 28) and splits.train.x.dtype == torch.uint8
    assert splits.test.x.shape == (10000, 1, 28, 28) and splits.test.x.dtype == torch.uint8
    assert splits.train.y.shape == (60000,) and splits.train.y.dtype == torch.int64
    assert splits.train.y.bincount().tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert splits.test.y.bincount().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert splits.task == "classification" and splits.num_classes == 10
    assert splits.class_names == [str(d) for d in range(10)]
    assert splits.train.x.max() == 255 and splits.train.x.min() == 0
    assert "MNIST" in splits.source


def test_tiny_mnist_dir_parses(make_mnist_dir):
    splits = load_mnist_idx(make_mnist_dir(train=12, test=5))
    assert splits.train.x.shape == (12, 1, 28, 28) and splits.test.x.shape == (5, 1, 28, 28)
    assert splits.train.y.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]


def test_mnist_checksum_mismatch_names_file_and_both_hashes(tmp_path):
    directory = tmp_path / "mnist"
    shutil.copytree(MNIST_DIR, directory)
    target = directory / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(target.read_bytes())
    data[100] ^= 0xFF
    target.write_bytes(bytes(data))
    expected = next(line.split()[0] for line in (directory / "SHA256SUMS").read_text().splitlines()
                    if line.endswith("t10k-labels-idx1-ubyte.gz"))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: checksum mismatch") as err:
        load_mnist_idx(directory)
    assert expected in str(err.value)
    assert hashlib.sha256(bytes(data)).hexdigest() in str(err.value)


def test_mnist_missing_file(make_mnist_dir):
    directory = make_mnist_dir()
    (directory / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: file not found"):
        load_mnist_idx(directory)


def test_mnist_missing_checksum_list(make_mnist_dir):
    directory = make_mnist_dir()
    (directory / "SHA256SUMS").unlink()
    with pytest.raises(DataError, match=r"SHA256SUMS: checksum list not found"):
        load_mnist_idx(directory)


def test_mnist_file_not_listed_in_checksums(make_mnist_dir):
    directory = make_mnist_dir()
    sums = directory / "SHA256SUMS"
    sums.write_text("".join(l + "\n" for l in sums.read_text().splitlines() if "t10k-images" not in l))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz: no checksum"):
        load_mnist_idx(directory)


def test_mnist_wrong_magic(make_mnist_dir, write_idx, write_sha256sums):
    directory = make_mnist_dir()
    write_idx(directory / "train-labels-idx1-ubyte.gz", np.zeros(12), magic=0x0803)
    write_sha256sums(directory)
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: expected IDX magic number 0x00000801.*"
                                        r"received 0x00000803"):
        load_mnist_idx(directory)


@pytest.mark.parametrize("raw, message", [
    (b"\x00\x00", r"expected an IDX header of at least 4 bytes, received 2"),
    (b"\x00\x00\x08\x03\x00\x00\x00\x0c", r"expected a 16-byte IDX header, the file ends after 8 bytes"),
    ((0x0803).to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in (12, 28, 28)) + bytes(100),
     r"expected 9408 data bytes for shape \(12, 28, 28\), received 100"),
])
def test_mnist_short_files(make_mnist_dir, raw, message):
    directory = make_mnist_dir(raw={"train-images-idx3-ubyte.gz": raw})
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: " + message):
        load_mnist_idx(directory)


def test_mnist_not_gzip(make_mnist_dir, write_idx, write_sha256sums):
    directory = make_mnist_dir()
    (directory / "train-images-idx3-ubyte.gz").write_bytes(b"this is not gzip data")
    write_sha256sums(directory)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: expected a gzip file"):
        load_mnist_idx(directory)


def test_mnist_label_count_must_match_images(make_mnist_dir, write_idx, write_sha256sums):
    directory = make_mnist_dir()
    write_idx(directory / "t10k-labels-idx1-ubyte.gz", np.zeros(4))
    write_sha256sums(directory)
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: expected one label per image .*\(5\), "
                                        r"received 4 labels"):
        load_mnist_idx(directory)


def test_mnist_wrong_image_size_and_label_range(make_mnist_dir, write_idx, write_sha256sums):
    directory = make_mnist_dir()
    write_idx(directory / "train-images-idx3-ubyte.gz", np.zeros((12, 32, 32)))
    write_sha256sums(directory)
    with pytest.raises(DataError, match=r"expected 28x28 images, received 32x32"):
        load_mnist_idx(directory)
    directory = make_mnist_dir()
    write_idx(directory / "train-labels-idx1-ubyte.gz", np.full(12, 10))
    write_sha256sums(directory)
    with pytest.raises(DataError, match=r"expected digit labels 0-9, received 10"):
        load_mnist_idx(directory)


# ---------------------------------------------------------------------------
# torchvision data sets (never downloaded for real)
# ---------------------------------------------------------------------------

@pytest.fixture
def offline(monkeypatch):
    """Every urlopen fails at once, as it would without a network."""

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network unreachable (test)")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.mark.parametrize("name", sorted(TORCHVISION_SETS))
def test_torchvision_missing_without_download(tmp_path, offline, name):
    root = tmp_path / "empty"
    with pytest.raises(DataError, match=rf"{name}: the data set is not in {root}\. Set data\.download=true.*"
                                        rf"By hand: .*{root}"):
        load_dataset(name, {"root": str(root), "download": False})


@pytest.mark.parametrize("name", sorted(TORCHVISION_SETS))
def test_torchvision_download_fails_offline(tmp_path, offline, name):
    root = tmp_path / "cache"
    with pytest.raises(DataError, match=rf"{name}: the download into {root} failed \(offline\?\): .*"
                                        rf"network unreachable \(test\).*By hand"):
        load_dataset(name, {"root": str(root), "download": True})


def test_torchvision_root_defaults_to_dlcli_data(tmp_path, monkeypatch, offline):
    monkeypatch.setenv("DLCLI_DATA", str(tmp_path / "from_env"))
    with pytest.raises(DataError, match=rf"not in {tmp_path / 'from_env'}"):
        load_torchvision("kmnist", "KMNIST", {"root": None, "download": False})


def test_torchvision_mnist_family_to_tensors(tmp_path, write_idx):
    raw = tmp_path / "FashionMNIST" / "raw"
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (6, 28, 28))
    for prefix, n in (("train", 6), ("t10k", 3)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images[:n], compress=False)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) + 1, compress=False)
    splits = load_dataset("fashion_mnist", {"root": str(tmp_path), "download": False})
    assert splits.train.x.shape == (6, 1, 28, 28) and splits.train.x.dtype == torch.uint8
    assert splits.test.x.shape == (3, 1, 28, 28)
    assert tuple(splits.train.x.shape[1:]) == DATASETS.get("fashion_mnist").meta["sample_shape"]
    assert torch.equal(splits.train.x[:, 0], torch.from_numpy(images.astype(np.uint8)))
    assert splits.train.y.dtype == torch.int64 and splits.train.y.tolist() == [1, 2, 3, 4, 5, 6]
    assert splits.num_classes == 10 and splits.class_names[0] == "T-shirt/top"


def test_torchvision_cifar_nhwc_becomes_nchw(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as cifar

    monkeypatch.setattr(cifar, "check_integrity", lambda *args, **kwargs: True)  # our files have no md5
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(2)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batches[name] = rng.integers(0, 256, (2, 3 * 32 * 32)).astype(np.uint8)  # CIFAR rows: (C*H*W)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": batches[name], "labels": [3, 7]}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)
    splits = load_torchvision("cifar10", "CIFAR10", {"root": str(tmp_path), "download": False})
    assert splits.train.x.shape == (10, 3, 32, 32) and splits.train.x.dtype == torch.uint8
    assert splits.train.x.is_contiguous()
    assert splits.test.x.shape == (2, 3, 32, 32)
    assert torch.equal(splits.train.x[0], torch.from_numpy(batches["data_batch_1"][0].reshape(3, 32, 32)))
    assert torch.equal(splits.test.x[1], torch.from_numpy(batches["test_batch"][1].reshape(3, 32, 32)))
    assert splits.train.y.dtype == torch.int64 and splits.train.y.tolist() == [3, 7] * 5
    assert splits.class_names == [f"class{i}" for i in range(10)] and splits.num_classes == 10


# ---------------------------------------------------------------------------
# .npz files
# ---------------------------------------------------------------------------

def test_npz_classification_auto(make_npz):
    path = make_npz(x=np.random.rand(20, 4), y=np.arange(20) % 3)
    splits = load_dataset("npz", {"path": str(path), "test_path": None, "task": "auto"})
    assert splits.train.x.shape == (20, 4) and splits.train.x.dtype == torch.float32
    assert splits.train.y.shape == (20,) and splits.train.y.dtype == torch.int64
    assert splits.task == "classification" and splits.num_classes == 3
    assert splits.class_names is None and splits.test is None  # ids are named once the model bounds them


@pytest.mark.parametrize("kind", ["npz", "csv"])
def test_a_huge_class_id_builds_nothing_that_grows_with_it(make_npz, make_csv, kind):
    """One label of 3,000,000 once built 3,000,001 class names (10**12: a MemoryError); the
    loader reads ids without naming them, so memory stays that of the samples."""
    import tracemalloc

    labels = [0, 1, 2, 3_000_000]
    if kind == "npz":
        path = make_npz(x=np.random.rand(4, 2), y=np.array(labels))
        args = {"path": str(path), "test_path": None, "task": "auto"}
    else:
        path = make_csv([["a", "b", "y"], *[[i, i, label] for i, label in enumerate(labels)]])
        args = csv_args(path)
    tracemalloc.start()
    try:
        splits = load_dataset(kind, args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert splits.num_classes == 3_000_001 and splits.class_names is None
    assert peak < 20 * 2 ** 20, f"loading 4 samples took {peak / 2 ** 20:.0f} MiB"


def test_npz_uint64_label_is_reported_as_stored_not_wrapped(make_npz):
    path = make_npz(x=np.random.rand(3, 2), y=np.array([0, 1, 2 ** 64 - 1], dtype=np.uint64))
    with pytest.raises(DataError, match=r"expected class ids from 0 to 9007199254740992, received "
                                        r"18446744073709551615 at sample 2"):
        load_dataset("npz", {"path": str(path), "test_path": None, "task": "auto"})


def test_csv_class_id_beyond_int64_is_refused_not_wrapped(make_csv):
    path = make_csv([["a", "b", "y"], [1, 2, 0], [3, 4, "1" + "0" * 30]])
    with pytest.raises(DataError, match=r":3: column 'y' \(data row 2\): expected a class id from 0 to "
                                        r"9007199254740992, received '10{30}'"):
        load_dataset("csv", csv_args(path))


def test_npz_regression_auto_targets_are_n_by_1(make_npz):
    path = make_npz(x=np.random.rand(10, 2, 3).astype(np.float64), y=np.linspace(0, 1, 10))
    splits = load_dataset("npz", {"path": str(path)})
    assert splits.task == "regression" and splits.num_classes is None
    assert splits.train.x.shape == (10, 2, 3) and splits.train.x.dtype == torch.float32
    assert splits.train.y.shape == (10, 1) and splits.train.y.dtype == torch.float32


def test_npz_keeps_multi_value_regression_targets(make_npz):
    path = make_npz(x=np.random.rand(10, 2), y=np.random.rand(10, 3))
    assert load_dataset("npz", {"path": str(path)}).train.y.shape == (10, 3)


def test_npz_integer_sequences_are_token_ids(make_npz):
    path = make_npz(x=np.random.randint(0, 50, (8, 12)).astype(np.int32), y=np.arange(8) % 2)
    splits = load_dataset("npz", {"path": str(path)})
    assert splits.train.x.dtype == torch.int64 and splits.train.x.shape == (8, 12)


def test_npz_uint8_images_become_float(make_npz):
    path = make_npz(x=np.zeros((4, 1, 5, 5), dtype=np.uint8), y=np.arange(4))
    assert load_dataset("npz", {"path": str(path)}).train.x.dtype == torch.float32


@pytest.mark.parametrize("stored, input_shape, expected", [
    ((4, 5, 6, 3), [3, 5, 6], (4, 3, 5, 6)),  # Keras's channels-last images
    ((4, 5, 6, 1), [1, 5, 6], (4, 1, 5, 6)),
    ((4, 5, 6), [1, 5, 6], (4, 1, 5, 6)),  # grey images without their channel axis
    ((4, 3, 5, 6), [3, 5, 6], (4, 3, 5, 6)),  # already channels-first
    ((4, 3, 3, 3), [3, 3, 3], (4, 3, 3, 3)),  # as stored, where it fits as it is
    ((4, 5, 6), [5, 6], (4, 5, 6)),  # rows as steps
    ((4, 5, 6, 3), [90], (4, 5, 6, 3)),  # flattened by the model
    ((4, 5, 6, 3), None, (4, 5, 6, 3)),
])
def test_npz_images_are_laid_out_as_the_model_takes_them(make_npz, stored, input_shape, expected):
    x = np.random.default_rng(0).random(stored)
    path = make_npz(x=x, y=np.arange(4) % 2, x_test=x[:2], y_test=np.arange(2))
    splits = load_dataset("npz", {"path": str(path)}, input_shape)
    assert splits.train.x.shape == expected and splits.test.x.shape == (2, *expected[1:])
    moved = x.transpose(0, 3, 1, 2) if len(stored) == 4 and stored[1:] != expected[1:] else x
    assert torch.equal(splits.train.x, torch.from_numpy(moved.reshape(expected).astype(np.float32)))


def test_npz_flat_x_is_one_feature(make_npz):
    path = make_npz(x=np.linspace(0, 1, 6), y=np.linspace(0, 2, 6))
    assert load_dataset("npz", {"path": str(path)}).train.x.shape == (6, 1)


def test_npz_inline_test_split(make_npz):
    path = make_npz(x=np.random.rand(10, 3), y=np.arange(10) % 2, x_test=np.random.rand(4, 3),
                    y_test=np.array([0, 1, 2, 0]))
    splits = load_dataset("npz", {"path": str(path)})
    assert len(splits.train) == 10 and len(splits.test) == 4
    assert splits.num_classes == 3  # the test labels count too


def test_npz_inline_validation_split(make_npz):
    """Keras's validation_data as arrays x_val, y_val: the named validation split, its targets
    (one-hot here) and images (channels-last here) converted as the other splits'."""
    x = np.random.default_rng(0).random((10, 5, 6, 3))
    path = make_npz(x=x, y=np.eye(3)[np.arange(10) % 3], x_val=x[:4], y_val=np.eye(3)[[2, 0, 1, 2]])
    splits = load_dataset("npz", {"path": str(path)}, [3, 5, 6])
    assert splits.val.x.shape == (4, 3, 5, 6) and torch.equal(splits.val.x, splits.train.x[:4])
    assert splits.val.y.tolist() == [2, 0, 1, 2] and splits.num_classes == 3 and splits.test is None
    values = make_npz("values.npz", x=np.random.rand(6, 2), y=np.random.rand(6), x_val=np.random.rand(3, 2),
                      y_val=np.random.rand(3))
    assert load_dataset("npz", {"path": str(values)}).val.y.shape == (3, 1)


def test_npz_validation_split_must_look_like_train(tmp_path):
    x, y = np.random.rand(5, 2), np.random.rand(5)
    _npz_error(tmp_path, r"expected x_val and y_val together, x_val is missing", x=x, y=y, y_val=y)
    _npz_error(tmp_path, r"expected as many targets as samples, received x_val with 5 samples and y_val with 4",
               x=x, y=y, x_val=x, y_val=y[:4])
    _npz_error(tmp_path, r"bad\.npz \(x_val, y_val\): expected validation samples like the training samples, "
                         r"\(2,\) float32, received \(3,\) float32", x=x, y=y, x_val=np.random.rand(5, 3), y_val=y)
    _npz_error(tmp_path, r"bad\.npz \(x_val, y_val\): expected targets of shape \(1,\) per sample as in .*bad\.npz, "
                         r"received \(2,\)", x=x, y=y, x_val=x, y_val=np.random.rand(5, 2))


def test_npz_test_path(make_npz):
    train = make_npz("train.npz", x=np.random.rand(10, 3), y=np.random.rand(10))
    test = make_npz("test.npz", x=np.random.rand(5, 3), y=np.random.rand(5))
    splits = load_dataset("npz", {"path": str(train), "test_path": str(test), "task": "auto"})
    assert splits.test.x.shape == (5, 3) and splits.test.y.shape == (5, 1)
    assert "test.npz" in splits.source


def test_npz_task_overrides(make_npz):
    path = make_npz(x=np.random.rand(6, 2), y=np.array([0.0, 1.0, 2.0, 1.0, 0.0, 2.0]))
    splits = load_dataset("npz", {"path": str(path), "task": "classification"})
    assert splits.task == "classification" and splits.train.y.dtype == torch.int64 and splits.num_classes == 3
    path = make_npz("ints.npz", x=np.random.rand(6, 2), y=np.arange(6))
    splits = load_dataset("npz", {"path": str(path), "task": "regression"})
    assert splits.task == "regression" and splits.train.y.dtype == torch.float32
    assert splits.train.y.shape == (6, 1)


def _npz_error(tmp_path, message, **arrays):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message):
        load_dataset("npz", {"path": str(path)})


def test_npz_file_errors(tmp_path):
    with pytest.raises(DataError, match=r"missing\.npz: file not found; expected an \.npz file"):
        load_dataset("npz", {"path": str(tmp_path / "missing.npz")})
    text = tmp_path / "text.npz"
    text.write_text("x,y\n1,2\n")
    with pytest.raises(DataError, match=r"text\.npz: expected an \.npz file \(np\.savez\), received a file that "
                                        r"is neither a zip archive nor \.npy \(it starts with b'x,y"):
        load_dataset("npz", {"path": str(text)})
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04" + bytes(40))
    with pytest.raises(DataError, match=r"broken\.npz: expected an \.npz file"):
        load_dataset("npz", {"path": str(broken)})
    single = tmp_path / "single.npy"
    np.save(single, np.zeros((3, 2)))
    with pytest.raises(DataError, match=r"single\.npy: expected an \.npz archive .* received a single \.npy "
                                        r"array of shape \(3, 2\)"):
        load_dataset("npz", {"path": str(single)})
    with pytest.raises(DataError, match=r"expected an \.npz file, received a directory"):
        load_dataset("npz", {"path": str(tmp_path)})


def test_npz_array_errors(tmp_path):
    x, y = np.random.rand(5, 2), np.arange(5)
    _npz_error(tmp_path, r"bad\.npz: expected an array named 'x'; did you mean 'X'\? the file has: X, y", X=x, y=y)
    _npz_error(tmp_path, r"expected an array named 'y'; the file has: x, labels", x=x, labels=y)
    _npz_error(tmp_path, r"expected as many targets as samples, received x with 5 samples and y with 4",
               x=x, y=y[:4])
    _npz_error(tmp_path, r"expected at least one sample, x is empty", x=np.zeros((0, 2)), y=np.zeros(0))
    _npz_error(tmp_path, r"expected y to hold one entry per sample, received a single number", x=x, y=np.int64(3))
    x_nan = x.copy()
    x_nan[3, 1] = np.nan
    _npz_error(tmp_path, r"expected finite numbers in x, received nan at x\[3, 1\]", x=x_nan, y=y)
    _npz_error(tmp_path, r"expected finite numbers in y, received inf at y\[2\]",
               x=x, y=np.array([0.0, 1.0, np.inf, 0.5, 0.2]))
    _npz_error(tmp_path, r"expected class ids >= 0, received -1 at sample 1", x=x, y=np.array([0, -1, 1, 0, 1]))
    _npz_error(tmp_path, r"expected numbers in array 'x', received dtype <U1", x=np.array(list("abcde")), y=y)
    _npz_error(tmp_path, r"expected x_test and y_test together, y_test is missing", x=x, y=y, x_test=x)


def test_npz_object_arrays_are_refused(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, x=np.array([[1, 2], [3]], dtype=object), y=np.arange(2))
    with pytest.raises(DataError, match=r"objects\.npz: array 'x' holds Python objects, which dlcli does not "
                                        r"load"):
        load_dataset("npz", {"path": str(path)})


def test_a_truncated_npz_array_is_reported_as_truncated_not_as_objects(tmp_path):
    """Issue 15 #15: an array with fewer bytes than its header declares was said to hold Python objects."""
    import io
    import zipfile

    whole = io.BytesIO()
    np.lib.format.write_array(whole, np.arange(40, dtype=np.float32).reshape(10, 4))
    path = tmp_path / "cut.npz"
    with zipfile.ZipFile(path, "w") as archive:  # a valid zip, whose x.npy lost its last 64 bytes
        archive.writestr("x.npy", whole.getvalue()[:-64])
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, np.arange(10))
        archive.writestr("y.npy", buffer.getvalue())
    with pytest.raises(DataError, match=r"cut\.npz: array 'x' is truncated or damaged: its header declares float32 "
                                        r"of shape \(10, 4\) \(160 bytes\), which its data do not hold"):
        load_dataset("npz", {"path": str(path)})


def test_npz_classification_needs_integer_targets(make_npz):
    path = make_npz(x=np.random.rand(3, 2), y=np.array([0.0, 0.5, 1.0]))
    with pytest.raises(DataError, match=r"task classification expects integer class ids, received 0\.5 at "
                                        r"sample 1"):
        load_dataset("npz", {"path": str(path), "task": "classification"})


def test_npz_test_split_must_look_like_train(make_npz):
    train = make_npz("train.npz", x=np.random.rand(6, 3), y=np.arange(6) % 2)
    test = make_npz("test.npz", x=np.random.rand(2, 4), y=np.arange(2))
    with pytest.raises(DataError, match=r"test\.npz: expected test samples like the training samples, "
                                        r"\(3,\) float32, received \(4,\) float32"):
        load_dataset("npz", {"path": str(train), "test_path": str(test)})
    both = make_npz("both.npz", x=np.random.rand(6, 3), y=np.arange(6), x_test=np.random.rand(2, 3),
                    y_test=np.arange(2))
    with pytest.raises(DataError, match=r"both\.npz: holds x_test and y_test, and data\.test_path=.* is given too"):
        load_dataset("npz", {"path": str(both), "test_path": str(test)})
    with pytest.raises(DataError, match=r"nope\.npz: file not found"):
        load_dataset("npz", {"path": str(train), "test_path": str(train.parent / "nope.npz")})


# ---------------------------------------------------------------------------
# CSV files
# ---------------------------------------------------------------------------

def csv_args(path, target="y", **extra):
    return {"path": str(path), "test_path": None, "task": "auto", "target": target, "features": None,
            "window": None, **extra}


def test_csv_integer_target_is_classification(make_csv):
    path = make_csv([["a", "b", "y"], [1, 2.5, 0], [3, 4, 2], [5, -6e-1, 1], [7, 8, 2]])
    splits = load_dataset("csv", csv_args(path))
    assert splits.train.x.dtype == torch.float32 and splits.train.x.shape == (4, 2)
    assert splits.train.x[2].tolist() == pytest.approx([5.0, -0.6])
    assert splits.train.y.tolist() == [0, 2, 1, 2] and splits.train.y.dtype == torch.int64
    assert splits.task == "classification" and splits.num_classes == 3 and splits.class_names is None
    assert splits.meta["features"] == ["a", "b"]


def test_csv_float_target_is_regression(make_csv):
    path = make_csv([["y", "a"], [0.5, 1], [1.5, 2], [2, 3]])
    splits = load_dataset("csv", csv_args(path))
    assert splits.task == "regression" and splits.num_classes is None
    assert splits.train.y.shape == (3, 1) and splits.train.y.dtype == torch.float32
    assert splits.train.y[:, 0].tolist() == [0.5, 1.5, 2.0]


def test_csv_text_target_classes_are_sorted_names(make_csv):
    path = make_csv([["x", "species"], [1, "setosa"], [2, "virginica"], [3, "setosa"], [4, "versicolor"]])
    splits = load_dataset("csv", csv_args(path, target="species"))
    assert splits.class_names == ["setosa", "versicolor", "virginica"] and splits.num_classes == 3
    assert splits.train.y.tolist() == [0, 2, 0, 1]


def test_csv_features_and_task(make_csv):
    path = make_csv([["a", "b", "c", "y"], [1, 2, 3, 0], [4, 5, 6, 1]])
    splits = load_dataset("csv", csv_args(path, features=["c", "a"], task="regression"))
    assert splits.train.x.tolist() == [[3.0, 1.0], [6.0, 4.0]]
    assert splits.task == "regression" and splits.train.y.shape == (2, 1)
    path = make_csv([["a", "y"], [1, "0"], [2, "1.0"]], name="floats.csv")
    splits = load_dataset("csv", csv_args(path, task="classification"))
    assert splits.train.y.tolist() == [0, 1]


def test_csv_window_predicts_the_next_row(make_csv):
    rows = [[t, 10 * t, t % 3] for t in range(8)]  # columns a, b, y
    path = make_csv([["a", "b", "y"], *rows])
    splits = load_dataset("csv", csv_args(path, window=3))
    assert splits.train.x.shape == (5, 3, 2) and splits.train.x.dtype == torch.float32
    for i in range(5):
        assert splits.train.x[i].tolist() == [[float(t), 10.0 * t] for t in range(i, i + 3)]
        assert splits.train.y[i].item() == (i + 3) % 3


def test_csv_window_univariate_series(make_csv):
    path = make_csv([["value"], *[[v] for v in (0.5, 1.5, 2.5, 3.5, 4.5)]])
    with pytest.raises(DataError, match=r"expected feature columns besides the target 'value'.*"
                                        r"features: \[value\]"):
        load_dataset("csv", csv_args(path, target="value", window=2))
    splits = load_dataset("csv", csv_args(path, target="value", features=["value"], window=2))
    assert splits.train.x.shape == (3, 2, 1) and splits.train.y.shape == (3, 1)
    assert splits.train.x[0, :, 0].tolist() == [0.5, 1.5] and splits.train.y[0].item() == 2.5
    assert splits.task == "regression"


def test_csv_test_path(make_csv):
    train = make_csv([["a", "b", "label"], [1, 2, "cat"], [3, 4, "dog"]], name="train.csv")
    test = make_csv([["b", "label", "a", "extra"], [20, "dog", 10, 0]], name="test.csv")
    splits = load_dataset("csv", csv_args(train, target="label", test_path=str(test)))
    assert splits.test.x.tolist() == [[10.0, 20.0]] and splits.test.y.tolist() == [1]


def test_csv_windows_in_the_test_file_too(make_csv):
    train = make_csv([["a", "y"], *[[i, i] for i in range(6)]], name="train.csv")
    test = make_csv([["a", "y"], [1, 1], [2, 2]], name="test.csv")
    with pytest.raises(DataError, match=r"test\.csv: data\.window=2 needs at least 3 data rows .*received 2"):
        load_dataset("csv", csv_args(train, window=2, test_path=str(test)))


def test_csv_unknown_columns(make_csv):
    path = make_csv([["temp", "humidity", "price"], [1, 2, 3]])
    with pytest.raises(DataError, match=r"data\.csv: target column 'prise' not found; did you mean 'price'\? the "
                                        r"file has columns: temp, humidity, price"):
        load_dataset("csv", csv_args(path, target="prise"))
    with pytest.raises(DataError, match=r"feature column 'humdity' not found; did you mean 'humidity'\?"):
        load_dataset("csv", csv_args(path, target="price", features=["temp", "humdity"]))
    with pytest.raises(DataError, match=r"feature columns 'tmp', 'humdity' not found; did you mean 'temp'\? the file "
                                        r"has columns: temp, humidity, price"):
        load_dataset("csv", csv_args(path, target="price", features=["tmp", "humidity", "humdity"]))
    with pytest.raises(DataError, match=r"the target 'price' is also listed in data\.features"):
        load_dataset("csv", csv_args(path, target="price", features=["temp", "price"]))
    with pytest.raises(DataError, match=r"expected each feature once in data\.features, received 'temp'"):
        load_dataset("csv", csv_args(path, target="price", features=["temp", "temp"]))
    with pytest.raises(DataError, match=r"expected at least one name in data\.features"):
        load_dataset("csv", csv_args(path, target="price", features=[]))


@pytest.mark.parametrize("cell, expected, received", [
    ("abc", "a number", "'abc'"),
    ("", "a number", "an empty cell"),
    ("nan", "a finite number", "'nan'"),
    ("-inf", "a finite number", "'-inf'"),
])
def test_csv_bad_feature_cell_names_line_and_column(make_csv, cell, expected, received):
    path = make_csv([["a", "b", "y"], [1, 2, 0], [3, cell, 1], [5, 6, 0]])
    with pytest.raises(DataError, match=rf"data\.csv:3: column 'b' \(data row 2\): expected {expected}, "
                                        rf"received {received}"):
        load_dataset("csv", csv_args(path))


@pytest.mark.parametrize("cell, task, message", [
    ("", "auto", r"data\.csv:3: column 'y' \(data row 2\): expected a target value, received an empty cell"),
    ("nan", "auto", r"data\.csv:3: column 'y' \(data row 2\): expected a finite number, received 'nan'"),
    ("cat", "auto", r"target column 'y' mixes numbers \('1' on line 2\) and text \('cat' on line 3\).*"
                    r"task: classification"),
    ("cat", "regression", r"data\.csv:3: column 'y' \(data row 2\): expected a number \(task: regression\)"),
    ("-1", "auto", r"data\.csv:3: column 'y' \(data row 2\): expected a class id \(an integer >= 0\), "
                   r"received '-1'"),
    ("0.5", "classification", r"data\.csv:3: column 'y' .*expected a class id"),
])
def test_csv_bad_target_cells(make_csv, cell, task, message):
    path = make_csv([["a", "y"], [1, 1], [2, cell], [3, 0]])
    with pytest.raises(DataError, match=message):
        load_dataset("csv", csv_args(path, task=task))


def test_csv_mixed_target_as_class_names(make_csv):
    path = make_csv([["a", "y"], [1, 1], [2, "cat"]])
    assert load_dataset("csv", csv_args(path, task="classification")).class_names == ["1", "cat"]


def test_csv_structure_errors(make_csv, tmp_path):
    with pytest.raises(DataError, match=r"nothere\.csv: file not found; expected a CSV file with a header row"):
        load_dataset("csv", csv_args(tmp_path / "nothere.csv"))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match=r"empty\.csv: expected a header row with column names, received an "
                                        r"empty file"):
        load_dataset("csv", csv_args(empty))
    with pytest.raises(DataError, match=r"expected data rows after the header, the file has none"):
        load_dataset("csv", csv_args(make_csv([["a", "y"]], name="header_only.csv")))
    with pytest.raises(DataError, match=r"ragged\.csv:3: expected 2 fields as in the header, received 3"):
        load_dataset("csv", csv_args(make_csv([["a", "y"], [1, 0], [2, 1, 5]], name="ragged.csv")))
    with pytest.raises(DataError, match=r"dup\.csv:1: expected unique column names, received 'a'"):
        load_dataset("csv", csv_args(make_csv([["a", "a", "y"], [1, 2, 0]], name="dup.csv")))
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"a,y\n\xff\xfe,1\n")
    with pytest.raises(DataError, match=r"binary\.csv: expected UTF-8 text"):
        load_dataset("csv", csv_args(binary))


def test_csv_without_a_header_row_is_refused(make_csv):
    """A first line of numbers is data, not names: taking it as the header would drop a sample."""
    path = make_csv([[1, 2.5, 0], [3, 4, 1], [5, -6e-1, 0]], name="noheader.csv")
    with pytest.raises(DataError, match=r"noheader\.csv:1: expected a header row of column names, received a row "
                                        r"of numbers \(1, 2\.5, 0\), which looks like data; HINT: add a first line"):
        load_dataset("csv", csv_args(path, target="0"))
    # names that merely contain or resemble numbers are names
    path = make_csv([["2024", "x1", "y"], [1, 2, 0], [3, 4, 1]], name="year.csv")
    assert load_dataset("csv", csv_args(path)).meta["features"] == ["2024", "x1"]


def test_csv_blank_lines_are_skipped_and_lines_counted(tmp_path):
    path = tmp_path / "gaps.csv"
    path.write_text("a,y\n1,0\n\n2,1\nx,0\n")
    with pytest.raises(DataError, match=r"gaps\.csv:5: column 'a' \(data row 3\)"):
        load_dataset("csv", csv_args(path))


def test_csv_window_needs_enough_rows(make_csv):
    path = make_csv([["a", "y"], [1, 1], [2, 2], [3, 3]])
    with pytest.raises(DataError, match=r"data\.csv: data\.window=3 needs at least 4 data rows \(a window and "
                                        r"the next row's target\), received 3"):
        load_dataset("csv", csv_args(path, window=3))


def test_csv_test_file_problems(make_csv):
    train = make_csv([["a", "b", "y"], [1, 2, "cat"], [3, 4, "dog"]], name="train.csv")
    test = make_csv([["a", "y"], [1, "cat"]], name="test.csv")
    with pytest.raises(DataError, match=r"test\.csv: expected column 'b' as in .*train\.csv; the file has "
                                        r"columns: a, y"):
        load_dataset("csv", csv_args(train, test_path=str(test)))
    test = make_csv([["a", "b", "y"], [1, 2, "cat"], [1, 2, "bird"]], name="test2.csv")
    with pytest.raises(DataError, match=r"test2\.csv:3: column 'y' \(data row 2\): expected one of the training "
                                        r"file's classes \(cat, dog\), received 'bird'"):
        load_dataset("csv", csv_args(train, test_path=str(test)))


HUGE = "k" * 100_000


@pytest.mark.parametrize("rows, args, message", [
    ([["a", "y"], [1, 0], [HUGE, 1]], {},
     r"data\.csv:3: column 'a' \(data row 2\): expected a number, received 'k{55}\.\.\.' \(100,000 characters\)$"),
    ([["a", "y"], [1, 0], [2, HUGE]], {"task": "regression"},
     r"column 'y' \(data row 2\): expected a number \(task: regression\), received 'k{55}\.\.\.' "),
    ([["a", "y"], [1, 0], [2, HUGE]], {}, r"target column 'y' mixes numbers \('0' on line 2\) and text "
                                          r"\('k{55}\.\.\.' \(100,000 characters\) on line 3\)"),
    ([[HUGE, "y"], [1, 0]], {"target": "x"},
     r"target column 'x' not found; the file has columns: k{57}\.\.\. \(100,000 characters\), y$"),
    ([[f"c{i}" for i in range(1_000)] + ["y"], list(range(1_001))], {"target": "x"},
     r"target column 'x' not found; the file has columns: c0, c1, .*, c19, \.\.\. \(1,001 in all\)$"),
    ([["a", "y"], [1, 0]], {"target": HUGE},
     r"target column 'k{55}\.\.\.' \(100,000 characters\) not found; the file has columns: a, y$"),
    ([["a", "y"], [1, 0]], {"features": ["a", HUGE]},
     r"feature column 'k{55}\.\.\.' \(100,000 characters\) not found; the file has columns: a, y$"),
    ([[HUGE, HUGE, "y"], [1, 2, 0]], {},
     r"data\.csv:1: expected unique column names, received 'k{55}\.\.\.' \(100,000 characters\) more than once"),
], ids=["feature cell", "target cell", "mixed target", "long column name", "many columns", "long target name",
        "long feature name", "duplicate column"])
def test_csv_messages_cut_what_they_echo_of_the_file(make_csv, rows, args, message):
    with pytest.raises(DataError) as info:
        load_dataset("csv", csv_args(make_csv(rows), **args))
    assert len(str(info.value)) < 2_000 and re.search(message, str(info.value)), str(info.value)[:2_000]


def test_npz_missing_array_lists_at_most_20_of_the_file_s(make_npz):
    path = make_npz(**{f"a{i}": np.zeros(1) for i in range(100)}, y=np.zeros(1))
    with pytest.raises(DataError, match=r"expected an array named 'x'; the file has: a0, a1, .*, a19, "
                                        r"\.\.\. \(101 in all\)$"):
        load_dataset("npz", {"path": str(path)})


# ---------------------------------------------------------------------------
# Image folders
# ---------------------------------------------------------------------------

RED, GREEN, WHITE = (255, 0, 0), (0, 255, 0), (255, 255, 255)


def load_images(path, input_shape=(3, 8, 8), **extra):
    return load_dataset("image_folder", {"path": str(path), **extra}, input_shape)


def test_image_folder_resizes_and_labels(make_image_folder):
    root = make_image_folder({"cat": [(10, 12, RED), (4, 4, RED)], "ant": [(8, 8, GREEN)] * 3})
    splits = load_images(root, (3, 6, 9))
    assert splits.train.x.shape == (5, 3, 6, 9) and splits.train.x.dtype == torch.uint8
    assert splits.class_names == ["ant", "cat"] and splits.num_classes == 2
    assert splits.train.y.tolist() == [0, 0, 0, 1, 1] and splits.train.y.dtype == torch.int64
    assert (splits.train.x[0, 1] == 255).all() and (splits.train.x[0, 0] == 0).all()  # green ant
    assert (splits.train.x[4, 0] == 255).all() and (splits.train.x[4, 2] == 0).all()  # red cat
    assert splits.test is None and splits.task == "classification"


def test_image_folder_grey(make_image_folder):
    root = make_image_folder({"a": [(5, 5, WHITE)], "b": [(5, 5, (0, 0, 0))]})
    splits = load_images(root, (1, 5, 7))
    assert splits.train.x.shape == (2, 1, 5, 7)
    assert (splits.train.x[0] == 255).all() and (splits.train.x[1] == 0).all()
    assert load_images(root, (4, 3)).train.x.shape == (2, 1, 4, 3)  # [H, W]: grey


def test_image_folder_train_and_test_subfolders(make_image_folder, tmp_path):
    make_image_folder({"a": [(4, 4, RED)] * 2, "b": [(4, 4, GREEN)]}, name="set/train")
    make_image_folder({"a": [(4, 4, RED)], "b": [(4, 4, GREEN)] * 3}, name="set/test")
    splits = load_images(tmp_path / "set", (3, 4, 4))
    assert len(splits.train) == 3 and len(splits.test) == 4
    assert splits.test.y.tolist() == [0, 1, 1, 1]


def test_image_folder_test_path(make_image_folder):
    train = make_image_folder({"a": [(4, 4, RED)], "b": [(4, 4, GREEN)]}, name="train_imgs")
    test = make_image_folder({"a": [(4, 4, RED)], "b": [(4, 4, GREEN)]}, name="test_imgs")
    splits = load_images(train, (3, 4, 4), test_path=str(test))
    assert splits.test.x.shape == (2, 3, 4, 4)


def test_image_folder_ignores_other_files(make_image_folder):
    root = make_image_folder({"a": [(4, 4, RED)], "b": [(4, 4, GREEN)]})
    (root / "a" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    assert len(load_images(root).train) == 2


def test_image_folder_errors(make_image_folder, tmp_path):
    with pytest.raises(DataError, match=r"nowhere: not found; expected a folder of class folders"):
        load_images(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: expected one folder per class .*received no sub-folders"):
        load_images(tmp_path / "empty")
    root = make_image_folder({"a": [(4, 4, RED)]})
    (root / "b").mkdir()
    with pytest.raises(DataError, match=r"images/b: expected images .* in class folder 'b', received none"):
        load_images(root)


def test_image_folder_loose_images(tmp_path):
    from PIL import Image

    (tmp_path / "flat").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "flat" / "one.png")
    with pytest.raises(DataError, match=r"found 1 images directly inside; move them into class folders"):
        load_images(tmp_path / "flat")


def test_image_folder_corrupt_image_names_the_file(make_image_folder):
    root = make_image_folder({"a": [(4, 4, RED)], "b": [(4, 4, GREEN)]})
    (root / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DataError, match=r"images/b/broken\.png: expected a readable image"):
        load_images(root)


def test_image_folder_truncated_image(make_image_folder):
    root = make_image_folder({"a": [(40, 40, RED)], "b": [(4, 4, GREEN)]})
    file = root / "a" / "000.png"
    file.write_bytes(file.read_bytes()[:60])
    with pytest.raises(DataError, match=r"images/a/000\.png: expected a readable image"):
        load_images(root)


def test_image_folder_test_classes_must_match(make_image_folder):
    train = make_image_folder({"a": [(4, 4, RED)], "b": [(4, 4, GREEN)]}, name="train_imgs")
    test = make_image_folder({"a": [(4, 4, RED)], "c": [(4, 4, GREEN)]}, name="test_imgs")
    with pytest.raises(DataError, match=r"test_imgs: expected the same class folders as .*train_imgs \(a, b\), "
                                        r"received missing b; extra c"):
        load_images(train, test_path=str(test))


def test_image_folder_class_lists_are_cut(make_image_folder):
    train = make_image_folder({f"c{i:02d}": [(4, 4, RED)] for i in range(30)}, name="train_imgs")
    test = make_image_folder({f"x{i:02d}": [(4, 4, RED)] for i in range(30)}, name="test_imgs")
    with pytest.raises(DataError, match=r"train_imgs \(c00, c01, .*, c19, \.\.\. \(30 in all\)\), received "
                                        r"missing c00, .*, c19, \.\.\. \(30 in all\); "
                                        r"extra x00, .*, x19, \.\.\. \(30 in all\)$"):
        load_images(train, test_path=str(test))


def test_csv_text_classes_list_at_most_10(make_csv):
    train = make_csv([["a", "y"]] + [[i, f"class{i}"] for i in range(30)], name="train.csv")
    test = make_csv([["a", "y"], [1, "k" * 100_000]], name="test.csv")
    with pytest.raises(DataError) as info:
        load_dataset("csv", csv_args(train, task="classification", test_path=str(test)))
    assert re.search(r"test\.csv:2: column 'y' \(data row 1\): expected one of the training file's classes \(class0, "
                     r"class1, .*, \.\.\. \(30 in all\)\), received 'k{55}\.\.\.' \(100,000 characters\)$",
                     str(info.value)), str(info.value)[:2_000]


def test_image_folder_test_split_given_twice(make_image_folder, tmp_path):
    make_image_folder({"a": [(4, 4, RED)]}, name="set/train")
    make_image_folder({"a": [(4, 4, RED)]}, name="set/test")
    with pytest.raises(DataError, match=r"set: has a test/ folder and data\.test_path=.* is given too"):
        load_images(tmp_path / "set", test_path=str(tmp_path / "set" / "test"))


@pytest.mark.parametrize("shape, message", [
    ((2, 8, 8), r"expected model\.input_shape with 1 \(grey\) or 3 \(RGB\) channels for images, received 2 "
                r"channels in \[2, 8, 8\]"),
    ((4, 8, 8), r"received 4 channels"),
    ((784,), r"image_folder needs model\.input_shape \[channels, height, width\] .*received \[784\]"),
    (None, r"image_folder needs model\.input_shape .*received None"),
])
def test_image_folder_input_shape_errors(make_image_folder, shape, message):
    root = make_image_folder({"a": [(4, 4, RED)]})
    with pytest.raises(DataError, match=message):
        load_images(root, shape)


# ---------------------------------------------------------------------------
# The registry dispatches every data set to its loader
# ---------------------------------------------------------------------------

def _registry_args(name, tmp_path, make_npz, make_csv, make_image_folder):
    if name == "mnist":
        return {}
    if name in TORCHVISION_SETS:
        return {"root": str(tmp_path / "no_data"), "download": False}
    if name == "npz":
        return {"path": str(make_npz(x=np.random.rand(4, 3), y=np.arange(4) % 2)), "test_path": None,
                "task": "auto"}
    if name == "csv":
        return csv_args(make_csv([["a", "y"], [1, 0], [2, 1], [3, 0]]))
    if name == "image_folder":
        return {"path": str(make_image_folder({"a": [(4, 4, RED)], "b": [(4, 4, GREEN)]})), "test_path": None,
                "in_memory": "auto", "workers": None}
    raise AssertionError(f"no test arguments for dataset {name!r}: add them here")


def test_every_dataset_is_covered():
    assert sorted(DATASETS.names()) == sorted(["mnist", "npz", "csv", "image_folder", *TORCHVISION_SETS])


@pytest.mark.parametrize("name", [n for n in DATASETS.names() if n != "mnist"])  # mnist: tested above
def test_registry_build_dispatches_to_loader(name, tmp_path, offline, make_npz, make_csv, make_image_folder):
    args = _registry_args(name, tmp_path, make_npz, make_csv, make_image_folder)
    input_shape = [1, 6, 6] if DATASETS.get(name).meta.get("images") else None  # images are sized by the model
    if name in TORCHVISION_SETS:
        with pytest.raises(DataError, match=rf"{name}: the data set is not in"):
            DATASETS.get(name).build(args, input_shape)
        return
    splits = DATASETS.get(name).build(args, input_shape)
    assert isinstance(splits, Splits) and len(splits.train) > 0
    expected = {"npz": (4, 3), "csv": (3, 1), "image_folder": (2, 1, 6, 6)}[name]
    assert tuple(splits.train.x.shape) == expected


@pytest.mark.parametrize("name", DATASETS.names())
def test_load_dataset_gives_loaders_every_declared_arg_with_its_declared_default(name, monkeypatch):
    """Loaders index their args: whatever a caller leaves out is the declared default."""
    entry = DATASETS.get(name)
    received = []
    recording = dataclasses.replace(entry, build=lambda args, input_shape: received.append((args, input_shape)))
    monkeypatch.setattr(DATASETS, "get", lambda _: recording)
    required = {a.name: "somewhere" for a in entry.args if a.required}
    load_dataset(name, required, (1, 6, 6))
    args, input_shape = received[0]
    assert args == {**{a.name: a.default for a in entry.args if not a.required},
                    **{k: os.path.abspath(v) if k == "path" else v for k, v in required.items()}}
    assert input_shape == [1, 6, 6]


def test_an_image_folder_loaded_without_in_memory_holds_images_as_declared_auto(make_image_folder, monkeypatch):
    from dlcli.data import memory

    root = make_image_folder({"a": [(4, 4, RED)], "b": [(4, 4, GREEN)]})
    monkeypatch.setattr(memory, "available_memory", lambda: 10)  # 2 images of 3x8x8 bytes do not fit 25% of it
    assert load_images(root).train.files.shape == (2,)  # streamed: ImageFiles
    monkeypatch.setattr(memory, "available_memory", lambda: 10**9)
    assert load_images(root).train.x.shape == (2, 3, 8, 8)


def test_load_dataset_refuses_args_its_declaration_does_not_take():
    with pytest.raises(DataError, match=r"data set npz: unknown argument 'input_shape' for npz"):
        load_dataset("npz", {"path": "x.npz", "input_shape": [3]})


def test_npz_too_large_for_memory_is_refused_before_reading(make_npz, monkeypatch):
    from dlcli.data import memory

    path = make_npz(x=np.zeros((100, 3, 8, 8), dtype=np.uint8), y=np.arange(100) % 2,
                    x_test=np.zeros((10, 3, 8, 8), dtype=np.uint8), y_test=np.arange(10) % 2)
    need = 110 * 192 * (1 + 4) + 110 * (8 + 4)  # the arrays and their float32 copies
    read = []
    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", lambda self, key: read.append(key))
    monkeypatch.setattr(memory, "available_memory", lambda: need - 1)
    with pytest.raises(DataError, match=rf"{path}: reading x, y, x_test, y_test needs about 104\.4 KiB of memory "
                                        r"\(each array, then its float32 copy\), and 104\.4 KiB is available; HINT"):
        load_dataset("npz", {"path": str(path)})
    assert read == []  # refused from the headers alone
    monkeypatch.undo()
    monkeypatch.setattr(memory, "available_memory", lambda: need)
    assert len(load_dataset("npz", {"path": str(path)}).train) == 100
    monkeypatch.setattr(memory, "available_memory", lambda: None)  # unknown: read
    assert len(load_dataset("npz", {"path": str(path)}).train) == 100


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_])
def test_npz_one_hot_targets_are_class_ids(make_npz, dtype):
    """Keras's categorical targets: one-hot rows of any type are the class ids they encode."""
    ids = np.array([2, 0, 1, 2, 0, 0])
    one_hot = np.eye(4, dtype=dtype)[ids]  # class 3 never occurs: still 4 classes
    path = make_npz(x=np.random.rand(6, 3), y=one_hot, x_test=np.random.rand(2, 3), y_test=np.array([3, 1]))
    splits = load_dataset("npz", {"path": str(path)})
    assert splits.task == "classification" and splits.num_classes == 4
    assert splits.train.y.tolist() == ids.tolist() and splits.test.y.tolist() == [3, 1]
    values = make_npz("values.npz", x=np.random.rand(6, 3), y=one_hot)
    assert load_dataset("npz", {"path": str(values), "task": "regression"}).train.y.shape == (6, 4)  # kept as values


def test_npz_rows_that_are_not_one_hot_are_not_class_ids(make_npz):
    soft = np.array([[0.5, 0.5], [1.0, 0.0]])  # soft labels: values, as before
    assert load_dataset("npz", {"path": str(make_npz(x=np.random.rand(2, 3), y=soft))}).task == "regression"
    two = np.array([[1, 1, 0], [0, 1, 0]])  # multi-label: not one class per sample
    with pytest.raises(DataError, match=r"expected one class id per sample, shape \(N,\), or one-hot rows "
                                        r"\(N, classes\), received targets of shape \(2, 3\) that are not one-hot"):
        load_dataset("npz", {"path": str(make_npz("two.npz", x=np.random.rand(2, 3), y=two))})
