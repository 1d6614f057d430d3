"""dlcli evaluate: training's test figures reproduced exactly, the splits, other
data, the per-class and regression figures, the files, and every error."""

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dlcli.checkpoint import load_checkpoint
from dlcli.data import MNIST_DIR
from dlcli.data.sources.mnist import load_mnist_idx
from dlcli.errors import DataError, DlcliError
from dlcli.reports import classification_report, evaluate_checkpoint, regression_report


def test_evaluate_reproduces_the_test_figures_of_training(mnist_run, summary_of, cli):
    """Acceptance: the figures equal summary.json's test figures to the last digit (CPU)."""
    test = summary_of(mnist_run)["test"]
    assert set(test) == {"loss", "accuracy"}
    result = cli("evaluate", mnist_run / "checkpoints" / "best.pt")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    report = json.loads((mnist_run / "eval_test.json").read_text())
    assert report["loss"] == test["loss"] and report["accuracy"] == test["accuracy"]
    assert report["split"] == "test" and report["samples"] == 200
    assert report["epoch"] == summary_of(mnist_run)["test_epoch"]
    assert f"{test['accuracy']:.4f}" in result.output and f"{test['loss']:.4f}" in result.output
    for heading in ("per class", "precision", "recall", "F1", "support", "confusion matrix", "top3_accuracy"):
        assert heading in result.output


def test_a_run_directory_means_its_best_checkpoint(mnist_run):
    evaluation = evaluate_checkpoint(mnist_run)
    assert evaluation.report["checkpoint"] == str(mnist_run / "checkpoints" / "best.pt")


def test_the_report_names_its_checkpoint_by_an_absolute_path(mnist_run, monkeypatch):
    """Given as typed (relative), it would point nowhere once the report is read from elsewhere."""
    monkeypatch.chdir(mnist_run.parent)
    evaluation = evaluate_checkpoint(Path(mnist_run.name) / "checkpoints" / "best.pt")
    assert evaluation.report["checkpoint"] == str(mnist_run / "checkpoints" / "best.pt")


def test_val_split_is_the_seeded_holdout_of_training(mnist_run):
    """best.pt was saved right after its epoch's validation: the same figures come back."""
    state = load_checkpoint(mnist_run / "checkpoints" / "best.pt")
    record = next(r for r in state["history"] if r["epoch"] == state["epoch"])
    report = evaluate_checkpoint(mnist_run, split="val").report
    assert report["samples"] == 80  # 25% of the 320-sample subset
    assert report["loss"] == record["val_loss"] and report["accuracy"] == record["val_accuracy"]
    assert evaluate_checkpoint(mnist_run, split="train").report["samples"] == 240


def test_per_class_figures_and_confusion_matrix_agree(mnist_run):
    evaluation = evaluate_checkpoint(mnist_run)
    report = evaluation.report
    labels = load_mnist_idx(MNIST_DIR).test.y[:200]
    matrix = torch.tensor(report["confusion"]["matrix"])
    assert matrix.shape == (10, 10) and int(matrix.sum()) == 200
    assert matrix.sum(1).tolist() == torch.bincount(labels, minlength=10).tolist()
    assert [r["support"] for r in report["per_class"]] == matrix.sum(1).tolist()
    assert [r["name"] for r in report["per_class"]] == [str(d) for d in range(10)]
    assert int(matrix.diagonal().sum()) / 200 == report["accuracy"]
    assert torch.equal(evaluation.targets, labels)
    # by hand: a sample counts when fewer than k classes score above its true class
    above = (evaluation.outputs > evaluation.outputs.gather(1, labels.unsqueeze(1))).sum(1)  # (200,)
    for k in (3, 5):
        assert report[f"top{k}_accuracy"] == pytest.approx(int((above < k).sum()) / 200, abs=1e-12)
    assert report["top5_accuracy"] >= report["top3_accuracy"] >= report["accuracy"]
    assert report["accuracy"] == pytest.approx(int((above == 0).sum()) / 200, abs=1e-12)
    loss = torch.nn.functional.cross_entropy(evaluation.outputs.double(), labels)  # the mean over all 200 at once
    assert report["loss"] == pytest.approx(float(loss), rel=1e-5)


