"""Where each key of a resolved config came from: its file and line, or the override that set it.

Problems found after validation (in the data the config names, on the device it asks for) are
reported as config problems are, `cfg.yaml:12: data.path: ...`, through a `ConfigOrigin`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlcli.errors import ConfigError, DlcliError, Problem, format_path, shorten


def where_in(lines: dict, source: str, path: tuple) -> str:
    """`file:line` of `path` (or of the closest key above it that has one), `override '...'`
    for a key an override set, or the file alone."""
    for cut in range(len(path), -1, -1):
        found = lines.get(tuple(path[:cut]))
        if found is not None:
            return found if isinstance(found, str) else f"{source}:{found}"
    return source


@dataclass(frozen=True)
class ConfigOrigin:
    """A resolved config's source: the file as named, each key's line, and the config as written
    (overrides applied; before defaults fill it and paths are made absolute)."""

    source: str
    lines: dict
    written: Any

    def where(self, path: tuple) -> str:
        return where_in(self.lines, self.source, path)

    def value(self, path: tuple) -> Any:
        """The value written at `path` (None where the config leaves it out)."""
        value = self.written
        for part in path:
            if isinstance(value, dict) and part in value:
                value = value[part]
            elif isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
                value = value[part]
            else:
                return None
        return value

    def problem(self, path: tuple, message: str) -> Problem:
        """A Problem at `path`; a message that starts with the key does not repeat it, and a
        relative path that is not found says where it was looked for."""
        message = message.removeprefix(f"{format_path(path)}: ")
        return Problem(tuple(path), message + self._relative_path_note(path, message), self.where(path))

    def located(self, err: DlcliError) -> DlcliError:
        """`err` as a config problem at its key's file and line (a ConfigError), or `err` as it is
        when it names no key."""
        if err.key is None or isinstance(err, ConfigError):
            return err
        return ConfigError([self.problem(err.key, str(err))], self.source)

    def _relative_path_note(self, path: tuple, message: str) -> str:
        """Relative data paths are read from the current directory, not the config's folder:
        where a written relative path is not found, say so, and point at the file of that name
        next to the config when there is one."""
        written = self.value(path)
        if not (len(path) == 2 and path[0] == "data" and _is_path_arg(self.value(("data", "dataset")), path[1])):
            return ""
        if not isinstance(written, str) or not written or os.path.isabs(os.path.expanduser(written)):
            return ""
        cwd = os.getcwd()
        looked = os.path.abspath(written)
        if os.path.exists(looked):
            return ""
        looked_for = "" if looked in message else f"looked for {looked}: "  # the loaders' messages start with it
        note = (f" ({looked_for}a relative {format_path(path)}, {shorten(written, quote=True)}, is read from the "
                f"current directory {cwd})")
        beside = Path(self.source).resolve().parent / written
        if os.path.exists(beside) and str(beside) != looked:
            note += f"; HINT: {beside} exists next to the config: set {format_path(path)}: {beside}"
        return note


def _is_path_arg(dataset: Any, name: object) -> bool:
    """Whether data.`name` of data set `dataset` is a file or folder."""
    from dlcli.data.datasets import DATASETS
    from dlcli.registry import FilePath, Optional

    entry = DATASETS.lookup(dataset)
    arg = entry.arg(name) if entry is not None and isinstance(name, str) else None
    kind = arg.kind.inner if arg is not None and isinstance(arg.kind, Optional) else getattr(arg, "kind", None)
    return isinstance(kind, FilePath)
