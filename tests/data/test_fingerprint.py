"""Content fingerprints of splits (dlcli.data.fingerprint): what a resume compares."""

from __future__ import annotations

import shutil

import numpy as np
import torch

from dlcli.data._tensors import ImageFiles, Split
from dlcli.data.fingerprint import content_changes, data_fingerprints, fingerprint_problems, split_fingerprint


def test_a_tensor_fingerprint_covers_bytes_dtype_shape_and_labels():
    x = torch.arange(24, dtype=torch.uint8).reshape(4, 1, 2, 3)
    y = torch.tensor([0, 1, 2, 0])
    prints = [split_fingerprint(Split(x, y)),
              split_fingerprint(Split(x.reshape(4, 1, 3, 2), y)),  # the same bytes in another shape
              split_fingerprint(Split(x.to(torch.int8), y)),  # ... and of another dtype
              split_fingerprint(Split(x, y.roll(1))),  # labels shifted
              split_fingerprint(Split(255 - x, y))]  # images inverted
    assert len(set(prints)) == 5
    assert prints[0].startswith("tensors:sha256:") and len(prints[0]) == len("tensors:sha256:") + 64
    assert split_fingerprint(Split(x.clone(), y.clone())) == prints[0]
    # a view that is not contiguous hashes as its contiguous copy
    wide = torch.zeros(4, 1, 2, 6, dtype=torch.uint8)
    wide[..., ::2] = x
    assert split_fingerprint(Split(wide[..., ::2], y)) == prints[0]


def test_absent_and_empty_splits_have_no_fingerprint():
    train = Split(torch.zeros(3, 2), torch.zeros(3, dtype=torch.int64))
    prints = data_fingerprints(train, None, train.take(slice(0, 0)))
    assert prints["val"] is None and prints["test"] is None and prints["train"]


def _image_files(root, labels=(0, 1, 0)) -> ImageFiles:
    files = sorted(str(p) for p in root.rglob("*.png"))
    return ImageFiles(np.array(files), torch.tensor(labels[:len(files)]), (1, 2, 2))


def _folder(root):
    for name, size in (("a/1.png", 3), ("b/2.png", 4), ("b/3.png", 5)):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x" * size)
    return root


def test_a_streamed_fingerprint_is_of_relative_names_sizes_and_labels(tmp_path):
    """A moved folder is the same data; a renamed, resized or relabelled file is not. The content
    of a file of the same size is not read."""
    folder = _folder(tmp_path / "one")
    first = split_fingerprint(_image_files(folder))
    assert first.startswith("files:sha256:")
    moved = shutil.copytree(folder, tmp_path / "elsewhere" / "two")
    assert split_fingerprint(_image_files(moved)) == first
    assert split_fingerprint(_image_files(folder, labels=(1, 1, 0))) != first
    (moved / "b" / "3.png").write_bytes(b"y" * 5)  # another image of the same size: not seen
    assert split_fingerprint(_image_files(moved)) == first
    (moved / "b" / "3.png").write_bytes(b"y" * 6)
    assert split_fingerprint(_image_files(moved)) != first
    (moved / "b" / "3.png").rename(moved / "b" / "4.png")
    assert split_fingerprint(_image_files(moved)) != first


def test_only_fingerprints_of_one_kind_are_compared():
    """An image folder held in memory when the run trained and streamed now: no comparison."""
    then = {"train": "tensors:sha256:" + "a" * 64, "val": None, "test": "files:sha256:" + "b" * 64}
    now = {"train": "files:sha256:" + "c" * 64, "val": "tensors:sha256:" + "d" * 64,
           "test": "files:sha256:" + "e" * 64}
    assert content_changes(then, now, {"test": 7}, images=True) == [
        "the test split's content changed (file names, sizes or labels) although its 7 samples, normalization "
        "and classes match"]
    assert content_changes(None, now, {}, images=True) == []


def test_the_checkpoint_schema_of_fingerprints():
    good = {"train": "tensors:sha256:" + "0" * 64, "val": None}
    assert fingerprint_problems(good) == [] and fingerprint_problems(None) == []
    assert fingerprint_problems([1]) == [
        "data_fingerprint: expected a mapping of train, val, test to fingerprints, received [1]"]
    assert fingerprint_problems({"test": "x" * 300})[0].startswith(
        "data_fingerprint.test: expected null or a fingerprint (kind:algorithm:hex digest), received 'xxx")
