"""The loaders behind the DATASETS registry: files in, a `Splits` of tensors out.

Every problem with the data is a `DataError` whose message names the file, says
what was expected and what was received; nothing here asserts on user input.
`args` hold every declared argument of the data set (`dlcli.data.load_dataset` fills
the defaults), so loaders index them.

    load_mnist_idx(directory)                      the MNIST IDX files shipped with dlcli
    load_torchvision(name, cls, args)              FashionMNIST, KMNIST, CIFAR10, CIFAR100
    load_npz_file(args, input_shape)               arrays x, y (, x_test, y_test) in an .npz
    load_csv_file(args)                            a CSV with a header row; `window` makes sequences
    load_image_folder_dir(args, input_shape)       root/<class>/*.png, resized to the model's input
                                                   (or the files alone, to stream, when they do not
                                                   fit in memory)
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import math
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dlcli.data._tensors import ImageFiles, Split, Splits
from dlcli.errors import CONTROL_CHARACTERS, DataError, did_you_mean, short_list, short_repr, short_size, shorten
from dlcli.registry import NUMBER_RE


@contextlib.contextmanager
def about_key(key: str | tuple):
    """DataErrors raised inside are about config key `key` (`"test_path"`: data.test_path),
    unless they name one already; `dlcli.data.prepare.load_splits` gives the rest data.path."""
    try:
        yield
    except DataError as err:
        raise err.at_key(("data", key) if isinstance(key, str) else key)


# ---------------------------------------------------------------------------
# MNIST, shipped as the four original gzip IDX files
# ---------------------------------------------------------------------------

MNIST_FILES = {  # split: (images, labels)
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IDX_UBYTE = 0x08  # IDX type code for unsigned bytes, the only one MNIST uses


def load_mnist_idx(directory: Path) -> Splits:
    """MNIST from `directory`: each .gz is checked against SHA256SUMS, then parsed.

    x: uint8 (N, 1, 28, 28); y: int64 (N,); 60,000 train and 10,000 test samples.
    """
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


def _parse_idx(path: Path, data: bytes, ndim: int) -> np.ndarray:
    """An IDX array of unsigned bytes: magic 0x0000 08 <ndim>, ndim big-endian uint32 sizes, data."""
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


# ---------------------------------------------------------------------------
# torchvision data sets, in the cache directory
# ---------------------------------------------------------------------------

def load_torchvision(name: str, cls: str, args: dict) -> Splits:
    """A torchvision data set (`cls`, e.g. "CIFAR10") in `cache_dir(args["root"])`.

    x: uint8 (N, C, H, W); y: int64 (N,). Downloads only when args["download"] is true.
    """
    from dlcli.data import cache_dir

    root, download = cache_dir(args["root"]), args["download"]
    try:
        import torchvision.datasets
    except ImportError as err:
        raise DataError(f"{name} needs torchvision, which cannot be imported: {err}") from None
    dataset_cls = getattr(torchvision.datasets, cls, None)
    if dataset_cls is None:
        raise DataError(f"{name}: this torchvision has no data set {cls!r}; expected torchvision >= 0.19")
    train = _open_torchvision(name, dataset_cls, root, download, train=True)
    test = _open_torchvision(name, dataset_cls, root, download, train=False)
    classes = [str(c) for c in train.classes]
    return Splits(train=_torchvision_split(name, root, train), test=_torchvision_split(name, root, test),
                  task="classification", num_classes=len(classes), class_names=classes,
                  source=f"torchvision {cls} in {root}")


def _open_torchvision(name: str, dataset_cls: type, root: Path, download: bool, train: bool):
    import http.client
    import pickle
    import socket
    import urllib.error

    failures = (urllib.error.URLError, socket.timeout, OSError, http.client.HTTPException, RuntimeError,
                RecursionError, ValueError, EOFError, pickle.UnpicklingError)
    try:
        return dataset_cls(root=str(root), train=train, download=download)
    except failures as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        hint = _torchvision_files_hint(dataset_cls, root)
        if download:
            raise DataError(f"{name}: the download into {root} failed (offline?): {reason}. {hint}") from None
        if reason.startswith("Dataset not found"):  # torchvision's words for "files missing"
            raise DataError(torchvision_missing(name, dataset_cls, root)) from None
        raise DataError(f"{name}: the data set in {root} cannot be read ({reason}). Set data.download=true to "
                        f"download it (needs the internet), or data.root to where it is. {hint}") from None


def torchvision_missing(name: str, dataset_cls: type, root: Path) -> str:
    """What to do when torchvision's `dataset_cls` has no files in `root`."""
    return (f"{name}: the data set is not in {root}. Set data.download=true to download it (needs the internet), "
            f"or data.root to where it is. {_torchvision_files_hint(dataset_cls, root)}")


