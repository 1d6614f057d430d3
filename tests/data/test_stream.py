"""Streamed image folders (dlcli.data.stream): the same batches, weights, resumes and
evaluations as the in-memory path, without holding the pixels; clear errors when a
file or a worker fails."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dlcli.checkpoint import load_checkpoint
from dlcli.config import config_from_text
from dlcli.data import load_dataset, memory, stream
from dlcli.data._tensors import ImageFiles, Split
from dlcli.errors import ConfigError, DataError
from dlcli.train import RunHandle, Trainer, TrainingInterrupted, resume, train
from tests.samples import InterruptAt, prepared

CONFIG = """
name: stream
seed: 5
model:
  input_shape: [3, 12, 12]
  layers:
    - conv2d: {{filters: 4, kernel_size: 3, activation: relu}}
    - maxpool2d: 2
    - dropout: 0.2
    - flatten
    - dense: 3
data: {{dataset: image_folder, path: {path}, batch_size: 8, eval_batch_size: 7, val_split: 0.2}}
optimizer: {{type: adam, lr: 3e-3}}
trainer: {{epochs: 2, device: cpu, progress: none, out_dir: {out}}}
"""


@pytest.fixture
def image_tree(tmp_path):
    """A folder of random-noise PNGs of mixed sizes: train/ (3 classes x 11) and test/ (3 x 4)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "imgs"
    for split, count in (("train", 11), ("test", 4)):
        for label in ("ant", "bee", "cat"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                size = (14 + i % 3, 13 + i % 2, 3)  # resized to 12x12 by both paths
                Image.fromarray(rng.integers(0, 256, size=size, dtype=np.uint8)).save(folder / f"{i:02d}.png")
    return root


@pytest.fixture
def stream_cfg(tmp_path, image_tree):
    def make(*overrides):
        text = CONFIG.format(path=image_tree, out=tmp_path / "runs")
        return config_from_text(text, "stream.yaml", list(overrides))

    return make


def _weights(run_dir) -> dict:
    return load_checkpoint(Path(run_dir) / "checkpoints" / "last.pt")["model"]


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _records(run_dir) -> list[dict]:
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in ("seconds", "samples_per_s")} for line in lines]


# ---------------------------------------------------------------------------
# Choosing the path
# ---------------------------------------------------------------------------

def _load(root, **args):
    return load_dataset("image_folder", {"path": str(root), **args}, [3, 12, 12])


def test_in_memory_forces_either_path(image_tree):
    held = _load(image_tree, in_memory=True)
    streamed = _load(image_tree, in_memory=False)
    assert isinstance(held.train, Split) and isinstance(held.test, Split)
    assert isinstance(streamed.train, ImageFiles) and isinstance(streamed.test, ImageFiles)
    assert streamed.train.y.tolist() == held.train.y.tolist() and len(streamed.test) == 12
    assert (streamed.class_names, streamed.source) == (held.class_names, held.source)


def test_auto_streams_only_what_does_not_fit_the_budget(image_tree, monkeypatch):
    pixels = (33 + 12) * 3 * 12 * 12  # the decoded uint8 tensors of both splits
    monkeypatch.setattr(memory, "available_memory", lambda: int(pixels / memory.IN_MEMORY_FRACTION))
    assert isinstance(_load(image_tree, in_memory="auto").train, Split)
    monkeypatch.setattr(memory, "available_memory", lambda: int(pixels / memory.IN_MEMORY_FRACTION) - 1)
    assert isinstance(_load(image_tree, in_memory="auto").train, ImageFiles)
    monkeypatch.setattr(memory, "available_memory", lambda: None)  # unknown: as before, in memory
    assert isinstance(_load(image_tree, in_memory="auto").train, Split)


def test_available_memory_reads_this_machine():
    available = memory.available_memory()
    assert available is None or available > 0


def test_default_workers_leaves_a_cpu_for_training():
    assert 1 <= stream.default_workers() <= stream.MAX_DEFAULT_WORKERS


def test_options_are_validated(stream_cfg):
    cfg = stream_cfg()
    assert (cfg["data"]["in_memory"], cfg["data"]["workers"]) == ("auto", None)
    with pytest.raises(ConfigError, match=r"data.in_memory: expected auto, true or false.*received: 'sometimes'"):
        stream_cfg("data.in_memory=sometimes")
    with pytest.raises(ConfigError, match=r"data.workers: expected an integer between 0 and 256.*received: -1"):
        stream_cfg("data.workers=-1")
    with pytest.raises(ConfigError, match=r"data.in_memory: unknown argument 'in_memory' for data"):
        config_from_text("model: {input_shape: [1, 28, 28], layers: [flatten, {dense: 10}]}\n"
                         "data: {dataset: mnist, in_memory: false}\n", "m.yaml")


