"""Samples shared by the test packages: valid argument values derived from an entry's
declared arguments (so tests can build every registered thing without a hand-written
list of arguments), the tiny MNIST config that tests/train and tests/reports train, and
a pickled code payload for the tests that checkpoints never run code."""

from __future__ import annotations

import contextlib
import os
import weakref
from pathlib import Path
from typing import Any

from dlcli.config import config_from_text
from dlcli.train.callbacks import Callback
from dlcli.registry import (Bool, Entry, Float, FloatList, Int, IntList, IntTuple, Kind, Optional, Padding,
                            Permutation, Str, StrList, check_args)


def sample_value(kind: Kind) -> Any:
    """A value that `kind.check` accepts, preferring small numbers away from the bounds."""
    if isinstance(kind, Optional):
        return sample_value(kind.inner)
    if isinstance(kind, Bool):
        return False
    if isinstance(kind, Int):
        low = kind.min if kind.min is not None else 1
        value = max(low, 2)
        return value if kind.max is None else min(value, kind.max)
    if isinstance(kind, Float):
        low = kind.min if kind.min is not None else 0.0
        high = kind.max if kind.max is not None else low + 1.0
        return (low + high) / 2
    if isinstance(kind, IntTuple):
        return max(kind.min, 2)
    if isinstance(kind, IntList):
        return list(range(max(kind.min, 1), max(kind.min, 1) + kind.min_len))
    if isinstance(kind, FloatList):
        return [sample_value(kind.item)] * kind.n
    if isinstance(kind, Padding):
        return "valid"
    if isinstance(kind, Permutation):
        return [1]
    if isinstance(kind, Str):
        return kind.choices[0] if kind.choices else "x"
    if isinstance(kind, StrList):
        return []
    raise NotImplementedError(f"no sample value for kind {type(kind).__name__}: teach tests/samples.py")


def sample_args(entry: Entry, given: dict | None = None) -> dict:
    """Defaults plus a sample value for each required argument, normalized as the validator would."""
    given = dict(given or {})
    for arg in entry.args:
        if arg.required and arg.name not in given:
            given[arg.name] = sample_value(arg.kind)
    args, problems = check_args(entry, given)
    assert not problems, f"{entry.name}: sample arguments rejected: {problems}"
    return args


# Trains in a second or two on a CPU, yet has every piece of state a checkpoint carries:
# dropout and batchnorm, a validation split, a warm-up schedule (tests/reports drops it).
TINY_MNIST = """
name: tiny
seed: 3
model:
  input_shape: [1, 28, 28]
  layers:
    - conv2d: {filters: 4, kernel_size: 3, activation: relu}
    - maxpool2d: 2
    - dropout: 0.2
    - flatten
    - dense: {units: 16, activation: relu}
    - batchnorm
    - dense: 10
data: {dataset: mnist, batch_size: 32, subset: 320, test_subset: 200, val_split: 0.25}
optimizer: {type: adam, lr: 3e-3}
scheduler: {type: cosine, warmup_steps: 3}
trainer: {epochs: 4, device: cpu, progress: none}
"""


# The smallest trained checkpoint worth attacking: one epoch of a 2-filter CNN on 64 images.
SMALLEST_CNN = """
name: smallest
seed: 1
model:
  input_shape: [1, 28, 28]
  layers: [{conv2d: {filters: 2, kernel_size: 3, activation: relu}}, {maxpool2d: 2}, flatten, {dense: 10}]
data: {dataset: mnist, batch_size: 32, subset: 64, test_subset: 32}
trainer: {epochs: 1, device: cpu, progress: none}
"""


def train_smallest_cnn(out_dir: Any, name: str) -> Path:
    """The run directory of SMALLEST_CNN named `name`, trained under `out_dir`."""
    from dlcli.train import train

    return Path(train(config_from_text(SMALLEST_CNN, f"{name}.yaml", [f"trainer.out_dir={out_dir}",
                                                                      f"name={name}"]))["run_dir"])


def tiny_mnist(out_dir: Any, *overrides: str) -> dict:
    """TINY_MNIST resolved with `overrides`, its runs written under `out_dir`."""
    return config_from_text(TINY_MNIST, "tiny.yaml", [f"trainer.out_dir={out_dir}", *overrides])


class Payload:
    """Unpickling this runs `touch MARKER`: a loader that runs code leaves the marker behind."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class InterruptAt(Callback):
    """Acts as a SIGINT arriving after batch `batch` (0-based) of epoch `epoch` (0-based)."""

    def __init__(self, epoch: int, batch: int):
        self.epoch, self.batch = epoch, batch

    def on_train_batch_end(self, trainer, batch):
        if trainer.epoch == self.epoch and batch == self.batch:
            trainer.signals.received = "SIGINT"


@contextlib.contextmanager
def optimizer_params():
    """Weak references to the parameters of every torch optimizer created inside the block:
    dead ones were freed."""
    import torch

    made: list[weakref.ref] = []
    real = torch.optim.Optimizer.__init__

    def spy(self, params, *args, **kwargs):
        params = list(params)
        made.extend(weakref.ref(p) for p in params)
        real(self, params, *args, **kwargs)

    torch.optim.Optimizer.__init__ = spy
    try:
        yield made
    finally:
        torch.optim.Optimizer.__init__ = real


def assert_refused(result, *patterns: str) -> None:
    """A CLI result (tests' `cli` fixture) that refused its input: exit 2, no traceback, and every
    regular expression in `patterns` found in its output (line breaks read as spaces)."""
    import re

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    message = " ".join(result.output.split())
    for pattern in patterns:
        assert re.search(pattern, message), result.output


# A tiny image folder (two classes of 8x8 RGB noise) and a config that trains on it, for the tests
# of image folders this user may not read (tests/reliability/test_unreadable_files.py, tests/cli/test_permissions.py).
TINY_IMAGES = """\
name: pets
model:
  input_shape: [3, 8, 8]
  layers: [flatten, {{dense: {{units: 2}}}}]
data: {{dataset: image_folder, path: {path}, batch_size: 4{data}}}
optimizer: {{type: adam, lr: 1e-3}}
loss: cross_entropy
trainer: {{epochs: 1, device: cpu, progress: none, out_dir: {out}}}
"""
STREAMED_IMAGES = ", in_memory: false, workers: 2"  # data.* that has DataLoader worker processes decode them
PERMISSION_DENIED = "Permission denied (as this user; check the permissions of the file and of the folders above it)"


def write_tiny_images(folder: Path, classes=("cat", "dog"), per_class: int = 3) -> Path:
    """folder/<class>/<i>.png for each class."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in classes:
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / name / f"{i}.png")
    return folder


def tiny_images_config(folder: Path, data: Path, name: str = "pets.yaml", extra: str = "") -> Path:
    """folder/name: TINY_IMAGES on `data`, its runs in folder/runs; `extra`: more data.* (", key: value")."""
    path = folder / name
    path.write_text(TINY_IMAGES.format(path=data, data=extra, out=folder / "runs"))
    return path


def prepared(cfg: dict, device, *args):
    """`prepare_data` of a resolved config for its model's plan, as a run prepares it."""
    from dlcli.data.prepare import prepare_data
    from dlcli.model import plan_model

    return prepare_data(cfg, plan_model(cfg), device, *args)
