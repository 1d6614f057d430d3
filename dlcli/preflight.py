"""What `dlcli validate` checks beyond the config text: the device it asks for and the data it
names (files there, headers and shapes that fit the model; never a whole data set). Problems are
reported as config problems are, at the key's file and line, all at once."""

from __future__ import annotations

from dlcli.config import ConfigOrigin
from dlcli.errors import ConfigError, DlcliError


def preflight(cfg: dict, origin: ConfigOrigin, data: bool = True, model=None) -> None:
    """Raise a ConfigError listing every problem of `cfg`'s device and (with `data`) its data;
    with `model` (built on the meta device) also training that would not fit in the CPU's memory
    (a GPU's free memory is not asked for: that would start CUDA)."""
    from dlcli.memory import refuse_training_beyond_memory
    from dlcli.model import resolve_device

    problems = []
    try:
        device = resolve_device(cfg["trainer"]["device"])
        if model is not None and device.type == "cpu":
            refuse_training_beyond_memory(cfg, model, device)
    except DlcliError as err:
        problems.append(origin.problem(err.key or ("trainer", "device"), str(err)))
    if data:
        from dlcli.data import check_data
        from dlcli.model import plan_model

        problems += [origin.problem(key, message) for key, message in check_data(cfg, plan_model(cfg))]
    if problems:
        raise ConfigError(problems, origin.source)