# ---------------------------------------------------------------------------
# What a streamed split holds and yields
# ---------------------------------------------------------------------------

def test_streamed_split_holds_paths_and_labels_not_pixels(stream_cfg):
    data = prepared(stream_cfg("data.in_memory=false", "model.input_shape=[3,48,48]"), torch.device("cpu"))
    split = data.train
    assert data.streamed and split.streamed and not hasattr(split, "x")
    held = [v for v in vars(split).values() if isinstance(v, (torch.Tensor, np.ndarray))]
    held += [v for v in vars(split.files).values() if isinstance(v, (torch.Tensor, np.ndarray))]
    held_bytes = sum(v.nbytes if isinstance(v, np.ndarray) else v.numel() * v.element_size() for v in held)
    assert len(split) == 26 and held_bytes < len(split) * 3 * 48 * 48 / 10  # the pixels would be 10x more
    assert all(v.ndim == 1 for v in held if len(v) == len(split))  # per sample: a path and a label


# The GPU cases run on a lent GPU machine (benchmarks/gpu_check.sh): streamed batches are
# pinned and copied, held ones gathered on the device.
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"))]


@pytest.mark.parametrize("device", DEVICES)
def test_streamed_batches_are_the_in_memory_batches(stream_cfg, device):
    """The same normalization, validation samples and training/evaluation batches, bit for bit."""
    device = torch.device(device)
    held = prepared(stream_cfg("data.in_memory=true"), device)
    streamed = prepared(stream_cfg("data.in_memory=false", "data.workers=2"), device)
    assert held.train.x.device.type == device.type and streamed.train.streamed
    assert streamed.normalization == held.normalization and streamed.normalization["std"] != [255.0] * 3
    for name in ("train", "val", "test"):
        a, b = list(getattr(held, name).slices(3)), list(getattr(streamed, name).slices(3))
        assert len(a) == len(b) > 1
        for (xa, ya), (xb, yb) in zip(a, b):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    perm = torch.randperm(len(held.train), generator=torch.Generator().manual_seed(1))
    streamed.train.plan(perm, 8, range(1, 4))
    for b in range(1, 4):
        idx = perm[b * 8:(b + 1) * 8]
        xa, ya = held.train.batch(idx.to(held.train.home))
        xb, yb = streamed.train.batch(idx)
        assert xb.device.type == device.type and torch.equal(xa, xb) and torch.equal(ya, yb)
    streamed.train.close()


def test_a_batch_outside_the_plan_is_refused(stream_cfg):
    data = prepared(stream_cfg("data.in_memory=false", "data.workers=0"), torch.device("cpu"))
    perm = torch.arange(len(data.train))
    data.train.plan(perm, 8, range(0, 2))
    with pytest.raises(RuntimeError, match="outside the planned epoch"):
        data.train.batch(perm[8:16])  # batch 1 asked before batch 0
    with pytest.raises(RuntimeError, match="outside the planned epoch"):
        data.train.batch(perm[:8])  # the plan was abandoned by the failure: nothing to give


def test_normalization_of_a_large_set_reads_a_seeded_sample(stream_cfg, monkeypatch):
    monkeypatch.setattr(stream, "NORMALIZATION_SAMPLE", 10)
    cfg = stream_cfg("data.in_memory=false", "data.workers=0", "data.val_split=0")
    files = _load(cfg["data"]["path"], in_memory=False).train
    read = []
    real = stream.read_batches
    monkeypatch.setattr(stream, "read_batches", lambda f, batches, *a, **k: read.extend(batches) or real(f, batches, *a, **k))
    first = stream.channel_histograms(files, 5, 0)
    sample = np.concatenate(read)
    assert len(sample) == 10 and list(sample) == sorted(set(sample)) and int(first[0].sum()) == 10 * 12 * 12
    read.clear()
    assert torch.equal(stream.channel_histograms(files, 5, 0), first) and list(np.concatenate(read)) == list(sample)


