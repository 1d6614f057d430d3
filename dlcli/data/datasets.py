"""The DATASETS registry: what each data source declares, and the generic code that asks it.
No torch and no numpy here: `dlcli list` and config validation read the declarations, and
each source imports what it needs when data is really read. The sources themselves, one
module each, are in `dlcli.data.sources` and register when `dlcli.data` is imported.

An entry's `build(args, input_shape)` is its loader: every declared argument filled
(`load_dataset` fills the defaults), and the model's input shape (None where no model is
known: samples stay as stored); it returns a `Splits` (`dlcli.data._tensors`). Its facts
(`Entry.meta`), each read by generic code instead of the source's name:

    sample_shape, num_classes, task  what every sample and target of a fixed data set is
    images               samples are images of any size, sized to model.input_shape
    channels_last_images images may be stored as Keras keeps them, (H, W, C) or (H, W)
    sequence_arg         the argument that, when set, makes samples sequences (steps, features)
    sliding_window_arg   the argument that, when set, makes samples windows sliding over rows
                         in time order (data.val_split holds out the last ones)
    stored_by_class      samples are stored class after class (data.subset draws, not the first n)
    may_name_val_split   its files may hold a validation split of their own
    feature_columns      the argument naming feature columns read by name (training records them)
    inspect              validate's look at its files: (cfg, plan) -> [(config key, message)], for
                         the config's model plan (dlcli.model.plan_model: what the data must fit)
    missing_offline      for commands that read a checkpoint and never download:
                         (args) -> what is missing, or None
    evaluate_data, predict_inputs   `Reads`: the files `evaluate --data` and `predict` read
                                    with this source
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from dlcli.errors import DataError
from dlcli.file_access import kind_of
from dlcli.registry import Arg, FilePath, Optional, Registry, Str, check_args

if TYPE_CHECKING:
    from dlcli.model.plan import ModelPlan

# Filled by dlcli/data/__init__.py, which Python runs before any module of dlcli.data is imported:
# code outside the sources always finds every source here.
DATASETS = Registry("dataset", meta_keys=(
    "channels_last_images", "evaluate_data", "feature_columns", "images", "inspect", "may_name_val_split",
    "missing_offline", "num_classes", "predict_inputs", "sample_shape", "sequence_arg", "sliding_window_arg",
    "stored_by_class", "task"))


def path_arg(example: str) -> Arg:
    """data.path of a source that reads the user's files."""
    return Arg("path", FilePath(), help="file or directory with the training data", example=example, resume="files")


TEST_PATH = Arg("test_path", Optional(FilePath()), None, "file or directory with the test data", resume="files")
TASK = Arg("task", Str(("auto", "classification", "regression")), "auto",
           "auto: integer targets are classes, others values")


def load_dataset(name: str, given: dict, input_shape: list | tuple | None = None):
    """The `Splits` of data set `name` from the arguments `given`, with the declared defaults
    filled in as config validation fills them, for a model taking `input_shape`."""
    entry = DATASETS.get(name)
    args, problems = check_args(entry, given)
    if problems:
        raise DataError(f"data set {entry.name}: " + "; ".join(message for _, message in problems))
    return entry.build(args, None if input_shape is None else list(input_shape))


def check_data(cfg: dict, plan: ModelPlan) -> list[tuple[tuple, str]]:
    """`dlcli validate`'s look at the data a resolved config names, for its model's `plan`
    (dlcli.model.plan_model), without reading whole data sets: [(config key, message)] for
    every problem found (the data set's declared `inspect`)."""
    return DATASETS.get(cfg["data"]["dataset"]).meta["inspect"](cfg, plan)


