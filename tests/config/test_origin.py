"""dlcli.config.ConfigOrigin: errors found after validation, reported at their key's line."""

from __future__ import annotations

from dlcli.config import load_config_with_origin
from dlcli.errors import ConfigError, DataError, DlcliError


def test_an_error_about_a_key_becomes_a_problem_at_its_line(write_config, tiny_config_text):
    path = write_config(tiny_config_text)
    cfg, origin = load_config_with_origin(path, ["data.batch_size=8"])
    assert cfg["data"]["batch_size"] == 8
    located = origin.located(DataError("trainer.device: mps was asked for", key=("trainer", "device")))
    assert isinstance(located, ConfigError) and located.exit_code == 2
    assert str(located) == f"{path}: 1 problem\n  - {path}:17: trainer.device: mps was asked for"  # not said twice
    by_override = origin.located(DataError("too big", key=("data", "batch_size")))
    assert str(by_override).endswith("- override 'data.batch_size=8': data.batch_size: too big")
    deeper = origin.located(DataError("no such thing", key=("data", "not_written")))
    assert str(deeper).endswith(f"- {path}:9: data.not_written: no such thing")  # the closest key written


def test_an_error_without_a_key_is_left_as_it_is(write_config, tiny_config_text):
    _, origin = load_config_with_origin(write_config(tiny_config_text))
    err = DataError("some file: broken")
    assert origin.located(err) is err


def test_a_key_is_given_once():
    err = DlcliError("x", key=("data", "test_path"))
    assert err.at_key(("data", "path")).key == ("data", "test_path")
    assert DataError("y").at_key(["data", "path"]).key == ("data", "path")
