"""dlcli predict: inputs preprocessed exactly as in training, so predictions agree
with what evaluate computes on the same samples."""

import csv
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dlcli.data import MNIST_DIR
from dlcli.data.sources.mnist import load_mnist_idx
from dlcli.checkpoint import load_checkpoint
from dlcli.errors import CheckpointError, DataError
from dlcli.predict import predict
from dlcli.reports import evaluate_checkpoint
from tests.samples import assert_refused

N = 8


@pytest.fixture(scope="module")
def mnist_pngs(tmp_path_factory):
    """The first N MNIST test images as PNG files, from the uint8 tensors."""
    folder = tmp_path_factory.mktemp("pngs")
    images = load_mnist_idx(MNIST_DIR).test.x[:N]  # (N, 1, 28, 28) uint8
    files = []
    for i, image in enumerate(images):
        files.append(folder / f"digit_{i}.png")
        Image.fromarray(image[0].numpy(), mode="L").save(files[-1])
    return files


@pytest.fixture(scope="module")
def evaluated(mnist_run):
    return evaluate_checkpoint(mnist_run)


def test_png_predictions_match_evaluate(mnist_run, mnist_pngs, evaluated, cli, tmp_path):
    """Acceptance: the classes predicted for PNGs are evaluate's classes for those samples."""
    expected = evaluated.outputs[:N].argmax(1).tolist()
    out = tmp_path / "predictions.csv"
    result = cli("predict", mnist_run / "checkpoints" / "best.pt", *mnist_pngs, "--out", out)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == N
    assert [int(r["class_1"]) for r in rows] == expected
    assert [r["input"] for r in rows] == [str(f) for f in mnist_pngs]
    # the probabilities are the softmax of the logits evaluate saw (the model ends in logits)
    probs = torch.softmax(evaluated.outputs[:N], dim=1)
    assert [float(r["probability_1"]) for r in rows] == pytest.approx(probs.max(1).values.tolist(), abs=1e-6)
    assert evaluated.report["accuracy"] > 0.3  # a model that learned something: the classes differ
    assert len(set(expected)) > 2


def test_folder_and_npz_inputs_match_too(mnist_run, mnist_pngs, evaluated, tmp_path):
    folder = mnist_pngs[0].parent
    from_folder = predict(mnist_run, [folder], top_k=1)
    assert [r["input"] for r in from_folder.rows] == sorted(str(f) for f in mnist_pngs)
    np.savez(tmp_path / "digits.npz", x=load_mnist_idx(MNIST_DIR).test.x[:N].numpy())
    from_npz = predict(mnist_run, [tmp_path / "digits.npz"], top_k=10)
    assert [r["input"] for r in from_npz.rows] == [f"{tmp_path / 'digits.npz'}[{i}]" for i in range(N)]
    probs = torch.tensor([[p["probability"] for p in sorted(r["predictions"], key=lambda p: p["class"])]
                          for r in from_npz.rows])
    assert torch.allclose(probs, torch.softmax(evaluated.outputs[:N], dim=1), atol=1e-6)
    assert probs.sum(1).tolist() == pytest.approx([1.0] * N)


def test_top_k_and_json_output(mnist_run, mnist_pngs, cli, tmp_path):
    out = tmp_path / "p.json"
    result = cli("predict", mnist_run, mnist_pngs[0], mnist_pngs[1], "--top-k", "5", "--out", out)
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    assert saved["kind"] == "classes" and len(saved["predictions"]) == 2
    top = saved["predictions"][0]["predictions"]
    assert len(top) == 5 and [p["name"] for p in top] == [str(p["class"]) for p in top]
    assert [p["probability"] for p in top] == sorted((p["probability"] for p in top), reverse=True)
    table = cli("predict", mnist_run, mnist_pngs[0], "--top-k", "1").stdout  # piped: the path is never cut
    assert table.splitlines()[0] == f"predictions of {mnist_run / 'checkpoints' / 'best.pt'}"
    printed = cli("predict", mnist_run, mnist_pngs[0], mnist_pngs[1], "--top-k", "5", "--json", "--out",
                  tmp_path / "q.json")
    assert printed.exit_code == 0 and json.loads(printed.stdout) == saved  # alone on stdout, as the file holds it
    assert json.loads((tmp_path / "q.json").read_text()) == saved and "wrote" in printed.stderr


