"""The one registry mechanism: layers, activations, optimizers, schedulers, losses,
metrics and datasets are all `Registry` instances of frozen `Entry` records.

Each entry declares its arguments once (`Arg`: name, kind, default, help). The
config validator, `dlcli list-layers`, the model summary and the tests all read
that declaration; nothing else lists arguments. Nothing here imports torch.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from dlcli.errors import closest, did_you_mean, short_repr, shorten


class _Required:
    def __repr__(self) -> str:
        return "required"


REQUIRED: Any = _Required()


class KindError(ValueError):
    """A value does not fit its declared kind; the message says what was expected."""


# a number written out (not nan or inf): one way to match each string, so linear time
NUMBER_RE = re.compile(r"^[-+]?(\d+(?:\.\d*)?|\.\d+)([eE][-+]?\d+)?$")


class Kind:
    """What values an argument accepts. `check` returns the normalized value or
    raises KindError with the expectation (the caller adds `received: ...`)."""

    describe = "any"

    def check(self, value: Any) -> Any:
        return value

    def __str__(self) -> str:
        return self.describe


class Int(Kind):
    def __init__(self, min: int | None = None, max: int | None = None):
        self.min, self.max = min, max
        bounds = []
        if min is not None:
            bounds.append(f">= {min}")
        if max is not None:
            bounds.append(f"<= {max}")
        self.describe = "int" + (f" ({', '.join(bounds)})" if bounds else "")

    def check(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
                value = int(value)
            else:
                raise KindError(f"expected an integer{self._bounds()}")
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise KindError(f"expected an integer{self._bounds()}")
        return value

    def _bounds(self) -> str:
        if self.min is not None and self.max is not None:
            return f" between {self.min} and {self.max}"
        if self.min is not None:
            return " >= 0" if self.min == 0 else (" > 0" if self.min == 1 else f" >= {self.min}")
        if self.max is not None:
            return f" <= {self.max}"
        return ""


class Float(Kind):
    def __init__(self, min: float | None = None, max: float | None = None, min_open: bool = False,
                 max_open: bool = False):
        self.min, self.max, self.min_open, self.max_open = min, max, min_open, max_open
        self.describe = "float" + (f" {self._bounds()}" if self._bounds() else "")

    def _bounds(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f"{'>' if self.min_open else '>='} {self.min:g}")
        if self.max is not None:
            parts.append(f"{'<' if self.max_open else '<='} {self.max:g}")
        return "(" + ", ".join(parts) + ")" if parts else ""

    def check(self, value: Any) -> float:
        if isinstance(value, str) and NUMBER_RE.match(value.strip()):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise KindError(f"expected a number {self._bounds()}".rstrip())
        value = float(value)
        if not math.isfinite(value):
            raise KindError("expected a finite number")
        too_low = self.min is not None and (value <= self.min if self.min_open else value < self.min)
        too_high = self.max is not None and (value >= self.max if self.max_open else value > self.max)
        if too_low or too_high:
            raise KindError(f"expected a number {self._bounds()}")
        return value


class Bool(Kind):
    describe = "bool"

    def check(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise KindError("expected true or false")
        return value


class AutoBool(Kind):
    """`auto`, true or false (YAML also reads on/off/yes/no as booleans)."""

    describe = "auto | true | false"

    def check(self, value: Any) -> Any:
        if value == "auto" or isinstance(value, bool):
            return value
        raise KindError("expected auto, true or false")


class Str(Kind):
    def __init__(self, choices: Iterable[str] | Callable[[], Iterable[str]] | None = None, empty: bool = True):
        self._choices, self.empty = choices, empty
        self.describe = "str"

    @property
    def choices(self) -> list[str] | None:
        if self._choices is None:
            return None
        return list(self._choices() if callable(self._choices) else self._choices)

    def __str__(self) -> str:
        choices = self.choices
        return " | ".join(choices) if choices and len(choices) <= 6 else "str"

    def check(self, value: Any) -> str:
        choices = self.choices
        if not isinstance(value, str):
            raise KindError("expected one of: " + ", ".join(choices) if choices else "expected a string")
        if choices is not None and value not in choices:
            raise KindError(f"expected one of: {', '.join(choices)};{did_you_mean(value, choices)}".rstrip(";"))
        if not self.empty and not value.strip():
            raise KindError("expected a non-empty string (the current directory is '.')")
        return value


class FilePath(Str):
    """A file or folder: made absolute (against the current directory, ~ expanded) when the
    config is resolved, so the run's config.yaml and checkpoints name the data wherever
    evaluate or --resume are run from, and messages say where it was looked for."""

    def __init__(self):
        super().__init__()
        self.describe = "path"

    def __str__(self) -> str:
        return "path"

    def check(self, value: Any) -> str:
        import os

        value = super().check(value)
        if not value:
            raise KindError("expected a path, received an empty string")
        return os.path.abspath(os.path.expanduser(value))


class Optional(Kind):
    """`null` or the inner kind."""

    def __init__(self, inner: Kind):
        self.inner = inner

    def __str__(self) -> str:
        return f"{self.inner} | null"

    def check(self, value: Any) -> Any:
        return None if value is None else self.inner.check(value)


class IntTuple(Kind):
    """An int (repeated `n` times) or a list of exactly `n` ints: `3` or `[3, 3]`."""

    def __init__(self, n: int, min: int = 1):
        self.n, self.min = n, min
        self.describe = "int" if n == 1 else f"int | [{', '.join(['int'] * n)}]"

    def check(self, value: Any) -> tuple[int, ...]:
        expected = (f"expected an integer >= {self.min}"
                    + (f" or a list of {self.n} such integers" if self.n > 1 else ""))
        if isinstance(value, (list, tuple)):
            if len(value) != self.n:
                raise KindError(expected)
            items = list(value)
        else:
            items = [value] * self.n
        for item in items:
            if isinstance(item, bool) or not isinstance(item, int) or item < self.min:
                raise KindError(expected)
        return tuple(items)


class IntList(Kind):
    """A list of ints, e.g. an input shape `[1, 28, 28]`."""

    def __init__(self, min_len: int = 1, max_len: int = 8, min: int = 1):
        self.min_len, self.max_len, self.min = min_len, max_len, min
        self.describe = "[int, ...]"

    def check(self, value: Any) -> list[int]:
        expected = (f"expected a list of {self.min_len} to {self.max_len} integers >= {self.min}")
        if not isinstance(value, (list, tuple)) or not self.min_len <= len(value) <= self.max_len:
            raise KindError(expected)
        for item in value:
            if isinstance(item, bool) or not isinstance(item, int) or item < self.min:
                raise KindError(expected)
        return list(value)


class Permutation(Kind):
    """The sample axes in a new order, numbered from 1 as Keras does: `[2, 1]`, `[1, 3, 2]`
    (the batch axis stays first and is not numbered)."""

    describe = "[int, ...] (a permutation of 1..n)"

    def check(self, value: Any) -> list[int]:
        expected = "expected a permutation of the sample axes 1..n (numbered from 1, as in Keras), e.g. [2, 1]"
        if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= 8:
            raise KindError(expected)
        if any(isinstance(item, bool) or not isinstance(item, int) for item in value) \
                or sorted(value) != list(range(1, len(value) + 1)):
            raise KindError(expected)
        return list(value)


class FloatList(Kind):
    def __init__(self, n: int, min: float = 0.0, max: float = 1.0, max_open: bool = True):
        self.n = n
        self.item = Float(min=min, max=max, max_open=max_open)
        self.describe = f"[{', '.join(['float'] * n)}]"

    def check(self, value: Any) -> list[float]:
        expected = f"expected a list of {self.n} numbers {self.item._bounds()}"
        if not isinstance(value, (list, tuple)) or len(value) != self.n:
            raise KindError(expected)
        try:
            return [self.item.check(v) for v in value]
        except KindError:
            raise KindError(expected) from None


class Weights(Kind):
    """One weight per class: at least 2 numbers >= 0, not all 0."""

    describe = "[float, ...] (>= 0, one per class)"

    def check(self, value: Any) -> list[float]:
        expected = "expected a list of one weight per class, numbers >= 0 and not all 0 (e.g. [1.0, 5.0])"
        if not isinstance(value, (list, tuple)) or not 2 <= len(value) <= 100_000:
            raise KindError(expected)
        item = Float(min=0.0)
        try:
            weights = [item.check(v) for v in value]
        except KindError:
            raise KindError(expected) from None
        if not any(weights):
            raise KindError(expected)
        return weights


class Padding(Kind):
    describe = "valid | same | int"

    def check(self, value: Any) -> Any:
        if value in ("valid", "same"):
            return value
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        raise KindError("expected 'valid', 'same' or an integer >= 0")


class StrList(Kind):
    def __init__(self, choices: Callable[[], Iterable[str]] | None = None):
        self._choices = choices
        self.describe = "[str, ...]"

    def check(self, value: Any) -> list[str]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise KindError("expected a list of names")
        if self._choices is not None:
            choices = list(self._choices())
            for v in value:
                if v not in choices:
                    raise KindError(f"unknown name {short_repr(v)}; expected names from: {', '.join(choices)};"
                                    f"{did_you_mean(v, choices)}".rstrip(";"))
        return value


# What a `dlcli train --resume` override may change in a run (Arg.resume), in the order its refusal of
# any other override names them: how long (length), where and how fast (machine), what it shows
# (display), what it logs and evaluates (records), where its data files (files) and downloads
# (cache) are now. Never what the run computes: the rest must stay as trained.
RESUME_CHANGES = ("length", "machine", "display", "records", "files", "cache")


@dataclass(frozen=True)
class Arg:
    """One declared argument: validation, listings and docs all read this. `known_as`: names other
    libraries give it (Keras' learning_rate for lr), answered with a did-you-mean, not accepted.
    `example`: a value a required argument takes, for the example `dlcli list` derives.
    `resume`: what an override of it changes on `dlcli train --resume` (one of RESUME_CHANGES);
    empty: a resume refuses it, since it changes what the run computes."""

    name: str
    kind: Kind
    default: Any = REQUIRED
    help: str = ""
    known_as: tuple[str, ...] = ()
    example: Any = None
    resume: str = ""

    def __post_init__(self):
        if self.resume and self.resume not in RESUME_CHANGES:
            raise ValueError(f"Arg {self.name!r}: resume={self.resume!r} is not one of {', '.join(RESUME_CHANGES)}")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class Entry:
    """One registered building block."""

    name: str
    help: str
    args: tuple[Arg, ...] = ()
    aliases: tuple[str, ...] = ()
    family: str = ""
    build: Callable[..., Any] | None = None
    infer: Callable[..., Any] | None = None  # layers: (args, in_shape) -> out_shape
    cross_check: Callable[[dict], list] | None = None  # rules between arguments: (args) -> [(key, message)]
    example: str = ""
    meta: dict = field(default_factory=dict)

    def arg(self, name: str) -> Arg | None:
        return next((a for a in self.args if a.name == name), None)

    def defaults(self) -> dict[str, Any]:
        return {a.name: a.default for a in self.args if not a.required}

    def example_args(self) -> dict[str, Any]:
        """The least a config writes for this entry: each required argument with its example value."""
        return {a.name: a.example for a in self.args if a.required}


class Registry:
    """Named entries with explicit aliases; registering a name twice is an error."""

    def __init__(self, kind: str, meta_keys: Iterable[str] | None = None):
        """`meta_keys`: the facts (Entry.meta) an entry of this registry may declare; another key
        (a misspelt one, which the code reading the facts would never see) is refused at
        registration. None: any."""
        self.kind = kind  # "layer", "optimizer", ... (used in messages)
        self.meta_keys = None if meta_keys is None else frozenset(meta_keys)
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}
        self._elsewhere: dict[str, str] = {}  # names other libraries use for what an entry's argument does

    def elsewhere(self, name: str, how: str) -> None:
        """`name` (Keras' Bidirectional, say) is not an entry here, and `how` says what does its job."""
        self._elsewhere[name] = how

    def register(self, name: str, *, help: str, args: Iterable[Arg] = (), aliases: Iterable[str] = (),
                 family: str = "", infer: Callable | None = None, cross_check: Callable | None = None,
                 example: str = "", **meta: Any) -> Callable[[Callable], Callable]:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise ValueError(f"registry names are lowercase snake case, got {name!r}")

        def decorator(build: Callable) -> Callable:
            entry = Entry(name=name, help=help, args=tuple(args), aliases=tuple(aliases), family=family,
                          build=build, infer=infer, cross_check=cross_check, example=example, meta=dict(meta))
            self.add(entry)
            return build

        return decorator

    def add(self, entry: Entry) -> Entry:
        unknown = sorted(set(entry.meta) - self.meta_keys) if self.meta_keys is not None else []
        if unknown:
            raise ValueError(f"{self.kind} {entry.name!r}: unknown meta {', '.join(unknown)}; a {self.kind} "
                             f"declares {', '.join(sorted(self.meta_keys)) or 'none'}")
        unshown = [a.name for a in entry.args if a.required and a.example is None]
        if unshown and not entry.example:
            raise ValueError(f"{self.kind} {entry.name!r}: required argument {', '.join(unshown)} declares no "
                             f"example value, so `dlcli list` could not show a working example; give Arg(example=...) "
                             f"or the entry an example")
        for key in (entry.name, *entry.aliases):
            if key in self._entries or key in self._aliases:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
        self._entries[entry.name] = entry
        for alias in entry.aliases:
            self._aliases[alias] = entry.name
        return entry

    def lookup(self, name: Any) -> Entry | None:
        if not isinstance(name, str):
            return None
        return self._entries.get(self._aliases.get(name, name))

    def get(self, name: Any) -> Entry:
        entry = self.lookup(name)
        if entry is None:
            raise KeyError(self.unknown_message(name))
        return entry

    def unknown_message(self, name: Any) -> str:
        if isinstance(name, str) and name in self._elsewhere:
            return f"unknown {self.kind} {short_repr(name)}: {self._elsewhere[name]}"
        match = closest(name, self.all_names())
        suggested = self._aliases.get(match, match)  # the canonical name, not the alias
        hint = f" did you mean {shorten(suggested, quote=True)}?" if match is not None else ""
        return (f"unknown {self.kind} {short_repr(name)};{hint} valid {self.plural}: "
                f"{', '.join(self.names())}")

    @property
    def plural(self) -> str:
        """What `dlcli list` calls the entries: layers, losses (not losss)."""
        return self.kind + ("es" if self.kind.endswith("s") else "s")

    def names(self) -> list[str]:
        return list(self._entries)

    def all_names(self) -> list[str]:
        return [*self._entries, *self._aliases]

    def entries(self) -> list[Entry]:
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return self.lookup(name) is not None

    def __iter__(self):
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)


def check_args(entry: Entry, given: dict[str, Any], reserved: Iterable[str] = ()) -> tuple[dict, list]:
    """Check `given` against `entry.args`.

    Returns (normalized args with defaults filled, problems) where each problem is
    (key or None, message). Keys in `reserved` are checked by the caller, given or missing.
    """
    problems: list[tuple[Any, str]] = []
    out: dict[str, Any] = {}
    reserved = set(reserved)
    names = [a.name for a in entry.args]
    for key, value in given.items():
        if key in reserved:
            continue
        arg = entry.arg(key) if isinstance(key, str) else None
        if arg is None:
            valid = ", ".join(names) if names else "none"
            known = next((a for a in entry.args if key in a.known_as), None)
            hint = f" did you mean '{known.name}' (dlcli's argument for {key})?" if known else did_you_mean(key, names)
            problems.append((key, f"unknown argument {shorten(str(key), quote=True)} for {entry.name};{hint} "
                                  f"valid arguments: {valid}"))
            continue
        try:
            out[key] = arg.kind.check(value)
        except KindError as err:
            problems.append((key, f"{err}; received: {short_repr(value)}"))
    for arg in entry.args:
        if arg.name in given or arg.name in reserved:
            continue
        if arg.required:
            problems.append((None, f"missing required argument '{arg.name}' ({arg.kind}) for {entry.name}"))
        else:  # defaults go through the kind too, so `strides: 1` becomes (1, 1)
            default = copy.deepcopy(arg.default)
            out[arg.name] = default if default is None else arg.kind.check(default)
    if not problems and entry.cross_check is not None:  # each argument is fine on its own
        problems.extend(entry.cross_check(out))
    return out, problems
