"""Config in, plain `torch.nn.Module` out.

`build_model` walks the resolved layers with the same shape inference the
validator used, names each module after its type with a counter (`conv2d`,
`conv2d_1`, `dense`) so summary rows, state_dict keys and the config line up,
and returns an `nn.Sequential`.

A final activation that the loss already contains (softmax before a
cross-entropy, sigmoid before a binary cross-entropy) is not applied in
`forward`: the model returns logits, as Keras does with `from_logits=True`, and
`Model.predict_proba` applies it where probabilities are wanted.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn as nn

from dlcli.activations import build_activation
from dlcli.config import infer_shapes
from dlcli.errors import DlcliError
from dlcli.layers import final_activation
from dlcli.losses import LOSSES


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


@dataclass(frozen=True)
class LayerInfo:
    name: str
    type: str
    input_shape: tuple
    output_shape: tuple
    params: int
    note: str = ""


def _final_activation(layers: list[dict], loss_type: str | None) -> tuple[int, str] | None:
    """(index, activation) of a last activation that the loss applies itself, else None."""
    if not loss_type:
        return None
    logits_of = LOSSES.get(loss_type).meta.get("logits_of")
    if logits_of and final_activation(layers) == logits_of:
        return len(layers) - 1, logits_of
    return None


def plan_layers(cfg: dict) -> list[tuple]:
    """[(module name, entry, args, shape_in, shape_out)] for the config's layers."""
    counters: dict[str, int] = {}
    plan = []
    for entry, args, shape_in, shape_out in infer_shapes(cfg["model"]["input_shape"], cfg["model"]["layers"]):
        n = counters.get(entry.name, 0)
        counters[entry.name] = n + 1
        plan.append((entry.name if n == 0 else f"{entry.name}_{n}", entry, args, shape_in, shape_out))
    return plan


def _commutes_with_next_pool(plan: list, i: int) -> bool:
    """A convolution whose non-decreasing activation can move after the max-pool that follows it."""
    from dlcli.activations import ACTIVATIONS

    entry, args = plan[i][1], plan[i][2]
    if not entry.meta.get("moves_activation") or not args.get("activation") or i + 1 >= len(plan):
        return False
    return plan[i + 1][1].meta.get("takes_activation") and ACTIVATIONS.get(args["activation"]).meta["monotone"]


def build_model(cfg: dict, fuse: bool = False) -> Model:
    """Build the model of a resolved config, on the CPU, in float32.

    fuse=True applies exact rewrites that compute the same function faster (a
    conv's monotone activation moved after the max-pool that follows it); the
    module names and state_dict keys stay the same.
    """
    from dlcli.layers._modules import ActivatedPool

    plan = plan_layers(cfg)
    stripped = _final_activation(cfg["model"]["layers"], (cfg.get("loss") or {}).get("type"))
    modules: "OrderedDict[str, nn.Module]" = OrderedDict()
    moved: str | None = None  # an activation waiting for the pool after its conv
    for i, (name, entry, args, shape_in, _) in enumerate(plan):
        if stripped and i == stripped[0]:
            if entry.name == "activation":
                continue  # the loss applies it; predict_proba applies it again
            args = {**args, "activation": None}
        if fuse and _commutes_with_next_pool(plan, i):
            moved, args = args["activation"], {**args, "activation": None}
            modules[name] = entry.build(args, shape_in)
            continue
        module = entry.build(args, shape_in)
        modules[name] = ActivatedPool(module, moved) if moved else module
        moved = None
    return Model(modules, output_activation=stripped[1] if stripped else None)


def uses_channels_last(cfg: dict, device: torch.device) -> bool:
    """channels_last pays on the CPU for 2-D convolutions (measured in benchmarks/)."""
    setting = cfg["trainer"]["channels_last"]
    if setting != "auto":
        return bool(setting)
    from dlcli.layers import LAYERS

    pays = any(LAYERS.get(layer["type"]).meta.get("channels_last_on_cpu") for layer in cfg["model"]["layers"])
    return pays and device.type == "cpu"


