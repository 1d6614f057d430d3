"""Exact resume: N epochs straight equal k epochs + resume, bit for bit, on CPU."""

import json
from pathlib import Path

import pytest
import torch

from dlcli.checkpoint import load_checkpoint
from dlcli.errors import CheckpointError, DataError, RunError
from dlcli.train import RunHandle, TrainingInterrupted, resume, train
from dlcli.runs import read_metrics
from tests.samples import InterruptAt


def _weights(run_dir):
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]


def _epoch_records(run_dir):
    records, skipped = read_metrics(run_dir / "metrics.jsonl")
    assert skipped == 0
    return [{k: v for k, v in r.items() if k not in ("seconds", "samples_per_s")} for r in records]


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_two_plus_two_epochs_equal_four(tiny_cfg):
    # no scheduler: a cosine schedule depends on the planned number of epochs
    straight = train(tiny_cfg("scheduler=null"))
    first = train(tiny_cfg("scheduler=null", "trainer.epochs=2"))
    resumed = resume(first["run_dir"], ["trainer.epochs=4"])
    assert resumed["run_dir"] == first["run_dir"]  # same directory, logs appended
    straight_dir, resumed_dir = Path(straight["run_dir"]), Path(resumed["run_dir"])
    _assert_same(_weights(straight_dir), _weights(resumed_dir))
    assert _epoch_records(straight_dir) == _epoch_records(resumed_dir)
    assert len(_epoch_records(resumed_dir)) == 4
    assert straight["test"] == resumed["test"]
    # the run's config.yaml says what it trained to, as the checkpoint does
    from dlcli.config import load_config

    assert load_config(resumed_dir / "config.yaml")["trainer"]["epochs"] == 4
    assert load_checkpoint(resumed_dir / "checkpoints" / "last.pt")["config"]["trainer"]["epochs"] == 4


@pytest.mark.parametrize("overrides, stop, steps", [
    ((), (1, 3), []),
    # 2 batches per optimizer step (4 steps an epoch), stopped at step 6, which is logged:
    # the step records match too, without a step 0 nor step 6 twice
    (("trainer.grad_accum=2", "trainer.log_every_steps=2"), (1, 4), [2, 4, 6, 8, 10, 12, 14, 16]),
], ids=["plain", "grad_accum"])
def test_interrupt_mid_epoch_then_resume_is_exact(tiny_cfg, overrides, stop, steps):
    straight = Path(train(tiny_cfg(*overrides))["run_dir"])
    from dlcli.train import RunHandle

    handle = RunHandle()
    try:
        train(tiny_cfg(*overrides), callbacks=[InterruptAt(epoch=1, batch=2)], handle=handle)
    except TrainingInterrupted:
        pass
    else:  # pragma: no cover
        raise AssertionError("the run was not interrupted")
    run_dir = handle.run_dir
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert (state["epoch"], state["batch_in_epoch"]) == stop
    assert [r["step"] for r in _epoch_records(straight) if r["kind"] == "step"] == steps
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
    resume(run_dir)
    _assert_same(_weights(straight), _weights(run_dir))
    assert _epoch_records(straight) == _epoch_records(run_dir)
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"


def test_resume_refuses_other_overrides_and_cuts_what_it_echoes(tiny_cfg):
    run_dir = train(tiny_cfg("trainer.epochs=1"))["run_dir"]
    huge = f"model.layers[0].filters={'9' * 100_000}"
    with pytest.raises(RunError) as info:
        resume(run_dir, ["trainer.epochs=2", "seed=1", huge])
    assert str(info.value) == ("--resume takes only overrides of trainer.epochs, trainer.early_stopping, "
                               "trainer.device, trainer.threads, trainer.progress, trainer.log_every_steps, "
                               "trainer.evaluate_test, data.workers and the data's place (data.path, data.test_path, "
                               "data.root) (the rest must stay as trained); received: "
                               f"seed=1 {huge[:97]}... (100,024 characters)")


