"""Memory a job needs, checked before it is taken: the records of a checkpoint (from its zip
directory, before torch.load), the model a checkpoint's config builds, and training (weights,
gradients, optimizer state and one batch's activations). Each is refused with the figures when
it does not fit, rather than ending in an allocator's traceback or the kernel's OOM killer.

What is available: the kernel's MemAvailable, capped by a cgroup (container) limit and by the
process's own limits (`ulimit -v`, `ulimit -d`); a CUDA device's free memory for training on it.
"""

from __future__ import annotations

import math
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

from dlcli.errors import CheckpointError, DlcliError, short_size

MARGIN = 1.1  # an estimate must fit with a tenth to spare: allocators and the rest of the process need some
FLOAT32 = 4  # bytes: weights, gradients and optimizer state are float32 (mixed precision keeps float32 weights)
UNKNOWN_OPTIMIZER_SLOTS = 2  # values kept per parameter by an optimizer that does not say (Adam's: the most)


def available_memory() -> int | None:
    """Bytes of memory this process may still use: the kernel's MemAvailable, capped by a
    cgroup (container) limit and by the address-space and data limits (`ulimit -v`, `ulimit -d`)
    less what the process already uses of them; None when none of these can be read."""
    found = []
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text(encoding="ascii").strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text(encoding="ascii"))
            found.append(max(int(limit) - used, 0))
    except (OSError, ValueError):
        pass
    found += _room_under_rlimits()
    return min(found) if found else None


def _room_under_rlimits() -> list[int]:
    """What RLIMIT_AS and RLIMIT_DATA leave: each soft limit less the size it counts (VmSize,
    VmData of /proc/self/status). Empty where no limit is set or the sizes cannot be read."""
    try:
        import resource
    except ImportError:  # not on Windows
        return []
    sizes = {}
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("VmSize", "VmData"):
                    sizes[key] = int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return []
    room = []
    for limit, size in ((resource.RLIMIT_AS, "VmSize"), (resource.RLIMIT_DATA, "VmData")):
        soft = resource.getrlimit(limit)[0]
        if soft != resource.RLIM_INFINITY and size in sizes:
            room.append(max(soft - sizes[size], 0))
    return room


def _fits(need: int, available: int | None) -> bool:
    return available is None or need * MARGIN <= available


