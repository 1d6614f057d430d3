"""Content fingerprints of the splits a run trains on, stored in its checkpoints: a resume
compares them to tell the data the run trained on from other data with the same sample counts,
normalization and classes (every label shifted, every image inverted).

    data_fingerprints(train, val, test)  # {"train": "tensors:sha256:9f2c...", "val": None, ...}

A split held as tensors: the sha256 of x and y, dtype, shape and bytes (the MNIST training set,
47 MB, in about 0.05 s). A streamed image folder, too large to read at each start: the sha256 of
its files' paths (relative to the split's folder, so a moved folder is the same data), sizes
and labels; the images' content is not read.
"""

from __future__ import annotations

import os
import re

SPLITS = (("train", "training"), ("val", "validation"), ("test", "test"))
TENSORS, FILES = "tensors", "files"  # how a split was fingerprinted: its kind
ALGORITHM = "sha256"
# kind:algorithm:digest; this dlcli writes tensors|files:sha256:<64 hex>, and reads any such triple
PATTERN = re.compile(r"[a-z0-9]{1,20}:[a-z0-9]{1,20}:[0-9a-f]{16,128}")


def data_fingerprints(train, val, test) -> dict:
    """{"train", "val", "test": fingerprint, or None for a split that is absent or empty}, of
    `Split`s (tensors) or `ImageFiles` (streamed) as the run trains and evaluates on them."""
    return {key: split_fingerprint(split) if split is not None and len(split) else None
            for (key, _), split in zip(SPLITS, (train, val, test))}


def split_fingerprint(split) -> str:
    """'tensors:sha256:<hex>' of a split's x and y; 'files:sha256:<hex>' of a streamed one."""
    import hashlib

    digest = hashlib.new(ALGORITHM)
    if hasattr(split, "files"):  # ImageFiles
        _hash_files(digest, split.files, split.y)
        return f"{FILES}:{ALGORITHM}:{digest.hexdigest()}"
    for name, tensor in (("x", split.x), ("y", split.y)):
        _hash_tensor(digest, name, tensor)
    return f"{TENSORS}:{ALGORITHM}:{digest.hexdigest()}"


def _hash_tensor(digest, name: str, tensor) -> None:
    """dtype and shape, then the bytes of a contiguous CPU copy (no copy when already one)."""
    import torch

    digest.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}\n".encode())
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    if flat.numel():
        digest.update(flat.view(torch.uint8).numpy())  # the raw bytes, whatever the dtype


def _hash_files(digest, files, labels) -> None:
    """Each file's path relative to the split's common folder, its size and its label."""
    from dlcli.errors import DataError

    paths = [str(f) for f in files]
    root = os.path.commonpath(paths) if len(paths) > 1 else os.path.dirname(paths[0])
    for path, label in zip(paths, labels.tolist()):
        try:
            size = os.stat(path).st_size
        except OSError as err:
            raise DataError(f"{path}: cannot read it: {err.strerror or err}") from None
        digest.update(os.fsencode(os.path.relpath(path, root)) + f"\0{size}\0{label}\n".encode())


def fingerprint_problems(value) -> list[str]:
    """What is wrong with a checkpoint's data_fingerprint field (None: an older checkpoint's)."""
    from dlcli.errors import short_repr

    if value is None:
        return []
    keys = [key for key, _ in SPLITS]
    if not isinstance(value, dict) or not all(key in keys for key in value):
        return [f"data_fingerprint: expected a mapping of {', '.join(keys)} to fingerprints, received "
                f"{short_repr(value)}"]
    return [f"data_fingerprint.{key}: expected null or a fingerprint (kind:algorithm:hex digest), received "
            f"{short_repr(found)}" for key, found in value.items()
            if found is not None and not (isinstance(found, str) and PATTERN.fullmatch(found))]


def content_changes(then, now: dict, counts: dict, images: bool) -> list[str]:
    """'the training split's content changed (labels or pixels) although its 60000 samples, ...'
    for each split whose fingerprint differs from the checkpoint's (`then`: its data_fingerprint).
    Only fingerprints of the same kind are compared: an image folder held in memory when the run
    trained may be streamed when it resumes (data.in_memory: auto) and be fingerprinted otherwise."""
    if not isinstance(then, dict) or not isinstance(now, dict):
        return []
    changes = []
    for key, name in SPLITS:
        old, new = then.get(key), now.get(key)
        if old is None or new is None or old == new or old.rsplit(":", 1)[0] != new.rsplit(":", 1)[0]:
            continue
        what = ("file names, sizes or labels" if new.startswith(f"{FILES}:") else
                "labels or pixels" if images else "labels or values")
        changes.append(f"the {name} split's content changed ({what}) although its {counts[key]} samples, "
                       f"normalization and classes match")
    return changes