def test_a_resume_may_change_what_it_logs_and_evaluates_but_not_what_it_computes(tiny_cfg):
    """log_every_steps and evaluate_test change the records, not the weights: taken on --resume."""
    straight = train(tiny_cfg("trainer.epochs=2", "scheduler=null"))
    first = train(tiny_cfg("trainer.epochs=1", "scheduler=null"))
    resumed = resume(first["run_dir"], ["trainer.epochs=2", "trainer.log_every_steps=3", "trainer.evaluate_test=false"])
    assert "test" not in resumed and resumed["last"]["val_loss"] == straight["last"]["val_loss"]
    steps = [r["step"] for r in read_metrics(Path(first["run_dir"]) / "metrics.jsonl")[0] if r["kind"] == "step"]
    assert steps and all(step % 3 == 0 and step > first["steps"] for step in steps)  # epoch 1 logged none


def test_a_run_that_stopped_early_is_resumed_only_with_other_early_stopping(tiny_cfg):
    """Resuming would stop again at once: refused with what to change; with a larger
    patience (or none) it trains on."""
    # train_loss, watched as if larger were better, never improves after the first epoch
    args = ("trainer.epochs=6", "trainer.monitor=train_loss", "trainer.monitor_mode=max",
            "trainer.early_stopping={patience: 1}", "scheduler=null")
    stopped = train(tiny_cfg(*args))
    assert stopped["status"] == "stopped_early" and stopped["epochs"] == 2
    run_dir = Path(stopped["run_dir"])
    with pytest.raises(RunError, match=rf"{run_dir}: the run stopped early at epoch 2 \(early stopping: train_loss "
                                       rf"did not improve for 1 epochs \(patience 1\)\), and would stop again before "
                                       rf"training; to train on: dlcli train --resume {run_dir} "
                                       rf"trainer.early_stopping.patience=N"):
        resume(run_dir, ["trainer.epochs=8"])
    assert resume(run_dir, ["trainer.early_stopping.patience=2"])["epochs"] == 3
    assert resume(run_dir, ["trainer.early_stopping=null"])["epochs"] == 6


def test_a_run_trained_before_the_sequence_layout_check_resumes(tmp_path):
    """lstm -> global_avgpool1d (over the features) was valid before; its checkpoints still load and resume."""
    import yaml

    from dlcli.config import resolve_config

    text = f"""
name: old
model:
  input_shape: [28, 28]
  layers:
    - lstm: {{units: 8, return_sequences: true}}
    - global_avgpool1d
    - dense: 10
data: {{dataset: mnist, batch_size: 64, subset: 128, test_subset: 64}}
trainer: {{epochs: 1, device: cpu, progress: none, out_dir: {tmp_path}}}
"""
    cfg = resolve_config(yaml.safe_load(text), {}, "old.yaml", guards=False)
    first = train(cfg)
    resumed = resume(first["run_dir"], ["trainer.epochs=2"])
    assert len(_epoch_records(Path(resumed["run_dir"]))) == 2


def test_a_resumed_optimizer_runs_the_way_this_device_builds_it(tiny_cfg):
    """torch's Optimizer.load_state_dict takes fused/capturable/foreach from the checkpoint: a run
    trained on the CPU and resumed on a GPU would lose the fused update (and break a CUDA-graph
    capture, which needs capturable). The flags of the optimizer built here are kept, the saved
    state and hyperparameters loaded, and step counts kept where the plain update wants them."""
    from tests.samples import prepared
    from dlcli.train.run import new_trainer

    cfg = tiny_cfg("scheduler=null", "trainer.epochs=1", "optimizer.lr=0.002")
    cpu = torch.device("cpu")
    first = new_trainer(cfg, prepared(cfg, cpu), cpu)
    first.fit()
    state = first.state_dict()
    for group in state["optimizer"]["param_groups"]:  # as a GPU run's fused, captured Adam saves it
        group.update(fused=True, capturable=True, foreach=None)
    for saved in state["optimizer"]["state"].values():
        saved["step"] = saved["step"].clone()
    again = new_trainer(tiny_cfg("scheduler=null", "trainer.epochs=2"), prepared(cfg, cpu), cpu)
    built = [dict(g) for g in again.optimizer.param_groups]
    again.load_state_dict(state)
    for group, before in zip(again.optimizer.param_groups, built):
        for key in ("fused", "capturable", "foreach", "differentiable"):
            assert group.get(key) == before.get(key), key
        assert group["lr"] == 0.002
    steps = [s["step"] for s in again.optimizer.state.values()]
    assert steps and all(s.device.type == "cpu" and float(s) == first.step for s in steps)
    again.fit()  # the plain CPU update runs on the loaded state
    assert again.epoch == 2


