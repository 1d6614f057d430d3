"""dlcli.errors: one error family, and the pieces every message is made of."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import dlcli
from dlcli.errors import (MAX_PROBLEMS_SHOWN, CheckpointError, ConfigError, DataError, DlcliError, Problem, RunError,
                          did_you_mean, format_path, install_hint, short_list, short_repr, short_size, shorten)


@pytest.mark.parametrize("cls", [ConfigError, DataError, CheckpointError, RunError])
def test_every_error_is_a_dlcli_error_with_exit_status_2(cls):
    assert issubclass(cls, DlcliError) and cls.exit_code == 2


@pytest.mark.parametrize("path, text", [
    (("model", "layers", 2, "kernel_size"), "model.layers[2].kernel_size"),
    (("metrics", 0), "metrics[0]"),
    ((), "<top level>"),
])
def test_format_path(path, text):
    assert format_path(path) == text


def test_did_you_mean():
    assert did_you_mean("epoch", ["epochs", "device"]) == " did you mean 'epochs'?"
    assert did_you_mean("CONV2D", ["conv2d"]) == " did you mean 'conv2d'?"
    assert did_you_mean("zzz", ["epochs"]) == ""
    assert did_you_mean(3, ["epochs"]) == ""


def test_short_repr_keeps_short_values_as_repr_gives_them():
    for value in (-3, "relu", [1, 2], {"a": 1}, None, 1e-3, "x" * 58):
        assert short_repr(value) == repr(value)


@pytest.mark.parametrize("value, text", [
    ("x" * 1000, "'" + "x" * 55 + "...' (1,000 characters)"),
    ('it\'s ' * 20, '"' + "it's " * 11 + '..." (100 characters)'),
    ([1] * 100_000, "[" + "1, " * 18 + "1...] (100,000 items, 300,000 characters)"),
    (["x" * 100], "['" + "x" * 54 + "...] (1 item, 104 characters)"),
    (int("9" * 99), "9" * 57 + "... (99 digits)"),
    (10 ** 100_000, "<an integer of about 100,000 digits>"),  # too long for str(): no ValueError
], ids=["string", "string with quotes", "list", "list with a long item", "integer", "huge integer"])
def test_short_repr_cuts_a_long_value_and_says_how_long_it_was(value, text):
    assert short_repr(value) == text


def test_shorten_and_short_list():
    assert shorten("epochs") == "epochs" and shorten("epochs", quote=True) == "'epochs'"
    assert shorten("k" * 12_000) == "k" * 57 + "... (12,000 characters)"
    assert shorten("k" * 12_000, quote=True) == "'" + "k" * 57 + "...' (12,000 characters)"
    assert short_list(["a", "b"]) == "a, b"
    assert short_list(range(100)) == ", ".join(map(str, range(20))) + ", ... (100 in all)"
    assert short_list(["k" * 1000], short_repr) == "'" + "k" * 55 + "...' (1,000 characters)"


@pytest.mark.parametrize("echo", [
    lambda huge: format_path(("trainer", huge)),
    lambda huge: did_you_mean("k" * 99, [huge]),
    lambda huge: short_list([huge] * 1000),
], ids=["format_path", "did_you_mean", "short_list"])
def test_no_helper_echoes_a_huge_name_in_full(echo):
    assert len(echo("k" * 100_000)) < 2_000


def test_config_error_lists_every_problem():
    err = ConfigError([Problem(("trainer", "epochs"), "expected an integer", "a.yaml:3"),
                       Problem((), "the file is empty")], "a.yaml")
    assert str(err) == ("a.yaml: 2 problems\n"
                        "  - a.yaml:3: trainer.epochs: expected an integer\n"
                        "  - <top level>: the file is empty")
    assert str(ConfigError([Problem(("seed",), "bad", "a.yaml:1")], "a.yaml")).startswith("a.yaml: 1 problem\n")


def test_config_error_shows_the_first_problems_and_counts_the_rest():
    problems = [Problem(("metrics", i), "unknown metric", "a.yaml:3") for i in range(10_000)]
    err = ConfigError(problems, "a.yaml")
    lines = str(err).splitlines()
    assert lines[0] == "a.yaml: 10000 problems" and err.problems == problems
    assert lines[1:MAX_PROBLEMS_SHOWN + 1] == [f"  - a.yaml:3: metrics[{i}]: unknown metric"
                                               for i in range(MAX_PROBLEMS_SHOWN)]
    assert lines[MAX_PROBLEMS_SHOWN + 1:] == [f"  ... and {10_000 - MAX_PROBLEMS_SHOWN:,} more problems"]


@pytest.mark.parametrize("nbytes, text", [(0, "0 bytes"), (1023, "1,023 bytes"), (1024, "1.0 KiB"),
                                          (3 * 2**20 + 2**19, "3.5 MiB"), (23_300_000_000, "21.7 GiB"),
                                          (5000 * 2**30, "5,000.0 GiB")])
def test_short_size(nbytes, text):
    assert short_size(nbytes) == text


# --- install hints -----------------------------------------------------------------------------

# `pip install dlcli` / `pip install 'dlcli[plot]'` fetch an unrelated package of that name from the public index
OTHERS_PACKAGE = re.compile(r"""pip install\s+(?:-\S+\s+)*["']?dlcli\b|["']dlcli\[""")


def test_an_extra_is_installed_from_the_checkout():
    assert install_hint(["onnx", "onnxscript"], "onnx") == \
        "pip install -e '.[onnx]' in the dlcli checkout (or pip install onnx onnxscript)"
    assert install_hint(["onnxruntime"]) == "pip install onnxruntime"


@pytest.mark.parametrize("text", ["pip install dlcli", "pip install 'dlcli[plot]'", "pip install -U dlcli",
                                  'use "dlcli[onnx]"'])
def test_the_hint_check_sees_an_install_of_the_public_dlcli(text):
    assert OTHERS_PACKAGE.search(text)


def test_no_message_in_the_package_installs_someone_elses_dlcli():
    files = sorted(Path(dlcli.__file__).parent.rglob("*.py"))
    assert len(files) > 40, files  # the whole package was read
    found = [f"{path.name}:{text.count(chr(10), 0, match.start()) + 1}: {match.group()}"
             for path in files for text in [path.read_text(encoding="utf-8")] for match in OTHERS_PACKAGE.finditer(text)]
    assert not found, "install hints must say pip install -e '.[EXTRA]' (from the checkout): " + "; ".join(found)
