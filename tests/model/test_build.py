"""dlcli.model.build: a model built once, on the meta device, then materialized with exactly the
weights a build on the CPU draws (the trainer's seeded initial weights, which exact resume and
the oracles rely on)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dlcli.config import load_config
from dlcli.model import build_meta_model, build_model, build_training_model, materialize
from tests.layers.test_layers import _cases, config_with_layer

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))


def assert_materialized_is_the_seeded_build(cfg: dict, fuse: bool) -> None:
    torch.manual_seed(7)
    built = build_model(cfg, fuse=fuse)
    after_build = torch.get_rng_state()
    meta = build_meta_model(cfg, fuse=fuse)
    torch.manual_seed(7)
    made = materialize(meta)
    assert made is meta and not any(t.is_meta for t in [*made.parameters(), *made.buffers()])
    assert torch.equal(torch.get_rng_state(), after_build)  # the same numbers drawn: dropout after it alike
    assert list(made.state_dict()) == list(built.state_dict())
    for key, value in built.state_dict().items():
        assert torch.equal(made.state_dict()[key], value), key


@pytest.mark.parametrize("written, canonical, shape", [case for case in _cases() if case.values[0] ==
                                                        case.values[1]])  # each layer, not its aliases
def test_every_layer_materializes_with_the_weights_a_build_draws(written, canonical, shape):
    assert_materialized_is_the_seeded_build(config_with_layer(written, canonical, shape), fuse=False)


@pytest.mark.parametrize("fuse", [False, True])
@pytest.mark.parametrize("config", CONFIGS, ids=[path.name for path in CONFIGS])
def test_every_shipped_config_materializes_with_the_weights_a_build_draws(config, fuse):
    assert_materialized_is_the_seeded_build(load_config(config), fuse)


def test_the_training_model_from_a_meta_build_is_the_one_built_directly(configs_dir):
    cfg = load_config(configs_dir / "mnist_deep_cnn.yaml", ["trainer.fuse=true", "trainer.channels_last=true"])
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    direct = build_training_model(cfg, cpu)
    torch.manual_seed(0)
    from_meta = build_training_model(cfg, cpu, meta=build_meta_model(cfg, fuse=True))
    assert [type(m) for m in from_meta.modules()] == [type(m) for m in direct.modules()]  # fused alike
    assert from_meta.conv2d.weight.is_contiguous(memory_format=torch.channels_last)
    for key, value in direct.state_dict().items():
        assert torch.equal(from_meta.state_dict()[key], value), key


def test_a_module_with_weights_it_cannot_reset_is_refused():
    class Scale(torch.nn.Module):  # weights, and no reset_parameters to initialize them with
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(3))

    with torch.device("meta"):
        model = torch.nn.Sequential(torch.nn.Linear(2, 3), Scale())
    with pytest.raises(TypeError, match="Scale holds weights but has no reset_parameters"):
        materialize(model)
