"""Fixtures for the data tests: factories that write tiny data files into tmp_path."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest


def _write_idx(path: Path, array: np.ndarray, magic: int | None = None, compress: bool = True) -> Path:
    """An IDX file of unsigned bytes (magic 0x0000 08 <ndim>, big-endian sizes, data)."""
    array = np.asarray(array, dtype=np.uint8)
    magic = (0x08 << 8) | array.ndim if magic is None else magic
    raw = magic.to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in array.shape) + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def _write_sha256sums(directory: Path) -> None:
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}" for p in sorted(directory.glob("*.gz"))]
    (directory / "SHA256SUMS").write_text("\n".join(lines) + "\n")


@pytest.fixture
def write_idx():
    """write_idx(path, array, magic=None, compress=True): an IDX file (gzip-compressed by default)."""
    return _write_idx


@pytest.fixture
def write_sha256sums():
    """write_sha256sums(directory): a SHA256SUMS for the .gz files in directory."""
    return _write_sha256sums


@pytest.fixture
def make_mnist_dir(tmp_path):
    """A tiny MNIST-layout folder (gzip IDX files + SHA256SUMS): train 12, test 5 images by default.
    `raw` replaces one file's decompressed contents before compressing and summing."""

    def make(train: int = 12, test: int = 5, raw: dict[str, bytes] | None = None) -> Path:
        directory = tmp_path / "mnist"
        rng = np.random.default_rng(0)
        for prefix, n in (("train", train), ("t10k", test)):
            _write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
            _write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
        for name, content in (raw or {}).items():
            (directory / name).write_bytes(gzip.compress(content))
        _write_sha256sums(directory)
        return directory

    return make


@pytest.fixture
def make_npz(tmp_path):
    def make(name: str = "data.npz", **arrays) -> Path:
        path = tmp_path / name
        np.savez(path, **arrays)
        return path

    return make


@pytest.fixture
def make_csv(tmp_path):
    """Write rows (the first one the header) as CSV text; cells are written as given."""

    def make(rows: list[list], name: str = "data.csv") -> Path:
        path = tmp_path / name
        path.write_text("\n".join(",".join(str(c) for c in row) for row in rows) + "\n")
        return path

    return make


@pytest.fixture
def make_image_folder(tmp_path):
    """Class folders of small solid-colour PNGs: {class: [(width, height, rgb), ...]}."""
    from PIL import Image

    def make(layout: dict[str, list[tuple]], name: str = "images") -> Path:
        root = tmp_path / name
        for cls, images in layout.items():
            folder = root / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i, (width, height, rgb) in enumerate(images):
                Image.new("RGB", (width, height), rgb).save(folder / f"{i:03d}.png")
        return root

    return make
