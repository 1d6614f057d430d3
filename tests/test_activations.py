"""dlcli.activations: every activation builds and runs; None and linear are the identity."""

from __future__ import annotations

import pytest
import torch

from dlcli.activations import ACTIVATIONS, build_activation


@pytest.mark.parametrize("name", ACTIVATIONS.all_names())
def test_every_activation_builds_and_keeps_the_shape(name):
    module = build_activation(name)
    assert isinstance(module, torch.nn.Module)
    x = torch.randn(3, 5)
    out = module(x)
    assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("name", [None, "linear", "identity"])
def test_no_activation_is_the_identity(name):
    x = torch.randn(4)
    assert torch.equal(build_activation(name)(x), x)


def test_softmax_is_over_the_last_axis():
    out = build_activation("softmax")(torch.randn(2, 3, 5))
    assert torch.allclose(out.sum(dim=-1), torch.ones(2, 3))


def test_relu_and_sigmoid_values():
    x = torch.tensor([-1.0, 0.0, 2.0])
    assert build_activation("relu")(x).tolist() == [0.0, 0.0, 2.0]
    assert build_activation("sigmoid")(torch.zeros(1)).item() == 0.5


def test_unknown_activation():
    with pytest.raises(KeyError, match="unknown activation 'rleu'; did you mean 'relu'"):
        build_activation("rleu")