def torchvision_missing_offline(name: str, cls: str, root: Path) -> str | None:
    """What a command that reads a checkpoint says when torchvision data set `cls` is not in `root`:
    such a command never downloads (whatever the checkpoint's data.download says) and creates no
    folder, as a checkpoint from elsewhere must not choose where dlcli writes. None when the files
    are all there (or torchvision lays this one out in a way dlcli cannot list)."""
    try:
        import torchvision.datasets
    except ImportError as err:
        return f"{name} needs torchvision, which cannot be imported: {err}"
    dataset_cls = getattr(torchvision.datasets, cls, None)
    files = None if dataset_cls is None else torchvision_files(dataset_cls, root)
    missing = [f for f in files or [] if not f.is_file()]
    if not missing:
        return None
    more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
    return (f"{name}: the data set is not in {root} (missing {missing[0]}{more}); commands that read a checkpoint "
            f"(evaluate, train --resume) never download it and create no folders, whatever the checkpoint's "
            f"data.download and data.root say. Put the files there, e.g. with dlcli train of a config of yours "
            f"with data.download: true and data.root: {root}")


def torchvision_files(dataset_cls: type, root: Path) -> list[Path] | None:
    """The files torchvision's `dataset_cls` reads from `root` (the MNIST family's unpacked raw
    files, CIFAR's batches), to look for without reading them; None for a class laid out otherwise."""
    resources = getattr(dataset_cls, "resources", None)
    if resources:  # MNIST family: root/<class>/raw/<file without .gz>
        raw = root / dataset_cls.__name__ / "raw"
        return [raw / Path(str(url)).name.removesuffix(".gz") for url, _ in resources]
    base = getattr(dataset_cls, "base_folder", None)
    batches = [*getattr(dataset_cls, "train_list", []), *getattr(dataset_cls, "test_list", [])]
    if base and batches:  # CIFAR: root/<base_folder>/<batch>
        return [root / base / str(batch[0]) for batch in batches]
    return None


def _torchvision_files_hint(dataset_cls: type, root: Path) -> str:
    """Where the files go when copied by hand, for the torchvision class at hand."""
    resources = getattr(dataset_cls, "resources", None)  # the MNIST family
    if resources:
        raw = root / dataset_cls.__name__ / "raw"
        archives = ", ".join(Path(str(url)).name for url, _ in resources)
        mirror = (getattr(dataset_cls, "mirrors", None) or [""])[0]
        return (f"By hand: copy {archives}{f' (from {mirror})' if mirror else ''} into {raw}/ and set "
                f"data.download=true (files already there are verified and unpacked, not downloaded), or "
                f"put the unpacked files (the same names without .gz) there.")
    base, archive = getattr(dataset_cls, "base_folder", None), getattr(dataset_cls, "filename", None)
    if base and archive:  # CIFAR
        url = getattr(dataset_cls, "url", "")
        return (f"By hand: put {archive}{f' (from {url})' if url else ''} in {root}/ and set "
                f"data.download=true (a verified archive is unpacked, not downloaded), or unpack it there "
                f"so that {root / base}/ exists.")
    return f"By hand: put the files where torchvision's {dataset_cls.__name__} expects them under {root}/."


def _torchvision_split(name: str, root: Path, dataset) -> Split:
    data = dataset.data
    x = data if isinstance(data, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(data))
    if x.ndim == 3:  # MNIST family: (N, H, W)
        x = x.unsqueeze(1)
    elif x.ndim == 4 and x.shape[-1] in (1, 3):  # CIFAR: numpy (N, H, W, C)
        x = x.permute(0, 3, 1, 2)
    else:
        raise DataError(f"{name} in {root}: expected images (N, H, W) or (N, H, W, C), received "
                        f"{tuple(x.shape)}")
    x = x.to(torch.uint8).contiguous()  # (N, C, H, W)
    y = torch.as_tensor(np.asarray(dataset.targets), dtype=torch.int64)  # (N,)
    if len(y) != len(x):
        raise DataError(f"{name} in {root}: expected one target per image ({len(x)}), received {len(y)}")
    return Split(x, y)


# ---------------------------------------------------------------------------
# Targets, shared by npz and csv
# ---------------------------------------------------------------------------

def _finish_targets(ys: dict[str, np.ndarray], task: str, where: dict[str, str]) -> tuple[str, dict, int | None]:
    """Numeric targets per split -> (task, {split: y tensor}, num_classes).

    task auto: integer (or bool) targets are class ids, and so are one-hot rows (N, C) of
    any type (Keras's categorical targets); other float targets are values.
    Class ids: int64 (N,), >= 0, num_classes = max + 1 over all splits (C for one-hot).
    Values: float32 (N, *target_shape); a flat (N,) becomes (N, 1) to match a 1-unit output.
    """
    one_hot_classes = 0
    if task != "regression":
        for split, y in ys.items():
            if _one_hot(y):
                one_hot_classes = max(one_hot_classes, y.shape[1])
                ys = {**ys, split: y.argmax(1).astype(np.int64)}
    train_y = ys["train"]
    if task == "auto":
        task = "classification" if train_y.dtype.kind in "biu" else "regression"
    if task == "regression":
        out = {}
        for split, y in ys.items():
            y = y.astype(np.float32)
            out[split] = torch.from_numpy(y.reshape(len(y), 1) if y.ndim == 1 else y)
        for split, t in out.items():
            if t.shape[1:] != out["train"].shape[1:]:
                raise DataError(f"{where[split]}: expected targets of shape {tuple(out['train'].shape[1:])} per "
                                f"sample as in {where['train']}, received {tuple(t.shape[1:])}")
        return task, out, None
    out = {}
    for split, y in ys.items():
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise DataError(f"{where[split]}: expected one class id per sample, shape (N,), or one-hot rows "
                            f"(N, classes), received targets of shape {y.shape} that are not one-hot; for several "
                            f"values per sample use task: regression")
        if y.dtype.kind == "f":
            fractional = np.flatnonzero(y != np.round(y))
            if len(fractional):
                i = int(fractional[0])
                raise DataError(f"{where[split]}: task classification expects integer class ids, received "
                                f"{y[i].item()} at sample {i}; use task: regression (or auto) for values")
        if y.dtype.kind == "b":
            y = y.astype(np.int64)
        if len(y) and y.max() > _MAX_CLASS_ID:  # before int64 wraps it round (2**64 - 1 -> -1)
            i = int(np.argmax(y))
            raise DataError(f"{where[split]}: expected class ids from 0 to {_MAX_CLASS_ID}, received "
                            f"{_exact(y[i])} at sample {i}")
        if len(y) and y.min() < 0:
            i = int(np.argmin(y))
            raise DataError(f"{where[split]}: expected class ids >= 0, received {y[i]} at sample {i}")
        out[split] = torch.from_numpy(y.astype(np.int64))
    num_classes = max(int(max(int(t.max()) for t in out.values() if len(t))) + 1, one_hot_classes)
    return task, out, num_classes


