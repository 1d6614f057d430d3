"""One process trains a run at a time: RUN/.lock, held by train and --resume, refuses a second
process before it touches anything, and never outlives its holder."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dlcli.errors import RunError
from dlcli.run_lock import LOCK_FILE, acquire, release, run_is_locked
from dlcli.train import Callback, RunHandle, resume, train
from tests.hang_guard import HANG_S

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="no fcntl locks: runs are not guarded there")

REPO = Path(__file__).resolve().parents[2]
HOLD = "import sys; from dlcli.run_lock import acquire; acquire(sys.argv[1]); print('held', flush=True); sys.stdin.read()"


def _python(*args: str, **kwargs) -> subprocess.Popen:
    """A second process running this checkout's dlcli."""
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen([sys.executable, *args], env=env, text=True, **kwargs)


def _snapshot(run_dir: Path) -> dict:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(run_dir.rglob("*")) if p.is_file()}


def test_a_run_another_process_holds_is_refused_untouched_until_that_process_dies(tiny_cfg, cli):
    run_dir = Path(train(tiny_cfg("trainer.epochs=1"))["run_dir"])
    holder = _python("-c", HOLD, str(run_dir), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == "held\n"
        before = _snapshot(run_dir)
        with pytest.raises(RunError, match=rf"{run_dir} is being trained by another process \(pid {holder.pid}, "
                                           rf"started .*\); wait for it to end or stop it first"):
            resume(run_dir, ["trainer.epochs=2"])
        result = cli("train", "--resume", run_dir / "checkpoints" / "last.pt", "trainer.epochs=2")
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert f"being trained by another process (pid {holder.pid}" in result.output
        assert _snapshot(run_dir) == before  # not a byte, not a timestamp
        assert run_is_locked(run_dir) is True
    finally:
        holder.send_signal(signal.SIGKILL)  # the kernel drops the lock of a killed process
        holder.wait()
    assert run_is_locked(run_dir) is False
    assert resume(run_dir, ["trainer.epochs=2"])["epochs"] == 2


class _ResumeFromAnotherProcess(Callback):
    """At the first epoch's end, `dlcli train --resume` the run from a second process."""

    def on_epoch_end(self, trainer, record: dict) -> None:
        if trainer.epoch == 1:
            run_dir = self.handle.run_dir
            second = _python("-m", "dlcli", "train", "--resume", str(run_dir), "trainer.epochs=5",
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self.result = second.communicate(timeout=HANG_S), second.returncode
            self.locked = run_is_locked(run_dir)


def test_training_holds_its_run_lock_until_it_ends(tiny_cfg):
    second = _ResumeFromAnotherProcess()
    second.handle = RunHandle()
    summary = train(tiny_cfg("trainer.epochs=2"), callbacks=[second], handle=second.handle)
    (out, err), rc = second.result
    assert rc == 2, err
    assert f"is being trained by another process (pid {os.getpid()}, started " in err and "Traceback" not in err
    assert second.locked is True
    run_dir = Path(summary["run_dir"])
    assert run_is_locked(run_dir) is False  # released when train() returned
    assert [p.name for p in run_dir.glob(".*")] == [LOCK_FILE]


def test_a_forked_child_does_not_keep_the_lock(tmp_path):
    """Data loader workers are forked from the trainer: its lock must not live on in them."""
    fd = acquire(tmp_path)
    ready, started = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child; its at-fork hooks ran before os.fork returned
        os.write(started, b"1")
        time.sleep(30)
        os._exit(0)
    try:
        assert os.read(ready, 1) == b"1"
        release(fd)
        assert run_is_locked(tmp_path) is False
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        os.close(ready), os.close(started)


def test_a_run_without_a_lock_file_cannot_be_told(tmp_path):
    assert run_is_locked(tmp_path) is None
    assert not (tmp_path / LOCK_FILE).exists()  # looking writes nothing


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's own file\n")
    return victim


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "fifo"])
def test_a_lock_file_that_is_a_link_or_a_fifo_is_refused_and_nothing_is_written(kind, tiny_cfg, tmp_path, cli):
    """Issue 15 #1: --resume opened RUN/.lock following links and truncated whatever it pointed to."""
    run_dir = Path(train(tiny_cfg("trainer.epochs=1"))["run_dir"])
    lock, victim = run_dir / LOCK_FILE, _victim(tmp_path)
    lock.unlink()
    if kind == "symlink":
        lock.symlink_to(victim)
    elif kind == "hardlink":
        os.link(victim, lock)
    else:
        os.mkfifo(lock)  # opened as it was, a FIFO would hang the resume
    before = _snapshot(run_dir)
    result = cli("train", "--resume", run_dir, "trainer.epochs=2")
    says = {"symlink": "it is a symbolic link, and dlcli never writes through a link",
            "hardlink": r"it is a hard link \(2 names for one file\)", "fifo": "it is a FIFO, not a regular file"}[kind]
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert re.search(rf"{re.escape(str(lock))}: cannot open the run's lock file: {says}.*nothing in the run was "
                     rf"changed", " ".join(result.output.split()))
    assert victim.read_text() == "the user's own file\n"
    assert _snapshot(run_dir) == before
    assert run_is_locked(run_dir) is None  # `dlcli runs` does not follow it or wait on it either


def test_the_lock_file_is_created_without_following_a_dangling_link(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / LOCK_FILE).symlink_to(tmp_path / "created-elsewhere")
    with pytest.raises(RunError, match="symbolic link"):
        acquire(run_dir)
    assert not (tmp_path / "created-elsewhere").exists()
