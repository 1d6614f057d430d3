"""Activation functions, by name. Used by the `activation` argument of layers and
by the `activation` layer itself."""

from __future__ import annotations

from dlcli.registry import Registry

ACTIVATIONS = Registry("activation", meta_keys=("monotone",))


def _simple(name: str, help: str, torch_name: str, aliases: tuple[str, ...] = (), monotone: bool = False,
            **kwargs):
    """`monotone`: non-decreasing and piecewise linear, so it commutes with a max-pool
    bit for bit (max(f(a), f(b)) == f(max(a, b))). Smooth monotone functions (sigmoid,
    tanh, softplus) are left out: their vectorized and scalar kernels may round the
    same input differently, so moving them could change the last bits."""

    def build():
        import torch.nn as nn

        return getattr(nn, torch_name)(**kwargs)

    ACTIVATIONS.register(name, help=help, aliases=aliases, monotone=monotone)(build)


_simple("relu", "max(x, 0)", "ReLU", monotone=True)
_simple("relu6", "min(max(x, 0), 6)", "ReLU6", monotone=True)
_simple("leaky_relu", "x if x > 0 else 0.01 x", "LeakyReLU", monotone=True)
_simple("elu", "exponential linear unit", "ELU")
_simple("selu", "scaled exponential linear unit", "SELU")
_simple("gelu", "Gaussian error linear unit", "GELU")
_simple("silu", "x * sigmoid(x)", "SiLU", aliases=("swish",))
_simple("mish", "x * tanh(softplus(x))", "Mish")
_simple("sigmoid", "1 / (1 + exp(-x))", "Sigmoid")
_simple("hard_sigmoid", "piecewise-linear sigmoid", "Hardsigmoid", monotone=True)
_simple("tanh", "hyperbolic tangent", "Tanh")
_simple("softplus", "log(1 + exp(x))", "Softplus")
_simple("softsign", "x / (1 + |x|)", "Softsign")
_simple("softmax", "exp(x) / sum(exp(x)) over the last axis", "Softmax", dim=-1)
_simple("log_softmax", "log(softmax(x)) over the last axis", "LogSoftmax", dim=-1)
_simple("linear", "identity (no activation)", "Identity", aliases=("identity",), monotone=True)


def build_activation(name: str | None):
    """An nn.Module for `name` (None and 'linear' give Identity)."""
    return ACTIVATIONS.get(name or "linear").build()
