"""The summary `dlcli train` prints when a run ends."""

import io
import json

import pytest
from rich.console import Console

from dlcli.cli import train as train_cli


@pytest.mark.parametrize("epochs, said", [(1, "trained 1 epoch in 2.5s"), (3, "trained 3 epochs in 2.5s")])
def test_the_closing_line_counts_epochs(monkeypatch, epochs, said):
    out = io.StringIO()
    monkeypatch.setattr(train_cli, "console", Console(file=out, width=200))
    train_cli.report({"epochs": epochs, "seconds": 2.46, "run_dir": "runs/x/1",
                      "best": {"epoch": 1, "metric": "val_loss", "value": 0.25}, "test": {"accuracy": 0.5}, "test_epoch": 1})
    assert out.getvalue().splitlines() == ["best epoch 1: val_loss 0.2500",
                                           "test (epoch 1 weights): test_accuracy 0.5000",
                                           f"{said}; wrote runs/x/1"]


@pytest.mark.parametrize("first, epochs, said", [(1, 3, "trained 3 epochs"), (6, 10, "trained epochs 6 to 10"),
                                                 (4, 4, "trained epoch 4"),
                                                 (5, 4, "no epoch left to train (the run was at epoch 4)")])
def test_a_resumed_run_says_which_epochs_it_trained(first, epochs, said):
    assert train_cli._trained({"first_epoch": first, "epochs": epochs}) == said


def test_a_resumed_epoch_counts_the_samples_it_ran(tmp_path):
    """Its rate: the batches after the resume point over their time, not the whole epoch's samples."""
    from dlcli.train import RunHandle, TrainingInterrupted, resume, train
    from tests.samples import InterruptAt, tiny_mnist

    handle = RunHandle()
    with pytest.raises(TrainingInterrupted):
        train(tiny_mnist(tmp_path, "trainer.epochs=2", "data.val_split=0"), callbacks=[InterruptAt(1, 5)],
              handle=handle)
    summary = resume(handle.run_dir)
    record = summary["last"]
    assert summary["first_epoch"] == 2 and record["epoch"] == 2
    ran = 320 - 6 * 32  # 10 batches of 32; 6 ran before the interrupt
    assert record["samples_per_s"] == pytest.approx(ran / record["seconds"], rel=0.01)


def test_the_resume_hint_after_a_signal_is_quoted_for_the_shell(tmp_path, monkeypatch):
    """A run name with spaces (or shell characters) gives a hint that works pasted verbatim."""
    import shlex
    from types import SimpleNamespace

    from typer.testing import CliRunner

    import dlcli.train
    from dlcli.cli import app
    from tests.samples import TINY_MNIST

    run_dir = tmp_path / "my run [x]" / "20261127-063602"

    def interrupted(cfg, callbacks=(), handle=None, overrides=()):  # a run that SIGINT stopped in epoch 2
        handle.run_dir, handle.trainer = run_dir, SimpleNamespace(epoch=1, batch_in_epoch=3)
        raise dlcli.train.TrainingInterrupted("SIGINT")

    monkeypatch.setattr(dlcli.train, "train", interrupted)
    err = io.StringIO()
    monkeypatch.setattr(train_cli, "err_console", Console(file=err, width=80))
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_MNIST)
    result = CliRunner().invoke(app, ["train", str(config)])
    assert result.exit_code == 130, result.output
    lines = err.getvalue().splitlines()
    assert lines[0] == f"stopped by SIGINT: saved {run_dir / 'checkpoints' / 'last.pt'} (epoch 2, batch 3)."
    assert lines[1].startswith("resume with: ")
    assert shlex.split(lines[1].removeprefix("resume with: ")) == ["dlcli", "train", "--resume", str(run_dir)]


@pytest.mark.parametrize("trained, resumed, shown", [("plain", [], True), ("none", [], False),
                                                     ("plain", ["trainer.progress=none"], False),
                                                     ("none", ["trainer.progress=plain"], True)])
def test_a_resumed_run_shows_progress_as_its_config_says(cli, write_config, tmp_path, trained, resumed, shown):
    """The run's trainer.progress (from its checkpoint, or the override --resume allows)
    decides the epoch lines, not the display's default."""
    from tests.samples import TINY_MNIST

    config = write_config(TINY_MNIST)
    first = cli("train", config, "trainer.epochs=1", f"trainer.progress={trained}", f"trainer.out_dir={tmp_path}")
    assert first.exit_code == 0, first.output
    assert ("epoch 1/1" in first.stdout) is (trained == "plain")
    (run_dir,) = tmp_path.glob("tiny/*")
    again = cli("train", "--resume", run_dir, "trainer.epochs=2", *resumed)
    assert again.exit_code == 0, again.output
    assert ("epoch 2/2" in again.stdout) is shown, again.stdout


