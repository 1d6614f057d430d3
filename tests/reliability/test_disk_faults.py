"""Disk and filesystem faults. A checkpoint that cannot be written (a full disk, a
read-only folder) stops the run with exit status 2 and a message that says what
failed, that the previous checkpoint is intact, and where the lost epoch went: an
emergency copy in the temporary directory, or nowhere, said so. Nothing is torn:
the run goes on from what was kept to the same weights as a run without faults.
Run directories are never shared or overwritten, even by runs started in the same
second."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import dlcli.runs
from dlcli.checkpoint import load_checkpoint
from dlcli.cli import app
from dlcli.runs import create_run_dir
from dlcli.train import resume, train
from dlcli.train.callbacks import MetricsLogger

from tests.hang_guard import HANG_S

from ._reliability import REPO, cli_env, config_writer

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="finds files by /proc/self/fd")

CONFIG = """
name: disk
seed: 5
model:
  input_shape: [1, 28, 28]
  layers: [{conv2d: {filters: 4, kernel_size: 3, activation: relu}}, {maxpool2d: 2}, flatten, {dense: 10}]
data: {dataset: npz, path: DATA, batch_size: 32, val_split: 0.25}
optimizer: {type: adam, lr: 3e-3}
trainer: {epochs: 3, device: cpu, progress: none, out_dir: OUT}
"""
write_config = config_writer(CONFIG, "disk")


def no_space() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def the_run_dir(folder: Path) -> Path:
    (run_dir,) = (folder / "runs" / "disk").iterdir()
    return run_dir


def weights(path: Path) -> dict:
    return load_checkpoint(path)["model"]


def assert_same_tensors(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for key in expected:
        assert torch.equal(actual[key], expected[key]), key


def path_of(fd: int) -> Path:
    return Path(os.readlink(f"/proc/self/fd/{fd}"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, mnist_npz) -> dict:
    """Final weights of the run without faults."""
    from dlcli.config import load_config

    folder = tmp_path_factory.mktemp("reference")
    summary = train(load_config(str(write_config(folder, mnist_npz))))
    return weights(Path(summary["run_dir"]) / "checkpoints" / "last.pt")


class Disk:
    """Faults that start once epoch 1 is logged (the disk fills up during epoch 2)."""

    def __init__(self, monkeypatch, root: Path):
        self.monkeypatch, self.root, self.failing = monkeypatch, root, False
        self.on_fail = lambda: None
        self.scratch = root / "tmp"  # the temporary directory, where emergency copies go
        self.scratch.mkdir()
        monkeypatch.setattr(tempfile, "tempdir", str(self.scratch))
        original = MetricsLogger.on_epoch_end

        def on_epoch_end(logger, trainer, record):
            original(logger, trainer, record)
            if record["epoch"] == 1:
                self.failing = True
                self.on_fail()

        monkeypatch.setattr(MetricsLogger, "on_epoch_end", on_epoch_end)

    def full_at_fsync(self, under: Path, only: str | None = None) -> None:
        """fsync answers ENOSPC for files under `under` (named `only`), as it does where
        the file system allocates late."""
        real = os.fsync

        def fsync(fd):
            target = path_of(fd)
            if self.failing and target.is_relative_to(under) and only in (None, target.name):
                raise no_space()
            return real(fd)

        self.monkeypatch.setattr(os, "fsync", fsync)

    def full_at_write(self) -> None:
        """A file opened for writing anywhere in the test's folders takes 1,000 bytes, then
        the next write answers ENOSPC (once: flush and close then succeed)."""
        real = os.fdopen

        class FullDiskFile:
            def __init__(self, handle):
                self.handle, self.written = handle, 0

            def write(self, data):
                if self.written > 1000:
                    raise no_space()
                self.written += len(data)
                return self.handle.write(data)

            def __getattr__(self, name):
                return getattr(self.handle, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.handle.close()

        def fdopen(fd, mode="r", *args, **kwargs):
            handle = real(fd, mode, *args, **kwargs)
            if self.failing and "w" in mode and path_of(fd).is_relative_to(self.root):
                return FullDiskFile(handle)
            return handle

        self.monkeypatch.setattr(os, "fdopen", fdopen)

    def read_only(self, folder_name: str) -> None:
        """Creating a file in a folder named `folder_name` answers EACCES (a read-only folder;
        chmod does not stop root, who runs these tests in CI)."""
        real = tempfile.mkstemp

        def mkstemp(*args, dir=None, **kwargs):
            if self.failing and dir is not None and Path(dir).name == folder_name:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dir))
            return real(*args, dir=dir, **kwargs)

        self.monkeypatch.setattr(tempfile, "mkstemp", mkstemp)

    def repaired(self) -> None:
        self.failing = False


@pytest.fixture
def disk(monkeypatch, tmp_path) -> Disk:
    return Disk(monkeypatch, tmp_path)


def train_cli(config: Path):
    result = CliRunner().invoke(app, ["train", str(config)])
    assert "Traceback" not in result.output, result.output
    return result


def error_message(result) -> str:
    """The `error: ...` text, joined back into one line."""
    return " ".join(result.output.split())


def train_until_the_fault(config: Path) -> tuple[Path, str]:
    """`dlcli train CONFIG`, which the fault set up stops with exit status 2: (its run
    directory, its error message)."""
    result = train_cli(config)
    assert result.exit_code == 2, result.output
    return the_run_dir(config.parent), error_message(result)


def test_full_disk_at_a_checkpoint_keeps_the_previous_one_and_rescues_the_epoch(tmp_path, mnist_npz, disk,
                                                                             reference):
    config = write_config(tmp_path, mnist_npz)
    disk.full_at_fsync(tmp_path / "runs")  # the run's disk is full; the temporary directory's is not
    run_dir, message = train_until_the_fault(config)
    last = run_dir / "checkpoints" / "last.pt"
    assert f"{last}: cannot write the checkpoint: No space left on device" in message
    assert f"Training stopped at epoch 2; the previous checkpoint, {last} (epoch 1), is intact" in message
    rescue = Path(re.search(r"was saved to (\S+/last\.pt) instead", message).group(1))
    assert rescue.is_relative_to(disk.scratch)
    assert f"copy it over {last} and run: dlcli train --resume {run_dir}" in message
    assert load_checkpoint(last)["epoch"] == 1  # intact
    assert load_checkpoint(rescue)["epoch"] == 2  # the epoch that could not be written
    assert sorted(p.name for p in last.parent.iterdir()) == ["best.pt", "last.pt"]  # no temporary file left
    # make room, put the rescued state in place, go on: the run ends as if nothing happened
    disk.repaired()
    shutil.copy(rescue, last)
    resume(run_dir)
    assert_same_tensors(weights(last), reference)


def test_full_disk_everywhere_says_the_epoch_is_lost_and_resumes_from_the_previous_one(tmp_path, mnist_npz, disk,
                                                                                      reference):
    config = write_config(tmp_path, mnist_npz)
    disk.full_at_write()  # torch.save fails part-way: its RuntimeError carries the ENOSPC
    run_dir, message = train_until_the_fault(config)
    last = run_dir / "checkpoints" / "last.pt"
    assert f"{last}: cannot write the checkpoint: No space left on device" in message
    assert f"the previous checkpoint, {last} (epoch 1), is intact" in message
    assert ("The progress since is lost (an emergency copy in the temporary directory failed too: "
            in message) and "No space left on device); make room, then resume from it" in message
    assert list(disk.scratch.iterdir()) == []  # the failed emergency copy left nothing behind
    assert load_checkpoint(last)["epoch"] == 1
    disk.repaired()
    resume(run_dir)
    assert_same_tensors(weights(last), reference)


def test_read_only_checkpoints_folder_stops_the_run_and_rescues_the_epoch(tmp_path, mnist_npz, disk, reference):
    config = write_config(tmp_path, mnist_npz)
    disk.read_only("checkpoints")
    run_dir, message = train_until_the_fault(config)
    last = run_dir / "checkpoints" / "last.pt"
    assert f"{last}: cannot write the checkpoint: Permission denied" in message
    assert "Training stopped at epoch 2; the previous checkpoint" in message
    rescue = Path(re.search(r"was saved to (\S+/last\.pt) instead", message).group(1))
    assert load_checkpoint(rescue)["epoch"] == 2
    summary = json.loads((run_dir / "summary.json").read_text())  # the run folder itself is writable
    assert summary["status"] == "failed" and "Permission denied" in summary["error"]
    disk.repaired()
    shutil.copy(rescue, last)
    resume(run_dir)
    assert_same_tensors(weights(last), reference)


def read_only_folders_hold() -> bool:
    """False for root (with CAP_DAC_OVERRIDE), who writes into a folder of mode 555 anyway."""
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o555)
        try:
            Path(folder, "probe").touch()
        except PermissionError:
            return True
        finally:
            os.chmod(folder, 0o755)
    return False


@pytest.mark.skipif(not read_only_folders_hold(), reason="this user (root) writes into read-only folders anyway")
def test_checkpoints_folder_made_read_only_with_chmod(tmp_path, mnist_npz, disk):
    config = write_config(tmp_path, mnist_npz)
    disk.on_fail = lambda: (the_run_dir(tmp_path) / "checkpoints").chmod(0o555)
    try:
        result = train_cli(config)
    finally:
        (the_run_dir(tmp_path) / "checkpoints").chmod(0o755)
    assert result.exit_code == 2
    assert "cannot write the checkpoint: Permission denied" in error_message(result)
    assert load_checkpoint(the_run_dir(tmp_path) / "checkpoints" / "last.pt")["epoch"] == 1


def test_full_disk_at_the_metrics_log_stops_cleanly_after_the_checkpoint(tmp_path, mnist_npz, disk, reference):
    config = write_config(tmp_path, mnist_npz)
    disk.full_at_fsync(tmp_path / "runs", only="metrics.jsonl")
    run_dir, message = train_until_the_fault(config)
    assert f"{run_dir / 'metrics.jsonl'}: cannot append the metrics: No space left on device" in message
    last = run_dir / "checkpoints" / "last.pt"
    assert f"last good checkpoint: {last}" in message
    assert load_checkpoint(last)["epoch"] == 2  # the checkpoint is written before the log
    disk.repaired()
    resume(run_dir)
    assert_same_tensors(weights(last), reference)


# ---- run directories ------------------------------------------------------------

class _FrozenDatetime(datetime):
    @classmethod
    def now(cls, tz=None):
        return cls(2026, 11, 26, 12, 0, 0)


def test_existing_run_directory_is_never_overwritten(tmp_path, mnist_npz, monkeypatch):
    monkeypatch.setattr(dlcli.runs, "datetime", _FrozenDatetime)
    config = write_config(tmp_path, mnist_npz)
    earlier = tmp_path / "runs" / "disk" / "20261126-120000"  # a run of the same second, already there
    (earlier / "checkpoints").mkdir(parents=True)
    (earlier / "config.yaml").write_text("mine\n")
    result = train_cli(config)
    assert result.exit_code == 0, result.output
    assert (earlier / "config.yaml").read_text() == "mine\n"
    assert sorted(p.name for p in earlier.rglob("*")) == ["checkpoints", "config.yaml"]
    assert (tmp_path / "runs" / "disk" / "20261126-120000-1" / "summary.json").is_file()


def test_run_directories_created_in_the_same_second_by_threads_are_distinct(tmp_path, monkeypatch):
    monkeypatch.setattr(dlcli.runs, "datetime", _FrozenDatetime)
    barrier = threading.Barrier(16)
    made: list[Path] = []

    def make():
        barrier.wait()
        made.append(create_run_dir(tmp_path, "same"))

    threads = [threading.Thread(target=make) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(made)) == 16
    assert sorted(p.name for p in made) == sorted(["20261126-120000"] + [f"20261126-120000-{n}" for n in range(1, 16)])


_MAKE_AT = """
import sys, time
from datetime import datetime
import dlcli.runs