def test_report_files_are_written_to_the_run_directory_or_out(mnist_run, tmp_path, cli):
    result = cli("evaluate", mnist_run, "--split", "val", "--out", tmp_path / "reports")
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "reports").iterdir())
    assert written == ["confusion_val.csv", "eval_val.json", "per_class_val.csv"]
    rows = list(csv.reader((tmp_path / "reports" / "per_class_val.csv").open()))
    assert rows[0] == ["class", "name", "precision", "recall", "f1", "support"] and len(rows) == 11
    confusion = list(csv.reader((tmp_path / "reports" / "confusion_val.csv").open()))
    assert len(confusion) == 11 and all(len(row) == 11 for row in confusion)
    assert sum(int(v) for row in confusion[1:] for v in row[1:]) == 80


def _files(folder: Path) -> dict:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_out_replaces_only_earlier_reports_of_evaluate(mnist_run, tmp_path, cli):
    """A file of the user's is kept (exit 2, nothing written) unless --force; evaluate's own
    earlier reports are replaced, so the same command runs again."""
    reports = tmp_path / "reports"
    reports.mkdir()
    mine = reports / "eval_test.json"
    mine.write_text('{"note": "my hand-written results"}')
    result = cli("evaluate", mnist_run, "--out", reports)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert (f"--out {reports}: its report eval_test.json exists and is not an earlier report of dlcli evaluate; "
            f"expected a new file name, or --force to replace it") in " ".join(result.output.split())
    assert [p.name for p in reports.iterdir()] == ["eval_test.json"] and "hand-written" in mine.read_text()
    (reports / "per_class_test.csv").write_text("my,own,table\n")
    mine.unlink()
    assert cli("evaluate", mnist_run, "--out", reports).exit_code == 2
    assert not mine.exists() and (reports / "per_class_test.csv").read_text() == "my,own,table\n"
    for args in (["--force"], []):  # forced over the user's table, then over its own reports
        result = cli("evaluate", mnist_run, "--out", reports, *args)
        assert result.exit_code == 0, result.output
        assert sorted(p.name for p in reports.iterdir()) == ["confusion_test.csv", "eval_test.json",
                                                             "per_class_test.csv"]
        assert json.loads(mine.read_text())["split"] == "test"


def test_out_never_writes_into_checkpoints_or_another_run(mnist_run, tmp_path, cli):
    other = shutil.copytree(mnist_run, tmp_path / "other" / "20260101-120000")
    before = _files(other)
    for out, message in ((other / "checkpoints", "is inside the run's checkpoints folder"),
                         (other / "checkpoints" / "sub", "is inside the run's checkpoints folder"),
                         (other, "is another run's directory: its eval_*.json are that run's reports")):
        for args in ([], ["--json"]):
            result = cli("evaluate", mnist_run, "--out", out, "--force", *args)
            assert result.exit_code == 2 and "Traceback" not in result.output
            assert f"--out {out} {message}" in " ".join(result.output.split())
            assert "per class" not in result.output  # refused before the evaluation
    assert _files(other) == before and not (other / "checkpoints" / "sub").exists()
    for args in ([], [], ["--out", other]):  # its own run, again and again, by default or named
        result = cli("evaluate", other / "checkpoints" / "best.pt", *args)
        assert result.exit_code == 0, result.output
        assert json.loads((other / "eval_test.json").read_text())["checkpoint"] == str(other / "checkpoints" /
                                                                                         "best.pt")


