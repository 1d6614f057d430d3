"""Command-line overrides: `trainer.epochs=3`, `model.layers[0].filters=64`.

The path is split from the value at the first `=` (values may contain `=`); the
value is read as YAML (`3` an int, `1e-3` a float, `[3, 3]` a list, `relu` a
string). Each override is recorded so that messages name it as the source.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Callable

from dlcli.errors import ConfigError, Problem, shorten

_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[-?\d+\])*)")


def parse_path(text: str) -> tuple:
    """'model.layers[0].filters' -> ('model', 'layers', 0, 'filters'); [-1] is the last item."""
    parts: list = []
    for chunk in text.split("."):
        match = _PART.fullmatch(chunk)
        if not match:
            raise ValueError(chunk)
        parts.append(match.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(-?\d+)\]", match.group(2)))
    return tuple(parts)


def parse_override(text: str) -> tuple[tuple, Any]:
    from dlcli.config._load import parse_yaml

    where = override_where(text)
    if "=" not in text:
        raise ConfigError([Problem((), "expected key.path=value (e.g. trainer.epochs=3)", where)], "command line")
    key, _, value_text = text.partition("=")
    try:
        path = parse_path(key.strip())
    except ValueError as bad:
        raise ConfigError([Problem((), f"{shorten(key, quote=True)} is not a key path (expected names joined "
                                       f"by dots, with [N] for list items, e.g. model.layers[0].filters); "
                                       f"the bad part is {shorten(str(bad), quote=True)}", where)],
                          "command line") from None
    if value_text.strip() == "":
        value: Any = ""
    else:
        try:
            value, _ = parse_yaml(value_text, where)
        except ConfigError:
            bare = value_text.strip()
            if (bare[0], bare[-1]) in (("{", "}"), ("[", "]")):
                raise  # a whole mapping or list that YAML refuses (a duplicate key...): its message, not a string
            value = value_text  # not YAML on its own ([unclosed, a: b: c): take it as a string
    return path, value


def apply_overrides(data: dict, lines: dict, overrides: list[str], defaults: dict | None = None,
                    canonical: Callable[[], None] | None = None) -> list[Problem]:
    """Apply overrides in place. Paths through lists must exist; mapping keys are
    created (the schema check then rejects keys that do not exist). A missing key
    that `defaults` holds ({path: mapping}) starts as a copy of its default, so that
    `optimizer.lr=0.01` without an optimizer section changes the default optimizer.
    `canonical()` runs after each override: what it gave in a short form (`optimizer=sgd`, a
    layer `flatten`) is in the long form that a later override can set keys of
    (`optimizer.lr=0.5`, as after `optimizer: sgd` in the file). An override that replaces what an earlier one set inside it (`optimizer.lr=0.5
    optimizer=sgd`) is a problem: the earlier one would be silently lost."""
    defaults = defaults or {}
    problems: list[Problem] = []
    applied: list[tuple[tuple, str]] = []  # (path, override text)
    for text in overrides:
        path, value = parse_override(text)
        path = _from_the_start(data, path)
        where = override_where(text)
        lost = [earlier for inner, earlier in applied if len(inner) > len(path) and inner[: len(path)] == path]
        if lost:
            problems.append(Problem(path, f"replaces the whole value, and with it what the earlier "
                                          f"{' and '.join(map(override_where, lost))} set inside it; expected the "
                                          f"whole value first, then the keys inside it: "
                                          f"{shorten(' '.join([text, *lost]), 200)}", where))
        applied.append((path, text))
        node: Any = data
        for depth, part in enumerate(path[:-1]):
            nxt = path[depth + 1]
            if isinstance(part, int):
                if not isinstance(node, list) or not 0 <= part < len(node):
                    problems.append(Problem(path[: depth + 1], _no_item(node, part), where))
                    break
                if not isinstance(node[part], (dict, list)):
                    node[part] = {} if isinstance(nxt, str) else []
                node = node[part]
            else:
                if not isinstance(node, dict):
                    problems.append(Problem(path[:depth], f"is not a mapping; cannot set {shorten(part, quote=True)}",
                                            where))
                    break
                if part not in node or not isinstance(node[part], (dict, list)):
                    default = defaults.get(path[: depth + 1]) if part not in node else None
                    if isinstance(nxt, int):
                        node[part] = []
                    else:
                        node[part] = copy.deepcopy(default) if default is not None else {}
                    lines[path[: depth + 1]] = where  # a key the override created is blamed on it
                node = node[part]
        else:
            last = path[-1]
            if isinstance(last, int):
                if not isinstance(node, list) or not 0 <= last < len(node):
                    problems.append(Problem(path, _no_item(node, last), where))
                    continue
            elif not isinstance(node, dict):
                problems.append(Problem(path[:-1], f"is not a mapping; cannot set {shorten(last, quote=True)}",
                                        where))
                continue
            node[last] = value
            for known in [p for p in lines if p[: len(path)] == path]:
                del lines[known]
            lines[path] = where
            if canonical is not None:
                canonical()
    return problems


def override_where(text: str) -> str:
    """`override 'trainer.epochs=3'`: where a problem comes from (a long override cut)."""
    return f"override {shorten(text, 100, quote=True)}"


def _no_item(node: Any, index: int) -> str:
    if isinstance(node, list):
        return f"no item [{index}]: the list has {len(node)} item{'s' if len(node) != 1 else ''}"
    return f"is not a list; cannot take item [{index}]"



def _from_the_start(data: Any, path: tuple) -> tuple:
    """The path with each negative list index counted from the start ([-1] of 3 items: [2]),
    where the list exists; an index out of range stays as given, for the message."""
    out, node = [], data
    for part in path:
        if isinstance(part, int) and isinstance(node, list) and -len(node) <= part < 0:
            part += len(node)
        out.append(part)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    return tuple(out)
