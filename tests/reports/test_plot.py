"""dlcli plot: PNG learning curves and confusion heat maps (matplotlib is a dependency: nothing skips)."""

import shutil
import sys

import pytest
from PIL import Image

def _copy_without_evaluations(run_dir, tmp_path):
    """A copy of a session-wide run to change, without the eval_*.json other tests left in it."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    for pattern in ("eval_*", "per_class_*", "confusion_*"):  # a CSV without its eval_*.json is no report's
        for stale in run.glob(pattern):
            stale.unlink()
    return run


def _png_size(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
    with Image.open(path) as image:
        return image.size


def test_learning_curves_and_confusion_matrix(mnist_run, tmp_path, cli):
    run = tmp_path / "run"
    shutil.copytree(mnist_run, run)
    assert cli("evaluate", run).exit_code == 0
    result = cli("plot", run)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    written = sorted(p.name for p in run.glob("*.png"))
    assert written == ["confusion_test.png", "learning_curves.png"]
    for name in written:
        width, height = _png_size(run / name)
        assert width > 200 and height > 200


def test_without_an_evaluation_only_the_curves(regression_run, tmp_path, cli):
    run = _copy_without_evaluations(regression_run, tmp_path)
    (run / "eval_broken.json").write_text("{torn")
    result = cli("plot", run)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in run.glob("*.png")) == ["learning_curves.png"]
    assert "eval_broken.json: skipped" in " ".join(result.output.split())


def test_a_confusion_csv_alone_is_plotted(mnist_run, tmp_path):
    from dlcli.plots import plot_run

    run = tmp_path / "run"
    shutil.copytree(mnist_run, run)
    (run / "confusion_extra.csv").write_text("true \\ predicted,a,b\na,3,1\nb,0,4\n")
    files = {p.name for p in plot_run(run).files}
    assert "confusion_extra.png" in files


def test_missing_matplotlib_says_how_to_install_it_from_the_checkout(mnist_run, cli, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    result = cli("plot", mnist_run)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    message = " ".join(result.output.split())
    assert "a dependency of dlcli, which cannot be imported" in message
    assert "install dlcli's dependencies again: pip install -e . in the dlcli checkout (or pip install matplotlib)" \
        in message


def test_run_without_metrics_is_a_clear_error(tmp_path, cli):
    run = tmp_path / "run"  # started, stopped before its first epoch ended
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("name: run\n")
    result = cli("plot", run)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "no epoch records yet" in " ".join(result.output.split())
    (tmp_path / "empty").mkdir()  # not a run, nor a folder of runs
    result = cli("plot", tmp_path / "empty")
    assert result.exit_code == 2 and "empty: no runs in it" in " ".join(result.output.split())
    result = cli("plot", tmp_path / "nowhere")
    assert result.exit_code == 2 and "no such directory" in result.output


def test_a_confusion_plot_names_its_epoch_and_an_outdated_evaluation_is_noted(mnist_run, tmp_path, cli):
    import json

    from dlcli.plots import _confusions, plot_run

    run = _copy_without_evaluations(mnist_run, tmp_path)
    assert cli("evaluate", run).exit_code == 0
    summary = json.loads((run / "summary.json").read_text())
    epoch = summary["best"]["epoch"]
    notes = []
    assert f"test, epoch {epoch} weights: accuracy" in _confusions(run, notes)["test"][2] and notes == []
    summary["best"]["epoch"] = epoch + 1  # the run was resumed and found a better epoch
    (run / "summary.json").write_text(json.dumps(summary))
    notes = plot_run(run).notes
    assert notes == [f"{run / 'eval_test.json'}: evaluates best.pt as it was at epoch {epoch}; best.pt is now epoch "
                     f"{epoch + 1}: run dlcli evaluate {run} again to plot its confusion matrix"]


def test_without_a_summary_the_plot_marks_the_best_epoch_dlcli_runs_gives(tmp_path):
    """A run that wrote no summary.json (crashed, or still running) monitoring val_accuracy:
    the best epoch is the highest accuracy, not the lowest loss, for the plot and for
    `dlcli runs` alike; an epoch logged twice counts by its last record."""
    import json

    from dlcli.plots import best_epoch
    from dlcli.run_listing import list_runs
    from dlcli.runs import epoch_records

    run = tmp_path / "tiny" / "20260101-100000"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("name: tiny\ntrainer: {epochs: 4, monitor: val_accuracy, monitor_mode: auto}\n")
    figures = [(1, 0.9, 0.60), (2, 0.5, 0.99), (2, 0.5, 0.70), (3, 0.6, 0.80)]  # (epoch, val_loss, val_accuracy)
    (run / "metrics.jsonl").write_text("".join(
        json.dumps({"kind": "epoch", "epoch": e, "val_loss": loss, "val_accuracy": accuracy}) + "\n"
        for e, loss, accuracy in figures))
    records = epoch_records(run)
    assert [(r["epoch"], r["val_accuracy"]) for r in records] == [(1, 0.60), (2, 0.70), (3, 0.80)]
    assert best_epoch(run, records) == (3, "val_accuracy")
    (listed,) = list_runs(tmp_path)
    assert (listed["best_epoch"], listed["monitor"], listed["best"]) == (3, "val_accuracy", 0.80)


@pytest.mark.parametrize("name, text, note", [
    ("eval_count.json", '{"confusion": {"labels": ["a", "b"], "matrix": [[1, 100000000000000000000], [0, 1]]}}',
     r"eval_count\.json: skipped, its confusion matrix is malformed \(ValueError: expected sample counts from 0 to "
     r"9007199254740992, received 100000000000000000000\)"),
    ("eval_float.json", '{"confusion": {"labels": ["a", "b"], "matrix": [[1, 1e20], [0, 1]]}}',
     r"eval_float\.json: skipped, its confusion matrix is malformed"),
    ("eval_digits.json", '{"confusion": {"labels": ["a"], "matrix": [[' + "9" * 5000 + ']]}}',
     r"eval_digits\.json: skipped, not a readable evaluation \(ValueError\)"),
    ("eval_deep.json", "[" * 100_000 + "]" * 100_000, r"eval_deep\.json: skipped, not a readable evaluation"),
    ("confusion_big.csv", "true \\ predicted,a,b\na,3,100000000000000000000\nb,0,4\n",
     r"confusion_big\.csv: skipped, its confusion matrix is malformed"),
])
def test_a_damaged_evaluation_is_skipped_with_a_note(name, text, note, mnist_run, tmp_path, cli):
    """Issue 15 #9: a count of 1e20 in eval_*.json raised OverflowError in the heat map."""
    import re

    run = _copy_without_evaluations(mnist_run, tmp_path)
    (run / name).write_text(text)
    result = cli("plot", run)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert re.search(note, " ".join(result.output.split())), result.output
    assert sorted(p.name for p in run.glob("*.png")) == ["learning_curves.png"]


