"""Seeded config mutations: thousands of broken (and some still valid) configs made
from the shipped ones in `configs/`.

Every case is a pure function of `(SEED, index)`: `make_case(3141)` rebuilds case
3141 alone, so a failure report names a case that can be replayed without running
the others (`python tests/fuzz/config_mutations.py 3141` prints it).

Why a hand-written generator and not hypothesis: the inputs are mostly byte- and
text-level damage to real files (alias bombs, tags, invalid UTF-8, deep nesting),
which hypothesis strategies would neither generate more usefully nor shrink well
(shrinking a 1 MB YAML document is slow and the failing input is already small
to read); a plain `random.Random` per case gives an exact, fixed CI count, a
larger run from one environment variable, and no per-example deadline, health
check or example database to fight inside a fixed time budget.
"""

from __future__ import annotations

import copy
import random
import string
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

SEED = 20_251_126
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
CANARY = "@CANARY@"  # replaced by a per-run directory: object tags would create files there


def shipped_configs() -> dict[str, str]:
    """{file name: text} of every config shipped in configs/."""
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(CONFIG_DIR.glob("*.yaml"))}


_BASES = shipped_configs()
_BASE_DATA = {name: yaml.safe_load(text) for name, text in _BASES.items()}


@dataclass(frozen=True)
class Case:
    """One fuzz input: the bytes of a config file and the overrides given with it.

    `same_as` names a shipped config when the mutation keeps the meaning (re-styled,
    anchors, merge keys): the case must then resolve to that config exactly."""

    index: int
    kind: str
    content: bytes
    overrides: tuple[str, ...] = ()
    same_as: str | None = None
    stem: str = ""  # the file name without .yaml (default: case_<index>); also the default run name
    size: int = 0  # when larger than the content: the file is extended (sparse) with NUL bytes to this size

    def with_canary(self, canary_dir: str) -> "Case":
        content = self.content.replace(CANARY.encode(), canary_dir.encode())
        overrides = tuple(o.replace(CANARY, canary_dir) for o in self.overrides)
        return Case(self.index, self.kind, content, overrides, self.same_as, self.stem, self.size)

    @property
    def must_be_rejected(self) -> bool:
        """Its one change is a key that no part of a config declares: accepting it would ignore
        what the user wrote (a typo of a setting the run then trains without)."""
        return self.kind == "tree:unknown_key" and not self.overrides

    @property
    def filename(self) -> str:
        return f"{self.stem or f'case_{self.index}'}.yaml"

    def describe(self) -> str:
        size = max(len(self.content), self.size)
        more = f" ... ({size:,} bytes)" if size > 300 else ""
        return (f"case {self.index} [{self.kind}] file={self.filename!r} "
                f"overrides={[o[:80] for o in self.overrides]!r}\n  content: {self.content[:300]!r}{more}")


# ---------------------------------------------------------------- value pools

HUGE_INTS = [10**12, 2**31, 2**32, 2**53 + 1, 2**62, 2**63 - 1, 2**63, 2**64, 10**30, 10**400, -(2**63)]
SMALL_INTS = [0, -1, -3, 1, 2, 3, 7, 1000, 65536, -10**12]
FLOATS = [0.0, -0.0, 0.5, 1.5, 3.0, -2.5, 1e-300, 1e300, 1e308, float("inf"), float("-inf"), float("nan"),
          1e-3, 0.999999, 1.0, 2.0**53]
UNICODE = ["dénse", "ｄｅｎｓｅ", "conv2\u0441", "relu\u200b", "\u202erelu", "層", "🔥", "e\u0301", "Ω",
           "\u00a0", "\ufeffname", "ǅ", "ﬁlters", "ß", "İ", "tab\there", "line\nbreak",
           "[bold red]markup[/]", "[/]", "\x1b[31mred", "%s%n{0}", "../../etc/passwd", "C:\\con\\aux"]

#: odd file names, some in odd folders (the CLI prints the path; a config without `name` is named
#: after the file)
FILE_STEMS = ["a[/b]c", "x[/]", "exp[a]/config", "[bold]run", "caf\udce9", "a b", "é🔥", "name=x", "x.yaml", "%s",
              "\\", "'", '"', "~", "-x", "--help", "x" * 200, "\u202e", "[link=file:///etc/passwd]x[/link]"]

