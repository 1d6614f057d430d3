"""Normalization layers. Arguments follow Keras (momentum 0.99 means the running
statistics keep 99% of their value each step)."""

from __future__ import annotations

from dlcli.layers._registry import CHANNELS_FIRST, KEEPS_LAYOUT, LAYERS, expect_rank
from dlcli.registry import Arg, Float


def _bn_shape(args, shape):
    expect_rank("batchnorm", shape, (1, 2, 3, 4), "(features,) or (channels, ...spatial)")
    return tuple(shape)


@LAYERS.register("batchnorm", help="batch normalization over the channel axis (the first after the batch)",
                 family="normalization", aliases=("BatchNormalization", "batch_normalization"),
                 infer=_bn_shape,
                 args=(Arg("momentum", Float(min=0.0, max=1.0), 0.99, "running statistics keep this fraction (Keras)"),
                       Arg("epsilon", Float(min=0.0, min_open=True), 1e-3, "added to the variance")),
                 example="- batchnorm", layout=CHANNELS_FIRST,
                 on_sequence="would normalize each of the {steps} steps separately, with statistics over the "
                             "batch and the {features} features, where Keras's BatchNormalization normalizes each "
                             "of the {features} features over the batch and the steps")
def build_batchnorm(args, shape):
    import torch.nn as nn

    cls = {1: nn.BatchNorm1d, 2: nn.BatchNorm1d, 3: nn.BatchNorm2d, 4: nn.BatchNorm3d}[len(shape)]
    return cls(shape[0], eps=args["epsilon"], momentum=1.0 - args["momentum"])


@LAYERS.register("layernorm", help="layer normalization over the last axis", family="normalization",
                 aliases=("LayerNormalization", "layer_normalization"), infer=lambda args, shape: tuple(shape),
                 args=(Arg("epsilon", Float(min=0.0, min_open=True), 1e-3, "added to the variance"),),
                 example="- layernorm", layout=KEEPS_LAYOUT)
def build_layernorm(args, shape):
    import torch.nn as nn

    return nn.LayerNorm(shape[-1], eps=args["epsilon"])
