"""A NumPy .npz file: arrays x and y, and optionally x_test, y_test (a test split) and
x_val, y_val (Keras's validation_data); a test split from x, y in data.test_path.
Archives are read without unpickling, and refused before reading when they would not fit
in memory. Images stored as Keras keeps them, (N, H, W, C) or (N, H, W), are laid out as
the model's (C, H, W) input_shape asks."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import dlcli.data.memory as memory
from dlcli.data._checks import Found, about_key
from dlcli.data.datasets import DATASETS, TASK, TEST_PATH, Reads, TrainedOn, load_dataset, path_arg
from dlcli.errors import DataError, did_you_mean, short_list, short_size
from dlcli.file_access import kind_of

if TYPE_CHECKING:
    import numpy as np
    import torch

    from dlcli.data._tensors import Splits
    from dlcli.model.plan import ModelPlan

NAME = "npz"


# ---------------------------------------------------------------------------
# validate: the arrays' headers, never the arrays
# ---------------------------------------------------------------------------

def inspect_npz(cfg: dict, plan: ModelPlan) -> list[tuple[tuple, str]]:
    """The archives are there, hold x and y (and x_test, y_test / x_val, y_val in pairs), numbers,
    one target per sample, and samples that fit model.input_shape: all from the arrays' headers."""
    data, found = cfg["data"], Found()
    inline = {}
    with found.about("path"):
        inline = _npz_split_shapes(Path(data["path"]), cfg, plan, found, "path", inline_ok=True)
    if "val" in inline and data["val_split"] > 0:
        from dlcli.data.prepare import two_validation_splits

        found.add(("data", "val_split"), two_validation_splits(data["path"], "x_val, y_val", data["val_split"]))
    if data["test_path"]:
        if "test" in inline:
            found.add(("data", "test_path"), two_test_splits(Path(data["path"]), data["test_path"]))
        with found.about("test_path"):
            _npz_split_shapes(Path(data["test_path"]), cfg, plan, found, "test_path")
    return found.problems


def _npz_split_shapes(path: Path, cfg: dict, plan: ModelPlan, found: Found, key: str,
                      inline_ok: bool = False) -> dict:
    """Checks one archive; returns {'train': x's sample shape, 'test'/'val': theirs, when present}."""
    from dlcli.data.prepare import sample_misfit

    input_shape = list(plan.input_shape)
    with open_npz(path, "arrays x and y") as npz:
        names = list(npz.files)
        pairs = [("train", "x", "y")] + ([("test", "x_test", "y_test"), ("val", "x_val", "y_val")] if inline_ok else [])
        samples = {}
        for split, x_name, y_name in pairs:
            if split != "train" and x_name not in names and y_name not in names:
                continue
            absent = [n for n in (x_name, y_name) if n not in names]
            if absent and split != "train":  # the loaders' words for each case
                found.add(("data", key), f"{path}: expected {x_name} and {y_name} together, {absent[0]} is missing")
            elif absent:
                found.add(("data", key), f"{path}: expected an array named {absent[0]!r};"
                                         f"{did_you_mean(absent[0], names)} the file has: "
                                         f"{short_list(names) or 'no arrays'}")
            if absent:
                continue
            with found.about(key):
                x, y = _npz_array_header(npz, x_name, path), _npz_array_header(npz, y_name, path)
                check_pair_shapes(x, y, x_name, y_name, str(path))
                samples[split] = npz_sample_shape(x[1:], input_shape)
                misfit = sample_misfit(samples[split], cfg, plan, {"train": "training"}.get(split, split),
                                       str(path))
                if misfit:
                    found.add(("model", "input_shape"), misfit)
    return samples


def _npz_array_header(npz, name: str, path: Path) -> tuple:
    """The shape of array `name`, from its .npy header: numbers only, as train reads them."""
    header = npz_header(npz, name)
    if header is None:
        raise DataError(f"{path}: cannot read the header of array {name!r}; expected an array saved by np.savez")
    shape, dtype = header
    if dtype.kind not in "biuf":
        raise DataError(f"{path}: expected numbers in array {name!r}, received dtype {dtype}")
    return shape