#: YAML snippets written verbatim where a value goes (one line, fit block or flow context)
RAW_VALUES = [
    # object tags: the safe loader must refuse them; run, they would create files in CANARY
    f'!!python/object/apply:os.system ["touch {CANARY}/system"]',
    f'!!python/object/apply:os.system {{args: ["touch {CANARY}/system_map"]}}',
    f'!!python/object/apply:builtins.open ["{CANARY}/open", "w"]',
    f'!!python/object/new:builtins.open ["{CANARY}/new", "w"]',
    f'!!python/object/apply:subprocess.call [["touch", "{CANARY}/call"]]',
    f'!<tag:yaml.org,2002:python/object/apply:os.system> ["touch {CANARY}/verbatim"]',
    "!!python/name:os.system", "!!python/module:os", "!!python/tuple [1, 2]", "!!python/none ''",
    "!!python/object:builtins.dict {a: 1}",
    # other tags
    "!!binary aGVsbG8gd29ybGQ=", '!!binary "!!! not base64"', "!!set {a, b}", "!!set {relu: null}",
    "!!omap [{a: 1}, {b: 2}]", "!!pairs [{a: 1}, {a: 2}]", "!foo bar", "!foo [1, 2]", "!foo {a: 1}", "!!str 3",
    '!!int "3"', '!!int "three"', '!!float "1e-3"', "!!float abc", "!!bool yes", "!!null ''", "!!timestamp 2001-12-14",
    "!!timestamp nope", "!!map [1, 2]", "!!seq {a: 1}", "!!str {a: 1}", "!!str [1]", "!!merge x", "!!value x",
    "!<!> x", "!<tag:example.com,2000:app/foo> x", "! bare",
    # numbers YAML reads in surprising ways
    "9" * 5000, "-" + "9" * 5000, "0x" + "f" * 5000, "0b" + "1" * 20000, "0o" + "7" * 6000, "1e99999", "-1e99999",
    "1_000_000", "0o777", "0b1010", "0x10", "190:20:30", "1:" * 3000 + "1", "1:" * 30000 + "1", ".inf", "-.inf",
    ".nan", ".NaN", "1." + "0" * 5000, "0." + "0" * 5000 + "1", "1" * 400, "1" * 400 + ".0",
    # strings and escapes
    '"\\ud800"', '"\\udfff x"', '"\\U0001F600"', '"\\x00"', '"a\\0b"', '"\\e[31m"', '"\\N\\_\\L\\P"', "'it''s'",
    '"[/]"', '"[bold]unclosed"', "yes", "no", "on", "off", "~", "null", "Null", "NULL", "''", '""', "- not a list",
    # aliases that do not resolve, or anchors alone
    "*undefined", "&anchor_only 3", "&a [*a]",
]

#: whole documents that are not a mapping of sections
LONE_DOCS = [b"", b" ", b"\n\n\n", b"# only a comment\n", b"---\n", b"...\n", b"--- ~\n", b"42\n", b"-1\n",
             b"3.5\n", b"true\n", b"null\n", b"~\n", b"mnist\n", b'"just a string"\n', b"[]\n", b"{}\n",
             b"[1, 2, 3]\n", b"- model\n- data\n", b"---\na: 1\n---\nb: 2\n", b"%YAML 1.1\n---\na: 1\n",
             b"%YAML 1.1\n%YAML 1.1\n---\na: 1\n", b"%YAML 2.0\n---\na: 1\n", b"%FOO bar\n---\na: 1\n",
             b"%TAG ! tag:yaml.org,2002:python/object/apply:\n--- !os.system [\"touch @CANARY@/tagdir\"]\n",
             b"%TAG !! tag:yaml.org,2002:python/\n---\nname: !!object/apply:os.system [\"touch @CANARY@/tag2\"]\n",
             b"\xef\xbb\xbf", b"\xef\xbb\xbfname: x\n", b"\xff\xfe", b"\xff\xfen\x00a\x00m\x00e\x00", b"\x00",
             b"\x00\x00\x00\x00", b"\xfe\xff\x00n", b"\x80", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
             b"\xc0\xaf", b"\x1b[2J", b"\x07\x08\x0b\x0c", b"\t", b"\ta: 1\n", b"a:\n\t- 1\n", b"a: \x85\n",
             b"\r\r\r", b"a: 1\r\nb: 2\r\n", b"<<: *nope\n", b"? [a]\n: 1\n", b"? {a: 1}\n: 1\n", b"1: 2\n",
             b"null: 1\n", b"~: 1\n", b"[a]: 1\n", b"{a: 1}: 2\n", b"true: 1\n", b"!!binary aGk=: 1\n",
             b"&a a: *a\n", b"a: &a\n  b: *a\n", b"a: &a [*a]\n", b"a: &a {<<: *a}\n", b"a: &a {b: *a}\n",
             b"'unterminated\n", b'"unterminated\n', b"a: [1, 2\n", b"a: {b: 1\n", b"a: b: c\n", b"- a\nb: 1\n",
             b"key with no value\n", b"@reserved\n", b"`reserved\n", b"|\n  literal\n", b">\n  folded\n"]


