"""From loaded splits to batches: checks against the model, the validation split,
normalization, and holding the tensors on the training device.

On the CPU, images stay uint8 (4x less memory than float32) and are converted
and normalized per batch, after the index gather: one fused multiply-add on a
(B, C, H, W) batch costs less than holding a float copy. On a GPU, where memory
is plentiful and each kernel launch counts, they are normalized once.

Image folders too large for memory are streamed instead (`dlcli.data.stream`): their
splits hold file paths, and DataLoader workers decode each batch.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch

from dlcli.data._tensors import ImageFiles, Split, Splits, model_input
from dlcli.data.datasets import DATASETS, load_dataset
from dlcli.errors import DataError
from dlcli.layers import fmt_shape
from dlcli.model.layout import data_view_fits, looks_channels_last
from dlcli.model.plan import ModelPlan

# Hold a data set on a GPU only while it takes at most this fraction of free memory.
GPU_RESIDENT_FRACTION = 0.5


@dataclass
class DeviceSplit:
    """A split held as tensors (on the device where it fits), batched by index."""

    streamed = False  # see dlcli.data.stream.StreamSplit
    x: torch.Tensor
    y: torch.Tensor
    scale: torch.Tensor | None  # per-channel affine normalization: x * scale + shift
    shift: torch.Tensor | None
    view: tuple  # the model's input shape
    device: torch.device

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def home(self) -> torch.device:
        """Where the samples (and so the batch indices) live."""
        return self.x.device

    def plan(self, perm: torch.Tensor, batch_size: int, batches: range) -> None:
        """Nothing to prepare: any batch can be gathered at once (a streamed split reads ahead)."""

    def close(self) -> None:
        """Nothing to stop (a streamed split stops its workers)."""

    def worker_failures(self):
        """No workers that could fail (a streamed split's can)."""
        return contextlib.nullcontext()

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xb, yb = self.x[idx], self.y[idx]
        if xb.device != self.device:
            xb = xb.to(self.device, non_blocking=True)
            yb = yb.to(self.device, non_blocking=True)
        return self.transform(xb), yb

    def transform(self, xb: torch.Tensor) -> torch.Tensor:
        return model_input(xb, self.scale, self.shift, self.view)

    def slices(self, batch_size: int):
        """Consecutive batches in order (evaluation)."""
        for start in range(0, len(self), batch_size):
            idx = torch.arange(start, min(start + batch_size, len(self)), device=self.x.device)
            yield self.batch(idx)


@dataclass
class PreparedData:
    train: DeviceSplit
    val: DeviceSplit | None
    test: DeviceSplit | None
    task: str
    num_classes: int | None
    class_names: list[str] | None
    normalization: dict | None  # plain data: stored in checkpoints
    source: str
    feature_names: list[str] | None = None  # CSV: the feature columns, in the order the model reads them
    fingerprints: dict | None = None  # per split, what a resume compares (dlcli.data.fingerprint)

    @property
    def streamed(self) -> bool:
        """The training set is read from its files per batch (not resident)."""
        return self.train.streamed


def load_splits(cfg: dict, plan: ModelPlan, from_checkpoint: bool = False) -> Splits:
    """The data set of a config, for the model `plan` (dlcli.model.plan_model). Its errors name the
    config key they are about (`DataError.key`): the loader's own, else the data set's main file
    (data.path), folder (data.root) or name.
    `from_checkpoint`: the config is a checkpoint's (evaluate, --resume), which may come from
    anyone: nothing is downloaded and no folder created, whatever its data section says."""
    data = cfg["data"]
    entry = DATASETS.get(data["dataset"])
    args = {a.name: data[a.name] for a in entry.args}
    if from_checkpoint and "download" in args:
        args["download"] = False
        missing = entry.meta.get("missing_offline", lambda args: None)(args)  # what is not there (torchvision's)
        if missing:
            raise DataError(missing, key=("data", "root"))
    try:
        splits = load_dataset(entry.name, args, plan.input_shape)
    except DataError as err:
        raise err.at_key(("data", data_key(entry.name)))
    if len(splits.train) == 0:
        raise DataError(f"{splits.source or entry.name}: the training set is empty", key=("data", data_key(entry.name)))
    return splits


def data_key(dataset: str) -> str:
    """The data.KEY that says where data set `dataset` is: path, root, or (shipped) its name."""
    entry = DATASETS.get(dataset)
    return next((name for name in ("path", "root") if entry.arg(name) is not None), "dataset")


def subset_of(split: Split | ImageFiles, n: int | None, by_class: bool, seed: int) -> Split | ImageFiles:
    """data.subset: the first n samples (all of them when n is None or not smaller), except
    for data stored class by class (an image folder: class folder after class folder), where
    the first n would miss whole classes: there n samples drawn by `seed`, in stored order."""
    if not n or n >= len(split):
        return split
    if not by_class:
        return split.take(slice(None, n))
    chosen = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:n]
    return split.take(chosen.sort().values)