def test_regression_values_match_evaluate(regression_run, tmp_path, cli):
    evaluated = evaluate_checkpoint(regression_run)
    x_test = np.load(evaluated.trained.cfg["data"]["path"])["x_test"]
    np.savez(tmp_path / "inputs.npz", x=x_test)
    out = tmp_path / "values.csv"
    result = cli("predict", regression_run, tmp_path / "inputs.npz", "--out", out)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["input", "value"] and len(rows) == len(x_test)
    assert [float(r["value"]) for r in rows] == evaluated.outputs.reshape(-1).tolist()


def test_csv_windows_are_read_as_in_training(sequence_run):
    """Every window of 4 rows; the first 26 are training's samples (the last has no next row)."""
    evaluated = evaluate_checkpoint(sequence_run, split="train")
    path = evaluated.trained.cfg["data"]["path"]
    predictions = predict(sequence_run, [path])
    assert len(predictions.rows) == 27
    assert predictions.rows[0]["input"] == f"{path}:5"  # a window is named by its last line
    values = [r["value"][0] for r in predictions.rows[:26]]
    assert values == evaluated.outputs.reshape(-1).tolist()


def _values(predictions) -> list[list[float]]:
    return [r["value"] for r in predictions.rows]


def test_csv_columns_are_read_by_name_in_the_training_order(table_run, reorder_csv, tmp_path):
    """Acceptance (audit #1): the same columns in another order, with an extra column and
    without the target, give exactly the same predictions."""
    assert load_checkpoint(table_run)["feature_names"] == ["a", "b", "c", "d"]
    path = load_checkpoint(table_run)["config"]["data"]["path"]
    expected = _values(predict(table_run, [path]))
    reordered = reorder_csv(path, tmp_path / "reordered.csv", ["d", "y", "c", "b", "a"], extra={"note": "seen"})
    assert _values(predict(table_run, [reordered])) == expected
    features_only = reorder_csv(path, tmp_path / "features.csv", ["c", "a", "d", "b"])
    assert _values(predict(table_run, [features_only])) == expected


def test_csv_windows_are_read_by_name_too(sequence_run, reorder_csv, tmp_path):
    """data.window: the names are recorded (a, b) and each window's rows read by them."""
    assert load_checkpoint(sequence_run)["feature_names"] == ["a", "b"]
    path = load_checkpoint(sequence_run)["config"]["data"]["path"]
    reordered = reorder_csv(path, tmp_path / "reordered.csv", ["target", "b", "a"])
    assert _values(predict(sequence_run, [reordered])) == _values(predict(sequence_run, [path]))


@pytest.mark.parametrize("header, message", [
    ("a,b,cc,d,y", r"missing\.csv: expected column 'c' as in the model's training data \(a, b, c, d\); did you "
                   r"mean 'cc'\? the file has columns: a, b, cc, d, y"),
    ("b,a,y", r"missing\.csv: expected columns 'c', 'd' as in the model's training data \(a, b, c, d\);.* the file "
              r"has columns: b, a, y"),
])
def test_csv_missing_feature_column_is_named(header, message, table_run, tmp_path, cli):
    path = tmp_path / "missing.csv"
    path.write_text(header + "\n" + ",".join(["1"] * len(header.split(","))) + "\n")
    with pytest.raises(DataError, match=message):
        predict(table_run, [path])
    result = cli("predict", table_run, path)
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_csv_without_a_header_row_isassert_refused(table_run, tmp_path):
    """Its first row would become the header, and a sample would silently be lost."""
    path = tmp_path / "noheader.csv"
    path.write_text("0.1,0.2,0.3,0.4,1.5\n0.5,0.6,0.7,0.8,2.5\n")
    with pytest.raises(DataError, match=r"noheader\.csv:1: expected a header row of column names, received a row "
                                        r"of numbers \(0\.1, 0\.2, 0\.3, 0\.4, 1\.5\)"):
        predict(table_run, [path])


