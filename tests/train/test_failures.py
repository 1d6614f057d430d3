"""What goes wrong during training is reported clearly and loses nothing."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import dlcli.checkpoint as checkpoint
from dlcli.checkpoint import load_checkpoint, save_checkpoint
from dlcli.config import config_from_text
from dlcli.errors import CheckpointError, DataError, RunError
from dlcli.train import Callback, RunHandle, TrainingInterrupted, train
from tests.hang_guard import HANG_S
from tests.samples import Payload

REPO = Path(__file__).resolve().parents[2]


def test_crash_between_write_and_rename_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"config": {}, "model": {"w": torch.ones(2)}, "epoch": 1, "step": 5})

    def crash(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "replace", crash)
    with pytest.raises(CheckpointError, match="cannot write the checkpoint: No space left on device"):
        save_checkpoint(path, {"config": {}, "model": {"w": torch.zeros(2)}, "epoch": 2, "step": 9})
    monkeypatch.undo()
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["model"]["w"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temporary file left behind


def test_checkpoint_with_pickled_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"format": "dlcli-checkpoint", "model": Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="refused to load.*nothing in it was run"):
        load_checkpoint(path)
    assert not marker.exists()


def test_truncated_and_foreign_files_are_clear_errors(tmp_path):
    good = tmp_path / "good.pt"
    save_checkpoint(good, {"config": {}, "model": {"w": torch.ones(1000)}, "epoch": 1, "step": 1})
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:300])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(cut)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(CheckpointError, match="not a dlcli checkpoint"):
        load_checkpoint(other)
    with pytest.raises(CheckpointError, match="a directory without checkpoints"):
        load_checkpoint(tmp_path)


def _function_named(name: str, monkeypatch):
    """A function pickle saves as a GLOBAL of that (100,000-character) name."""
    import types

    module = types.ModuleType("hostile_names")
    monkeypatch.setitem(sys.modules, module.__name__, module)

    def function():  # pragma: no cover - never called: weights_only refuses it
        return None

    function.__module__, function.__qualname__ = module.__name__, name
    setattr(module, name, function)
    return function


def test_what_a_checkpoint_holds_is_cut_in_messages(tmp_path, monkeypatch):
    huge = "k" * 100_000
    function = _function_named(huge, monkeypatch)

    class Global:
        def __reduce__(self):
            return function, ()

    cases = {
        "keys.pt": ({huge: 1, **{f"key{i}": i for i in range(20)}},
                    r"received dict with keys k{57}\.\.\. \(100,000 characters\), key0, .*, key6, \.\.\. "
                    r"\(21 in all\)\)$"),
        "version.pt": ({"format": "dlcli-checkpoint", "format_version": int("9" * 99)},
                       r"written by a newer dlcli \(format 9{57}\.\.\. \(99 digits\)\)"),
        "global.pt": ({"format": "dlcli-checkpoint", "model": Global()},
                      r"nothing in it was run\)\. Unsupported global: GLOBAL hostile_names\.k+\.\.\. "
                      r"\(100,041 characters\)$"),
    }
    for name, (state, message) in cases.items():
        torch.save(state, tmp_path / name)
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(tmp_path / name)
        assert len(str(info.value)) < 2_000 and re.search(message, str(info.value)), str(info.value)[:2_000]


class _PoisonAt(Callback):
    """Puts a NaN into the weights at the start of an epoch."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_start(self, trainer):
        if trainer.epoch == self.epoch:
            with torch.no_grad():
                next(trainer.model.parameters()).fill_(float("nan"))


