"""Loss and metrics of a model on a split: one function, used by the trainer (val
and test) and by `dlcli evaluate`, so both report the same figures."""

from __future__ import annotations

import contextlib

import torch

from dlcli.metrics import METRICS


def metric_functions(names: list[str]) -> dict:
    return {name: METRICS.get(name).build() for name in names}


def sum_loss(loss_fn, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The loss summed over the batch, whatever the loss's own reduction."""
    return loss_fn(outputs, targets) * (targets.shape[0] if getattr(loss_fn, "reduction", "mean") == "mean" else 1)


@torch.no_grad()
def evaluate_split(model, split, loss_fn, metric_fns: dict, batch_size: int, autocast=None,
                   collect_outputs: bool = False) -> dict:
    """{'loss': ..., metric: ...} averaged over the split; with collect_outputs also
    the raw outputs and targets (CPU tensors) for per-class reports."""
    was_training = model.training
    model.eval()
    device = split.device
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    sums = {name: torch.zeros((), dtype=torch.float64, device=device) for name in metric_fns}
    outputs_all, targets_all = [], []
    try:
        with split.worker_failures():
            for xb, yb in split.slices(batch_size):
                with autocast() if autocast else contextlib.nullcontext():
                    out = model(xb)
                out = out.float()
                loss_sum += sum_loss(loss_fn, out, yb).double()
                for name, fn in metric_fns.items():
                    sums[name] += fn(out, yb).double()
                if collect_outputs:
                    outputs_all.append(out.cpu())
                    targets_all.append(yb.cpu())
    finally:
        model.train(was_training)
    n = max(len(split), 1)
    result = {"loss": float(loss_sum) / n, **{name: float(v) / n for name, v in sums.items()}}
    if collect_outputs:
        result["outputs"] = torch.cat(outputs_all) if outputs_all else torch.empty(0)
        result["targets"] = torch.cat(targets_all) if targets_all else torch.empty(0)
    return result

