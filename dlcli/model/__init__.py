"""The model side: a config's model planned once, then built as a plain `torch.nn.Module`.

    plan = plan_model(cfg)            # shapes, names, task: plain data, no torch (plan.py)
    model = build_model(plan)         # an nn.Sequential named as the plan names it (build.py)
    summarize(plan, model)            # the rows `dlcli validate` prints (summary.py)

Importing this package imports no torch (the config validator plans models); the names
from build.py, summary.py and device.py load it when first used.
"""

from __future__ import annotations

from dlcli.model.plan import INPUT, IdInput, LayerPlan, ModelPlan, plan_layers, plan_model

__all__ = ["INPUT", "IdInput", "LayerPlan", "ModelPlan", "plan_layers", "plan_model", "Model", "build_model",
           "build_meta_model", "build_training_model", "largest_layer", "materialize", "uses_channels_last",
           "MAX_PARAMETERS", "LayerInfo", "summarize", "autocast_dtype", "resolve_device"]

_WITH_TORCH = {"Model": "build", "build_model": "build", "build_meta_model": "build", "build_training_model": "build",
               "largest_layer": "build", "materialize": "build", "uses_channels_last": "build",
               "MAX_PARAMETERS": "build", "LayerInfo": "summary", "summarize": "summary", "autocast_dtype": "device",
               "resolve_device": "device"}


def __getattr__(name: str):
    """The names that need torch, imported on first use."""
    module = _WITH_TORCH.get(name)
    if module == "build":
        from dlcli.model import build as found
    elif module == "summary":
        from dlcli.model import summary as found
    elif module == "device":
        from dlcli.model import device as found
    else:
        raise AttributeError(f"module 'dlcli.model' has no attribute {name!r}")
    return getattr(found, name)
