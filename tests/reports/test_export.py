"""dlcli export: TorchScript, ONNX (run with onnxruntime) and the plain state_dict give
the checkpoint model's outputs."""

import importlib
import json
import os
import re
import sys
from pathlib import Path

import pytest
import torch

from dlcli.export import FORMATS, ONNX_PACKAGES, export_checkpoint
from dlcli.inference import load_trained
from dlcli.layers._modules import ActivatedPool, PaddedPool
from dlcli.model import build_model
from tests.samples import assert_refused

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


def run_onnx(path, x):
    """(session, outputs) of an .onnx file run by onnxruntime (a test-extra package) on the CPU."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session, torch.from_numpy(session.run(["output"], {"input": x.numpy()})[0])


def test_onnx_gives_the_checkpoint_models_predictions(mnist_run, raw_batch, cli):
    result = cli("export", mnist_run, "--format", "onnx")
    assert result.exit_code == 0, result.output
    path = mnist_run / "export" / "best.onnx"
    assert not path.with_name("best.onnx.data").exists()  # weights inside
    trained = load_trained(mnist_run, "cpu")
    assert any(isinstance(m, ActivatedPool) for m in trained.model.modules())  # conv's relu moved after the pool
    _, expected = _predict_path(trained, raw_batch)
    session, outputs = run_onnx(path, raw_batch.float())  # 6 samples: the export traced 2
    torch.testing.assert_close(outputs, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(run_onnx(path, raw_batch[:1].float())[1], expected[:1], rtol=0, atol=1e-5)
    (model_input,) = session.get_inputs()
    assert (model_input.name, model_input.type, model_input.shape) == ("input", "tensor(float)", ["batch", 1, 28, 28])

    sidecar = json.loads((mnist_run / "export" / "best.onnx.json").read_text())
    assert sidecar["format"] == "dlcli-export-onnx" and sidecar["input_shape"] == [1, 28, 28]
    assert sidecar["class_names"] == [str(d) for d in range(10)] and sidecar["task"] == "classification"
    assert sidecar["normalization"] == trained.normalization and sidecar["config"] == trained.cfg
    assert "float32" in sidecar["input"] and sidecar["output"].startswith("class probabilities")
    assert sidecar["load"].startswith("onnxruntime.InferenceSession(path)") and "external_data" not in sidecar


def test_onnx_lstm_matches_predict_and_torchscript(lstm_run, tmp_path):
    onnx = export_checkpoint(lstm_run, "onnx", tmp_path)
    script = export_checkpoint(lstm_run, "torchscript", tmp_path)
    assert onnx.path == tmp_path / "best.onnx" and onnx.sidecar == tmp_path / "best.onnx.json"
    trained = load_trained(lstm_run, "cpu")
    raw = torch.randint(0, 256, (5, 1, 28, 28), generator=torch.Generator().manual_seed(3)).float()
    _, expected = _predict_path(trained, raw)
    steps = raw.reshape(5, 28, 28)  # model.input_shape: each image row one step
    session, outputs = run_onnx(onnx.path, steps)
    torch.testing.assert_close(outputs, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(outputs, torch.jit.load(str(script.path))(steps), rtol=0, atol=1e-5)
    assert session.get_inputs()[0].shape == ["batch", 28, 28]
    sidecar = json.loads(onnx.sidecar.read_text())
    assert sidecar["input_shape"] == [28, 28] and sidecar["config"]["model"]["layers"][1]["bidirectional"] is True


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


def test_torchscript_refuses_channels_last_images_naming_both_shapes(images_run, tmp_path):
    export = export_checkpoint(images_run, "torchscript", tmp_path)
    module = torch.jit.load(str(export.path))
    trained = load_trained(images_run, "cpu")
    raw = torch.randint(0, 256, (5, 3, 8, 8), generator=torch.Generator().manual_seed(4)).float()  # (B, C, H, W)
    _, expected = _predict_path(trained, raw)
    torch.testing.assert_close(module(raw), expected, rtol=0, atol=1e-6)
    channels_last = raw.permute(0, 2, 3, 1).contiguous()  # (B, H, W, C): the same count of values
    with pytest.raises(Exception, match=re.escape(
            "input of shape [5, 8, 8, 3]: expected (B, 3, 8, 8) channels-first (B, C, H, W); transpose "
            "channels-last (B, 8, 8, 3) arrays first: x.permute(0, 3, 1, 2) (numpy: x.transpose(0, 3, 1, 2))")):
        module(channels_last)
    with pytest.raises(Exception, match=re.escape("input of shape [5, 192]: expected (B, 3, 8, 8)")):
        module(raw.reshape(5, 192))
    torch.testing.assert_close(module(channels_last.permute(0, 3, 1, 2)), expected, rtol=0, atol=1e-6)
    sidecar = json.loads(export.sidecar.read_text())
    assert "(B, 3, 8, 8) channels-first" in sidecar["input"] and "x.transpose(0, 3, 1, 2)" in sidecar["input"]
    assert "x = (x - mean[c]) / std[c] for each channel c on axis 1" in sidecar["input"]
    assert "values as in the data files" not in sidecar["input"]


@pytest.mark.parametrize("run, shapes", [
    ("mnist_run", [(1, 28, 28), (28, 28, 1), (28, 28), (784,)]),
    ("lstm_run", [(28, 28), (1, 28, 28), (28, 28, 1), (784,), (14, 56)]),
    ("regression_run", [(4,), (2, 2), (1, 4), (4, 1), (5,)])])
def test_torchscript_takes_the_shapes_predict_takes(run, shapes, request, tmp_path):
    from dlcli.errors import DataError

    folder = request.getfixturevalue(run)
    module = torch.jit.load(str(export_checkpoint(folder, "torchscript", tmp_path).path))
    trained = load_trained(folder, "cpu")
    accepted = []
    for shape in shapes:
        raw = torch.randint(0, 256, (3, *shape), generator=torch.Generator().manual_seed(5)).float()
        try:
            _, expected = _predict_path(trained, raw)
        except DataError:
            with pytest.raises(Exception, match=re.escape(f"input of shape {[3, *shape]}: expected (B, ")):
                module(raw)
            continue
        torch.testing.assert_close(module(raw), expected, rtol=0, atol=1e-5)
        accepted.append(shape)
    assert accepted == {"mnist_run": [(1, 28, 28)], "lstm_run": [(28, 28), (1, 28, 28)],
                        "regression_run": [(4,), (4, 1)]}[run]


def test_state_dict_recipe_followed_literally_gives_predicts_outputs(tmp_path):
    checkpoint = _untrained_checkpoint(tmp_path, "conv2d")  # batchnorm (running statistics set) and dropout
    export = export_checkpoint(checkpoint, "state_dict", tmp_path / "weights.pt")
    sidecar = json.loads(export.sidecar.read_text())
    assert "needs dlcli" not in sidecar["requires"] and sidecar["requires"].startswith("dlcli installed")
    assert "--format torchscript" in sidecar["requires"]
    scope = {"sidecar": sidecar, "path": str(export.path)}
    exec(sidecar["load"], scope)  # the recipe, as written
    model = scope["model"]
    assert not model.training
    trained = load_trained(checkpoint, "cpu")
    raw = _raw_samples(trained.input_shape, 4, False, seed=2)
    norm = sidecar["normalization"]
    assert norm["axis"] == 1 and "for each channel c on axis 1" in sidecar["input"]
    mean, std = (torch.tensor(norm[key]).reshape(1, -1, 1, 1) for key in ("mean", "std"))
    running = [buffer.clone() for buffer in model.buffers()]
    with torch.no_grad():
        outputs = torch.softmax(model((raw - mean) / std), dim=1)  # the sidecar's formula, then the logits' softmax
    _, expected = _predict_path(trained, raw)
    torch.testing.assert_close(outputs, expected, rtol=1e-4, atol=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(running, model.buffers()))  # batchnorm statistics untouched


@pytest.mark.parametrize("fmt", ["torchscript", "onnx", "state_dict"])
def test_csv_exports_name_the_feature_columns_in_order(fmt, table_run, tmp_path):
    export = export_checkpoint(table_run, fmt, tmp_path)
    sidecar = json.loads(export.sidecar.read_text())
    assert sidecar["config"]["data"]["features"] is None  # the config alone does not say
    assert sidecar["feature_names"] == ["a", "b", "c", "d"]
    assert "the 4 features in the order of feature_names" in sidecar["input"]
    assert "for each feature c on axis 1, the last" in sidecar["input"]
    assert "H, W" not in sidecar["input"]  # a table's samples are no images


def test_regression_export_returns_values(regression_run, tmp_path):
    export = export_checkpoint(regression_run, "torchscript", tmp_path)
    assert export.path == tmp_path / "best.torchscript.pt"
    trained = load_trained(regression_run, "cpu")
    raw = torch.randn(5, 4, generator=torch.Generator().manual_seed(2))
    _, expected = _predict_path(trained, raw)
    torch.testing.assert_close(torch.jit.load(str(export.path))(raw), expected, rtol=0, atol=1e-6)


def test_onnx_weights_past_the_protobuf_limit_go_beside_the_model(mnist_run, raw_batch, tmp_path, cli,
                                                                    monkeypatch):
    monkeypatch.setattr("dlcli.export.ONNX_INLINE_LIMIT", 1000)  # as if the weights were over 1.5 GiB
    result = cli("export", mnist_run, "--format", "onnx", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.onnx", "best.onnx.data", "best.onnx.json"]
    assert (tmp_path / "best.onnx").stat().st_size < 20_000 < (tmp_path / "best.onnx.data").stat().st_size
    assert "weights: best.onnx.data" in " ".join(result.output.split())
    assert json.loads((tmp_path / "best.onnx.json").read_text())["external_data"].startswith("best.onnx.data")
    _, expected = _predict_path(load_trained(mnist_run, "cpu"), raw_batch)
    torch.testing.assert_close(run_onnx(tmp_path / "best.onnx", raw_batch.float())[1], expected, rtol=0, atol=1e-5)


def test_a_layer_the_onnx_exporter_cannot_capture_is_named(mnist_run, tmp_path, cli, monkeypatch):
    from dlcli.layers._modules import Dense

    plain = Dense.forward

    def branching(self, x):  # data-dependent control flow: torch.export cannot capture it
        return plain(self, x) if x.sum() > 0 else plain(self, -x)

    monkeypatch.setattr(Dense, "forward", branching)
    result = cli("export", mnist_run, "--format", "onnx", "--out", tmp_path / "model.onnx")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "def forward" not in result.output  # torch's graph dumps
    message = " ".join(result.output.split())
    assert re.search(r"best\.pt: ONNX export failed at model\.layers\[4\] \(dense\): \w+: \S", message), message
    assert message.endswith("; --format torchscript may still work") and "\x1b" not in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("missing, says", [
    (["onnx"], "needs the onnx package, which is not installed"),
    (["onnxscript"], "needs the onnxscript package, which is not installed"),
    (["onnx", "onnxscript"], "needs the onnx and onnxscript packages, which are not installed")])
def test_onnx_without_its_packages_is_a_clear_error(missing, says, mnist_run, tmp_path, cli, monkeypatch):
    for name in ONNX_PACKAGES:
        importlib.import_module(name)  # imported before, so that only `missing` are missing below
    for name in missing:
        monkeypatch.setitem(sys.modules, name, None)  # `import name` raises ImportError, as when not installed
    out = tmp_path / "model.onnx"
    result = cli("export", mnist_run, "--format", "onnx", "--out", out)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    message = " ".join(result.output.split())
    assert f"--format onnx {says} (optional for dlcli): pip install -e '.[onnx]' in the dlcli checkout (or pip " \
           f"install onnx onnxscript); or export --format torchscript" in message
    assert not out.exists()


def test_unknown_format_lists_the_formats(mnist_run, cli):
    result = cli("export", mnist_run, "--format", "torchscrpt")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "did you mean 'torchscript'?" in result.output
    assert "torchscript, onnx, state_dict" in result.output


# ---------------------------------------------------------------------------
# --out never replaces the checkpoint, a run's files, or a file that is not an earlier
# export (without --force), and its suffix fits the format
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, given, out", [
    ("state_dict", "checkpoints/last.pt", "checkpoints/last.pt"),  # audit 3 #1: the run could not resume
    ("torchscript", "", "checkpoints/best.pt"),  # a run directory means its best.pt
    ("state_dict", "checkpoints/best.pt", "checkpoints/../checkpoints/best.pt"),
])
@pytest.mark.parametrize("force", [False, True])
def test_out_that_is_the_checkpoint_is_refused_even_with_force(fmt, given, out, force, run_copy, cli):
    from dlcli.checkpoint import load_checkpoint

    checkpoint = run_copy / (given or "checkpoints/best.pt")
    before = checkpoint.read_bytes()
    result = cli("export", run_copy / given, "--format", fmt, "--out", run_copy / out, *["--force"] * force)
    assert_refused(result, rf"--out {re.escape(str(run_copy / out))} is the checkpoint {re.escape(str(checkpoint))}, "
                     rf"which this command reads; .* e\.g\. {re.escape(str(run_copy / 'export'))}/\w+\.{fmt}\.pt "
                     rf"\(--force never replaces an input\)")
    assert checkpoint.read_bytes() == before
    assert load_checkpoint(checkpoint)["epoch"] >= 1


def test_out_that_links_to_the_checkpoint_isassert_refused(run_copy, tmp_path, cli):
    checkpoint = run_copy / "checkpoints" / "last.pt"
    before = checkpoint.read_bytes()
    out = tmp_path / "weights.pt"
    os.link(checkpoint, out)
    result = cli("export", checkpoint, "--format", "state_dict", "--out", out, "--force")
    assert_refused(result, rf"--out {re.escape(str(out))} is the checkpoint {re.escape(str(checkpoint))}")
    assert checkpoint.read_bytes() == before


@pytest.mark.parametrize("out, says", [
    ("checkpoints/model.torchscript.pt", r" is inside the run's checkpoints folder .*/run/checkpoints"),
    ("checkpoints/sub/model.torchscript.pt", r" is inside the run's checkpoints folder .*/run/checkpoints"),
    ("summary.pt", r": its sidecar .*/run/summary\.json is the run record .*summary\.json"),  # the sidecar
])
def test_out_among_a_runs_own_files_is_refused_even_with_force(out, says, run_copy, cli):
    before = {p: p.read_bytes() for p in run_copy.rglob("*") if p.is_file()}
    result = cli("export", run_copy, "--out", run_copy / out, "--force")
    assert_refused(result, rf"--out {re.escape(str(run_copy / out))}{says}", r"\(--force never writes there\)")
    assert {p: p.read_bytes() for p in run_copy.rglob("*") if p.is_file()} == before


def test_link_into_the_checkpoints_folder_isassert_refused(run_copy, tmp_path, cli):
    (tmp_path / "elsewhere").symlink_to(run_copy / "checkpoints")
    out = tmp_path / "elsewhere" / "model.pt"
    result = cli("export", run_copy, "--out", out)
    assert_refused(result, rf"--out {re.escape(str(out))} is inside the run's checkpoints folder")
    assert not (run_copy / "checkpoints" / "model.pt").exists()


@pytest.mark.parametrize("fmt, out, expected", [
    ("onnx", "model.txt", r"expected a \.onnx file name for --format onnx \(the default is best\.onnx\), "
                          r"received \.txt"),
    ("onnx", "model.pt", r"expected a \.onnx file name for --format onnx"),
    ("torchscript", "model.onnx", r"expected a \.pt or \.pth file name for --format torchscript \(the default is "
                                  r"best\.torchscript\.pt\), received \.onnx"),
    ("state_dict", "weights", r"expected a \.pt or \.pth file name for --format state_dict \(the default is "
                              r"best\.state_dict\.pt\), received no extension"),
])
def test_out_suffix_must_fit_the_format(fmt, out, expected, table_run, tmp_path, cli):
    result = cli("export", table_run, "--format", fmt, "--out", tmp_path / out)
    assert_refused(result, rf"--out {re.escape(str(tmp_path / out))}: {expected}")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("existing, text", [
    ("model.pt", "someone's model"),  # no sidecar beside it
    ("model.json", '{"format": "my-own"}'),  # the sidecar's name is taken by another JSON
])
def test_existing_file_that_is_not_an_export_needs_force(existing, text, table_run, tmp_path, cli):
    (tmp_path / existing).write_text(text)
    out = tmp_path / "model.pt"
    result = cli("export", table_run, "--format", "state_dict", "--out", out)
    what = (r"exists and is not a dlcli export \(no export sidecar model\.json beside it\)"
            if existing == "model.pt" else
            rf": its sidecar {re.escape(str(tmp_path / 'model.json'))} exists and is not a dlcli export sidecar")
    assert_refused(result, rf"--out {re.escape(str(out))} ?{what}; expected a new file name, or --force to replace it")
    assert [p.name for p in tmp_path.iterdir()] == [existing] and (tmp_path / existing).read_text() == text
    result = cli("export", table_run, "--format", "state_dict", "--out", out, "--force")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "model.json").read_text())["format"] == "dlcli-export-state_dict"
    assert type(torch.load(out, weights_only=True)) is dict


@pytest.mark.parametrize("fmt", ["torchscript", "state_dict", "onnx"])
def test_rerun_replaces_its_own_export_and_nothing_else(fmt, run_copy, tmp_path, cli):
    """The same export twice succeeds, to the default path or an --out, the second replacing the
    first's files; once the sidecar is gone the file is no longer recognisably an export."""
    from dlcli.export import sidecar_path

    for out in ([], ["--out", tmp_path / f"model{FORMATS[fmt]}"]):
        for _ in range(2):
            result = cli("export", run_copy, "--format", fmt, *out)
            assert result.exit_code == 0, result.output
    target = tmp_path / f"model{FORMATS[fmt]}"
    assert sorted(p.name for p in (run_copy / "export").iterdir()) == sorted(
        [f"best{FORMATS[fmt]}", sidecar_path(Path(f"best{FORMATS[fmt]}")).name])
    sidecar_path(target).unlink()
    assert_refused(cli("export", run_copy, "--format", fmt, "--out", target), "exists and is not a dlcli export")


