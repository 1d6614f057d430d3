"""The model plan: what a config's model is, worked out once, as plain data.

    plan = plan_model(cfg)
    plan.input_shape, plan.output_shape, plan.task   # (1, 28, 28), (10,), "classification"
    [(layer.name, layer.output_shape) for layer in plan.layers]

Validation plans the model (a ShapeError there is a config problem); the builder, data
preparation, the summary, inference and export take that plan as given. Walks are
memoized by the content of the model section, so however often a run asks for the plan,
its layers' shapes are walked once. No torch here.

Each layer names the layers it reads (`inputs`): in a list of layers, the one before it,
and the model's input (INPUT) first. A model graph is the same plan with other inputs.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

from dlcli.layers import LAYERS, ShapeError, final_activation, fmt_shape
from dlcli.losses import LOSSES
from dlcli.model.layout import SequenceLayout, first_sequence, sequence_after

INPUT = "input"  # what the first layer reads: the model's input


@dataclass(frozen=True)
class LayerPlan:
    """One layer: its place and module name (conv2d, conv2d_1: the state_dict prefix), its
    resolved arguments (frozen: lists as tuples), the layers it reads, its shapes, and whether
    what it reads is a sequence (steps, features), from which layer (see dlcli.model.layout)."""

    index: int  # in model.layers
    name: str
    type: str  # the canonical registry name
    args: tuple  # ((argument, value), ...)
    inputs: tuple  # names of the layers it reads (INPUT: the model's input)
    input_shape: tuple
    output_shape: tuple | None  # None only in a ShapeError's `walked`: the layer that failed
    sequence: SequenceLayout | None = None

    @property
    def key(self) -> tuple:
        """Its config key: ("model", "layers", index)."""
        return ("model", "layers", self.index)

    @property
    def arguments(self) -> dict:
        """The arguments as the config holds them (lists, not tuples): what its builder takes."""
        return {name: _thawed(value) for name, value in self.args}


@dataclass(frozen=True)
class IdInput:
    """The model takes integer ids: the layer reading its input (an embedding) takes ids
    below `limit`, its argument `arg`."""

    index: int
    type: str
    arg: str
    limit: int

    @property
    def key(self) -> tuple:
        return ("model", "layers", self.index, self.arg)


@dataclass(frozen=True)
class ModelPlan:
    """A model as validation resolved it: its layers, its input and output shapes, the task its
    loss implies (classification | binary | regression; None without a loss), and the final
    activation the loss applies itself (`output_activation`: left out of forward, applied at
    prediction)."""

    input_shape: tuple
    layers: tuple  # LayerPlan, in order
    task: str | None = None
    output_activation: str | None = None

    @property
    def output(self) -> LayerPlan:
        """The layer whose output is the model's."""
        return self.layers[-1]

    @property
    def output_shape(self) -> tuple:
        return self.output.output_shape

    @property
    def output_key(self) -> tuple:
        """The config key of the output layer: what a misfit between outputs and targets is about."""
        return self.output.key

    @property
    def target_kind(self) -> str:
        """What the data's targets are: "classification" (class ids) or "regression" (values;
        a binary loss's 0/1 labels are read as values too)."""
        return "classification" if self.task == "classification" else "regression"

    @property
    def ids(self) -> IdInput | None:
        """Whether the model takes integer ids (its first layer declares `int_input`), below what."""
        first = self.layers[0]
        arg = LAYERS.get(first.type).meta.get("int_input")
        return IdInput(first.index, first.type, arg, dict(first.args)[arg]) if arg else None

    @property
    def channels_last_pays(self) -> bool:
        """Whether channels-last memory speeds the model up on the CPU (2-D convolutions)."""
        return any(LAYERS.get(layer.type).meta.get("channels_last_on_cpu") for layer in self.layers)

    def layer(self, name: str) -> LayerPlan:
        return next(layer for layer in self.layers if layer.name == name)


def plan_model(cfg: dict) -> ModelPlan:
    """The plan of a resolved config's model (validation's own, when it validated this model)."""
    model = cfg["model"]
    layers = plan_layers(model["input_shape"], model["layers"])
    loss = (cfg.get("loss") or {}).get("type")
    if loss is None:
        return ModelPlan(tuple(model["input_shape"]), layers)
    meta = LOSSES.get(loss).meta
    last = layers[-1]
    ends_in = final_activation([{"type": last.type, **last.arguments}])
    stripped = ends_in if meta.get("logits_of") and ends_in == meta["logits_of"] else None
    return ModelPlan(tuple(model["input_shape"]), layers, meta["task"], stripped)


def plan_layers(input_shape, layers: list[dict]) -> tuple:
    """The LayerPlans of resolved layers (`{type, ...arguments}`) on `input_shape`, walked once
    per content. A layer that cannot take its input raises ShapeError with `.index` (the layer)
    and `.walked` (the layers before it, then it, with no output shape)."""
    key = json.dumps([input_shape, layers], sort_keys=True, default=repr)
    walked = _WALKS.get(key)
    if walked is None:
        walked = _walk(tuple(input_shape), layers)
        _WALKS.put(key, walked)
    return walked


def _walk(input_shape: tuple, layers: list[dict]) -> tuple:
    """Shape inference, layer by layer, from the model's input only (tests count the calls)."""
    walked: list[LayerPlan] = []
    shape, sequence, reads = input_shape, first_sequence(input_shape), INPUT
    counters: dict[str, int] = {}
    for i, layer in enumerate(layers):
        entry = LAYERS.get(layer["type"])
        args = {k: v for k, v in layer.items() if k != "type"}
        count = counters.get(entry.name, 0)
        counters[entry.name] = count + 1
        name = entry.name if count == 0 else f"{entry.name}_{count}"
        planned = LayerPlan(i, name, entry.name, tuple((k, _frozen(v)) for k, v in args.items()), (reads,), shape,
                            None, sequence)
        try:
            new = tuple(entry.infer(args, shape))
            if any(n < 1 for n in new):
                raise ShapeError(f"{entry.name} would output {fmt_shape(new)} from {fmt_shape(shape)}: sizes must "
                                 f"be >= 1")
        except ShapeError as err:
            err.index, err.walked = i, (*walked, planned)
            raise
        walked.append(replace(planned, output_shape=new))
        sequence = sequence_after(entry, args, i, sequence, shape, new)
        shape, reads = new, name
    return tuple(walked)


class _Memo:
    """A small least-recently-used memo of walks by content (plans are immutable: shared safely,
    also with the device warm-up's thread)."""

    def __init__(self, size: int):
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, key: str):
        with self.lock:
            found = self.items.get(key)
            if found is not None:
                self.items.move_to_end(key)
            return found

    def put(self, key: str, value) -> None:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


_WALKS = _Memo(64)


def _frozen(value: Any) -> Any:
    return tuple(_frozen(v) for v in value) if isinstance(value, (list, tuple)) else value


def _thawed(value: Any) -> Any:
    return [_thawed(v) for v in value] if isinstance(value, tuple) else value