# ---------------------------------------------------------------- tree helpers

def _paths(obj: Any, path: tuple = ()) -> list[tuple]:
    """Every path into a parsed config (the root excluded)."""
    out = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            out.append(path + (key,))
            out.extend(_paths(value, path + (key,)))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            out.append(path + (i,))
            out.extend(_paths(value, path + (i,)))
    return out


def _get(obj: Any, path: tuple) -> Any:
    for part in path:
        obj = obj[part]
    return obj


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's: 20,000-layer configs dump fast


class _Tree:
    """A parsed config being mutated; `dump` writes it back as YAML text."""

    def __init__(self, rng: random.Random, data: Any):
        self.rng, self.data = rng, data
        self.raw: list[str] = []

    def raw_token(self, snippet: str) -> str:
        self.raw.append(snippet)
        return f"rawtoken{len(self.raw) - 1}x"

    def pick(self, want: Callable[[Any], bool] = lambda v: True) -> tuple | None:
        paths = [p for p in _paths(self.data) if want(_get(self.data, p))]
        return self.rng.choice(paths) if paths else None

    def set(self, path: tuple, value: Any) -> None:
        if not path:
            self.data = value
        else:
            _get(self.data, path[:-1])[path[-1]] = value

    def dump(self) -> str:
        rng = self.rng
        style = rng.choice([None, None, False, True])
        text = yaml.dump(self.data, Dumper=_DUMPER, sort_keys=False, allow_unicode=rng.random() < 0.8,
                         default_flow_style=style, width=rng.choice([80, 10**6]), indent=rng.choice([2, 2, 4]))
        for i in reversed(range(len(self.raw))):  # reversed: token 1 is a prefix of token 12
            text = text.replace(f"rawtoken{i}x", self.raw[i])
        return text


def _typo(rng: random.Random, word: str) -> str:
    if not word:
        return "x"
    i = rng.randrange(len(word))
    op = rng.randrange(6)
    if op == 0:
        return word[:i] + word[i + 1:] or "_"
    if op == 1:
        return word[:i] + word[i] + word[i:]
    if op == 2 and len(word) > 1:
        i = min(i, len(word) - 2)
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if op == 3:
        return word.upper() if rng.random() < 0.5 else word.capitalize()
    if op == 4:
        return word + rng.choice(["s", "_", "2", " ", "-"])
    return word[:i] + rng.choice(string.ascii_lowercase) + word[i + 1:]


def _random_key(rng: random.Random) -> str:
    return rng.choice([
        lambda: "".join(rng.choices(string.ascii_lowercase + "_", k=rng.randint(1, 12))),
        lambda: rng.choice(UNICODE),
        lambda: rng.choice(["type", "name", "layers", "units", "lr", "<<", "=", "[0]", "a.b", "0", "-", "?"]),
        lambda: "k" * rng.choice([100, 1000, 50_000]),
    ])()


def _other_type(rng: random.Random, value: Any) -> Any:
    choices = [None, True, False, 0, -1, 3, 2.5, "relu", "", [], {}, [1, 2], {"a": 1}, [[1]], {"type": {}},
               [value] if not isinstance(value, list) else {"x": value}, rng.choice(UNICODE)]
    return rng.choice([c for c in choices if type(c) is not type(value)] or choices)


# ---------------------------------------------------------------- tree mutations

def m_delete(t: _Tree) -> str:
    path = t.pick()
    if path is None:
        return "noop"
    parent = _get(t.data, path[:-1])
    del parent[path[-1]]
    return "delete"


def m_wrong_type(t: _Tree) -> str:
    path = t.pick()
    if path is None:
        return "noop"
    t.set(path, _other_type(t.rng, _get(t.data, path)))
    return "wrong_type"


def m_unknown_key(t: _Tree) -> str:
    """A key added to a mapping: "unknown_key" when no registry or section declares that name
    (a config holding it must be rejected), "extra_key" when one does (it may be valid there)."""
    path = t.rng.choice([()] + [p for p in _paths(t.data) if isinstance(_get(t.data, p), dict)])
    target = _get(t.data, path)
    if not isinstance(target, dict):
        return "noop"
    key = _random_key(t.rng)
    known = key in target or key in _declared_names() or key == "<<"  # `<<` is YAML's merge key
    target[key] = _other_type(t.rng, None)
    return "extra_key" if known else "unknown_key"


_DECLARED: set = set()


