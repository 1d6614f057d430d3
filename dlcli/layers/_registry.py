"""The layer registry and the pieces every layer family shares."""

from __future__ import annotations

from dlcli.activations import ACTIVATIONS
from dlcli.registry import Arg, Optional, Registry, Str

LAYERS = Registry("layer", meta_keys=("channels_last_on_cpu", "guard", "int_input", "layout", "moves_activation",
                                             "on_sequence", "takes_activation"))
# meta: `layout=` what a layer does with the layout of its input (below);
# `int_input="input_dim"` one that takes integer ids below that argument (embedding);
# `moves_activation=True` a layer whose monotone activation trainer.fuse may move past a following
# layer marked `takes_activation=True` (a convolution, then a max-pool: the same function on fewer values);
# `channels_last_on_cpu=True` one that runs faster in channels-last memory on the CPU (trainer.channels_last);
# `guard=f` a check against a likely mistake, f(args) -> [(key, message)], that validation applies to
# new configs and leaves out for a checkpoint's (an Entry's cross_check, by contrast, always applies).


# Sequences are (steps, features), as in Keras; dlcli's 1-D layers are channels-first, (channels,
# length), as in PyTorch. Each layer says in its registration (`layout=`, in Entry.meta) what it does
# with that layout, so shape inference can follow which tensors are sequences and refuse a 1-D layer
# that would work across the features where Keras's works along the steps:
SEQUENCE = "sequence"  # outputs a sequence (steps, features): embedding
RECURRENT = "recurrent"  # reads (steps, features); outputs a sequence with return_sequences
KEEPS_LAYOUT = "keep"  # outputs its input's layout: dropout, activation, layernorm, dense (on the last axis)
CHANNELS_FIRST = "channels_first"  # works over (channels, length); `on_sequence` says what it would do to
#                                    (steps, features) instead, and what Keras's layer does
CHANNELS_FIRST_2D = "channels_first_2d"  # works over (channels, height, width): conv2d, the 2-D pools
PERMUTES = "permute"  # permute: [2, 1] turns (steps, features) into (features, steps) and back
# No layout (flatten, reshape, ...): the output is not a sequence.
# Both channels-first layouts read the first axis of their input as channels: a channels-last
# model.input_shape (height, width, channels) is blamed on the first of them (reads_channels).


def reads_channels(entry) -> bool:
    """Whether a layer reads the first axis of its input as channels (convolutions, pooling, batchnorm)."""
    return entry.meta.get("layout") in (CHANNELS_FIRST, CHANNELS_FIRST_2D)


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