def build_training_model(cfg: dict, device: torch.device) -> Model:
    """The model as the trainer (and evaluate, to reproduce its figures) runs it:
    exact rewrites per trainer.fuse, channels_last memory per trainer.channels_last."""
    model = build_model(cfg, fuse=cfg["trainer"]["fuse"])
    if uses_channels_last(cfg, device):
        model = model.to(memory_format=torch.channels_last)
    return model.to(device)


MAX_PARAMETERS = 2_000_000_000


def build_meta_model(cfg: dict) -> Model:
    """Build on the meta device (shapes, no memory) and refuse models too large to hold."""
    try:
        with torch.device("meta"):
            model = build_model(cfg)
    except (RuntimeError, TypeError) as err:  # a weight with more than 2**63 values: torch cannot size it
        if "overflow" not in str(err).lower():
            raise
        raise DlcliError(f"model: a layer's weights have more values than a tensor can hold, far more than "
                         f"dlcli builds ({MAX_PARAMETERS:,} parameters); check the layer sizes") from None
    total = sum(p.numel() for p in model.parameters())
    if total > MAX_PARAMETERS:
        largest, params = largest_layer(model)
        layer = cfg["model"]["layers"][largest]
        raise DlcliError(f"model: {total:,} parameters ({total * 4 / 2**30:,.1f} GiB in float32) is more than "
                         f"dlcli builds ({MAX_PARAMETERS:,}); the largest layer is model.layers[{largest}] "
                         f"({layer['type']}, {params:,} parameters); check its size")
    return model


def largest_layer(model: Model) -> tuple[int, int]:
    """(index in model.layers, parameters) of the layer with the most parameters. A final
    activation the loss applies is no module, but it is the last layer: the indices line up."""
    sizes = [sum(p.numel() for p in module.parameters()) for module in model.children()]
    largest = max(range(len(sizes)), key=sizes.__getitem__)
    return largest, sizes[largest]


def summarize(cfg: dict, model: Model) -> dict:
    """Rows and totals for a Keras-style summary (the CLI renders them)."""
    stripped = _final_activation(cfg["model"]["layers"], (cfg.get("loss") or {}).get("type"))
    rows = []
    for i, (name, entry, _, shape_in, shape_out) in enumerate(plan_layers(cfg)):
        module = model._modules.get(name)
        params = sum(p.numel() for p in module.parameters()) if module is not None else 0
        note = ""
        if stripped and i == stripped[0]:
            note = f"{stripped[1]} applied at prediction; the loss takes logits"
        rows.append(LayerInfo(name, entry.name, shape_in, shape_out, params, note))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    buffers = sum(b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked"))
    size = sum(p.numel() * p.element_size() for p in model.parameters()) + \
        sum(b.numel() * b.element_size() for b in model.buffers())
    return {"rows": rows, "input_shape": tuple(cfg["model"]["input_shape"]), "trainable": trainable,
            "non_trainable": frozen + buffers, "total": trainable + frozen + buffers, "bytes": size,
            "output_activation": model.output_activation}


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """trainer.precision as an autocast dtype: bfloat16 or float16 on CUDA; None for fp32,
    and on other devices (mixed precision is for GPUs here)."""
    if precision == "fp32" or device.type != "cuda":
        return None
    return torch.bfloat16 if precision == "bf16" else torch.float16


def resolve_device(name: str, setting: str = "trainer.device") -> torch.device:
    """auto -> cuda, then mps, then cpu; a device that is not there is an error naming
    `setting`, where the name came from (the config key, or a command-line option); the
    error of a config key carries it (`DlcliError.key`), to be reported at its line."""
    key = None if setting.startswith("-") else tuple(setting.split("."))
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            hint = f"{setting} cpu" if setting.startswith("--") else f"{setting}=auto or {setting}=cpu"
            raise DlcliError(f"{setting}: {name} was asked for but CUDA is not available on this machine; "
                             f"HINT: {hint}", key=key)
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise DlcliError(f"{setting}: {name} does not exist; this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s)", key=key)
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DlcliError(f"{setting}: mps was asked for but is not available on this machine", key=key)
    return torch.device(name)