# ---------------------------------------------------------------------------
# ONNX across the registries: untrained checkpoints of models that, together,
# hold every registered layer type and activation
# ---------------------------------------------------------------------------

ONNX_MODELS = {
    "conv2d": ([3, 12, 12], "cross_entropy", [
        "conv2d: {filters: 4, kernel_size: 3, padding: same, activation: relu}",  # relu moves after the pool
        "maxpool2d: 2", "conv2d: {filters: 4, kernel_size: [2, 3], activation: gelu}",
        "avgpool2d: {pool_size: 3, strides: 1, padding: same}", "batchnorm", "dropout: 0.3", "global_avgpool2d", "dense: 5"]),
    "conv2d_binary": ([3, 8, 8], "bce_with_logits", [
        "conv2d: {filters: 4, kernel_size: 3, strides: 2, activation: leaky_relu}", "global_maxpool2d",
        "layernorm", "dense: 1"]),
    "conv1d": ([2, 30], "cross_entropy", [
        "conv1d: {filters: 4, kernel_size: 4, padding: same, activation: relu}",
        "maxpool1d: {pool_size: 4, strides: 1, padding: same}", "conv1d: {filters: 4, kernel_size: 3, dilation_rate: 2}",
        "avgpool1d: {pool_size: 2, strides: 1, padding: same}", "global_maxpool1d", "dense: 10"]),
    "conv1d_regression": ([2, 30], "mse", ["conv1d: {filters: 4, kernel_size: 3}", "global_avgpool1d", "dense: 2"]),
    "recurrent": ([96], "cross_entropy", [
        "reshape: {target_shape: [8, 12]}", "simple_rnn: {units: 8, return_sequences: true}",
        "lstm: {units: 8, bidirectional: true, return_sequences: true}",
        "gru: {units: 8, num_layers: 2, dropout: 0.1}", "dense: 10"]),
    "embedding": ([12], "cross_entropy", [  # Keras's Embedding -> Conv1D -> GRU: conv1d wants (channels, length)
        "embedding: {input_dim: 50, output_dim: 8}", "permute: [2, 1]", "conv1d: {filters: 4, kernel_size: 3}",
        "permute: [2, 1]", "gru: {units: 8}", "dense: 3"]),
    "activations": ([4, 5], "nll", ["flatten", "dense: 12"] + [f"activation: {name}" for name in (
        "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "mish", "sigmoid", "hard_sigmoid", "tanh",
        "softplus", "softsign", "softmax", "linear")] + ["dense: 4", "activation: log_softmax"]),
}


