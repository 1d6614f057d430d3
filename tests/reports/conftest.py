"""Tiny trained runs, built once per test session: an MNIST CNN (val split, test
split), an MNIST LSTM, an npz regression, a CSV table regression, a CSV sequence
regression and an image-folder classifier."""

import csv
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from dlcli.config import config_from_text
from dlcli.train import train
from tests.samples import tiny_mnist

LSTM = """
name: tiny_lstm
seed: 5
model:
  input_shape: [28, 28]
  layers:
    - lstm: {units: 8, return_sequences: true}
    - lstm: {units: 8, bidirectional: true}
    - dense: 10
data: {dataset: mnist, batch_size: 32, subset: 256, test_subset: 64}
optimizer: {type: adam, lr: 3e-3}
trainer: {epochs: 1, device: cpu, progress: none}
"""

REGRESSION = """
name: tiny_regression
seed: 1
model:
  input_shape: [4]
  layers:
    - dense: {units: 8, activation: tanh}
    - dense: 1
data: {dataset: npz, path: PATH, batch_size: 16}
loss: mse
metrics: [mae]
optimizer: {type: adam, lr: 1e-2}
trainer: {epochs: 3, device: cpu, progress: none}
"""

TABLE = """
name: tiny_table
seed: 3
model:
  input_shape: [4]
  layers:
    - dense: {units: 8, activation: tanh}
    - dense: 1
data: {dataset: csv, path: PATH, target: y, batch_size: 16}
loss: mse
optimizer: {type: adam, lr: 3e-2}
trainer: {epochs: 20, device: cpu, progress: none}
"""

SEQUENCE = """
name: tiny_sequence
seed: 2
model:
  input_shape: [4, 2]
  layers:
    - flatten
    - dense: 1
data: {dataset: csv, path: PATH, target: target, window: 4, batch_size: 8}
loss: mse
optimizer: {type: adam, lr: 1e-2}
trainer: {epochs: 2, device: cpu, progress: none}
"""

IMAGES = """
name: tiny_images
seed: 4
model:
  input_shape: [3, 8, 8]
  layers:
    - flatten
    - dense: 3
data: {dataset: image_folder, path: PATH, batch_size: 8}
trainer: {epochs: 2, device: cpu, progress: none}
"""

ANIMALS = ("cat", "dog", "fox")


def _train(text: str, out: Path, data_path: Path | None = None) -> Path:
    text = text.replace("PATH", str(data_path)) if data_path is not None else text
    cfg = config_from_text(text, "tiny.yaml", [f"trainer.out_dir={out}"])
    return trained_long_ago(Path(train(cfg)["run_dir"]))


def trained_long_ago(run_dir: Path) -> Path:
    """Backdate a session run's files by a day. On a busy machine a test can run many minutes
    after the fixture trained; a test whose outcome depends on file times must set them
    itself, and with this it fails on every machine, not only on a slow one."""
    stamp = time.time() - 24 * 3600
    for path in [run_dir, *run_dir.rglob("*")]:
        os.utime(path, (stamp, stamp))
    return run_dir