@pytest.mark.parametrize("error", ["run", "config"])
def test_an_error_after_the_run_directory_exists_names_it(cli, write_config, tmp_path, monkeypatch, error):
    """Whatever the DlcliError's constructor takes (a ConfigError takes its problems), the
    message gains the run directory and stays whole."""
    import dlcli.train
    from dlcli.errors import ConfigError, Problem, RunError
    from tests.samples import TINY_MNIST

    def failing(cfg, callbacks, handle, overrides):
        handle.run_dir = tmp_path / "runs" / "tiny" / "1"
        raise RunError("the disk is full") if error == "run" else ConfigError([Problem(("data",), "bad")], "x.yaml")

    monkeypatch.setattr(dlcli.train, "train", failing)
    result = cli("train", write_config(TINY_MNIST))
    assert result.exit_code == 2 and result.exception is not None and isinstance(result.exception, SystemExit)
    said = "the disk is full" if error == "run" else "x.yaml: 1 problem\n  - data: bad"
    assert result.stderr == f"error: {said}\nrun directory: {tmp_path / 'runs' / 'tiny' / '1'}\n"


@pytest.mark.parametrize("epoch, batch, said", [(1, 3, "epoch 2, batch 3"), (2, 0, "the end of epoch 2")])
def test_the_stop_message_says_where_the_checkpoint_is(tmp_path, monkeypatch, epoch, batch, said):
    """Stopped inside an epoch, or after one (a signal during its validation): where resume starts."""
    from types import SimpleNamespace

    import dlcli.train

    run_dir = tmp_path / "runs" / "tiny" / "1"

    def interrupted(cfg, callbacks=(), handle=None, overrides=()):
        handle.run_dir, handle.trainer = run_dir, SimpleNamespace(epoch=epoch, batch_in_epoch=batch)
        raise dlcli.train.TrainingInterrupted("SIGTERM")

    last = run_dir / "checkpoints" / "last.pt"
    assert _stopped_train(tmp_path, monkeypatch, interrupted).splitlines()[0] == \
        f"stopped by SIGTERM: saved {last} ({said})."


@pytest.mark.parametrize("saved, second", [(True, True), (False, True), (True, False)])
def test_a_hard_stop_says_what_was_kept(tmp_path, monkeypatch, saved, second):
    """A second signal (SecondSignal), or a Ctrl-C outside the training loop's handlers."""
    import dlcli.train

    run_dir = tmp_path / "runs" / "tiny" / "1"
    (run_dir / "checkpoints").mkdir(parents=True)
    if saved:
        (run_dir / "checkpoints" / "last.pt").write_bytes(b"")

    def killed(cfg, callbacks=(), handle=None, overrides=()):
        handle.run_dir = run_dir
        raise dlcli.train.SecondSignal("SIGTERM") if second else KeyboardInterrupt

    err = _stopped_train(tmp_path, monkeypatch, killed)
    kept = (f"the last checkpoint is {run_dir / 'checkpoints' / 'last.pt'}.\nresume from it with: dlcli train "
            f"--resume {run_dir}" if saved else "no checkpoint had been saved; start the run again")
    how = "by a second SIGTERM" if second else "by SIGINT"
    assert err == f"stopped at once {how}: {kept}\n"


def test_a_stop_request_inside_an_accumulation_window_is_acknowledged_once():
    from types import SimpleNamespace

    from dlcli.cli._progress import ProgressDisplay

    out = io.StringIO()
    display = ProgressDisplay(Console(file=out, width=200), "none")
    trainer = SimpleNamespace(stop_requested=None, accum=4, batches_per_epoch=10)
    display.on_train_batch_end(trainer, 0)
    trainer.stop_requested = "SIGINT"
    for batch in (1, 2):
        display.on_train_batch_end(trainer, batch)
    display.on_train_batch_end(trainer, 3)  # the window's end: the trainer stops and says so itself
    assert out.getvalue() == ("SIGINT: stopping at the end of the accumulation window (trainer.grad_accum), with a "
                              "checkpoint; again to stop at once\n")


def _stopped_train(tmp_path, monkeypatch, fake_train) -> str:
    """What `dlcli train` prints on stderr when the run (`fake_train`) stops it; exit status 130."""
    import dlcli.train
    from typer.testing import CliRunner

    from dlcli.cli import app
    from tests.samples import TINY_MNIST

    monkeypatch.setattr(dlcli.train, "train", fake_train)
    err = io.StringIO()
    monkeypatch.setattr(train_cli, "err_console", Console(file=err, width=300))
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_MNIST)
    assert CliRunner().invoke(app, ["train", str(config)]).exit_code == 130
    return err.getvalue()


# TINY_MNIST's parameters: conv 4*9+4, dense 676*16+16, batchnorm 2*16, dense 16*10+10
TINY_PARAMETERS = 40 + 10_832 + 32 + 170
# subset 320, val_split 0.25, test_subset 200
TINY_SAMPLES = "samples: 240 train, 80 val, 200 test"