def _scheduler_lrs(entry, epochs: int, steps_per_epoch: int = 3) -> list[float]:
    """The lr after each step of `entry` built for `epochs` epochs (a constant metric for those that watch one)."""
    from tests.samples import sample_args

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    mode = {"mode": "min"} if entry.meta.get("needs_metric") else {}
    scheduler = entry.build(sample_args(entry), optimizer, steps_per_epoch, epochs, **mode)
    lrs = []
    per_step = entry.meta["interval"] == "step"
    for _ in range(2 * steps_per_epoch if per_step else 2):  # the first two epochs
        optimizer.step()
        scheduler.step(1.0) if entry.meta.get("needs_metric") else scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    return lrs


def test_schedulers_shaped_by_the_run_length_say_so_in_the_registry():
    """meta length_dependent drives the resume note: a scheduler whose first two epochs change
    with trainer.epochs must declare it, and one whose do not must not."""
    from dlcli.optim import SCHEDULERS

    entries = list(SCHEDULERS)
    assert len(entries) == 7
    flagged = {e.name for e in entries if e.meta.get("length_dependent")}
    assert flagged == {e.name for e in entries if _scheduler_lrs(e, 2) != _scheduler_lrs(e, 4)}
    assert flagged == {"cosine", "one_cycle"}


@pytest.mark.parametrize("scheduler", ["{type: cosine, warmup_steps: 3}", "{type: one_cycle, max_lr: 0.01}"])
def test_a_longer_resume_recomputes_a_length_dependent_schedule_and_says_so(tiny_cfg, scheduler):
    """The schedule is rebuilt for the new length and taken up at the saved step, so epochs 3-4 get
    the lr a 4-epoch run has there (one_cycle used to fail past its old end); a note and summary.json
    say that epochs 1-2 followed the 2-epoch schedule, which config.yaml no longer describes."""
    straight = train(tiny_cfg(f"scheduler={scheduler}"))
    first = train(tiny_cfg(f"scheduler={scheduler}", "trainer.epochs=2"))
    resumed = resume(first["run_dir"], ["trainer.epochs=4"])
    name = scheduler.split()[1].rstrip(",")
    assert resumed["notes"] == [f"scheduler {name} is recomputed for 4 epochs from epoch 3; epochs 1-2 followed the "
                                f"2-epoch schedule (config.yaml describes the new schedule only; summary.json lists "
                                f"the segments)"]
    run_dir = Path(resumed["run_dir"])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["notes"] == resumed["notes"]
    assert summary["schedule_segments"] == [{"from_epoch": 1, "from_batch": 1, "epochs": 2},
                                            {"from_epoch": 3, "from_batch": 1, "epochs": 4}]
    lrs = [r["lr"] for r in _epoch_records(run_dir) if r["kind"] == "epoch"]
    assert lrs[2:] == [r["lr"] for r in _epoch_records(Path(straight["run_dir"])) if r["kind"] == "epoch"][2:]
    # a third resume lists both earlier schedules; one at the same length adds no note
    again = resume(run_dir, ["trainer.epochs=5"])
    assert "epochs 1-2 followed the 2-epoch schedule, epochs 3-4 the 4-epoch one" in again["notes"][0]


def test_a_resume_at_the_same_length_keeps_the_schedule_without_a_note(tiny_cfg):
    handle = RunHandle()
    with pytest.raises(TrainingInterrupted):
        train(tiny_cfg(), callbacks=[InterruptAt(epoch=1, batch=2)], handle=handle)
    assert resume(handle.run_dir)["notes"] == []