# Class ids beyond this are no class of any model (a float64 cell holds integers exactly up to it);
# the model's output count bounds them further (dlcli.data.prepare), before anything per class is built.
_MAX_CLASS_ID = 2 ** 53


def _exact(value) -> str:
    """A label as stored: 18446744073709551615, not 1.8446744073709552e+19 or -1."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _one_hot(y: np.ndarray) -> bool:
    """(N, C) rows of zeros with a single one each, C >= 2."""
    if y.ndim != 2 or y.shape[1] < 2 or len(y) == 0:
        return False
    ones = y == 1
    return bool(((y == 0) | ones).all() and (ones.sum(1) == 1).all())


def check_finite(array: np.ndarray, what: str, where: str) -> None:
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise DataError(f"{where}: expected finite numbers in {what}, received {array[index]} at "
                        f"{what}[{', '.join(map(str, index))}]")


# ---------------------------------------------------------------------------
# .npz files
# ---------------------------------------------------------------------------

def load_npz_file(args: dict, input_shape: list | None) -> Splits:
    """Arrays x and y (and optionally x_test, y_test, and x_val, y_val: Keras's
    validation_data) from args["path"]; a test split from x, y in args["test_path"].

    x: int64 (N, T) token ids when x is an integer (N, T) array, else float32
    (N, *sample_shape); a flat (N,) x becomes (N, 1); images stored channels-last (or
    without their single channel) are laid out as the model's `input_shape` (C, H, W) asks.
    y: see `_finish_targets`.
    """
    path, test_path = Path(args["path"]), args["test_path"]
    arrays = {"train": _read_npz_split(path, "x", "y", inline_ok=True)}
    where = {"train": str(path)}
    inline_test = arrays["train"].pop("test", None)
    inline_val = arrays["train"].pop("val", None)
    if inline_val is not None:
        arrays["val"], where["val"] = inline_val, f"{path} (x_val, y_val)"
    if inline_test is not None and test_path:
        raise DataError(two_test_splits(path, test_path), key=("data", "test_path"))
    if inline_test is not None:
        arrays["test"], where["test"] = inline_test, f"{path} (x_test, y_test)"
    elif test_path:
        with about_key("test_path"):
            arrays["test"], where["test"] = _read_npz_split(Path(test_path), "x", "y"), str(test_path)

    xs = {}
    for split, pair in arrays.items():
        xs[split] = npz_inputs(pair["x"], where[split], pair["x_name"], input_shape)
    for split, name in (("val", "validation"), ("test", "test")):
        if split in xs and (xs["train"].shape[1:] != xs[split].shape[1:] or xs["train"].dtype != xs[split].dtype):
            raise DataError(f"{where[split]}: expected {name} samples like the training samples, "
                            f"{_describe(xs['train'])}, received {_describe(xs[split])}")
    task, ys, num_classes = _finish_targets({s: a["y"] for s, a in arrays.items()}, args["task"], where)
    splits = {s: Split(xs[s], ys[s]) for s in xs}
    source = f"npz {path}" + (f" (test: {test_path})" if test_path else "")
    return Splits(train=splits["train"], test=splits.get("test"), val=splits.get("val"), task=task,
                  num_classes=num_classes, class_names=None,  # ids name themselves: see prepare_data
                  source=source, meta={"val_arrays": "x_val, y_val"} if "val" in splits else {})


def two_test_splits(path: Path, test_path: str) -> str:
    return (f"{path}: holds x_test and y_test, and data.test_path={test_path} is given too; expected one test "
            f"split: remove test_path or the x_test/y_test arrays")


def _describe(x: torch.Tensor) -> str:
    """'(3,) float32': one sample's shape and the element type."""
    return f"{tuple(x.shape[1:])} {str(x.dtype).removeprefix('torch.')}"


