"""`dlcli train --resume` on data whose sample counts, normalization and classes match the
checkpoint's but whose content does not (every label shifted, every image inverted): refused by
the splits' content fingerprints, naming the split, before anything in the run changes."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from dlcli.checkpoint import load_checkpoint, save_checkpoint
from tests.samples import assert_refused
from tests.train.test_resume import _files

HINT = r"HINT: restore the data the run trained on \(data.path=PATH if it moved\), or train a new run on this data"

CSV_CONFIG = """\
name: csv
seed: 1
model: {{input_shape: [2], layers: [{{dense: {{units: 4, activation: relu}}}}, {{dense: 3}}]}}
data: {{dataset: csv, path: {path}, target: label, batch_size: 8}}
trainer: {{epochs: 1, device: cpu, progress: none, out_dir: {out}}}
"""

NPZ_CONFIG = """\
name: images
seed: 1
model: {{input_shape: [1, 6, 6], layers: [flatten, {{dense: 3}}]}}
data: {{dataset: npz, path: {path}, batch_size: 8, val_split: 0.25, normalize: false}}
trainer: {{epochs: 1, device: cpu, progress: none, out_dir: {out}}}
"""


def _shift_labels(data: Path) -> None:
    """Every CSV label one class on (0 -> 1 -> 2 -> 0): the same rows, features and classes."""
    header, *rows = data.read_text().splitlines()
    data.write_text("\n".join([header] + [f"{row[:-1]}{(int(row[-1]) + 1) % 3}" for row in rows]) + "\n")


def _trained(cli, config: Path) -> Path:
    result = cli("train", config)
    assert result.exit_code == 0, result.output
    runs = sorted((config.parent / "runs").glob("*/*"))  # runs/NAME/TIME
    assert len(runs) == 1
    return runs[0]


@pytest.fixture
def csv_run(tmp_path, cli):
    """(run directory, CSV file) of a run trained one epoch on 40 rows of 3 classes."""
    rng = np.random.default_rng(0)
    rows = [f"{a:.3f},{b:.3f},{i % 3}" for i, (a, b) in enumerate(rng.normal(size=(40, 2)))]
    data = tmp_path / "d.csv"
    data.write_text("a,b,label\n" + "\n".join(rows) + "\n")
    config = tmp_path / "csv.yaml"
    config.write_text(CSV_CONFIG.format(path=data, out=tmp_path / "runs"))
    return _trained(cli, config), data


@pytest.fixture
def npz_run(tmp_path, cli):
    """(run directory, npz file) of a run trained one epoch on 32 uint8 images (8 test images),
    normalization fixed (data.normalize: false), so the pixels' statistics are not compared."""
    rng = np.random.default_rng(0)
    data = tmp_path / "d.npz"
    np.savez(data, x=rng.integers(0, 256, (32, 1, 6, 6), dtype=np.uint8), y=np.arange(32) % 3,
             x_test=rng.integers(0, 256, (8, 1, 6, 6), dtype=np.uint8), y_test=np.arange(8) % 3)
    config = tmp_path / "npz.yaml"
    config.write_text(NPZ_CONFIG.format(path=data, out=tmp_path / "runs"))
    return _trained(cli, config), data


def test_every_csv_label_shifted_is_refused_naming_the_split(csv_run, cli):
    run_dir, data = csv_run
    _shift_labels(data)
    before = _files(run_dir)
    result = cli("train", "--resume", run_dir, "trainer.epochs=2")
    assert_refused(result, rf"csv {re.escape(str(data))}: the data changed since the checkpoint .*last.pt was "
                           r"written: the training split's content changed \(labels or values\) although its 40 "
                           r"samples, normalization and classes match; resuming would train the rest of the run on "
                           r"other data than its first part\. " + HINT)
    assert _files(run_dir) == before