def validation_split(train: Split | ImageFiles, data: dict, seed: int) -> tuple:
    """data.val_split: (training, validation) samples. Windows sliding over rows in time order
    (the dataset's `sliding_window_arg`, e.g. csv data.window) hold out the last fraction, in
    order, as Keras's validation_split does, and drop the `window` windows between the two: sample
    i reads rows i..i+window-1 and predicts row i+window, so without that gap a validation window
    would share rows with training windows (a random hold-out shares all but one). Other data
    holds out a fraction drawn by `seed`."""
    n, fraction = len(train), data["val_split"]
    n_val = int(round(n * fraction))
    arg = DATASETS.get(data["dataset"]).meta.get("sliding_window_arg")
    window = data.get(arg) if arg else None
    gap = window or 0
    if n_val < 1 or n - n_val - gap < 1:
        dropped = (f" (after dropping the {gap} windows between them, which share rows with both: "
                   f"data.{arg}: {window})" if gap else "")
        raise DataError(f"data.val_split: {fraction} of {n} samples leaves {n_val} for validation and "
                        f"{max(n - n_val - gap, 0)} for training{dropped}; both need at least 1",
                        key=("data", "val_split"))
    if window:
        return train.take(slice(None, n - n_val - gap)), train.take(slice(n - n_val, None))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return train.take(perm[n_val:]), train.take(perm[:n_val])


