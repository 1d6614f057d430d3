"""dlcli trains end to end on each kind of user data, on tiny files the test makes."""

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from dlcli.checkpoint import load_checkpoint
from dlcli.config import config_from_text
from dlcli.train import train


def _run(tmp_path, model, data, loss="cross_entropy"):
    cfg = config_from_text(f"""
model: {model}
data: {data}
loss: {loss}
trainer: {{epochs: 2, device: cpu, progress: none, out_dir: {tmp_path / 'runs'}}}
""")
    return train(cfg)


def test_npz_classification(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    np.savez(tmp_path / "d.npz", x=x, y=y, x_test=x[:40], y_test=y[:40])
    summary = _run(tmp_path, "{input_shape: [8], layers: [{dense: {units: 16, activation: relu}}, {dense: 2}]}",
                   f"{{dataset: npz, path: {tmp_path / 'd.npz'}, batch_size: 16, val_split: 0.2}}")
    assert summary["status"] == "finished" and 0 <= summary["test"]["accuracy"] <= 1


def test_npz_images_stored_channels_last_train_evaluate_and_predict_as_channels_first(tmp_path):
    """Keras keeps images as (N, H, W, C): the same run, the same figures and predictions."""
    from dlcli.predict import predict
    from dlcli.reports import evaluate_checkpoint

    rng = np.random.default_rng(0)
    x = rng.random((60, 3, 6, 5)).astype(np.float32)  # (N, C, H, W)
    y = (x[:, 0].mean((1, 2)) > x[:, 1].mean((1, 2))).astype(np.int64)
    np.savez(tmp_path / "first.npz", x=x, y=y, x_test=x[:20], y_test=y[:20])
    np.savez(tmp_path / "last.npz", x=x.transpose(0, 2, 3, 1), y=y, x_test=x[:20].transpose(0, 2, 3, 1),
             y_test=y[:20])
    model = "{input_shape: [3, 6, 5], layers: [{conv2d: {filters: 4, kernel_size: 3}}, flatten, {dense: 2}]}"
    runs = {}
    for name in ("first", "last"):
        (tmp_path / name).mkdir()
        runs[name] = _run(tmp_path / name, model, f"{{dataset: npz, path: {tmp_path / name}.npz, batch_size: 16}}")
    a, b = (load_checkpoint(f"{runs[n]['run_dir']}/checkpoints/last.pt")["model"] for n in ("first", "last"))
    assert all(torch.equal(a[k], b[k]) for k in a) and runs["first"]["test"] == runs["last"]["test"]
    report = {n: evaluate_checkpoint(runs["first"]["run_dir"], data=tmp_path / f"{n}.npz").report
              for n in ("first", "last")}
    assert report["first"]["loss"] == report["last"]["loss"] and report["first"]["samples"] == 20  # the test part
    predicted = {n: predict(runs["first"]["run_dir"], [tmp_path / f"{n}.npz"]).rows for n in ("first", "last")}
    assert [r["predictions"] for r in predicted["first"]] == [r["predictions"] for r in predicted["last"]]


def test_csv_time_series_windows_regression(tmp_path):
    path = tmp_path / "series.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["t", "value"])
        for t in range(200):
            writer.writerow([t, float(np.sin(t / 5))])
    summary = _run(tmp_path, "{input_shape: [10, 1], layers: [{gru: 8}, {dense: 1}]}",
                   f"{{dataset: csv, path: {path}, target: value, features: [value], window: 10, batch_size: 32}}",
                   loss="mse")
    assert summary["status"] == "finished"
    assert set(summary["last"]) >= {"train_loss", "train_mae"}
    for name in ("best.pt", "last.pt"):
        assert load_checkpoint(f"{summary['run_dir']}/checkpoints/{name}")["feature_names"] == ["value"]


def test_csv_runs_record_their_feature_columns_in_order(tmp_path):
    """With data.features null (every column but the target, in the file's order), the
    checkpoints say which columns the model reads, and in which order: predict and evaluate
    --data select them by name. A windowed CSV records them too; other data records none."""
    path = tmp_path / "table.csv"
    rows = [[i, i % 2, 2 * i] for i in range(24)]
    path.write_text("c,y,a\n" + "".join(f"{c},{y},{a}\n" for c, y, a in rows))
    for window, shape in ((None, "[2]"), (3, "[3, 2]")):
        (tmp_path / str(window)).mkdir()
        summary = _run(tmp_path / str(window), f"{{input_shape: {shape}, layers: [flatten, {{dense: 2}}]}}",
                       f"{{dataset: csv, path: {path}, target: y, window: {window or 'null'}, batch_size: 8}}")
        for name in ("best.pt", "last.pt"):
            assert load_checkpoint(f"{summary['run_dir']}/checkpoints/{name}")["feature_names"] == ["c", "a"]
    npz = tmp_path / "d.npz"
    np.savez(npz, x=np.zeros((8, 2), np.float32), y=np.arange(8) % 2)
    summary = _run(tmp_path, "{input_shape: [2], layers: [{dense: 2}]}", f"{{dataset: npz, path: {npz}}}")
    assert load_checkpoint(f"{summary['run_dir']}/checkpoints/last.pt")["feature_names"] is None


def test_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i in range(12):
            pixels = rng.integers(0, 255, size=(20, 24, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "imgs" / label / f"{i}.png")
    summary = _run(tmp_path, "{input_shape: [3, 16, 16], layers: [{conv2d: {filters: 4, kernel_size: 3, "
                             "activation: relu}}, {maxpool2d: 2}, flatten, {dense: 2}]}",
                   f"{{dataset: image_folder, path: {tmp_path / 'imgs'}, batch_size: 8}}")
    assert summary["status"] == "finished"


@pytest.mark.parametrize("config", ["mnist_lstm", "mnist_deep_cnn", "mnist_cnn_keras"])
def test_shipped_configs_train_on_a_subset(tmp_path, config, repo_root):
    from dlcli.config import load_config

    cfg = load_config(repo_root / "configs" / f"{config}.yaml",
                      ["trainer.epochs=1", "data.subset=256", "data.test_subset=128", "trainer.device=cpu",
                       "trainer.progress=none", f"trainer.out_dir={tmp_path}"])
    summary = train(cfg)
    assert summary["status"] == "finished" and summary["test"]["accuracy"] > 0.1


def test_class_weights_train_on_the_device_of_the_run(tmp_path):
    """Keras's class_weight: the loss's weight tensor goes where the model trains; evaluate too."""
    from dlcli.reports import evaluate_checkpoint

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4)).astype(np.float32)
    y = (x[:, 0] > 1).astype(np.int64)  # rare positives
    np.savez(tmp_path / "d.npz", x=x, y=y, x_test=x[:20], y_test=y[:20])
    summary = _run(tmp_path, "{input_shape: [4], layers: [{dense: 2}]}",
                   f"{{dataset: npz, path: {tmp_path / 'd.npz'}, batch_size: 16}}",
                   loss="{type: cross_entropy, class_weights: [1.0, 6.0]}")
    assert summary["status"] == "finished"
    assert evaluate_checkpoint(summary["run_dir"]).report["samples"] == 20
