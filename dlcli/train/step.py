"""The training step behind one small interface: `step(idx, batch, update)` trains on the
training samples `idx`, the epoch's `batch`-th batch, with the optimizer update when `update`;
`step.graphed` is the CUDA graph full batches replay (None: none).

`EagerStep` runs every batch eagerly. `CapturedStep` (trainer.cuda_graphs) replays full batches
from a CUDA graph of the same step (dlcli.train.cuda_graphs) and runs the epoch's last, partial
batch eagerly. Beside them, what chooses: `use_cuda_graphs` (the graph blockers) and
`compile_forward` (torch.compile), each leaving a note when what the config asks cannot run.

GPU: no host sync inside the step; the loss and metric sums stay on the device.
"""

from __future__ import annotations

import math
import shutil

import torch

from dlcli.train.cuda_graphs import GraphedStep, graph_blockers


class EagerStep:
    """One batch on the device, without a host sync on a GPU: forward, backward, the optimizer
    update when `update`, and the batch's loss and metric sums at its place in the epoch.
    `keep_gradients`: zeroed in place after an update, not freed (a CUDA graph holds their
    addresses)."""

    graphed = None  # every batch runs here

    def __init__(self, trainer, keep_gradients: bool = False):
        self.trainer, self.keep_gradients = trainer, keep_gradients

    def __call__(self, idx: torch.Tensor, batch, update: bool) -> None:
        t = self.trainer
        xb, yb = t.data.train.batch(idx)  # (B, *input_shape), (B,)
        if t.channels_last and xb.dim() == 4:  # images; a flat input reshaped inside the model is not one
            xb = xb.contiguous(memory_format=torch.channels_last)
        with t.autocast():
            out = t.model(xb)
            loss = t.loss_fn(out.float(), yb)
        scaled = loss / t.accum if t.accum > 1 else loss
        (t.scaler.scale(scaled) if t.scaler is not None else scaled).backward()
        if update:
            self.update()
        self.record(loss, out, yb, batch)

    def update(self) -> None:
        t, clip = self.trainer, self.trainer.cfg["trainer"]["grad_clip"]
        if t.scaler is not None:
            if clip:
                t.scaler.unscale_(t.optimizer)
                torch.nn.utils.clip_grad_norm_(t.model.parameters(), clip)
            t.scaler.step(t.optimizer)
            t.scaler.update()
        else:
            if clip:
                torch.nn.utils.clip_grad_norm_(t.model.parameters(), clip)
            t.optimizer.step()
        t.optimizer.zero_grad(set_to_none=not self.keep_gradients)

    @torch.no_grad()
    def record(self, loss: torch.Tensor, out: torch.Tensor, yb: torch.Tensor, batch) -> None:
        """The batch's loss and metric sums, at position `batch` of the epoch."""
        t, loss = self.trainer, loss.detach()
        if t.device.type == "cpu" and not math.isfinite(loss.item()):  # free to check at once on the CPU
            raise t.non_finite_error(batch)
        out = out.detach().float()
        self.store(loss, [fn(out, yb) for fn in t.metric_fns.values()], batch)

    def store(self, loss: torch.Tensor, metrics: list[torch.Tensor], batch: int) -> None:
        self.trainer.batch_losses[batch] = loss
        if metrics:
            self.trainer.batch_metric_sums[:, batch] = torch.stack(metrics)


class RecordedStep(EagerStep):
    """The step as a CUDA graph records it (GraphedStep, through Trainer.train_step): the batch's
    place in the epoch is a device tensor, so the sums are written there without a host value."""

    def store(self, loss: torch.Tensor, metrics: list[torch.Tensor], batch: torch.Tensor) -> None:
        t = self.trainer
        t.batch_losses.index_copy_(0, batch.view(1), loss.float().view(1))
        if metrics:
            t.batch_metric_sums.index_copy_(1, batch.view(1), torch.stack(metrics).double().view(-1, 1))


class CapturedStep:
    """trainer.cuda_graphs: each full batch replays `graphed` (a GraphedStep, which captures
    `recorded`); the epoch's last, partial batch runs the same step eagerly, so no data is
    dropped. Both keep the gradient tensors, whose addresses the graph holds."""

    def __init__(self, trainer, graphed=None):
        self.eager = EagerStep(trainer, keep_gradients=True)
        self.recorded = RecordedStep(trainer, keep_gradients=True)
        self.batch_size = trainer.batch_size
        self.graphed = graphed if graphed is not None else GraphedStep(trainer)

    def __call__(self, idx: torch.Tensor, batch: int, update: bool) -> None:
        if len(idx) == self.batch_size:
            self.graphed.step(idx, batch)  # the same step, replayed from a CUDA graph
        else:
            self.eager(idx, batch, update)


def use_cuda_graphs(cfg: dict, device: torch.device, data, notes: list[str]) -> bool:
    """trainer.cuda_graphs, unless something blocks the capture (then a note says what)."""
    if not cfg["trainer"]["cuda_graphs"]:
        return False
    blockers = graph_blockers(cfg, device, streamed=data.streamed, on_host=data.train.home.type != device.type)
    if blockers:
        notes.append(f"trainer.cuda_graphs ignored: {'; '.join(blockers)}")
    return not blockers


def compile_forward(model: torch.nn.Module, device: torch.device, use_graphs: bool, notes: list[str]) -> None:
    """trainer.compile: torch.compile the model's forward, in place (the state_dict keys stay),
    unless the whole step is captured in a CUDA graph, or there is no C++ compiler for the CPU
    code torch generates (then a note says so)."""
    if use_graphs:
        notes.append("trainer.compile ignored: trainer.cuda_graphs captures the whole step already")
    elif device.type == "cpu" and not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        notes.append("trainer.compile ignored: compiling for the CPU needs a C++ compiler (c++, g++ or clang++ on "
                     "the PATH), and none was found")
    else:
        model.compile()
