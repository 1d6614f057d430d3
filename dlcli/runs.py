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

from dlcli.errors import RunError, short_list
from dlcli.file_access import kind_of, refusal
from dlcli.files import atomic_write_bytes, open_regular_file, temporary_files
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


def epoch_records(run_dir: Path) -> list[dict]:
    """The run's epoch records, one per epoch in epoch order, skipping torn lines. An epoch
    logged twice counts by its last record: resuming repairs the log to one record per epoch
    (the checkpoint's history), and a record written later stands for the epoch as trained."""
    by_epoch = {}
    for record in read_metrics(Path(run_dir) / METRICS_JSONL)[0]:
        if record.get("kind") == "epoch" and isinstance(record.get("epoch"), int):
            by_epoch[record["epoch"]] = record
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


# ---------------------------------------------------------------------------
# The records a run's start and each resume write
# ---------------------------------------------------------------------------

EDITED_CONFIG_FILE = "config.edited.yaml"  # then config.edited.1.yaml, config.edited.2.yaml...


def threads_set_by(cfg: dict) -> str:
    """Who chose the CPU thread count: "trainer.threads", or "default" (torch's choice)."""
    return "trainer.threads" if cfg["trainer"]["threads"] else "default"


def start_record(cfg: dict, device, overrides: list[str]) -> dict:
    """environment.json's record of one start or resume: the machine and versions, who chose the
    CPU threads, and the command line's overrides."""
    return {**environment_record(str(device)), "cpu_threads_set_by": threads_set_by(cfg),
            "overrides": list(overrides)}


def write_start_records(run_dir: Path, config_text: str, cfg: dict, device, overrides: list[str]) -> None:
    """A new run's config.yaml (`config_text`: the resolved config) and environment.json."""
    write_text_atomic(run_dir / CONFIG_FILE, config_text)
    record = {**start_record(cfg, device, overrides), "config_sha256": text_sha256(config_text)}  # what dlcli wrote
    write_text_atomic(run_dir / ENV_FILE, json.dumps(record, indent=2) + "\n")


def run_starts(environment: dict) -> list[dict]:
    """environment.json's records of the run's processes: its start's, then each resume's."""
    resumes = environment.get("resumes") if isinstance(environment.get("resumes"), list) else []
    return [environment, *(resume for resume in resumes if isinstance(resume, dict))]


def record_resume(run_dir: Path, environment: dict, resumed: dict, config_text: str) -> None:
    """environment.json (as read: `environment`) keeps the first start's record and gains one per
    resume (`resumed`: its start_record and where it starts; its command, directory, device and
    versions may differ; `config_text`: the config.yaml it left): what ran, where, for each part
    of the run."""
    resumed = {**resumed, "config_sha256": text_sha256(config_text)}
    record = {**environment, "resumes": [*run_starts(environment)[1:], resumed]}
    write_text_atomic(run_dir / ENV_FILE, json.dumps(record, indent=2) + "\n")


def rewrite_run_config(run_dir: Path, text: str, saved: str, environment: dict, why: str) -> str | None:
    """config.yaml as `text` (what the run now trains to: trainer.epochs=N...). A hand-edited one
    is kept beside it, never lost; the note this returns names the edited keys and says `why`
    the edits change nothing. `saved`: the config the run's checkpoint trained on, as dumped."""
    current = _read_text(run_dir / CONFIG_FILE)
    written = {start.get("config_sha256") for start in run_starts(environment)}
    edited = _hand_edits(run_dir, saved, current, written, why)
    if current != text:
        if edited is not None and current and current.strip():  # the user's text is kept beside it
            kept = _edited_config_path(run_dir, current)
            if not kept.exists():
                write_text_atomic(kept, current)
            edited += f"; config.yaml now shows the run's config, and the edited text is in {kept.name}"
        write_text_atomic(run_dir / CONFIG_FILE, text)
    return edited


def _edited_config_path(run_dir: Path, text: str) -> Path:
    """Where a hand-edited config.yaml (`text`) is kept: the copy of an earlier resume that holds
    this very text, else the first free name of config.edited.yaml, config.edited.1.yaml, ...:
    each edit is kept, none overwritten."""
    import itertools

    for n in itertools.count():
        path = run_dir / (EDITED_CONFIG_FILE if n == 0 else EDITED_CONFIG_FILE.replace(".yaml", f".{n}.yaml"))
        if not os.path.lexists(path):  # a dangling link too is somebody's: not written through, skipped
            return path
        if not path.is_symlink() and _read_text(path) == text:
            return path


def _hand_edits(run_dir: Path, saved: str, text: str | None, written: set, why: str) -> str | None:
    """A note when the run's config.yaml (its `text`; None: unreadable) is neither `saved` nor a
    text dlcli wrote for the run (`written`: their sha256, from environment.json): edited by hand."""
    import yaml

    from dlcli.errors import format_path

    path = run_dir / CONFIG_FILE
    if text is None:
        return None
    if text == saved or text_sha256(text) in written:
        return None  # dlcli's own text (a resume that wrote it may have died before its first checkpoint)
    try:
        changed = [format_path(key) or "the whole file" for key in _differences(yaml.safe_load(text),
                                                                                yaml.safe_load(saved))]
    except yaml.YAMLError:
        changed = []
    what = f" ({short_list(changed, limit=6)})" if changed else " (comments or layout)" if text.strip() else ""
    return f"{path} was edited since the run wrote it{what}: {why}"


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _differences(a, b, path: tuple = ()) -> list[tuple]:
    """The key paths where two parsed YAML values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [p for key in dict.fromkeys([*a, *b]) for p in _differences(a.get(key), b.get(key), path + (key,))]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [p for i, (x, y) in enumerate(zip(a, b)) for p in _differences(x, y, path + (i,))]
    return [] if a == b else [path]


def cut_logs_back(run_dir: Path, step: int, history: list[dict]) -> None:
    """The metrics logs as far as a checkpoint at optimizer step `step`, with the epoch records
    `history`, covers them. They may run ahead of it (killed between the two writes) or end in
    a torn line."""
    log = MetricsLog(run_dir)
    steps = [r for r in read_metrics(log.jsonl)[0] if r.get("kind") == "step" and r.get("step", 0) <= step]
    log.rewrite(sorted(steps + list(history), key=lambda r: (r.get("step", 0), r.get("kind") == "epoch")))


def remove_temporary_files(run_dir: Path) -> None:
    """Temporary files that a killed process left behind writing the run's own files, by the
    names dlcli's atomic writes give them, now or before (a run of an older dlcli may hold
    .last.pt.<random>.tmp); no other file (a user's, a `dlcli evaluate` at work)."""
    owned = [run_dir / name for name in RUN_RECORDS] + [run_dir / CHECKPOINTS_DIR / n for n in ("last.pt", "best.pt")]
    for leftover in [temp for path in owned for temp in temporary_files(path, legacy=True)]:
        leftover.unlink(missing_ok=True)
