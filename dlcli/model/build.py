"""A model plan in, a plain `torch.nn.Module` out.

`build_model` builds each planned layer on the shape the plan gives it, under the plan's
module names (`conv2d`, `conv2d_1`, `dense`), so summary rows, state_dict keys and the
config line up, and returns an `nn.Sequential`.

A final activation that the loss already contains (softmax before a cross-entropy,
sigmoid before a binary cross-entropy) is not applied in `forward`: the model returns
logits, as Keras does with `from_logits=True`, and `Model.predict_proba` applies it
where probabilities are wanted.

A run builds its model once: on the meta device (`build_meta_model`: no memory, and the
size guard reads it), then `materialize` gives it memory and the initial weights a build
on the CPU would have drawn.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn

from dlcli.activations import ACTIVATIONS, build_activation
from dlcli.errors import DlcliError
from dlcli.layers import LAYERS
from dlcli.model.plan import ModelPlan, plan_model


class Model(nn.Sequential):
    """An nn.Sequential of named layers, plus the output activation kept for predictions."""

    def __init__(self, layers: "OrderedDict[str, nn.Module]", output_activation: str | None = None):
        super().__init__(layers)
        self.output_activation = output_activation

    @property
    def output_act(self) -> nn.Module:
        # built on demand, never a child module: nn.Sequential.forward runs every child
        return build_activation(self.output_activation)

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs with the final activation applied (probabilities for classifiers)."""
        return self.output_act(self(x))


def as_plan(model: ModelPlan | dict) -> ModelPlan:
    """A plan, or a resolved config's (export's recipe builds from the config a sidecar holds)."""
    return model if isinstance(model, ModelPlan) else plan_model(model)


def _commutes_with_next_pool(layers: tuple, i: int) -> bool:
    """A convolution whose non-decreasing activation can move after the max-pool that follows it."""
    entry, args = LAYERS.get(layers[i].type), dict(layers[i].args)
    if not entry.meta.get("moves_activation") or not args.get("activation") or i + 1 >= len(layers):
        return False
    return LAYERS.get(layers[i + 1].type).meta.get("takes_activation") and \
        ACTIVATIONS.get(args["activation"]).meta["monotone"]


def build_model(model: ModelPlan | dict, fuse: bool = False) -> Model:
    """Build a planned model (or a resolved config's), on the CPU, in float32.

    fuse=True applies exact rewrites that compute the same function faster (a
    conv's monotone activation moved after the max-pool that follows it); the
    module names and state_dict keys stay the same.
    """
    from dlcli.layers._modules import ActivatedPool

    plan = as_plan(model)
    last = len(plan.layers) - 1
    modules: "OrderedDict[str, nn.Module]" = OrderedDict()
    moved: str | None = None  # an activation waiting for the pool after its conv
    for i, layer in enumerate(plan.layers):
        entry, args = LAYERS.get(layer.type), layer.arguments
        if plan.output_activation and i == last:
            if entry.name == "activation":
                continue  # the loss applies it; predict_proba applies it again
            args = {**args, "activation": None}
        if fuse and _commutes_with_next_pool(plan.layers, i):
            moved, args = args["activation"], {**args, "activation": None}
            modules[layer.name] = entry.build(args, layer.input_shape)
            continue
        module = entry.build(args, layer.input_shape)
        modules[layer.name] = ActivatedPool(module, moved) if moved else module
        moved = None
    return Model(modules, output_activation=plan.output_activation)


MAX_PARAMETERS = 2_000_000_000


def build_meta_model(model: ModelPlan | dict, fuse: bool = False) -> Model:
    """Build on the meta device (shapes, no memory) and refuse models too large to hold."""
    plan = as_plan(model)
    try:
        with torch.device("meta"):
            built = build_model(plan, fuse=fuse)
    except (RuntimeError, TypeError) as err:  # a weight with more than 2**63 values: torch cannot size it
        if "overflow" not in str(err).lower():
            raise
        raise DlcliError(f"model: a layer's weights have more values than a tensor can hold, far more than "
                         f"dlcli builds ({MAX_PARAMETERS:,} parameters); check the layer sizes") from None
    total = sum(p.numel() for p in built.parameters())
    if total > MAX_PARAMETERS:
        layer, params = largest_layer(plan, built)
        raise DlcliError(f"model: {total:,} parameters ({total * 4 / 2**30:,.1f} GiB in float32) is more than "
                         f"dlcli builds ({MAX_PARAMETERS:,}); the largest layer is model.layers[{layer.index}] "
                         f"({layer.type}, {params:,} parameters); check its size")
    return built


def largest_layer(plan: ModelPlan, model: Model):
    """(LayerPlan, parameters) of the planned layer whose module in `model` has the most parameters."""
    sizes = {name: sum(p.numel() for p in module.parameters()) for name, module in model.named_children()}
    name = max(sizes, key=sizes.__getitem__)
    return plan.layer(name), sizes[name]


def materialize(model: Model) -> Model:
    """A model built on the meta device, given memory on the CPU and the initial weights a build
    on the CPU gives it: each module's `reset_parameters`, in the order the build constructs
    them, drawing the same random numbers from the same generator state. In place."""
    model.to_empty(device="cpu")
    for module in model.modules():  # the layers in order, as built (no module holds weights of its children)
        if next(module.parameters(recurse=False), None) is None and next(module.buffers(recurse=False), None) is None:
            continue
        if not hasattr(module, "reset_parameters"):
            raise TypeError(f"{type(module).__name__} holds weights but has no reset_parameters: it cannot be "
                            f"initialized after a build on the meta device")
        module.reset_parameters()
    return model


def uses_channels_last(cfg: dict, device: torch.device) -> bool:
    """channels_last pays on the CPU for 2-D convolutions (measured in benchmarks/)."""
    setting = cfg["trainer"]["channels_last"]
    if setting != "auto":
        return bool(setting)
    return plan_model(cfg).channels_last_pays and device.type == "cpu"


def build_training_model(cfg: dict, device: torch.device, meta: Model | None = None) -> Model:
    """The model as the trainer (and evaluate, to reproduce its figures) runs it:
    exact rewrites per trainer.fuse, channels_last memory per trainer.channels_last.
    `meta`: the config's model already built on the meta device with trainer.fuse
    (`build_meta_model`), materialized here rather than built again."""
    model = materialize(meta) if meta is not None else build_model(cfg, fuse=cfg["trainer"]["fuse"])
    if uses_channels_last(cfg, device):
        model = model.to(memory_format=torch.channels_last)
    return model.to(device)