def _files(run_dir: Path) -> dict:
    """Every file of a run with its bytes and modification time (but .lock, which names whoever
    took the lock last: a refused resume holds it while it looks)."""
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def test_resuming_from_a_checkpoint_behind_last_pt_is_refused_and_changes_nothing(tiny_cfg):
    """best.pt of a run that went on would train the later epochs again over last.pt, metrics.jsonl
    and summary.json: refused before anything is written, with the alternatives."""
    # train_loss watched as if larger were better: the best epoch stays 1 while the run trains 3
    run = train(tiny_cfg("trainer.epochs=3", "trainer.monitor=train_loss", "trainer.monitor_mode=max"))
    assert run["best"]["epoch"] == 1
    run_dir = Path(run["run_dir"])
    best, last = run_dir / "checkpoints" / "best.pt", run_dir / "checkpoints" / "last.pt"
    before = _files(run_dir)
    for overrides in ([], ["trainer.epochs=5"]):
        with pytest.raises(RunError) as info:
            resume(best, overrides)
        assert str(info.value) == (
            f"{best}: this checkpoint is at the end of epoch 1, but the run went on to the end of epoch 3 ({last}); "
            f"resuming from it would discard epochs 2-3 and train again over them (last.pt, metrics.jsonl and "
            f"summary.json rewritten). To continue the run from its last checkpoint: dlcli train --resume {run_dir} "
            f"(with trainer.epochs=N to train longer); to train from scratch in a new run: dlcli train "
            f"{run_dir / 'config.yaml'}")
    assert _files(run_dir) == before
    # without last.pt, the metrics log still says how far the run went
    last.unlink()
    with pytest.raises(RunError, match=rf"the run went on to the end of epoch 3 \({run_dir / 'metrics.jsonl'}\); "
                                       rf"resuming from it would discard epochs 2-3"):
        resume(best, ["trainer.epochs=5"])


def test_a_checkpoint_at_the_runs_end_is_not_a_rewind(tiny_cfg):
    """best.pt of the last epoch is where last.pt is: resumed like the run itself."""
    run = train(tiny_cfg("trainer.epochs=1"))
    best = Path(run["run_dir"]) / "checkpoints" / "best.pt"
    assert resume(best, ["trainer.epochs=2"])["epochs"] == 2


def test_a_finished_run_resumed_with_no_more_epochs_names_the_epochs_it_trained(tiny_cfg):
    run_dir = Path(train(tiny_cfg("trainer.epochs=3", "scheduler=null"))["run_dir"])
    before = _files(run_dir)
    with pytest.raises(RunError) as info:
        resume(run_dir)
    assert str(info.value) == (f"{run_dir}: the run already finished its 3 epochs; to train longer: dlcli train "
                               f"--resume {run_dir} trainer.epochs=N (N > 3)")
    for epochs in (2, 3):
        with pytest.raises(RunError) as info:
            resume(run_dir, [f"trainer.epochs={epochs}"])
        assert str(info.value) == (f"{run_dir}: the run already trained 3 epochs; trainer.epochs={epochs} is not "
                                   f"more than that; to train longer: dlcli train --resume {run_dir} "
                                   f"trainer.epochs=N (N > 3)")
    assert _files(run_dir) == before


def test_an_interrupted_run_is_not_cut_short_of_the_epoch_it_stopped_in(tiny_cfg):
    """Stopped inside epoch 2, trainer.epochs=1 would drop those batches and mark the run finished."""
    handle = RunHandle()
    with pytest.raises(TrainingInterrupted):
        train(tiny_cfg(), callbacks=[InterruptAt(epoch=1, batch=2)], handle=handle)
    run_dir = handle.run_dir
    before = _files(run_dir)
    with pytest.raises(RunError) as info:
        resume(run_dir, ["trainer.epochs=1"])
    assert str(info.value) == (f"{run_dir}: the run stopped inside epoch 2 (after batch 3), and trainer.epochs=1 "
                               f"would end it before that epoch, discarding the 3 batches of it already trained; "
                               f"to finish it: dlcli train --resume {run_dir} (to its 4 epochs) or dlcli train "
                               f"--resume {run_dir} trainer.epochs=N (N > 1)")
    assert _files(run_dir) == before
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
    assert resume(run_dir, ["trainer.epochs=2"])["epochs"] == 2  # the partial epoch, finished


def _hint(message: str, command: str) -> list[str]:
    """The words of the shell command `command ...` that `message` suggests, split as a shell would."""
    import shlex

    return shlex.split(message[message.index(command):].split(" (")[0].split(";")[0])


