"""Finding and listing runs for the report commands: the newest run of a folder of runs
(`dlcli evaluate runs/NAME`, `dlcli plot runs/`) and the table of `dlcli runs`. What one run's
records hold, and how they are read, is dlcli.runs'."""

from __future__ import annotations

import math
import re
import shlex
from datetime import datetime
from pathlib import Path

from dlcli.errors import RunError, short_list
from dlcli.file_access import folder_entries, kind_of
from dlcli.runs import (CHECKPOINTS_DIR, CONFIG_FILE, ENV_FILE, METRICS_JSONL, SUMMARY_FILE, DamagedRecord,
                        epoch_records, read_json_record, read_run_config)

RUN_ID = re.compile(r"(\d{8}-\d{6})(?:-(\d+))?")  # create_run_dir's names: a second's second run gets -1


def run_id_key(name: str) -> tuple:
    """How run ids sort by start: the timestamp, then create_run_dir's -N suffix; a folder
    named otherwise (renamed by hand) sorts before every timestamped one, by name."""
    match = RUN_ID.fullmatch(name)
    return (1, match.group(1), int(match.group(2) or 0), name) if match else (0, "", 0, name)


def resolve_run_argument(path: str | Path, needs: str) -> tuple[Path, str | None]:
    """The path a report command works on, and a note saying which run it took (else None).

    A run directory, a file or a path that does not exist comes back as it is (the command says
    what is wrong with it). A folder of runs (runs/NAME, holding NAME/<YYYYmmdd-HHMMSS>/) or of
    name folders (runs/) gives its newest run by run id (not file times), skipping newer runs
    that do not have what the command `needs` yet: "checkpoint" (evaluate, predict, export) or
    "epochs", an epoch record (plot)."""
    path = Path(path)
    if kind_of(path, RunError) != "folder" or _is_run_dir(path) or _holds_checkpoint(path):
        return path, None
    children = _subdirs(path)
    runs = [p for p in children if _is_run_dir(p)]
    names = [] if runs else [p for p in children if any(_is_run_dir(q) for q in _subdirs(p))]
    runs += [q for p in names for q in _subdirs(p) if _is_run_dir(q)]
    if not runs:
        raise RunError(f"{path}: no runs in it; expected a run directory (runs/<name>/<id>), a folder of runs "
                       f"(runs/<name>) or of name folders (runs/), as dlcli train writes them (trainer.out_dir)")
    runs.sort(key=lambda run: run_id_key(run.name), reverse=True)
    chosen = next((run for run in runs if _has(run, needs)), None)  # newest first: read no more than needed
    lacking = "a checkpoint" if needs == "checkpoint" else "a finished epoch"
    if chosen is None:
        shown = short_list(runs, str, limit=5)
        raise RunError(f"{path}: none of its {_count(len(runs), 'run')} has {lacking} yet ({shown}); expected a run "
                       f"that finished at least one epoch (it then has checkpoints/last.pt and epoch records)")
    of = f"{_count(len(runs), 'run')} in {_count(len(names), 'name folder')}" if names else str(len(runs))
    note = f"using the newest run of {of}: {chosen}"
    skipped = runs[:runs.index(chosen)]
    if skipped:
        note += (f" (skipped {_count(len(skipped), 'newer run')} without {lacking} yet, still in or crashed in its "
                 f"first epoch: {short_list(skipped, str, limit=3)})")
    return chosen, note


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'' if n == 1 else 's'}"


def _holds_checkpoint(folder: Path) -> bool:
    """A folder holding best.pt or last.pt itself (a run's checkpoints/, or a copy)."""
    return any(kind_of(folder / name, RunError) == "file" for name in ("best.pt", "last.pt"))


def _has(run: Path, needs: str) -> bool:
    if needs == "checkpoint":
        return _holds_checkpoint(run / CHECKPOINTS_DIR)
    return bool(epoch_records(run))


# ---------------------------------------------------------------------------
# Listing runs (`dlcli runs`): every file may be missing, torn or garbage
# ---------------------------------------------------------------------------

RUNNING_WINDOW_S = 900  # a run without a summary or lock file that wrote within this long is still running
STATUSES = {"finished": "finished", "stopped_early": "stopped", "interrupted": "interrupted",
            "failed": "failed", "crashed": "crashed"}