def _declared_names() -> set:
    """Every name a config may hold as a key: the sections' arguments, and each registered
    entry's name, aliases and arguments."""
    if not _DECLARED:
        from dlcli.activations import ACTIVATIONS
        from dlcli.config._schema import DATA, EARLY_STOPPING, MODEL, SECTIONS, TOP, TRAINER
        from dlcli.data import DATASETS
        from dlcli.layers import LAYERS
        from dlcli.losses import LOSSES
        from dlcli.metrics import METRICS
        from dlcli.optim import OPTIMIZERS, SCHEDULERS

        entries = [TOP, MODEL, DATA, EARLY_STOPPING, TRAINER]
        for registry in (ACTIVATIONS, DATASETS, LAYERS, LOSSES, METRICS, OPTIMIZERS, SCHEDULERS):
            entries += list(registry)
        _DECLARED.update(SECTIONS, ("type",))
        for entry in entries:
            _DECLARED.update((entry.name, *entry.aliases, *(arg.name for arg in entry.args)))
    return _DECLARED


def m_misspell(t: _Tree) -> str:
    path = t.pick()
    if path is None or not isinstance(path[-1], str):
        return "noop"
    parent = _get(t.data, path[:-1])
    new = _typo(t.rng, path[-1])
    items = [(new if k == path[-1] else k, v) for k, v in parent.items()]
    parent.clear()
    parent.update(items)
    return "misspell"


def m_misspell_value(t: _Tree) -> str:
    path = t.pick(lambda v: isinstance(v, str))
    if path is None:
        return "noop"
    t.set(path, _typo(t.rng, _get(t.data, path)))
    return "misspell_value"


def m_number(t: _Tree) -> str:
    path = t.pick(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)) or t.pick()
    if path is None:
        return "noop"
    pool = t.rng.choice([HUGE_INTS, SMALL_INTS, FLOATS])
    value = t.rng.choice(pool)
    if isinstance(value, int) and abs(value) > 10**300:
        value = t.raw_token(str(value))  # yaml.safe_dump cannot write it; the YAML text can
    t.set(path, value)
    return "number"


def m_number_text(t: _Tree) -> str:
    """A number written as a string: the kinds that parse strings must not choke on them."""
    path = t.pick(lambda v: isinstance(v, float)) or t.pick(lambda v: isinstance(v, int)) or t.pick()
    if path is None:
        return "noop"
    rng = t.rng
    digits = rng.choice(["1", "9", "0", "١"]) * rng.choice([3, 1000, 100_000, 500_000])
    t.set(path, rng.choice([digits + rng.choice(["x", ".", "e", "e+", ".5.", "-"]), digits, "1e-3", " 0.5 ",
                            "+.5", "-.5e-3", "1e", ".", "", "0x10", "inf", "nan", "1,5", "½", "1e-3 # no"]))
    return "number_text"


# quoted strings that dlcli's loader, unlike PyYAML's, would read as numbers unquoted: a valid run
# name that a config.yaml written without the loader's rules turns into a float
NUMBER_LIKE = ["'1e3'", "'1E-3'", '"+2.5e10"', "'1_000e3'"]


def m_name(t: _Tree) -> str:
    """The run name, which the CLI prints: markup, escapes, control characters, invalid Unicode."""
    if not isinstance(t.data, dict):
        return "noop"
    value = t.rng.choice(UNICODE + [s for s in RAW_VALUES if s.startswith(('"', "'"))] + NUMBER_LIKE
                         + ["x" * 100_000])
    t.data["name"] = t.raw_token(value) if value in RAW_VALUES or value in NUMBER_LIKE else value
    return "name"


def m_int_list(t: _Tree) -> str:
    """Shapes and windows: wrong lengths, zeros, negatives, huge sizes, floats."""
    path = t.pick(lambda v: isinstance(v, list) and v and all(isinstance(x, int) for x in v)) or t.pick()
    if path is None:
        return "noop"
    rng = t.rng
    length = rng.choice([0, 1, 2, 3, 4, 5, 9])
    t.set(path, [rng.choice([rng.choice(HUGE_INTS[:9]), rng.choice(SMALL_INTS), 1.0, 28, 3]) for _ in range(length)])
    return "int_list"


def m_raw(t: _Tree) -> str:
    path = t.pick()
    if path is None:
        return "noop"
    t.set(path, t.raw_token(t.rng.choice(RAW_VALUES)))
    return "raw"


def m_raw_key(t: _Tree) -> str:
    path = t.rng.choice([()] + [p for p in _paths(t.data) if isinstance(_get(t.data, p), dict)])
    target = _get(t.data, path)
    if isinstance(target, dict):
        snippet = t.rng.choice(["!!python/object/apply:os.system [x]", "!!binary aGk=", "!foo k", "*undefined",
                                "'dup'", "9" * 5000, "0x" + "f" * 40, "!!int 3", "!!null ''", '"\\ud800"'])
        target[t.raw_token(snippet)] = 1
    return "raw_key"