# ---------------------------------------------------------------------------
# Other files for a trained model: evaluate --data and predict
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainedOn:
    """What a checkpoint says about the data its model was trained on: what a data source
    needs to read other files the way training read its own."""

    data: dict  # the checkpoint config's data section (data.dataset names its source)
    input_shape: tuple  # model.input_shape
    task: str  # the targets its loss takes: classification (class ids) or regression (values)
    feature_names: list[str] | None = None  # the feature columns training read, in order, if recorded

    @property
    def source(self):
        return DATASETS.get(self.data["dataset"])

    @property
    def feature_columns(self) -> list[str] | None:
        """The feature columns to read by name, in the order the model takes them: those training
        recorded, else the config's (checkpoints written before names were recorded); None where
        the source has no named columns, or means every column but the target, in file order."""
        arg = self.source.meta.get("feature_columns")
        return None if arg is None else self.feature_names or self.data[arg]

    @property
    def data_as_read(self) -> dict:
        """The data section that loads the training data again as training read it: feature
        columns by name, should the file's columns have been reordered since."""
        arg = self.source.meta.get("feature_columns")
        return self.data if arg is None else {**self.data, arg: self.feature_columns}

    def image_shape(self, where: str) -> tuple[int, int, int]:
        """The (C, H, W) images were stored as in training; an error for a model not trained on images."""
        entry = self.source
        shape = entry.meta.get("sample_shape")
        if shape is None and entry.meta.get("images"):  # image files of any size: the model's shape
            shape = (1, *self.input_shape) if len(self.input_shape) == 2 else self.input_shape
        if shape is None:
            reads = entry.meta.get("predict_inputs")
            kind = f" ({_one_of(reads.what)})" if reads else ""
            raise DataError(f"{where}: image inputs need a model trained on images (mnist, cifar10, image_folder, "
                            f"...); this one was trained on {entry.name} data, so give its kind of input{kind}")
        if len(shape) != 3 or shape[0] not in (1, 3):
            raise DataError(f"{where}: images become 1 (grey) or 3 (RGB) channels, but the model's images are "
                            f"{tuple(shape)}")
        return tuple(int(n) for n in shape)


@dataclass(frozen=True)
class Reads:
    """Files a data source reads for a command of a trained model: those whose suffix (lower
    case) is one of `suffixes`, and folders where `folders`. `read(path, trained_on)` gives
    evaluate --data a `Splits`, predict (samples (N, *stored shape), a name per sample)."""

    what: tuple[str, ...]  # such files in a message: ("an .npz file",)
    read: Callable[[Path, TrainedOn], Any]
    suffixes: tuple[str, ...] = ()
    folders: bool = False
    files: Callable[[Path], list[Path]] | None = None  # the files a folder's read takes

    def takes(self, path: Path) -> bool:
        return self.folders if kind_of(path, DataError) == "folder" else path.suffix.lower() in self.suffixes


COMMANDS = {"evaluate": "evaluate_data", "predict": "predict_inputs"}  # command: the fact declaring its files


def reads_for(path: Path, command: str) -> Reads:
    """The declaration of the data source that reads `path` for `command` (evaluate, predict),
    found by the file's suffix (or its being a folder); a DataError names what it can read."""
    declared = [reads for entry in DATASETS if (reads := entry.meta.get(COMMANDS[command]))]
    what = _one_of([kind for reads in declared for kind in reads.what])
    kind = kind_of(path, DataError)
    if kind is None:
        raise DataError(f"{path}: no such file or directory; expected {what}")
    for reads in declared:
        if reads.takes(path):
            return reads
    kind = "folder" if kind == "folder" else f"{path.suffix or 'extension-less'} file"
    raise DataError(f"{path}: cannot {command} a {kind}; expected {what}")


def files_read(path: Path, command: str) -> list[Path]:
    """The files `command` reads for `path`: a folder's, as its data source lists them, else `path`."""
    if kind_of(path, DataError) == "folder":
        reads = next((reads for entry in DATASETS if (reads := entry.meta.get(COMMANDS[command])) is not None
                      and reads.folders and reads.files is not None), None)
        return reads.files(path) if reads is not None else []
    return [path]


def _one_of(kinds: list[str] | tuple[str, ...]) -> str:
    """'an .npz file, a .csv file or a folder of class folders'."""
    kinds = list(kinds)
    return kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} or {kinds[-1]}"
