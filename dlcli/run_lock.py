"""One training process per run directory: an advisory lock on RUN/.lock, held by `dlcli
train` from the moment it creates the directory, and by `--resume` before it reads anything
there to continue, until the process ends.

    with run_lock(run_dir):          # RunError when another process trains the run
        ...
    run_is_locked(run_dir)           # for `dlcli runs`: True, False, or None (cannot tell)

The lock is `fcntl.flock` on the file: the kernel drops it when the process ends, however it
ends (SIGKILL included), so a crashed run never leaves a stale lock behind. The file itself
stays; what it says (pid, host, start, command) is read only while someone holds it. Children
forked by the holder (data loader workers) close their copy, so none keeps the lock past its
trainer. Where there is no fcntl (Windows) or the file system does not lock (some network
mounts), training goes on without a lock.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Iterator

from dlcli.errors import RunError
from dlcli.files import open_regular_file
from dlcli.invocation import command_line

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs are not guarded
    fcntl = None

LOCK_FILE = ".lock"
WAIT_S = 1.0  # `dlcli runs` holds the lock for an instant while it looks: a trainer retries this long
_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}  # a file system without locks
_held: dict[int, Path] = {}  # fd -> run directory, of the locks this process holds


def _close_in_child() -> None:
    """A forked child (a data loader worker) must not keep its parent's locks alive."""
    for fd in list(_held):
        try:
            os.close(fd)
        except OSError:
            pass
    _held.clear()


if fcntl is not None and hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)


@contextlib.contextmanager
def run_lock(run_dir: Path | None) -> Iterator[None]:
    """Hold `run_dir`'s lock for the block (nothing for None); a RunError, before anything in
    the run is touched, when another process holds it."""
    fd = acquire(run_dir) if run_dir is not None else None
    try:
        yield
    finally:
        if fd is not None:
            release(fd)


def acquire(run_dir: Path) -> int | None:
    """Lock `run_dir` for this process and record who holds it; returns the lock's file
    descriptor for `release` (None where locks are not supported)."""
    if fcntl is None:
        return None
    path = Path(run_dir) / LOCK_FILE
    try:  # never through a link: a run from elsewhere may hold `.lock -> ~/.bashrc`
        fd = open_regular_file(path, os.O_RDWR | os.O_CREAT)
    except OSError as err:  # a read-only folder, a full disk: the run could not write there either
        raise RunError(f"{path}: cannot open the run's lock file: {err.strerror or err} (nothing in the run "
                       f"was changed)") from None
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError as err:
            if err.errno in _UNSUPPORTED:
                os.close(fd)
                return None
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                os.close(fd)
                raise RunError(f"{path}: cannot lock the run: {err.strerror or err}") from None
            if time.monotonic() > deadline:
                holder = _read_holder(fd)
                os.close(fd)
                raise RunError(_refusal(Path(run_dir), holder)) from None
            time.sleep(0.05)
    _held[fd] = Path(run_dir)
    _write_holder(fd)
    return fd


def release(fd: int) -> None:
    """Drop a lock `acquire` took (closing the file releases it)."""
    if _held.pop(fd, None) is not None:
        os.close(fd)


def run_is_locked(run_dir: Path) -> bool | None:
    """Whether a process holds `run_dir`'s lock now: None when the run has no lock file (a run
    of an older dlcli) or locks are not supported, so the caller must guess. Looks without
    creating or writing anything."""
    if fcntl is None:
        return None
    try:  # a link or a FIFO in its place: not followed, not waited on
        fd = open_regular_file(Path(run_dir) / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError as err:
        return True if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN) else None
    finally:
        os.close(fd)  # releases the shared lock, if taken


def _write_holder(fd: int) -> None:
    """Who holds the lock, for the message another process gives; best effort (a full disk
    leaves the lock held and the file empty)."""
    record = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.now().isoformat(timespec="seconds"), "command": command_line()}
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)
    except OSError:
        pass


def _read_holder(fd: int) -> dict:
    try:
        value = json.loads(os.pread(fd, 65536, 0).decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _refusal(run_dir: Path, holder: dict) -> str:
    from dlcli.errors import shorten

    pid = holder.get("pid")
    who = f"pid {pid}" if isinstance(pid, int) else "pid unknown"
    host = holder.get("host")
    if isinstance(host, str) and host != socket.gethostname():
        who += f" on {shorten(host)}"
    if isinstance(holder.get("started"), str):
        who += f", started {shorten(holder['started'])}"
    if isinstance(holder.get("command"), str):
        who += f": {shorten(holder['command'], 200)}"
    return (f"{run_dir} is being trained by another process ({who}); wait for it to end or stop it first "
            f"(it holds {run_dir / LOCK_FILE}; nothing in the run was changed)")