def _raw_samples(input_shape, count, ids, seed):
    generator = torch.Generator().manual_seed(seed)
    if ids:
        return torch.randint(0, 50, (count, *input_shape), generator=generator)
    return torch.rand((count, *input_shape), generator=generator) * 255


def _untrained_checkpoint(folder, case):
    """checkpoints/best.pt of a freshly initialized model, normalized as training would for its data."""
    from dlcli.checkpoint import save_checkpoint
    from dlcli.config import config_from_text
    from dlcli.data.prepare import normalization_stats

    input_shape, loss, layers = ONNX_MODELS[case]
    text = (f"name: {case}\nseed: 0\nmodel:\n  input_shape: {input_shape}\n  layers:\n"
            + "".join(f"    - {layer}\n" for layer in layers)
            + f"data: {{dataset: npz, path: {folder / 'unused.npz'}}}\nloss: {loss}\ntrainer: {{device: cpu}}\n")
    cfg = config_from_text(text, f"{case}.yaml")
    torch.manual_seed(0)
    model = build_model(cfg)
    for name, buffer in model.named_buffers():  # batchnorm statistics other than the initial 0 and 1
        if name.endswith("running_mean") or name.endswith("running_var"):
            buffer.copy_(torch.rand(buffer.shape) + 0.5)
    training_like = _raw_samples(input_shape, 16, case == "embedding", seed=0)
    path = folder / "checkpoints" / "best.pt"
    path.parent.mkdir(parents=True)
    save_checkpoint(path, {"config": cfg, "model": model.state_dict(), "epoch": 0, "step": 0,
                           "normalization": normalization_stats(training_like)})
    return path


