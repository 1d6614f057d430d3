"""Run directories: `runs/<name>/<timestamp>/` holding the resolved config, the
environment record, metrics.jsonl / metrics.csv, checkpoints/ and summary.json.
Two runs never share a directory, and nothing in an existing one is overwritten
except by the run that owns it (resuming appends)."""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from dlcli.checkpoint import atomic_write_bytes
from dlcli.errors import RunError

CONFIG_FILE = "config.yaml"
METRICS_JSONL = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
SUMMARY_FILE = "summary.json"
ENV_FILE = "environment.json"


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


def write_text_atomic(path: Path, text: str) -> None:
    try:
        atomic_write_bytes(path, lambda handle: handle.write(text.encode("utf-8")))
    except OSError as err:  # a full disk, a read-only folder
        raise RunError(f"{path}: cannot write: {err.strerror or err}") from None


def environment_record(device: str) -> dict:
    import torch

    from dlcli import __version__

    record = {"dlcli": __version__, "torch": torch.__version__, "python": sys.version.split()[0],
              "platform": platform.platform(), "device": device, "cpu_threads": torch.get_num_threads(),
              "cuda": torch.version.cuda if torch.cuda.is_available() else None,
              "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
              "started": datetime.now().isoformat(timespec="seconds"), "command": sys.argv,
              "git_commit": git_commit()}
    return record


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=os.getcwd())
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


class MetricsLog:
    """metrics.jsonl (one JSON object per line, appended and flushed) and metrics.csv."""

    def __init__(self, run_dir: Path):
        self.jsonl = run_dir / METRICS_JSONL
        self.csv = run_dir / METRICS_CSV

    def append(self, record: dict) -> None:
        try:
            with open(self.jsonl, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as err:  # a full disk, a read-only folder
            raise RunError(f"{self.jsonl}: cannot append the metrics: {err.strerror or err}") from None
        self._write_csv(read_metrics(self.jsonl)[0])

    def rewrite(self, records: list[dict]) -> None:
        write_text_atomic(self.jsonl, "".join(json.dumps(r) + "\n" for r in records))
        self._write_csv(records)

    def _write_csv(self, records: list[dict]) -> None:
        columns: list[str] = []
        for record in records:
            columns += [k for k in record if k not in columns]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(records)
        write_text_atomic(self.csv, buffer.getvalue())


def read_metrics(path: Path) -> tuple[list[dict], int]:
    """Records of a metrics.jsonl, skipping torn or garbled lines (a crash mid-write);
    returns (records, number of lines skipped)."""
    records, skipped = [], 0
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            skipped += 1
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            skipped += 1
    return records, skipped


def write_summary(run_dir: Path, summary: dict) -> None:
    write_text_atomic(run_dir / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