def test_the_hints_quote_a_run_path_with_spaces_for_the_shell(tiny_cfg):
    """README allows any run name; the hints must work pasted verbatim."""
    from dlcli.train.callbacks import Checkpointer

    run_dir = Path(train(tiny_cfg("name=my run", "trainer.epochs=1", "scheduler=null"))["run_dir"])
    assert " " in str(run_dir)
    with pytest.raises(RunError) as info:
        resume(run_dir)
    assert _hint(str(info.value), "dlcli train --resume") == ["dlcli", "train", "--resume", str(run_dir),
                                                               "trainer.epochs=N"]
    kept = Checkpointer(run_dir)._what_was_kept("best.pt", {"epoch": 1, "batch_in_epoch": 0})
    assert _hint(kept, "dlcli train --resume") == ["dlcli", "train", "--resume", str(run_dir)]


def test_each_resume_is_recorded_in_environment_json_beside_the_first_start(tiny_cfg, monkeypatch):
    first = train(tiny_cfg("scheduler=null", "trainer.epochs=1"))
    run_dir = Path(first["run_dir"])
    started = json.loads((run_dir / "environment.json").read_text())
    resume(run_dir, ["trainer.epochs=2"])
    monkeypatch.chdir(run_dir.parent)
    resume(Path(run_dir.name), ["trainer.epochs=3"])  # relative, as typed: recorded absolute
    record = json.loads((run_dir / "environment.json").read_text())
    assert {k: v for k, v in record.items() if k != "resumes"} == started  # the first start's record kept
    assert [(r["from_epoch"], r["from_batch"]) for r in record["resumes"]] == [(2, 1), (3, 1)]
    assert all(r["device"] == "cpu" and r["checkpoint"].endswith("last.pt") and "command" in r
               for r in record["resumes"])
    assert all(Path(r["checkpoint"]).is_absolute() for r in record["resumes"])


def test_a_resume_without_best_pt_labels_the_test_figures_with_the_weights_they_come_from(tiny_cfg):
    """best.pt lost before the resume: the best epoch's weights are gone, so the test figures are
    the last epoch's, and say so (they used to be labelled as the best epoch's)."""
    first = train(tiny_cfg("trainer.epochs=2", "trainer.monitor_mode=max", "scheduler=null"))  # worst val_loss: 1
    assert first["best"]["epoch"] == 1 and first["test_epoch"] == 1
    (Path(first["run_dir"]) / "checkpoints" / "best.pt").unlink()
    resumed = resume(first["run_dir"], ["trainer.epochs=3"])
    assert resumed["best"]["epoch"] == 1 and resumed["test_epoch"] == 3
    assert resumed["notes"] == ["the best epoch's weights (epoch 1) were not available: checkpoints/best.pt was "
                                "missing when the run resumed; the test figures are the last epoch's (epoch 3)"]
    straight = train(tiny_cfg("trainer.epochs=3", "trainer.monitor_mode=max", "scheduler=null"))
    assert straight["best"]["epoch"] == 1 and straight["test_epoch"] == 1 and straight["notes"] == []


TABULAR = """
name: tab
seed: 3
model:
  input_shape: [6]
  layers:
    - dense: {{units: 8, activation: relu}}
    - dense: 3
data: {{dataset: npz, path: {path}, batch_size: 16, val_split: 0.25}}
optimizer: {{type: adam, lr: 0.01}}
trainer: {{epochs: 3, device: cpu, progress: none, out_dir: {out}}}
"""


def _write_npz(path: Path, rows: int = 96, seed: int = 0, scale: float = 1.0) -> Path:
    import numpy as np

    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(rows, 6)) * scale).astype(np.float32)
    xt = rng.normal(size=(24, 6)).astype(np.float32)
    np.savez(path, x=x, y=x[:, :3].argmax(1), x_test=xt, y_test=xt[:, :3].argmax(1))
    return path


@pytest.fixture
def tab_cfg(tmp_path):
    """`tab_cfg(*overrides)`: a small dense model on tmp_path/d.npz (96 rows, 24 test rows)."""
    from dlcli.config import config_from_text

    data = _write_npz(tmp_path / "d.npz")
    return lambda *overrides: config_from_text(TABULAR.format(path=data, out=tmp_path / "runs"), "tab.yaml",
                                               list(overrides))