# ---------------------------------------------------------------------------
# the loader
# ---------------------------------------------------------------------------

def load_npz_file(args: dict, input_shape: list | None) -> Splits:
    """Arrays x and y (and optionally x_test, y_test, and x_val, y_val: Keras's
    validation_data) from args["path"]; a test split from x, y in args["test_path"].

    x: int64 (N, T) token ids when x is an integer (N, T) array, else float32
    (N, *sample_shape); a flat (N,) x becomes (N, 1); images stored channels-last (or
    without their single channel) are laid out as the model's `input_shape` (C, H, W) asks.
    y: see `dlcli.data.targets.finish_targets`.
    """
    from dlcli.data._tensors import Split, Splits
    from dlcli.data.targets import finish_targets

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
    task, ys, num_classes = finish_targets({s: a["y"] for s, a in arrays.items()}, args["task"], where)
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
    import zipfile  # lazy, as numpy and torch: registration stays fast (see dlcli.data.datasets)

    import numpy as np

    kind = kind_of(path, DataError)  # a folder above it this user may not enter: said, with the path
    if kind is None:
        raise DataError(f"{path}: file not found; expected an .npz file with {expected}")
    if kind == "folder":
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
    import zipfile  # lazy: registration stays fast
    import zlib

    import numpy as np

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
    need = 0
    for name in names:
        header = npz_header(npz, name)
        if header is not None:
            need += math.prod(header[0]) * (header[1].itemsize + 4)
    available = memory.available_memory()
    if available is not None and need > available:
        raise DataError(f"{path}: reading {', '.join(names)} needs about {short_size(need)} of memory (each "
                        f"array, then its float32 copy), and {short_size(available)} is available; HINT: a "
                        f"smaller file (data.subset applies after reading); images stored as an image folder "
                        f"are streamed from disk when they do not fit (data.in_memory)")


def _npz_array(npz, name: str, path: Path) -> np.ndarray:
    import zipfile  # lazy: registration stays fast
    import zlib

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
    from dlcli.data.targets import check_finite

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
    import numpy as np  # lazy, as torch: registration stays fast
    import torch

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
    import numpy as np  # lazy: registration stays fast

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
# evaluate --data and predict: other .npz files for a trained model
# ---------------------------------------------------------------------------

def read_npz_data(path: Path, trained: TrainedOn) -> Splits:
    """evaluate --data: x and y (and x_test, y_test; x_val, y_val), read as the loader reads them
    for the trained model."""
    return load_dataset(NAME, {"path": str(path), "task": trained.task}, trained.input_shape)


def read_npz_inputs(path: Path, trained: TrainedOn) -> tuple[torch.Tensor, list[str]]:
    """predict: array x (else x_test) of an .npz, converted as the loader converts it for the
    trained model; each sample named path[i]."""
    from dlcli.data.targets import check_finite

    with open_npz(path, "an array x") as npz:
        name = next((n for n in ("x", "x_test") if n in npz.files), None)
        if name is None:
            raise DataError(f"{path}: expected an array named 'x' (or 'x_test'); the file has: "
                            f"{short_list(npz.files) or 'no arrays'}")
        array = read_npz_arrays(npz, [name], path)[name]
    if array.ndim == 0 or len(array) == 0:
        raise DataError(f"{path}: expected at least one sample in {name}, received shape {array.shape}")
    check_finite(array, name, str(path))
    return npz_inputs(array, str(path), name, trained.input_shape), [f"{path}[{i}]" for i in range(len(array))]


_NPZ_FILE = ("an .npz file",)


@DATASETS.register(NAME, help="a NumPy .npz file with arrays x and y (and optionally x_test, y_test; x_val, y_val)",
                   args=(path_arg("data/train.npz"), TEST_PATH, TASK), inspect=inspect_npz,
                   may_name_val_split=True,  # x_val, y_val: which a config cannot tell before reading the file
                   channels_last_images=True,
                   evaluate_data=Reads(_NPZ_FILE, read_npz_data, suffixes=(".npz",)),
                   predict_inputs=Reads(_NPZ_FILE, read_npz_inputs, suffixes=(".npz",)))
def load_npz(args, input_shape):
    return load_npz_file(args, input_shape)