def list_runs(root: str | Path, now: float | None = None) -> list[dict]:
    """One record per run directory under `root` (runs/, runs/<name>/ or one run), newest first."""
    import time

    root = Path(root)
    kind = kind_of(root, RunError)
    if kind != "folder":
        raise RunError(f"{root}: {'not a directory' if kind else 'no such directory'}; expected a "
                       f"folder of runs (trainer.out_dir, default runs/)")
    now = time.time() if now is None else now
    runs, unreadable = [], []
    for path in (root, *_subdirs(root)):  # runs/, runs/<name>/ and the runs in each
        try:
            inside = [] if path == root else _subdirs(path)
            runs += [_described(p, now) for p in (path, *inside) if _is_run_dir(p)]
        except RunError as err:  # a folder this user may not list: named as damaged, the others listed
            unreadable.append(_damaged_row(path, str(err)))
    return sorted(runs, key=lambda r: (r["date"] or "", r["id"]), reverse=True) + unreadable


def _described(path: Path, now: float) -> dict:
    """describe_run, or for a run whose records cannot be read as a run writes them, a row with
    status `damaged` and the reason: one damaged run does not hide the others."""
    try:
        return describe_run(path, now)
    except (DamagedRecord, ValueError, TypeError, OverflowError, RecursionError, KeyError, AttributeError) as err:
        reason = str(err) if isinstance(err, DamagedRecord) else f"a record is malformed ({type(err).__name__})"
        return _damaged_row(path, reason)


def _damaged_row(path: Path, reason: str) -> dict:
    try:
        date = _run_date(path)
    except (OSError, RunError):
        date = None
    return {"name": path.parent.name, "id": path.name, "path": str(path), "date": date, "overrides": [],
            "seed": None, "epochs": 0, "planned": None, "monitor": None, "best": None, "best_epoch": None,
            "test": {}, "status": "damaged", "reason": reason}


def _subdirs(path: Path) -> list[Path]:
    """The folders in `path` (links to folders too), by name. One that cannot be listed is a
    RunError: the runs in it would be left out without a word."""
    children = (path / entry.name for entry in folder_entries(path, RunError) if not entry.name.startswith("."))
    return [child for child in children if kind_of(child, RunError) == "folder"]


def _is_run_dir(path: Path) -> bool:
    return (kind_of(path / CONFIG_FILE, RunError) == "file" or kind_of(path / CHECKPOINTS_DIR, RunError) == "folder"
            or kind_of(path / METRICS_JSONL, RunError) == "file")