def _append_rows(path: Path, rows: int = 32) -> None:
    import numpy as np

    saved = dict(np.load(path))
    more = _write_npz(path.with_name("more.npz"), rows, seed=9, scale=2.0)
    extra = dict(np.load(more))
    np.savez(path, **{**saved, "x": np.concatenate([saved["x"], extra["x"]]),
                      "y": np.concatenate([saved["y"], extra["y"]])})


def test_a_resume_on_changed_data_is_refused_and_changes_nothing(tab_cfg):
    """Rows appended to the data file would give other training and validation splits and another
    normalization for the rest of the run: refused, naming what changed, before anything is written."""
    run_dir = Path(train(tab_cfg("trainer.epochs=2"))["run_dir"])
    data = Path(tab_cfg()["data"]["path"])
    _append_rows(data)
    before = _files(run_dir)
    with pytest.raises(DataError) as info:
        resume(run_dir, ["trainer.epochs=4"])  # nor is config.yaml rewritten with the new epochs
    message = str(info.value)
    assert message.startswith(f"npz {data}: the data changed since the checkpoint "
                              f"{run_dir / 'checkpoints' / 'last.pt'} was written: 96 training samples now, "
                              f"72 then; 32 validation samples now, 24 then; normalization mean[0] ")
    assert message.endswith(f"resuming would train the rest of the run on other data than its first part. HINT: "
                            f"restore the data the run trained on (data.path=PATH if it moved), or train a new "
                            f"run on this data: dlcli train {run_dir / 'config.yaml'}")
    assert _files(run_dir) == before


def test_a_resume_mid_epoch_on_changed_data_says_the_data_changed(tab_cfg):
    """Mid-epoch the saved per-batch sums do not fit the new epoch length: that used to surface as a
    tensor size RuntimeError (a "training state does not fit" CheckpointError), after config.yaml was
    rewritten. A checkpoint from before the sample counts were recorded is still told apart by it."""
    from dlcli.checkpoint import save_checkpoint

    handle = RunHandle()
    with pytest.raises(TrainingInterrupted):
        train(tab_cfg(), callbacks=[InterruptAt(epoch=1, batch=1)], handle=handle)
    run_dir, last = handle.run_dir, handle.run_dir / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    older = {k: v for k, v in state.items() if k not in ("path", "samples", "normalization")}
    save_checkpoint(last, older)  # as written before the counts were recorded, without a normalization
    _append_rows(Path(tab_cfg()["data"]["path"]))
    before = _files(run_dir)
    with pytest.raises(DataError, match=r"the data changed since the checkpoint .* was written: 6 batches an epoch "
                                        r"now, 5 then; resuming would train"):
        resume(run_dir, ["trainer.epochs=5"])
    assert _files(run_dir) == before


def test_a_checkpoint_without_the_data_record_still_resumes(tab_cfg):
    """Checkpoints written before the sample counts were recorded resume as before."""
    from dlcli.checkpoint import save_checkpoint

    run_dir = Path(train(tab_cfg("trainer.epochs=1"))["run_dir"])
    last = run_dir / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    assert state["samples"] == {"train": 72, "val": 24, "test": 24}
    save_checkpoint(last, {k: v for k, v in state.items() if k not in ("path", "samples")})
    assert resume(run_dir, ["trainer.epochs=2"])["epochs"] == 2


def test_a_run_whose_data_moved_resumes_with_data_path_and_only_on_the_same_data(tab_cfg, tmp_path):
    """The data paths come from the checkpoint: a missing one is named as such, with the override that
    points the resume to the data; resumed there, the run ends as an uninterrupted one; other data there
    are refused by the data check."""
    straight = Path(train(tab_cfg())["run_dir"])
    run_dir = Path(train(tab_cfg("trainer.epochs=2"))["run_dir"])
    data = Path(tab_cfg()["data"]["path"])
    moved = data.rename(tmp_path / "moved.npz")
    before = _files(run_dir)
    with pytest.raises(DataError) as info:
        resume(run_dir, ["trainer.epochs=3"])
    assert str(info.value) == (f"{data}: not found; data.path comes from the run's checkpoint "
                               f"{run_dir / 'checkpoints' / 'last.pt'}, where the data were when the run trained. "
                               f"HINT: if they moved, point the resume to them: dlcli train --resume {run_dir} "
                               f"trainer.epochs=3 data.path=NEW_PATH (the same data: the resume compares them with "
                               f"the checkpoint)")
    assert _files(run_dir) == before
    other = _write_npz(tmp_path / "other.npz", seed=5)
    with pytest.raises(DataError, match=r"the data changed since the checkpoint .* normalization mean\[0\] "):
        resume(run_dir, ["trainer.epochs=3", f"data.path={other}"])
    assert _files(run_dir) == before
    resumed = resume(run_dir, ["trainer.epochs=3", f"data.path={moved}"])
    _assert_same(_weights(straight), _weights(run_dir))
    assert resumed["test"] == json.loads((straight / "summary.json").read_text())["test"]
    from dlcli.config import load_config

    assert load_config(run_dir / "config.yaml")["data"]["path"] == str(moved)  # where the next resume finds it