def write_images(folder: Path, classes=ANIMALS, per_class: int = 4, size: int = 8, seed: int = 0) -> Path:
    """folder/<class>/<i>.png: small RGB images whose colour depends on the class."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, (size, size, 3))
            pixels[..., ANIMALS.index(name) if name in ANIMALS else c % 3] += 180  # cat red, dog green, fox blue
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / name / f"{i}.png")
    return folder


@pytest.fixture(scope="session")
def mnist_run(tmp_path_factory) -> Path:
    """The run directory of a 3-epoch MNIST CNN with a validation and a test split."""
    cfg = tiny_mnist(tmp_path_factory.mktemp("mnist"), "name=tiny_mnist", "scheduler=null", "trainer.epochs=3")
    return trained_long_ago(Path(train(cfg)["run_dir"]))


@pytest.fixture(scope="session")
def lstm_run(tmp_path_factory) -> Path:
    """A 1-epoch LSTM over the rows of MNIST images: stacked, the second bidirectional."""
    return _train(LSTM, tmp_path_factory.mktemp("lstm"))


@pytest.fixture(scope="session")
def regression_run(tmp_path_factory) -> Path:
    """An npz regression (y = x·w + noise) with x_test/y_test and no validation split."""
    folder = tmp_path_factory.mktemp("regression")
    rng = np.random.default_rng(0)
    w = np.array([1.5, -2.0, 0.5, 1.0], dtype=np.float32)
    x = rng.normal(size=(96, 4)).astype(np.float32)
    x_test = rng.normal(size=(32, 4)).astype(np.float32)
    np.savez(folder / "data.npz", x=x, y=x @ w + 0.1 * rng.normal(size=96).astype(np.float32),
             x_test=x_test, y_test=x_test @ w)
    return _train(REGRESSION, folder / "runs", folder / "data.npz")


@pytest.fixture(scope="session")
def table_run(tmp_path_factory) -> Path:
    """A CSV regression on columns a, b, c, d (data.features left at null) -> y; no test split."""
    folder = tmp_path_factory.mktemp("table")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(48, 4))
    y = x @ np.array([2.0, -1.0, 0.5, 3.0]) + 1.0
    lines = ["a,b,c,d,y"] + [",".join(f"{v:.5f}" for v in (*row, target)) for row, target in zip(x, y)]
    (folder / "table.csv").write_text("\n".join(lines) + "\n")
    return _train(TABLE, folder / "runs", folder / "table.csv")


def reorder_csv(source: Path, target: Path, columns: list[str], extra: dict[str, str] | None = None) -> Path:
    """A copy of CSV `source` with its columns in the order `columns` (others dropped) and
    the `extra` columns (name: cell on every row) appended."""
    with open(source, newline="") as handle:
        rows = list(csv.DictReader(handle))
    extra = extra or {}
    with open(target, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*columns, *extra])
        writer.writerows([[row[c] for c in columns] + list(extra.values()) for row in rows])
    return target


@pytest.fixture(name="reorder_csv")
def reorder_csv_fixture():
    return reorder_csv


def edited_checkpoint(run_dir: Path, target: Path, drop: tuple = (), data: dict | None = None) -> Path:
    """A copy of the run's best.pt at `target`, without the keys in `drop` and with its
    config's data section updated by `data` (e.g. a checkpoint as older dlcli wrote it)."""
    import torch

    state = torch.load(Path(run_dir) / "checkpoints" / "best.pt", weights_only=True)
    for key in drop:
        del state[key]
    state["config"]["data"].update(data or {})
    torch.save(state, target)
    return target


@pytest.fixture(name="edited_checkpoint")
def edited_checkpoint_fixture():
    return edited_checkpoint


@pytest.fixture(scope="session")
def sequence_run(tmp_path_factory) -> Path:
    """A CSV with columns a, b, target read in windows of 4 rows (no test split)."""
    folder = tmp_path_factory.mktemp("sequence")
    return _train(SEQUENCE, folder / "runs", write_series(folder / "series.csv"))


@pytest.fixture(scope="session")
def sequence_val_run(tmp_path_factory) -> Path:
    """sequence_run's data and model with data.val_split 0.25: the last windows validate."""
    folder = tmp_path_factory.mktemp("sequence_val")
    return _train(SEQUENCE.replace("window: 4,", "window: 4, val_split: 0.25,"), folder / "runs",
                  write_series(folder / "series.csv"))


def write_series(path: Path) -> Path:
    """30 rows of columns a, b, target (smooth waves)."""
    t = np.arange(30)
    lines = ["a,b,target"] + [f"{np.sin(i / 3):.4f},{np.cos(i / 5):.4f},{np.sin(i / 3 + 0.5):.4f}" for i in t]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def images_run(tmp_path_factory) -> Path:
    """An image-folder classifier over cat/dog/fox (8x8 RGB)."""
    folder = tmp_path_factory.mktemp("images")
    write_images(folder / "train")
    return _train(IMAGES, folder / "runs", folder / "train")


@pytest.fixture(name="write_images")
def write_images_fixture():
    return write_images


@pytest.fixture(scope="session")
def summary_of():
    return lambda run_dir: json.loads((Path(run_dir) / "summary.json").read_text())


@pytest.fixture
def run_copy(table_run, tmp_path) -> Path:
    """A copy of the table run (a tiny dense model), which a failing test may damage."""
    import shutil

    return Path(shutil.copytree(table_run, tmp_path / "run"))
