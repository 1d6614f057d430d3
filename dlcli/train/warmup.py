"""Device warm-up in the background, overlapped with reading the data.

The first kernels a process runs on a GPU pay for creating the CUDA context and
for loading cuDNN, cuBLAS and the kernels themselves: about 0.3 s on an H200 (the
hand-written loop's first epoch against its others), more than two epochs of the
seed config on the CUDA-graph path. Done in series, that cost follows the data
loading and lands in the first epoch. `DeviceWarmup`
runs the model's forward, backward and optimizer step once, on zeros, in a thread
while the main thread reads and decodes the data on the CPU; the two overlap and
the run's wall time shrinks by the shorter of them.

The warm-up model is a copy of the run's model as built on the meta device (no
random numbers drawn, no memory: the copy costs nothing, and the run builds its
model once), its results are thrown away, it leaves no memory cached, and the
run set-up seeds every generator after it; a failure in it is ignored (training
meets and reports any real problem itself).
"""

from __future__ import annotations

import copy
import threading

import torch


def meta_model(cfg: dict) -> torch.nn.Module:
    """The model as the trainer builds it, on the meta device: no weights initialized, so
    no random numbers drawn."""
    from dlcli.model import build_model

    with torch.device("meta"):
        return build_model(cfg, fuse=cfg["trainer"]["fuse"])


def warm_up(cfg: dict, device: torch.device, model: torch.nn.Module | None = None) -> None:
    """One training step of the config's model (`meta_model(cfg)` unless given, on the meta
    device: it is given memory on `device`) on zeros, on `device`: the kernels and libraries the
    real steps will use get loaded."""
    from dlcli.model import autocast_dtype, plan_model, uses_channels_last
    from dlcli.optim import build_optimizer
    from dlcli.train.cuda_graphs import graph_blockers

    t = cfg["trainer"]
    model = (model if model is not None else meta_model(cfg)).to_empty(device=device)
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            tensor.zero_()
    if uses_channels_last(cfg, device):
        model = model.to(memory_format=torch.channels_last)
    model.train()
    plan = plan_model(cfg)
    x = torch.zeros(cfg["data"]["batch_size"], *plan.input_shape, device=device,
                    dtype=torch.long if plan.ids else torch.float32)  # integer ids in, or values
    dtype = autocast_dtype(t["precision"], device)
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        out = model(x)
    out.float().square().mean().backward()
    optimizer = build_optimizer(cfg, model.parameters(), device,
                                capturable=bool(t["cuda_graphs"]) and not graph_blockers(cfg, device))
    optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class DeviceWarmup:
    """`warm_up` in a daemon thread, for CUDA devices (elsewhere there is nothing to
    load: `start` returns a handle whose `join` returns at once)."""

    DEVICE_TYPES = ("cuda",)

    def __init__(self, cfg: dict, device: torch.device):
        self.cfg, self.device = cfg, device
        self.thread: threading.Thread | None = None
        self.model: torch.nn.Module | None = None  # on the meta device
        self.error: BaseException | None = None

    @classmethod
    def start(cls, cfg: dict, device: torch.device, model: torch.nn.Module | None = None) -> "DeviceWarmup":
        """`model`: the run's model as built on the meta device, with trainer.fuse (the warm-up
        steps a copy of it); None builds one."""
        warmup = cls(cfg, device)
        if device.type in cls.DEVICE_TYPES:
            # The modules the step needs are imported here, first, and the model is built here:
            # two threads importing at once can deadlock on import locks, and the main thread
            # imports while it reads the data. torch's first optimizer imports torch._dynamo,
            # which also leaves a reference cycle holding that optimizer's weights until some
            # later garbage collection (during a CUDA graph capture, say): imported here, it
            # holds nothing.
            try:
                import torch._dynamo  # noqa: F401

                import dlcli.optim  # noqa: F401
                import dlcli.train.cuda_graphs  # noqa: F401

                warmup.model = copy.deepcopy(model) if model is not None else meta_model(cfg)
            except Exception as err:  # noqa: BLE001 - an optimization only, as below
                warmup.error = err
                return warmup
            warmup.thread = threading.Thread(target=warmup._run, name="dlcli-device-warmup", daemon=True)
            warmup.thread.start()
        return warmup

    def _run(self) -> None:
        # The generators are process-wide: whatever the step draws (dropout) is put back.
        devices = [self.device] if self.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices, device_type=self.device.type):
                warm_up(self.cfg, self.device, self.model)
        except BaseException as err:  # noqa: BLE001 - an optimization only; training reports real problems
            self.error = err
        finally:
            try:
                self.model = None
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()  # the run's own memory checks see the whole device
            except BaseException:  # noqa: BLE001
                pass

    def note(self) -> str | None:
        """What a failed warm-up means for the run (None when it ran, or had nothing to do)."""
        if self.error is None:
            return None
        return (f"the device warm-up failed and was skipped ({type(self.error).__name__}: {self.error}); the "
                f"first epoch pays for loading the device's libraries instead")

    def join(self) -> None:
        """Wait for the warm-up: before the run measures free device memory or captures a graph."""
        if self.thread is not None:
            self.thread.join()
            self.thread = None