class Frozen(datetime):
    @classmethod
    def now(cls, tz=None):
        return cls(2026, 11, 26, 12, 0, 0)

dlcli.runs.datetime = Frozen
start = float(sys.argv[2])
while time.time() < start:
    pass
print(dlcli.runs.create_run_dir(sys.argv[1], "same"))
"""


def test_run_directories_created_in_the_same_second_by_processes_are_distinct(tmp_path):
    start = time.time() + 1.5  # most are up by then; a late one finds the same frozen second
    procs = [subprocess.Popen([sys.executable, "-c", _MAKE_AT, str(tmp_path), str(start)], cwd=REPO, env=cli_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(6)]
    made = []
    for proc in procs:
        out, err = proc.communicate(timeout=HANG_S)
        assert proc.returncode == 0, err
        made.append(out.strip())
    assert len(set(made)) == 6, made
    assert all(Path(p).parent == tmp_path / "same" and (Path(p) / "checkpoints").is_dir() for p in made)


def test_two_trainings_started_in_the_same_second_keep_their_own_files(tmp_path, mnist_npz, cli_server):
    # two real `dlcli train` processes, both told it is 12:00:00, running side by side
    config = write_config(tmp_path, mnist_npz)
    pids = [cli_server.start(["train", config], tmp_path, tmp_path / f"run{n}", frozen_time="20261126-120000")
            for n in range(2)]
    assert [cli_server.wait(pid) for pid in pids] == [0, 0], [(tmp_path / f"run{n}.err").read_text() for n in (0, 1)]
    dirs = sorted((tmp_path / "runs" / "disk").iterdir())
    assert [d.name for d in dirs] == ["20261126-120000", "20261126-120000-1"]
    for run_dir in dirs:
        assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"
        assert (run_dir / "config.yaml").is_file() and (run_dir / "environment.json").is_file()
        assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 3
    assert_same_tensors(weights(dirs[0] / "checkpoints" / "last.pt"), weights(dirs[1] / "checkpoints" / "last.pt"))
    wrote = {re.search(r"wrote\s+(\S+)", (tmp_path / f"run{n}.out").read_text()).group(1) for n in (0, 1)}
    assert wrote == {str(d) for d in dirs}  # each process reported its own directory
