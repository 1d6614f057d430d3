"""Checkpoints: what goes in, atomic writes, safe loads. The one place that
reads or writes them.

A checkpoint is self-describing: it carries the resolved config, the model,
optimizer, scheduler and grad-scaler state, the epoch and step, the RNG states,
the best metric so far, the history, the data normalization and (CSV data) the
feature column names in order, so `evaluate`, `predict` and `--resume` need
nothing else. It holds only tensors and plain data, and is always loaded with
`torch.load(weights_only=True)`: a file holding pickled code is refused, never
executed.
"""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

from dlcli.errors import CheckpointError, short_list, short_repr, shorten
from dlcli.file_access import kind_of, refusal
from dlcli.files import atomic_write_bytes, file_kind
from dlcli.memory import refuse_checkpoint_beyond_memory

FORMAT = "dlcli-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Atomically write `state` (a `Trainer.state_dict()`) to `path`."""
    import torch

    path = Path(path)
    state = {"format": FORMAT, "format_version": FORMAT_VERSION, **state}
    try:
        atomic_write_bytes(path, lambda handle: torch.save(state, handle))
    except (OSError, RuntimeError) as err:
        # torch.save reports a write that failed part-way as a RuntimeError ("unexpected pos")
        # whose context is the OSError
        cause = err if isinstance(err, OSError) else err.__context__
        if not isinstance(cause, OSError):
            raise
        raise CheckpointError(f"{path}: cannot write the checkpoint: {cause.strerror or cause}; the previous "
                              f"checkpoint (if any) is left as it was") from None


EXPECTED_CHECKPOINT = "expected a checkpoint (.pt, in a run's checkpoints/) or a run directory"


def checkpoint_hint(path: Path) -> str:
    """'; this is a YAML file (a config?): expected ...' for a file that is no checkpoint."""
    kind = file_kind(path)
    return f"; this is {kind}: {EXPECTED_CHECKPOINT}" if kind and kind != "a torch file" else ""


def resolve_checkpoint_path(path: str | Path, prefer: str = "best.pt") -> Path:
    """A checkpoint file, or a run directory (its checkpoints/<prefer>, else the other one)."""
    path = Path(path)
    kind = kind_of(path, CheckpointError)
    if kind is None:
        raise CheckpointError(f"{path}: no such file or directory; expected a checkpoint (.pt) or a run directory")
    if kind == "folder":
        folder = path / "checkpoints" if kind_of(path / "checkpoints", CheckpointError) == "folder" else path
        order = [prefer] + [name for name in ("best.pt", "last.pt") if name != prefer]
        for name in order:
            if kind_of(folder / name, CheckpointError) == "file":
                return folder / name
        raise CheckpointError(f"{path}: a directory without checkpoints; expected a run directory with "
                              f"checkpoints/best.pt or checkpoints/last.pt, or a .pt file")
    return path


