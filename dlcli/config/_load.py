"""Reading YAML safely, keeping the line of every key.

Only plain data is ever constructed (the safe loader: no Python object tags).
The document is walked node by node with a budget, so an alias bomb ("billion
laughs") or a deeply nested file is refused instead of exhausting memory.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from dlcli.errors import ConfigError, Problem, short_repr, shorten
from dlcli.file_access import refusal, reported, what_is

MAX_BYTES = 1_000_000
MAX_NODES = 50_000
MAX_DEPTH = 50
MAX_NUMBER_CHARS = 100  # int64 needs 19 digits; base 60 (`1:2:3`) reads in quadratic time


class _SafeLoader(yaml.SafeLoader):
    """The safe loader, plus `1e-3` read as a float (YAML 1.1 wants `1.0e-3`)."""

    composed = 0

    def compose_node(self, parent, index):
        """Count keys and values as they are read: a megabyte of small values is refused at
        MAX_NODES instead of being read whole first (seconds of pure-Python parsing)."""
        self.composed += 1
        if self.composed > MAX_NODES:
            raise yaml.composer.ComposerError(
                None, None, f"the document has more than {MAX_NODES:,} keys and values; a config is small",
                self.peek_event().start_mark)
        return super().compose_node(parent, index)

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        """Merge keys (<<), expanded here rather than by PyYAML (whose order changed between
        releases), once the entries they make are counted: `<<: [*m, *m]` nested n deep makes
        2**n entries (a merge bomb). Of the merged mappings the first listed wins; the
        mapping's own keys override them all. The merged entries come first and
        `node.merged` counts them."""
        own = [(key, value) for key, value in node.value if key.tag != _MERGE]
        sources = [value for key, value in node.value if key.tag == _MERGE]
        if not sources:
            return
        if _merged_size(node, {}) > MAX_NODES:
            raise yaml.constructor.ConstructorError(
                None, None, f"merge keys (<<) make more than {MAX_NODES:,} entries; a config is small",
                node.start_mark)
        merged, seen = [], set()
        for value in sources:
            for source in value.value if isinstance(value, yaml.SequenceNode) else [value]:
                if not isinstance(source, yaml.MappingNode):
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"expected a mapping or a list of mappings to merge (<<), but found {source.id}",
                        source.start_mark)
                self.flatten_mapping(source)
                for key, item in source.value:
                    name = (key.tag, key.value) if isinstance(key, yaml.ScalarNode) else id(key)
                    if name not in seen:
                        seen.add(name)
                        merged.append((key, item))
        node.value = merged + own
        node.merged = len(merged)


_MERGE = "tag:yaml.org,2002:merge"
_SURROGATE = re.compile("[\ud800-\udfff]")


def _merged_size(node: yaml.MappingNode, sizes: dict) -> int:
    """Entries of a mapping once its merge keys are expanded (each source counted once)."""
    if id(node) not in sizes:
        total = 0
        for key, value in node.value:
            if key.tag != _MERGE:
                total += 1
                continue
            for source in value.value if isinstance(value, yaml.SequenceNode) else [value]:
                if isinstance(source, yaml.MappingNode):  # anything else: PyYAML's error follows
                    total += _merged_size(source, sizes)
        sizes[id(node)] = total
    return sizes[id(node)]


class _SafeDumper(yaml.SafeDumper):
    """The safe dumper with the loader's own rules: a string that _SafeLoader would read as
    something else (`'1e3'`, a float to it) is written quoted, so a dump reads back the same."""


_EXPONENT_FLOAT = re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
for _rules in (_SafeLoader, _SafeDumper):
    _rules.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789"))


def dump_yaml(data: Any) -> str:
    """YAML text of plain data that `parse_yaml` reads back as the same data."""
    return yaml.dump(data, Dumper=_SafeDumper, sort_keys=False, default_flow_style=None, width=100,
                     allow_unicode=False)

Lines = dict  # path tuple -> 1-based line number
OBJECT_TAGS = ("invalid YAML: tags that create objects are not allowed; a config holds plain data "
               "(mappings, lists, strings, numbers, booleans)")


def read_config_file(path: str | Path) -> tuple[Any, Lines, str]:
    """Read and parse a config file. Returns (data, lines, source name)."""
    path = Path(path)
    source = str(path)
    with reported("access it", path):  # a folder above it this user may not enter, a loop of links, a name too long
        kind = what_is(path)
    if kind is None:
        raise ConfigError([Problem((), f"config file not found (looked for {path.resolve()})")], source)
    if kind == "folder":
        raise ConfigError([Problem((), f"expected a YAML file, received a directory{_run_hint(path)}")], source)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_BYTES + 1)  # no more: the file may be gigabytes
    except OSError as err:
        raise ConfigError([Problem((), f"cannot read the file: {refusal(err)}")], source) from None
    if len(raw) > MAX_BYTES:
        raise ConfigError([Problem((), f"the file is larger than {MAX_BYTES:,} bytes; a config is a "
                                       f"small text file")], source)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        from dlcli.files import file_kind

        kind = file_kind(path)
        run = path.parent.parent if path.parent.name == "checkpoints" else path  # a run's checkpoint: the run
        hint = (f"; this is {kind}" if kind else "") + (
            f"; to continue the run of a checkpoint: dlcli train --resume {shlex.quote(str(run))}"
            if kind == "a torch file" else "")
        raise ConfigError([Problem((), f"not a UTF-8 text file (byte {err.start}); expected YAML text{hint}")],
                          source) from None
    data, lines = parse_yaml(text, source)
    return data, lines, source


def _run_hint(folder: Path) -> str:
    """What to run instead, where a folder given as a config is a run directory."""
    try:
        if what_is(folder / "checkpoints") != "folder":
            return ""
        again = what_is(folder / "config.yaml") == "file"
    except OSError:  # a folder this user may not look into: no hint
        return ""
    return (f"; to continue that run: dlcli train --resume {shlex.quote(str(folder))}"
            + (f"; to train its config again: dlcli train {shlex.quote(str(folder / 'config.yaml'))}" if again else ""))


def parse_yaml(text: str, source: str = "<string>") -> tuple[Any, Lines]:
    """Parse one YAML document into plain data and a {path: line} map."""
    if "\x00" in text:
        raise ConfigError([Problem((), "the file contains NUL bytes; expected YAML text")], source)
    loader = None
    try:
        loader = _SafeLoader(text)  # its reader already refuses non-printable characters
        node = loader.get_single_node()
        if node is None:
            raise ConfigError([Problem((), "the file is empty; expected a mapping with sections "
                                           "model, data, optimizer, loss, trainer")], source)
        lines: Lines = {}
        data = _Builder(loader, source, lines).build(node, (), 0)
    except yaml.YAMLError as err:
        raise ConfigError([Problem((), _yaml_message(err), _yaml_where(err, source))], source) from None
    except RecursionError:
        raise ConfigError([Problem((), "the document is nested too deeply")], source) from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, lines


_FLOW = {"while parsing a flow mapping": ("{", "}"), "while parsing a flow sequence": ("[", "]")}


def _open_bracket(err: yaml.YAMLError) -> tuple[str, str, Any, Any] | None:
    """For an error inside `{...}` or `[...]`: (opening, closing, where it opened, where the parser
    gave up). A bracket left open is found only lines later, where the next key's ':' arrives."""
    brackets = _FLOW.get(getattr(err, "context", None))
    opened, gave_up = getattr(err, "context_mark", None), getattr(err, "problem_mark", None)
    if brackets is None or opened is None or gave_up is None:
        return None
    return (*brackets, opened, gave_up)


