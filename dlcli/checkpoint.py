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

import errno
import os
import pickle
import stat
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

from dlcli.errors import CheckpointError, short_list, short_repr, shorten

FORMAT = "dlcli-checkpoint"
FORMAT_VERSION = 1


def _proc_umask() -> int | None:
    """The umask as Linux shows it (/proc/self/status, kernel 4.7+), read without changing it."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _umask_by_setting_it() -> int:
    """Elsewhere os.umask must set the umask to read it, and threads creating files meanwhile
    would get the wrong mode: so it is done once, while this module is imported."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK_AT_IMPORT = _proc_umask()
if _UMASK_AT_IMPORT is None:
    _UMASK_AT_IMPORT = _umask_by_setting_it()


def current_umask() -> int:
    """The process umask: as it is now where Linux shows it, else as it was at import."""
    mask = _proc_umask()
    return _UMASK_AT_IMPORT if mask is None else mask


TEMPORARY_MARK = ".dlcli-"  # in the temporary file's name: .<name>.dlcli-<random>.tmp


LEGACY_RANDOM = "[a-z0-9_]" * 8  # mkstemp's random part: .<name>.<random>.tmp, the names dlcli gave before TEMPORARY_MARK


def temporary_files(path: Path, legacy: bool = False) -> list[Path]:
    """The temporary files that atomic writes of `path` left behind (a killed process). `legacy`:
    also those of dlcli before TEMPORARY_MARK, which carry no mark (pass it only for a name that
    nothing but dlcli writes)."""
    import glob

    path = Path(path)
    name = glob.escape(path.name)
    patterns = [f".{name}{TEMPORARY_MARK}*.tmp"] + ([f".{name}.{LEGACY_RANDOM}.tmp"] if legacy else [])
    return sorted({temp for pattern in patterns for temp in path.parent.glob(pattern)})


# Files dlcli writes are regular files of their own: a run directory received from someone
# else may hold a symbolic link (RUN/.lock -> ~/.bashrc), a hard link or a FIFO where a record
# should be, and writing through it would change a file elsewhere (or hang). Such a target is
# refused with an OSError whose strerror says what it is; the writers' messages name the path.
_NOT_FOLLOWED = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) \
    | getattr(os, "O_CLOEXEC", 0)
_LINK_REFUSED = "it is a symbolic link, and dlcli never writes through a link; remove the link (a run copied " \
                "from elsewhere?) and try again"


def _not_regular(mode: int) -> str | None:
    """Why a file of st_mode `mode` is no place to write, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return _LINK_REFUSED
    kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else
            "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else
            "not a regular file")
    return f"it is {kind}, not a regular file; dlcli writes only regular files there"


def refuse_irregular_target(path: Path) -> None:
    """An OSError when `path` exists as anything but a regular file (a symbolic link, a FIFO, a
    directory...): an atomic write would replace it, and dlcli replaces only its own files."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    why = _not_regular(mode)
    if why is not None:
        raise OSError(errno.EEXIST, why, str(path))


def open_regular_file(path: Path, flags: int, mode: int = 0o666) -> int:
    """`os.open(path, flags)` for a file written in place (the run lock, an appended log):
    without following a symbolic link (O_NOFOLLOW) or blocking on a FIFO, and refusing with an
    OSError anything but a regular file with a single link (a hard link would write through to
    the file it shares its data with)."""
    try:
        fd = os.open(path, flags | _NOT_FOLLOWED, mode)
    except OSError:
        refuse_irregular_target(path)  # O_NOFOLLOW's ELOOP, a FIFO's ENXIO without a reader: say what it is
        raise
    try:
        info = os.fstat(fd)
        why = _not_regular(info.st_mode)
        if why is None and info.st_nlink > 1:
            why = (f"it is a hard link ({info.st_nlink} names for one file), and writing it would change the "
                   f"other names too; remove it (a run copied from elsewhere?) and try again")
        if why is not None:
            raise OSError(errno.EEXIST, why, str(path))
        if not hasattr(os, "O_NOFOLLOW") and os.path.islink(path):  # Windows: checked after opening
            raise OSError(errno.ELOOP, _LINK_REFUSED, str(path))
        return fd
    except BaseException:
        os.close(fd)
        raise


