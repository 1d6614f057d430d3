"""Run directories: `runs/<name>/<timestamp>/` holding the resolved config, the
environment record, metrics.jsonl / metrics.csv, checkpoints/ and summary.json.
Two runs never share a directory, and nothing in an existing one is overwritten
except by the run that owns it (resuming appends)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import re
import shlex
import stat
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from dlcli.errors import RunError, short_list
from dlcli.file_access import folder_entries, kind_of, refusal
from dlcli.files import atomic_write_bytes, open_regular_file
from dlcli.invocation import command_line

CONFIG_FILE = "config.yaml"
METRICS_JSONL = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
SUMMARY_FILE = "summary.json"
ENV_FILE = "environment.json"
CHECKPOINTS_DIR = "checkpoints"
RUN_RECORDS = (CONFIG_FILE, ENV_FILE, METRICS_JSONL, METRICS_CSV, SUMMARY_FILE)  # written only by the run itself


def create_run_dir(out_dir: str | Path, name: str) -> Path:
    """Make a new, empty run directory. mkdir is atomic, so two processes started in
    the same second get distinct directories (the second gets a -1, -2 ... suffix)."""
    parent = Path(out_dir) / name
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunError(f"trainer.out_dir: cannot create {parent}: {err.strerror}") from None
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(10_000):
        path = parent / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as err:
            raise RunError(f"trainer.out_dir: cannot create {path}: {err.strerror}") from None
        try:
            (path / "checkpoints").mkdir()
        except OSError as err:
            raise RunError(f"trainer.out_dir: cannot create {path / 'checkpoints'}: {err.strerror}") from None
        return path
    raise RunError(f"{parent}: too many runs started in the same second")  # pragma: no cover


def text_sha256(text: str) -> str:
    """The sha256 of a text's UTF-8 bytes, in hex: how environment.json names the config.yaml
    texts dlcli wrote, to tell them from a hand edit."""
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_text_atomic(path: Path, text: str) -> None:
    try:
        atomic_write_bytes(path, lambda handle: handle.write(text.encode("utf-8")))
    except OSError as err:  # a full disk, a read-only folder
        raise RunError(f"{path}: cannot write: {err.strerror or err}") from None


def environment_record(device: str) -> dict:
    import torch

    from dlcli import __version__

    import numpy

    commit = git_output("rev-parse", "HEAD")
    record = {"dlcli": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
              "python": sys.version.split()[0], "platform": platform.platform(), "device": device,
              "cpu_threads": torch.get_num_threads(),
              "cuda": torch.version.cuda if torch.cuda.is_available() else None,
              "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
              "started": datetime.now().isoformat(timespec="seconds"), "command": command_line(),
              "argv": sys.argv, "cwd": os.getcwd(), "git_commit": commit,
              # uncommitted changes: the commit alone does not say what ran
              "git_dirty": bool(git_output("status", "--porcelain")) if commit else None}
    return record


def git_output(*args: str) -> str | None:
    """`git ARGS` in the current directory (where the config usually lives), None outside a repository."""
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5, cwd=os.getcwd())
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


class MetricsLog:
    """metrics.jsonl, the run's record (one JSON object per line, appended and fsynced), and
    metrics.csv, the same records as a table, derived from it.

    An append costs the same however long the run: it adds one line to each file, under the
    columns this object keeps. The CSV is rewritten whole (atomically, from metrics.jsonl) only
    when a record brings a new column, on this object's first append (which learns the columns)
    and by `rewrite`.

    Each append is flushed and fsynced in both files. A crash during one can leave metrics.jsonl
    ending in a torn line (`read_metrics` skips it), and metrics.csv with a torn last row or
    without the last record's row (it is written second). A run that goes on repairs both:
    resuming rewrites them from what the checkpoint covers, and the first append of any process
    rebuilds the CSV from metrics.jsonl. A crashed run left as it is keeps them so; metrics.jsonl
    is the one to trust."""

    def __init__(self, run_dir: Path):
        self.jsonl = run_dir / METRICS_JSONL
        self.csv = run_dir / METRICS_CSV
        self.columns: list[str] | None = None  # metrics.csv's header; None: unknown, rebuilt on append

    def append(self, record: dict) -> None:
        line = json.dumps(record) + "\n"
        self._append(self.jsonl, line)
        record = json.loads(line)  # the row shows what metrics.jsonl holds (a tuple as a list...)
        if self.columns is None or any(key not in self.columns for key in record):
            self._write_csv(read_metrics(self.jsonl)[0])
            return
        row = io.StringIO()
        csv.DictWriter(row, fieldnames=self.columns).writerow(record)
        self._append(self.csv, row.getvalue())

    def rewrite(self, records: list[dict]) -> None:
        self.columns = None  # until both files are written
        write_text_atomic(self.jsonl, "".join(json.dumps(r) + "\n" for r in records))
        self._write_csv(records)

    def _append(self, path: Path, text: str) -> None:
        try:
            fd = open_regular_file(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)  # never through a link
            with os.fdopen(fd, "a", encoding="utf-8", newline="") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as err:  # a full disk, a read-only folder
            self.columns = None  # what reached the file is unknown: the next append rebuilds the CSV
            raise RunError(f"{path}: cannot append the metrics: {err.strerror or err}") from None

    def _write_csv(self, records: list[dict]) -> None:
        columns: list[str] = []
        for record in records:
            columns += [k for k in record if k not in columns]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(records)
        self.columns = None  # a failed write leaves the old CSV or none: rebuilt on the next append
        write_text_atomic(self.csv, buffer.getvalue())
        self.columns = columns


def read_metrics(path: Path) -> tuple[list[dict], int]:
    """Records of a metrics.jsonl, skipping torn or garbled lines (a crash mid-write);
    returns (records, number of lines skipped)."""
    records, skipped = [], 0
    try:
        text = read_record_bytes(Path(path)).decode("utf-8", errors="replace")
    except FileNotFoundError:
        return [], 0
    except OSError as err:  # there and unreadable (permissions, an I/O error): not the same as no epochs
        raise DamagedRecord(f"{path}: cannot read the metrics log: {refusal(err)}") from None
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # torn or garbled; an integer of 5,000 digits; [[[[...
            skipped += 1
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            skipped += 1
    return records, skipped


def write_summary(run_dir: Path, summary: dict) -> None:
    write_text_atomic(run_dir / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")


def read_summary(run_dir: Path) -> dict | None:
    """The run's summary.json, or None when it is missing, unreadable or not a record."""
    summary, _ = _read_json(Path(run_dir) / SUMMARY_FILE)
    return summary


