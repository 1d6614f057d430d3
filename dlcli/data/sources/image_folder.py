"""Images in class folders, as torchvision's ImageFolder: path/<class>/*.png (or path/train
and path/test), each decoded to the model's channels and size. Held in memory while they fit
(data.in_memory), else streamed from disk by DataLoader workers (`dlcli.data.stream`)."""

from __future__ import annotations

import errno
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dlcli.data.memory as memory
from dlcli.data._checks import Found, about_key
from dlcli.data.datasets import DATASETS, TEST_PATH, Reads, TrainedOn, load_dataset, path_arg
from dlcli.errors import CONTROL_CHARACTERS, DataError, short_list, short_repr, short_size
from dlcli.file_access import cannot, files_under, folder_entries, kind_of
from dlcli.registry import Arg, AutoBool, Int, Optional

if TYPE_CHECKING:
    import torch

    from dlcli.data._tensors import ImageFiles, Split, Splits
    from dlcli.model.plan import ModelPlan

NAME = "image_folder"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")

_IN_MEMORY = Arg("in_memory", AutoBool(), "auto",
                 f"hold the decoded images in memory (true) or decode them per batch in DataLoader workers "
                 f"(false); auto holds them while they take at most {memory.IN_MEMORY_FRACTION:.0%} of the "
                 f"available memory")
_WORKERS = Arg("workers", Optional(Int(min=0, max=256)), None,
               "DataLoader worker processes decoding streamed images (default: CPUs - 1, at most 8; 0 decodes "
               "in the training process)", resume="machine")


# ---------------------------------------------------------------------------
# validate: the folders listed, no image decoded
# ---------------------------------------------------------------------------

def inspect_image_folder(cfg: dict, plan: ModelPlan) -> list[tuple[tuple, str]]:
    """Class folders with images (listed, not decoded), the same classes for the test split, and
    no more classes than the model has outputs."""
    found = Found()
    with found.about("path"):
        _, folders, classes, _ = scan_image_folder(cfg["data"], list(plan.input_shape))
        for split, files in folders.items():
            _unreadable_images(found, [f for class_files in files.values() for f in class_files],
                               "test_path" if split == "test" and cfg["data"]["test_path"] else "path")
        out_shape = plan.output_shape
        if plan.task == "classification" and len(out_shape) == 1 and len(classes) > out_shape[0]:
            found.add(plan.output_key,
                      f"{cfg['data']['path']}: has {len(classes)} class folders ({short_list(classes, limit=10)}) "
                      f"but the model outputs {out_shape[0]} values; set the last layer's units to {len(classes)}")
    return found.problems


def _unreadable_images(found: Found, files: list[Path], key: str) -> None:
    """Images this user may not read (train would stop at the first): asked of the system
    (os.access), none opened."""
    denied = [file for file in files if not os.access(file, os.R_OK)]
    if denied:
        more = f"; and {len(denied) - 1:,} more images this user may not read" if len(denied) > 1 else ""
        err = PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(denied[0]))
        found.add(("data", key), str(cannot("read the image", denied[0], err)) + more)


# ---------------------------------------------------------------------------
# the loader
# ---------------------------------------------------------------------------

def load_image_folder_dir(args: dict, input_shape: list | None) -> Splits:
    """Images in class folders, as torchvision's ImageFolder: path/<class>/*.png.

    With path/train (and path/test) those are the splits; otherwise path is the
    training split and args["test_path"] the test split. Each image is converted to the
    model's `input_shape` [C, H, W] (C 1: grey, 3: RGB; [H, W] means grey) with a
    bilinear resize. x: uint8 (N, C, H, W); y: int64 (N,); classes: sorted folder names.

    args["in_memory"]: false, or auto when the
    decoded images would not fit the memory budget (`dlcli.data.memory`), gives
    `ImageFiles` splits instead: paths and labels, decoded per batch while streaming.
    """
    from dlcli.data._tensors import Splits

    shape, folders, classes, source = scan_image_folder(args, input_shape)
    pixels = sum(len(files) for found in folders.values() for files in found.values()) * math.prod(shape)
    if memory.holds_in_memory(args["in_memory"], pixels):
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
    kind = kind_of(path, DataError)
    if kind != "folder":
        raise DataError(f"{path}: {'not found' if kind is None else 'not a directory'}; expected a folder "
                        f"of class folders (path/<class>/*.png) or with train/ and test/ inside")
    train_dir, test_dir = path, Path(test_path) if test_path else None
    if kind_of(path / "train", DataError) == "folder":
        train_dir = path / "train"
        if kind_of(path / "test", DataError) == "folder":
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
    from dlcli.data.images import IMAGE_MODES

    if isinstance(shape, (list, tuple)) and len(shape) == 2:
        shape = (1, *shape)  # [H, W]: grey rows read as steps
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape)):
        raise DataError(f"{path}: image_folder needs model.input_shape [channels, height, width] to size the "
                        f"images, received {short_repr(shape)}")
    if shape[0] not in IMAGE_MODES:
        raise DataError(f"{path}: expected model.input_shape with 1 (grey) or 3 (RGB) channels for images, "
                        f"received {shape[0]} channels in {list(shape)}")
    return tuple(shape)