def _read_npz_split(path: Path, x_name: str, y_name: str, inline_ok: bool = False) -> dict:
    """{'x', 'y', 'x_name'} checked numpy arrays, plus with `inline_ok` 'test' and 'val' (the
    same) from x_test/y_test and x_val/y_val when present."""
    with open_npz(path, f"arrays {x_name} and {y_name}") as npz:
        names = list(npz.files)
        for required in (x_name, y_name):
            if required not in names:
                raise DataError(f"{path}: expected an array named {required!r};{did_you_mean(required, names)} "
                                f"the file has: {short_list(names) or 'no arrays'}")
        inline = [(split, f"x_{split}", f"y_{split}") for split in ("test", "val")] if inline_ok else []
        read = [x_name, y_name] + [n for _, *pair in inline for n in pair if n in names]
        arrays = read_npz_arrays(npz, read, path)
        out = {"x": arrays[x_name], "y": arrays[y_name], "x_name": x_name}
        _check_pair(out["x"], out["y"], x_name, y_name, str(path))
        for split, xs_name, ys_name in inline:
            if xs_name not in names and ys_name not in names:
                continue
            if not (xs_name in names and ys_name in names):
                missing = ys_name if xs_name in names else xs_name
                raise DataError(f"{path}: expected {xs_name} and {ys_name} together, {missing} is missing")
            pair = {"x": arrays[xs_name], "y": arrays[ys_name], "x_name": xs_name}
            _check_pair(pair["x"], pair["y"], xs_name, ys_name, str(path))
            out[split] = pair
    return out


def open_npz(path: Path, expected: str) -> np.lib.npyio.NpzFile:
    """The .npz archive at `path`, to read in a `with` block; a missing file, a folder, a file
    that is not a zip archive (never unpickled) or a single .npy array are refused, saying
    what was `expected` in it (e.g. "arrays x and y")."""
    if not path.exists():
        raise DataError(f"{path}: file not found; expected an .npz file with {expected}")
    if path.is_dir():
        raise DataError(f"{path}: expected an .npz file, received a directory")
    try:
        npz = np.load(path, allow_pickle=False)
    except ValueError:  # numpy's answer for anything that is neither .npy nor a zip: "pickled data"
        with open(path, "rb") as f:
            head = f.read(16)
        raise DataError(f"{path}: expected an .npz file (np.savez), received a file that is neither a zip "
                        f"archive nor .npy (it starts with {head!r}); dlcli does not unpickle files") from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: expected an .npz file (np.savez), cannot read it: {err}") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: expected an .npz archive with {expected} (np.savez), "
                        f"received a single .npy array of shape {getattr(npz, 'shape', '?')}")
    return npz


def read_npz_arrays(npz, names: list[str], path: Path) -> dict[str, np.ndarray]:
    """The numeric arrays `names` of an open .npz, refused before any is read when together
    they would not fit in memory."""
    _check_memory_for(npz, names, path)
    return {name: _npz_array(npz, name, path) for name in names}