@pytest.mark.parametrize("inverted, named", [
    (("x",), r"the training split's content changed \(labels or pixels\) although its 24 samples, normalization "
             r"and classes match; the validation split's content changed \(labels or pixels\) although its 8 "
             r"samples"),
    (("x_test",), r"written: the test split's content changed \(labels or pixels\) although its 8 samples, "
                  r"normalization and classes match; resuming"),
], ids=["training", "test"])
def test_inverted_images_are_refused_naming_the_split(npz_run, cli, inverted, named):
    run_dir, data = npz_run
    arrays = dict(np.load(data))
    np.savez(data, **{name: 255 - array if name in inverted else array for name, array in arrays.items()})
    before = _files(run_dir)
    result = cli("train", "--resume", run_dir, "trainer.epochs=2")
    assert_refused(result, named, HINT)
    assert _files(run_dir) == before


def test_unchanged_data_resumes_and_each_split_is_fingerprinted(npz_run, cli):
    run_dir, _ = npz_run
    saved = load_checkpoint(run_dir / "checkpoints" / "last.pt")["data_fingerprint"]
    assert sorted(saved) == ["test", "train", "val"]
    assert all(re.fullmatch(r"tensors:sha256:[0-9a-f]{64}", saved[key]) for key in saved)
    assert len(set(saved.values())) == 3
    result = cli("train", "--resume", run_dir, "trainer.epochs=2")
    assert result.exit_code == 0, result.output
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["data_fingerprint"] == saved


def test_a_checkpoint_without_fingerprints_is_not_compared(csv_run, cli):
    """Checkpoints of a dlcli before the fingerprints resume as they did: by counts, normalization
    and classes only."""
    run_dir, data = csv_run
    last = run_dir / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    save_checkpoint(last, {k: v for k, v in state.items() if k not in ("path", "data_fingerprint")})
    _shift_labels(data)
    result = cli("train", "--resume", run_dir, "trainer.epochs=2")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("value, said", [
    ("abc", r"data_fingerprint: expected a mapping of train, val, test to fingerprints, received 'abc'"),
    ({"train": 5}, r"data_fingerprint.train: expected null or a fingerprint \(kind:algorithm:hex digest\), "
                   r"received 5"),
    ({"train": "tensors:sha256:xyz"}, r"data_fingerprint.train: expected null or a fingerprint"),
    ({"everything": None}, r"data_fingerprint: expected a mapping of train, val, test to fingerprints"),
], ids=["text", "number", "not-hex", "other-split"])
def test_a_damaged_fingerprint_field_is_a_clean_refusal(npz_run, cli, value, said):
    run_dir, _ = npz_run
    last = run_dir / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    save_checkpoint(last, {**{k: v for k, v in state.items() if k != "path"}, "data_fingerprint": value})
    before = _files(run_dir)
    result = cli("train", "--resume", run_dir, "trainer.epochs=2")
    assert_refused(result, r"last.pt: damaged checkpoint: " + said)
    assert _files(run_dir) == before


FOLDER_CONFIG = """\
name: folder
seed: 1
model: {{input_shape: [1, 6, 6], layers: [flatten, {{dense: 2}}]}}
data: {{dataset: image_folder, path: {path}, batch_size: 4, in_memory: false, workers: 0}}
trainer: {{epochs: 1, device: cpu, progress: none, out_dir: {out}}}
"""


def test_a_streamed_image_relabelled_is_refused(tmp_path, cli):
    """Streamed files are fingerprinted by name, size and label: two images that swapped class
    folders leave the counts, classes and (kept) normalization as they were."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("ant", "bee"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (6, 6), dtype=np.uint8)).save(tmp_path / "imgs" / label / f"{i}.png")
    config = tmp_path / "folder.yaml"
    config.write_text(FOLDER_CONFIG.format(path=tmp_path / "imgs", out=tmp_path / "runs"))
    run_dir = _trained(cli, config)
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["data_fingerprint"]["train"].startswith("files:")
    (tmp_path / "imgs" / "ant" / "0.png").rename(tmp_path / "imgs" / "bee" / "9.png")
    (tmp_path / "imgs" / "bee" / "0.png").rename(tmp_path / "imgs" / "ant" / "9.png")
    before = _files(run_dir)
    result = cli("train", "--resume", run_dir, "trainer.epochs=2")
    assert_refused(result, r"the training split's content changed \(file names, sizes or labels\) although its 12 "
                           r"samples, normalization and classes match", HINT)
    assert _files(run_dir) == before
