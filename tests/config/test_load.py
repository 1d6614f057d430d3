"""dlcli.config._load: safe YAML with the line of every key, and file-level errors."""

from __future__ import annotations

import re

import pytest

from dlcli.config import ConfigError, load_config
from dlcli.config._load import MAX_DEPTH, parse_yaml, read_config_file


def _at(path) -> str:
    """A path as a regex (tmp paths may hold regex characters)."""
    return re.escape(str(path))


def test_lines_are_recorded_for_every_key_and_item():
    data, lines = parse_yaml("name: a\nmodel:\n  layers:\n    - flatten\n    - dense: {units: 3}\n")
    assert data == {"name": "a", "model": {"layers": ["flatten", {"dense": {"units": 3}}]}}
    assert lines[("name",)] == 1
    assert lines[("model",)] == 2
    assert lines[("model", "layers", 0)] == 4
    assert lines[("model", "layers", 1, "dense", "units")] == 5


@pytest.mark.parametrize("text", ["lr: 1e-3", "lr: 1E-3", "lr: +1e-3", "lr: 1.0e-3", "lr: 0.001"])
def test_exponent_without_a_dot_is_a_float(text):
    value = parse_yaml(text)[0]["lr"]
    assert type(value) is float and value == pytest.approx(1e-3)


def test_1e_minus_3_in_a_config_file_is_a_float(write_config, tiny_config_text):
    assert "lr: 1e-3" in tiny_config_text
    cfg = load_config(write_config(tiny_config_text))
    assert type(cfg["optimizer"]["lr"]) is float and cfg["optimizer"]["lr"] == 1e-3


def test_other_scalars_keep_their_yaml_types():
    data, _ = parse_yaml("a: 10\nb: 1e3x\nc: true\nd: null\ne: '1e-3'\n")
    assert data == {"a": 10, "b": "1e3x", "c": True, "d": None, "e": "1e-3"}
    assert type(data["a"]) is int


def test_invalid_yaml_names_the_file_and_line(write_config):
    path = write_config("name: a\nseed: 0\nmodel: x: y\n")
    with pytest.raises(ConfigError, match=rf"{_at(path)}:3: .*invalid YAML: mapping values are not allowed") as info:
        load_config(path)
    assert len(info.value.problems) == 1 and info.value.problems[0].where == f"{path}:3"


def test_unclosed_bracket_names_the_line_and_column_it_opened_at(write_config):
    path = write_config("name: a\nmodel:\n  input_shape: [1, 28, 28\n  layers: [flatten]\n")
    with pytest.raises(ConfigError, match=rf"{_at(path)}:3: .*invalid YAML: the '\[' opened at line 3, column 16 is "
                                          r"not closed before line 4, column 9, .*; close it with '\]'"):
        load_config(path)


def test_an_unclosed_brace_lines_above_where_the_parser_gave_up_is_the_line_reported(write_config):
    """Issue 13: the error pointed at line 6, where the next ':' arrived, not at the '{' left open on line 4."""
    path = write_config("model:\n  input_shape: [1, 28, 28]\n  layers:\n    - conv2d: {filters: 32, kernel_size: 3\n"
                        "    - flatten\n    - dense: 10\ndata: mnist\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert problem.where == f"{path}:4"
    assert problem.message == ("invalid YAML: the '{' opened at line 4, column 15 is not closed before line 6, column "
                               "12, where the parser expected ',' or '}', but got ':'; close it with '}' (or add the "
                               "missing ',')")


def test_an_error_inside_a_bracket_closed_on_its_line_says_both_columns(write_config):
    path = write_config("optimizer: {type: adam, lr: 0.1 0.2: 3}\n")
    with pytest.raises(ConfigError, match=rf"{_at(path)}:1: .*invalid YAML: expected ',' or '\}}', but got ':' at "
                                          r"column 36, inside the '\{' opened at column 12"):
        load_config(path)


def test_empty_file(write_config):
    path = write_config("")
    with pytest.raises(ConfigError, match=rf"{_at(path)}: 1 problem\n.*the file is empty; expected a mapping"):
        load_config(path)


def test_file_with_only_comments_is_empty(write_config):
    with pytest.raises(ConfigError, match="the file is empty"):
        load_config(write_config("# nothing here\n\n"))


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=rf"{_at(path)}: 1 problem\n.*config file not found "
                                          rf"\(looked for {_at(path)}\)"):
        load_config(path)


