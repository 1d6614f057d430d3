"""One error family for everything the user can get wrong.

Every `DlcliError` is bad input (config, data, checkpoint, command line): the CLI
prints its message and exits with status 2, without a traceback.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence


class DlcliError(Exception):
    """Bad input: reported to the user as a message, exit status 2.

    `key`: the config key the problem is about (`('data', 'path')`), where it is known: a
    command that read the config file reports the error at that key's file and line
    (`dlcli.config.ConfigOrigin.located`). The message reads on its own without it."""

    exit_code = 2
    key: tuple | None = None

    def __init__(self, *args: object, key: tuple | None = None):
        super().__init__(*args)
        if key is not None:
            self.key = tuple(key)

    def at_key(self, key: tuple) -> "DlcliError":
        """This error, about config key `key` unless it already names one."""
        if self.key is None:
            self.key = tuple(key)
        return self


class DataError(DlcliError):
    """A data set that cannot be read or does not fit the model."""


class CheckpointError(DlcliError):
    """A checkpoint that is missing, broken, unsafe or does not fit."""


class RunError(DlcliError):
    """A run directory or training run that cannot go on (NaN loss, full disk...)."""


class OutputError(DlcliError):
    """An --out that would replace something the user had: an input, a checkpoint, a run's
    records, or a file that is not an earlier output of the same command."""


def install_hint(packages: Iterable[str], extra: str | None = None) -> str:
    """How to install what a command needs. An extra of dlcli's installs from its checkout
    (`pip install -e '.[onnx]'`): the name dlcli on the public index is another project's package."""
    packages = " ".join(packages)
    if extra is None:
        return f"pip install {packages}"
    return f"pip install -e '.[{extra}]' in the dlcli checkout (or pip install {packages})"


def closest(name: object, choices: Iterable[str]) -> str | None:
    """The choice closest to `name` (case aside), or None when none is close."""
    if not isinstance(name, str):
        return None
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None


def did_you_mean(name: object, choices: Iterable[str]) -> str:
    """Return ` did you mean 'x'?` for the closest choice, or ''."""
    match = closest(name, choices)
    return f" did you mean {shorten(match, quote=True)}?" if match is not None else ""


def format_path(path: Sequence[object]) -> str:
    """('model', 'layers', 2, 'kernel_size') -> 'model.layers[2].kernel_size'."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + shorten(str(part))
    return out or "<top level>"


# What a message echoes of the user's input (values, key names, overrides, file contents) is
# bounded: a long one is cut and says how long it was, `'aaaa...' (12,000 characters)`, so that
# a huge value cannot turn a message into megabytes. Short ones are echoed as they are.
ECHO_LIMIT = 60


def shorten(text: str, limit: int = ECHO_LIMIT, quote: bool = False) -> str:
    """`text` as it is (in single quotes with quote=True), or its first `limit` characters
    and its length: `aaaa... (12,000 characters)`."""
    q = "'" if quote else ""
    if len(text) <= limit:
        return f"{q}{text}{q}"
    return f"{q}{text[:limit - 3]}...{q} ({len(text):,} characters)"


# Characters a terminal acts on rather than shows: C0 controls, DEL, C1 controls (\x9b starts a
# sequence as ESC [ does) and the bidirectional overrides that reorder what is shown. Names (a run's,
# a class folder's) are refused with one; printed text has them made visible (dlcli.cli._app.visible).
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def short_repr(value: object, limit: int = ECHO_LIMIT) -> str:
    """repr() that never floods a terminal: `'aaaa...' (12,000 characters)`,
    `[1, 1, 1...] (100,000 items, 300,000 characters)`, `123456... (99 digits)`."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print (sys.get_int_max_str_digits)
        return f"<an integer of about {int(value.bit_length() * 0.30103):,} digits>"
    except Exception:  # pragma: no cover - exotic objects
        text = f"<{type(value).__name__}>"
    if len(text) <= limit:
        return text
    if isinstance(value, str):
        return f"{text[:limit - 4]}...{text[0]} ({len(value):,} characters)"  # text[0]: the quote repr chose
    if isinstance(value, (list, tuple, dict, set)):
        close = {"[": "]", "(": ")", "{": "}"}.get(text[0], "")
        items = f"{len(value):,} item{'s' if len(value) != 1 else ''}"
        return f"{text[:limit - 3 - len(close)]}...{close} ({items}, {len(text):,} characters)"
    if isinstance(value, int):
        return f"{text[:limit - 3]}... ({len(text.lstrip('-')):,} digits)"
    return f"{text[:limit - 3]}... ({len(text):,} characters)"


def short_list(items: Iterable[object], show: Callable[[object], str] = lambda item: shorten(str(item)),
               limit: int = 20, sep: str = ", ") -> str:
    """At most `limit` items, each through `show`, joined by `sep`: `a, b, ... (1,234 in all)`."""
    items = list(items)
    shown = sep.join(show(item) for item in items[:limit])
    return shown + (f"{sep}... ({len(items):,} in all)" if len(items) > limit else "")


def short_size(nbytes: int) -> str:
    """A byte count as people read it: `512 KiB`, `3.4 MiB`, `21.7 GiB`."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:,.1f} {unit}"
    return f"{nbytes:,} bytes"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: where, and what."""

    path: tuple
    message: str
    where: str = ""  # "file.yaml:12" or "override 'a.b=1'"

    def render(self) -> str:
        location = f"{self.where}: " if self.where else ""
        return f"{location}{format_path(self.path)}: {self.message}"


MAX_PROBLEMS_SHOWN = 20  # thousands of bad entries: the first ones say enough


class ConfigError(DlcliError):
    """Every problem found in a config, reported together (`problems` holds them all; the
    message shows the first MAX_PROBLEMS_SHOWN)."""

    def __init__(self, problems: list[Problem], source: str = "config"):
        self.problems = list(problems)
        self.source = source
        count = len(self.problems)
        header = f"{source}: {count} problem{'s' if count != 1 else ''}"
        lines = [header] + [f"  - {p.render()}" for p in self.problems[:MAX_PROBLEMS_SHOWN]]
        if count > MAX_PROBLEMS_SHOWN:
            lines.append(f"  ... and {count - MAX_PROBLEMS_SHOWN:,} more problems")
        super().__init__("\n".join(lines))