def _number(value) -> float | None:
    """A record's number as a float; None for anything else, or an integer no float holds."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def describe_run(path: Path, now: float) -> dict:
    """name, id, date, seed, epochs done / planned, best monitored value, test figures (the
    summary's, after training), status of one run."""
    summary, summary_ok = read_json_record(path / SUMMARY_FILE, strict=True)
    config = read_run_config(path, strict=True)
    trainer = config.get("trainer") if isinstance(config.get("trainer"), dict) else {}
    records = epoch_records(path)
    summary = summary or {}
    name = summary.get("name") or config.get("name") or path.parent.name
    epochs = summary.get("epochs") if isinstance(summary.get("epochs"), int) else \
        max((r["epoch"] for r in records), default=0)
    planned = trainer.get("epochs") if isinstance(trainer.get("epochs"), int) else None
    best = best_of_run(summary, config, records)
    test = summary.get("test") if isinstance(summary.get("test"), dict) else {}
    seed = config.get("seed")
    environment, _ = read_json_record(path / ENV_FILE, strict=True)
    return {"name": str(name), "id": path.name, "path": str(path), "date": _run_date(path),
            "overrides": recorded_overrides(environment or {}),
            "seed": seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
            "epochs": epochs, "planned": planned, "monitor": best.get("metric"),
            "best": _number(best.get("value")), "best_epoch": best.get("epoch"),
            "test": {k: _number(v) for k, v in test.items() if isinstance(k, str) and _number(v) is not None},
            "status": _status(path, summary, summary_ok, records, now)}


def recorded_overrides(environment: dict) -> list[str] | None:
    """The key.path=value overrides the run was started with (`dlcli train CONFIG OVERRIDES...`):
    environment.json's record, else (a run of an older dlcli) read from the command it kept;
    None when neither says."""
    overrides = environment.get("overrides")
    if isinstance(overrides, list) and all(isinstance(o, str) for o in overrides):
        return overrides
    command = environment.get("command")
    try:
        words = shlex.split(command) if isinstance(command, str) else []
    except ValueError:
        return None
    if words[:2] != ["dlcli", "train"] or "--resume" in words:
        return None
    positional = [word for word in words[2:] if not word.startswith("-")]
    return [word for word in positional[1:] if "=" in word]  # the first: the config


def best_of_run(summary: dict, config: dict, records: list[dict]) -> dict:
    """The run's best epoch, {"metric", "value", "epoch"} or {}: summary.json's, else the best of
    its epoch records by the config's trainer.monitor and monitor_mode (a run that wrote no summary)."""
    if isinstance(summary.get("best"), dict) and summary["best"]:
        return summary["best"]
    trainer = config.get("trainer") if isinstance(config.get("trainer"), dict) else {}
    return best_record(records, summary.get("monitor") or trainer.get("monitor"), trainer.get("monitor_mode"))


def best_record(records: list[dict], monitor: str | None, mode: str | None) -> dict:
    """The best value of `monitor` in the epoch records, {"metric", "value", "epoch"} or {}: lowest
    or highest as `mode` ("min"/"max"; else the metric's own, as the trainer takes "auto").
    Without a monitor, the val_loss, else the train_loss. A NaN or infinite value is never the
    best, as the trainer never takes one."""
    if not isinstance(monitor, str):
        monitor = "val_loss" if any("val_loss" in r for r in records) else "train_loss"
    if mode not in ("min", "max"):
        mode = "min"
        if not monitor.endswith("_loss"):
            from dlcli.metrics import METRICS

            entry = METRICS.lookup(monitor.split("_", 1)[-1])
            mode = entry.meta.get("mode", "min") if entry is not None else "min"
    values = [(r[monitor], r.get("epoch")) for r in records
              if _number(r.get(monitor)) is not None and math.isfinite(r[monitor])]
    if not values:
        return {}
    value, epoch = (min if mode == "min" else max)(values, key=lambda v: v[0])
    return {"metric": monitor, "value": value, "epoch": epoch}


def _run_date(path: Path) -> str | None:
    """When the run started: its directory name (YYYYmmdd-HHMMSS), else environment.json, else mtime."""
    try:
        return datetime.strptime(path.name[:15], "%Y%m%d-%H%M%S").isoformat()
    except ValueError:
        pass
    env, _ = read_json_record(path / ENV_FILE)
    if env and isinstance(env.get("started"), str):
        return env["started"]
    try:
        return datetime.fromtimestamp(path.stat().st_mtime).isoformat(timespec="seconds")
    except OSError:
        return None


def _status(path: Path, summary: dict, summary_ok: bool, records: list[dict], now: float) -> str:
    """The run's lock (RUN/.lock) says whether a process trains it now; a run without one (an
    older dlcli's, or where files cannot be locked) is `running` if it wrote recently."""
    from dlcli.run_lock import run_is_locked

    locked = run_is_locked(path)
    if locked:
        return "running"
    if not summary_ok:
        return "unknown"
    last_write = max((_mtime(p) for p in (path / "checkpoints" / "last.pt", path / METRICS_JSONL)), default=0.0)
    longest_epoch = max((r["seconds"] for r in records if _number(r.get("seconds")) is not None), default=0.0)
    recent = locked is None and now - last_write < max(RUNNING_WINDOW_S, 3 * longest_epoch)
    if not summary:
        return "running" if recent else "crashed"
    status = STATUSES.get(summary.get("status"), "unknown")
    if status in ("interrupted", "failed", "crashed") and last_write > _mtime(path / SUMMARY_FILE):
        if recent:
            return "running"  # resumed since the summary was written
        if locked is False:
            return "crashed"  # resumed since, and ended without a summary
    return status


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