def test_a_checkpoint_beside_the_users_own_config_is_evaluated_into_its_folder(mnist_run, tmp_path, cli):
    """A project folder with the user's config.yaml and a copied model.pt is no run: the reports go
    there without --out. A copy in another run's directory is refused before the evaluation, in
    words that do not speak of an --out the user never gave."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(mnist_run / "config.yaml", project / "config.yaml")
    shutil.copy(mnist_run / "checkpoints" / "best.pt", project / "model.pt")
    for args in ([], [], ["--out", project]):
        result = cli("evaluate", project / "model.pt", *args)
        assert result.exit_code == 0, result.output
        assert json.loads((project / "eval_test.json").read_text())["checkpoint"] == str(project / "model.pt")
    assert len(list(project.glob("eval_*.json"))) == 1

    other = shutil.copytree(mnist_run, tmp_path / "other" / "20260101-120000")
    shutil.copy(mnist_run / "checkpoints" / "best.pt", other / "model.pt")
    before = _files(other)
    for args in ([], ["--force"]):
        result = cli("evaluate", other / "model.pt", *args)
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert (f"{other / 'model.pt'}: without --out its reports go to its folder {other}, which is another run's "
                f"directory") in " ".join(result.output.split())
        assert "HINT: give --out" in " ".join(result.output.split())
        assert "per class" not in result.output  # refused before the evaluation
    assert _files(other) == before
    (other / "checkpoints" / "sub").mkdir()
    shutil.copy(mnist_run / "checkpoints" / "best.pt", other / "checkpoints" / "sub" / "model.pt")
    result = cli("evaluate", other / "checkpoints" / "sub" / "model.pt")
    assert result.exit_code == 2 and "per class" not in result.output
    assert (f"without --out its reports go to its folder {other / 'checkpoints' / 'sub'}, which is inside the run's "
            f"checkpoints folder {other / 'checkpoints'}") in " ".join(result.output.split())


def test_classification_report_by_hand():
    predicted = torch.tensor([0, 0, 1, 1, 1, 2])
    targets = torch.tensor([0, 1, 1, 1, 2, 2])
    report = classification_report(predicted, targets, 4, ["a", "b", "c", "d"])
    rows = {r["name"]: r for r in report["per_class"]}
    assert report["accuracy"] == 4 / 6
    assert (rows["a"]["precision"], rows["a"]["recall"], rows["a"]["support"]) == (0.5, 1.0, 1)
    assert (rows["b"]["precision"], rows["b"]["recall"]) == (2 / 3, 2 / 3)
    assert rows["b"]["f1"] == pytest.approx(2 / 3)
    assert (rows["c"]["precision"], rows["c"]["recall"], rows["c"]["f1"]) == (1.0, 0.5, pytest.approx(2 / 3))
    assert rows["d"] == {"class": 3, "name": "d", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report["macro_avg"]["recall"] == pytest.approx((1 + 2 / 3 + 0.5) / 3)  # d appears nowhere
    assert report["weighted_avg"]["recall"] == pytest.approx(4 / 6)
    assert report["confusion"]["matrix"][1] == [1, 2, 0, 0]


def test_regression_report_by_hand():
    targets = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    assert regression_report(targets.clone(), targets) == {"mse": 0.0, "mae": 0.0, "r2": 1.0}
    mean = regression_report(torch.full((4, 1), 2.5), targets)
    assert mean["r2"] == 0.0 and mean["mae"] == 1.0 and mean["mse"] == 1.25
    off = regression_report(targets + torch.tensor([[1.0], [-1.0], [1.0], [-1.0]]), targets)
    assert off["r2"] == pytest.approx(1 - 4 / 5)
    two = regression_report(torch.zeros(4, 2), torch.cat([targets, torch.ones(4, 1)], 1))
    assert len(two["r2_per_output"]) == 2 and two["r2_per_output"][1] == 0.0  # constant targets


def test_regression_evaluation_reports_mse_mae_r2(regression_run, summary_of, cli):
    test = summary_of(regression_run)["test"]
    result = cli("evaluate", regression_run)
    assert result.exit_code == 0, result.output
    report = json.loads((regression_run / "eval_test.json").read_text())
    assert report["loss"] == test["loss"] and report["mae"] == test["mae"]
    assert report["mse"] == pytest.approx(test["loss"], rel=1e-5)
    assert -1 < report["r2"] <= 1 and report["task"] == "regression"
    for name in ("mse", "mae", "r2"):
        assert name in result.output
    assert "per class" not in result.output and not (regression_run / "confusion_test.csv").exists()


def test_other_data_of_the_same_shape(mnist_run, tmp_path):
    """The first 200 test images as float pixels in an .npz: the same figures as the test split."""
    test = load_mnist_idx(MNIST_DIR).test
    np.savez(tmp_path / "digits.npz", x=test.x[:200].numpy().astype(np.float32), y=test.y[:200].numpy())
    own = evaluate_checkpoint(mnist_run).report
    other = evaluate_checkpoint(mnist_run, data=tmp_path / "digits.npz")
    assert other.report["split"] == "data-digits" and other.report["samples"] == 200
    assert other.report["loss"] == own["loss"] and other.report["accuracy"] == own["accuracy"]


def test_other_data_uses_its_test_part_unless_told(regression_run, tmp_path):
    rng = np.random.default_rng(5)
    np.savez(tmp_path / "more.npz", x=rng.normal(size=(10, 4)).astype(np.float32), y=rng.normal(size=10),
             x_test=rng.normal(size=(6, 4)).astype(np.float32), y_test=rng.normal(size=6))
    assert evaluate_checkpoint(regression_run, data=tmp_path / "more.npz").report["samples"] == 6
    train = evaluate_checkpoint(regression_run, data=tmp_path / "more.npz", split="train").report
    assert (train["samples"], train["split"]) == (10, "data-more")


def test_image_folder_classes_are_matched_by_name(images_run, tmp_path, write_images):
    both = write_images(tmp_path / "two", classes=("dog", "fox"), per_class=3, seed=9)
    report = evaluate_checkpoint(images_run, data=both).report
    support = {r["name"]: r["support"] for r in report["per_class"]}
    assert support == {"cat": 0, "dog": 3, "fox": 3}  # folder "dog" is class 1 of the model, not 0
    unknown = write_images(tmp_path / "emu", classes=("cat", "emu"), per_class=1)
    with pytest.raises(DataError, match="class 'emu' is not one of the model's 3 classes \\(cat, dog, fox\\)"):
        evaluate_checkpoint(images_run, data=unknown)


def test_sequence_evaluation_of_a_csv(sequence_run):
    report = evaluate_checkpoint(sequence_run, split="train").report
    assert report["samples"] == 26  # 30 rows, windows of 4, each predicting the next row
    with pytest.raises(DataError, match=r"has no test split.*; choose --split train, or --data PATH$"):
        evaluate_checkpoint(sequence_run)  # no validation split either: not offered


def test_val_split_of_csv_windows_is_the_last_windows_as_in_training(sequence_val_run):
    """26 windows: the last 6 validate; the 4 before them, which share rows with both, are dropped."""
    state = load_checkpoint(sequence_val_run / "checkpoints" / "best.pt")
    record = next(r for r in state["history"] if r["epoch"] == state["epoch"])
    report = evaluate_checkpoint(sequence_val_run, split="val").report
    assert report["samples"] == 6 and report["loss"] == record["val_loss"]
    assert evaluate_checkpoint(sequence_val_run, split="train").report["samples"] == 16


CSV_FIGURES = ("samples", "loss", "mse", "mae", "r2")


def _figures(evaluation) -> tuple:
    return tuple(evaluation.report[k] for k in CSV_FIGURES), evaluation.outputs


def test_csv_columns_are_matched_by_name(table_run, reorder_csv, tmp_path):
    """Acceptance (audit #1): the same data with its columns in another order, and an extra
    column, gives exactly the same figures."""
    path = load_checkpoint(table_run)["config"]["data"]["path"]
    figures, outputs = _figures(evaluate_checkpoint(table_run, data=path))
    assert figures[-1] > 0.9  # r2: the model learned, so reading the wrong columns would show
    reordered = reorder_csv(path, tmp_path / "reordered.csv", ["d", "y", "c", "b", "a"], extra={"note": "seen"})
    figures_reordered, outputs_reordered = _figures(evaluate_checkpoint(table_run, data=reordered))
    assert figures_reordered == figures and torch.equal(outputs_reordered, outputs)


def test_training_csv_reordered_since_training_is_read_by_name(table_run, reorder_csv, edited_checkpoint, tmp_path):
    """evaluate --split re-reads the training file from the config: by the recorded names too."""
    path = load_checkpoint(table_run)["config"]["data"]["path"]
    reordered = reorder_csv(path, tmp_path / "reordered.csv", ["y", "d", "c", "b", "a"])
    moved = edited_checkpoint(table_run, tmp_path / "moved.pt", data={"path": str(reordered)})
    assert _figures(evaluate_checkpoint(moved, split="train"))[0] == \
        _figures(evaluate_checkpoint(table_run, split="train"))[0]


def test_csv_window_columns_are_matched_by_name(sequence_run, reorder_csv, tmp_path):
    path = load_checkpoint(sequence_run)["config"]["data"]["path"]
    figures, outputs = _figures(evaluate_checkpoint(sequence_run, data=path))
    reordered = reorder_csv(path, tmp_path / "reordered.csv", ["b", "target", "a"], extra={"note": "seen"})
    figures_reordered, outputs_reordered = _figures(evaluate_checkpoint(sequence_run, data=reordered))
    assert figures_reordered == figures and torch.equal(outputs_reordered, outputs)


def test_csv_data_problems_are_named(table_run, tmp_path, cli):
    import re

    missing = tmp_path / "missing.csv"
    missing.write_text("b,a,y\n1,2,3\n")
    with pytest.raises(DataError, match=r"missing\.csv: feature columns 'c', 'd' not found;.* the file has columns: "
                                        r"b, a, y"):
        evaluate_checkpoint(table_run, data=missing)
    headerless = tmp_path / "noheader.csv"
    headerless.write_text("0.1,0.2,0.3,0.4,1.5\n0.5,0.6,0.7,0.8,2.5\n")
    result = cli("evaluate", table_run, "--data", headerless)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert re.search(r"noheader\.csv:1: expected a header row of column names, received a row of numbers",
                     " ".join(result.output.split())), result.output


def test_checkpoints_without_recorded_names_still_evaluate(table_run, edited_checkpoint, tmp_path):
    path = load_checkpoint(table_run)["config"]["data"]["path"]
    old = edited_checkpoint(table_run, tmp_path / "old.pt", drop=("feature_names",))
    assert _figures(evaluate_checkpoint(old, data=path))[0] == _figures(evaluate_checkpoint(table_run, data=path))[0]
    assert _figures(evaluate_checkpoint(old, split="train"))[0] == \
        _figures(evaluate_checkpoint(table_run, split="train"))[0]


def test_bad_split_names_and_missing_splits(regression_run, mnist_run, tmp_path):
    with pytest.raises(DataError, match="the run had no validation split.*choose --split test or --split train, "
                                        "or --data PATH"):
        evaluate_checkpoint(regression_run, split="val")
    with pytest.raises(DlcliError, match="unknown split 'dev'; expected one of: train, val, test"):
        evaluate_checkpoint(mnist_run, split="dev")
    np.savez(tmp_path / "plain.npz", x=np.zeros((3, 4), np.float32), y=np.zeros(3, np.float32))
    with pytest.raises(DataError, match="has no test part"):
        evaluate_checkpoint(regression_run, data=tmp_path / "plain.npz", split="test")


# ---------------------------------------------------------------------------
# Errors through the command line: a message, exit status 2, no traceback
# ---------------------------------------------------------------------------

def _checkpoint_errors(mnist_run, tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("these are not weights\n")
    cut = tmp_path / "cut.pt"
    cut.write_bytes((mnist_run / "checkpoints" / "best.pt").read_bytes()[:2000])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(bytes(range(256)) * 8)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    return {"missing": (tmp_path / "nope.pt", "no such file or directory"),
            "not a checkpoint": (text, "not a readable checkpoint"),
            # issue 15 #15: these three said "truncated or not a torch file?"; now which one
            "truncated": (cut, "not a readable checkpoint \\(truncated: a zip archive whose end is missing "
                               "\\(2,000 bytes; an interrupted copy or download\\?\\)\\)"),
            "not a zip": (garbage, "not a readable checkpoint \\(not a torch file: torch files are zip archives, "
                                   "and this one does not start like one\\)"),
            "empty": (empty, "not a readable checkpoint \\(the file is empty\\)")}


@pytest.mark.parametrize("case", ["missing", "not a checkpoint", "truncated", "not a zip", "empty"])
@pytest.mark.parametrize("command", ["evaluate", "predict", "export"])
def test_broken_checkpoints_are_clear_errors(case, command, mnist_run, tmp_path, cli):
    import re

    path, message = _checkpoint_errors(mnist_run, tmp_path)[case]
    args = [command, path] + ([tmp_path] if command == "predict" else [])
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert re.search(message, " ".join(result.output.split())), result.output
    assert "error:" in result.output


@pytest.mark.parametrize("case, message", [
    ("shape", r"samples have shape \(1, 8, 8\) but the model takes \(1, 28, 28\)"),
    ("classes", r"labels must be class ids 0..9 for this model \(10 classes\); found label 12"),
    ("huge_label", r"other.npz: labels must be class ids 0..9 for this model \(10 classes\); found label 10{12}"),
    ("targets", r"task classification expects integer class ids, received 0\.\d+ at sample 0"),
    ("kind", r"expected an .npz file, a .csv file or a folder of class folders"),
])
def test_data_that_does_not_fit_is_a_clear_error(case, message, mnist_run, tmp_path, cli):
    import re

    rng = np.random.default_rng(0)
    path = tmp_path / "other.npz"
    if case == "shape":
        np.savez(path, x=rng.random((5, 1, 8, 8)).astype(np.float32), y=np.zeros(5, np.int64))
    elif case == "classes":
        np.savez(path, x=rng.random((5, 1, 28, 28)).astype(np.float32), y=np.array([0, 1, 2, 12, 3]))
    elif case == "huge_label":  # once 10**12 class names before the check: a MemoryError
        np.savez(path, x=rng.random((5, 1, 28, 28)).astype(np.float32), y=np.array([0, 1, 2, 10 ** 12, 3]))
    elif case == "targets":
        np.savez(path, x=rng.random((5, 1, 28, 28)).astype(np.float32), y=rng.random(5))
    else:
        path = tmp_path / "other.txt"
        path.write_text("1 2 3\n")
    result = cli("evaluate", mnist_run, "--data", path)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert re.search(message, " ".join(result.output.split())), result.output


def test_training_data_that_moved_says_to_use_data(regression_run, tmp_path, cli):
    moved = tmp_path / "run"
    shutil.copytree(regression_run, moved)
    config = load_checkpoint(moved)["config"]
    data_file = config["data"]["path"]
    hidden = tmp_path / "hidden.npz"
    shutil.move(data_file, hidden)
    try:
        result = cli("evaluate", moved)
    finally:
        shutil.move(hidden, data_file)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "file not found" in result.output and "--data PATH" in " ".join(result.output.split())


def test_binary_models_get_a_two_class_report(tmp_path):
    from dlcli.config import config_from_text
    from dlcli.predict import predict
    from dlcli.train import train

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=y, x_test=x[:20], y_test=y[:20])
    cfg = config_from_text(f"""
name: binary
model: {{input_shape: [3], layers: [{{dense: {{units: 1, activation: sigmoid}}}}]}}
data: {{dataset: npz, path: {tmp_path / 'd.npz'}, batch_size: 16, task: regression}}
loss: binary_crossentropy
metrics: [binary_accuracy]
trainer: {{epochs: 2, device: cpu, progress: none, out_dir: {tmp_path / 'runs'}}}
""")
    summary = train(cfg)
    report = evaluate_checkpoint(summary["run_dir"]).report
    assert report["loss"] == summary["test"]["loss"]
    assert report["binary_accuracy"] == summary["test"]["binary_accuracy"]
    assert [r["support"] for r in report["per_class"]] == [int((y[:20] == 0).sum()), int((y[:20] == 1).sum())]
    predictions = predict(summary["run_dir"], [tmp_path / "d.npz"])
    assert predictions.kind == "probabilities"
    assert all(0 < r["value"][0] < 1 for r in predictions.rows)  # the sigmoid the loss applied


def test_a_run_trained_on_a_relative_path_evaluates_from_anywhere(tmp_path, monkeypatch):
    import numpy as np

    from dlcli.config import config_from_text
    from dlcli.train import train

    (tmp_path / "project").mkdir()
    monkeypatch.chdir(tmp_path / "project")
    rng = np.random.default_rng(0)
    np.savez("data.npz", x=rng.random((40, 3)), y=np.arange(40) % 2, x_test=rng.random((8, 3)),
             y_test=np.arange(8) % 2)
    run = train(config_from_text("model: {input_shape: [3], layers: [{dense: 2}]}\n"
                                 "data: {dataset: npz, path: data.npz, batch_size: 8}\n"
                                 "trainer: {epochs: 1, device: cpu, progress: none, out_dir: ../runs}\n"))
    run_dir = Path(run["run_dir"]).resolve()
    monkeypatch.chdir(tmp_path)  # where data.npz is not
    assert evaluate_checkpoint(run_dir).report["samples"] == 8


def test_other_data_s_validation_part_is_evaluated_with_split_val(regression_run, tmp_path):
    rng = np.random.default_rng(3)
    with_val = tmp_path / "other.npz"
    np.savez(with_val, x=rng.random((10, 4)), y=rng.random(10), x_val=rng.random((6, 4)), y_val=rng.random(6))
    report = evaluate_checkpoint(regression_run, data=with_val, split="val").report
    assert (report["samples"], report["split"]) == (6, "data-other-val")
    assert report["data"].endswith("(validation part)")
    without = tmp_path / "plain.npz"
    np.savez(without, x=rng.random((10, 4)), y=rng.random(10))
    with pytest.raises(DataError, match=r"plain.npz: has no validation part \(only an .npz names one, with x_val and "
                                        r"y_val\); use --split train"):
        evaluate_checkpoint(regression_run, data=without, split="val")


def test_evaluate_json_prints_the_report_alone_on_stdout(mnist_run, tmp_path, cli):
    result = cli("evaluate", mnist_run, "--json", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    written = json.loads((tmp_path / "eval_test.json").read_text())
    assert written.pop("written_by").startswith("dlcli evaluate ") and set(written.pop("files")) == {
        "per_class_test.csv", "confusion_test.csv"}  # the file's proof that it and its CSVs are evaluate's
    assert report == written
    assert report["accuracy"] == json.loads((mnist_run / "summary.json").read_text())["test"]["accuracy"]
    assert "wrote eval_test.json" in result.stderr


def test_an_image_folder_too_large_to_hold_is_refused_before_decoding(images_run, tmp_path, write_images,
                                                                      monkeypatch):
    """Training would stream it (data.in_memory: auto); evaluating other data holds samples as
    tensors, so it is refused with the sizes rather than decoded until memory runs out."""
    from dlcli.data import memory
    from dlcli.data.sources import image_folder

    folder = write_images(tmp_path / "big", classes=("cat", "dog"), per_class=3)
    monkeypatch.setattr(memory, "available_memory", lambda: 100)  # 6 images of 3x8x8 bytes: more than 25 bytes
    monkeypatch.setattr(image_folder, "_read_images", None)  # nothing may be decoded
    with pytest.raises(DataError, match=r"big: its 6 images take 1.1 KiB decoded, and evaluating other data "
                                        r"holds them in memory \(100 bytes available; .*HINT: evaluate the folder "
                                        r"in parts$"):
        evaluate_checkpoint(images_run, data=folder)


@pytest.mark.parametrize("device", ["meta", "xla", "cuda:x", "cpu:0"])
@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_a_device_dlcli_cannot_run_on_is_refused_before_the_checkpoint_is_read(command, device, mnist_run,
                                                                                tmp_path, cli):
    """Issue 15 #14: --device meta (a device torch knows, with no values) gave a traceback."""
    digits = tmp_path / "digits.npz"
    np.savez(digits, x=np.zeros((2, 1, 28, 28), np.uint8))
    args = [mnist_run, "--out", tmp_path / "out"] if command == "evaluate" else [mnist_run, digits]
    result = cli(command, *args, "--device", device)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert f"--device: expected auto, cpu, cuda, cuda:N or mps (the devices dlcli runs models on), received " \
           f"'{device}'" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("how", ["train", "resume"])
def test_a_device_dlcli_cannot_run_on_is_refused_by_train_and_resume(how, mnist_run, tmp_path, cli):
    config = mnist_run / "config.yaml"
    args = [config, f"trainer.out_dir={tmp_path}"] if how == "train" else ["--resume", mnist_run]
    result = cli("train", *args, "trainer.device=meta")
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "trainer.device: expected auto, cpu, cuda, cuda:N or mps" in result.output


def test_a_checkpoint_that_cannot_be_read_says_why(mnist_run, tmp_path, monkeypatch, cli):
    """Issue 15 #15: an unreadable checkpoint (permissions) was "truncated or not a torch file?"."""
    def denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(torch, "load", denied)  # as an unprivileged user meets a root-owned 0600 file
    result = cli("evaluate", mnist_run / "checkpoints" / "best.pt", "--out", tmp_path / "out")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{mnist_run / 'checkpoints' / 'best.pt'}: cannot read the checkpoint: Permission denied" \
        in " ".join(result.output.split())


@pytest.mark.parametrize("name", ["eval_test.json", "confusion_test.csv"])
def test_a_report_file_that_is_a_link_is_not_written_through(name, mnist_run, tmp_path, cli):
    """Issue 15 #1: reports too are written only as regular files, never through a link; and
    #8: a report is written whole or not at all (not eval_test.json without its CSVs)."""
    run = tmp_path / "run"
    shutil.copytree(mnist_run, run)
    for leftover in run.glob("*_test.*"):
        leftover.unlink()
    victim = tmp_path / "victim"
    victim.write_text("kept\n")
    (run / name).symlink_to(victim)
    result = cli("evaluate", run, "--force")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{run / name}: cannot write: it is a symbolic link, and dlcli never writes through a link" \
        in " ".join(result.output.split())
    assert victim.read_text() == "kept\n" and (run / name).is_symlink()
    assert [p.name for p in run.glob("*_test.*")] == [name]  # no other file of the report


@pytest.mark.parametrize("name, text", [
    ("per_class_test.csv", "class,name,precision,recall,f1,support\n0,my,1,1,1,5\n"),  # the header evaluate writes
    ("confusion_test.csv", "true \\ predicted,a,b\na,1,0\nb,0,1\n"),
    ("eval_test.json", '{"checkpoint": "x", "epoch": 1, "split": "test", "data": "d", "samples": 5, "task": "t"}'),
])
def test_a_file_that_only_looks_like_a_report_needs_force(name, text, mnist_run, tmp_path, cli):
    """Issue 15 #3: a header (or the report's keys: an older dlcli's report, unmarked) proves
    nothing; only evaluate's mark and the hashes of its CSVs in eval_<split>.json do."""
    from tests.samples import assert_refused

    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / name).write_text(text)
    result = cli("evaluate", mnist_run, "--out", reports)
    assert_refused(result, rf"its report {name} exists and is not an earlier report of dlcli evaluate; expected a "
                           rf"new file name, or --force to replace it \(written by an older dlcli, which marked no "
                           rf"output\? use --force\)")
    assert [p.name for p in reports.iterdir()] == [name] and (reports / name).read_text() == text


