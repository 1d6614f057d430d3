"""The layer registry and the pieces every layer family shares."""

from __future__ import annotations

from dlcli.activations import ACTIVATIONS
from dlcli.registry import Arg, Optional, Registry, Str

LAYERS = Registry("layer")
# meta: `channels_first=True` marks a layer that reads the first axis of its input as channels
# (convolutions, pooling, batchnorm); `int_input=True` one that takes integer ids (embedding).


class ShapeError(ValueError):
    """A layer cannot take the shape it is given; the message says why."""


def activation_arg(default: str | None = None) -> Arg:
    return Arg("activation", Optional(Str(ACTIVATIONS.all_names)), default,
               "activation applied to the output (relu, softmax, ...); null for none")


def final_activation(layers: list[dict]) -> str | None:
    """The activation a model's output ends in (canonical name, None for none): the last
    layer's `activation` argument, or the name of a final `activation` layer."""
    last = layers[-1]
    name = last.get("name") if last.get("type") == "activation" else last.get("activation")
    entry = ACTIVATIONS.lookup(name)
    return entry.name if entry is not None else None


def fmt_shape(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def expect_rank(name: str, shape, ranks: tuple[int, ...], what: str, hint: str = "") -> None:
    if len(shape) not in ranks:
        raise ShapeError(f"{name} expects an input of shape {what}, received {fmt_shape(shape)}"
                         + (f"; {hint}" if hint else ""))
