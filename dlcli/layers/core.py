"""Core layers: dense, flatten, reshape, permute, dropout, activation, embedding."""

from __future__ import annotations

import math

from dlcli.activations import ACTIVATIONS
from dlcli.layers._registry import KEEPS_LAYOUT, LAYERS, PERMUTES, SEQUENCE, ShapeError, activation_arg, fmt_shape
from dlcli.registry import Arg, Bool, Float, Int, IntList, Permutation, Str


def _dense_shape(args, shape):
    if len(shape) > 2:
        raise ShapeError(f"dense expects a flat input (features,) or a sequence (steps, features), "
                         f"received {fmt_shape(shape)}; add a flatten (or a global pooling) before it")
    return (*shape[:-1], args["units"])


@LAYERS.register(
    "dense", help="fully connected layer on the last axis: units outputs", family="core",
    aliases=("Dense", "linear_layer"), infer=_dense_shape,
    args=(Arg("units", Int(min=1), help="number of outputs", example=64),
          activation_arg(),
          Arg("use_bias", Bool(), True, "add a learned bias")),
    example="- dense: {units: 10, activation: softmax}", layout=KEEPS_LAYOUT)
def build_dense(args, shape):
    from dlcli.layers._modules import Dense

    return Dense(shape[-1], args["units"], bias=args["use_bias"], activation=args["activation"])


@LAYERS.register("flatten", help="flatten everything but the batch axis into one", family="core",
                 aliases=("Flatten",), infer=lambda args, shape: (math.prod(shape),),
                 example="- flatten")
def build_flatten(args, shape):
    import torch.nn as nn

    return nn.Flatten()


def _reshape_shape(args, shape):
    target = tuple(args["target_shape"])
    if math.prod(target) != math.prod(shape):
        raise ShapeError(f"reshape cannot turn {fmt_shape(shape)} ({math.prod(shape)} values) into "
                         f"{fmt_shape(target)} ({math.prod(target)} values)")
    return target


@LAYERS.register("reshape", help="reshape each sample to target_shape (same number of values)",
                 family="core", aliases=("Reshape",), infer=_reshape_shape,
                 args=(Arg("target_shape", IntList(), help="new shape, without the batch axis"),),
                 example="- reshape: {target_shape: [28, 28]}")
def build_reshape(args, shape):
    from dlcli.layers._modules import Reshape

    return Reshape(tuple(args["target_shape"]))


def _permute_shape(args, shape):
    dims = args["dims"]
    if len(dims) != len(shape):
        raise ShapeError(f"permute dims {list(dims)} orders {len(dims)} axes but its input {fmt_shape(shape)} has "
                         f"{len(shape)}; expected a permutation of 1..{len(shape)} (the batch axis is not numbered)")
    return tuple(shape[d - 1] for d in dims)


@LAYERS.register("permute", help="reorder the sample axes, numbered from 1 as in Keras: [2, 1] turns "
                                 "(steps, features) into (features, steps)",
                 family="core", aliases=("Permute",), infer=_permute_shape,
                 args=(Arg("dims", Permutation(), help="the input axes in their new order, from 1 (the batch "
                                                       "axis stays first)"),),
                 example="- permute: [2, 1]", layout=PERMUTES)
def build_permute(args, shape):
    from dlcli.layers._modules import Permute

    return Permute(tuple(args["dims"]))


@LAYERS.register("dropout", help="randomly zero a fraction `rate` of the inputs while training",
                 family="core", aliases=("Dropout",), infer=lambda args, shape: tuple(shape),
                 args=(Arg("rate", Float(min=0.0, max=1.0, max_open=True), help="fraction to drop"),),
                 example="- dropout: {rate: 0.25}", layout=KEEPS_LAYOUT)
def build_dropout(args, shape):
    import torch.nn as nn

    return nn.Dropout(args["rate"])


@LAYERS.register("activation", help="apply an activation function", family="core",
                 aliases=("Activation",), infer=lambda args, shape: tuple(shape),
                 args=(Arg("name", Str(ACTIVATIONS.all_names), help="activation name (see dlcli list activations)"),),
                 example="- activation: {name: relu}", layout=KEEPS_LAYOUT)
def build_activation_layer(args, shape):
    from dlcli.activations import build_activation

    return build_activation(args["name"])


def _embedding_shape(args, shape):
    if len(shape) != 1:
        raise ShapeError(f"embedding expects a sequence of integer ids (steps,), received {fmt_shape(shape)}")
    return (shape[0], args["output_dim"])


@LAYERS.register("embedding", help="map integer ids in [0, input_dim) to learned vectors",
                 family="core", aliases=("Embedding",), infer=_embedding_shape,
                 args=(Arg("input_dim", Int(min=1), help="vocabulary size"),
                       Arg("output_dim", Int(min=1), help="vector size")),
                 example="- embedding: {input_dim: 10000, output_dim: 64}",
                 int_input="input_dim", layout=SEQUENCE)  # takes integer ids below input_dim
def build_embedding(args, shape):
    from dlcli.layers._modules import Embedding

    return Embedding(args["input_dim"], args["output_dim"])