def test_a_checkpoint_outside_a_run_directory_says_how_to_resume_it(tiny_cfg, tmp_path):
    """config.yaml marks a run directory, where --resume writes the run's logs (and removes the
    temporary files a killed write left): a lone checkpoint is refused with the way to proceed."""
    import shutil

    run_dir = Path(train(tiny_cfg("trainer.epochs=1", "scheduler=null"))["run_dir"])
    lone = tmp_path / "lone" / "last.pt"
    lone.parent.mkdir()
    shutil.copy(run_dir / "checkpoints" / "last.pt", lone)
    with pytest.raises(CheckpointError) as info:
        resume(lone, ["trainer.epochs=2"])
    assert str(info.value) == (f"{lone}: not inside a run directory (no {tmp_path / 'config.yaml'}); --resume "
                               f"continues a run in its directory and writes the run's logs there. HINT: to "
                               f"continue this run, put the checkpoint at DIR/checkpoints/last.pt beside the run's "
                               f"DIR/config.yaml, then: dlcli train --resume DIR; to train a new run: dlcli train "
                               f"CONFIG (evaluate, predict and export take the checkpoint where it is)")
    again = tmp_path / "again"
    (again / "checkpoints").mkdir(parents=True)
    shutil.copy(lone, again / "checkpoints" / "last.pt")
    shutil.copy(run_dir / "config.yaml", again / "config.yaml")
    assert resume(again, ["trainer.epochs=2"])["epochs"] == 2


def test_a_resume_under_another_thread_count_says_it_is_not_bit_identical(tab_cfg):
    """Another CPU thread count changes the order of float sums. The count the run last trained with
    (environment.json: its start or latest resume) is compared with this resume's; trainer.threads
    pins it to match."""
    import torch

    threads = torch.get_num_threads()
    run_dir = Path(train(tab_cfg("trainer.epochs=1"))["run_dir"])
    env = run_dir / "environment.json"
    record = json.loads(env.read_text())
    assert record["cpu_threads"] == threads
    record["cpu_threads"] = threads + 2  # as if started on a larger machine
    env.write_text(json.dumps(record))
    resumed = resume(run_dir, ["trainer.epochs=2"])
    note = (f"trained with {threads + 2} CPU threads, resuming with {threads}: results will not be bit-identical "
            f"to an uninterrupted run; trainer.threads={threads + 2} to match")
    assert resumed["notes"] == [note]
    assert json.loads((run_dir / "summary.json").read_text())["notes"] == [note]
    assert resume(run_dir, ["trainer.epochs=3"])["notes"] == []  # the last resume trained with these threads
    pinned = 1 if threads != 1 else 2
    record = json.loads(env.read_text())
    record["resumes"][-1]["cpu_threads"] = pinned
    env.write_text(json.dumps(record))
    try:
        assert resume(run_dir, ["trainer.epochs=4", f"trainer.threads={pinned}"])["notes"] == []
        assert json.loads(env.read_text())["resumes"][-1]["cpu_threads"] == pinned
    finally:
        torch.set_num_threads(threads)


