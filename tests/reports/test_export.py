"""dlcli export: TorchScript and the plain state_dict give the checkpoint model's outputs."""

import json

import pytest
import torch

from dlcli.export import export_checkpoint
from dlcli.inference import load_trained
from dlcli.model import build_model

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")


@pytest.fixture(scope="module")
def raw_batch():
    """Raw MNIST-like samples (B, 1, 28, 28): pixel values 0-255."""
    return torch.randint(0, 256, (6, 1, 28, 28), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)


def _predict_path(trained, raw):
    """What dlcli predict computes: normalization and view via DeviceSplit, then probabilities."""
    xb, _ = next(trained.fit_samples(raw).slices(len(raw)))
    return xb, trained.probabilities(xb)


def test_torchscript_gives_the_checkpoint_models_predictions(mnist_run, raw_batch, cli):
    result = cli("export", mnist_run, "--format", "torchscript")
    assert result.exit_code == 0, result.output
    path = mnist_run / "export" / "best.torchscript.pt"
    assert path.is_file() and (mnist_run / "export" / "best.torchscript.json").is_file()
    trained = load_trained(mnist_run, "cpu")
    _, expected = _predict_path(trained, raw_batch)
    extra = {"dlcli.json": ""}
    module = torch.jit.load(str(path), _extra_files=extra)
    torch.testing.assert_close(module(raw_batch.float()), expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(module(raw_batch[:1]), expected[:1], rtol=0, atol=1e-6)  # uint8, another batch size
    assert module(raw_batch.float()).sum(1).tolist() == pytest.approx([1.0] * 6)  # softmax built in
    meta = json.loads(extra["dlcli.json"])
    assert meta["class_names"] == [str(d) for d in range(10)] and meta["input_shape"] == [1, 28, 28]


def test_state_dict_is_plain_tensors_with_a_config_sidecar(mnist_run, raw_batch, tmp_path, cli):
    out = tmp_path / "weights.pt"
    result = cli("export", mnist_run / "checkpoints" / "best.pt", "--format", "state_dict", "--out", out)
    assert result.exit_code == 0, result.output
    weights = torch.load(out, weights_only=True)
    assert type(weights) is dict and all(isinstance(v, torch.Tensor) for v in weights.values())
    sidecar = json.loads((tmp_path / "weights.json").read_text())
    model = build_model(sidecar["config"])
    model.load_state_dict(weights)
    model.eval()
    trained = load_trained(mnist_run, "cpu")
    xb, _ = _predict_path(trained, raw_batch)
    with torch.no_grad():
        # the plain build against the trainer's build (channels_last on the CPU): the same function
        torch.testing.assert_close(model(xb), trained.model(xb), rtol=1e-5, atol=1e-6)
    assert sidecar["normalization"] == trained.normalization


def test_regression_export_returns_values(regression_run, tmp_path):
    export = export_checkpoint(regression_run, "torchscript", tmp_path)
    assert export.path == tmp_path / "best.torchscript.pt"
    trained = load_trained(regression_run, "cpu")
    raw = torch.randn(5, 4, generator=torch.Generator().manual_seed(2))
    _, expected = _predict_path(trained, raw)
    torch.testing.assert_close(torch.jit.load(str(export.path))(raw), expected, rtol=0, atol=1e-6)


def test_onnx_without_the_package_is_a_clear_error(mnist_run, cli, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    result = cli("export", mnist_run, "--format", "onnx")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "needs the onnx package" in result.output and "pip install onnx" in result.output


def test_unknown_format_lists_the_formats(mnist_run, cli):
    result = cli("export", mnist_run, "--format", "torchscrpt")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "did you mean 'torchscript'?" in result.output
    assert "torchscript, onnx, state_dict" in result.output
