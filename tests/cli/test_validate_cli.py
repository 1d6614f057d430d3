"""`dlcli validate`: the summary on success, exit 2 and clear messages on bad input."""

from __future__ import annotations

import pytest

from dlcli.config import ConfigError
from dlcli.errors import DlcliError

BAD_CONFIG = """\
model:
  input_shape: [1, 28, 28]
  layers:
    - conv2d: {filters: 32, kernel_size: 3}
    - desne: {units: 10}
data: mnist
trainer: {epochs: 0}
"""


def test_validate_mnist_cnn(cli, repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    result = cli("validate", "configs/mnist_cnn.yaml")
    assert result.exit_code == 0, result.output
    assert "Total params: 54,410" in result.stdout
    assert "Trainable params: 54,410" in result.stdout
    for row in ("conv2d (conv2d)", "maxpool2d (maxpool2d)", "flatten (flatten)", "dense (dense)"):
        assert row in result.stdout
    assert "(None, 32, 26, 26)" in result.stdout and "(None, 10)" in result.stdout
    assert "configs/mnist_cnn.yaml: valid" in result.stdout
    assert result.stderr == ""


def test_validate_mnist_cnn_keras(cli, configs_dir):
    result = cli("validate", configs_dir / "mnist_cnn_keras.yaml")
    assert result.exit_code == 0, result.output
    assert "Total params: 54,410" in result.stdout
    assert "(dense)" in result.stdout and "softmax applied at prediction; the loss" in result.stdout


def test_validate_with_overrides(cli, configs_dir):
    result = cli("validate", configs_dir / "mnist_cnn.yaml", "model.layers[0].filters=64", "trainer.epochs=2")
    assert result.exit_code == 0, result.output
    assert "Total params: 108,810" in result.stdout  # 64*9 + 64 and 64*13*13*10 + 10
    assert "(None, 64, 26, 26)" in result.stdout


def test_validate_print_config_prints_the_resolved_config_as_valid_yaml(cli, configs_dir):
    from dlcli.config import config_from_text, load_config

    path = configs_dir / "mnist_cnn_keras.yaml"
    long_name = "a run whose name is rather long, " * 4  # longer than 80 columns
    result = cli("validate", path, "--print-config", f"name={long_name}")
    assert result.exit_code == 0, result.output
    assert "type: conv2d" in result.stdout and "type: adam" in result.stdout
    assert config_from_text(result.stdout) == load_config(path, [f"name={long_name}"])  # stdout is the YAML alone


def test_bad_config_exits_2_with_every_message_and_no_traceback(cli, write_config):
    path = write_config(BAD_CONFIG)
    result = cli("validate", path)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.stdout == ""  # messages go to stderr
    assert f"error: {path}: 2 problems" in result.stderr
    assert f"{path}:5: model.layers[1].type: unknown layer 'desne'; did you mean 'dense'?" in result.stderr
    assert f"{path}:7: trainer.epochs: expected an integer between 1 and 1000000; received: 0" in result.stderr


def test_bad_override_exits_2(cli, configs_dir):
    result = cli("validate", configs_dir / "mnist_cnn.yaml", "trainer.epochz=3")
    assert result.exit_code == 2
    assert "override 'trainer.epochz=3': trainer.epochz: unknown argument 'epochz' for trainer; did you mean " \
           "'epochs'?" in result.stderr


def test_missing_config_file_exits_2(cli, tmp_path):
    result = cli("validate", tmp_path / "nope.yaml")
    assert result.exit_code == 2
    assert "config file not found" in result.stderr and "Traceback" not in result.output


def test_model_too_large_exits_2(cli, write_config):
    path = write_config("model:\n  input_shape: [784]\n  layers: [dense: {units: 3000000}, dense: {units: 10}]\n"
                        "data: mnist\n")
    result = cli("validate", path)
    assert result.exit_code == 2
    assert "is more than dlcli builds" in result.stderr and "Traceback" not in result.output


def test_debug_shows_the_traceback(cli, write_config):
    result = cli("--debug", "validate", write_config(BAD_CONFIG))
    assert result.exit_code != 0 and result.exit_code != 2
    assert isinstance(result.exception, ConfigError)
    assert "unknown layer 'desne'" in str(result.exception)


def test_debug_raises_in_process(write_config):
    from dlcli.cli import app

    with pytest.raises(DlcliError, match="unknown layer 'desne'"):
        app(["--debug", "validate", str(write_config(BAD_CONFIG))], standalone_mode=False)


def test_debug_flag_does_not_stick_to_the_next_command(cli, write_config):
    path = write_config(BAD_CONFIG)
    assert isinstance(cli("--debug", "validate", path).exception, ConfigError)
    assert cli("validate", path).exit_code == 2


def test_help_and_version(cli):
    result = cli("--help")
    assert result.exit_code == 0
    for command in ("validate", "list-layers", "list"):
        assert command in result.stdout
    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.startswith("dlcli ")


@pytest.mark.parametrize("command", [[], ["predict"], ["runs"], ["validate"], ["export"], ["evaluate"]])
def test_help_shows_flags_as_flags(cli, command):
    """typer's rich help writes `--json <bool>`, as if the flag took a value (`--debug true` then
    fails with "No such command 'true'"); the plain help writes `--json`."""
    result = cli(*command, "--help")
    assert result.exit_code == 0 and "<bool>" not in result.stdout and "-h, --help" in result.stdout
    if not command:  # every command's line whole, not cut to '...' by click's 80-column layout
        commands = result.stdout.split("Commands:")[1].strip().splitlines()
        assert len(commands) == 9 and not any(line.rstrip().endswith("...") for line in commands), commands


def test_validate_needs_a_config(cli):
    result = cli("validate")
    assert result.exit_code == 2
    assert "Missing argument" in result.output