def test_checkpoints_without_recorded_names_still_predict(table_run, reorder_csv, edited_checkpoint, tmp_path):
    """Written before names were recorded: data.features of the config when set, else every
    column but the target in the file's order, as before."""
    path = load_checkpoint(table_run)["config"]["data"]["path"]
    expected = _values(predict(table_run, [path]))
    old = edited_checkpoint(table_run, tmp_path / "old.pt", drop=("feature_names",))
    assert _values(predict(old, [path])) == expected
    listed = edited_checkpoint(table_run, tmp_path / "listed.pt", drop=("feature_names",),
                               data={"features": ["a", "b", "c", "d"]})
    reordered = reorder_csv(path, tmp_path / "reordered.csv", ["d", "c", "b", "a"])
    assert _values(predict(listed, [reordered])) == expected


def test_damaged_recorded_names_are_a_checkpoint_error(table_run, edited_checkpoint, tmp_path):
    import torch

    path = edited_checkpoint(table_run, tmp_path / "damaged.pt")
    state = torch.load(path, weights_only=True)
    state["feature_names"] = ["a", 3]
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"damaged checkpoint: feature_names: expected a list of distinct "
                                              r"column names, received \['a', 3\]"):
        predict(path, [load_checkpoint(table_run)["config"]["data"]["path"]])


def test_image_folder_model_predicts_class_names(images_run, write_images, tmp_path):
    folder = write_images(tmp_path / "new", classes=("fox",), per_class=2, seed=3)
    predictions = predict(images_run, [folder], top_k=2)
    assert all(p["name"] in ("cat", "dog", "fox") for r in predictions.rows for p in r["predictions"])
    # a big image is resized to the model's 8x8 as training's loader does
    Image.new("RGB", (40, 30), (10, 10, 240)).save(tmp_path / "big.png")
    assert len(predict(images_run, [tmp_path / "big.png"]).rows) == 1


@pytest.mark.parametrize("case, message", [
    ("image for npz model", r"image inputs need a model trained on images.*trained on npz data"),
    ("wrong shape", r"samples have shape \(3,\) but the model takes \(4,\)"),
    ("bad out", r"--out .*predictions\.txt: expected a \.csv or \.json file name"),
    ("unknown kind", r"cannot predict a \.bin file"),
    ("no x", r"expected an array named 'x' \(or 'x_test'\); the file has: features"),
])
def test_inputs_that_cannot_fit_are_clear_errors(case, message, regression_run, tmp_path, cli):
    import re

    args = [regression_run]
    if case == "image for npz model":
        Image.new("L", (4, 4)).save(tmp_path / "a.png")
        args.append(tmp_path / "a.png")
    elif case == "wrong shape":
        np.savez(tmp_path / "x.npz", x=np.zeros((2, 3), np.float32))
        args.append(tmp_path / "x.npz")
    elif case == "bad out":
        np.savez(tmp_path / "x.npz", x=np.zeros((2, 4), np.float32))
        args += [tmp_path / "x.npz", "--out", tmp_path / "predictions.txt"]
    elif case == "unknown kind":
        (tmp_path / "x.bin").write_bytes(b"\0\1")
        args.append(tmp_path / "x.bin")
    else:
        np.savez(tmp_path / "x.npz", features=np.zeros((2, 4), np.float32))
        args.append(tmp_path / "x.npz")
    result = cli("predict", *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert re.search(message, " ".join(result.output.split())), result.output


def test_an_npz_too_large_for_memory_is_refused_before_reading_as_training_refuses_it(regression_run, tmp_path,
                                                                                      monkeypatch):
    """The same guard as the npz loader's (tests/data/test_sources.py), not an out-of-memory kill."""
    import re

    from dlcli.data import memory

    path = tmp_path / "big.npz"
    np.savez(path, x=np.zeros((100, 4), np.float32))
    need = 100 * 4 * (4 + 4)  # each float32 value, then its float32 copy
    monkeypatch.setattr(memory, "available_memory", lambda: need - 1)
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}: reading x needs about 3\.1 KiB of memory "
                                        rf"\(each array, then its float32 copy\), and .* is available; HINT"):
        predict(regression_run, [path])
    monkeypatch.setattr(memory, "available_memory", lambda: need)
    assert len(predict(regression_run, [path]).rows) == 100


