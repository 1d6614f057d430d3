"""`dlcli validate` looks at the data a config names (and the device it asks for), and reports
their problems as config problems: `cfg.yaml:LINE: data.path: ...`, exit 2, all at once. `dlcli
train` reports the data errors it meets at the same key and line."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tests.samples import assert_refused

CSV_CONFIG = """\
name: tiny_csv
model:
  input_shape: [2]
  layers:
    - dense: {{units: 3}}
data:
  dataset: csv
  path: {path}
  target: label
  features: [a, b]
  batch_size: 4{extra}
loss: cross_entropy
trainer:
  epochs: 1
  device: cpu
  progress: none
  out_dir: {out}
"""  # data.path is on line 8


def csv_config(write_config, tmp_path, path, extra="", name="config.yaml"):
    return write_config(CSV_CONFIG.format(path=path, extra=extra, out=tmp_path / "runs"), name)


def write_csv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(",".join(str(c) for c in row) for row in rows) + "\n")
    return path


GOOD_ROWS = [["a", "b", "label"], *[[i, i % 3, i % 3] for i in range(12)]]


def located(path, line, key):
    """The start of a problem at config `path`, `line`, `key`, as a regular expression."""
    return re.escape(f"{path}:{line}: {key}: ")


# ---------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------

def test_valid_config_and_data_print_the_summary_and_valid(cli, write_config, tmp_path):
    config = csv_config(write_config, tmp_path, write_csv(tmp_path / "data.csv", GOOD_ROWS))
    result = cli("validate", config)
    assert result.exit_code == 0, result.output
    assert "Total params: 9" in result.stdout and f"{config}: valid" in result.stdout


def test_a_missing_data_file_is_reported_at_data_path_with_exit_2(cli, write_config, tmp_path):
    config = csv_config(write_config, tmp_path, tmp_path / "nope.csv")
    result = cli("validate", config)
    assert_refused(result, located(config, 8, "data.path") + re.escape(f"{tmp_path / 'nope.csv'}: file not found"))
    assert result.stdout == ""  # no summary, no "valid"


def test_csv_header_and_cell_problems_are_reported_all_at_once(cli, write_config, tmp_path):
    data = write_csv(tmp_path / "data.csv", [["a", "lbl"], [1, 0], ["x", 1]])
    result = cli("validate", csv_config(write_config, tmp_path, data))
    config = tmp_path / "config.yaml"
    assert_refused(result, re.escape(f"{config}: 3 problems"),
                   located(config, 8, "data.path") + re.escape(f"{data}: target column 'label' not found; "
                                                               f"did you mean 'lbl'?"),
                   located(config, 8, "data.path") + re.escape(f"{data}: feature column 'b' not found"),
                   located(config, 8, "data.path") + re.escape(f"{data}:3: column 'a' (data row 2): expected a "
                                                               f"number, received 'x'"))


def test_a_test_file_without_the_columns_is_reported_at_data_test_path(cli, write_config, tmp_path):
    data = write_csv(tmp_path / "data.csv", GOOD_ROWS)
    test = write_csv(tmp_path / "test.csv", [["a", "label"], [1, 0]])
    config = csv_config(write_config, tmp_path, data, extra=f"\n  test_path: {test}")
    assert_refused(cli("validate", config),
                   located(config, 12, "data.test_path") + re.escape(f"{test}: expected column 'b' as in {data}"))


def test_no_data_skips_the_data_checks(cli, write_config, tmp_path):
    config = csv_config(write_config, tmp_path, tmp_path / "nope.csv")
    result = cli("validate", config, "--no-data")
    assert result.exit_code == 0, result.output
    assert f"{config}: valid" in result.stdout


def test_validate_reads_the_first_rows_only_and_train_finds_the_rest_at_the_same_key(cli, write_config, tmp_path):
    from dlcli.data.sources.csv import CSV_ROWS_CHECKED

    rows = [*GOOD_ROWS[:1], *[[i, 1, i % 3] for i in range(CSV_ROWS_CHECKED + 50)]]
    rows[CSV_ROWS_CHECKED + 20][1] = "oops"  # past what validate reads: train reads every row
    data = write_csv(tmp_path / "data.csv", rows)
    config = csv_config(write_config, tmp_path, data)
    assert cli("validate", config).exit_code == 0
    result = cli("train", config)
    line = CSV_ROWS_CHECKED + 21  # the header is line 1
    assert_refused(result, located(config, 8, "data.path") + re.escape(f"{data}:{line}: column 'b'"))
    assert not (tmp_path / "runs").exists()  # refused before a run directory was made


def test_train_reports_a_missing_target_column_at_data_path(cli, write_config, tmp_path):
    data = write_csv(tmp_path / "data.csv", [["a", "b", "lbl"], [1, 2, 0], [2, 3, 1]])
    config = csv_config(write_config, tmp_path, data)
    assert_refused(cli("train", config),
                   located(config, 8, "data.path") + re.escape(f"{data}: target column 'label' not found"))


def test_an_override_that_names_the_data_is_named_as_the_place(cli, write_config, tmp_path):
    config = csv_config(write_config, tmp_path, write_csv(tmp_path / "data.csv", GOOD_ROWS))
    missing = tmp_path / "other.csv"
    assert_refused(cli("validate", config, f"data.path={missing}"),
                   re.escape(f"override 'data.path={missing}': data.path: {missing}: file not found"))


# ---------------------------------------------------------------------------
# Relative paths: read from the current directory, and the message says so
# ---------------------------------------------------------------------------

def test_a_relative_path_not_found_says_where_it_looked_and_names_the_file_next_to_the_config(
        cli, write_config, tmp_path, monkeypatch):
    write_csv(tmp_path / "project" / "data" / "train.csv", GOOD_ROWS)
    config = csv_config(write_config, tmp_path, "data/train.csv", name="project/config.yaml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for command in ("validate", "train"):
        result = cli(command, config)
        assert_refused(result, located(config, 8, "data.path")
                       + re.escape(f"{elsewhere / 'data' / 'train.csv'}: file not found"),
                       re.escape(f"a relative data.path, 'data/train.csv', is read from the current directory "
                                 f"{elsewhere}"),
                       re.escape(f"HINT: {tmp_path / 'project' / 'data' / 'train.csv'} exists next to the config: "
                                 f"set data.path: {tmp_path / 'project' / 'data' / 'train.csv'}"))
    monkeypatch.chdir(tmp_path / "project")  # from the config's folder the same config is valid
    assert cli("validate", config).exit_code == 0


def test_a_relative_path_with_nothing_next_to_the_config_gives_no_hint(cli, write_config, tmp_path, monkeypatch):
    config = csv_config(write_config, tmp_path, "missing.csv")
    monkeypatch.chdir(tmp_path)
    result = cli("validate", config)
    assert_refused(result, re.escape(f"a relative data.path, 'missing.csv', is read from the current directory "
                                     f"{tmp_path}"))
    assert "HINT" not in result.output


# ---------------------------------------------------------------------------
# npz
# ---------------------------------------------------------------------------

NPZ_CONFIG = """\
name: tiny_npz
model:
  input_shape: {shape}
  layers:
    - flatten
    - dense: {{units: 3}}
