"""Where and in what precision a model runs: trainer.device and trainer.precision resolved."""

from __future__ import annotations

import torch

from dlcli.errors import DlcliError


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