def npz_header(npz, name: str) -> tuple[tuple, np.dtype] | None:
    """The shape and dtype of array `name`, read from its .npy header without its data
    (None when the header is not one numpy's public readers take)."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        with npz.zip.open(f"{name}.npy") as f:
            reader = readers.get(np.lib.format.read_magic(f))
            if reader is None:
                return None
            shape, _, dtype = reader(f)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, zlib.error):
        return None  # reading the array itself reports what is wrong
    return tuple(shape), dtype


def _check_memory_for(npz, names: list[str], path: Path) -> None:
    """Arrays that cannot fit in memory are refused before reading them, with how much they
    need (each array, then its float32 copy), rather than ending the process out of memory."""
    from dlcli.data.stream import available_memory

    need = 0
    for name in names:
        header = npz_header(npz, name)
        if header is not None:
            need += math.prod(header[0]) * (header[1].itemsize + 4)
    available = available_memory()
    if available is not None and need > available:
        raise DataError(f"{path}: reading {', '.join(names)} needs about {short_size(need)} of memory (each "
                        f"array, then its float32 copy), and {short_size(available)} is available; HINT: a "
                        f"smaller file (data.subset applies after reading); images stored as an image folder "
                        f"are streamed from disk when they do not fit (data.in_memory)")


def _npz_array(npz, name: str, path: Path) -> np.ndarray:
    try:
        array = npz[name]
    except ValueError as err:  # objects (allow_pickle=False), or fewer bytes than the header declares
        header = npz_header(npz, name)
        if header is not None and not header[1].hasobject:
            shape, dtype = header
            raise DataError(f"{path}: array {name!r} is truncated or damaged: its header declares {dtype} of shape "
                            f"{shape} ({short_size(math.prod(shape) * dtype.itemsize)}), which its data do not "
                            f"hold ({err}); expected the whole file as np.savez wrote it") from None
        raise DataError(f"{path}: array {name!r} holds Python objects, which dlcli does not load (that would "
                        f"unpickle code); expected a numeric array, e.g. save {name}.astype('float32') "
                        f"({err})") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise DataError(f"{path}: cannot read array {name!r}: {err}") from None
    if array.dtype.kind not in "biuf":
        raise DataError(f"{path}: expected numbers in array {name!r}, received dtype {array.dtype}")
    return array


def _check_pair(x: np.ndarray, y: np.ndarray, x_name: str, y_name: str, where: str) -> None:
    check_pair_shapes(x.shape, y.shape, x_name, y_name, where)
    check_finite(x, x_name, where)
    check_finite(y, y_name, where)


def check_pair_shapes(x: tuple, y: tuple, x_name: str, y_name: str, where: str) -> None:
    """Samples `x` and targets `y`, by their shapes alone (validate reads no more): one target
    per sample, and at least one of each."""
    if len(x) == 0 or len(y) == 0:
        scalar = x_name if len(x) == 0 else y_name
        raise DataError(f"{where}: expected {scalar} to hold one entry per sample, received a single number")
    if x[0] != y[0]:
        raise DataError(f"{where}: expected as many targets as samples, received {x_name} with {x[0]} "
                        f"samples and {y_name} with {y[0]}")
    if x[0] == 0 or math.prod(x) == 0:
        raise DataError(f"{where}: expected at least one sample, {x_name} is empty (shape {x})")
    if math.prod(y) == 0:
        raise DataError(f"{where}: expected at least one target per sample, {y_name} is empty (shape {y})")


def npz_sample_shape(sample: tuple, input_shape=None) -> tuple:
    """The shape of one sample of an npz `x` as `npz_inputs` hands it to the model, from the
    shape stored (validate reads no more)."""
    sample = tuple(sample) or (1,)  # a flat (N,) x: one feature per sample
    layout = _image_layout(sample, input_shape)
    if layout == "add_channel":
        return (1, *sample)
    if layout == "channels_last":
        return (sample[2], sample[0], sample[1])
    return sample


def npz_inputs(x: np.ndarray, where: str, name: str, input_shape=None) -> torch.Tensor:
    """x as the model takes it. Images stored as Keras keeps them are laid out as the
    model's `input_shape` (C, H, W) asks: (N, H, W) grey images gain their channel axis,
    and channels-last (N, H, W, C) images become channels-first."""
    if x.ndim == 1:
        x = x.reshape(len(x), 1)  # one feature per sample
    x = images_channels_first(x, input_shape)
    if x.ndim == 2 and x.dtype.kind in "iu":  # (N, T): token ids for an embedding
        if x.min() < 0:
            raise DataError(f"{where}: integer {name} of shape (N, T) is read as token ids, expected ids >= 0, "
                            f"received {x.min()}; save it as float to use it as features")
        return torch.from_numpy(x.astype(np.int64))
    return torch.from_numpy(x.astype(np.float32))


def images_channels_first(x: np.ndarray, input_shape) -> np.ndarray:
    """(N, H, W) or (N, H, W, C) arrays as (N, C, H, W), where `input_shape` is that
    (C, H, W) and the samples are not already stored as it is."""
    layout = _image_layout(tuple(x.shape[1:]), input_shape)
    if layout == "add_channel":
        return x[:, None]
    if layout == "channels_last":
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return x


def _image_layout(sample: tuple, input_shape) -> str:
    """How stored samples become the model's (C, H, W) `input_shape`: "as_is", "add_channel"
    ((H, W) grey images) or "channels_last" ((H, W, C), as Keras keeps images)."""
    shape = tuple(input_shape or ())
    if len(shape) != 3 or sample == shape:
        return "as_is"
    channels, height, width = shape
    if sample == (height, width) and channels == 1:
        return "add_channel"
    if sample == (height, width, channels):
        return "channels_last"
    return "as_is"


# ---------------------------------------------------------------------------
# CSV files
# ---------------------------------------------------------------------------

_INT_RE = re.compile(r"^\s*[-+]?\d+\s*$")


class CsvTable:
    """A CSV read as strings: header names, columns, and each row's line number."""

    def __init__(self, path: Path, limit: int | None = None):
        """`limit`: read the header and at most that many data rows (validate's look)."""
        self.path = path
        self.header, rows, self.lines = _read_csv_rows(path, limit)
        self.columns = {name: [row[i] for row in rows] for i, name in enumerate(self.header)}

    def require(self, names: list[str], like: str | None = None) -> None:
        missing = [n for n in names if n not in self.columns]
        if missing:
            source = f" as in {like}" if like else ""
            hint = did_you_mean(missing[0], self.header)
            raise DataError(f"{self.path}: expected column{'s' if len(missing) > 1 else ''} "
                            f"{short_list(missing, short_repr)}{source};{hint} the file has columns: "
                            f"{short_list(self.header)}")

    def numbers(self, name: str) -> np.ndarray:
        """Column `name` as float64; an empty, non-numeric or non-finite cell names its line."""
        cells = self.columns[name]
        try:
            values = np.array(cells, dtype=np.float64)
        except ValueError:
            for i, cell in enumerate(cells):
                try:
                    float(cell)
                except ValueError:
                    raise self.cell_error(i, name, "a number", cell) from None
            raise  # pragma: no cover - numpy and float() agree on what a number is
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise self.cell_error(int(bad[0]), name, "a finite number", cells[bad[0]])
        return values

    def cell_error(self, i: int, name: str, expected: str, cell: str) -> DataError:
        received = "an empty cell" if not cell.strip() else short_repr(cell)
        return DataError(f"{self.path}:{self.lines[i]}: column {short_repr(name)} (data row {i + 1}): expected "
                         f"{expected}, received {received}")


