"""Bad data through `dlcli train`: each case is exit status 2 and one message that
names the file and what is wrong, without a traceback, before training starts
(no run directory is created)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dlcli.cli import app

IMAGE_MODEL = "{input_shape: [1, 28, 28], layers: [flatten, {dense: 10}]}"
TABLE_MODEL = "{input_shape: [2], layers: [{dense: 2}]}"
TOKEN_MODEL = "{input_shape: [6], layers: [{embedding: {input_dim: 50, output_dim: 4}}, {gru: 4}, {dense: 2}]}"
_IDS = np.arange(120).reshape(20, 6) % 50
_IDS_OUTSIDE = _IDS.copy()
_IDS_OUTSIDE[7, 2] = 50


def _images(n=20, shape=(1, 28, 28), dtype=np.uint8):
    return np.random.default_rng(0).integers(0, 256, (n, *shape)).astype(dtype)


def npz(name, **arrays):
    def make(folder):
        np.savez(folder / name, **arrays)
        return folder / name, f"{{dataset: npz, path: {folder / name}}}"
    return make


def csv(name, text, target="label"):
    def make(folder):
        (folder / name).write_text(text)
        return folder / name, f"{{dataset: csv, path: {folder / name}, target: {target}}}"
    return make


def image_folder(files: dict[str, list]):
    """files: {class: [HxWxC uint8 array, or bytes for a broken file]}."""
    def make(folder):
        root = folder / "images"
        for label, items in files.items():
            (root / label).mkdir(parents=True)
            for i, item in enumerate(items):
                if isinstance(item, bytes):
                    (root / label / f"{i}.png").write_bytes(item)
                else:
                    Image.fromarray(item).save(root / label / f"{i}.png")
        return root, f"{{dataset: image_folder, path: {root}}}"
    return make


_NAN_X = _images(dtype=np.float32)
_NAN_X[3, 0, 5, 5] = np.nan
_RGB = [np.full((10, 12, 3), 40 * i, np.uint8) for i in range(3)]

# id: (data maker, model, extra data keys, what the message says after the file name)
CASES = {
    "npz images of the wrong size": (
        npz("small.npz", x=_images(shape=(1, 14, 14)), y=np.arange(20) % 10), IMAGE_MODEL, "",
        r"training samples have shape \(1, 14, 14\) but model.input_shape is \[1, 28, 28\]; "
        r"set model.input_shape to \[1, 14, 14\]"),
    "npz images with 3 channels for a grey model": (
        npz("rgb.npz", x=_images(shape=(3, 28, 28)), y=np.arange(20) % 10), IMAGE_MODEL, "",
        r"training samples have shape \(3, 28, 28\) but model.input_shape is \[1, 28, 28\]"),
    "npz channels-last images of the wrong size": (
        npz("small_last.npz", x=_images(shape=(14, 14, 3)), y=np.arange(20) % 10), IMAGE_MODEL, "",
        r"training samples have shape \(14, 14, 3\) but model.input_shape is \[1, 28, 28\]; "
        r"set model.input_shape to \[3, 14, 14\]$"),
    "npz grey images without a channel axis, of the wrong size": (
        npz("small_grey.npz", x=_images(shape=(14, 14)), y=np.arange(20) % 10), IMAGE_MODEL, "",
        r"training samples have shape \(14, 14\) but model.input_shape is \[1, 28, 28\]; "
        r"set model.input_shape to \[1, 14, 14\]$"),
    "npz token ids beyond the embedding's input_dim": (
        npz("ids.npz", x=_IDS_OUTSIDE, y=np.arange(20) % 2), TOKEN_MODEL, "",
        r"training samples: model.layers\[0\] \(embedding\) takes ids 0 to 49 \(input_dim: 50\), received 50 in "
        r"sample 7 at position 2; HINT: set model.layers\[0\].input_dim to at least 51"),
    "npz test token ids beyond the embedding's input_dim": (
        npz("test_ids.npz", x=_IDS, y=np.arange(20) % 2, x_test=_IDS_OUTSIDE, y_test=np.arange(20) % 2), TOKEN_MODEL,
        "", r"test samples: .* received 50 in sample 7 at position 2"),
    "npz fractional values for an embedding": (
        npz("fraction_ids.npz", x=_IDS + 0.5, y=np.arange(20) % 2), TOKEN_MODEL, "",
        r"model.layers\[0\] \(embedding\) takes integer ids, received 0.5 in sample 0 at position 0; "
        r"expected whole numbers"),
    "npz labels out of range": (
        npz("labels.npz", x=_images(), y=np.arange(20)), IMAGE_MODEL, "",
        r"training labels must be class ids in \[0, 9\] for a model with 10 outputs; found label 19"),
    "npz test labels out of range": (
        npz("test_labels.npz", x=_images(), y=np.arange(20) % 10, x_test=_images(5), y_test=np.array([0, 1, 2, 3, 12])),
        IMAGE_MODEL, "", r"test labels must be class ids in \[0, 9\].*found label 12"),
    "npz label of 10**12": (
        npz("huge_label.npz", x=_images(), y=np.array([0] * 19 + [10 ** 12])), IMAGE_MODEL, "",
        r"training labels must be class ids in \[0, 9\] for a model with 10 outputs; found label 1000000000000"),
    "npz label of 10**12 in a sample data.subset leaves out": (
        npz("huge_left_out.npz", x=_images(), y=np.array([0] * 19 + [10 ** 12])), IMAGE_MODEL, ", subset: 5",
        r"labels must be class ids in \[0, 9\] for a model with 10 outputs; found label 1000000000000"),
    "csv label of 10**12": (
        csv("huge_label.csv", "a,b,label\n1,2,0\n3,4,1000000000000\n"), TABLE_MODEL, "",
        r"training labels must be class ids in \[0, 1\] for a model with 2 outputs; found label 1000000000000"),
    "npz negative labels": (
        npz("negative.npz", x=_images(), y=np.arange(20) % 10 - 3), IMAGE_MODEL, "",
        r"expected class ids >= 0, received -3 at sample 0"),
    "npz fractional labels for a classifier": (
        npz("fractions.npz", x=_images(), y=np.arange(20) * 0.5), IMAGE_MODEL, "",
        r"training targets are .*float32 values but cross_entropy needs integer class ids"),
    "npz without x": (
        npz("no_x.npz", X=_images(), y=np.arange(20) % 10), IMAGE_MODEL, "",
        r"expected an array named 'x'; did you mean 'X'\? the file has: X, y"),
    "npz with no samples": (
        npz("empty.npz", x=_images(0), y=np.zeros(0, np.int64)), IMAGE_MODEL, "",
        r"expected at least one sample, x is empty \(shape \(0, 1, 28, 28\)\)"),
    "npz with NaN features": (
        npz("nan.npz", x=_NAN_X, y=np.arange(20) % 10), IMAGE_MODEL, "",
        r"expected finite numbers in x, received nan at x\[3, 0, 5, 5\]"),
    "npz with fewer labels than samples": (
        npz("ragged.npz", x=_images(), y=np.arange(19) % 10), IMAGE_MODEL, "",
        r"expected as many targets as samples, received x with 20 samples and y with 19"),
    "csv with NaN features": (
        csv("nan.csv", "a,b,label\n1,2,0\n3,nan,1\n4,5,0\n"), TABLE_MODEL, "",
        r":3: column 'b' \(data row 2\): expected a finite number, received 'nan'"),
    "csv with an empty cell": (
        csv("hole.csv", "a,b,label\n1,2,0\n3,,1\n"), TABLE_MODEL, "",
        r":3: column 'b' \(data row 2\): expected a number, received an empty cell"),
    "csv without the target column": (
        csv("no_target.csv", "a,b,lab\n1,2,0\n3,4,1\n"), TABLE_MODEL, "",
        r"target column 'label' not found; did you mean 'lab'\? the file has columns: a, b, lab"),
    "csv with a header and no rows": (
        csv("header_only.csv", "a,b,label\n"), TABLE_MODEL, "", r"expected data rows after the header"),
    "csv empty file": (
        csv("empty.csv", ""), TABLE_MODEL, "", r"expected a header row with column names, received an empty file"),
    "csv labels out of range": (
        csv("classes.csv", "a,b,label\n1,2,0\n3,4,1\n4,5,5\n"), TABLE_MODEL, "",
        r"training labels must be class ids in \[0, 1\] for a model with 2 outputs; found label 5"),
    "csv with more features than the model takes": (
        csv("wide.csv", "a,b,c,label\n1,2,3,0\n3,4,5,1\n"), TABLE_MODEL, "",
        r"training samples have shape \(3,\) but model.input_shape is \[2\]"),
    "image folder for a 2-channel model": (
        image_folder({"cat": _RGB, "dog": _RGB}), "{input_shape: [2, 8, 8], layers: [flatten, {dense: 2}]}", "",
        r"expected model.input_shape with 1 \(grey\) or 3 \(RGB\) channels for images, received 2 channels"),
    "image folder with an empty class": (
        image_folder({"cat": _RGB, "dog": []}), "{input_shape: [3, 8, 8], layers: [flatten, {dense: 2}]}", "",
        r"expected images \(.*\) in class folder 'dog', received none"),
    "image folder with an escape sequence in a class name": (  # issue 15 #11: it reached the terminal raw
        image_folder({"cat": _RGB, "d\x1b[31mog": _RGB}), "{input_shape: [3, 8, 8], layers: [flatten, {dense: 2}]}",
        "", r"expected class folders named with printable characters, received 'd\\x1b\[31mog', which holds a "
            r"control character; rename the folder"),
    "image folder with a broken image": (
        image_folder({"cat": _RGB, "dog": [b"not a png"]}), "{input_shape: [3, 8, 8], layers: [flatten, {dense: 2}]}",
        "", r"expected a readable image, cannot decode it"),
    "too few samples for one batch with drop_last": (
        npz("few.npz", x=_images(), y=np.arange(20) % 10), IMAGE_MODEL, ", drop_last: true",
        r"data.drop_last: 20 training samples make no full batch of 32"),
}


def _config(tmp_path, case):
    make, model, extra, _ = CASES[case]
    folder = tmp_path / "data"
    folder.mkdir()
    path, data = make(folder)
    data = data[:-1] + f", batch_size: 32{extra}}}"
    config = tmp_path / "bad.yaml"
    config.write_text(f"name: bad\nmodel: {model}\ndata: {data}\n"
                      f"trainer: {{epochs: 1, device: cpu, progress: none, out_dir: {tmp_path / 'runs'}}}\n")
    return config, path


@pytest.mark.parametrize("case", list(CASES))
def test_bad_data_is_one_clear_message_before_training(tmp_path, case):
    config, path = _config(tmp_path, case)
    result = CliRunner().invoke(app, ["train", str(config)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    message = " ".join(result.output.split("error: ", 1)[1].split())  # rich wraps long lines
    where = "data.drop_last" if "drop_last" in CASES[case][2] else str(path)  # a setting, not a file
    assert where in message, message
    assert re.search(CASES[case][3], message), message
    assert not (tmp_path / "runs").exists(), "a run directory was created for bad data"


def test_image_folder_converts_channels_and_size_to_the_model_input(tmp_path):
    """Images are converted (RGB <-> grey) and resized to model.input_shape, not refused."""
    from dlcli.data import load_dataset

    make = image_folder({"cat": _RGB, "dog": [np.full((5, 7), 200, np.uint8)] * 2})  # RGB 10x12 and grey 5x7
    root, _ = make(tmp_path)
    grey = load_dataset("image_folder", {"path": str(root)}, [1, 8, 8])
    assert tuple(grey.train.x.shape) == (5, 1, 8, 8)
    rgb = load_dataset("image_folder", {"path": str(root)}, [3, 8, 8])
    assert tuple(rgb.train.x.shape) == (5, 3, 8, 8)
    dog = rgb.train.x[rgb.train.y == 1]
    assert (dog == 200).all()  # a grey image becomes three equal channels


@pytest.mark.parametrize("loss, takes, fix", [
    ("binary_crossentropy", "0/1 labels, one output per label",
     "for one 0/1 label per sample, set the last layer's units to 1"),
    ("mse", "values", "for one value per sample, set the last layer's units to 1"),
])
def test_class_ids_for_a_binary_or_regression_loss_name_cross_entropy(tmp_path, loss, takes, fix):
    """Issue 13: binary_crossentropy on a 10-class model said only 'training targets have 1 value(s)
    per sample but the model outputs (10,)'."""
    path, data = npz("digits.npz", x=_images(), y=np.arange(20) % 10)(tmp_path)
    config = tmp_path / "bad.yaml"
    config.write_text(f"name: bad\nmodel: {IMAGE_MODEL}\ndata: {data}\nloss: {loss}\nmetrics: []\n"
                      f"trainer: {{epochs: 1, device: cpu, progress: none, out_dir: {tmp_path / 'runs'}}}\n")
    result = CliRunner().invoke(app, ["train", str(config)])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split("error: ", 1)[1].split())
    canonical = {"binary_crossentropy": "bce_with_logits"}.get(loss, loss)
    assert (f"{path}: training targets have 1 value(s) per sample but the model outputs (10,); HINT: for class ids "
            f"(one of 10 classes per sample) use loss: cross_entropy ({canonical} takes {takes}); {fix}") in message


def test_targets_of_several_values_name_the_units_they_need(tmp_path):
    path, data = npz("pairs.npz", x=_images(), y=np.random.default_rng(0).random((20, 3), dtype=np.float32))(tmp_path)
    config = tmp_path / "bad.yaml"
    config.write_text(f"name: bad\nmodel: {IMAGE_MODEL.replace('dense: 10', 'dense: 2')}\n"
                      f"data: {data}\nloss: mse\nmetrics: []\n"
                      f"trainer: {{epochs: 1, device: cpu, progress: none, out_dir: {tmp_path / 'runs'}}}\n")
    result = CliRunner().invoke(app, ["train", str(config)])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split("error: ", 1)[1].split())
    assert ("training targets have 3 value(s) per sample but the model outputs (2,); HINT: set the last layer's "
            "units to 3 (mse takes values, one output per target value)") in message
