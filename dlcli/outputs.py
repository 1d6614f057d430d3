"""Where a command may write its --out file, checked before any work: nothing the user had
is lost or overwritten.

    refuse_inputs(out, [(checkpoint, "the checkpoint")], instead)   # never, even with --force
    refuse_run_files(out, instead)                                  # a run's checkpoints/ and records
    refuse_existing(out, is_predictions_file, "a dlcli predictions file", force)

A file counts as an earlier output only when a mark only dlcli writes says so (see WRITTEN_BY).

Paths are compared resolved (symlinks followed) and, for files that exist, by device and
inode (`os.path.samefile`), so a second spelling, a symlink or a hard link of an input is
caught too.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Callable, Iterable

from dlcli.errors import OutputError


def same_file(a: Path, b: Path) -> bool:
    """Whether `a` and `b` name the same file: equal once resolved, or the same inode."""
    try:
        if Path(a).resolve() == Path(b).resolve():
            return True
    except (OSError, RuntimeError):  # a symlink loop
        pass
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


# `label` names the file in messages: "--out X" (the default), or "--out X: its sidecar Y" for a
# file written beside it.

def refuse_inputs(out: Path, inputs: Iterable[tuple[Path, str]], instead: Path | None = None,
                  label: str | None = None) -> None:
    """OutputError when `out` is one of `inputs` ((path, what it is) pairs): writing there would
    replace what the command reads. --force does not override this."""
    for path, what in inputs:
        if same_file(out, path):
            raise OutputError(f"{label or f'--out {out}'} is {what} {path}, which this command reads; writing "
                              f"there would replace it. Expected a new file name{_example(instead)} (--force "
                              f"never replaces an input)")


def refuse_run_files(out: Path, instead: Path | None = None, label: str | None = None) -> None:
    """OutputError when `out` lies in a run's checkpoints/ folder or is one of its records:
    only the run itself writes those (resuming and evaluating read them). --force does not
    override this."""
    from dlcli.runs import owned_by_run

    owner = owned_by_run(out)
    if owner is not None:
        raise OutputError(f"{label or f'--out {out}'} is {owner}; only training writes there. Expected a path "
                          f"outside it{_example(instead)} (--force never writes there)")


def refuse_existing(out: Path, is_earlier_output: Callable[[Path], bool], what: str, force: bool,
                    label: str | None = None, hint: str = "") -> None:
    """OutputError when `out` exists and `is_earlier_output(out)` says it is not `what` (an
    earlier output of the same command, which a re-run replaces), unless `force`."""
    if force or not (out.exists() or out.is_symlink()) or is_earlier_output(out):
        return
    raise OutputError(f"{label or f'--out {out}'} exists and is not {what}; expected a new file name, or --force "
                      f"to replace it{hint}")


# What proves a file an earlier output of a command: a mark only dlcli writes, never a header that
# a user's file may happen to share. JSON outputs carry it as a field; a CSV (kept plain CSV, for
# csv.DictReader and spreadsheets) has a marker file beside it holding the mark and the CSV's
# SHA-256, so a CSV edited since is the user's again.
WRITTEN_BY = "written_by"
OLDER_OUTPUT_HINT = " (written by an older dlcli, which marked no output? use --force)"


def utf8_text(text: str) -> str:
    """`text` as it can be written in UTF-8: a file name that is not UTF-8 (read as lone surrogates,
    e.g. '\\udcff') is written escaped, `\\udcff`, rather than failing the write."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def written_by(command: str) -> str:
    """The mark of `command`'s outputs: 'dlcli predict 0.1.0'."""
    from dlcli import __version__

    return f"dlcli {command} {__version__}"


def is_marked(value, command: str) -> bool:
    """Whether `value` (a parsed JSON output) carries the mark of `command`, of any dlcli version."""
    return isinstance(value, dict) and str(value.get(WRITTEN_BY, "")).startswith(f"dlcli {command} ")


def sha256_of(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def marker_path(path: Path) -> Path:
    """The marker beside a CSV output: predictions.csv -> predictions.csv.dlcli.json."""
    return path.with_name(path.name + ".dlcli.json")


def marker_text(path: Path, data: bytes, command: str) -> str:
    """The marker of CSV output `path` holding `data`."""
    return json.dumps({WRITTEN_BY: written_by(command), "file": path.name, "sha256": sha256_of(data)}, indent=2) + "\n"


def is_marker(path: Path, command: str) -> bool:
    """Whether `path` is a marker file `command` wrote (whatever CSV it vouches for)."""
    return is_marked(read_output_head(path, True), command)


def proved_by_marker(path: Path, command: str) -> bool:
    """Whether CSV `path` is, byte for byte, what `command` wrote: its marker says so."""
    mark = read_output_head(marker_path(path), True)
    return is_marked(mark, command) and mark.get("file") == path.name and holds_sha256(path, mark.get("sha256"))


def holds_sha256(path: Path, expected) -> bool:
    """Whether regular file `path` (of at most 4 GiB: outputs are small) has the SHA-256 `expected`."""
    try:
        if not isinstance(expected, str) or not path.is_file() or path.stat().st_size > 2 ** 32:
            return False
        return sha256_of(path.read_bytes()) == expected
    except OSError:
        return False


def read_output_head(path: Path, opening_json: bool):
    """The parsed JSON (`opening_json`: a .json output, read whole only when it starts with '{'),
    else the CSV's header row; None when the file cannot be read as that."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            if opening_json:
                if handle.read(1) != "{":
                    return None  # not the JSON the command writes: do not read on
                return json.loads("{" + handle.read())
            return next(csv.reader([handle.readline(2**20)]), [])
    except (OSError, UnicodeDecodeError, ValueError, RecursionError, csv.Error):
        return None


def _example(instead: Path | None) -> str:
    return f", e.g. {instead}" if instead is not None else ""