def read_environment(run_dir: Path) -> dict | None:
    """The run's environment.json, or None when it is missing, unreadable or not a record."""
    environment, _ = _read_json(Path(run_dir) / ENV_FILE)
    return environment


def run_dir_of(checkpoint: Path) -> Path | None:
    """The run directory holding `checkpoint` (<run>/checkpoints/x.pt), or None."""
    checkpoint = Path(checkpoint)
    run_dir = checkpoint.parent.parent
    if checkpoint.parent.name == "checkpoints" and (run_dir / CONFIG_FILE).is_file():
        return run_dir
    return None


def is_run_directory(folder: Path) -> bool:
    """Whether `folder` is a run directory: its config.yaml and its checkpoints/ folder (a run
    has both from its start). A project folder with the user's own config.yaml is not one."""
    folder = Path(folder)
    return (folder / CONFIG_FILE).is_file() and (folder / CHECKPOINTS_DIR).is_dir()


def owned_by_run(path: Path) -> str | None:
    """What `path` is to the run directory it lies in, when only that run may write it: a file
    inside its checkpoints/ folder or one of its records (config.yaml, metrics, summary...);
    else None. Checked as given and with symlinks resolved."""
    path = Path(path)
    folder = run_checkpoints_folder(path)
    if folder is not None:
        return f"inside the run's checkpoints folder {folder}"
    for spelling in dict.fromkeys((path.absolute(), path.resolve())):
        if spelling.name in RUN_RECORDS and (spelling.parent / CONFIG_FILE).is_file():
            return f"the run record {spelling} (written only by its run)"
    return None