def load_checkpoint(path: str | Path, prefer: str = "best.pt", map_location: Any = "cpu") -> dict:
    """Load and check a dlcli checkpoint safely; every failure is a CheckpointError."""
    import torch

    path = resolve_checkpoint_path(path, prefer)
    refuse_checkpoint_beyond_memory(path)  # a deflated 3 GB tensor in a 3 MB file, before torch reads it
    try:
        with warnings.catch_warnings():  # torch's remarks on a foreign pickle: the checks below say what matters
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        lines = str(err).splitlines()
        # a GLOBAL (a class or function by name) is what code execution needs; anything else is garbage
        refused = next((line.strip() for line in lines if "global" in line.lower()), None)
        if refused is None:  # garbage, not code: the unpickler met bytes it does not know
            reason = next((line.strip() for line in lines if "Unsupported" in line), lines[0] if lines else "")
            hint = checkpoint_hint(path)
            raise CheckpointError(f"{path}: not a readable checkpoint" + (hint or (
                f" ({_why_unreadable(path)}): {shorten(reason.replace('WeightsUnpickler error: ', ''), 200)}"))
            ) from None
        detail = refused.replace("WeightsUnpickler error: ", "").split(" was not an allowed")[0].rstrip(".")
        raise CheckpointError(f"{path}: refused to load: the file holds Python objects or code that a "
                              f"checkpoint never contains (loaded with weights_only=True: nothing in it was run). "
                              f"{shorten(detail, 200)}".rstrip()) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError, IndexError) as err:
        if isinstance(err, OSError):  # the file could not be read at all: say why, not what it might be
            raise CheckpointError(f"{path}: cannot read the checkpoint: {refusal(err)}") from None
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint" + (checkpoint_hint(path) or (
            f" ({_why_unreadable(path)}): {shorten(reason, 200)}"))) from None
    except Exception as err:  # torch raises assorted errors on garbage input
        raise CheckpointError(f"{path}: not a readable checkpoint: {type(err).__name__}: "
                              f"{shorten(str(err), 200)}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a dlcli checkpoint (expected a file written by dlcli train; "
                              f"received {type(state).__name__}"
                              f"{' with keys ' + short_list(state, limit=8) if isinstance(state, dict) else ''})")
    version = state.get("format_version", 0)
    if not _is_count(version):
        raise CheckpointError(f"{path}: format_version: expected an integer, received {short_repr(version)}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer dlcli (format {short_repr(version)}); "
                              f"this dlcli reads format {FORMAT_VERSION}")
    missing = [key for key in ("config", "model", "epoch", "step") if key not in state]
    if missing:
        raise CheckpointError(f"{path}: incomplete checkpoint: missing {', '.join(missing)}")
    import torch

    problems = [f"{key}: expected an integer >= 0, received {short_repr(state[key])}"
                for key in ("epoch", "step", "batch_in_epoch") if key in state and not _is_count(state[key])]
    if not isinstance(state["model"], dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state["model"].items()):
        problems.append(f"model: expected a dict of named tensors, received {type(state['model']).__name__}")
    names = state.get("feature_names")
    if names is not None and not (isinstance(names, list) and names and all(isinstance(n, str) and n for n in names)
                                  and len(set(names)) == len(names)):
        problems.append(f"feature_names: expected a list of distinct column names, received {short_repr(names)}")
    problems += _field_problems(state)
    if problems:
        raise CheckpointError(f"{path}: damaged checkpoint: {'; '.join(problems)}")
    state["path"] = str(path)
    return state


ZIP_MAGIC = b"PK\x03\x04"  # how a zip archive, and so a torch file, starts