def test_nan_loss_stops_naming_epoch_and_step_and_keeps_last_good_checkpoint(tiny_cfg):
    handle = RunHandle()
    with pytest.raises(RunError, match=r"NaN or inf at epoch 2, step 9 \(batch 1 of the epoch\); training stopped: "
                                       r"the checkpoint of epoch 1 is the last good one"):
        train(tiny_cfg("scheduler=null"), callbacks=[_PoisonAt(1)], handle=handle)
    last = load_checkpoint(handle.run_dir / "checkpoints" / "last.pt")
    assert last["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in last["model"].values() if v.is_floating_point())
    assert json.loads((handle.run_dir / "summary.json").read_text())["status"] == "failed"


def test_nan_loss_in_the_first_epoch_says_there_is_no_checkpoint(tiny_cfg):
    handle = RunHandle()
    with pytest.raises(RunError, match=r"NaN or inf at epoch 1, step 1 \(batch 1 of the epoch\); training stopped: "
                                       r"no epoch had ended, so there is no checkpoint to go back to\. HINT"):
        train(tiny_cfg("scheduler=null"), callbacks=[_PoisonAt(0)], handle=handle)
    assert not list((handle.run_dir / "checkpoints").glob("*.pt"))


def _npz(tmp_path, labels):
    x = np.random.default_rng(0).random((len(labels), 6), dtype=np.float32)
    path = tmp_path / "data.npz"
    np.savez(path, x=x, y=np.array(labels, dtype=np.int64))
    return path


def test_labels_out_of_range_are_reported_before_training(tmp_path):
    path = _npz(tmp_path, [0, 1, 2, 10] * 5)
    cfg = config_from_text(f"""
model: {{input_shape: [6], layers: [{{dense: 10}}]}}
data: {{dataset: npz, path: {path}}}
trainer: {{epochs: 1, device: cpu, out_dir: {tmp_path / 'runs'}}}
""")
    with pytest.raises(DataError, match=r"labels must be class ids in \[0, 9\].*found label 10"):
        train(cfg)
    assert not (tmp_path / "runs").exists()  # nothing was created


SIGINT_CONFIG = """
name: sig
model:
  input_shape: [1, 28, 28]
  layers: [flatten, {dense: 10}]
data: {dataset: mnist, batch_size: 16, subset: 4000, test_subset: 100}
trainer: {epochs: 500, device: cpu, progress: plain, out_dir: OUT}
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_saves_last_checkpoint_and_says_how_to_resume(tmp_path, sig):
    config = tmp_path / "sig.yaml"
    config.write_text(SIGINT_CONFIG.replace("OUT", str(tmp_path / "runs")))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "dlcli", "train", str(config)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + HANG_S
    while time.time() < deadline and not list((tmp_path / "runs").glob("sig/*/metrics.jsonl")):
        time.sleep(0.2)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == 130, (out, err)
    assert f"stopped by {sig.name}" in err and "resume with: dlcli train --resume" in err
    assert "Traceback" not in err
    run_dir = next((tmp_path / "runs" / "sig").iterdir())
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["epoch"] >= 1


class _OutOfMemoryAt(Callback):
    def on_train_batch_end(self, trainer, batch):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


def test_out_of_memory_suggests_a_smaller_batch(tiny_cfg):
    handle = RunHandle()
    with pytest.raises(RunError, match=r"out of CPU memory at data.batch_size=32 .*try data.batch_size=16"):
        train(tiny_cfg(), callbacks=[_OutOfMemoryAt()], handle=handle)
    assert json.loads((handle.run_dir / "summary.json").read_text())["status"] == "failed"


def _signal_during_evaluation(monkeypatch, call: int, sig=signal.SIGTERM):
    """A real signal to this process during the `call`-th evaluate_split of a run (1-based:
    each epoch's validation, then the test evaluation)."""
    from dlcli.train import trainer as trainer_module

    real, calls = trainer_module.evaluate_split, []

    def evaluate(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            os.kill(os.getpid(), sig)  # handled between two bytecodes, in this (the main) thread
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "evaluate_split", evaluate)


@pytest.mark.parametrize("epoch", [1, 2])  # the last epoch's too: it used to finish as if no signal came
def test_a_signal_during_validation_stops_at_the_end_of_that_epoch(tiny_cfg, monkeypatch, epoch):
    from dlcli.train import resume, train

    straight = train(tiny_cfg("trainer.epochs=2"))
    _signal_during_evaluation(monkeypatch, epoch)
    handle = RunHandle()
    with pytest.raises(TrainingInterrupted):
        train(tiny_cfg("trainer.epochs=2"), handle=handle)
    state = load_checkpoint(handle.run_dir / "checkpoints" / "last.pt")
    assert (state["epoch"], state["batch_in_epoch"]) == (epoch, 0)
    summary = json.loads((handle.run_dir / "summary.json").read_text())
    assert (summary["status"], summary["signal"]) == ("interrupted", "SIGTERM")
    monkeypatch.undo()
    resumed = resume(handle.run_dir)
    assert resumed["status"] == "finished" and resumed["test"] == straight["test"]
    final = load_checkpoint(handle.run_dir / "checkpoints" / "last.pt")["model"]
    expected = load_checkpoint(Path(straight["run_dir"]) / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(final[k], expected[k]) for k in expected)


def test_a_signal_during_the_test_evaluation_lets_the_finished_run_finish(tiny_cfg, monkeypatch):
    _signal_during_evaluation(monkeypatch, 3)  # epochs 1 and 2 validate; the third call is the test evaluation
    summary = train(tiny_cfg("trainer.epochs=2"))
    assert summary["status"] == "finished" and summary["test"]
    assert summary["notes"][-1] == ("SIGTERM came after the last epoch, during the test evaluation: the run was "
                                    "finished first")


class _SignalsAt(Callback):
    """Two real SIGINTs at batch 2 of epoch 2: the handler's flag, then its SecondSignal."""

    def on_train_batch_end(self, trainer, batch):
        if trainer.epoch == 1 and batch == 2:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)


class _CtrlCAtFitStart(Callback):
    def on_fit_start(self, trainer):
        raise KeyboardInterrupt  # a Ctrl-C before the training loop's handlers are in place


@pytest.mark.parametrize("callback, said", [(_SignalsAt(), "a second SIGINT: stopped at once"),
                                            (_CtrlCAtFitStart(), "SIGINT outside the training loop: stopped at once")])
def test_a_hard_stop_records_an_interrupted_run_not_a_crash(tiny_cfg, callback, said):
    handle = RunHandle()
    with pytest.raises(KeyboardInterrupt):
        train(tiny_cfg("trainer.epochs=2"), callbacks=[callback], handle=handle)
    summary = json.loads((handle.run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["signal"] == f"{said}, last.pt may be behind these counts"


def test_a_stop_between_epochs_writes_last_pt_once(tiny_cfg, monkeypatch):
    """The epoch's checkpoint already holds the state: no second write inside a SIGTERM grace period."""
    from dlcli.train.callbacks import Checkpointer

    saves, real = [], Checkpointer._save
    monkeypatch.setattr(Checkpointer, "_save", lambda self, name, state: (saves.append(name), real(self, name, state)))
    _signal_during_evaluation(monkeypatch, 1)
    with pytest.raises(TrainingInterrupted):
        train(tiny_cfg("trainer.epochs=2"))
    assert saves.count("last.pt") == 1
