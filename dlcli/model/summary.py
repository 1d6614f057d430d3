"""A Keras-style model summary: a row per planned layer, with its shapes and parameter count,
and the totals (the CLI renders them)."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from dlcli.model.build import as_plan
from dlcli.model.plan import ModelPlan


@dataclass(frozen=True)
class LayerInfo:
    name: str
    type: str
    input_shape: tuple
    output_shape: tuple
    params: int
    note: str = ""


def summarize(model_plan: ModelPlan | dict, model: nn.Module) -> dict:
    """Rows and totals of a planned model (or a resolved config's) and its built `model`."""
    plan = as_plan(model_plan)
    rows = []
    for layer in plan.layers:
        module = model._modules.get(layer.name)
        params = sum(p.numel() for p in module.parameters()) if module is not None else 0
        note = ""
        if plan.output_activation and layer is plan.output:
            note = f"{plan.output_activation} applied at prediction; the loss takes logits"
        rows.append(LayerInfo(layer.name, layer.type, layer.input_shape, layer.output_shape, params, note))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    buffers = sum(b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked"))
    size = sum(p.numel() * p.element_size() for p in model.parameters()) + \
        sum(b.numel() * b.element_size() for b in model.buffers())
    return {"rows": rows, "input_shape": plan.input_shape, "trainable": trainable,
            "non_trainable": frozen + buffers, "total": trainable + frozen + buffers, "bytes": size,
            "output_activation": model.output_activation}
