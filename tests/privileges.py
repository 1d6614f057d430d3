"""`dlcli` run by a user whom file permissions stop, for the tests of unreadable files and folders.

Root reads a file of mode 000 anyway, and the suite often runs as root (CI containers, this
project's machines). There a command runs in a child process as UNPRIVILEGED_UID (65534,
`nobody`), in a workspace handed over to that user; run by anyone else, the command runs as
that user, whom chmod 000 stops. Where neither shows a refusal, `unprivileged_skip_reason()`
says why, and the tests skip with that reason (`-rs` prints it in the summary).

    def test_x(unprivileged):                    # the fixture (tests/conftest.py): a Workspace
        folder = unprivileged.root / "private"
        ...
        folder.chmod(0)
        result = unprivileged.run("validate", folder / "x.yaml")
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.hang_guard import HANG_S

REPO = Path(__file__).resolve().parent.parent
UNPRIVILEGED_UID = 65534  # `nobody` on Linux distributions


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _unprivileged_gid() -> int:
    import pwd

    try:
        return pwd.getpwuid(UNPRIVILEGED_UID).pw_gid
    except KeyError:  # no such user in /etc/passwd: the ids still work
        return UNPRIVILEGED_UID


def _child_env(home: Path) -> dict:
    """This checkout first on the path; HOME in the workspace (nobody's is /nonexistent, and
    libraries keep caches there)."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(REPO) + (os.pathsep + path if path else ""), "HOME": str(home)}


def _as_unprivileged() -> dict:
    """subprocess arguments that start the child as UNPRIVILEGED_UID, without supplementary groups
    (no preexec_fn: it is not safe in a process with threads, which torch starts)."""
    return {"user": UNPRIVILEGED_UID, "group": _unprivileged_gid(), "extra_groups": []} if _is_root() else {}


@functools.cache
def unprivileged_skip_reason() -> str | None:
    """Why this suite cannot run a command that file permissions stop; None when it can."""
    if sys.platform == "win32" or not hasattr(os, "geteuid"):
        return "no POSIX file permissions on this platform"
    if not _is_root():
        probe = Path(tempfile.mkdtemp())
        try:
            probe.chmod(0)
            os.listdir(probe)
        except PermissionError:
            return None
        finally:
            probe.chmod(0o700)
            probe.rmdir()
        return f"this user (uid {os.geteuid()}) lists a folder of mode 000 (CAP_DAC_OVERRIDE?): no permission can fail"
    try:  # root: can uid 65534 start this interpreter and import dlcli, torch and PIL?
        result = subprocess.run([sys.executable, "-c", "import dlcli.cli, torch, PIL"], cwd="/",
                                env=_child_env(Path("/nonexistent")), capture_output=True, text=True,
                                timeout=HANG_S, **_as_unprivileged())
    except PermissionError as err:  # the exec: a folder above the interpreter is closed to that user
        return (f"uid {UNPRIVILEGED_UID} may not start this Python, {sys.executable} (that is "
                f"{os.path.realpath(sys.executable)}): {err.strerror}; root ignores file permissions, so "
                f"nothing here can show a refusal (a virtual environment made from a Python that every user "
                f"may run, such as /usr/bin/python3, runs these tests)")
    except (OSError, subprocess.SubprocessError) as err:  # setuid refused (a user namespace without that id)
        return f"running as uid {UNPRIVILEGED_UID} is refused here ({err}), and root ignores file permissions"
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return (f"uid {UNPRIVILEGED_UID} cannot import dlcli, torch and PIL with {sys.executable} ({last}): the "
                f"environment at {sys.prefix} or the checkout at {REPO} is not readable by that user; root "
                f"ignores file permissions, so nothing here can show a refusal")
    return None


class Workspace:
    """A folder under /tmp (pytest's tmp_path lies in a folder of mode 700 that only its owner
    may enter) for what a test builds; `run` hands it over to the unprivileged user first."""

    def __init__(self):
        base = "/tmp" if os.path.isdir("/tmp") else None
        self.root = Path(tempfile.mkdtemp(prefix="dlcli-unprivileged-", dir=base))
        self.root.chmod(0o755)

    def run(self, *args: object) -> subprocess.CompletedProcess:
        """`python -m dlcli ARGS` as the unprivileged user, in the workspace (the current directory);
        everything in it then belongs to that user, as a user's own files do."""
        if _is_root():
            self._hand_over()
        return subprocess.run([sys.executable, "-m", "dlcli", *map(str, args)], cwd=self.root,
                              env=_child_env(self.root), capture_output=True, text=True, timeout=HANG_S,
                              **_as_unprivileged())

    def _hand_over(self) -> None:
        uid, gid = UNPRIVILEGED_UID, _unprivileged_gid()
        for folder, subfolders, files in os.walk(self.root):  # root enters folders of mode 000 too
            os.lchown(folder, uid, gid)
            for name in subfolders + files:
                os.lchown(os.path.join(folder, name), uid, gid)

    def remove(self) -> None:
        """Deleted, whatever modes the test left: folders made enterable first (needed when not root)."""
        self._unlock(self.root)
        shutil.rmtree(self.root, ignore_errors=True)

    @staticmethod
    def _unlock(folder: Path) -> None:
        folder.chmod(0o700)
        for entry in os.scandir(folder):
            if entry.is_dir(follow_symlinks=False):
                Workspace._unlock(Path(entry.path))


def deny_access(monkeypatch, *paths: Path, enter: bool = False) -> None:
    """Within this process, each of `paths` answers as it would with mode 000 to a user whom
    permissions stop: a folder cannot be listed and nothing in it can be looked up or opened; a
    file cannot be opened (os.access says so too). `enter`: the folders answer as with mode 100,
    listing refused, what is in them looked up and opened by name. For tests that hold wherever
    the suite runs, root included; tests/cli/test_permissions.py shows the same with real
    permissions."""
    import builtins
    import errno
    import io

    folders = [Path(p) for p in paths if Path(p).is_dir()]
    files = [Path(p) for p in paths if not Path(p).is_dir()]

    def absolute(path) -> Path | None:
        return None if isinstance(path, int) else Path(os.fsdecode(path)).absolute()  # int: a file descriptor

    def inside(path) -> bool:  # what permissions on a folder above it refuse: any look at it
        return not enter and absolute(path) is not None and any(folder in absolute(path).parents for folder in folders)

    def guard(real, refuses):
        def guarded(path=".", *args, **kwargs):
            if refuses(path):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))
            return real(path, *args, **kwargs)
        return guarded

    listing = lambda path: inside(path) or absolute(path) in folders  # noqa: E731
    opening = lambda path: inside(path) or absolute(path) in files or absolute(path) in folders  # noqa: E731
    for name in ("scandir", "listdir"):
        monkeypatch.setattr(os, name, guard(getattr(os, name), listing))
    for name in ("stat", "lstat"):
        monkeypatch.setattr(os, name, guard(getattr(os, name), inside))
    monkeypatch.setattr(os, "open", guard(os.open, opening))
    monkeypatch.setattr(builtins, "open", guard(builtins.open, opening))
    monkeypatch.setattr(io, "open", guard(io.open, opening))
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: not opening(path) and real_access(path, mode, **kw))