def _read_csv_rows(path: Path, limit: int | None = None) -> tuple[list[str], list[list[str]], list[int]]:
    if not path.exists():
        raise DataError(f"{path}: file not found; expected a CSV file with a header row")
    if path.is_dir():
        raise DataError(f"{path}: expected a CSV file, received a directory")
    rows, lines = [], []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or not any(h.strip() for h in header):
                raise DataError(f"{path}: expected a header row with column names, received an empty "
                                f"{'file' if header is None else 'first line'}")
            header = [h.strip() for h in header]
            for row in reader:
                if not row:  # a blank line
                    continue
                if len(row) != len(header):
                    raise DataError(f"{path}:{reader.line_num}: expected {len(header)} fields as in the header, "
                                    f"received {len(row)}")
                rows.append(row)
                lines.append(reader.line_num)
                if limit is not None and len(rows) >= limit:
                    break
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: expected UTF-8 text, cannot decode: {err}") from None
    except csv.Error as err:
        raise DataError(f"{path}: not a readable CSV file: {err}") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read: {err}") from None
    blank = [i + 1 for i, h in enumerate(header) if not h]
    if blank:
        raise DataError(f"{path}:1: expected a name for every column, column {blank[0]} has none")
    if all(NUMBER_RE.match(h) for h in header):  # not nan or inf, which could be names: a header of these is data
        raise DataError(f"{path}:1: expected a header row of column names, received a row of numbers "
                        f"({short_list(header, limit=8)}), which looks like data; HINT: add a first line naming "
                        f"the columns (taking this row as names would also drop it as a sample)")
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise DataError(f"{path}:1: expected unique column names, received {short_list(duplicates, short_repr)} "
                        f"more than once")
    if not rows:
        raise DataError(f"{path}: expected data rows after the header, the file has none")
    return header, rows, lines


def load_csv_file(args: dict) -> Splits:
    """A CSV with a header row: feature columns and one target column.

    x: float32 (N, F), or (N, window, F) with `window` (consecutive rows; the
    target is the target column of the row after the window, so N = rows - window).
    y: int64 (N,) class ids (text targets: classes are the sorted unique strings),
    or float32 (N, 1) values.
    """
    path, test_path = Path(args["path"]), args["test_path"]
    target, window, task = args["target"], args["window"], args["task"]
    tables = {"train": CsvTable(path)}
    features = csv_columns(tables["train"], target, args["features"], window)
    if test_path:
        with about_key("test_path"):
            tables["test"] = CsvTable(Path(test_path))
            tables["test"].require([*features, target], like=str(path))
    where = {s: str(t.path) for s, t in tables.items()}

    xs = {s: np.stack([t.numbers(name) for name in features], axis=1).astype(np.float32)  # (rows, F)
          for s, t in tables.items()}
    task, ys, class_names = csv_targets(tables, target, task)
    if window:
        for split in list(xs):
            xs[split], ys[split] = _windows(xs[split], ys[split], window, where[split])
    if task == "regression":
        _, ys_t, num_classes = _finish_targets(ys, "regression", where)
    else:
        ys_t = {s: torch.from_numpy(y.astype(np.int64)) for s, y in ys.items()}
        num_classes = len(class_names) if class_names else int(max(int(y.max()) for y in ys_t.values())) + 1
    splits = {s: Split(torch.from_numpy(np.ascontiguousarray(xs[s])), ys_t[s]) for s in xs}
    source = f"csv {path}" + (f" (test: {test_path})" if test_path else "")
    return Splits(train=splits["train"], test=splits.get("test"), task=task, num_classes=num_classes,
                  class_names=class_names, source=source,
                  meta={"features": features, "target": target, "window": window})


def csv_columns(table: CsvTable, target: str, features: list[str] | None, window: int | None) -> list[str]:
    """The feature columns of a CSV config, once its header has the target and them."""
    check_target_column(table, target)
    return feature_names(table.path, table.header, target, features, window)


def check_target_column(table: CsvTable, target: str) -> None:
    if target not in table.header:
        raise DataError(f"{table.path}: target column {short_repr(target)} not found;"
                        f"{did_you_mean(target, table.header)} the file has columns: {short_list(table.header)}")


def feature_names(path: Path, header: list[str], target: str, features: list[str] | None,
                   window: int | None) -> list[str]:
    if features is None:
        features = [h for h in header if h != target]
        if not features:
            raise DataError(f"{path}: expected feature columns besides the target {short_repr(target)}, the file "
                            f"has only {short_list(header)}" + (f"; to predict a series from its own past list "
                                                                f"it: features: [{shorten(target)}]" if window else ""))
        return features
    if not features:
        raise DataError(f"{path}: expected at least one name in data.features, received an empty list")
    missing = [name for name in features if name not in header]
    if missing:
        raise DataError(f"{path}: feature column{'s' if len(missing) > 1 else ''} {short_list(missing, short_repr)} "
                        f"not found;{did_you_mean(missing[0], header)} the file has columns: {short_list(header)}")
    repeated = sorted({f for f in features if features.count(f) > 1})
    if repeated:
        raise DataError(f"{path}: expected each feature once in data.features, received "
                        f"{short_list(repeated, short_repr)} more than once")
    if target in features and not window:
        raise DataError(f"{path}: the target {short_repr(target)} is also listed in data.features, so the model "
                        f"would see the answer; expected features without the target (with data.window the target's "
                        f"past values may be features)")
    return list(features)