def m_nesting(t: _Tree) -> str:
    """Wrong nesting: wrap a value, hoist a child, or move a section somewhere else."""
    rng = t.rng
    path = t.pick()
    if path is None:
        return "noop"
    value = _get(t.data, path)
    op = rng.randrange(4)
    if op == 0:
        t.set(path, [value])
    elif op == 1:
        t.set(path, {rng.choice(["type", "args", "value", str(path[-1])]): value})
    elif op == 2 and isinstance(value, (dict, list)) and value:
        t.set(path, rng.choice(list(value.values()) if isinstance(value, dict) else value))
    else:
        other = t.pick(lambda v: isinstance(v, dict))
        if other is not None and other[: len(path)] != path:
            _get(t.data, other)[rng.choice([str(path[-1]), "layers", "model"])] = copy.deepcopy(value)
    return "nesting"


def m_unicode(t: _Tree) -> str:
    path = t.pick(lambda v: isinstance(v, str)) or t.pick()
    if path is None:
        return "noop"
    t.set(path, t.rng.choice(UNICODE))
    return "unicode"


def m_long_string(t: _Tree) -> str:
    path = t.pick()
    if path is None:
        return "noop"
    n = t.rng.choice([1000, 20_000, 200_000] * 3 + [900_000])
    char = t.rng.choice(["x", "1", "é", "a ", "9", "[", "😀"])
    end = t.rng.choice(["", "", "x", ".", "e", " "])  # digits then one more character: regex backtracking
    t.set(path, t.raw_token(t.rng.choice(["'{}'", "{}", '"{}"']).format((char * n)[:n] + end)))
    return "long_string"


def m_many_layers(t: _Tree) -> str:
    """Thousands of layers, written as one JSON flow list (quick to make; YAML reads it)."""
    import json

    model = t.data.get("model") if isinstance(t.data, dict) else None
    layers = model.get("layers") if isinstance(model, dict) else None
    if not isinstance(layers, list) or not layers:
        return "noop"
    n = t.rng.choice([10, 100, 999, 1001, 3000] * 4 + [20_000])  # past MAX_LAYERS; 20,000 past the node budget
    extra = json.dumps(t.rng.choice([{"dropout": {"rate": 0.1}}, "flatten", {"dense": {"units": 10}}, "batchnorm",
                                     {"activation": "relu"}, layers[0]]))
    at = t.rng.randrange(len(layers) + 1)
    items = [json.dumps(x) for x in layers[:at]] + [extra] * n + [json.dumps(x) for x in layers[at:]]
    model["layers"] = t.raw_token("[" + ", ".join(items) + "]")
    return "many_layers"


def m_huge_model(t: _Tree) -> str:
    """A valid structure with one size so large the model cannot exist (validate builds on meta)."""
    path = t.pick(lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 1)
    if path is None or path[-1] not in ("filters", "units", "kernel_size", "input_dim", "output_dim", "num_layers",
                                        1, 2):
        path = t.pick(lambda v: isinstance(v, dict) and ("units" in v or "filters" in v))
        if path is None:
            return "noop"
        target = _get(t.data, path)
        key = "units" if "units" in target else "filters"
        path = path + (key,)
    t.set(path, t.rng.choice([10**5, 10**6, 10**9, 10**12, 2**31, 2**62, 2**63 - 1, 2**63]))
    return "huge_model"


EXTREMES = [10**12, 10**6, 65_536, 2**31, 2**63 - 1, 10**99, 0, -1, 1.5, True, None, "x", [3, 3], {}]


def m_known_arg(t: _Tree) -> str:
    """An argument the registry declares but the config leaves out, set to an extreme value."""
    from dlcli.config._schema import DATA, TRAINER
    from dlcli.layers import LAYERS
    from dlcli.optim import OPTIMIZERS

    data = t.data if isinstance(t.data, dict) else {}
    targets = []  # (the mapping to add to, the registry entry it is checked against)
    model = data.get("model")
    layers = model.get("layers") if isinstance(model, dict) else None
    for i, layer in enumerate(layers if isinstance(layers, list) else []):
        if isinstance(layer, str) and LAYERS.lookup(layer):
            model["layers"][i] = layer = {layer: {}}
        if isinstance(layer, dict) and len(layer) == 1:
            (name, args), = layer.items()
            if isinstance(args, dict) and LAYERS.lookup(name):
                targets.append((args, LAYERS.lookup(name)))
    for section, entry in (("trainer", TRAINER), ("data", DATA)):
        if isinstance(data.get(section), dict):
            targets.append((data[section], entry))
    if isinstance(data.get("optimizer"), dict) and OPTIMIZERS.lookup(data["optimizer"].get("type")):
        targets.append((data["optimizer"], OPTIMIZERS.lookup(data["optimizer"]["type"])))
    targets = [(where, entry) for where, entry in targets if any(a.name not in where for a in entry.args)]
    if not targets:
        return "noop"
    where, entry = t.rng.choice(targets)
    arg = t.rng.choice([a for a in entry.args if a.name not in where])
    where[arg.name] = copy.deepcopy(t.rng.choice(EXTREMES))
    return "known_arg"