def test_onnx_models_cover_every_layer_and_activation():
    from dlcli.activations import ACTIVATIONS
    from dlcli.layers import LAYERS

    layers = [layer for _, _, listed in ONNX_MODELS.values() for layer in listed]
    assert len(layers) == 51
    assert {re.match(r"\w+", layer)[0] for layer in layers} == set(LAYERS.names())
    assert set(re.findall(r"activation: (\w+)", " ".join(layers))) == set(ACTIVATIONS.names())


@pytest.mark.parametrize("case", list(ONNX_MODELS))
def test_onnx_export_of_every_layer_type_matches_predict(case, tmp_path):
    checkpoint = _untrained_checkpoint(tmp_path, case)
    export = export_checkpoint(checkpoint, "onnx", tmp_path / "model.onnx")
    trained = load_trained(checkpoint, "cpu")
    fused = any(isinstance(module, ActivatedPool) for module in trained.model.modules())
    assert fused == (case in ("conv2d", "conv1d"))  # the trainer's rewrite is what gets exported
    padded = sorted(module.kind for module in trained.model.modules() if isinstance(module, PaddedPool))
    assert padded == (["avg", "max"] if case == "conv1d" else [])  # Keras's uneven same padding
    raw = _raw_samples(trained.input_shape, 5, case == "embedding", seed=1)  # the export traced 2
    _, expected = _predict_path(trained, raw)
    session, outputs = run_onnx(export.path, raw)
    torch.testing.assert_close(outputs, expected, rtol=1e-4, atol=1e-5)
    assert session.get_inputs()[0].type == ("tensor(int64)" if case == "embedding" else "tensor(float)")
    assert ("int64 token ids" if case == "embedding" else "float32") in export.info["input"]