def atomic_write_bytes(path: Path, write) -> None:
    """Write through `write(file)` to a temporary file in the same directory,
    flush and fsync it, then rename it over `path`: a crash at any moment leaves
    the old file or the new one, never a torn one. A `path` that is not a regular file
    (a symbolic link, a FIFO...) is refused: an OSError naming it.

    The file gets the mode `open(path, "w")` would give it: an existing file keeps its
    own, a new one gets 0o666 minus the umask (mkstemp alone makes every file 0o600)."""
    path = Path(path)
    refuse_irregular_target(path)
    try:
        mode = stat.S_IMODE(os.lstat(path).st_mode)
    except OSError:  # no such file yet
        mode = 0o666 & ~current_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TEMPORARY_MARK}", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # not on Windows before Python 3.13
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


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


def file_kind(path: Path) -> str | None:
    """What a file given where a checkpoint or a config was expected looks like (TorchScript,
    torch file, ONNX, YAML, other text), for the message; None when it says nothing."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
            if any("/code/" in name or name.endswith("/constants.pkl") for name in names):
                return "a TorchScript export (dlcli export; load it with torch.jit.load)"
            return "a torch file" if any(name.endswith("/data.pkl") for name in names) else "a zip archive"
        with open(path, "rb") as file:
            head = file.read(4096)
    except (OSError, zipfile.BadZipFile):
        return None
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return "an ONNX export (dlcli export; run it with onnxruntime)"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 3:  # not a character cut by the 4096-byte read
            return None
    if b"\0" in head or not head:
        return None
    return {".yaml": "a YAML file (a config?)", ".yml": "a YAML file (a config?)", ".json": "a JSON file",
            ".csv": "a CSV file"}.get(suffix, "a text file")


def checkpoint_hint(path: Path) -> str:
    """'; this is a YAML file (a config?): expected ...' for a file that is no checkpoint."""
    kind = file_kind(path)
    return f"; this is {kind}: {EXPECTED_CHECKPOINT}" if kind and kind != "a torch file" else ""


def resolve_checkpoint_path(path: str | Path, prefer: str = "best.pt") -> Path:
    """A checkpoint file, or a run directory (its checkpoints/<prefer>, else the other one)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or directory; expected a checkpoint (.pt) or a run directory")
    if path.is_dir():
        folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        order = [prefer] + [name for name in ("best.pt", "last.pt") if name != prefer]
        for name in order:
            if (folder / name).is_file():
                return folder / name
        raise CheckpointError(f"{path}: a directory without checkpoints; expected a run directory with "
                              f"checkpoints/best.pt or checkpoints/last.pt, or a .pt file")
    return path


def load_checkpoint(path: str | Path, prefer: str = "best.pt", map_location: Any = "cpu") -> dict:
    """Load and check a dlcli checkpoint safely; every failure is a CheckpointError."""
    import torch

    path = resolve_checkpoint_path(path, prefer)
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
            raise CheckpointError(f"{path}: cannot read the checkpoint: {err.strerror or err}") from None
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

    norm, shape = state.get("normalization"), tuple(cfg["model"]["input_shape"])
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
    from dlcli.model import build_meta_model, build_training_model

    cfg = cfg or checkpoint_config(state)
    try:  # the parameter guard of a training config, before any memory is taken
        build_meta_model(cfg)
    except DlcliError as err:
        raise CheckpointError(f"{state.get('path', 'checkpoint')}: the checkpoint's config: {err}") from None
    model = build_training_model(cfg, torch.device(device))
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, TypeError, AttributeError) as err:
        raise CheckpointError(f"{state.get('path', 'checkpoint')}: the weights do not fit the model of its "
                              f"config: {shorten(str(err).splitlines()[0], 300)}") from None
    return cfg, model