def test_directory_instead_of_a_file(tmp_path):
    with pytest.raises(ConfigError, match="expected a YAML file, received a directory"):
        read_config_file(tmp_path)


def test_binary_file_is_refused(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not a UTF-8 text file"):
        load_config(path)


def test_nul_bytes_are_refused():
    with pytest.raises(ConfigError, match="NUL bytes"):
        parse_yaml("name: a\x00")


def test_duplicate_keys_name_the_key_and_line(write_config):
    path = write_config("name: a\ntrainer:\n  epochs: 3\n  epochs: 4\n")
    with pytest.raises(ConfigError, match=rf"{_at(path)}:4: trainer.epochs: duplicate key 'epochs'"):
        load_config(path)


@pytest.mark.parametrize("text, line, key_path", [
    ("data: {batch_size: 32, batch_size: 64}\n", 1, "data.batch_size"),
    ("model:\n  layers:\n    - dense: {units: 3, units: 4}\n", 3, r"model.layers\[0\].dense.units"),
    ("name: a\nname: b\n", 2, "name"),
])
def test_a_duplicate_key_is_reported_with_its_key_path(write_config, text, line, key_path):
    path = write_config(text)
    with pytest.raises(ConfigError, match=rf"{_at(path)}:{line}: {key_path}: duplicate key "):
        load_config(path)


@pytest.mark.parametrize("value", [
    '!!python/object/apply:os.system ["echo pwned"]',
    '!!python/object/apply:os.system "echo pwned"',
    "!!python/object/new:dict {a: 1}",
    "!!python/name:os.system",
    "!!python/tuple [1, 2]",
])
def test_python_object_tags_are_refused(write_config, value):
    path = write_config(f"name: a\nseed: {value}\n")
    with pytest.raises(ConfigError, match=rf"{_at(path)}:2: .*tags that create objects are not allowed"):
        load_config(path)


def test_alias_bomb_is_refused():
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 8):
        lines.append(f"{chr(97 + i)}: &{chr(97 + i)} [{', '.join(['*' + chr(96 + i)] * 10)}]")
    with pytest.raises(ConfigError, match="more than 50,000 values"):
        parse_yaml("\n".join(lines))


def test_deep_nesting_is_refused():
    text = "a: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)
    with pytest.raises(ConfigError, match="nested"):
        parse_yaml(text)


def test_keys_must_be_names():
    with pytest.raises(ConfigError, match=r"<string>:2: .*keys must be names \(strings\), received 3"):
        parse_yaml("a: 1\n3: x\n")


@pytest.mark.parametrize("config", ["mnist_cnn.yaml", "mnist_cnn_keras.yaml", "mnist_deep_cnn.yaml",
                                    "mnist_lstm.yaml"])
def test_a_written_config_reads_back_as_the_same_config(config, configs_dir, tmp_path):
    """What dlcli writes as RUN/config.yaml is read back (`dlcli train RUN/config.yaml`) as the
    very config it was written from."""
    from dlcli.config import dump_config

    cfg = load_config(configs_dir / config)
    written = tmp_path / "config.yaml"
    written.write_text(dump_config(cfg), encoding="utf-8")
    assert parse_yaml(written.read_text(encoding="utf-8"))[0] == cfg
    assert load_config(written) == cfg


@pytest.mark.parametrize("name", ["1e3", "1E-3", "+2.5e10", "1_000e3", "yes", "null", "0x1f", "1:20", "~", "- a"])
def test_a_string_the_loader_reads_as_a_number_is_written_quoted(name, tiny_config_text, tmp_path):
    """Issue 15 #13: `name: '1e3'` was written unquoted, and read back as the float 1000.0."""
    from dlcli.config import config_from_text, dump_config

    cfg = config_from_text(tiny_config_text.replace("name: tiny", f"name: '{name}'"))
    assert cfg["name"] == name
    assert parse_yaml(dump_config(cfg))[0] == cfg