def run_checkpoints_folder(path: Path) -> Path | None:
    """The checkpoints/ folder of a run that `path` is or lies in, as given or with symlinks
    resolved; None when there is none."""
    path = Path(path)
    for spelling in dict.fromkeys((path.absolute(), path.resolve())):
        for folder in (spelling, *spelling.parents):
            if folder.name == CHECKPOINTS_DIR and (folder.parent / CONFIG_FILE).is_file():
                return folder
    return None


# ---------------------------------------------------------------------------
# The newest run of a name folder (`dlcli evaluate runs/NAME`, `dlcli plot runs/`)
# ---------------------------------------------------------------------------

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


class DamagedRecord(RunError, ValueError):
    """A run record that no run writes (a config.yaml alias bomb, an integer of 5,000 digits):
    the run is listed as damaged, with this as the reason."""


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


# A run writes records of kilobytes: more is no record of a run (and is not read whole).
MAX_RECORD_BYTES = 64 * 2 ** 20


def _read_json(path: Path, strict: bool = False):
    """(value, ok): (None, True) when missing, (None, False) when unreadable or not an object.
    `strict`: a DamagedRecord instead of (None, False) for what no crash leaves (an integer of
    5,000 digits, nesting 100,000 deep, a file of gigabytes); a torn file stays (None, False)."""
    try:
        raw = read_record_bytes(path, MAX_RECORD_BYTES + 1)
        if len(raw) > MAX_RECORD_BYTES:
            raise DamagedRecord(f"{path}: larger than {MAX_RECORD_BYTES // 2 ** 20} MiB; a run's records are small")
        value = json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        return None, True
    except json.JSONDecodeError:
        return None, False
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
        if strict:
            raise err if isinstance(err, DamagedRecord) else DamagedRecord(f"{path}: {_json_damage(err)}") from None
        return None, False
    except OSError:
        return None, False
    return (value, True) if isinstance(value, dict) else (None, False)


def read_record_bytes(path: Path, limit: int = -1) -> bytes:
    """The bytes of a run record, at most `limit`; a DamagedRecord for anything but a regular file:
    opening a FIFO in a record's place would block the listing forever."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise DamagedRecord(f"{path}: not a regular file (a FIFO, a device or a folder); dlcli writes its "
                                f"records as regular files")
        return handle.read(limit)


def _json_damage(err: Exception) -> str:
    if isinstance(err, RecursionError):
        return "nested too deeply for a record"
    if isinstance(err, UnicodeDecodeError):
        return f"not UTF-8 text (byte {err.start})"
    return f"not a record a run writes ({err})"


def read_run_config(run_dir: Path) -> dict:
    """The run's config.yaml as written, or {} when it is missing, unreadable or not a mapping
    (not validated: reports read what they can). Read through the config loader's guards: an
    alias bomb or 100,000 levels of nesting are refused at once, never expanded."""
    try:
        return _run_config(Path(run_dir))
    except DamagedRecord:
        return {}


def _run_config(run_dir: Path) -> dict:
    """read_run_config, but a DamagedRecord for a config.yaml that is there and cannot be read."""
    from dlcli.config import ConfigError, read_config_file

    path = run_dir / CONFIG_FILE
    if kind_of(path, DamagedRecord) != "file":
        return {}
    try:
        value, _, _ = read_config_file(path)
    except ConfigError as err:
        first = err.problems[0] if err.problems else None
        raise DamagedRecord(f"{first.where or path}: {first.message}" if first else str(err)) from None
    return value if isinstance(value, dict) else {}


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
    summary, summary_ok = _read_json(path / SUMMARY_FILE, strict=True)
    config = _run_config(path)
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
    environment, _ = _read_json(path / ENV_FILE, strict=True)
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


def epoch_records(run_dir: Path) -> list[dict]:
    """The run's epoch records, one per epoch in epoch order, skipping torn lines. An epoch
    logged twice counts by its last record: resuming repairs the log to one record per epoch
    (the checkpoint's history), and a record written later stands for the epoch as trained."""
    by_epoch = {}
    for record in read_metrics(Path(run_dir) / METRICS_JSONL)[0]:
        if record.get("kind") == "epoch" and isinstance(record.get("epoch"), int):
            by_epoch[record["epoch"]] = record
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


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
    env, _ = _read_json(path / ENV_FILE)
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