def _why_unreadable(path: Path) -> str:
    """What a file torch could not load is: empty, a zip archive cut short (a copy or a download
    that stopped), a damaged zip archive, or no zip archive (not a torch file)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as file:
            head = file.read(len(ZIP_MAGIC))
    except OSError as err:
        return f"cannot read it: {err.strerror or err}"
    if size == 0:
        return "the file is empty"
    if head != ZIP_MAGIC:
        return "not a torch file: torch files are zip archives, and this one does not start like one"
    if not zipfile.is_zipfile(path):
        return f"truncated: a zip archive whose end is missing ({size:,} bytes; an interrupted copy or download?)"
    return "a damaged zip archive"


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# The schema of a checkpoint's other fields. Each is checked before anything uses it, as a config
# is: a damaged or hand-made checkpoint is refused with what is wrong, never run into a traceback
# or into outputs of NaN. A field an older dlcli did not write may be missing.
MAX_CONFIG_DEPTH = 50  # a config file's own limit (dlcli.config._load.MAX_DEPTH)
MAX_CONFIG_VALUES = 50_000
MAX_STATISTICS = 1 << 20  # per-channel or per-feature means and stds: a CSV's columns at most
TASKS = ("classification", "regression")


def _field_problems(state: dict) -> list[str]:
    """What is wrong with the fields that `evaluate`, `predict`, `export` and `--resume` read."""
    problems = []
    config_problem = _plain_data_problem(state["config"])
    if not isinstance(state["config"], dict):
        problems.append(f"config: expected a mapping (the run's config), received {type(state['config']).__name__}")
    elif config_problem:
        problems.append(f"config: {config_problem}")
    if "normalization" in state:
        problems += [f"normalization{p}" for p in _normalization_problems(state["normalization"])]
    names = state.get("class_names")
    if names is not None and not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        problems.append(f"class_names: expected a list of class names (strings), received {short_repr(names)}")
    classes = state.get("num_classes")
    if classes is not None and not (_is_count(classes) and classes >= 1):
        problems.append(f"num_classes: expected an integer >= 1, received {short_repr(classes)}")
    if state.get("task") is not None and state["task"] not in TASKS:
        problems.append(f"task: expected {' or '.join(TASKS)}, received {short_repr(state['task'])}")
    history = state.get("history")
    if history is not None and not (isinstance(history, list) and all(
            isinstance(r, dict) and all(isinstance(k, str) for k in r) for r in history)):
        problems.append(f"history: expected a list of epoch records (mappings), received {short_repr(history)}")
    for key in ("best", "samples", "partial_sums"):
        if state.get(key) is not None and not isinstance(state[key], dict):
            problems.append(f"{key}: expected a mapping, received {short_repr(state[key])}")
    samples = state.get("samples")
    if isinstance(samples, dict) and not all(_is_count(n) for n in samples.values()):
        problems.append(f"samples: expected sample counts (integers >= 0), received {short_repr(samples)}")
    from dlcli.data.fingerprint import fingerprint_problems

    problems += fingerprint_problems(state.get("data_fingerprint"))
    problems += _weight_problems(state["model"])
    return problems


def _plain_data_problem(value: Any) -> str | None:
    """Why `value` is not a config's kind of data (mappings with string keys, lists, strings,
    numbers, booleans, null, at most MAX_CONFIG_DEPTH deep), walked without recursion: a config
    nested 3,000 deep must not exhaust the stack of copy.deepcopy or of the validator."""
    pending, seen = [(value, 0)], 0
    while pending:
        item, depth = pending.pop()
        seen += 1
        if depth > MAX_CONFIG_DEPTH:
            return f"nested more than {MAX_CONFIG_DEPTH} levels deep; a config file is at most that"
        if seen > MAX_CONFIG_VALUES:
            return f"more than {MAX_CONFIG_VALUES:,} keys and values; a config is small"
        if isinstance(item, dict):
            bad = next((k for k in item if not isinstance(k, str)), None)
            if bad is not None:
                return f"keys must be names (strings), received {short_repr(bad)}"
            pending += [(v, depth + 1) for v in item.values()]
        elif isinstance(item, list):
            pending += [(v, depth + 1) for v in item]
        elif not (item is None or isinstance(item, (str, int, float, bool))):
            return f"expected plain data (mappings, lists, strings, numbers), received a {type(item).__name__}"
    return None


def _normalization_problems(norm: Any) -> list[str]:
    """`{axis, mean, std}` as training stores it: a positive axis, as many finite means as finite,
    positive stds (training never stores a std of 0: it would divide by 0), or None (no
    normalization). Problems start with the key they are about."""
    import math

    if norm is None:
        return []
    if not isinstance(norm, dict):
        return [f": expected a mapping with axis, mean and std, or null, received {short_repr(norm)}"]
    problems = []
    axis = norm.get("axis")
    if not (_is_count(axis) and 1 <= axis <= 8):
        problems.append(f".axis: expected an integer from 1 to 8 (a dimension of a batch), received {short_repr(axis)}")
    lists = {}
    for key, rule, one in (("mean", "finite numbers", "a finite number"),
                           ("std", "finite numbers > 0", "a finite number > 0")):
        values = norm.get(key)
        if not (isinstance(values, list) and 1 <= len(values) <= MAX_STATISTICS):
            problems.append(f".{key}: expected a list of 1 to {MAX_STATISTICS:,} {rule}, received {short_repr(values)}")
            continue
        bad = next((i for i, v in enumerate(values) if isinstance(v, bool) or not isinstance(v, (int, float))
                    or not math.isfinite(v) or (key == "std" and v <= 0)), None)
        if bad is not None:
            problems.append(f".{key}[{bad}]: expected {one}, received "
                            f"{short_repr(values[bad])}" + (" (a division by zero)" if key == "std" and
                                                             values[bad] == 0 else ""))
            continue
        lists[key] = values
    if len(lists) == 2 and len(lists["mean"]) != len(lists["std"]):
        problems.append(f": expected as many stds as means, received {len(lists['mean']):,} means and "
                        f"{len(lists['std']):,} stds")
    return problems


def _weight_problems(weights: Any) -> list[str]:
    """Weights that are not all finite (NaN, inf) would make every output NaN."""
    import torch

    if not isinstance(weights, dict):
        return []
    for name, tensor in weights.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not tensor.is_meta \
                and not bool(torch.isfinite(tensor).all()):
            count = int((~torch.isfinite(tensor)).sum())
            return [f"model: the weights {shorten(str(name))} hold {count:,} NaN or infinite value"
                    f"{'s' if count != 1 else ''} (a run that diverged?); every output would be NaN"]
    return []


def checkpoint_config(state: dict) -> dict:
    """The checkpoint's embedded config, validated again (an invalid one is a CheckpointError)."""
    from dlcli.config import resolve_config
    from dlcli.errors import ConfigError

    config = state.get("config")
    problem = _plain_data_problem(config)  # load_checkpoint checked it; a state built otherwise, here
    if problem:
        raise CheckpointError(f"{state.get('path', 'checkpoint')}: damaged checkpoint: config: {problem}")
    try:
        import copy

        cfg = resolve_config(copy.deepcopy(config), {}, f"{state.get('path', 'checkpoint')} (embedded config)",
                             default_name=(config or {}).get("name", "run") if isinstance(config, dict) else "run",
                             guards=False)  # a model trained before the check keeps working
    except ConfigError as err:
        raise CheckpointError(f"the checkpoint's embedded config is invalid:\n{err}") from None
    _refuse_normalization_of_another_shape(state, cfg)
    return cfg


