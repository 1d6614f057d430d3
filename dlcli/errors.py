"""One error family for everything the user can get wrong.

Every `DlcliError` is bad input (config, data, checkpoint, command line): the CLI
prints its message and exits with status 2, without a traceback.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable, Sequence


class DlcliError(Exception):
    """Bad input: reported to the user as a message, exit status 2."""

    exit_code = 2


class DataError(DlcliError):
    """A data set that cannot be read or does not fit the model."""


class CheckpointError(DlcliError):
    """A checkpoint that is missing, broken, unsafe or does not fit."""


class RunError(DlcliError):
    """A run directory or training run that cannot go on (NaN loss, full disk...)."""


def did_you_mean(name: object, choices: Iterable[str]) -> str:
    """Return ` did you mean 'x'?` for the closest choice, or ''."""
    if not isinstance(name, str):
        return ""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return f" did you mean '{lowered[close[0]]}'?" if close else ""


def format_path(path: Sequence[object]) -> str:
    """('model', 'layers', 2, 'kernel_size') -> 'model.layers[2].kernel_size'."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<top level>"


def short_repr(value: object, limit: int = 60) -> str:
    """repr() that never floods a terminal."""
    try:
        text = repr(value)
    except Exception:  # pragma: no cover - exotic objects
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: where, and what."""

    path: tuple
    message: str
    where: str = ""  # "file.yaml:12" or "override 'a.b=1'"

    def render(self) -> str:
        location = f"{self.where}: " if self.where else ""
        return f"{location}{format_path(self.path)}: {self.message}"


class ConfigError(DlcliError):
    """Every problem found in a config, reported together."""

    def __init__(self, problems: list[Problem], source: str = "config"):
        self.problems = list(problems)
        self.source = source
        count = len(self.problems)
        header = f"{source}: {count} problem{'s' if count != 1 else ''}"
        lines = [header] + [f"  - {p.render()}" for p in self.problems]
        super().__init__("\n".join(lines))