@pytest.mark.parametrize("progress", ["plain", "bar", "auto", "none"])
def test_the_start_banner_comes_before_the_first_epoch(cli, write_config, tmp_path, progress):
    """Device, threads and who chose them, parameters, samples per split and the run directory;
    trainer.progress=none (no progress lines) shows only where the run writes."""
    from tests.samples import TINY_MNIST

    result = cli("train", write_config(TINY_MNIST), "trainer.epochs=1", f"trainer.progress={progress}",
                 f"trainer.out_dir={tmp_path}")
    assert result.exit_code == 0, result.output
    (run_dir,) = tmp_path.glob("tiny/*")
    threads = json.loads((run_dir / "environment.json").read_text())["cpu_threads"]
    banner = [f"run directory: {tmp_path / 'tiny' / run_dir.name}",
              f"device: cpu, {threads} CPU thread{'' if threads == 1 else 's'} (torch's default; "
              f"trainer.threads=N sets it)",
              f"parameters: {TINY_PARAMETERS:,} ({TINY_PARAMETERS:,} trainable)", TINY_SAMPLES]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("training tiny")
    if progress == "none":
        assert lines[1:2] == banner[:1] and not any(line.startswith(("device:", "samples:")) for line in lines)
    else:
        assert lines[1:5] == banner, result.stdout  # then the epoch (a bar leaves a blank line where it was)
        assert [line for line in lines[5:] if line][0].startswith("epoch 1/1"), result.stdout


def test_the_banner_says_when_trainer_threads_chose_the_threads(cli, write_config, tmp_path):
    from tests.samples import TINY_MNIST

    result = cli("train", write_config(TINY_MNIST), "trainer.epochs=1", "trainer.threads=1", "trainer.progress=plain",
                 f"trainer.out_dir={tmp_path}")
    assert result.exit_code == 0, result.output
    assert "device: cpu, 1 CPU thread (trainer.threads)\n" in result.stdout
    (run_dir,) = tmp_path.glob("tiny/*")
    environment = json.loads((run_dir / "environment.json").read_text())
    assert (environment["cpu_threads"], environment["cpu_threads_set_by"]) == (1, "trainer.threads")
    assert environment["overrides"] == ["trainer.epochs=1", "trainer.threads=1", "trainer.progress=plain",
                                        f"trainer.out_dir={tmp_path}"]


def test_a_resume_prints_the_banner_with_where_it_resumes(cli, tmp_path):
    from dlcli.train import RunHandle, TrainingInterrupted, train
    from tests.samples import InterruptAt, tiny_mnist

    handle = RunHandle()
    with pytest.raises(TrainingInterrupted):  # stopped after batch 6 of epoch 2 (8 batches of 32 in 240)
        train(tiny_mnist(tmp_path, "trainer.epochs=2", "trainer.progress=plain"), callbacks=[InterruptAt(1, 5)],
              handle=handle)
    result = cli("train", "--resume", handle.run_dir, "trainer.threads=1")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1:6] == [f"run directory: {handle.run_dir}", "device: cpu, 1 CPU thread (trainer.threads)",
                          f"parameters: {TINY_PARAMETERS:,} ({TINY_PARAMETERS:,} trainable)", TINY_SAMPLES,
                          "resuming: at epoch 2 of 2, batch 7 of 8"], result.stdout
    assert lines.index("resuming: at epoch 2 of 2, batch 7 of 8") < \
        next(i for i, line in enumerate(lines) if line.startswith("epoch 2/2"))
    resumed = json.loads((handle.run_dir / "environment.json").read_text())["resumes"][-1]
    assert (resumed["overrides"], resumed["cpu_threads_set_by"]) == (["trainer.threads=1"], "trainer.threads")


@pytest.mark.parametrize("gpu, resumed, said", [
    (None, {"epoch": 3, "batch": 0, "batches": 8, "epochs": 5}, "resuming: at epoch 3 of 5"),
    ("NVIDIA H100", {"epoch": 5, "batch": 0, "batches": 8, "epochs": 4},
     "resuming: after its last epoch (4), to finish the run")])
def test_the_banner_names_the_gpu_and_a_resume_after_the_last_epoch(gpu, resumed, said):
    """A resume of a run killed after its last checkpoint, before its summary, trains no epoch."""
    from dlcli.cli._progress import start_banner

    start = {"run_dir": "runs/x/1", "device": "cuda:0" if gpu else "cpu", "gpu": gpu, "threads": 8,
             "threads_set_by": "default", "parameters": 1234, "trainable": 1000,
             "samples": {"train": 10, "val": 0, "test": 5}, "resumed": resumed}
    assert start_banner(start) == [
        "run directory: runs/x/1",
        f"device: {'cuda:0 (NVIDIA H100)' if gpu else 'cpu'}, 8 CPU threads (torch's default; "
        f"trainer.threads=N sets it)",
        "parameters: 1,234 (1,000 trainable)", "samples: 10 train, 0 val, 5 test", said]
