"""dlcli.model: config in, a plain nn.Module out, with Keras-style names and counts."""

from __future__ import annotations

import pytest
import torch

from dlcli.config import config_from_text, load_config
from dlcli.errors import DlcliError
from dlcli.model import Model, build_meta_model, build_model, plan_model, summarize

MNIST_CNN_PARAMS = 54_410  # Conv2D(32, 3x3): 320, Dense(10) on 13*13*32: 54,090


@pytest.fixture(scope="module")
def plain_cfg(configs_dir):
    return load_config(configs_dir / "mnist_cnn.yaml")


@pytest.fixture(scope="module")
def keras_cfg(configs_dir):
    return load_config(configs_dir / "mnist_cnn_keras.yaml")


@pytest.mark.parametrize("name", ["mnist_cnn.yaml", "mnist_cnn_keras.yaml"])
def test_mnist_cnn_has_54410_parameters(configs_dir, name):
    cfg = load_config(configs_dir / name)
    model = build_model(cfg)
    assert isinstance(model, torch.nn.Sequential)
    assert sum(p.numel() for p in model.parameters()) == MNIST_CNN_PARAMS
    summary = summarize(cfg, build_meta_model(cfg))
    assert summary["total"] == summary["trainable"] == MNIST_CNN_PARAMS
    assert summary["non_trainable"] == 0
    assert [row.params for row in summary["rows"]] == [320, 0, 0, 54_090]
    assert [row.output_shape for row in summary["rows"]] == [(32, 26, 26), (32, 13, 13), (5408,), (10,)]


@pytest.mark.parametrize("name", ["mnist_cnn.yaml", "mnist_cnn_keras.yaml"])
def test_state_dict_keys_are_the_familiar_ones(configs_dir, name):
    model = build_model(load_config(configs_dir / name))
    assert list(model.state_dict()) == ["conv2d.weight", "conv2d.bias", "dense.weight", "dense.bias"]
    assert [name for name, _ in model.named_children()] == ["conv2d", "maxpool2d", "flatten", "dense"]


def test_module_names_get_counters(configs_dir):
    cfg = load_config(configs_dir / "mnist_deep_cnn.yaml")
    model = build_model(cfg)
    assert [name for name, _ in model.named_children()] == [
        "conv2d", "batchnorm", "conv2d_1", "maxpool2d", "dropout", "conv2d_2", "batchnorm_1", "conv2d_3",
        "maxpool2d_1", "dropout_1", "flatten", "dense", "dropout_2", "dense_1"]
    assert [row.name for row in summarize(cfg, model)["rows"]] == [name for name, _ in model.named_children()]
    assert "conv2d_1.weight" in model.state_dict() and "batchnorm_1.running_mean" in model.state_dict()


def test_keras_config_returns_logits_and_predict_proba_gives_probabilities(keras_cfg):
    torch.manual_seed(0)
    model = build_model(keras_cfg).eval()
    assert model.output_activation == "softmax"
    assert len(model) == 4  # the softmax is not one of the layers
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        logits = model(x)
        probs = model.predict_proba(x)
    assert logits.shape == probs.shape == (5, 10)
    assert not torch.allclose(logits.sum(dim=1), torch.ones(5))  # not softmax-normalized
    assert (logits < 0).any()
    assert torch.allclose(probs.sum(dim=1), torch.ones(5), atol=1e-6)
    assert torch.allclose(probs, torch.softmax(logits, dim=1))


def test_summary_notes_the_softmax_left_to_prediction(keras_cfg):
    summary = summarize(keras_cfg, build_meta_model(keras_cfg))
    assert summary["output_activation"] == "softmax"
    assert summary["rows"][-1].note == "softmax applied at prediction; the loss takes logits"
    assert all(not row.note for row in summary["rows"][:-1])


def test_plain_config_has_no_output_activation(plain_cfg):
    model = build_model(plain_cfg)
    assert model.output_activation is None
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(model.predict_proba(x), model(x))


def test_keras_and_plain_configs_compute_the_same_function(plain_cfg, keras_cfg):
    torch.manual_seed(0)
    plain, keras = build_model(plain_cfg).eval(), build_model(keras_cfg).eval()
    keras.load_state_dict(plain.state_dict())  # strict: same keys, same shapes
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(keras(x), plain(x))


def test_trailing_activation_layer_before_cross_entropy_is_left_to_prediction(write_config):
    path = write_config("""\
        model:
          input_shape: [784]
          layers:
            - dense: {units: 10}
            - activation: softmax
        data: mnist
    """)
    cfg = load_config(path)
    model = build_model(cfg)
    assert [name for name, _ in model.named_children()] == ["dense"]
    assert model.output_activation == "softmax"
    assert summarize(cfg, model)["rows"][-1].note.startswith("softmax applied at prediction")


def test_a_final_activation_is_kept_where_the_loss_does_not_contain_it(write_config):
    path = write_config("""\
        model:
          input_shape: [784]
          layers:
            - dense: {units: 10, activation: log_softmax}
        data: mnist
        loss: nll
    """)
    model = build_model(load_config(path))
    assert model.output_activation is None
    out = model(torch.randn(3, 784))
    assert torch.allclose(out.exp().sum(dim=1), torch.ones(3), atol=1e-6)


def test_plan_matches_the_config(plain_cfg):
    plan = plan_model(plain_cfg).layers
    assert [(layer.name, layer.type, layer.input_shape, layer.output_shape) for layer in plan] == [
        ("conv2d", "conv2d", (1, 28, 28), (32, 26, 26)),
        ("maxpool2d", "maxpool2d", (32, 26, 26), (32, 13, 13)),
        ("flatten", "flatten", (32, 13, 13), (5408,)),
        ("dense", "dense", (5408,), (10,)),
    ]


