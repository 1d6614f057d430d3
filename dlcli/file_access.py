"""Looking at the user's paths: an OSError (a folder this user may not list, a file it may not
read, a name too long, a loop of symbolic links, an I/O error) becomes a DlcliError naming the
path and what dlcli was doing, `PATH: cannot list the folder: Permission denied (...)`, never a
traceback, and never a listing that silently leaves out what it could not read (as
`Path.rglob` does: it skips a folder it may not list).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path
from typing import Iterator

from dlcli.errors import DlcliError, shorten

PERMISSION_HINT = "as this user; check the permissions of the file and of the folders above it"
PATH_SHOWN = 300  # characters of a path a message shows (a name too long for the system can be thousands)


def refusal(err: OSError) -> str:
    """What the system said, `Permission denied (as this user; ...)` for a permission."""
    why = err.strerror or str(err) or type(err).__name__
    return f"{why} ({PERMISSION_HINT})" if err.errno in (errno.EACCES, errno.EPERM) else why


def cannot(operation: str, path: str | os.PathLike, err: OSError, error: type[DlcliError] = DlcliError) -> DlcliError:
    """`PATH: cannot OPERATION: REASON` as an `error`."""
    return error(f"{shorten(str(path), PATH_SHOWN)}: cannot {operation}: {refusal(err)}")


@contextlib.contextmanager
def reported(operation: str, path: str | os.PathLike, error: type[DlcliError] = DlcliError) -> Iterator[None]:
    """An OSError inside the block is `cannot(operation, path, ...)`."""
    try:
        yield
    except OSError as err:
        raise cannot(operation, path, err, error) from None


def what_is(path: str | os.PathLike) -> str | None:
    """'folder', 'file' or 'other' (a FIFO, a device...) for what `path` names, symbolic links
    followed; None when nothing is there (as Path.exists() says False). Any other failure to
    look (permission, a name too long, a loop of links) is the OSError, not a False."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError, ValueError):  # ValueError: a NUL in the name
        return None
    return "folder" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"


def kind_of(path: str | os.PathLike, error: type[DlcliError] = DlcliError) -> str | None:
    """`what_is(path)`, a failure to look an `error` naming the path."""
    with reported("access it", path, error):
        return what_is(path)


def folder_entries(folder: str | os.PathLike, error: type[DlcliError] = DlcliError) -> list[os.DirEntry]:
    """The entries of `folder`, sorted by name."""
    with reported("list the folder", folder, error):
        with os.scandir(folder) as listing:
            return sorted(listing, key=lambda entry: entry.name)


def files_under(folder: str | os.PathLike, suffixes: tuple[str, ...],
                error: type[DlcliError] = DlcliError) -> list[Path]:
    """Every file at any depth under `folder` whose suffix (any case) is one of `suffixes`, sorted:
    what `sorted(folder.rglob("*"))` filtered so gives (links to files followed, links to folders
    not), except that a folder it cannot list is an `error` rather than left out."""
    found, pending = [], [Path(folder)]
    while pending:
        current = pending.pop()
        for entry in folder_entries(current, error):
            path = current / entry.name
            with reported("access it", path, error):
                is_folder = entry.is_dir(follow_symlinks=False)
            if is_folder:
                pending.append(path)
            elif path.suffix.lower() in suffixes and kind_of(path, error) == "file":
                found.append(path)
    return sorted(found)