data:
  dataset: npz
  path: {path}{extra}
trainer:
  device: cpu
  progress: none
  out_dir: {out}
"""  # input_shape on line 3, data.path on line 9


def npz_config(write_config, tmp_path, path, shape=(4,), extra=""):
    return write_config(NPZ_CONFIG.format(shape=list(shape), path=path, extra=extra, out=tmp_path / "runs"))


def test_npz_arrays_that_fit_are_valid(cli, write_config, tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((6, 4), np.float32), y=np.arange(6) % 3)
    result = cli("validate", npz_config(write_config, tmp_path, path))
    assert result.exit_code == 0, result.output


def test_npz_keras_images_fit_a_channels_first_model(cli, write_config, tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((6, 5, 5, 3), np.uint8), y=np.arange(6) % 3)  # (N, H, W, C), as Keras keeps them
    result = cli("validate", npz_config(write_config, tmp_path, path, shape=(3, 5, 5)))
    assert result.exit_code == 0, result.output


def test_npz_problems_are_reported_at_their_keys_all_at_once(cli, write_config, tmp_path):
    path, test = tmp_path / "d.npz", tmp_path / "missing_test.npz"
    np.savez(path, x=np.zeros((6, 5), np.float32), y=np.arange(6) % 3, x_val=np.zeros((2, 5)))
    config = npz_config(write_config, tmp_path, path, extra=f"\n  test_path: {test}")
    assert_refused(cli("validate", config), re.escape(f"{config}: 3 problems"),
                   located(config, 3, "model.input_shape")
                   + re.escape(f"{path}: training samples have shape (5,) but model.input_shape is [4]; set "
                               f"model.input_shape to [5]"),
                   located(config, 9, "data.path") + re.escape(f"{path}: expected x_val and y_val together, y_val is "
                                                               f"missing"),
                   located(config, 10, "data.test_path") + re.escape(f"{test}: file not found"))


def test_train_reports_samples_that_do_not_fit_at_model_input_shape(cli, write_config, tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((6, 5), np.float32), y=np.arange(6) % 3)
    config = npz_config(write_config, tmp_path, path)
    assert_refused(cli("train", config), located(config, 3, "model.input_shape")
                   + re.escape(f"npz {path}: training samples have shape (5,) but model.input_shape is [4]; set "
                               f"model.input_shape to [5]"))


def test_npz_with_a_test_split_inside_and_a_test_path_names_data_test_path(cli, write_config, tmp_path):
    path, test = tmp_path / "d.npz", tmp_path / "t.npz"
    arrays = dict(x=np.zeros((6, 4), np.float32), y=np.arange(6) % 3)
    np.savez(path, **arrays, x_test=arrays["x"], y_test=arrays["y"])
    np.savez(test, **arrays)
    config = npz_config(write_config, tmp_path, path, extra=f"\n  test_path: {test}")
    for command in ("validate", "train"):
        assert_refused(cli(command, config), located(config, 10, "data.test_path")
                       + re.escape(f"{path}: holds x_test and y_test, and data.test_path={test} is given too"))


def test_npz_with_too_few_targets_or_no_x_is_refused(cli, write_config, tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((6, 4), np.float32), y=np.arange(5))
    config = npz_config(write_config, tmp_path, path)
    assert_refused(cli("validate", config), located(config, 9, "data.path")
                   + re.escape(f"{path}: expected as many targets as samples, received x with 6 samples and y with 5"))
    np.savez(path, inputs=np.zeros((6, 4), np.float32), y=np.arange(6))
    assert_refused(cli("validate", config), located(config, 9, "data.path")
                   + re.escape(f"{path}: expected an array named 'x'"))


def test_npz_validate_reads_the_array_headers_not_the_arrays(cli, write_config, tmp_path, monkeypatch):
    from dlcli.data.sources import npz

    path = tmp_path / "d.npz"
    np.savez_compressed(path, x=np.zeros((6, 4), np.float32), y=np.arange(6) % 3)

    def no_reading(*args, **kwargs):
        raise AssertionError("validate read the arrays")

    monkeypatch.setattr(npz, "read_npz_arrays", no_reading)
    monkeypatch.setattr(npz, "_npz_array", no_reading)
    result = cli("validate", npz_config(write_config, tmp_path, path))
    assert result.exit_code == 0, result.output
    assert isinstance(cli("train", npz_config(write_config, tmp_path, path)).exception, AssertionError)  # the control


# ---------------------------------------------------------------------------
# image folders
# ---------------------------------------------------------------------------

IMAGES_CONFIG = """\
name: tiny_images
model:
  input_shape: [1, 8, 8]
  layers:
    - flatten
    - dense: {{units: {units}}}