def test_missing_input_is_a_data_error(regression_run, tmp_path):
    with pytest.raises(DataError, match="no such file or directory"):
        predict(regression_run, [tmp_path / "nothing.npz"])


# ---------------------------------------------------------------------------
# --out never replaces what the user had: an input, the checkpoint, a run's files, or a
# file that is not an earlier predictions file (without --force)
# ---------------------------------------------------------------------------

@pytest.fixture
def user_csv(table_run, tmp_path):
    """A copy of the table run's training CSV: the user's data."""
    return Path(shutil.copy(load_checkpoint(table_run)["config"]["data"]["path"], tmp_path / "data.csv"))


def _same_file_as(path: Path, spelling: str) -> Path:
    """`path` spelled another way: as it is, through `..`, a symlink or a hard link."""
    if spelling == "dotted":
        (path.parent / "sub").mkdir(exist_ok=True)
        return path.parent / "sub" / ".." / path.name
    if spelling in ("symlink", "hardlink"):
        other = path.with_name(f"{spelling}{path.suffix}")
        other.symlink_to(path) if spelling == "symlink" else os.link(path, other)
        return other
    return path


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("spelling", ["same", "dotted", "symlink", "hardlink"])
def test_out_that_is_the_input_csv_is_refused_even_with_force(spelling, force, table_run, user_csv, cli):
    """Audit 3 #1: `predict RUN data.csv --out data.csv` replaced the data with predictions."""
    before = user_csv.read_bytes()
    out = _same_file_as(user_csv, spelling)
    result = cli("predict", table_run, user_csv, "--out", out, *["--force"] * force)
    assert_refused(result, rf"--out {re.escape(str(out))} is the input file {re.escape(str(user_csv))}, which this "
                     rf"command reads; .* e\.g\. .*\.predictions\.csv \(--force never replaces an input\)")
    assert user_csv.read_bytes() == before


def test_out_that_is_an_image_in_an_input_folder_isassert_refused(images_run, write_images, tmp_path, cli):
    """Every file read from a folder is an input: here a .csv name linked to one of its images."""
    folder = write_images(tmp_path / "photos", per_class=1)
    image = folder / "dog" / "0.png"
    before = image.read_bytes()
    out = tmp_path / "predictions.csv"
    out.symlink_to(image)
    result = cli("predict", images_run, folder, "--out", out, "--force")
    assert_refused(result, rf"--out {re.escape(str(out))} is the input file {re.escape(str(image))}")
    assert image.read_bytes() == before and out.is_symlink()


def test_out_that_is_the_checkpoint_isassert_refused(run_copy, user_csv, cli):
    checkpoint = run_copy / "checkpoints" / "best.pt"
    before = checkpoint.read_bytes()
    out = user_csv.with_name("model.json")
    out.symlink_to(checkpoint)
    result = cli("predict", run_copy, user_csv, "--out", out, "--force")
    assert_refused(result, rf"--out {re.escape(str(out))} is the checkpoint {re.escape(str(checkpoint))}")
    assert checkpoint.read_bytes() == before