def test_the_sidecar_says_how_image_files_become_samples_as_predict_reads_them(images_run, regression_run, tmp_path):
    """The recipe, followed by hand with PIL and numpy on an image of another size and mode,
    gives the very sample dlcli predict reads from it; models not trained on images have none."""
    import numpy as np
    from PIL import Image

    from dlcli.predict import read_inputs

    info = export_checkpoint(images_run, "state_dict", tmp_path / "a.pt").info
    assert info["image_files"].startswith("PIL.Image.open(path).convert('RGB'), then .resize((8, 8), "
                                          "PIL.Image.Resampling.BILINEAR) if its size differs")
    path = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (13, 21, 4), dtype=np.uint8), "RGBA").save(path)
    by_hand = Image.open(path).convert("RGB").resize((8, 8), Image.Resampling.BILINEAR)
    sample = np.asarray(by_hand, dtype=np.uint8).reshape(8, 8, 3).transpose(2, 0, 1)
    assert np.array_equal(read_inputs(load_trained(images_run, "cpu"), path)[0][0].numpy(), sample)
    assert export_checkpoint(regression_run, "state_dict", tmp_path / "b.pt").info["image_files"] is None


@pytest.mark.parametrize("first, said", [("embedding: {input_dim: 50, output_dim: 4}", "none (integer token ids)"),
                                         ("dense: 4", "none (trained with data.normalize: false)")])
def test_the_sidecar_says_why_a_model_takes_its_input_unnormalized(first, said):
    """Token ids and float features trained with data.normalize: false both have no
    normalization; only the first are integer token ids."""
    from types import SimpleNamespace

    from dlcli.config import config_from_text
    from dlcli.export import normalization_formula
    from dlcli.model import plan_model

    cfg = config_from_text(f"model: {{input_shape: [6], layers: [{first}, flatten, dense: 2]}}\n"
                           "data: {dataset: npz, path: x.npz, normalize: false}\n")
    trained = SimpleNamespace(normalization=None, cfg=cfg, plan=plan_model(cfg), input_shape=(6,))
    assert normalization_formula(trained) == said
