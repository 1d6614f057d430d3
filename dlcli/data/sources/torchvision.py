"""torchvision's data sets (FashionMNIST, KMNIST, CIFAR10, CIFAR100) in the cache directory:
data.root, else $DLCLI_DATA, else ~/.cache/dlcli. Downloaded only with data.download: true;
commands that read a checkpoint never download. x: uint8 (N, C, H, W); y: int64 (N,)."""

from __future__ import annotations

import os
from pathlib import Path

from dlcli.data._checks import Found
from dlcli.data.datasets import DATASETS
from dlcli.errors import DataError
from dlcli.registry import Arg, Bool, FilePath, Optional

_ROOT = Arg("root", Optional(FilePath()), None, "cache directory (default: $DLCLI_DATA or ~/.cache/dlcli)",
            resume="cache")
_DOWNLOAD = Arg("download", Bool(), False, "download into root when missing (needs the internet)")


def cache_dir(root: str | None) -> Path:
    """Where downloadable data sets live: data.root, else $DLCLI_DATA, else ~/.cache/dlcli."""
    if root:
        return Path(root).expanduser()
    env = os.environ.get("DLCLI_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dlcli"


def _register(name: str, cls: str, help: str, shape: tuple, classes: int) -> None:
    """One DATASETS entry for torchvision's data set class `cls`."""
    def load(args, input_shape):
        return load_torchvision(name, cls, args)

    def missing_offline(args):
        return torchvision_missing_offline(name, cls, cache_dir(args["root"]))

    DATASETS.register(name, help=help + " (torchvision; downloads when download: true)", args=(_ROOT, _DOWNLOAD),
                      sample_shape=shape, num_classes=classes, task="classification",
                      inspect=lambda cfg, plan: inspect_torchvision(name, cls, cfg), missing_offline=missing_offline)(load)


def inspect_torchvision(name: str, cls: str, cfg: dict) -> list[tuple[tuple, str]]:
    """The data set's files are in data.root, or data.download lets train fetch them (validate
    downloads nothing)."""
    data = cfg["data"]
    found = Found()
    if data["download"]:
        return []
    try:
        import torchvision.datasets
    except ImportError as err:
        found.add(("data", "dataset"), f"{name} needs torchvision, which cannot be imported: {err}")
        return found.problems
    dataset_cls = getattr(torchvision.datasets, cls, None)
    root = cache_dir(data["root"])
    files = None if dataset_cls is None else torchvision_files(dataset_cls, root)
    if files is not None and not all(f.is_file() for f in files):
        found.add(("data", "root"), torchvision_missing(name, dataset_cls, root))
    return found.problems


def load_torchvision(name: str, cls: str, args: dict):
    """A torchvision data set (`cls`, e.g. "CIFAR10") in `cache_dir(args["root"])`, as `Splits`.

    x: uint8 (N, C, H, W); y: int64 (N,). Downloads only when args["download"] is true.
    """
    from dlcli.data._tensors import Splits

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


def _torchvision_split(name: str, root: Path, dataset):
    import numpy as np  # lazy, as torch: registration stays fast (see dlcli.data.datasets)
    import torch

    from dlcli.data._tensors import Split

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


_register("fashion_mnist", "FashionMNIST", "Fashion-MNIST, 28x28 grey clothing images", (1, 28, 28), 10)
_register("kmnist", "KMNIST", "Kuzushiji-MNIST, 28x28 grey characters", (1, 28, 28), 10)
_register("cifar10", "CIFAR10", "CIFAR-10, 32x32 colour images, 10 classes", (3, 32, 32), 10)
_register("cifar100", "CIFAR100", "CIFAR-100, 32x32 colour images, 100 classes", (3, 32, 32), 100)