def csv_targets(tables: dict[str, CsvTable], target: str, task: str) -> tuple[str, dict, list[str] | None]:
    """({split: numpy targets per row}, class names) for the target column.

    Integer cells are class ids (auto), decimals are values, text cells are class
    names (sorted unique strings of the training file); ids and values have no names (None).
    """
    train = tables["train"]
    cells = train.columns[target]
    numeric = []
    for i, cell in enumerate(cells):
        if not cell.strip():
            raise train.cell_error(i, target, "a target value", cell)
        try:
            float(cell)
            numeric.append(True)
        except ValueError:
            numeric.append(False)
    if not all(numeric):
        first_text = numeric.index(False)
        if task == "regression":
            raise train.cell_error(first_text, target, "a number (task: regression)", cells[first_text])
        if task == "auto" and any(numeric):
            first_number = numeric.index(True)
            raise DataError(f"{train.path}: target column {short_repr(target)} mixes numbers "
                            f"({short_repr(cells[first_number])} on line {train.lines[first_number]}) and text "
                            f"({short_repr(cells[first_text])} on line "
                            f"{train.lines[first_text]}); expected one or the other, or set task: "
                            f"classification to read every cell as a class name")
        return "classification", *_text_classes(tables, target)
    if task == "auto":
        task = "classification" if all(_INT_RE.match(c) for c in cells) else "regression"
    ys = {s: t.numbers(target) for s, t in tables.items()}
    if task == "regression":
        return task, ys, None
    for split, y in ys.items():
        table = tables[split]
        for i in np.flatnonzero((y != np.round(y)) | (y < 0)):
            raise table.cell_error(int(i), target, "a class id (an integer >= 0)", table.columns[target][i])
        for i in np.flatnonzero(y > _MAX_CLASS_ID):
            raise table.cell_error(int(i), target, f"a class id from 0 to {_MAX_CLASS_ID}", table.columns[target][i])
    # class ids name themselves; names as many as the ids are made once the model's outputs bound them
    return task, {s: y.astype(np.int64) for s, y in ys.items()}, None


def _text_classes(tables: dict[str, CsvTable], target: str) -> tuple[dict, list[str]]:
    names = sorted({c.strip() for c in tables["train"].columns[target]})
    index = {name: i for i, name in enumerate(names)}
    listed = short_list(names, limit=10)
    ys = {}
    for split, table in tables.items():
        ids = []
        for i, cell in enumerate(table.columns[target]):
            if cell.strip() not in index:
                raise table.cell_error(i, target, f"one of the training file's classes ({listed})", cell)
            ids.append(index[cell.strip()])
        ys[split] = np.array(ids, dtype=np.int64)
    return ys, names


def _windows(x: np.ndarray, y: np.ndarray, window: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows (R, F) -> samples (R - window, window, F); sample i is rows i..i+window-1 and
    its target is row i + window's."""
    rows = len(x)
    if rows < window + 1:
        raise DataError(f"{where}: data.window={window} needs at least {window + 1} data rows (a window and "
                        f"the next row's target), received {rows}")
    views = np.lib.stride_tricks.sliding_window_view(x, window, axis=0)  # (R - window + 1, F, window)
    return views[: rows - window].transpose(0, 2, 1).copy(), y[window:]


# ---------------------------------------------------------------------------
# Image folders
# ---------------------------------------------------------------------------

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")
_MODES = {1: "L", 3: "RGB"}


def load_image_folder_dir(args: dict, input_shape: list | None) -> Splits:
    """Images in class folders, as torchvision's ImageFolder: path/<class>/*.png.

    With path/train (and path/test) those are the splits; otherwise path is the
    training split and args["test_path"] the test split. Each image is converted to the
    model's `input_shape` [C, H, W] (C 1: grey, 3: RGB; [H, W] means grey) with a
    bilinear resize. x: uint8 (N, C, H, W); y: int64 (N,); classes: sorted folder names.

    args["in_memory"]: false, or auto when the
    decoded images would not fit the memory budget (`dlcli.data.stream`), gives
    `ImageFiles` splits instead: paths and labels, decoded per batch while streaming.
    """
    from dlcli.data.stream import holds_in_memory

    shape, folders, classes, source = scan_image_folder(args, input_shape)
    pixels = sum(len(files) for found in folders.values() for files in found.values()) * math.prod(shape)
    if holds_in_memory(args["in_memory"], pixels):
        splits = {split: _read_images(found, classes, shape) for split, found in folders.items()}
    else:
        splits = {split: _image_files(found, classes, shape) for split, found in folders.items()}
    return Splits(train=splits["train"], test=splits.get("test"), task="classification",
                  num_classes=len(classes), class_names=classes, source=source)


def scan_image_folder(args: dict, input_shape: list | None) -> tuple[tuple[int, int, int], dict, list[str], str]:
    """(sample shape, {split: {class: files}}, class names, source) of an image folder config."""
    path, test_path = Path(args["path"]), args["test_path"]
    with about_key(("model", "input_shape")):
        shape = _image_shape(path, input_shape)
    if not path.is_dir():
        raise DataError(f"{path}: {'not found' if not path.exists() else 'not a directory'}; expected a folder "
                        f"of class folders (path/<class>/*.png) or with train/ and test/ inside")
    train_dir, test_dir = path, Path(test_path) if test_path else None
    if (path / "train").is_dir():
        train_dir = path / "train"
        if (path / "test").is_dir():
            if test_dir is not None:
                raise DataError(f"{path}: has a test/ folder and data.test_path={test_path} is given too; "
                                f"expected one test split: remove test_path or the test/ folder")
            test_dir = path / "test"
    train = _scan_class_folders(train_dir)
    classes = sorted(train)
    folders = {"train": train}
    if test_dir is not None:
        with about_key("test_path" if test_path else "path"):
            test = _scan_class_folders(test_dir)
        if sorted(test) != classes:
            missing, extra = sorted(set(classes) - set(test)), sorted(set(test) - set(classes))
            parts = ([f"missing {short_list(missing)}"] if missing else []) + \
                    ([f"extra {short_list(extra)}"] if extra else [])
            raise DataError(f"{test_dir}: expected the same class folders as {train_dir} ({short_list(classes)}), "
                            f"received {'; '.join(parts)}")
        folders["test"] = test
    source = f"image folder {train_dir}" + (f" (test: {test_dir})" if test_dir is not None else "")
    return shape, folders, classes, source


def _image_shape(path: Path, shape: Any) -> tuple[int, int, int]:
    if isinstance(shape, (list, tuple)) and len(shape) == 2:
        shape = (1, *shape)  # [H, W]: grey rows read as steps
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape)):
        raise DataError(f"{path}: image_folder needs model.input_shape [channels, height, width] to size the "
                        f"images, received {short_repr(shape)}")
    if shape[0] not in _MODES:
        raise DataError(f"{path}: expected model.input_shape with 1 (grey) or 3 (RGB) channels for images, "
                        f"received {shape[0]} channels in {list(shape)}")
    return tuple(shape)