def test_meta_model_holds_no_memory(plain_cfg):
    model = build_meta_model(plain_cfg)
    assert isinstance(model, Model)
    assert all(p.is_meta for p in model.parameters())


def test_meta_model_refuses_a_model_too_large_to_hold(write_config):
    path = write_config("""\
        model:
          input_shape: [784]
          layers:
            - dense: {units: 3000000}
            - dense: {units: 10}
        data: mnist
    """)
    with pytest.raises(DlcliError, match=r"model: 2,385,000,010 parameters .* is more than dlcli builds "
                                         r"\(2,000,000,000\); the largest layer is model.layers\[0\] \(dense, "
                                         r"2,355,000,000 parameters\); check its size"):
        build_meta_model(load_config(path))


def test_model_trains_one_step(plain_cfg):
    from dlcli.losses import LOSSES
    from dlcli.optim import OPTIMIZERS

    torch.manual_seed(0)
    model = build_model(plain_cfg)
    optimizer = OPTIMIZERS.get("adam").build(plain_cfg["optimizer"], model.parameters())
    loss_fn = LOSSES.get("cross_entropy").build(plain_cfg["loss"])
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    before = model.dense.weight.detach().clone()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and not torch.equal(before, model.dense.weight)


def test_permute_then_global_average_pooling_gives_keras_s_mean_over_the_steps():
    """Keras: LSTM(16, return_sequences=True) -> GlobalAveragePooling1D is the mean of the 28 steps, (16,)."""
    cfg = config_from_text("""
model:
  input_shape: [28, 28]
  layers:
    - lstm: {units: 16, return_sequences: true}
    - permute: [2, 1]
    - GlobalAveragePooling1D
    - dense: 10
data: mnist
""")
    assert [layer.output_shape for layer in plan_model(cfg).layers] == [(28, 16), (16, 28), (16,), (10,)]
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    x = torch.randn(4, 28, 28)
    with torch.no_grad():
        steps = model.lstm(x)  # (B, 28 steps, 16 features)
        pooled = model.global_avgpool1d(model.permute(steps))  # (B, 16)
        assert torch.allclose(pooled, steps.mean(dim=1), atol=1e-6)
        assert torch.allclose(model(x), model.dense(steps.mean(dim=1)), atol=1e-6)


def test_a_missing_gpu_is_named_where_it_was_asked_for(monkeypatch):
    from dlcli.errors import DlcliError
    from dlcli.inference import inference_device
    from dlcli.model import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DlcliError, match=r"^trainer.device: cuda was asked for but CUDA is not available on this "
                                         r"machine; HINT: trainer.device=auto or trainer.device=cpu$"):
        resolve_device("cuda")
    with pytest.raises(DlcliError, match=r"^--device: cuda:1 was asked for .*; HINT: --device cpu$"):
        inference_device("cuda:1", {"trainer": {"device": "cpu"}})


def test_batchnorm_counts_as_keras_does_scale_and_shift_trainable_running_stats_not(write_config):
    """Keras: BatchNormalization(C) has 2C trainable parameters (gamma, beta) and 2C non-trainable
    ones (moving mean and variance); torch's step counter (num_batches_tracked) is no parameter."""
    cfg = load_config(write_config("""
        model:
          input_shape: [3, 8, 8]
          layers:
            - conv2d: {filters: 6, kernel_size: 3}
            - batchnorm
            - flatten
            - dense: 4
            - batchnorm
        data: {dataset: npz, path: unused.npz}
    """))
    summary = summarize(cfg, build_model(cfg))
    conv, dense = 6 * 3 * 3 * 3 + 6, 6 * 6 * 6 * 4 + 4
    assert summary["trainable"] == conv + 2 * 6 + dense + 2 * 4
    assert summary["non_trainable"] == 2 * 6 + 2 * 4
    assert summary["total"] == summary["trainable"] + 2 * 6 + 2 * 4
    assert [row.params for row in summary["rows"]] == [conv, 2 * 6, 0, dense, 2 * 4]


def _seed_model_in_torch() -> torch.nn.Sequential:
    """The seed config (tests/conftest.py TINY_CONFIG) written by hand in torch."""
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 13 * 13, 10))


@pytest.mark.parametrize("fuse", [False, True])
def test_the_seed_model_is_the_hand_written_torch_model(write_config, tiny_config_text, fuse):
    """Same parameter shapes in the same order, and with the same weights the same outputs and
    gradients, whether or not trainer.fuse rewrites it."""
    cfg = load_config(write_config(tiny_config_text))
    torch.manual_seed(0)
    model = build_model(cfg, fuse=fuse)
    hand = _seed_model_in_torch()
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == [
        ("conv2d.weight", (4, 1, 3, 3)), ("conv2d.bias", (4,)), ("dense.weight", (10, 676)), ("dense.bias", (10,))]
    assert [tuple(v.shape) for v in model.state_dict().values()] == [tuple(v.shape) for v in hand.state_dict().values()]
    hand.load_state_dict(dict(zip(hand.state_dict(), model.state_dict().values())))
    x, y = torch.randn(6, 1, 28, 28), torch.tensor([0, 1, 2, 3, 4, 5])
    outputs = []
    for net in (model, hand):
        net.zero_grad()
        out = net(x)
        torch.nn.functional.cross_entropy(out, y).backward()
        outputs.append((out.detach(), [p.grad.clone() for p in net.parameters()]))
    (out_a, grads_a), (out_b, grads_b) = outputs
    torch.testing.assert_close(out_a, out_b, rtol=1e-5, atol=1e-6)
    for a, b in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