def unpacked_size(path: Path) -> int | None:
    """The bytes a torch file's records take unpacked, as its zip directory declares them (torch
    reads each record whole, at that size); None for a file that is no zip archive (torch.load
    then says what it is)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None  # a FIFO, a device...: nothing to read ahead of torch.load
        with zipfile.ZipFile(path) as archive:
            return sum(info.file_size for info in archive.infolist())
    except (OSError, EOFError, ValueError, NotImplementedError, zipfile.BadZipFile):
        return None


def refuse_checkpoint_beyond_memory(path: Path) -> None:
    """A checkpoint whose records do not fit in memory unpacked is refused before torch.load: a
    3 MB file can hold a deflated 3 GB tensor. dlcli stores records uncompressed."""
    need = unpacked_size(path)
    if need is None:
        return
    available = available_memory()
    if _fits(need, available):
        return
    size = os.path.getsize(path)
    packed = ": packed, which dlcli's checkpoints never are" if need > 2 * size else ""
    raise CheckpointError(f"{path}: the checkpoint's tensors take {short_size(need)} unpacked (the file is "
                          f"{short_size(size)}{packed}); {short_size(available)} of memory is available: refused "
                          f"before loading")


def _largest_layer(cfg: dict, model) -> str:
    """'model.layers[1] (dense, 686,000,000 parameters)': the layer with the most parameters."""
    from dlcli.model import largest_layer, plan_model

    layer, params = largest_layer(plan_model(cfg), model)
    return f"model.layers[{layer.index}] ({layer.type}, {params:,} parameters)"


def model_bytes(model) -> int:
    """Bytes of a model's parameters and buffers (a meta model's too: it knows its dtypes)."""
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))


def refuse_model_beyond_memory(cfg: dict, model) -> None:
    """The model of `cfg` (`model`: built on the meta device) is refused when building it for real
    would not fit in memory; a DlcliError naming its largest layer."""
    need, available = model_bytes(model), available_memory()
    if not _fits(need, available):
        params = sum(p.numel() for p in model.parameters())
        raise DlcliError(f"model: {params:,} parameters take {short_size(need)} in float32, and "
                         f"{short_size(available)} of memory is available: refused before building it; "
                         f"the largest layer is {_largest_layer(cfg, model)}", key=("model",))


@dataclass(frozen=True)
class TrainingFootprint:
    """Bytes training takes, roughly: what the model, its gradients and its optimizer hold, and
    the activations of one batch kept for the backward pass."""

    weights: int
    gradients: int
    optimizer_state: int
    activations: int
    batch_size: int

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer_state + self.activations

    def __str__(self) -> str:
        return (f"about {short_size(self.total)} (weights {short_size(self.weights)}, gradients "
                f"{short_size(self.gradients)}, optimizer state {short_size(self.optimizer_state)}, activations "
                f"for a batch of {self.batch_size}: {short_size(self.activations)})")


def optimizer_slots(spec: dict) -> int:
    """Values the optimizer of `spec` (a resolved `optimizer:` section) keeps per parameter, as
    its registry entry declares them (Adam: 2, SGD with momentum: 1)."""
    from dlcli.optim import OPTIMIZERS

    slots = OPTIMIZERS.get(spec["type"]).meta.get("state_slots")
    return UNKNOWN_OPTIMIZER_SLOTS if slots is None else slots(spec)


def training_footprint(cfg: dict, model) -> TrainingFootprint:
    """The footprint of training `model` (built on the meta device) as `cfg` says: float32
    weights, gradients and optimizer state; the outputs of every layer for one batch, twice
    (what autograd keeps, and the gradients flowing back)."""
    from dlcli.model import plan_model

    params = [p for p in model.parameters() if p.requires_grad]
    trainable = sum(p.numel() for p in params) * FLOAT32
    batch = cfg["data"]["batch_size"]
    plan = plan_model(cfg)
    values = math.prod(plan.input_shape) + sum(math.prod(layer.output_shape) for layer in plan.layers)
    return TrainingFootprint(weights=model_bytes(model), gradients=trainable,
                             optimizer_state=trainable * optimizer_slots(cfg["optimizer"]),
                             activations=2 * values * batch * FLOAT32, batch_size=batch)


def device_memory(device) -> tuple[int | None, str]:
    """(bytes free for training on `device`, where: '' for the host or ' on cuda:0')."""
    if device.type != "cuda":
        return available_memory(), ""  # the CPU's, and MPS shares the host's memory
    import torch

    try:
        return torch.cuda.mem_get_info(device)[0], f" on {device}"
    except RuntimeError:
        return None, ""


def refuse_training_beyond_memory(cfg: dict, model, device) -> None:
    """Training `model` (built on the meta device) on `device` is refused, with the figures,
    when its footprint does not fit in the memory there; a DlcliError about `model`."""
    available, where = device_memory(device)
    footprint = training_footprint(cfg, model)
    if _fits(footprint.total, available):
        return
    hints = [f"fewer or smaller layers (the largest is {_largest_layer(cfg, model)})"]
    slots = optimizer_slots(cfg["optimizer"])
    if slots:
        hints.append(f"an optimizer that keeps less state ({cfg['optimizer']['type']} keeps {slots} "
                     f"value{'s' if slots != 1 else ''} per parameter; sgd without momentum keeps none)")
    if footprint.activations > footprint.weights:
        hints.insert(0, "a smaller data.batch_size")
    raise DlcliError(f"model: training needs {footprint}; {short_size(available)} of memory is available{where}. "
                     f"HINT: {'; '.join(hints)}", key=("model",))
