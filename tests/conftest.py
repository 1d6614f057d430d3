"""Shared fixtures for the whole suite.

Layout: tests mirror the package (`tests/config/` for `dlcli/config/`, `tests/cli/`
for `dlcli/cli/`, ...). Every test directory is a package (it has an
`__init__.py`), so test modules in different directories may share a basename;
a new test directory needs an empty `__init__.py` too. Data files for tests go in
a directory without test modules (e.g. `tests/fixtures/`), read via `repo_root`.

Run from the repository root with `python -m pytest`, which imports this
checkout's `dlcli` whatever else is installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Callable

import pytest

from tests.hang_guard import HANG_S

REPO_ROOT = Path(__file__).resolve().parent.parent

# dlcli's rich consoles read these when they are created (at import): without them the CLI
# tests see plain, uncoloured 80-column text wherever the suite runs.
for _name in ("FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS"):
    os.environ.pop(_name, None)

# A small valid config (the seed model). Tests that need a variation format
# their own text; `write_config` dedents whatever it is given.
TINY_CONFIG = """\
name: tiny
model:
  input_shape: [1, 28, 28]
  layers:
    - conv2d: {filters: 4, kernel_size: 3, activation: relu}
    - maxpool2d: {pool_size: 2}
    - flatten
    - dense: {units: 10}
data:
  dataset: mnist
  batch_size: 32
optimizer: {type: adam, lr: 1e-3}
loss: cross_entropy
metrics: [accuracy]
trainer:
  epochs: 1
  device: cpu
"""


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The checkout under test (the directory holding `dlcli/` and `configs/`)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def configs_dir(repo_root: Path) -> Path:
    return repo_root / "configs"


@pytest.fixture
def tiny_config_text() -> str:
    """Text of a small valid config; see TINY_CONFIG."""
    return TINY_CONFIG


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """`write_config(text, name="config.yaml") -> Path`: write dedented YAML into tmp_path."""

    def write(text: str, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def cli():
    """`cli(*args) -> click Result`: run `dlcli ARGS...` in-process through typer's CliRunner.

    `result.stdout` and `result.stderr` are separate; `result.output` holds both.
    Exceptions other than SystemExit are caught into `result.exception`.
    """
    from typer.testing import CliRunner

    from dlcli.cli import app

    runner = CliRunner()

    def invoke(*args: object, **kwargs):
        return runner.invoke(app, [str(a) for a in args], **kwargs)

    return invoke


@pytest.fixture(scope="session")
def run_python(repo_root: Path) -> Callable[..., subprocess.CompletedProcess]:
    """`run_python(*args, timeout=HANG_S)`: run `python ARGS...` in a fresh process with this
    checkout first on the path (e.g. `run_python("-m", "dlcli", "validate", path)`)."""
    env = {**os.environ, "PYTHONPATH": str(repo_root)}

    def run(*args: object, timeout: float = HANG_S) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *map(str, args)], cwd=repo_root, env=env, capture_output=True,
                              text=True, timeout=timeout)

    return run


@pytest.fixture
def unprivileged():
    """A `tests.privileges.Workspace`: a folder for the test's files and `run(*args)`, `python -m
    dlcli ARGS` as a user whom file permissions stop (uid 65534 when the suite runs as root).
    Skips, saying why, where no such user can run (see `unprivileged_skip_reason`)."""
    from tests.privileges import Workspace, unprivileged_skip_reason

    reason = unprivileged_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    workspace = Workspace()
    yield workspace
    workspace.remove()