def test_a_hand_edited_run_config_is_named_and_kept_when_a_resume_rewrites_it(tiny_cfg):
    """Edits to RUN/config.yaml do not change what a resume trains (the checkpoint's config): a
    note names the edited keys, and the user's text survives as config.edited.yaml."""
    first = train(tiny_cfg("trainer.epochs=1", "scheduler=null"))
    config = Path(first["run_dir"]) / "config.yaml"
    edited = config.read_text().replace("lr: 0.003", "lr: 0.5") + "# my notes\n"
    assert edited != config.read_text() + "# my notes\n"
    config.write_text(edited)
    resumed = resume(first["run_dir"], ["trainer.epochs=2"])
    assert resumed["notes"] == [f"{config} was edited since the run wrote it (optimizer.lr): a resume trains on the "
                                f"config in its checkpoint; --resume takes overrides of trainer.epochs, "
                                f"trainer.early_stopping, trainer.device, trainer.threads, trainer.progress, "
                                f"trainer.log_every_steps, trainer.evaluate_test, data.workers and the data's place "
                                f"(data.path, data.test_path, data.root) only; config.yaml now shows "
                                f"the run's config, and the edited text is in config.edited.yaml"]
    assert (config.parent / "config.edited.yaml").read_text() == edited
    assert "lr: 0.003" in config.read_text() and "# my notes" not in config.read_text()
    again = resume(first["run_dir"], ["trainer.epochs=3"])  # config.yaml is the run's own again
    assert again["notes"] == []


def test_each_hand_edit_is_kept_in_its_own_numbered_file(tiny_cfg):
    """Issue 15 #12: a second hand-edited resume overwrote config.edited.yaml, losing the first edit."""
    run_dir = Path(train(tiny_cfg("trainer.epochs=1", "scheduler=null"))["run_dir"])
    config, edits = run_dir / "config.yaml", []
    for epochs in (2, 3, 4):
        edits.append(config.read_text() + f"# edit before epoch {epochs}\n")
        config.write_text(edits[-1])
        notes = resume(run_dir, [f"trainer.epochs={epochs}"])["notes"]
        kept = ["config.edited.yaml", "config.edited.1.yaml", "config.edited.2.yaml"][len(edits) - 1]
        assert notes[0].endswith(f"the edited text is in {kept}")
    assert [(run_dir / name).read_text() for name in ("config.edited.yaml", "config.edited.1.yaml",
                                                      "config.edited.2.yaml")] == edits
    assert sorted(p.name for p in run_dir.glob("config.edited*")) == ["config.edited.1.yaml", "config.edited.2.yaml",
                                                                      "config.edited.yaml"]


@pytest.mark.parametrize("download", [True, False])
def test_a_missing_download_cache_is_no_reason_to_refuse_a_resume_that_may_download(tmp_path, download):
    from dlcli.config import config_from_text
    from dlcli.errors import DataError
    from dlcli.train.resume import _refuse_missing_data

    cfg = config_from_text(f"model: {{input_shape: [1, 28, 28], layers: [flatten, dense: 10]}}\n"
                           f"data: {{dataset: fashion_mnist, root: {tmp_path / 'gone'}, download: {download}}}\n")
    state = {"path": str(tmp_path / "run" / "checkpoints" / "last.pt")}
    if download:
        _refuse_missing_data(tmp_path / "run", state, cfg, [])  # the loader downloads it again
    else:
        with pytest.raises(DataError, match="data.root comes from the run's checkpoint"):
            _refuse_missing_data(tmp_path / "run", state, cfg, [])


def test_a_config_written_by_a_resume_that_died_early_is_no_hand_edit(tiny_cfg):
    """A resume rewrites config.yaml with its overrides, then dies before its first checkpoint:
    the text is dlcli's own (environment.json keeps its sha256), so the next resume makes no
    'edited' note and keeps no copy, and config.yaml shows what that resume trains to."""
    from dlcli.train import Callback

    class _DiesAtOnce(Callback):
        def on_train_batch_end(self, trainer, batch):
            raise RuntimeError("killed")

    first = train(tiny_cfg("trainer.epochs=1", "scheduler=null"))
    run_dir = Path(first["run_dir"])
    with pytest.raises(RuntimeError):
        resume(run_dir, ["trainer.epochs=3"], callbacks=[_DiesAtOnce()])
    assert "epochs: 3" in (run_dir / "config.yaml").read_text()
    again = resume(run_dir, ["trainer.epochs=2"])
    assert again["notes"] == [] and not (run_dir / "config.edited.yaml").exists()
    assert "epochs: 2" in (run_dir / "config.yaml").read_text()
