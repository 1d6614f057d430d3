"""dlcli.model.plan: a config's model planned once (validation's plan, shared by every later
user), as plain data without torch."""

from __future__ import annotations

import pytest

from dlcli.config import config_from_text
from dlcli.model import plan as plan_module
from dlcli.model import INPUT, plan_model
from tests.samples import TINY_MNIST


@pytest.fixture
def walks(monkeypatch):
    """The shape walks from now on (the memo cleared first): a list of the input shapes walked."""
    plan_module._WALKS.clear()
    walked, real = [], plan_module._walk

    def counted(input_shape, layers):
        walked.append(input_shape)
        return real(input_shape, layers)

    monkeypatch.setattr(plan_module, "_walk", counted)
    return walked


@pytest.fixture
def builds(monkeypatch):
    """The models built from now on: every build constructs one Model (a copy or a
    materialization constructs none)."""
    from dlcli.model import build

    built, real = [], build.Model.__init__

    def counted(self, *args, **kwargs):
        built.append(1)
        real(self, *args, **kwargs)

    monkeypatch.setattr(build.Model, "__init__", counted)
    return built


@pytest.mark.parametrize("warm_up", [False, True], ids=["plain", "with the device warm-up"])
def test_a_run_walks_its_shapes_once_and_builds_its_model_once(cli, write_config, tmp_path, walks, builds,
                                                               monkeypatch, warm_up):
    """`dlcli train` in-process: validation plans the model, and data preparation, the size
    guard, the warm-up and the trainer take that plan; the model built on the meta device for the
    size guard is the one the trainer trains (the warm-up steps a copy of it)."""
    from dlcli.train.warmup import DeviceWarmup

    if warm_up:  # it runs for CUDA devices only: here on the CPU
        monkeypatch.setattr(DeviceWarmup, "DEVICE_TYPES", ("cuda", "cpu"))
    notes = []
    monkeypatch.setattr(DeviceWarmup, "note", lambda self: notes.append(self.error) or None)
    config = write_config(TINY_MNIST.replace("epochs: 4", "epochs: 1"))
    result = cli("train", config, f"trainer.out_dir={tmp_path / 'runs'}")
    assert result.exit_code == 0, result.output
    assert notes == [None]  # the warm-up (where it ran) did not fail
    assert walks == [(1, 28, 28)]
    assert builds == [1]


def test_every_later_user_gets_validation_s_plan_without_walking_again(walks):
    cfg = config_from_text(TINY_MNIST, "tiny.yaml")
    assert len(walks) == 1
    plan = plan_model(cfg)
    assert plan_model(cfg) == plan and plan_model(config_from_text(TINY_MNIST, "again.yaml")) == plan
    assert len(walks) == 1  # validating the same model again, and planning it, walked nothing


def test_a_changed_model_gets_a_new_plan(walks):
    plan = plan_model(config_from_text(TINY_MNIST, "tiny.yaml"))
    wider = plan_model(config_from_text(TINY_MNIST, "tiny.yaml", ["model.layers[4].units=32"]))
    assert len(walks) == 2
    assert plan.layers[4].output_shape == (16,) and wider.layers[4].output_shape == (32,)
    assert plan_model(config_from_text(TINY_MNIST, "tiny.yaml")) == plan  # and the first is remembered


def test_the_plan_holds_what_its_users_need():
    plan = plan_model(config_from_text(TINY_MNIST.replace("- dense: 10", "- dense: {units: 10, activation: softmax}"),
                                       "tiny.yaml"))
    assert plan.input_shape == (1, 28, 28) and plan.output_shape == (10,)
    assert plan.task == "classification" and plan.target_kind == "classification"
    assert plan.output_activation == "softmax"  # the loss (cross_entropy) applies it: left to prediction
    assert plan.ids is None and plan.channels_last_pays
    assert plan.output_key == ("model", "layers", 6)
    assert [layer.name for layer in plan.layers] == ["conv2d", "maxpool2d", "dropout", "flatten", "dense",
                                                     "batchnorm", "dense_1"]
    # each layer reads the one before it, the first the model's input: a graph will give other inputs
    assert [layer.inputs for layer in plan.layers] == [(INPUT,), ("conv2d",), ("maxpool2d",), ("dropout",),
                                                       ("flatten",), ("dense",), ("batchnorm",)]
    conv = plan.layer("conv2d")
    assert conv.arguments["kernel_size"] == [3, 3] and dict(conv.args)["kernel_size"] == (3, 3)  # frozen
    with pytest.raises(Exception):
        conv.index = 3  # frozen


def test_the_plan_of_an_embedding_says_what_ids_it_takes():
    plan = plan_model(config_from_text("""
model:
  input_shape: [12]
  layers: [{embedding: {input_dim: 50, output_dim: 8}}, {lstm: 16}, {dense: 3}]
data: {dataset: npz, path: unused.npz}
loss: mse
"""))
    assert (plan.ids.type, plan.ids.arg, plan.ids.limit, plan.ids.key) == ("embedding", "input_dim", 50,
                                                                            ("model", "layers", 0, "input_dim"))
    assert plan.task == "regression" and plan.output_activation is None and not plan.channels_last_pays
    # the embedding makes a sequence that the lstm reads
    assert plan.layers[1].sequence.source == 0 and plan.layers[0].sequence is None


def test_planning_imports_no_torch(run_python):
    script = ("import sys; from dlcli.config import load_config; from dlcli.model import plan_model; "
              "plan = plan_model(load_config('configs/mnist_cnn.yaml')); "
              "print(plan.output_shape, 'torch' in sys.modules)")
    result = run_python("-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(10,) False"
