"""Inputs the config fuzzer found breaking the package, kept as regression tests.

Each names the fuzz case it came from (`python tests/fuzz/config_mutations.py N`
prints the case) and asserts the clean outcome: a ConfigError/DlcliError with a
useful message, in bounded time and memory. Times are CPU seconds of this process
(time.process_time), so that other jobs on a shared CI machine do not make them flaky.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from dlcli.config import config_from_text
from dlcli.errors import ConfigError
from tests.hang_guard import HANG_S

ROOT = Path(__file__).resolve().parents[2]
MNIST_CNN = (ROOT / "configs" / "mnist_cnn.yaml").read_text()


# case 1548 (`!!float abc`), cases 207, 870 (`!!timestamp nope`), case 175 (control
# characters): PyYAML raised ValueError, KeyError, AttributeError, IndexError or
# ReaderError straight through the loader
@pytest.mark.parametrize("text, message", [
    ("lr: !!float abc", "'abc' is not a valid float"),
    ("lr: !!int three", "'three' is not a valid int"),
    ("lr: !!int ''", "'' is not a valid int"),
    ("x: !!bool maybe", "'maybe' is not a valid bool"),
    ("x: !!timestamp nope", "'nope' is not a valid timestamp"),
    ("x: !!timestamp 2001-13-45", "not a valid timestamp"),
    ("!!int three: 1", "'three' is not a valid int"),
    ("\x07\x08\x0b\x0c", "special characters are not allowed"),
], ids=["float", "int", "empty-int", "bool", "timestamp", "bad-date", "key", "control-chars"])
def test_values_pyyaml_cannot_construct_are_config_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        config_from_text(text)


# cases 131, 148 (5,000 digits and more: ValueError from int()), case 214 (a
# 20,000-digit `0b1...` integer as a float argument: OverflowError from float() in the
# Float kind; `input_shape: [1, 10**400, 28]` overflowed conv2d's `same` padding
# arithmetic the same way), and base-60 integers (`1:1:1:...`), which read in
# quadratic time: 600 KB took 19 s
@pytest.mark.parametrize("old, new", [
    ("lr: 1e-3", "lr: " + "9" * 5000),
    ("lr: 1e-3", "lr: " + "1:" * 300_000 + "1"),
    ("lr: 1e-3", f"lr: {10**400}"),
    ("lr: 1e-3", "lr: 0x" + "f" * 5000),
    ("[1, 28, 28]", f"[1, {10**400}, 28]"),
], ids=["5000-digits", "base-60", "lr-10**400", "hex-5000", "input-shape-10**400"])
def test_integers_longer_than_a_config_number_are_refused_quickly(old, new):
    import time

    start = time.process_time()
    with pytest.raises(ConfigError, match="characters long; a config number has at most 100"):
        config_from_text(MNIST_CNN.replace(old, new))
    assert time.process_time() - start < 1.0


def test_the_largest_int64_is_still_read():
    cfg = config_from_text(MNIST_CNN.replace("lr: 1e-3", "lr: 1e-3\n  weight_decay: 0x7fff_ffff_ffff_ffff"))
    assert cfg["optimizer"]["weight_decay"] == float(2**63 - 1)


# cases 2554, 14181 (`optimizer: !!python/module:os` over a block mapping), case 41615
# (`pool_size: !!python/tuple [1, 2]`); `metrics: !!python/object/apply:os.system
# [accuracy]` also resolved as a valid config:
# the builder constructs mappings and lists itself and dropped their tags, so an
# object tag on a list or mapping was silently read as plain data (never run, but
# never refused either); `!foo {a: 1}` likewise
@pytest.mark.parametrize("old, new", [
    ("metrics: [accuracy]", "metrics: !!python/object/apply:os.system [accuracy]"),
    ("metrics: [accuracy]", "metrics: !!python/object/new:builtins.list [[accuracy]]"),
    ("  type: adam\n", "  type: adam\n  betas: !!python/tuple [0.9, 0.999]\n"),
    ("optimizer:\n", "optimizer: !!python/object:builtins.dict\n"),
    ("metrics: [accuracy]", "metrics: !foo [accuracy]"),
    ("metrics: [accuracy]", "metrics: !!set {accuracy}"),
], ids=["apply-on-list", "new-on-list", "tuple", "object-on-mapping", "unknown-tag", "set"])
def test_tags_on_lists_and_mappings_are_refused(old, new):
    text = MNIST_CNN.replace(old, new)
    assert text != MNIST_CNN
    with pytest.raises(ConfigError, match="tags that create objects are not allowed"):
        config_from_text(text)


def _load_in_child(text: str = "", path: Path | None = None, memory: int = 2**30, seconds: int = 30) -> str:
    """config_from_text(text), or load_config(path), in a child process held to 1 GiB and
    30 s of CPU (not wall time: other jobs on the machine do not count), so that a bomb that
    gets through again fails this test instead of exhausting the machine. Returns what the
    child printed: the exception's type and message."""
    call = f"load_config({str(path)!r})" if path else "config_from_text(sys.stdin.read())"
    code = ("import sys\nfrom dlcli.config import config_from_text, load_config\n"
            f"try:\n    {call}\n    print('valid')\n"
            "except Exception as err:\n    print(type(err).__name__, err)\n")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))  # then SIGXCPU, SIGKILL

    done = subprocess.run([sys.executable, "-c", code], input=text, capture_output=True, text=True,
                          timeout=HANG_S, preexec_fn=limit, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return done.stdout + done.stderr


def _merge_bomb(depth: int) -> str:
    text = "{k: 1}"
    for i in range(depth):
        text = f"{{<<: [&m{i} {text}, *m{i}]}}"
    return text


# cases 275, 402, 450, 857: merge keys nested 32 or 40 deep double at each level;
# PyYAML's flatten_mapping expanded them all (2**40 entries) before the node budget
# was counted: MemoryError in-process, the machine's memory in a real run
@pytest.mark.parametrize("text", [
    f"bomb: {_merge_bomb(40)}\n",
    f"x: {{<<: [&big {_merge_bomb(15)}, {'*big, ' * 4000}]}}\n",
    MNIST_CNN.replace("trainer:\n", f"trainer:\n  <<: {_merge_bomb(64)}\n"),
], ids=["nested-40", "wide-4000-of-2**15", "inside-a-config"])
def test_merge_bombs_are_refused_without_expanding(text):
    out = _load_in_child(text)
    assert out.startswith("ConfigError"), out[-2000:]
    assert "merge keys (<<) make more than 50,000 entries" in out


# cases 623, 1054, 1173: a config restating mnist_cnn.yaml with merge keys was refused with
# "duplicate key 'filters'": PyYAML puts the merged entries before the mapping's own,
# and the duplicate check treated a key overriding a merged one as a duplicate
@pytest.mark.parametrize("layer", [
    "- conv2d: {<<: {filters: 16, kernel_size: 3}, filters: 32, activation: relu}",
    "- conv2d: {<<: [{filters: 32}, {filters: 8, kernel_size: 3}], activation: relu}",
    "- conv2d: {<<: &base {filters: 8, kernel_size: 3, activation: relu}, filters: 32}",
], ids=["own-key-overrides", "first-listed-wins", "anchored-base"])
def test_merge_keys_resolve_as_yaml_says(layer):
    text = MNIST_CNN.replace("- conv2d: {filters: 32, kernel_size: 3, activation: relu}", layer)
    assert text != MNIST_CNN
    assert config_from_text(text) == config_from_text(MNIST_CNN)


def test_a_key_written_twice_is_still_a_duplicate_beside_merge_keys():
    text = MNIST_CNN.replace("- conv2d: {filters: 32, kernel_size: 3, activation: relu}",
                             "- conv2d: {<<: {filters: 16}, filters: 32, filters: 64, kernel_size: 3}")
    with pytest.raises(ConfigError, match="duplicate key 'filters'"):
        config_from_text(text)


# cases 956, 1384 (`big`): a megabyte of small values (`[1,1,1,...]`, 60,000
# keys, 240,000 aliases) was composed whole before the node budget was counted:
# 5 to 10 s of pure-Python parsing per file on the CI machine
@pytest.mark.parametrize("text", [
    "a: [" + "1," * 490_000 + "]\n",
    "a:\n" + "- 1\n" * 240_000,
    "".join(f"k{i}: {i}\n" for i in range(90_000)),
    "a: &a 1\nb: [" + "*a," * 240_000 + "]\n",
], ids=["flow-list", "block-list", "keys", "aliases"])
def test_a_megabyte_of_values_is_refused_while_reading(text):
    import time

    start = time.process_time()
    with pytest.raises(ConfigError, match="more than 50,000 keys and values"):
        config_from_text(text)
    assert time.process_time() - start < 2.0


# cases 727, 820, 954 (`tree:many_layers`): canonicalize_layers scanned every recorded
# line once per layer, quadratic in the number of layers: 4,000 `- dropout: 0.1`
# took 5.8 s to load, 20,000 ran past the fuzzer's 30 s hang limit
def test_many_layers_are_read_in_linear_time():
    import time

    text = MNIST_CNN.replace("    - flatten\n", "    - flatten\n" + "    - dropout: 0.1\n" * 15_000)
    start = time.process_time()
    with pytest.raises(ConfigError, match=r"model.layers: expected at most 1,000 layers, received 15,004"):
        config_from_text(text)
    assert time.process_time() - start < 2.0


def test_layer_lines_survive_the_move_to_type_and_arguments():
    n = 990
    text = MNIST_CNN.replace("    - flatten\n", "    - flatten\n" + "    - dropout: 0.1\n" * n)
    text = text.replace("- dense: {units: 10}", "- dense: {units: -1}")
    line = text.splitlines().index("    - dense: {units: -1}            # logits; the loss applies the softmax") + 1
    with pytest.raises(ConfigError, match=rf"<config>:{line}: model.layers\[{n + 3}\].units: expected an integer"):
        config_from_text(text)


# case 1980: `lr: 111...1x` (200,000 digits, then one more
# character): the Float kind's pattern `\d+\.?\d*` can split the digits n ways,
# so a near-miss backtracked in quadratic time (20,000 digits: 5 s; 100,000: minutes)
@pytest.mark.parametrize("tail", ["x", "e", ".5.", "e+", "-"])
def test_a_long_number_like_string_is_refused_in_linear_time(tail):
    import time

    start = time.process_time()
    with pytest.raises(ConfigError, match=r"optimizer.lr: expected a number \(> 0\); received: '1111"):
        config_from_text(MNIST_CNN.replace("lr: 1e-3", f"lr: '{'1' * 100_000}{tail}'"))
    assert time.process_time() - start < 1.0


# case 1157: the override `model=&a` (an anchor with no value: null) made
# load_config raise TypeError in _cross_checks; so did an empty `model:` or
# `data:` section in the file. A present-but-null section passed as "missing"
# (reported by the top-level arguments), but it is not missing, so nothing was reported
@pytest.mark.parametrize("old, new, overrides, message", [
    ("", "", ["model=&a"], r"override 'model=&a': model: expected a mapping \(input_shape and layers\)"),
    ("", "", ["data=null"], r"override 'data=null': data: expected a mapping \(dataset: name"),
    ("data:\n  dataset: mnist\n  batch_size: 128\n", "data:\n", [], r"<config>:14: data: expected a mapping"),
    ("model:\n  input_shape", "model:\nx:\n  input_shape", [], r"<config>:6: model: expected a mapping"),
], ids=["override-anchor", "override-null", "empty-data", "empty-model"])
def test_a_null_section_is_reported_not_a_crash(old, new, overrides, message):
    with pytest.raises(ConfigError, match=message):
        config_from_text(MNIST_CNN.replace(old, new), overrides=overrides)


# cases 67, 283, 667, 787, 1143 (`tree:huge_model`, `tree:number`): sizes such as
# `filters: 2**62` or `units: 2**63 - 1` are valid config values, but no tensor
# can hold those weights: building on the meta device raised RuntimeError ("Storage
# size calculation overflowed") or TypeError ("Overflow when unpacking long"), and
# dlcli validate exited 1 with a traceback
@pytest.mark.parametrize("config, old, new", [
    ("mnist_cnn.yaml", "filters: 32", f"filters: {2**62}"),
    ("mnist_cnn.yaml", "kernel_size: 3", f"kernel_size: {2**32}, padding: same"),
    ("mnist_cnn.yaml", "- flatten\n", f"- flatten\n    - dense: {{units: {2**63 - 1}}}\n"),
    ("mnist_lstm.yaml", "units: 128}", f"units: {2**62}}}"),
    ("mnist_lstm.yaml", "units: 128}", f"units: {10**30}}}"),
], ids=["conv-filters", "conv-kernel", "dense-units", "lstm-units", "lstm-10**30"])
def test_weights_too_large_for_a_tensor_are_a_clean_error(config, old, new, tmp_path):
    from typer.testing import CliRunner

    from dlcli.cli import app
    from dlcli.errors import DlcliError
    from dlcli.model import build_meta_model

    text = (ROOT / "configs" / config).read_text().replace(old, new)
    with pytest.raises(DlcliError, match="more values than a tensor can hold"):
        build_meta_model(config_from_text(text))
    path = tmp_path / config
    path.write_text(text)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and result.stderr.startswith("error: model: a layer's weights"), result.output


# cases 12283, 21562, 28295 (`tree:known_arg`): `num_layers`
# had no upper bound, and torch builds each stacked layer in a Python loop even on
# the meta device: `lstm: {units: 128, num_layers: 2**31}` kept dlcli validate
# building forever (10,000 layers already took 7 s)
@pytest.mark.parametrize("num_layers", [17, 10**6, 2**31, 10**99], ids=["17", "10**6", "2**31", "10**99"])
def test_stacked_recurrent_layers_are_bounded(num_layers):
    text = (ROOT / "configs" / "mnist_lstm.yaml").read_text()
    text = text.replace("lstm: {units: 128}", f"lstm: {{units: 128, num_layers: {num_layers}}}")
    with pytest.raises(ConfigError, match=r"model.layers\[0\].num_layers: expected an integer between 1 and 16"):
        config_from_text(text)


def test_sixteen_stacked_layers_still_validate():
    from dlcli.model import build_meta_model

    text = (ROOT / "configs" / "mnist_lstm.yaml").read_text()
    text = text.replace("lstm: {units: 128}", "lstm: {units: 128, num_layers: 16, bidirectional: true}")
    assert len(list(build_meta_model(config_from_text(text)).parameters())) == 16 * 2 * 4 + 2


# case 802 (file `a[/b]c.yaml`) and cases 670, 1099 (`name: '[/]'`): dlcli validate
# printed the config path and the run name through rich markup, so a valid config
# ended in rich.errors.MarkupError ("closing tag '[/b]' ... doesn't match any open
# tag"), exit 1 and a traceback; `[bold red]` in a name restyled the output. A run name
# may no longer hold a '/' (it would leave trainer.out_dir), so closing tags in a name
# now reach the CLI in the error message, which must print them as text too.
@pytest.mark.parametrize("name, stem", [
    ("[bold red]markup", "mnist"), ("plain", "a[/b]c"), ("plain", "x[/]"), ("[link=file:passwd]x", "[red]run[/red]"),
], ids=["restyle", "path-close-unopened", "path-close-nothing", "link"])
def test_names_and_paths_are_printed_as_text_not_markup(name, stem, tmp_path):
    import json

    from typer.testing import CliRunner

    from dlcli.cli import app

    path = tmp_path / f"{stem}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(MNIST_CNN.replace("name: mnist_cnn", f"name: {json.dumps(name)}"))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert f"Model: {name}" in result.stdout
    assert f"{path}:valid" in "".join(result.stdout.split())  # rich folds the long path at 80 columns


@pytest.mark.parametrize("name", ["[/]", "[/bold]", "[bold red]markup[/]", "[link=file:///etc/passwd]x[/link]"],
                         ids=["close-nothing", "close-unopened", "restyle", "link"])
def test_a_refused_name_is_printed_as_text_not_markup(name, tmp_path):
    import json

    from typer.testing import CliRunner

    from dlcli.cli import app

    path = tmp_path / "config.yaml"
    path.write_text(MNIST_CNN.replace("name: mnist_cnn", f"name: {json.dumps(name)}"))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "name: expected a run name" in result.stderr and f"received: {name!r}" in result.stderr, result.stderr


# cases 2088, 3507 (`name: "\ud800"`, `"\udfff x"`): YAML's \u escapes let a config hold
# lone UTF-16 surrogates, which are not characters: the config resolved, then dlcli
# validate crashed printing the name (UnicodeEncodeError, exit 1) and, in-process,
# every later print of the same rich console failed too
@pytest.mark.parametrize("escaped", [r"\ud800", r"\udfff x", r"\ude00\ud83d", r"a\ud83d"])
def test_lone_surrogate_escapes_are_refused(escaped, tmp_path):
    from typer.testing import CliRunner

    from dlcli.cli import app

    text = MNIST_CNN.replace("name: mnist_cnn", f'name: "{escaped}"')
    with pytest.raises(ConfigError, match=r"<config>:3: .*holds half of a UTF-16 surrogate pair"):
        config_from_text(text)
    path = tmp_path / "surrogate.yaml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and result.stderr.startswith("error:"), result.output


def test_a_json_escaped_surrogate_pair_is_one_character():
    cfg = config_from_text(MNIST_CNN.replace("name: mnist_cnn", r'name: "run \ud83d\ude00"'))
    assert cfg["name"] == "run \U0001F600"


# case 1114: a valid config in `caf\udce9.yaml` (a file named b"caf\xe9.yaml" in
# Latin-1, as Python holds it): dlcli validate crashed with UnicodeEncodeError printing the path, or the run
# name taken from it, wherever stdout is strict UTF-8 (the usual en_US.UTF-8
# terminal; CliRunner): exit 1 and a traceback. Overrides from such argv bytes too. Such a run name
# is refused since (a clean exit 2, the name printed escaped): config.yaml could not hold it and read
# back, so the run's own tools called it damaged.
@pytest.mark.parametrize("stem, text, overrides, code, shown", [
    ("caf\udce9", MNIST_CNN, [], 0, "caf\\udce9.yaml:valid"),
    ("caf\udce9", MNIST_CNN.replace("name: mnist_cnn\n", ""), [], 2,
     "the run name defaults to the file name, 'caf\\udce9': expected a run name of UTF-8 text"),
    ("run", MNIST_CNN, ["name=x\udcff"], 2, "name: expected a run name of UTF-8 text"),
], ids=["path", "name-from-path", "name-override"])
def test_paths_and_arguments_that_are_not_utf8_are_printed_escaped(stem, text, overrides, code, shown, tmp_path):
    from typer.testing import CliRunner

    from dlcli.cli import app

    path = tmp_path / f"{stem}.yaml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["validate", str(path), *overrides])
    assert result.exit_code == code, repr(result.exception)
    assert "Traceback" not in result.output
    out = result.stdout if code == 0 else result.stderr
    assert shown.replace(" ", "") in "".join(out.split())  # rich folds the long path at 80 columns


# cases 151, 930, 1254 (`huge_file`: a valid config followed by 2 GiB or 10 GB of NUL
# bytes, a sparse file): read_config_file read the whole file, then kept the first
# megabyte: MemoryError under the fuzzer's address-space limit, the machine's
# memory in a real run
def test_a_huge_file_is_refused_without_reading_it_whole(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text(MNIST_CNN)
    os.truncate(path, 10**10)  # sparse: no disk used
    out = _load_in_child(path=path)
    assert out.startswith("ConfigError"), out[-2000:]
    assert "the file is larger than 1,000,000 bytes" in out
