"""Huge input through the command line: a 100,000-character value, key, override, name or
path gives exit status 2 and a short `error:` message (what it echoes is cut), never a
traceback."""

from __future__ import annotations

import re

import pytest

HUGE = 100_000
SHORT = 2_000  # characters of stderr; a value echoed in full made a message of 900 KB
CUT = r"'[ak]{55}\.\.\.' \(100,000 characters\)"


def assert_short_error(result, expected: str) -> None:
    assert result.exit_code == 2, result.output[:SHORT]
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output and len(result.stdout) < SHORT  # `resuming PATH` is cut too
    assert result.stderr.startswith("error: ") and len(result.stderr) < SHORT, result.stderr[:SHORT]
    assert re.search(expected, result.stderr), result.stderr


@pytest.mark.parametrize("old, new, overrides, expected", [
    ("device: cpu", f"device: {'a' * HUGE}", [],
     rf"trainer\.device: expected auto, cpu, cuda, cuda:N or mps; received: {CUT}"),
    ("  epochs: 1", f"  epochs: 1\n  ? {'k' * HUGE}\n  : 1", [],
     r"trainer\.k{57}\.\.\. \(100,000 characters\): unknown argument 'k{57}\.\.\.' \(100,000 characters\) for "
     r"trainer; valid arguments: epochs, "),
    ("", "", [f"trainer.device={'a' * HUGE}"],
     rf"override 'trainer\.device=a+\.\.\.' \(100,015 characters\): trainer\.device: expected auto, cpu, cuda, "
     rf"cuda:N or mps; received: {CUT}"),
    ("", "", [f"model.input_shape=[{', '.join(['1'] * HUGE)}]"],
     r"invalid YAML: the document has more than 50,000 keys and values; a config is small"),
    ("", "", [f"trainer.{'k' * HUGE}=1"], r"unknown argument 'k{57}\.\.\.' \(100,000 characters\) for trainer"),
], ids=["string value", "key", "override value", "override list of 100,000 items", "override key"])
def test_validate_huge_config_input(cli, write_config, tiny_config_text, old, new, overrides, expected):
    path = write_config(tiny_config_text.replace(old, new))
    result = cli("validate", path, *overrides)
    assert_short_error(result, expected)
    assert result.stdout == ""


@pytest.mark.parametrize("args, expected", [
    (["list-layers", "a" * HUGE], rf"unknown layer {CUT}; valid layers: conv1d, "),
    (["list", "a" * HUGE], rf"unknown kind {CUT}; expected one of: layers, "),
    (["evaluate", "run", "--split", "a" * HUGE], rf"unknown split {CUT}; expected one of: train, val, test"),
    (["export", "run", "--format", "a" * HUGE], rf"unknown export format {CUT}; expected one of: torchscript, "),
    (["train", "a" * HUGE, "--resume", "run"], r"give a CONFIG or --resume RUN_DIR, not both \(received 'a{295}"
                                               r"\.\.\.' \(100,000 characters\) and --resume run\)"),
], ids=["layer", "kind", "split", "format", "config and resume"])
def test_huge_names_on_the_command_line(cli, args, expected):
    assert_short_error(cli(*args), expected)


@pytest.mark.parametrize("args", [["validate"], ["train"], ["train", "--resume"], ["evaluate"], ["export"],
                                  ["predict", "{path}", "x.png"], ["plot"], ["runs"]],
                         ids=lambda args: " ".join(args))
def test_a_path_too_long_for_the_file_system(cli, args):
    path = "a" * HUGE  # ENAMETOOLONG wherever the command first touches it
    result = cli(*[a.replace("{path}", path) for a in args], *([] if "{path}" in args else [path]))
    assert_short_error(result, r"^error: a{297}\.\.\. \(100,000 characters\): cannot access it: File name too long$")


def test_through_python_m_dlcli(run_python, write_config, tiny_config_text):
    result = run_python("-m", "dlcli", "validate", write_config(tiny_config_text), f"trainer.device={'a' * HUGE}")
    assert result.returncode == 2 and "Traceback" not in result.stderr and result.stdout == ""
    assert len(result.stderr) < SHORT and re.search(rf"trainer\.device: .* received: {CUT}", result.stderr)
