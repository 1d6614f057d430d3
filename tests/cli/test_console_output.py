"""What the CLI writes when stdout is not a terminal: a pipe whose reader goes away, a
config printed for redirection, tables read by grep, progress lines in a CI log."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

from rich.console import Console

from tests.hang_guard import HANG_S
from tests.samples import TINY_MNIST, tiny_mnist


def test_training_carries_on_when_the_reader_of_stdout_goes_away(repo_root, write_config, tmp_path):
    """`dlcli train ... | head -1`: the run finishes every epoch and exits 0, its output gone to
    os.devnull; it used to die at the next epoch line with SystemExit(1) and a "crashed" summary."""
    config = write_config(TINY_MNIST)
    out_dir = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "dlcli", "train", str(config), "trainer.epochs=3",
                             "trainer.progress=plain", f"trainer.out_dir={out_dir}"],
                            cwd=repo_root, env={**os.environ, "PYTHONPATH": str(repo_root)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    proc.stdout.close()  # as `head -1` does; the epoch lines come after the data is loaded
    _, stderr = proc.communicate(timeout=HANG_S)
    assert first.startswith("training tiny")
    assert proc.returncode == 0, stderr
    assert stderr == ""  # no "Exception ignored ... BrokenPipeError" at exit either
    summaries = list(out_dir.glob("tiny/*/summary.json"))
    assert len(summaries) == 1
    summary = json.loads(summaries[0].read_text())
    assert (summary["status"], summary["epochs"]) == ("finished", 3)
    assert (summaries[0].parent / "checkpoints" / "last.pt").is_file()


def test_print_config_writes_only_the_yaml_to_stdout(cli, configs_dir, tmp_path):
    """`validate --print-config > resolved.yaml` is a config: the summary goes to stderr."""
    from dlcli.config import load_config

    path = configs_dir / "mnist_cnn.yaml"
    result = cli("validate", path, "--print-config", "trainer.epochs=1")
    assert result.exit_code == 0, result.output
    assert "Total params: 54,410" in result.stderr and f"{path}: valid" in result.stderr
    assert "Total params" not in result.stdout and "valid" not in result.stdout.split("\n")[-2]
    printed = tmp_path / "printed.yaml"
    printed.write_text(result.stdout, encoding="utf-8")
    assert load_config(printed, []) == load_config(path, ["trainer.epochs=1"])
    again = cli("validate", printed)
    assert again.exit_code == 0, again.output
    assert "Total params: 54,410" in again.stdout


def _fake_run(root, name: str, run_id: str) -> None:
    run = root / name / run_id
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(f"name: {name}\ntrainer: {{epochs: 3}}\n", encoding="utf-8")
    (run / "summary.json").write_text(json.dumps({"name": name, "status": "finished", "epochs": 3, "best": {
        "metric": "val_accuracy", "value": 0.98765, "epoch": 2}}), encoding="utf-8")


def test_piped_runs_table_keeps_each_run_id_on_one_line(run_python, tmp_path):
    """Rich wraps at 80 columns when stdout is not a terminal; ids and names must not be cut."""
    names = {"20260101-100000": "a_rather_long_experiment_name_with_several_parts",
             "20260102-110000": "another_rather_long_experiment_name_too"}
    for run_id, name in names.items():
        _fake_run(tmp_path / "runs", name, run_id)
    result = run_python("-m", "dlcli", "runs", tmp_path / "runs")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if "finished" in line]
    assert len(rows) == 2, result.stdout
    for row, (run_id, name) in zip(rows, sorted(names.items(), reverse=True)):
        assert run_id in row and name in row and "val_accuracy 0.9877 @2" in row


def _plain_training(tmp_path, monkeypatch, every_s: float | None) -> tuple[list[str], int]:
    """The lines a plain-mode display prints over a 2-epoch tiny run, and how many times the
    trainer's running metrics were read (each read is a host sync on GPU) besides the one
    that ends each epoch."""
    from dlcli.cli._progress import ProgressDisplay
    from dlcli.train import train
    from dlcli.train.trainer import Trainer

    if every_s is not None:
        monkeypatch.setattr(ProgressDisplay, "plain_every_s", every_s)
    asked = []
    real = Trainer.running_metrics
    monkeypatch.setattr(Trainer, "running_metrics", lambda self: asked.append(1) or real(self))
    out = io.StringIO()
    display = ProgressDisplay(Console(file=out, width=200), "plain")
    train(tiny_mnist(tmp_path, "trainer.epochs=2"), callbacks=[display])
    lines = out.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines[:4]] == ["run directory", "device", "parameters", "samples"]
    return lines[4:], len(asked) - 2  # after the start banner


def test_plain_progress_prints_a_line_every_period_within_an_epoch(tmp_path, monkeypatch):
    lines, asked = _plain_training(tmp_path, monkeypatch, every_s=0.0)
    batch_lines = [line for line in lines if "  batch " in line]
    # 240 training samples in batches of 32: 8 batches, a line after each but the last (the epoch line follows)
    assert len(batch_lines) == 2 * 7 and asked == 2 * 7
    assert batch_lines[0].startswith("epoch 1/2  batch 1/8  train_loss ")
    assert batch_lines[-1].startswith("epoch 2/2  batch 7/8  train_loss ")
    assert "train_accuracy " in batch_lines[0] and batch_lines[0].endswith(" samples/s")
    assert [line.split("  ")[0] for line in lines if "  batch " not in line] == ["epoch 1/2", "epoch 2/2"]


def test_plain_progress_asks_the_trainer_nothing_between_lines(tmp_path, monkeypatch):
    """With the default period a tiny run prints only its epoch lines, and no step pays a host sync."""
    lines, asked = _plain_training(tmp_path, monkeypatch, every_s=None)
    assert [line.split("  ")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert asked == 0


def test_visible_shows_control_characters_and_keeps_lines():
    """Issue 15 #11: text read from disk (class names, CSV labels, run folders) is printed with
    ESC sequences, C1 controls and bidi overrides written out, so none acts on the terminal."""
    from dlcli.cli._app import escape, visible

    assert visible("c\x1b[31mat\x07 \x9b2J \u202egnp\ttab\nline \udcff") == \
        "c\\x1b[31mat\\x07 \\x9b2J \\u202egnp\ttab\nline \\udcff"
    assert escape("[red]\x1b]0;title\x07") == "\\[red]\\x1b]0;title\\x07"


def test_train_and_runs_print_a_path_with_an_escape_sequence_visibly(cli, write_config, tmp_path):
    """A folder name (here trainer.out_dir, or a run folder received from someone) is printed by
    train and runs with its ESC shown as \\x1b: never raw."""
    out_dir = tmp_path / "runs\x1b[2J"
    config = write_config(TINY_MNIST)
    result = cli("train", config, "trainer.epochs=1", "trainer.progress=plain", f"trainer.out_dir={out_dir}")
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "runs\\x1b[2J" in result.output
    result = cli("runs", out_dir)
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "runs\\x1b[2J" in result.output