# ---------------------------------------------------------------------------
# Training, resuming, evaluating
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
def test_streamed_training_equals_in_memory_training(stream_cfg, device):
    on = (f"trainer.device={device}", "trainer.deterministic=true")
    held = train(stream_cfg("data.in_memory=true", *on))
    streamed = train(stream_cfg("data.in_memory=false", "data.workers=2", *on))
    _assert_same_weights(_weights(held["run_dir"]), _weights(streamed["run_dir"]))
    assert _records(held["run_dir"]) == _records(streamed["run_dir"])
    assert held["test"] == streamed["test"]


def test_interrupt_mid_epoch_then_resume_streamed_is_exact(stream_cfg):
    straight = train(stream_cfg("data.in_memory=false", "data.workers=1"))
    handle = RunHandle()
    with pytest.raises(TrainingInterrupted):
        train(stream_cfg("data.in_memory=false", "data.workers=1"), callbacks=[InterruptAt(1, 0)], handle=handle)
    assert handle.trainer.data.train._planned is None  # the rest of the epoch is not read on
    state = load_checkpoint(handle.run_dir / "checkpoints" / "last.pt")
    assert (state["epoch"], state["batch_in_epoch"]) == (1, 1)
    resume(handle.run_dir)
    _assert_same_weights(_weights(straight["run_dir"]), _weights(handle.run_dir))
    assert _records(straight["run_dir"]) == _records(handle.run_dir)


def test_a_resume_that_streams_what_the_run_held_in_memory_keeps_its_normalization(stream_cfg, monkeypatch):
    """data.in_memory: auto decides by the memory free when a process starts: in memory the
    statistics come from every image, streamed from a sample. A resume on the same folder with
    less memory free is the same data, not refused as changed, and trains on with the run's own
    normalization."""
    monkeypatch.setattr(stream, "NORMALIZATION_SAMPLE", 10)  # stands for 10,000: the folder is larger
    first = train(stream_cfg("trainer.epochs=1", "data.workers=0"))  # auto: held in memory
    saved = load_checkpoint(Path(first["run_dir"]) / "checkpoints" / "last.pt")["normalization"]
    monkeypatch.setattr(memory, "available_memory", lambda: 1000)  # auto now streams
    resumed = resume(first["run_dir"], ["trainer.epochs=2"])
    assert resumed["status"] == "finished"
    assert load_checkpoint(Path(first["run_dir"]) / "checkpoints" / "last.pt")["normalization"] == saved


def test_evaluate_and_predict_a_checkpoint_trained_on_streamed_data(stream_cfg, image_tree, cli):
    from dlcli.predict import predict
    from dlcli.reports import evaluate_checkpoint

    held = train(stream_cfg("data.in_memory=true"))
    streamed = train(stream_cfg("data.in_memory=false", "data.workers=1"))
    for split in ("val", "test"):
        a = evaluate_checkpoint(held["run_dir"], split=split).report
        b = evaluate_checkpoint(streamed["run_dir"], split=split).report
        assert (b["loss"], b["accuracy"], b["samples"]) == (a["loss"], a["accuracy"], a["samples"])
    result = cli("evaluate", streamed["run_dir"])
    assert result.exit_code == 0, result.output
    assert "12 samples" in result.stdout
    image = image_tree / "test" / "bee" / "00.png"
    assert predict(streamed["run_dir"], [image]).rows == predict(held["run_dir"], [image]).rows


def test_cuda_graphs_refuse_streamed_data(stream_cfg):
    from dlcli.train.cuda_graphs import graph_blockers

    cfg = stream_cfg("data.in_memory=false", "trainer.cuda_graphs=true")
    blockers = graph_blockers(cfg, torch.device("cuda"), streamed=True)
    assert len(blockers) == 1 and "streamed from their files" in blockers[0]
    assert graph_blockers(cfg, torch.device("cuda")) == []
    from dlcli.train.run import new_trainer

    trainer = new_trainer(cfg, prepared(cfg, torch.device("cpu")), torch.device("cpu"))
    assert any("trainer.cuda_graphs ignored" in n and "streamed from their files" in n for n in trainer.notes)