def normalization_stats(x: torch.Tensor) -> dict | None:
    """Per-channel (images: axis 1) or per-feature (last axis) affine normalization that
    maps the training set to mean 0, std 1. Integer ids (embeddings) are not normalized."""
    if x.dtype not in (torch.uint8, torch.float32, torch.float64, torch.float16):
        return None
    is_image = x.dtype == torch.uint8
    axis = 1 if (is_image or x.dim() == 4) else x.dim() - 1
    moved = x.movedim(axis, -1).reshape(-1, x.shape[axis])  # (samples * positions, channels)
    # float64 sums in chunks: exact enough, and no float copy of the whole set
    total = torch.zeros(moved.shape[1], dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    for chunk in moved.split(1 << 20):
        chunk = chunk.double()
        total += chunk.sum(0)
        total_sq += (chunk * chunk).sum(0)
    return standardization(axis, total, total_sq, moved.shape[0])


def standardization(axis: int, total: torch.Tensor, total_sq: torch.Tensor, n: int) -> dict:
    """{axis, mean, std} from float64 per-channel sums of values and squares over n positions."""
    n = max(n, 1)
    mean = total / n
    std = (total_sq / n - mean * mean).clamp_min(0).sqrt()
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    return {"axis": axis, "mean": mean.tolist(), "std": std.tolist()}


def affine(normalization: dict | None, stored_shape: tuple, device) -> tuple:
    """(scale, shift) tensors shaped to broadcast over a batch of `stored_shape` samples."""
    if normalization is None:
        return None, None
    axis = normalization["axis"]
    shape = [1] * (len(stored_shape) + 1)
    shape[axis] = len(normalization["mean"])
    mean = torch.tensor(normalization["mean"], dtype=torch.float64)
    std = torch.tensor(normalization["std"], dtype=torch.float64)
    scale, shift = 1.0 / std, -mean / std
    return (scale.float().reshape(shape).to(device), shift.float().reshape(shape).to(device))


def model_ids(cfg: dict, plan: ModelPlan, x: torch.Tensor, where: str) -> torch.Tensor:
    """x as int64 ids when the model starts with a layer that takes integer ids (an
    embedding: `plan.ids`), from integers or whole-number floats (a CSV's columns); ids outside
    [0, limit) and fractions are refused here, before training, naming the first one."""
    ids = plan.ids
    if ids is None:
        return x
    first = f"model.layers[{ids.index}] ({ids.type})"
    if x.is_floating_point():
        fraction = x != x.round()
        if bool(fraction.any()):
            at = _first_position(fraction)
            raise DataError(f"{where}: {first} takes integer ids, received {x[at].item():g} {_at(at)}; expected "
                            f"whole numbers", key=("data", data_key(cfg["data"]["dataset"])))
        x = x.long()
    limit = ids.limit
    outside = (x < 0) | (x >= limit)
    if bool(outside.any()):
        at = _first_position(outside)
        raise DataError(f"{where}: {first} takes ids 0 to {limit - 1} ({ids.arg}: {limit}), received "
                        f"{x[at].item()} {_at(at)}; HINT: set model.layers[{ids.index}].{ids.arg} to at least "
                        f"{int(x.max()) + 1}, the largest id plus one", key=ids.key)
    return x


def _first_position(mask: torch.Tensor) -> tuple:
    """Index of the first True of `mask` (sample first)."""
    return tuple(int(i) for i in mask.nonzero()[0])


def _at(index: tuple) -> str:
    """'in sample 5 at position 3' (both counted from 0)."""
    where = f" at position {', '.join(map(str, index[1:]))}" if len(index) > 1 else ""
    return f"in sample {index[0]}{where}"


def check_fits(cfg: dict, plan: ModelPlan, split: Split, name: str, source: str) -> None:
    """Shapes and labels against the model `plan`, before anything trains."""
    misfit = sample_misfit(split.sample_shape, cfg, plan, name, source)
    if misfit:
        raise DataError(misfit, key=("model", "input_shape"))
    last, out_shape = plan.output_key, plan.output_shape
    from dlcli.losses import LOSSES

    loss_task = LOSSES.get(cfg["loss"]["type"])
    if loss_task.meta["task"] == "classification":
        if split.y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise DataError(f"{source}: {name} targets are {split.y.dtype} values but {loss_task.name} needs "
                            f"integer class ids; use a regression loss (mse, mae) for values", key=("loss", "type"))
        if len(split.y):
            low, high = int(split.y.min()), int(split.y.max())
            classes = out_shape[0]
            if low < 0 or high >= classes:
                bad = high if high >= classes else low
                raise DataError(f"{source}: {name} labels must be class ids in [0, {classes - 1}] for a model "
                                f"with {classes} outputs; found label {bad}. HINT: set the last layer's units to "
                                f"the number of classes ({high + 1}?)", key=last)
    else:  # values (integer targets of a regression are cast to float)
        per_sample = math.prod(split.y.shape[1:]) if split.y.dim() > 1 else 1
        if per_sample != math.prod(out_shape):
            raise DataError(f"{source}: {name} targets have {per_sample} value(s) per sample but the model "
                            f"outputs {fmt_shape(out_shape)}; HINT: {_targets_hint(loss_task, split, out_shape)}",
                            key=last)


def _targets_hint(loss, split: Split, out_shape: tuple) -> str:
    """The fix for targets that do not fit a binary or regression loss's outputs: one integer per
    sample and one output per class are class ids, which cross_entropy takes."""
    per_sample = math.prod(split.y.shape[1:]) if split.y.dim() > 1 else 1
    fit = f"set the last layer's units to {per_sample}" if per_sample > 1 or len(out_shape) == 1 else \
        f"make the model output {per_sample} value(s) per sample"
    takes = "0/1 labels, one output per label" if loss.meta["task"] == "binary" else "values"
    if per_sample == 1 and len(out_shape) == 1 and out_shape[0] > 1 and not split.y.is_floating_point():
        return (f"for class ids (one of {out_shape[0]} classes per sample) use loss: cross_entropy ({loss.name} "
                f"takes {takes}); for one {'0/1 label' if loss.meta['task'] == 'binary' else 'value'} per "
                f"sample, {fit}")
    return f"{fit} ({loss.name} takes {takes}, one output per target value)"


def two_validation_splits(source: str, named: str, fraction: float) -> str:
    """A data file that holds a validation split, and data.val_split asking for another (train
    refuses the data it read, validate the arrays it found)."""
    return (f"{source}: holds a validation split ({named}), and data.val_split: {fraction} asks to hold out "
            f"another from the training samples; expected one validation split: set data.val_split: 0 to validate "
            f"on {named}, or remove them")


def sample_misfit(sample: tuple, cfg: dict, plan: ModelPlan, name: str, source: str) -> str | None:
    """Why samples of shape `sample` do not fit model.input_shape (None when they do): train checks
    the samples it loaded, validate the shapes stored in the files."""
    input_shape = plan.input_shape
    if data_view_fits(tuple(sample), input_shape):
        return None
    return (f"{source}: {name} samples have shape {fmt_shape(tuple(sample))} but model.input_shape is "
            f"{list(input_shape)}; set model.input_shape to {input_shape_for(tuple(sample), cfg, input_shape)}")


def input_shape_for(sample: tuple, cfg: dict, input_shape: tuple) -> list:
    """The model.input_shape (now `input_shape`) that takes samples of shape `sample`. Some sources
    (an .npz) may store images as Keras keeps them, (H, W, C) or (H, W): an image model takes them
    as (C, H, W)."""
    keras_images = DATASETS.get(cfg["data"]["dataset"]).meta.get("channels_last_images")
    images = keras_images and len(input_shape) == 3
    if images and looks_channels_last(sample):  # the validator's rule for a channels-last input_shape
        return [sample[2], sample[0], sample[1]]
    if images and len(sample) == 2:
        return [1, *sample]
    return list(sample)


def resident_device(splits: list[Split], device: torch.device) -> torch.device:
    """The training device when the data fits there, else the CPU (batches are copied over)."""
    if device.type != "cuda" or not splits:
        return device
    free, _ = torch.cuda.mem_get_info(device)
    return device if sum(map(resident_bytes, splits)) <= GPU_RESIDENT_FRACTION * free else torch.device("cpu")


def resident_bytes(split: Split) -> int:
    """Device memory a split takes when held on the GPU: its values as float32 (uint8 images are
    normalized there once, at 4 bytes a value), integer ids as stored, targets as int64 at most."""
    x = split.x
    per_value = 4 if x.is_floating_point() or x.dtype == torch.uint8 else x.element_size()
    return x.numel() * per_value + split.y.numel() * 8


def normalized_on(device: torch.device, x: torch.Tensor, scale, shift, chunk: int = 8192) -> torch.Tensor:
    """x as float32 on `device`, normalized (x * scale + shift) when scale is given; written chunk by
    chunk into one tensor, so the device holds that tensor and one chunk, never a second copy."""
    out = torch.empty(x.shape, dtype=torch.float32, device=device)
    for start in range(0, len(x), chunk):
        part = x[start:start + chunk].to(device).float()
        out[start:start + chunk] = part if scale is None else torch.addcmul(shift, part, scale)
    return out


def to_device_split(split: Split, normalization: dict | None, view: tuple, device: torch.device,
                    home: torch.device, out_shape: tuple, task: str) -> DeviceSplit:
    y = loss_targets(split.y, task, out_shape)
    x = split.x
    if x.dtype == torch.float64:
        x = x.float()
    if home.type == "cpu" and device.type == "cuda":
        x, y = x.pin_memory(), y.pin_memory()
    scale, shift = affine(normalization, tuple(x.shape[1:]), device)
    if home.type == "cuda" and (x.is_floating_point() or x.dtype == torch.uint8):
        # GPU memory is plentiful next to launch overhead: normalize once, gather floats
        return DeviceSplit(normalized_on(home, x, scale, shift), y.to(home), None, None, tuple(view), device)
    return DeviceSplit(x.to(home), y.to(home), scale, shift, tuple(view), device)


def loss_targets(y: torch.Tensor, task: str, out_shape: tuple) -> torch.Tensor:
    """Targets as the loss takes them: int64 class ids, or float values shaped like the output."""
    return y.float().reshape(len(y), *out_shape) if task != "classification" else y.long()


def training_normalization(train: Split | ImageFiles, cfg: dict) -> dict | None:
    """The normalization training uses: the training set's per-channel statistics
    (data.normalize), else none, except that uint8 images are always scaled to [0, 1]."""
    data = cfg["data"]
    if isinstance(train, ImageFiles):
        from dlcli.data.stream import channel_histograms

        normalization = None
        if data["normalize"]:
            counts = channel_histograms(train, split_seed(cfg), workers(cfg)).double()  # (C, 256)
            values = torch.arange(256, dtype=torch.float64)
            normalization = standardization(1, counts @ values, counts @ (values * values), int(counts[0].sum()))
        channels = train.shape[0]
    else:
        normalization = normalization_stats(train.x) if data["normalize"] else None
        channels = train.x.shape[1] if train.x.dtype == torch.uint8 else 0
    if normalization is None and channels:
        normalization = {"axis": 1, "mean": [0.0] * channels, "std": [255.0] * channels}
    return normalization


def split_seed(cfg: dict) -> int:
    """data.split_seed, or the run's seed: what the data's random choices are drawn with."""
    chosen = cfg["data"].get("split_seed")
    return cfg["seed"] if chosen is None else chosen


def workers(cfg: dict) -> int:
    """data.workers, or the default for this machine (streamed data only)."""
    from dlcli.data.stream import default_workers

    chosen = cfg["data"].get("workers")
    return default_workers() if chosen is None else chosen


def prepare_data(cfg: dict, plan: ModelPlan, device: torch.device, splits: Splits | None = None,
                 normalization: dict | None | str = "compute", fingerprint: bool = False) -> PreparedData:
    """Load (unless given), check, split, normalize and place the data of a config, for the
    model `plan` (dlcli.model.plan_model: its input and output shapes, its task).
    `normalization`: "compute" takes the training set's statistics; a checkpoint's
    (a dict, or None) makes evaluation see exactly what training saw (give the splits of a
    checkpoint's config, loaded with `load_splits(cfg, plan, from_checkpoint=True)`). `fingerprint`:
    also fingerprint each split as the run trains on it (training writes them in checkpoints)."""
    splits = splits or load_splits(cfg, plan)
    data = cfg["data"]
    source = splits.source or data["dataset"]
    # ids checked as stored, so a message's sample numbers are the file's
    train, val, test = (Split(model_ids(cfg, plan, split.x, f"{source}: {name} samples"), split.y)
                        if isinstance(split, Split) and len(split) else split
                        for name, split in (("training", splits.train), ("validation", splits.val),
                                            ("test", splits.test)))
    by_class = DATASETS.get(data["dataset"]).meta.get("stored_by_class", False)
    train = subset_of(train, data["subset"], by_class, split_seed(cfg))
    if data["val_split"] > 0:
        if val is not None:
            named = splits.meta.get("val_arrays", "named by the data set")
            raise DataError(two_validation_splits(source, named, data["val_split"]), key=("data", "val_split"))
        train, val = validation_split(train, data, split_seed(cfg))
    if test is not None:
        test = subset_of(test, data["test_subset"], by_class, split_seed(cfg) + 1)
    task = plan.target_kind
    for name, split in (("training", train), ("validation", val), ("test", test)):
        if split is not None and len(split):
            check_fits(cfg, plan, split, name, source)
    if normalization == "compute":
        normalization = training_normalization(train, cfg)
    fingerprints = None
    if fingerprint:  # the samples as placed below, before normalization (the checkpoint holds that apart)
        from dlcli.data.fingerprint import data_fingerprints

        fingerprints = data_fingerprints(train, val, test)
    view, out_shape = plan.input_shape, plan.output_shape
    home = resident_device([s for s in (train, val, test) if isinstance(s, Split)], device)

    def place(split):
        if split is None or len(split) == 0:
            return None
        if isinstance(split, ImageFiles):
            from dlcli.data.stream import StreamSplit

            scale, shift = affine(normalization, split.sample_shape, device)
            return StreamSplit(split, loss_targets(split.y, task, out_shape), scale, shift, view, device,
                               workers(cfg))
        return to_device_split(split, normalization, view, device, home, out_shape, task)

    try:
        placed = [place(split) for split in (train, val, test)]
    except torch.cuda.OutOfMemoryError:
        if home.type != "cuda":
            raise
        placed = None  # outside the handler: its traceback holds the partial copies
    if placed is None:  # the device filled up since it was measured (another process): the data stay on the CPU
        torch.cuda.empty_cache()
        home = torch.device("cpu")
        placed = [place(split) for split in (train, val, test)]
    # classes of integer targets a regression loss reads as values (prices in whole dollars) are no classes
    values = plan.task == "regression"
    names = None if values else class_names(splits, task, plan, source)
    return PreparedData(*placed, task, None if values else splits.num_classes,
                        names, normalization, source, splits.meta.get("features"), fingerprints)


def class_names(splits: Splits, task: str, plan: ModelPlan, source: str) -> list[str] | None:
    """The data's class names; class ids ("0", "1", ...) are named only once the model's outputs
    bound them, so a label of 10**12 is refused here rather than building 10**12 names."""
    if splits.class_names is not None or not splits.num_classes:
        return splits.class_names
    out_shape = plan.output_shape
    outputs = max(out_shape[0] if out_shape else 1, 2)  # a binary loss's single output reads 0/1 labels
    if splits.num_classes > outputs:
        if task != "classification":
            return None  # 0/1 labels read as values: no classes to name
        raise DataError(f"{source}: labels must be class ids in [0, {outputs - 1}] for a model with {outputs} "
                        f"outputs; found label {splits.num_classes - 1} (in a sample data.subset leaves out)",
                        key=plan.output_key)
    return [str(c) for c in range(splits.num_classes)]