@pytest.mark.parametrize("name, says", [
    ("checkpoints/predictions.csv", r"is inside the run's checkpoints folder .*checkpoints; only training writes "
                                    r"there\. Expected a path outside it, e\.g\. .*run/predictions\.csv"),
    ("metrics.csv", r"is the run record .*metrics\.csv \(written only by its run\)"),
    ("summary.json", r"is the run record .*summary\.json"),
])
def test_out_among_a_runs_own_files_is_refused_even_with_force(name, says, run_copy, user_csv, cli):
    out = run_copy / name
    before = out.read_bytes() if out.exists() else None
    result = cli("predict", run_copy, user_csv, "--out", out, "--force")
    assert_refused(result, rf"--out {re.escape(str(out))} {says}", r"\(--force never writes there\)")
    assert (out.read_bytes() if out.exists() else None) == before


@pytest.mark.parametrize("name, text", [
    ("notes.csv", "a,b\n1,2\n"),  # someone's table
    ("settings.json", '{"checkpoint": "x", "kind": "classes"}\n'),  # JSON, but not predictions
    ("edited.csv", "input,value,comment\nx,1,2\n"),  # a predictions file with a column added
    ("binary.json", "\0\1\2"),
])
def test_existing_file_that_is_not_predictions_needs_force(name, text, table_run, user_csv, cli):
    out = user_csv.with_name(name)
    out.write_text(text)
    result = cli("predict", table_run, user_csv, "--out", out)
    assert_refused(result, rf"--out {re.escape(str(out))} exists and is not a dlcli predictions file; expected a new "
                     rf"file name, or --force to replace it")
    assert out.read_text() == text
    result = cli("predict", table_run, user_csv, "--out", out, "--force")
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith(("input,value\n", '{\n  "written_by": "dlcli predict '))


@pytest.mark.parametrize("name, text", [
    ("table.csv", "input,value\nmy,1\n"),  # a user's table that happens to have predict's header
    ("probs.csv", "input,probability\nx,0.5\n"),
    ("top.csv", "input,class_1,name_1,probability_1\nx,1,1,0.5\n"),
    ("old.json", '{"checkpoint": "x", "kind": "values", "predictions": []}\n'),  # an older dlcli's, unmarked
])
def test_a_file_that_only_looks_like_predictions_needs_force(name, text, table_run, user_csv, cli):
    """Issue 15 #3: a header (or JSON keys) that predict would write proves nothing; only the mark
    dlcli writes does. Unmarked outputs of an older dlcli are refused too, saying so."""
    out = user_csv.with_name(name)
    out.write_text(text)
    result = cli("predict", table_run, user_csv, "--out", out)
    assert_refused(result, rf"--out {re.escape(str(out))} exists and is not a dlcli predictions file; expected a new "
                     rf"file name, or --force to replace it \(written by an older dlcli, which marked no output\? "
                     rf"use --force\)")
    assert out.read_text() == text


def test_a_csv_marker_vouches_only_for_the_bytes_dlcli_wrote(table_run, user_csv, cli):
    out = user_csv.with_name("p.csv")
    marker = user_csv.with_name("p.csv.dlcli.json")
    assert cli("predict", table_run, user_csv, "--out", out).exit_code == 0
    assert json.loads(marker.read_text())["written_by"].startswith("dlcli predict ")
    assert list(csv.DictReader(out.open()))[0]["input"]  # still plain CSV: no comment line before the header
    assert cli("predict", table_run, user_csv, "--out", out).exit_code == 0  # its own: replaced
    out.write_text(out.read_text().replace("\n", "\r\n"))  # the user's now (saved by a spreadsheet)
    edited = out.read_bytes()
    assert_refused(cli("predict", table_run, user_csv, "--out", out), "exists and is not a dlcli predictions file")
    assert out.read_bytes() == edited
    # a marker that is the user's file is not replaced either
    other = user_csv.with_name("q.csv.dlcli.json")
    other.write_text('{"mine": 1}\n')
    result = cli("predict", table_run, user_csv, "--out", user_csv.with_name("q.csv"))
    assert_refused(result, rf"--out .*q\.csv: its marker .*q\.csv\.dlcli\.json exists and is not a dlcli marker file")
    assert other.read_text() == '{"mine": 1}\n' and not user_csv.with_name("q.csv").exists()