def test_a_class_folder_name_that_is_not_utf8_is_written_escaped(tmp_path, cli):
    """Issue 15 #8: a class folder named b'd\\xffg' (read as 'd\\udcffg') crashed the writers
    after eval_*.json was written: now every file is written, the name escaped as \\udcff."""
    from tests.reports.conftest import IMAGES, _train, write_images

    folder = write_images(tmp_path / "train", classes=("cat", "d\udcffg", "fox"))
    run = _train(IMAGES, tmp_path / "runs", folder)
    reports = tmp_path / "reports"
    result = cli("evaluate", run, "--data", folder, "--out", reports)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in reports.iterdir()) == ["confusion_data-train.csv", "eval_data-train.json",
                                                         "per_class_data-train.csv"]
    assert "d\\udcffg" in (reports / "per_class_data-train.csv").read_text(encoding="utf-8")
    assert "d\\udcffg" in (reports / "confusion_data-train.csv").read_text(encoding="utf-8")
    assert cli("evaluate", run, "--data", folder, "--out", reports).exit_code == 0  # its own: replaced
    out = tmp_path / "p.csv"
    image = folder / "d\udcffg" / "0.png"
    result = cli("predict", run, image, "--out", out)
    assert result.exit_code == 0, result.output
    assert str(image).replace("\udcff", "\\udcff") in out.read_text(encoding="utf-8")