def _yaml_where(err: yaml.YAMLError, source: str) -> str:
    bracket = _open_bracket(err)
    mark = bracket[2] if bracket else getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    return f"{source}:{mark.line + 1}" if mark is not None else source


def _yaml_message(err: yaml.YAMLError) -> str:
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    context = getattr(err, "context", None)
    # PyYAML's problem may quote the input (`found undefined alias 'a...'`)
    text = f"invalid YAML: {shorten(problem, 200)}" + (f" ({shorten(context, 200)})" if context else "")
    bracket = _open_bracket(err)
    if bracket:
        opening, closing, opened, gave_up = bracket
        if gave_up.line > opened.line:
            text = (f"invalid YAML: the '{opening}' opened at line {opened.line + 1}, column {opened.column + 1} is "
                    f"not closed before line {gave_up.line + 1}, column {gave_up.column + 1}, where the parser "
                    f"{shorten(problem, 200)}; close it with '{closing}' (or add the missing ',')")
        else:
            text = (f"invalid YAML: {shorten(problem, 200)} at column {gave_up.column + 1}, inside the "
                    f"'{opening}' opened at column {opened.column + 1}")
    if "could not determine a constructor" in str(err):
        text = OBJECT_TAGS
    return text


_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, source: str, lines: Lines):
        self.loader, self.source, self.lines = loader, source, lines
        self.nodes = 0

    def fail(self, node, message: str, path: tuple = ()):
        raise ConfigError([Problem(path, message, f"{self.source}:{node.start_mark.line + 1}")], self.source)

    def build(self, node: yaml.Node, path: tuple, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.fail(node, f"the document has more than {MAX_NODES:,} values (an alias bomb?); "
                            f"a config is small")
        if depth > MAX_DEPTH:
            self.fail(node, f"the document is nested more than {MAX_DEPTH} levels deep")
        self.lines.setdefault(path, node.start_mark.line + 1)
        if not isinstance(node, yaml.ScalarNode) and node.tag not in _PLAIN_TAGS:
            self.fail(node, OBJECT_TAGS)  # built as plain data, `!!python/object/apply:f [x]` would pass as [x]
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)  # YAML merge keys (<<)
            merged = getattr(node, "merged", 0)  # the first entries, which later keys override
            out: dict = {}
            explicit: set = set()
            for index, (key_node, value_node) in enumerate(node.value):
                if not isinstance(key_node, yaml.ScalarNode):
                    self.fail(key_node, "keys must be plain names, received a list or mapping as a key")
                key = self.scalar(key_node)
                if not isinstance(key, str):
                    self.fail(key_node, f"keys must be names (strings), received {short_repr(key)}")
                if key in explicit:
                    self.fail(key_node, f"duplicate key {shorten(key, quote=True)} (the later one would silently win)",
                              path + (key,))
                if index >= merged:
                    explicit.add(key)
                self.lines[path + (key,)] = key_node.start_mark.line + 1
                out[key] = self.build(value_node, path + (key,), depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        return self.scalar(node)

    def scalar(self, node: yaml.ScalarNode) -> Any:
        """PyYAML's constructors trust the tag: `!!int three`, `!!bool maybe` or
        `!!timestamp nope` raise ValueError, KeyError, AttributeError... not YAMLError."""
        if node.tag == "tag:yaml.org,2002:int" and len(node.value) > MAX_NUMBER_CHARS:
            self.fail(node, f"a number {len(node.value):,} characters long; a config number has at most "
                            f"{MAX_NUMBER_CHARS}")
        try:
            value = self.loader.construct_object(node, deep=True)
        except (ValueError, KeyError, IndexError, AttributeError, OverflowError):
            self.fail(node, f"invalid YAML: {short_repr(node.value)} is not a valid "
                            f"{node.tag.rsplit(':', 1)[-1]}")
        if isinstance(value, str) and _SURROGATE.search(value):  # from escapes such as "\ud83d\ude00"
            try:  # a whole pair is one character, as in JSON
                value = value.encode("utf-16", "surrogatepass").decode("utf-16")
            except UnicodeDecodeError:
                self.fail(node, f"invalid YAML: {short_repr(value)} holds half of a UTF-16 surrogate pair, "
                                f"which is not a character")
        return value
