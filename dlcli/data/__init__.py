"""Data sets, by name. Declarations only (no torch): `load_dataset` imports the
loaders when data is really needed. A loader is `build(args, input_shape)`: its declared
args, every one filled (`load_dataset` fills the defaults), and the model's input shape
(None where no model is known: samples stay as stored).

Every loader returns a `Splits` of tensors (see `dlcli.data._tensors`); the
trainer holds small data sets on the training device and batches by index. An
image folder too large for memory gives the files instead, which are streamed
through DataLoader workers (`dlcli.data.stream`).
"""

from __future__ import annotations

import os
from pathlib import Path

from dlcli.errors import DataError
from dlcli.registry import Arg, AutoBool, Bool, FilePath, Int, Optional, Registry, Str, StrList, check_args

DATASETS = Registry("dataset", meta_keys=("images", "inspect", "may_name_val_split", "num_classes", "sample_shape",
                                                 "sequence_arg", "sliding_window_arg", "stored_by_class", "task",
                                                 "torchvision_class"))


def load_dataset(name: str, given: dict, input_shape: list | tuple | None = None):
    """The `Splits` of data set `name` from the arguments `given`, with the declared defaults
    filled in as config validation fills them, for a model taking `input_shape`."""
    entry = DATASETS.get(name)
    args, problems = check_args(entry, given)
    if problems:
        raise DataError(f"data set {entry.name}: " + "; ".join(message for _, message in problems))
    return entry.build(args, None if input_shape is None else list(input_shape))


def check_data(cfg: dict) -> list[tuple[tuple, str]]:
    """`dlcli validate`'s look at the data a resolved config names, without reading whole data
    sets: [(config key, message)] for every problem found (the data set's declared `inspect`)."""
    return DATASETS.get(cfg["data"]["dataset"]).meta["inspect"](cfg)


def _inspected_by(check: str, *first):
    """A data set's `inspect`: `check` of dlcli.data._checks, imported when data is checked."""
    def inspect(cfg: dict) -> list[tuple[tuple, str]]:
        from dlcli.data import _checks

        return getattr(_checks, check)(*first, cfg)

    return inspect


MNIST_DIR = Path(__file__).resolve().parent / "mnist"


def cache_dir(root: str | None) -> Path:
    """Where downloadable data sets live: data.root, else $DLCLI_DATA, else ~/.cache/dlcli."""
    if root:
        return Path(root).expanduser()
    env = os.environ.get("DLCLI_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dlcli"


_ROOT = Arg("root", Optional(FilePath()), None, "cache directory (default: $DLCLI_DATA or ~/.cache/dlcli)",
            resume="cache")
_DOWNLOAD = Arg("download", Bool(), False, "download into root when missing (needs the internet)")


def _path(example: str) -> Arg:
    return Arg("path", FilePath(), help="file or directory with the training data", example=example, resume="files")


_TEST_PATH = Arg("test_path", Optional(FilePath()), None, "file or directory with the test data", resume="files")
_TASK = Arg("task", Str(("auto", "classification", "regression")), "auto",
            "auto: integer targets are classes, others values")
# data.in_memory auto holds decoded images in memory while their uint8 tensor takes at most this
# fraction of the available memory: preparing them briefly needs about two copies (the validation
# split is gathered; batches for a GPU are pinned), and training needs the rest.
IN_MEMORY_FRACTION = 0.25
_IN_MEMORY = Arg("in_memory", AutoBool(), "auto",
                 f"hold the decoded images in memory (true) or decode them per batch in DataLoader workers "
                 f"(false); auto holds them while they take at most {IN_MEMORY_FRACTION:.0%} of the available "
                 f"memory")
_WORKERS = Arg("workers", Optional(Int(min=0, max=256)), None,
               "DataLoader worker processes decoding streamed images (default: CPUs - 1, at most 8; 0 decodes "
               "in the training process)", resume="machine")


@DATASETS.register("mnist", help="MNIST digits, 60,000/10,000 28x28 grey images (shipped with dlcli, offline)",
                   sample_shape=(1, 28, 28), num_classes=10, task="classification",
                   inspect=_inspected_by("inspect_mnist"))
def load_mnist(args, input_shape):
    from dlcli.data._sources import load_mnist_idx

    return load_mnist_idx(MNIST_DIR)


def _torchvision(name: str, cls: str, help: str, shape: tuple, classes: int):
    def load(args, input_shape):
        from dlcli.data._sources import load_torchvision

        return load_torchvision(name, cls, args)

    DATASETS.register(name, help=help + " (torchvision; downloads when download: true)", args=(_ROOT, _DOWNLOAD),
                      sample_shape=shape, num_classes=classes, task="classification", torchvision_class=cls,
                      inspect=_inspected_by("inspect_torchvision", name, cls))(load)


_torchvision("fashion_mnist", "FashionMNIST", "Fashion-MNIST, 28x28 grey clothing images", (1, 28, 28), 10)
_torchvision("kmnist", "KMNIST", "Kuzushiji-MNIST, 28x28 grey characters", (1, 28, 28), 10)
_torchvision("cifar10", "CIFAR10", "CIFAR-10, 32x32 colour images, 10 classes", (3, 32, 32), 10)
_torchvision("cifar100", "CIFAR100", "CIFAR-100, 32x32 colour images, 100 classes", (3, 32, 32), 100)


@DATASETS.register("npz", help="a NumPy .npz file with arrays x and y (and optionally x_test, y_test; x_val, y_val)",
                   args=(_path("data/train.npz"), _TEST_PATH, _TASK),
                   inspect=_inspected_by("inspect_npz"),
                   may_name_val_split=True)  # x_val, y_val: which a config cannot tell before reading the file
def load_npz(args, input_shape):
    from dlcli.data._sources import load_npz_file

    return load_npz_file(args, input_shape)


@DATASETS.register("csv", help="a CSV file: feature columns and a target column; `window` makes sequences",
                   args=(_path("data/train.csv"), _TEST_PATH, _TASK,
                         Arg("target", Str(), help="name of the target column", example="label"),
                         Arg("features", Optional(StrList()), None, "feature columns (default: all but target)"),
                         Arg("window", Optional(Int(min=1)), None,
                             "sequence mode: each sample is `window` consecutive rows, the target is the "
                             "target column of the next row")),
                   # with it, samples are sequences (steps, features): see infer_shapes
                   sequence_arg="window",
                   # with it, samples are windows of that many rows sliding over rows in time order:
                   # data.val_split holds out the last ones (see validation_split)
                   sliding_window_arg="window", inspect=_inspected_by("inspect_csv"))
def load_csv(args, input_shape):
    from dlcli.data._sources import load_csv_file

    return load_csv_file(args)


@DATASETS.register("image_folder", help="images in class folders (root/class_x/*.png), as torchvision's "
                                        "ImageFolder; resized to the model's input shape",
                   args=(_path("data/train_images"), _TEST_PATH, _IN_MEMORY, _WORKERS), stored_by_class=True,
                   inspect=_inspected_by("inspect_image_folder"),
                   images=True)  # of any size (predict reads image files; an input_shape [H, W] reads rows as steps)
def load_image_folder(args, input_shape):
    from dlcli.data._sources import load_image_folder_dir

    return load_image_folder_dir(args, input_shape)