def test_a_checkpoint_that_asks_to_download_is_not_obeyed(mnist_run, tmp_path, cli):
    """Issue 15 #10: the checkpoint's config chooses a torchvision data set, download: true and a
    root of its own: evaluate downloads nothing, creates no folder and says what is missing."""
    from tests.samples import assert_refused

    run = tmp_path / "run"
    shutil.copytree(mnist_run, run)
    root = tmp_path / "attacker" / "root"
    for path in (run / "checkpoints").glob("*.pt"):
        state = torch.load(path, weights_only=True)
        state["config"]["data"].update({"dataset": "fashion_mnist", "root": str(root), "download": True})
        torch.save(state, path)
    result = cli("evaluate", run, "--out", tmp_path / "reports")
    assert_refused(result, rf"fashion_mnist: the data set is not in {re.escape(str(root))} \(missing .*\); commands "
                           r"that read a checkpoint \(evaluate, train --resume\) never download it and create no "
                           r"folders, whatever the checkpoint's data.download and data.root say")
    assert not (tmp_path / "attacker").exists() and not (tmp_path / "reports").exists()


def test_a_report_is_written_whole_or_not_at_all(mnist_run, tmp_path, monkeypatch):
    """Issue 15 #8: a failure while writing (here the disk fills at the second file) leaves no
    eval_*.json without its CSVs, and no staged temporaries."""
    import errno
    import tempfile

    from dlcli.errors import DlcliError
    from dlcli.reports import write_evaluation

    evaluation = evaluate_checkpoint(mnist_run)
    reports = tmp_path / "reports"
    reports.mkdir()
    real, calls = tempfile.mkstemp, []

    def fills_up(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", fills_up)
    with pytest.raises(DlcliError, match=r"reports: cannot write the report: No space left on device"):
        write_evaluation(evaluation, reports)
    assert list(reports.iterdir()) == []
