"""Valid argument values derived from an entry's declared arguments, so tests can
build every registered thing without a hand-written list of arguments."""

from __future__ import annotations

from typing import Any

from dlcli.registry import (Bool, Entry, Float, FloatList, Int, IntList, IntTuple, Kind, Optional, Padding, Str,
                            StrList, check_args)


def sample_value(kind: Kind) -> Any:
    """A value that `kind.check` accepts, preferring small numbers away from the bounds."""
    if isinstance(kind, Optional):
        return sample_value(kind.inner)
    if isinstance(kind, Bool):
        return False
    if isinstance(kind, Int):
        low = kind.min if kind.min is not None else 1
        value = max(low, 2)
        return value if kind.max is None else min(value, kind.max)
    if isinstance(kind, Float):
        low = kind.min if kind.min is not None else 0.0
        high = kind.max if kind.max is not None else low + 1.0
        return (low + high) / 2
    if isinstance(kind, IntTuple):
        return max(kind.min, 2)
    if isinstance(kind, IntList):
        return list(range(max(kind.min, 1), max(kind.min, 1) + kind.min_len))
    if isinstance(kind, FloatList):
        return [sample_value(kind.item)] * kind.n
    if isinstance(kind, Padding):
        return "valid"
    if isinstance(kind, Str):
        return kind.choices[0] if kind.choices else "x"
    if isinstance(kind, StrList):
        return []
    raise NotImplementedError(f"no sample value for kind {type(kind).__name__}: teach tests/samples.py")


def sample_args(entry: Entry, given: dict | None = None) -> dict:
    """Defaults plus a sample value for each required argument, normalized as the validator would."""
    given = dict(given or {})
    for arg in entry.args:
        if arg.required and arg.name not in given:
            given[arg.name] = sample_value(arg.kind)
    args, problems = check_args(entry, given)
    assert not problems, f"{entry.name}: sample arguments rejected: {problems}"
    return args
