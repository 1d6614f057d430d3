"""Run directories: `runs/<name>/<timestamp>/` holding the resolved config, the
environment record, metrics.jsonl / metrics.csv, checkpoints/ and summary.json.
Two runs never share a directory, and nothing in an existing one is overwritten
except by the run that owns it (resuming appends). Here: how a run's start and
each resume write those records, and how they are read back (finding and
listing runs is dlcli.run_listing's)."""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import stat
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from dlcli.errors import RunError
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
    summary, _ = read_json_record(Path(run_dir) / SUMMARY_FILE)
    return summary


def read_environment(run_dir: Path) -> dict | None:
    """The run's environment.json, or None when it is missing, unreadable or not a record."""
    environment, _ = read_json_record(Path(run_dir) / ENV_FILE)
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
# Reading a run's records: every file may be missing, torn or garbage
# ---------------------------------------------------------------------------

class DamagedRecord(RunError, ValueError):
    """A run record that no run writes (a config.yaml alias bomb, an integer of 5,000 digits):
    the run is listed as damaged, with this as the reason."""


# A run writes records of kilobytes: more is no record of a run (and is not read whole).
MAX_RECORD_BYTES = 64 * 2 ** 20


def read_json_record(path: Path, strict: bool = False):
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


def read_run_config(run_dir: Path, strict: bool = False) -> dict:
    """The run's config.yaml as written, or {} when it is missing, unreadable or not a mapping
    (not validated: reports read what they can). Read through the config loader's guards: an
    alias bomb or 100,000 levels of nesting are refused at once, never expanded. `strict`: a
    DamagedRecord for a config.yaml that is there and cannot be read, instead of {}."""
    try:
        return _run_config(Path(run_dir))
    except DamagedRecord:
        if strict:
            raise
        return {}


def _run_config(run_dir: Path) -> dict:
    from dlcli.config import ConfigError, read_config_file

    path = run_dir / CONFIG_FILE
    if not path.is_file():
        return {}
    try:
        value, _, _ = read_config_file(path)
    except ConfigError as err:
        first = err.problems[0] if err.problems else None
        raise DamagedRecord(f"{first.where or path}: {first.message}" if first else str(err)) from None
    return value if isinstance(value, dict) else {}


def epoch_records(run_dir: Path) -> list[dict]:
    """The run's epoch records, one per epoch in epoch order, skipping torn lines. An epoch
    logged twice counts by its last record: resuming repairs the log to one record per epoch
    (the checkpoint's history), and a record written later stands for the epoch as trained."""
    by_epoch = {}
    for record in read_metrics(Path(run_dir) / METRICS_JSONL)[0]:
        if record.get("kind") == "epoch" and isinstance(record.get("epoch"), int):
            by_epoch[record["epoch"]] = record
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]
