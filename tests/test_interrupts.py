"""dlcli.interrupts: Ctrl-C stops every command with exit status 130 and no traceback, whenever
it comes (issue 15 #16: a SIGINT about 0.6 s into `evaluate` was once ignored, exit 0).

Where the ignored signal went: typer turns a KeyboardInterrupt into exit 130, but one raised
while a finalizer runs (a __del__, a weakref callback, a garbage collection: frequent while torch
imports) is dropped by Python, and the command ran on to exit 0. The moments are events, not
delays (the process has mapped libtorch; a finalizer runs); then the test waits for the end, so
a slow machine only waits longer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dlcli.train import train
from tests.hang_guard import HANG_S
from tests.samples import tiny_mnist

pytestmark = pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="watches the process through /proc")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return Path(train(tiny_mnist(tmp_path_factory.mktemp("runs"), "trainer.epochs=1"))["run_dir"])


def _spawn(*args: object) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, *map(str, args)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _torch_loaded(pid: int) -> bool:
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


# Earlier moments belong to Python itself: a SIGINT while it imports `site` is a "Fatal Python error"
# (exit 1) before any code of dlcli runs.
MOMENTS = {
    "torch_loading": _torch_loaded,  # libtorch is mapped: torch's own import goes on for a while
}


def _interrupt_when(process: subprocess.Popen, ready) -> tuple[int, str, bool]:
    """One SIGINT at the moment `ready(pid)` first holds, then wait for the end (one, as a user
    presses Ctrl-C once: a lost signal shows as a command that ran on to exit 0): (exit status,
    stderr, whether the signal was sent before the process ended)."""
    deadline, sent = time.monotonic() + HANG_S, False
    while not sent and process.poll() is None and time.monotonic() < deadline:
        if ready(process.pid):
            process.send_signal(signal.SIGINT)
            sent = True
        time.sleep(0.002)
    _, stderr = process.communicate(timeout=HANG_S)
    return process.returncode, stderr, sent


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_ctrl_c_stops_evaluate_with_exit_130_whenever_it_comes(moment, run_dir, tmp_path):
    process = _spawn("-m", "dlcli", "evaluate", run_dir, "--out", tmp_path / "out")
    code, stderr, sent = _interrupt_when(process, MOMENTS[moment])
    assert sent, f"evaluate ended before the moment {moment}: {stderr}"
    assert code == 130, (code, stderr)
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert not (tmp_path / "out").exists()  # stopped before it wrote its report


def test_an_interrupt_that_a_finalizer_swallowed_still_stops_the_command():
    """A KeyboardInterrupt raised inside a __del__ is dropped by Python ("Exception ignored"): the
    command went on and exited 0. It is delivered again, and the exit status is 130."""
    script = ("import os, signal, sys\n"
              "from dlcli import interrupts\n"
              "from dlcli.cli import main\n"
              "interrupts.install()\n"
              "class Finalized:\n"
              "    def __del__(self):\n"
              "        os.kill(os.getpid(), signal.SIGINT)\n"
              "        sum(range(10_000))  # the handler runs here, inside the finalizer\n"
              "sys.argv = ['dlcli', 'list-layers']\n"
              "Finalized(); main()\n")  # dropped at once: its __del__ runs, then the command
    process = _spawn("-c", script)
    stdout, stderr = process.communicate(timeout=HANG_S)
    assert process.returncode == 130, (process.returncode, stdout, stderr)
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr


def test_stop_signals_record_the_first_signal_and_stop_at_the_second():
    """The training loop's context: a first SIGTERM/SIGINT is only recorded (the loop stops at its
    next safe point), a second stops at once, and the handlers before it come back on exit."""
    from dlcli.interrupts import SecondSignal, StopSignals

    before = signal.getsignal(signal.SIGTERM)
    signals = StopSignals()
    with signals:
        os.kill(os.getpid(), signal.SIGTERM)  # handled between two bytecodes, in this (the main) thread
        assert signals.received == "SIGTERM"
        with pytest.raises(SecondSignal, match="SIGINT"):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is before
