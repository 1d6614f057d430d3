"""The opt-in GPU fast path (`trainer.cuda_graphs: true`): the whole training step
(index gather, normalization, forward, loss, backward, optimizer update, running
sums) captured once in a CUDA graph and replayed for every full batch, which
removes the per-kernel launch cost of Python. The last partial batch of an epoch
runs the same step eagerly, so no data is dropped (unless data.drop_last).
"""

from __future__ import annotations

import contextlib
import gc

import torch

from dlcli.optim import OPTIMIZERS


def graph_blockers(cfg: dict, device: torch.device, streamed: bool = False, on_host: bool = False) -> list[str]:
    """Why the step cannot be captured for this config, device and data (empty: it can);
    `streamed`: the training set is read from files per batch, not held as tensors;
    `on_host`: it is held in CPU memory (too large for the GPU), not on the device."""
    t = cfg["trainer"]
    blockers = []
    if device.type != "cuda":
        blockers.append(f"it needs a CUDA device (training on {device.type})")
    if streamed:
        blockers.append("the training images are streamed from their files (data.in_memory), and a captured "
                        "step gathers its batch from data held on the device")
    elif on_host and device.type == "cuda":
        blockers.append("the training set is held in CPU memory (it would take more than half of the free GPU "
                        "memory), and a captured step gathers its batch from data held on the device")
    if cfg.get("scheduler"):
        blockers.append("a scheduler changes the learning rate, which a captured step would not see")
    if t["grad_accum"] > 1:
        blockers.append("gradient accumulation needs steps without an optimizer update")
    if t["precision"] == "fp16":
        blockers.append("fp16 needs a gradient scaler that reads the gradients on the host; use bf16")
    if not OPTIMIZERS.get(cfg["optimizer"]["type"]).meta["capturable"]:
        capturable = [entry.name for entry in OPTIMIZERS if entry.meta["capturable"]]
        blockers.append(f"optimizer {cfg['optimizer']['type']} is not captured (use one of "
                        f"{', '.join(capturable)})")
    return blockers


class GraphedStep:
    """Runs `trainer.train_step` from a CUDA graph: a few eager warm-up steps on a side
    stream (as the CUDA-graph recipe asks), then one capture, then replays."""

    WARMUP_STEPS = 3

    def __init__(self, trainer):
        self.trainer = trainer
        home = trainer.data.train.home
        self.idx = torch.zeros(trainer.batch_size, dtype=torch.long, device=home)  # static inputs
        self.batch = torch.zeros((), dtype=torch.long, device=trainer.device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.warmups = 0

    def step(self, idx: torch.Tensor, batch: int) -> None:
        self.idx.copy_(idx, non_blocking=True)
        self.batch.fill_(batch)
        if self.graph is None:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            if self.warmups < self.WARMUP_STEPS:
                with torch.cuda.stream(side):
                    self.trainer.train_step(self.idx, self.batch, update=True)
                torch.cuda.current_stream().wait_stream(side)
                self.warmups += 1
                return
            graph = torch.cuda.CUDAGraph()
            with frozen_heap(), torch.cuda.graph(graph):  # records the step; replay() below runs it
                self.trainer.train_step(self.idx, self.batch, update=True)
            self.graph = graph
        self.graph.replay()


@contextlib.contextmanager
def frozen_heap():
    """No Python garbage collection walks the heap while a step is captured. Older
    torch releases call gc.collect() on entering torch.cuda.graph (newer ones only
    under torch.compiler.config.force_cudagraph_gc), which visits every object of a
    process that has imported torch: about 0.1 s on a 2-core CPU, most of an epoch
    of the captured step. An automatic collection during the capture could
    also free a tensor the graph is recording. Objects that exist now are set aside
    (gc.freeze) and put back after, unless something else froze objects before (a
    partial unfreeze does not exist); none is lost to later collections."""
    enabled, freeze = gc.isenabled(), gc.get_freeze_count() == 0
    gc.disable()
    if freeze:
        gc.freeze()
    try:
        yield
    finally:
        if freeze:
            gc.unfreeze()
        if enabled:
            gc.enable()