def _scan_class_folders(directory: Path) -> dict[str, list[Path]]:
    """{class name: sorted image files} for each sub-folder of `directory`."""
    if not directory.is_dir():
        raise DataError(f"{directory}: {'not found' if not directory.exists() else 'not a directory'}; "
                        f"expected a folder of class folders (<class>/*.png)")
    folders = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        loose = [p for p in directory.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS]
        found = f" (found {len(loose)} images directly inside; move them into class folders)" if loose else ""
        raise DataError(f"{directory}: expected one folder per class with images inside (<class>/*.png), "
                        f"received no sub-folders{found}")
    classes = {}
    for folder in folders:
        if CONTROL_CHARACTERS.search(folder.name):  # the class name is printed and written in reports
            raise DataError(f"{directory}: expected class folders named with printable characters, received "
                            f"{short_repr(folder.name)}, which holds a control character; rename the folder")
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise DataError(f"{folder}: expected images ({', '.join(IMAGE_EXTENSIONS)}) in class folder "
                            f"{folder.name!r}, received none")
        classes[folder.name] = files
    return classes


def _image_files(classes: dict[str, list[Path]], names: list[str], shape: tuple[int, int, int]) -> ImageFiles:
    files = [(str(f), label) for label, name in enumerate(names) for f in classes[name]]
    return ImageFiles(np.array([f for f, _ in files]), torch.tensor([label for _, label in files], dtype=torch.int64),
                      tuple(shape))


def _read_images(classes: dict[str, list[Path]], names: list[str], shape: tuple[int, int, int]) -> Split:
    files = [(f, label) for label, name in enumerate(names) for f in classes[name]]
    y = torch.tensor([label for _, label in files], dtype=torch.int64)  # (N,)
    return Split(read_image_files([f for f, _ in files], shape), y)


def read_image_files(files: list[str | Path], shape: tuple[int, int, int]) -> torch.Tensor:
    """uint8 (N, C, H, W): each image file decoded to the model's channels and size."""
    channels, height, width = shape
    x = np.empty((len(files), height, width, channels), dtype=np.uint8)  # (N, H, W, C), as PIL gives it
    for i, file in enumerate(files):
        x[i] = decode_image(file, shape)
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)


def decode_recipe(shape: tuple[int, int, int]) -> str | None:
    """decode_image in words, for an export's sidecar: how to read an image file as dlcli does."""
    channels, height, width = shape
    if channels not in _MODES:
        return None
    return (f"PIL.Image.open(path).convert('{_MODES[channels]}'), then .resize(({width}, {height}), "
            f"PIL.Image.Resampling.BILINEAR) if its size differs, then numpy.asarray(image, dtype=uint8)"
            f".reshape({height}, {width}, {channels}).transpose(2, 0, 1): one ({channels}, {height}, {width}) "
            f"sample of pixels 0-255, as dlcli predict reads image files")


def decode_image(file: str | Path, shape: tuple[int, int, int]) -> np.ndarray:
    """One image file -> uint8 (H, W, C) in the model's channels and size: the one decoder of
    image folders, in memory or streamed, so a sample is the same bits either way."""
    from PIL import Image, UnidentifiedImageError

    channels, height, width = shape
    try:
        with Image.open(file) as image:
            image = image.convert(_MODES[channels])
            if image.size != (width, height):
                image = image.resize((width, height), Image.Resampling.BILINEAR)
            return np.asarray(image, dtype=np.uint8).reshape(height, width, channels)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise DataError(f"{file}: expected a readable image, cannot decode it: {shorten(str(err), 300)}") from None