TREE_MUTATIONS = [m_delete, m_wrong_type, m_unknown_key, m_misspell, m_misspell_value, m_number, m_number,
                  m_number_text, m_int_list, m_raw, m_raw, m_raw_key, m_nesting, m_unicode, m_long_string,
                  m_many_layers, m_huge_model, m_huge_model, m_known_arg, m_known_arg, m_name]


# ---------------------------------------------------------------- text mutations

def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def t_duplicate_line(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    candidates = [i for i, line in enumerate(lines) if ":" in line and not line.lstrip().startswith("#")]
    i = rng.choice(candidates)
    lines.insert(i + rng.choice([0, 1, 1, 2]), lines[i])
    return "".join(lines)


def t_shuffle_or_drop_lines(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    op = rng.randrange(3)
    if op == 0:
        rng.shuffle(lines)
    elif op == 1:
        del lines[rng.randrange(len(lines))]
    else:
        i = rng.randrange(len(lines))
        lines[i] = rng.choice(["\t", "  ", " ", ""]) + lines[i]
    return "".join(lines)


def t_truncate(rng: random.Random, text: str) -> str:
    return text[: rng.randrange(len(text) + 1)]


def t_line_endings(rng: random.Random, text: str) -> str:
    return text.replace("\n", rng.choice(["\r\n", "\r", "\u2028", "\x85", "\n\n"]))


def t_insert_tag_line(rng: random.Random, text: str) -> str:
    """A section replaced by a tagged (or aliased) value in the raw text."""
    lines = _lines(text)
    i = rng.choice([i for i, line in enumerate(lines) if ":" in line and not line.lstrip().startswith("#")])
    key = lines[i].split(":", 1)[0]
    lines[i] = f"{key}: {rng.choice(RAW_VALUES)}\n"
    return "".join(lines)


def t_flow_rewrite(rng: random.Random, text: str) -> str:
    """The whole config as one flow mapping, as JSON (YAML's subset)."""
    import json

    data = yaml.safe_load(text)
    return json.dumps(data, ensure_ascii=rng.random() < 0.5, indent=rng.choice([None, 2]))


TEXT_MUTATIONS = [t_duplicate_line, t_duplicate_line, t_shuffle_or_drop_lines, t_truncate, t_line_endings,
                  t_insert_tag_line, t_insert_tag_line, t_flow_rewrite]


def b_bytes(rng: random.Random, raw: bytes) -> bytes:
    """Binary damage: flipped bits, inserted garbage, NUL bytes, invalid UTF-8, BOMs."""
    data = bytearray(raw)
    op = rng.randrange(7)
    if op == 0 and data:
        for _ in range(rng.randint(1, 5)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif op == 1:
        i = rng.randrange(len(data) + 1)
        data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    elif op == 2:
        i = rng.randrange(len(data) + 1)
        data[i:i] = b"\x00" * rng.randint(1, 4)
    elif op == 3:
        i = rng.randrange(len(data) + 1)
        data[i:i] = rng.choice([b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\x80", b"\xf8\x88\x80\x80\x80"])
    elif op == 4:
        data = bytearray(rng.choice([b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff"]) + bytes(data))
    elif op == 5:
        data = bytearray(bytes(data).decode("utf-8", "replace").encode(rng.choice(["utf-16", "utf-32", "latin-1"]),
                                                                     "replace"))
    else:
        data = bytearray(rng.randbytes(rng.choice([1, 16, 1000, 100_000])))
    return bytes(data)


# ---------------------------------------------------------------- pathological documents

def _deep(rng: random.Random) -> str:
    n = rng.choice([51, 60, 500, 5000, 100_000, 330_000])
    op = rng.randrange(6)
    if op == 0:
        return "[" * n + "]" * n
    if op == 1:
        return "{a: " * n + "1" + "}" * n
    if op == 2:
        n = min(n, 1400)  # block indentation grows as n**2
        return "".join(" " * i + "a:\n" for i in range(n)) + " " * n + "1\n"
    if op == 3:
        return "- " * min(n, 300_000) + "x\n"
    if op == 4:  # deep inside an otherwise valid config
        return _BASES["mnist_cnn.yaml"].replace("filters: 32", "filters: " + "[" * n + "32" + "]" * n)
    return "a: &a\n  b: *a\n" if rng.random() < 0.5 else "a: &a [*a, *a]\nb: *a\n"


def _laughs(rng: random.Random) -> str:
    """The billion laughs: nine levels of nine aliases each."""
    width, levels = rng.choice([(9, 9), (10, 10), (2, 60), (100, 3)])
    flow = rng.random() < 0.5
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        refs = ", ".join([f"*l{i - 1}"] * width)
        lines.append(f"l{i}: &l{i} [{refs}]" if flow else f"l{i}: &l{i}\n" + "".join(f"  - *l{i - 1}\n" for _ in
                                                                                     range(width)).rstrip("\n"))
    text = "\n".join(lines) + "\n"
    if rng.random() < 0.5:  # the bomb inside a real config, where a list belongs
        text += _BASES["mnist_cnn.yaml"].replace("metrics: [accuracy]", f"metrics: *l{levels - 1}")
    return text


def _merge_bomb(rng: random.Random) -> str:
    """Merge keys that double at each level of nesting (<<: [*m, *m])."""
    depth = rng.choice([8, 16, 24, 32, 40])
    text = "{k: 1}"
    for i in range(depth):
        text = f"{{<<: [&m{i} {text}, *m{i}]}}"
    return f"bomb: {text}\n"


def _big(rng: random.Random) -> str:
    op = rng.randrange(6)
    if op == 0:
        return "a: [" + "1," * rng.choice([60_000, 490_000]) + "]\n"
    if op == 1:
        return "".join(f"k{i}: {i}\n" for i in range(rng.choice([60_000, 100_000])))
    if op == 2:
        return "a:\n" + "- 1\n" * rng.choice([60_000, 240_000])
    if op == 3:
        return "x" * 1_000_001
    if op == 4:
        return "# " + "x" * 999_000 + "\n" + _BASES["mnist_cnn.yaml"]
    return "a: &a 1\nb: [" + "*a," * rng.choice([60_000, 240_000]) + "]\n"


def _merge(rng: random.Random, base: str) -> tuple[str, str | None]:
    """Anchors, aliases and merge keys: some keep the meaning, some do not."""
    text = _BASES[base]
    op = rng.randrange(6)
    if op == 0 and "optimizer:" in text:  # anchor a section, alias it where nothing reads it
        text = text.replace("optimizer:", "optimizer: &opt", 1)
        return text, base
    if op == 1 and base == "mnist_cnn.yaml":  # a merge that restates the same arguments
        return text.replace("- conv2d: {filters: 32, kernel_size: 3, activation: relu}",
                            "- conv2d: {<<: {filters: 32, kernel_size: 3}, activation: relu}"), base
    if op == 2 and base == "mnist_cnn.yaml":  # an explicit key overrides a merged one (YAML merge semantics)
        return text.replace("- conv2d: {filters: 32, kernel_size: 3, activation: relu}",
                            "- conv2d: {<<: {filters: 16, kernel_size: 3}, filters: 32, activation: relu}"), base
    if op == 3 and base == "mnist_cnn.yaml":  # the first of a list of merged maps wins
        return text.replace("- conv2d: {filters: 32, kernel_size: 3, activation: relu}",
                            "- conv2d: {<<: [{filters: 32}, {filters: 8, kernel_size: 3}], activation: relu}"), base
    if op == 4:  # merge of something that is not a mapping
        return text.replace("trainer:", "trainer:\n  <<: " + rng.choice(["1", "[1, 2]", "*nope", "[{a: 1}, 3]"]),
                            1), None
    return text.replace("model:", "model: &m", 1).replace("data:", "data:\n  <<: *m", 1), None


def _override(rng: random.Random) -> str:
    paths = ["trainer.epochs", "model.layers[0].filters", "model.layers[0].kernel_size", "model.layers[1]",
             "optimizer.lr", "optimizer.type", "data.batch_size", "data.dataset", "model.input_shape", "name",
             "seed", "loss", "metrics", "metrics[0]", "trainer.device", "trainer.early_stopping.patience",
             "model.layers[99]", "model.layers[99999999999999999999].units", "model.layers[-1].units",
             "model.layers[0][0]", "trainer.epochs.value", "model", "trainer", "", ".", "..", "a..b", "[0]",
             "model.layers.0", "model.layers[0", "mödel.layers", "model .layers", "trainer.epochs ", " trainer",
             "a" + ".a" * 5000, "x" * 10_000, "model.layers[0].filters[0]", "__class__", "model.__dict__",
             "optimizer.betas[0]", "optimizer.betas[5]", "<<", "data.<<", "trainer.=", "-x", "--help"]
    values = ["3", "0", "-1", "1e-4", "1e999", "nan", "2.5", "true", "null", "~", "", " ", "[3, 3]", "[", "{",
              "{a: 1}", "*x", "&a", "&a [*a]", "a=b", "==", "=", "x=y=z", "relu", "Dense", "'quoted'", '"\\ud800"',
              "!!python/object/apply:os.system [\"touch @CANARY@/override\"]", "!!binary aGk=", "!foo x",
              str(2**63), "9" * 5000, "1:" * 3000 + "1", "x" * 100_000, "é🔥", "[" * 5000 + "]" * 5000,
              "- a\n- b", "a: 1\nb: 2", "\x00", "\t", "0x" + "f" * 2000, "[1, 2, 3, 4, 5]", "x\udcff", "[/]"]
    op = rng.randrange(10)
    if op == 0:
        return rng.choice(paths)  # no '='
    if op == 1:
        return "=" + rng.choice(values)
    return f"{rng.choice(paths)}={rng.choice(values)}"


# ---------------------------------------------------------------- cases

def make_case(index: int) -> Case:
    """Case `index` of the seeded sequence (independent of every other case)."""
    rng = random.Random(f"{SEED}:{index}")
    base = rng.choice(sorted(_BASES))
    family = rng.choices(["tree", "text", "bytes", "overrides", "merge", "deep", "laughs", "merge_bomb", "big",
                          "lone", "restyle", "huge_file"],
                         weights=[42, 12, 6, 14, 5, 2, 1.5, 1, 0.5, 6, 6, 0.5])[0]  # megabyte inputs rarer
    overrides: list[str] = []
    same_as = None
    kind = family
    if family == "tree":
        tree = _Tree(rng, copy.deepcopy(_BASE_DATA[base]))
        done = [rng.choice(TREE_MUTATIONS)(tree) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
        kind = "tree:" + "+".join(done)
        content = tree.dump().encode("utf-8", "surrogatepass")
    elif family == "text":
        text = _BASES[base]
        done = []
        for _ in range(rng.choice([1, 1, 2])):
            mutation = rng.choice(TEXT_MUTATIONS)
            try:
                text = mutation(rng, text)
            except Exception:  # noqa: BLE001 (yaml.safe_load itself fails on some tags)
                continue  # the mutation needs a text it cannot parse or find: keep what there is
            done.append(mutation.__name__[2:])
        kind = "text:" + "+".join(done)
        content = text.encode("utf-8", "surrogatepass")
    elif family == "bytes":
        content = b_bytes(rng, _BASES[base].encode())
    elif family == "overrides":
        content = _BASES[base].encode()
        overrides = [_override(rng) for _ in range(rng.choice([1, 1, 2, 4]))]
    elif family == "merge":
        text, same_as = _merge(rng, base)
        content = text.encode()
    elif family == "deep":
        content = _deep(rng).encode()
    elif family == "laughs":
        content = _laughs(rng).encode()
    elif family == "merge_bomb":
        content = _merge_bomb(rng).encode()
    elif family == "big":
        content = _big(rng).encode()
    elif family == "lone":
        content = rng.choice(LONE_DOCS)
    elif family == "huge_file":  # a valid config followed by gigabytes of NUL bytes (a sparse file)
        content = _BASES[base].encode()
    else:  # the same config re-styled (flow, JSON, other indentation): must resolve the same
        tree = _Tree(rng, copy.deepcopy(_BASE_DATA[base]))
        content = (tree.dump() if rng.random() < 0.7 else t_flow_rewrite(rng, _BASES[base])).encode()
        same_as = base
    if family not in ("overrides", "restyle", "merge") and rng.random() < 0.1:
        overrides = [_override(rng) for _ in range(rng.choice([1, 2]))]
    if family in ("restyle", "merge") and rng.random() < 0.2:
        overrides, same_as = [rng.choice(["trainer.epochs=3", "data.batch_size=64", "optimizer.lr=1e-4"])], None
    stem = rng.choice(FILE_STEMS) if rng.random() < 0.05 else ""
    size = rng.choice([2**31, 10**10]) if family == "huge_file" else 0
    return Case(index, kind, content, tuple(overrides), same_as, stem, size)


if __name__ == "__main__":  # python tests/fuzz/config_mutations.py 3141 [more indices]
    for arg in sys.argv[1:]:
        case = make_case(int(arg))
        print(case.describe())
        sys.stdout.buffer.write(case.content[:5000] + b"\n")
