"""dlcli.errors: one error family, and the pieces every message is made of."""

from __future__ import annotations

import pytest

from dlcli.errors import (CheckpointError, ConfigError, DataError, DlcliError, Problem, RunError, did_you_mean,
                          format_path, short_repr)


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


def test_short_repr_never_floods():
    assert short_repr("x" * 1000).endswith("...") and len(short_repr("x" * 1000)) == 60
    assert short_repr([1, 2]) == "[1, 2]"


def test_config_error_lists_every_problem():
    err = ConfigError([Problem(("trainer", "epochs"), "expected an integer", "a.yaml:3"),
                       Problem((), "the file is empty")], "a.yaml")
    assert str(err) == ("a.yaml: 2 problems\n"
                        "  - a.yaml:3: trainer.epochs: expected an integer\n"
                        "  - <top level>: the file is empty")
    assert str(ConfigError([Problem(("seed",), "bad", "a.yaml:1")], "a.yaml")).startswith("a.yaml: 1 problem\n")