def _refuse_normalization_of_another_shape(state: dict, cfg: dict) -> None:
    """Per-channel (per-feature) statistics come in a number that divides the values of a sample
    (C of C*H*W, F of T*F): any other count belongs to no sample the model takes."""
    import math

    from dlcli.layers import fmt_shape
    from dlcli.model.plan import plan_model

    norm, shape = state.get("normalization"), plan_model(cfg).input_shape
    count, size = (len(norm["mean"]) if isinstance(norm, dict) else 1), math.prod(shape)
    if count > 1 and size % count:
        raise CheckpointError(f"{state.get('path', 'checkpoint')}: damaged checkpoint: normalization holds {count:,} "
                              f"per-channel or per-feature statistics, which do not line up with the model's input "
                              f"{fmt_shape(shape)} ({size:,} values a sample)")


def load_model_from_checkpoint(state: dict, device: Any = "cpu", cfg: dict | None = None):
    """Build the checkpoint's model as the trainer ran it on `device` (the same exact
    rewrites and memory format, so evaluation reproduces training's figures) and load
    its weights; a mismatch is a CheckpointError."""
    import torch

    from dlcli.errors import DlcliError
    from dlcli.memory import refuse_model_beyond_memory
    from dlcli.model import build_meta_model, build_training_model

    cfg = cfg or checkpoint_config(state)
    try:  # the parameter guard of a training config, and the memory, before any memory is taken
        meta = build_meta_model(cfg, fuse=cfg["trainer"]["fuse"])  # built once: materialized below
        refuse_model_beyond_memory(cfg, meta)
    except DlcliError as err:
        raise CheckpointError(f"{state.get('path', 'checkpoint')}: the checkpoint's config: {err}") from None
    model = build_training_model(cfg, torch.device(device), meta=meta)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, TypeError, AttributeError) as err:
        raise CheckpointError(f"{state.get('path', 'checkpoint')}: the weights do not fit the model of its "
                              f"config: {shorten(str(err).splitlines()[0], 300)}") from None
    return cfg, model
