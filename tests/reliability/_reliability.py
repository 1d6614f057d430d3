"""Helpers of the reliability tests: real `python -m dlcli` processes, and the
client of a warm CLI server that forks them cheaply (`_cli_server.py`)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

from tests.hang_guard import HANG_S

REPO = Path(__file__).resolve().parents[2]
SERVER = Path(__file__).resolve().parent / "_cli_server.py"
TIMING_FIELDS = ("seconds", "samples_per_s")


def cli_env() -> dict:
    """The environment of a dlcli child process: this worktree first on the path."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(REPO) + (os.pathsep + path if path else "")}


def run_cli(argv: list[str], cwd: Path, timeout: float = HANG_S) -> subprocess.CompletedProcess:
    """`python -m dlcli ARGV`, a fresh interpreter, to completion."""
    return subprocess.run([sys.executable, "-m", "dlcli", *argv], cwd=cwd, env=cli_env(), capture_output=True,
                          text=True, timeout=timeout)


def config_writer(text: str, name: str):
    """`write_config(folder, data) -> folder/<name>.yaml`: `text` with DATA replaced by the
    data file and OUT by folder/runs."""

    def write_config(folder: Path, data: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.yaml"
        path.write_text(text.replace("DATA", str(data)).replace("OUT", str(folder / "runs")))
        return path

    return write_config


def without_timing(records: list[dict]) -> list[dict]:
    """Metrics records without the wall-clock fields, which no two runs share."""
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in records]


class CliServer:
    """Client of `_cli_server.py`: start(argv) forks a `dlcli ARGV` child and returns its pid;
    wait(pid) returns its exit status (minus the signal number when killed)."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, str(SERVER)], cwd=REPO, env=cli_env(), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        assert self._reply(HANG_S) == {"ready": True}

    def _reply(self, timeout: float) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError(f"the CLI server did not answer in {timeout} s")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the CLI server exited (status {self.proc.poll()})")
        return json.loads(line)

    def _send(self, request: dict) -> None:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()

    def start(self, argv: list[str], cwd: Path, log: Path, **instruments) -> int:
        self._send({"argv": [str(a) for a in argv], "cwd": str(cwd), "out": f"{log}.out", "err": f"{log}.err",
                    **instruments})
        return self._reply(HANG_S)["pid"]

    def wait(self, pid: int, timeout: float = HANG_S) -> int:
        self._send({"wait": pid})
        try:
            return self._reply(timeout)["rc"]
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)  # not reaped yet: the pid is still this child's
            self._reply(HANG_S)
            raise

    def run(self, argv: list[str], cwd: Path, log: Path, **instruments) -> int:
        return self.wait(self.start(argv, cwd, log, **instruments))

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self.proc.kill()
            self.proc.wait()