@pytest.mark.parametrize("suffix", [".csv", ".json"])
@pytest.mark.parametrize("run, top_k", [("table_run", ["--top-k", "1"]), ("images_run", ["--top-k", "1"]),
                                        ("images_run", ["--top-k", "3"])])
def test_rerun_replaces_its_own_predictions_and_nothing_else(run, top_k, suffix, request, write_images,
                                                             tmp_path, cli):
    """The same command twice succeeds, the second replacing the first's file; once that file
    is someone else's it is refused."""
    folder = request.getfixturevalue(run)
    if run == "images_run":
        inputs = [write_images(tmp_path / "photos", per_class=2)]
    else:
        inputs = [Path(shutil.copy(load_checkpoint(folder)["config"]["data"]["path"], tmp_path / "data.csv"))]
    out = tmp_path / f"predictions{suffix}"
    assert cli("predict", folder, *inputs, "--out", out).exit_code == 0  # top 3 / all values
    first = out.read_text()
    result = cli("predict", folder, *inputs, *top_k, "--out", out)
    assert result.exit_code == 0, result.output
    assert out.read_text() == first if top_k[1] == "3" or run == "table_run" else out.read_text() != first
    out.write_text("# my notes\n" + out.read_text())  # hand-edited: no longer what predict writes
    assert_refused(cli("predict", folder, *inputs, *top_k, "--out", out), "exists and is not a dlcli predictions file")


@pytest.mark.parametrize("kind, width", [("classes", 2), ("probabilities", 1), ("probabilities", 3),
                                         ("values", 1), ("values", 2)])
@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_every_kind_of_predictions_file_is_recognised(kind, width, suffix, tmp_path):
    from dlcli.predict import Predictions, is_predictions_file, write_predictions

    rows = [{"input": "a.png", "predictions": [{"class": c, "name": str(c), "probability": 0.5}
                                               for c in range(width)]}] if kind == "classes" else \
        [{"input": "a.npz[0]", "value": [0.5] * width}]
    out = write_predictions(Predictions(kind, rows, checkpoint=str(tmp_path / "best.pt")), tmp_path / f"p{suffix}")
    assert is_predictions_file(out)
    out.write_text(out.read_text()[:-2])  # torn or edited
    assert not is_predictions_file(out)  # a CSV's marker holds its hash; a JSON no longer parses


@pytest.mark.parametrize("loss, final, expected", [("nll", "log_softmax", "probabilities"),
                                                   ("cross_entropy", None, "probabilities"), ("mse", None, "values")])
def test_predictions_of_each_loss_are_probabilities_or_values(loss, final, expected):
    """nll trains on log-probabilities (the model ends in log_softmax): predict takes their exp."""
    from dlcli.config import config_from_text
    from dlcli.inference import prediction_activation
    from dlcli.model import build_model

    layers = "[dense: 3" + (f", activation: {final}]" if final else "]")
    cfg = config_from_text(f"model: {{input_shape: [4], layers: {layers}}}\nloss: {loss}\n"
                           "data: {dataset: npz, path: x.npz}\n")
    model = build_model(cfg).eval()
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = prediction_activation(cfg, model)(model(x))
    if expected == "probabilities":
        torch.testing.assert_close(out.sum(1), torch.ones(5))
    else:
        torch.testing.assert_close(out, model(x).detach())


def test_the_readmes_sample_digit_predicts_as_evaluate_classifies_it(mnist_run, evaluated, cli, repo_root):
    """docs/digit_7.png is MNIST test image 0: `dlcli predict RUN docs/digit_7.png` runs as the
    README writes it and gives the class evaluate gives that sample."""
    result = cli("predict", mnist_run, repo_root / "docs" / "digit_7.png", "--json")
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.stdout)["predictions"]
    assert record["input"].endswith("digit_7.png")
    assert record["predictions"][0]["class"] == int(evaluated.outputs[0].argmax())