def _scan_class_folders(directory: Path) -> dict[str, list[Path]]:
    """{class name: sorted image files} for each sub-folder of `directory`. A folder that cannot
    be listed is an error: leaving its images out would train on less than the user gave."""
    kind = kind_of(directory, DataError)
    if kind != "folder":
        raise DataError(f"{directory}: {'not found' if kind is None else 'not a directory'}; "
                        f"expected a folder of class folders (<class>/*.png)")
    entries = [directory / entry.name for entry in folder_entries(directory, DataError)]
    folders = [p for p in entries if not p.name.startswith(".") and kind_of(p, DataError) == "folder"]
    if not folders:
        loose = [p for p in entries if p.suffix.lower() in IMAGE_EXTENSIONS]
        found = f" (found {len(loose)} images directly inside; move them into class folders)" if loose else ""
        raise DataError(f"{directory}: expected one folder per class with images inside (<class>/*.png), "
                        f"received no sub-folders{found}")
    classes = {}
    for folder in folders:
        if CONTROL_CHARACTERS.search(folder.name):  # the class name is printed and written in reports
            raise DataError(f"{directory}: expected class folders named with printable characters, received "
                            f"{short_repr(folder.name)}, which holds a control character; rename the folder")
        files = files_under(folder, IMAGE_EXTENSIONS, DataError)
        if not files:
            raise DataError(f"{folder}: expected images ({', '.join(IMAGE_EXTENSIONS)}) in class folder "
                            f"{folder.name!r}, received none")
        classes[folder.name] = files
    return classes


def _image_files(classes: dict[str, list[Path]], names: list[str], shape: tuple[int, int, int]) -> ImageFiles:
    import numpy as np  # lazy, as torch: registration stays fast (see dlcli.data.datasets)
    import torch

    from dlcli.data._tensors import ImageFiles

    files = [(str(f), label) for label, name in enumerate(names) for f in classes[name]]
    return ImageFiles(np.array([f for f, _ in files]), torch.tensor([label for _, label in files], dtype=torch.int64),
                      tuple(shape))


def _read_images(classes: dict[str, list[Path]], names: list[str], shape: tuple[int, int, int]) -> Split:
    import torch  # lazy: registration stays fast

    from dlcli.data._tensors import Split
    from dlcli.data.images import read_image_files

    files = [(f, label) for label, name in enumerate(names) for f in classes[name]]
    y = torch.tensor([label for _, label in files], dtype=torch.int64)  # (N,)
    return Split(read_image_files([f for f, _ in files], shape), y)


# ---------------------------------------------------------------------------
# evaluate --data and predict: other images for a trained model
# ---------------------------------------------------------------------------

def read_image_folder_data(path: Path, trained: TrainedOn) -> Splits:
    """evaluate --data: a folder of class folders, decoded as training decoded its images. One too
    large to hold in memory (training would stream it) is refused before it is decoded, not read
    until the process runs out of memory: evaluating other data takes samples as tensors."""
    from dlcli.data._tensors import ImageFiles

    shape = trained.image_shape(str(path))
    splits = load_dataset(NAME, {"path": str(path), "in_memory": "auto"}, shape)
    if isinstance(splits.train, ImageFiles):  # too large: training would stream them
        count = sum(len(split) for split in (splits.train, splits.test) if split is not None)
        need = count * math.prod(splits.train.shape)
        raise DataError(f"{path}: its {count:,} images take {short_size(need)} decoded, and evaluating other data "
                        f"holds them in memory ({short_size(memory.available_memory() or 0)} available; images may "
                        f"take a quarter of it); HINT: evaluate the folder in parts")
    return splits


def image_files_under(path: Path) -> list[Path]:
    """The image files predict reads for a folder: every one under it, sorted (one it cannot list
    is an error, not left out)."""
    return files_under(path, IMAGE_EXTENSIONS, DataError)


def read_image_inputs(path: Path, trained: TrainedOn) -> tuple[torch.Tensor, list[str]]:
    """predict: an image file, or the images under a folder, as uint8 (N, C, H, W) converted to
    the model's channels and resized by the decoder training used; each named by its file."""
    from dlcli.data.images import read_image_files

    files = image_files_under(path) if kind_of(path, DataError) == "folder" else [path]
    if not files:
        raise DataError(f"{path}: expected images ({', '.join(IMAGE_EXTENSIONS)}) in the folder, found none")
    return read_image_files(files, trained.image_shape(str(path))), [str(f) for f in files]


@DATASETS.register(NAME, help="images in class folders (root/class_x/*.png), as torchvision's ImageFolder; "
                              "resized to the model's input shape",
                   args=(path_arg("data/train_images"), TEST_PATH, _IN_MEMORY, _WORKERS), stored_by_class=True,
                   inspect=inspect_image_folder,
                   images=True,  # of any size (predict reads image files; an input_shape [H, W] reads rows as steps)
                   evaluate_data=Reads(("a folder of class folders",), read_image_folder_data, folders=True),
                   predict_inputs=Reads((f"images ({', '.join(IMAGE_EXTENSIONS)})", "a folder of images"),
                                        read_image_inputs, suffixes=IMAGE_EXTENSIONS, folders=True,
                                        files=image_files_under))
def load_image_folder(args, input_shape):
    return load_image_folder_dir(args, input_shape)