data:
  dataset: image_folder
  path: {path}
trainer:
  device: cpu
"""  # the last layer on line 6, data.path on line 9


def make_images(root, classes, per_class=2):
    from PIL import Image

    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.new("L", (8, 8), 10 * i).save(root / name / f"{i}.png")
    return root


def test_an_image_folder_with_classes_is_valid(cli, write_config, tmp_path):
    root = make_images(tmp_path / "images", ["cat", "dog"])
    result = cli("validate", write_config(IMAGES_CONFIG.format(units=2, path=root)))
    assert result.exit_code == 0, result.output


def test_an_image_folder_without_class_folders_or_missing_is_refused(cli, write_config, tmp_path):
    root = tmp_path / "images"
    config = write_config(IMAGES_CONFIG.format(units=2, path=root))
    assert_refused(cli("validate", config), located(config, 9, "data.path") + re.escape(f"{root}: not found"))
    root.mkdir()
    (root / "loose.png").write_bytes(b"")
    assert_refused(cli("validate", config), located(config, 9, "data.path")
                   + re.escape(f"{root}: expected one folder per class with images inside"))
    (root / "empty_class").mkdir()
    assert_refused(cli("validate", config), located(config, 9, "data.path")
                   + re.escape(f"{root / 'empty_class'}: expected images"))


def test_more_class_folders_than_model_outputs_names_the_last_layer(cli, write_config, tmp_path):
    root = make_images(tmp_path / "images", ["a", "b", "c"])
    config = write_config(IMAGES_CONFIG.format(units=2, path=root))
    assert_refused(cli("validate", config), located(config, 6, "model.layers[1]")
                   + re.escape(f"{root}: has 3 class folders (a, b, c) but the model outputs 2 values; set the last "
                               "layer's units to 3"))


# ---------------------------------------------------------------------------
# shipped and downloadable data sets
# ---------------------------------------------------------------------------

def test_mnist_files_missing_are_reported_at_data_dataset(cli, write_config, tiny_config_text, tmp_path, monkeypatch):
    from dlcli.data.sources import mnist

    monkeypatch.setattr(mnist, "MNIST_DIR", tmp_path / "gone")
    config = write_config(tiny_config_text)
    assert_refused(cli("validate", config), located(config, 10, "data.dataset")
                   + re.escape(f"{tmp_path / 'gone'}: SHA256SUMS, train-images-idx3-ubyte.gz"))


TORCHVISION_CONFIG = """\
model:
  input_shape: [1, 28, 28]
  layers: [flatten, {{dense: {{units: 10}}}}]
