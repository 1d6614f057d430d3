"""Convolutions (channels first, as in PyTorch): conv1d on (channels, length),
conv2d on (channels, height, width)."""

from __future__ import annotations

import math

from dlcli.layers._registry import (CHANNELS_FIRST, CHANNELS_FIRST_2D, LAYERS, ShapeError, activation_arg, expect_rank,
                                   fmt_shape)
from dlcli.registry import Arg, Bool, Int, IntTuple, Padding


def conv_length(length: int, kernel: int, stride: int, padding, dilation: int = 1) -> int:
    """Output length of a convolution or pooling window along one axis."""
    if padding == "same":
        return math.ceil(length / stride)
    pad = 0 if padding == "valid" else padding
    return (length + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


def same_padding(length: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) padding that makes the output ceil(length / stride) long, as Keras does."""
    total = max((math.ceil(length / stride) - 1) * stride + dilation * (kernel - 1) + 1 - length, 0)
    return total // 2, total - total // 2


def _conv_shape(rank: int):
    what = "(channels, length)" if rank == 1 else "(channels, height, width)"

    def infer(args, shape):
        name = f"conv{rank}d"
        hint = ("a conv after a flatten or dense? convolutions need the spatial axes"
                if len(shape) < rank + 1 else "")
        expect_rank(name, shape, (rank + 1,), what, hint)
        out = []
        for axis, length in enumerate(shape[1:]):
            k, s, d = args["kernel_size"][axis], args["strides"][axis], args["dilation_rate"][axis]
            n = conv_length(length, k, s, args["padding"], d)
            if n < 1:
                raise ShapeError(f"{name} kernel {fmt_shape(args['kernel_size'])} (dilation {d}) is larger "
                                 f"than its input {fmt_shape(shape)}: output size {n} along axis {axis + 1}")
            out.append(n)
        return (args["filters"], *out)

    return infer


def _conv_args(rank: int):
    return (Arg("filters", Int(min=1), help="number of output channels"),
            Arg("kernel_size", IntTuple(rank), help="window size: an int or one per spatial axis"),
            Arg("strides", IntTuple(rank), 1, "step of the window"),
            Arg("padding", Padding(), "valid", "valid (none), same (keep size / strides) or an int"),
            Arg("dilation_rate", IntTuple(rank), 1, "spacing between kernel elements"),
            activation_arg(),
            Arg("use_bias", Bool(), True, "add a learned bias"))


def _build_conv(rank: int):
    def build(args, shape):
        from dlcli.layers._modules import Conv

        pads = None
        padding = args["padding"]
        if padding == "same":
            pads = [same_padding(n, k, s, d) for n, k, s, d in
                    zip(shape[1:], args["kernel_size"], args["strides"], args["dilation_rate"])]
            if all(b == a for b, a in pads):
                padding, pads = tuple(b for b, _ in pads), None
            else:
                padding = 0
        elif padding == "valid":
            padding = 0
        return Conv(rank, shape[0], args["filters"], args["kernel_size"], stride=args["strides"],
                    padding=padding, dilation=args["dilation_rate"], bias=args["use_bias"],
                    activation=args["activation"], asymmetric_pads=pads)

    return build


LAYERS.register("conv1d", help="1-D convolution over (channels, length)", family="conv",
                aliases=("Conv1D",), infer=_conv_shape(1), args=_conv_args(1),
                moves_activation=True, example="- conv1d: {filters: 64, kernel_size: 5, activation: relu}",
                layout=CHANNELS_FIRST,
                on_sequence="would convolve along the {features} features, with the {steps} steps as input "
                            "channels, where Keras's Conv1D convolves along the steps, with the features as "
                            "channels")(_build_conv(1))
LAYERS.register("conv2d", help="2-D convolution over (channels, height, width)", family="conv",
                aliases=("Conv2D",), infer=_conv_shape(2), args=_conv_args(2), layout=CHANNELS_FIRST_2D,
                moves_activation=True, channels_last_on_cpu=True,
                example="- conv2d: {filters: 32, kernel_size: 3, activation: relu}")(_build_conv(2))