# ---------------------------------------------------------------------------
# Failures while streaming
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("workers", [0, 1])
def test_corrupt_image_found_while_streaming_names_the_file(stream_cfg, image_tree, workers):
    bad = image_tree / "train" / "bee" / "03.png"
    bad.write_bytes(b"not a png")
    cfg = stream_cfg("data.in_memory=false", f"data.workers={workers}", "data.normalize=false",
                     "data.val_split=0")
    handle = RunHandle()
    with pytest.raises(DataError, match=rf"^{bad}: expected a readable image, cannot decode it: cannot identify"):
        train(cfg, handle=handle)
    summary = json.loads((handle.run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and str(bad) in summary["error"]


def test_corrupt_image_in_the_normalization_sample_fails_before_the_run(stream_cfg, image_tree):
    bad = image_tree / "train" / "ant" / "00.png"
    bad.write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match=rf"^{bad}: expected a readable image"):
        prepared(stream_cfg("data.in_memory=false", "data.workers=1"), torch.device("cpu"))


def _dies_on(name: str):
    real = stream.decode_image

    def decode(file, shape):
        if Path(file).name == name:
            os._exit(3)  # a worker killed mid-batch (out of memory, a crash in an image library)
        return real(file, shape)

    return decode


def test_a_worker_that_dies_stops_the_run_with_a_message(stream_cfg, monkeypatch):
    """Told by the death itself ("exited unexpectedly"), not by the worker timeout ("timed out
    after"), whatever the machine's load: the message, not a stopwatch, tells the two apart."""
    monkeypatch.setattr(stream, "decode_image", _dies_on("05.png"))  # forked workers see it
    with pytest.raises(DataError, match=r"a DataLoader worker failed \(DataLoader worker \(pid.*exited "
                                        r"unexpectedly.*HINT: data.workers=0"):
        prepared(stream_cfg("data.in_memory=false", "data.workers=1"), torch.device("cpu"))


def test_a_stuck_worker_times_out(stream_cfg, monkeypatch):
    real, slept = stream.decode_image, []

    def slow(file, shape):
        if not slept:  # once per worker: it then finishes its batch and stops when told
            slept.append(time.sleep(2))
        return real(file, shape)

    monkeypatch.setattr(stream, "decode_image", slow)
    monkeypatch.setattr(stream, "WORKER_TIMEOUT_S", 1)
    with pytest.raises(DataError, match=r"a DataLoader worker failed \(DataLoader timed out after 1 seconds\)"):
        prepared(stream_cfg("data.in_memory=false", "data.workers=1"), torch.device("cpu"))



def _dies_once_flagged(flag: Path):
    """A decoder that dies once `flag` exists; slow, so a worker still has batches to decode
    when the training process sets the flag, just after receiving its first batch."""
    real = stream.decode_image

    def decode(file, shape):
        time.sleep(0.05)
        if flag.exists():
            os._exit(3)
        return real(file, shape)

    return decode


def _flag_and_wait(flag: Path) -> None:
    """Tell the workers to die on their next image, then wait in Python code (not in a batch
    read), where PyTorch's SIGCHLD handler reports the dead worker."""
    flag.touch()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.01)


class _KillWorkersAfterFirstBatch:
    def __init__(self, flag: Path):
        self.flag = flag

    def __getattr__(self, hook):
        return lambda *args: None

    def on_train_batch_end(self, trainer, batch):
        if batch == 0:
            _flag_and_wait(self.flag)


_WORKER_FAILED = r"a DataLoader worker failed \(DataLoader worker \(pid.*HINT: data.workers=0"


def test_a_worker_that_dies_mid_epoch_fails_the_run_with_a_message(stream_cfg, monkeypatch, tmp_path):
    flag = tmp_path / "die"
    monkeypatch.setattr(stream, "decode_image", _dies_once_flagged(flag))
    handle = RunHandle()
    cfg = stream_cfg("data.in_memory=false", "data.workers=1", "data.normalize=false", "data.batch_size=2")
    with pytest.raises(DataError, match=_WORKER_FAILED):
        train(cfg, callbacks=[_KillWorkersAfterFirstBatch(flag)], handle=handle)
    summary = json.loads((handle.run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "DataLoader worker failed" in summary["error"]


def test_a_worker_that_dies_mid_evaluation_is_a_data_error(stream_cfg, monkeypatch, tmp_path):
    from dlcli.evaluation import evaluate_split

    flag = tmp_path / "die"
    monkeypatch.setattr(stream, "decode_image", _dies_once_flagged(flag))
    cfg = stream_cfg("data.in_memory=false", "data.workers=1", "data.normalize=false")
    data = prepared(cfg, torch.device("cpu"))

    def model(xb):  # the first batch's forward flags the workers and waits
        if not flag.exists():
            _flag_and_wait(flag)
        return torch.zeros(len(xb), 3)

    model.training, model.eval, model.train = False, lambda: None, lambda mode: None
    with pytest.raises(DataError, match=_WORKER_FAILED):
        evaluate_split(model, data.test, torch.nn.CrossEntropyLoss(), {}, batch_size=2)
