"""MNIST, shipped with dlcli as the four original gzip IDX files: checked against
SHA256SUMS, then parsed. x: uint8 (N, 1, 28, 28); y: int64 (N,); 60,000 train and
10,000 test samples. Needs no argument and no network."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from dlcli.data._checks import Found
from dlcli.data.datasets import DATASETS
from dlcli.errors import DataError, short_list, short_repr

if TYPE_CHECKING:
    from dlcli.model.plan import ModelPlan

MNIST_DIR = Path(__file__).resolve().parent.parent / "mnist"
MNIST_FILES = {  # split: (images, labels)
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IDX_UBYTE = 0x08  # IDX type code for unsigned bytes, the only one MNIST uses


def inspect_mnist(cfg: dict, plan: ModelPlan) -> list[tuple[tuple, str]]:
    """The MNIST files shipped with dlcli are there (their checksums are checked by train)."""
    found = Found()
    names = ["SHA256SUMS", *(name for pair in MNIST_FILES.values() for name in pair)]
    missing = [name for name in names if not (MNIST_DIR / name).is_file()]
    if missing:
        found.add(("data", "dataset"), f"{MNIST_DIR}: {short_list(missing)} not found; expected the MNIST files "
                                       f"shipped with dlcli; reinstall dlcli")
    return found.problems


@DATASETS.register("mnist", help="MNIST digits, 60,000/10,000 28x28 grey images (shipped with dlcli, offline)",
                   sample_shape=(1, 28, 28), num_classes=10, task="classification", inspect=inspect_mnist)
def load_mnist(args, input_shape):
    return load_mnist_idx(MNIST_DIR)


def load_mnist_idx(directory: Path):
    """MNIST from `directory`: each .gz is checked against SHA256SUMS, then parsed; a `Splits`."""
    import numpy as np  # lazy, as torch: registration stays fast (see dlcli.data.datasets)
    import torch

    from dlcli.data._tensors import Split, Splits

    directory = Path(directory)
    expected = _read_sha256sums(directory / "SHA256SUMS")
    splits = {}
    for split, (image_file, label_file) in MNIST_FILES.items():
        images = _parse_idx(directory / image_file, _verified_gunzip(directory / image_file, expected), ndim=3)
        labels = _parse_idx(directory / label_file, _verified_gunzip(directory / label_file, expected), ndim=1)
        if images.shape[1:] != (28, 28):
            raise DataError(f"{directory / image_file}: expected 28x28 images, received "
                            f"{images.shape[1]}x{images.shape[2]}")
        if len(images) != len(labels):
            raise DataError(f"{directory / label_file}: expected one label per image in {image_file} "
                            f"({len(images)}), received {len(labels)} labels")
        if len(labels) and labels.max() > 9:
            raise DataError(f"{directory / label_file}: expected digit labels 0-9, received {labels.max()}")
        x = torch.from_numpy(images).unsqueeze(1)  # (N, 1, 28, 28) uint8
        y = torch.from_numpy(labels.astype(np.int64))  # (N,)
        splits[split] = Split(x, y)
    return Splits(train=splits["train"], test=splits["test"], task="classification", num_classes=10,
                  class_names=[str(d) for d in range(10)], source=f"MNIST (shipped with dlcli, {directory})")


def _read_sha256sums(path: Path) -> dict[str, str]:
    """`sha256sum` output: '<hex>  <name>' per line -> {name: hex}."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: checksum list not found; expected the SHA256SUMS file shipped with dlcli "
                        f"(reinstall dlcli)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read the checksum list: {err}") from None
    sums = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = re.fullmatch(r"([0-9a-fA-F]{64})\s+\*?(\S+)\s*", line)
        if match is None:
            raise DataError(f"{path}:{number}: expected '<64 hex digits>  <file name>', "
                            f"received {short_repr(line)}")
        sums[match.group(2)] = match.group(1).lower()
    return sums


def _verified_gunzip(path: Path, expected: dict[str, str]) -> bytes:
    """The decompressed bytes of `path`, after its SHA-256 matched the list."""
    import gzip  # lazy, as numpy and torch: registration stays fast (see dlcli.data.datasets)
    import hashlib
    import zlib

    if path.name not in expected:
        raise DataError(f"{path}: no checksum for {path.name} in SHA256SUMS; expected one line per file "
                        f"(reinstall dlcli)")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; expected the MNIST file shipped with dlcli "
                        f"(sha256 {expected[path.name]}); reinstall dlcli") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read: {err}") from None
    actual = hashlib.sha256(raw).hexdigest()
    if actual != expected[path.name]:
        raise DataError(f"{path}: checksum mismatch: expected sha256 {expected[path.name]} (SHA256SUMS), "
                        f"received {actual}; the file is damaged or was replaced, reinstall dlcli")
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: expected a gzip file, cannot decompress: {err}") from None


def _parse_idx(path: Path, data: bytes, ndim: int):
    """An IDX array of unsigned bytes: magic 0x0000 08 <ndim>, ndim big-endian uint32 sizes, data."""
    import numpy as np  # lazy: registration stays fast

    if len(data) < 4:
        raise DataError(f"{path}: expected an IDX header of at least 4 bytes, received {len(data)} bytes")
    magic = int.from_bytes(data[:4], "big")
    expected_magic = (_IDX_UBYTE << 8) | ndim
    if magic != expected_magic:
        raise DataError(f"{path}: expected IDX magic number 0x{expected_magic:08x} (unsigned bytes, {ndim} "
                        f"dimension{'s' if ndim > 1 else ''}), received 0x{magic:08x}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: expected a {header}-byte IDX header, the file ends after {len(data)} bytes")
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    size = int(np.prod(shape, dtype=np.int64))
    if len(data) - header != size:
        raise DataError(f"{path}: expected {size} data bytes for shape {shape}, received {len(data) - header}")
    # copy: frombuffer over bytes is read-only, and torch wants writable memory
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()
