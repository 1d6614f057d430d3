"""Start-up: `--help`, the listings and config errors answer without importing torch.

Nothing here is timed (see benchmarks/startup.py for that); each check runs a fresh
interpreter and asks whether torch got imported.
"""

from __future__ import annotations

import re

import pytest

BAD_CONFIG = "model:\n  input_shape: [1, 28, 28]\n  layers: [conv2: {filters: 3}]\ndata: mnist\n"

# Runs the CLI in-process, then reports the exit status and whether torch was imported.
CLI_THEN_REPORT = """\
import sys
from dlcli.cli import app
try:
    code = app(sys.argv[1:], standalone_mode=False)
except SystemExit as exit:
    code = exit.code
print('exit', code or 0, 'torch', 'torch' in sys.modules)
"""


def test_importing_the_cli_config_and_layers_does_not_import_torch(run_python):
    result = run_python("-c", "import dlcli.cli, dlcli.config, dlcli.layers; import sys; "
                              "print('torch' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_every_registry_declaration_imports_without_torch(run_python):
    result = run_python("-c", "import dlcli.activations, dlcli.losses, dlcli.optim, dlcli.metrics, dlcli.data, "
                              "dlcli.registry, dlcli.errors; import sys; print('torch' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("args", [["--help"], ["list-layers"], ["list-layers", "lstm"], ["list", "optimizers"],
                                  ["list", "datasets", "--json"], ["validate", "{bad}"]],
                         ids=lambda args: " ".join(args))
def test_command_runs_without_importing_torch(run_python, tmp_path, args):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_CONFIG)
    result = run_python("-c", CLI_THEN_REPORT, *[a.format(bad=bad) for a in args])
    expected_code = 2 if args[0] == "validate" else 0
    assert result.stdout.splitlines()[-1] == f"exit {expected_code} torch False", result.stdout + result.stderr


@pytest.mark.parametrize("args", [["--help"], ["list-layers"], ["plot", "--help"]], ids=lambda args: " ".join(args))
def test_matplotlib_a_dependency_is_imported_only_to_plot(run_python, args):
    result = run_python("-c", CLI_THEN_REPORT.replace("'torch'", "'matplotlib'"), *args)
    assert result.stdout.splitlines()[-1] == "exit 0 matplotlib False", result.stdout + result.stderr


def test_config_error_through_python_m_dlcli_does_not_import_torch(run_python, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_CONFIG)
    result = run_python("-X", "importtime", "-m", "dlcli", "validate", bad)
    assert result.returncode == 2
    assert "unknown layer 'conv2'; did you mean 'conv2d'?" in result.stderr
    assert "Traceback" not in result.stderr
    imported = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", result.stderr, flags=re.MULTILINE)
    assert "dlcli.cli" in imported and "yaml" in imported  # the -X importtime report is there
    assert not [m for m in imported if m == "torch" or m.startswith("torch.")]


def test_validating_a_good_config_does_import_torch(run_python, repo_root):
    # the control: the same wrapper sees torch once a model is really built
    result = run_python("-c", CLI_THEN_REPORT, "validate", repo_root / "configs" / "mnist_cnn.yaml")
    assert result.stdout.splitlines()[-1] == "exit 0 torch True", result.stdout + result.stderr