data:
  dataset: fashion_mnist
  root: {root}
  download: {download}
trainer: {{device: cpu}}
"""


def test_a_torchvision_set_not_in_root_is_reported_at_data_root_unless_download(cli, write_config, tmp_path):
    pytest.importorskip("torchvision")
    root = tmp_path / "cache"
    config = write_config(TORCHVISION_CONFIG.format(root=root, download="false"))
    assert_refused(cli("validate", config), located(config, 6, "data.root")
                   + re.escape(f"fashion_mnist: the data set is not in {root}. Set data.download=true"))
    assert cli("validate", config, "data.download=true").exit_code == 0  # train downloads; validate does not
    assert not root.exists()


def test_a_torchvision_set_whose_files_are_in_root_is_valid(cli, write_config, tmp_path):
    pytest.importorskip("torchvision")
    import torchvision.datasets

    from dlcli.data.sources.torchvision import torchvision_files

    root = tmp_path / "cache"
    files = torchvision_files(torchvision.datasets.FashionMNIST, root)
    assert len(files) == 4
    for file in files:
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(b"")
    result = cli("validate", write_config(TORCHVISION_CONFIG.format(root=root, download="false")))
    assert result.exit_code == 0, result.output


# ---------------------------------------------------------------------------
# the device
# ---------------------------------------------------------------------------

def test_a_device_that_is_not_there_is_reported_at_trainer_device(cli, write_config, tiny_config_text, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = write_config(tiny_config_text.replace("device: cpu", "device: cuda"))
    for command in ("validate", "train"):
        assert_refused(cli(command, config), located(config, 17, "trainer.device")
                       + re.escape("cuda was asked for but CUDA is not available on this machine; HINT: "
                                   "trainer.device=auto or trainer.device=cpu"))


def test_device_and_data_problems_are_reported_together(cli, write_config, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = csv_config(write_config, tmp_path, tmp_path / "nope.csv")
    assert_refused(cli("validate", config, "trainer.device=cuda"), re.escape(f"{config}: 2 problems"),
                   re.escape("override 'trainer.device=cuda': trainer.device: cuda was asked for"),
                   located(config, 8, "data.path"))


def test_a_path_the_file_system_refuses_is_a_problem_at_its_key(cli, write_config, tmp_path):
    config = csv_config(write_config, tmp_path, tmp_path / ("a" * 300) / "x.csv")  # a name longer than NAME_MAX
    assert_refused(cli("validate", config), located(config, 8, "data.path"), "File name too long")


def test_csv_features_that_do_not_fit_input_shape_are_refused_as_train_would(cli, write_config, tmp_path):
    """Two feature columns against a model that takes three: validate said valid, train refused."""
    config = write_config(CSV_CONFIG.format(path=write_csv(tmp_path / "data.csv", GOOD_ROWS), extra="",
                                            out=tmp_path / "runs").replace("input_shape: [2]", "input_shape: [3]"))
    result = cli("validate", config)
    assert_refused(result, located(config, 3, "model.input_shape") + re.escape(
        f"{tmp_path / 'data.csv'}: training samples have shape (2,) but model.input_shape is [3]"))
    train = cli("train", config)
    assert_refused(train, located(config, 3, "model.input_shape") + "(csv )?" + re.escape(
        f"{tmp_path / 'data.csv'}: training samples have shape (2,)"))


def test_npz_with_a_validation_split_inside_and_val_split_names_data_val_split(cli, write_config, tmp_path):
    path = tmp_path / "d.npz"
    x = np.zeros((8, 4), np.float32)
    np.savez(path, x=x, y=np.zeros(8, np.int64), x_val=x[:2], y_val=np.zeros(2, np.int64))
    config = npz_config(write_config, tmp_path, path, extra="\n  val_split: 0.25")
    result = cli("validate", config)
    assert_refused(result, located(config, 10, "data.val_split") + re.escape(
        f"{path}: holds a validation split (x_val, y_val), and data.val_split: 0.25 asks to hold out another"))
    assert cli("validate", npz_config(write_config, tmp_path, path)).exit_code == 0