def test_class_labels_and_records_that_would_break_matplotlib_are_drawn(mnist_run, tmp_path, cli):
    """Class names like 'a_$1_$' are shown as written (they were parsed as mathtext and failed);
    a record no float holds and a config.yaml alias bomb are left out of the curves."""
    run = _copy_without_evaluations(mnist_run, tmp_path)
    (run / "confusion_test.csv").write_text("true \\ predicted,a_$1_$,$\\frac{\nb,3,1\nc,0,4\n".replace(
        "\nb,", "\na_$1_$,").replace("\nc,", "\n$\\frac{,"))
    with open(run / "metrics.jsonl", "a") as handle:
        handle.write('{"kind": "epoch", "epoch": 2, "train_loss": ' + "9" * 400 + "}\n")
        handle.write('{"kind": "epoch", "epoch": ' + "9" * 400 + ', "train_loss": 1.0}\n')
    (run / "config.yaml").write_text("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi")))
    result = cli("plot", run)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in run.glob("*.png")) == ["confusion_test.png", "learning_curves.png"]


def test_an_evaluation_naming_no_possible_checkpoint_is_still_plotted(mnist_run, tmp_path, cli):
    """Found by the run-record fuzzer: a checkpoint path with a lone surrogate ('\\ud800') made the
    stale-evaluation note raise UnicodeEncodeError."""
    run = _copy_without_evaluations(mnist_run, tmp_path)
    (run / "eval_test.json").write_text('{"checkpoint": "\\ud800", "epoch": 1, "confusion": '
                                        '{"labels": ["a", "b"], "matrix": [[1, 0], [0, 1]]}}')
    result = cli("plot", run)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in run.glob("*.png")) == ["confusion_test.png", "learning_curves.png"]
