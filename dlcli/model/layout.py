"""What the axes of a model's tensors mean: sequences (steps, features), channels first.

Sequences are (steps, features), as in Keras; dlcli's 1-D layers are channels-first,
(channels, length), as in PyTorch. The plan follows which tensors are sequences by each
layer's declared `layout` (dlcli.layers._registry), so that validation can refuse a 1-D layer
that would work across the features where Keras's works along the steps
(`channels_first_refusal`), and blame a channels-last input shape on the first layer that
reads channels (`channels_last_hint`). No torch here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dlcli.layers import (CHANNELS_FIRST, KEEPS_LAYOUT, LAYERS, PERMUTES, RECURRENT, SEQUENCE, fmt_shape,
                          reads_channels)
from dlcli.errors import format_path
from dlcli.registry import Entry


@dataclass(frozen=True)
class SequenceLayout:
    """The tensor is a sequence: (steps, features), or (features, steps) once transposed by a
    permute. `source`: the index of the layer that made it one; None for the model's input,
    which is one only where the data are (a CSV's windows, images read row by row)."""

    source: int | None
    transposed: bool = False


def first_sequence(input_shape: tuple) -> SequenceLayout | None:
    """A model's input of two axes is a sequence if its data are: followed in case they are."""
    return SequenceLayout(None) if len(input_shape) == 2 else None


def sequence_after(entry: Entry, args: dict, i: int, sequence: SequenceLayout | None, shape_in: tuple,
                   shape_out: tuple) -> SequenceLayout | None:
    """Whether layer i's output is a sequence, by the layout its registration declares."""
    layout = entry.meta.get("layout")
    if layout == SEQUENCE or (layout == RECURRENT and args["return_sequences"]):
        return SequenceLayout(i)
    if sequence is None or len(shape_out) != 2:
        return None
    if layout == PERMUTES:
        return SequenceLayout(sequence.source, sequence.transposed != (list(args["dims"]) == [2, 1]))
    if layout == CHANNELS_FIRST and sequence.transposed:  # (features, steps) in, (channels, steps) out
        return sequence
    if layout == KEEPS_LAYOUT and (shape_out == shape_in or not sequence.transposed):  # dense: the last axis
        return sequence
    return None


def channels_first_refusal(walked: tuple, types: list[str], data_origin: str | None = None) -> tuple | None:
    """(index, message) of the first channels-first 1-D layer that reads a sequence (steps,
    features), where it would work across the features instead of along the steps as Keras's
    layer does; None if there is none. `walked`: LayerPlans; `types`: every layer's type (a
    second permute may go after later ones); `data_origin`: where the model's input is a
    sequence, for messages ('the csv data (data.window: 20)'), None where it is not."""
    for layer in walked:
        sequence, entry = layer.sequence, LAYERS.get(layer.type)
        if sequence is None or sequence.transposed or entry.meta.get("layout") != CHANNELS_FIRST:
            continue
        if sequence.source is None and data_origin is None:
            continue
        origin = data_origin if sequence.source is None else _made_by(walked[sequence.source])
        steps, features = layer.input_shape
        does = entry.meta["on_sequence"].format(steps=steps, features=features, **layer.arguments)
        return layer.index, (f"its input {fmt_shape(layer.input_shape)} is a sequence (steps, features), from "
                             f"{origin}, but {entry.name} is channels-first, (channels, length), as in PyTorch: it "
                             f"{does}. HINT: put `- permute: [2, 1]` before it, to give it ({features}, {steps}): "
                             f"(features, steps){_permute_back(types, layer.index)}")
    return None


def _made_by(layer) -> str:
    """'the lstm at model.layers[0] (return_sequences)': what made a tensor a sequence."""
    recurrent = LAYERS.get(layer.type).meta.get("layout") == RECURRENT
    return f"the {layer.type} at model.layers[{layer.index}]" + (" (return_sequences)" if recurrent else "")


def _permute_back(types: list[str], i: int) -> str:
    """Where a second permute goes when a recurrent layer reads what the channels-first layer i
    outputs (through more of them, or layers that keep the layout): after the last of them."""
    last = i
    for j in range(i + 1, len(types)):
        layout = LAYERS.get(types[j]).meta.get("layout")
        if layout == RECURRENT:
            where = "it" if last == i else f"the {types[last]} at model.layers[{last}]"
            return (f", and another `- permute: [2, 1]` after {where} to give the {types[j]} at "
                    f"model.layers[{j}] (steps, features) again")
        if layout == CHANNELS_FIRST:
            last = j
        elif layout != KEEPS_LAYOUT:
            return ""
    return ""


def looks_channels_last(shape) -> bool:
    """(height, width, channels) as Keras stores images: 1, 3 or 4 channels after larger axes."""
    return len(shape) == 3 and shape[-1] in (1, 3, 4) and shape[0] > 4


def channels_last_hint(walked: tuple) -> tuple[tuple, str] | None:
    """Where the shape error of the last of `walked` (LayerPlans, the failing one last) follows a
    shape that looks channels-last, (height, width, channels) as Keras stores images, read as
    channels-first by the first layer after it that reads channels: (the key that set that shape,
    the fix). The shape is the model's input, or a reshape's target (Keras's Reshape((28, 28, 1))
    before a Conv2D)."""
    failed = len(walked) - 1
    start = max((i for i in range(failed) if walked[i].type == "reshape"), default=-1) + 1  # what set the shape
    shape = walked[start].input_shape
    if not looks_channels_last(shape):
        return None
    key = ("model", "input_shape") if start == 0 else ("model", "layers", start - 1, "target_shape")
    for layer in walked[start:]:
        if layer.input_shape != shape:
            return None  # a layer in between (a flatten, a conv...) changed what the next ones read
        entry = LAYERS.get(layer.type)
        if reads_channels(entry):
            height, width, channels = shape
            return key, (f"{list(shape)} looks channels-last (height, width, channels), as Keras stores images, "
                         f"but dlcli is channels-first like PyTorch: {entry.name} reads it as {height} channels of "
                         f"{width} x {channels}; set {format_path(key)} to {[channels, height, width]}")
    return None


def data_view_fits(sample: tuple, input_shape: tuple) -> bool:
    """Data fits the model as it is, as rows-as-steps ((1, H, W) -> (H, W)), or flattened."""
    if sample == input_shape:
        return True
    if len(sample) == 3 and sample[0] == 1 and input_shape == sample[1:]:
        return True
    return len(input_shape) == 1 and input_shape[0] == math.prod(sample)
