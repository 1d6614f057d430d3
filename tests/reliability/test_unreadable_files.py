"""Files and folders this user may not read or list (issue 15 #7), wherever the suite runs: the
system's refusals are made in this process (`tests.privileges.deny_access`), so these hold as
root too; tests/cli/test_permissions.py shows the same with real permissions. Each is exit
status 2 and a message naming the path and what dlcli could not do, never a traceback, and never
a listing that silently leaves out what it could not read (as `Path.rglob` and `Path.glob` do)."""

from __future__ import annotations

import json

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dlcli.cli import app
from tests.privileges import deny_access
from tests.samples import PERMISSION_DENIED, STREAMED_IMAGES, tiny_images_config, write_tiny_images


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def refused(result, message: str) -> None:
    """Exit status 2, no traceback, `message` in the output (joined back into one line)."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert message in " ".join(result.output.split()), result.output


@pytest.fixture(scope="module")
def images_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("trained")
    result = run("train", tiny_images_config(folder, write_tiny_images(folder / "train")))
    assert result.exit_code == 0, result.output
    (run_dir,) = (folder / "runs" / "pets").iterdir()
    return run_dir


@pytest.fixture
def data(tmp_path) -> Path:
    return write_tiny_images(tmp_path / "data")


# ---------------------------------------------------------------------------
# Image folders: validate, train (in memory and streamed), evaluate --data, predict
# ---------------------------------------------------------------------------

def the_image_commands(tmp_path: Path, data: Path, run_dir: Path) -> dict:
    return {"validate": ["validate", tiny_images_config(tmp_path, data)],
            "train": ["train", tiny_images_config(tmp_path, data)],
            "train streamed": ["train", tiny_images_config(tmp_path, data, "streamed.yaml", STREAMED_IMAGES)],
            "evaluate --data": ["evaluate", run_dir, "--data", data, "--out", tmp_path / "reports"],
            "predict": ["predict", run_dir, data]}


COMMANDS = ["validate", "train", "train streamed", "evaluate --data", "predict"]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_class_folder_it_may_not_list(command, tmp_path, data, images_run, monkeypatch):
    """Before: validate and train said that the class folder held no images; predict left its
    images out without a word."""
    args = the_image_commands(tmp_path, data, images_run)[command]
    deny_access(monkeypatch, data / "dog")
    refused(run(*args), f"{data / 'dog'}: cannot list the folder: {PERMISSION_DENIED}")


@pytest.mark.parametrize("command", ["validate", "predict"])
def test_a_folder_inside_a_class_folder_it_may_not_list(command, tmp_path, data, images_run, monkeypatch):
    """Before: its images were left out without a word (rglob skips what it cannot list)."""
    write_tiny_images(data / "dog" / "more", classes=("x",))
    args = the_image_commands(tmp_path, data, images_run)[command]
    deny_access(monkeypatch, data / "dog" / "more" / "x")
    refused(run(*args), f"{data / 'dog' / 'more' / 'x'}: cannot list the folder: {PERMISSION_DENIED}")


@pytest.mark.parametrize("command", COMMANDS)
def test_an_image_it_may_not_read(command, tmp_path, data, images_run, monkeypatch):
    """Before: `expected a readable image, cannot decode it: [Errno 13] Permission denied:
    np.str_('...')`, and validate passed it."""
    args = the_image_commands(tmp_path, data, images_run)[command]
    deny_access(monkeypatch, data / "dog" / "1.png")
    refused(run(*args), f"{data / 'dog' / '1.png'}: cannot read the image: {PERMISSION_DENIED}")


def test_validate_counts_the_images_it_may_not_read(tmp_path, data, monkeypatch):
    deny_access(monkeypatch, data / "dog" / "1.png", data / "dog" / "2.png", data / "cat" / "0.png")
    refused(run("validate", tiny_images_config(tmp_path, data)),
            f"{data / 'cat' / '0.png'}: cannot read the image: {PERMISSION_DENIED}; and 2 more images this user "
            f"may not read")


def test_a_data_folder_inside_a_folder_it_may_not_enter(tmp_path_factory, data, monkeypatch):
    config = tiny_images_config(tmp_path_factory.mktemp("config"), data)
    deny_access(monkeypatch, data.parent)
    refused(run("validate", config), f"{data}: cannot access it: {PERMISSION_DENIED}")


# ---------------------------------------------------------------------------
# Configs, checkpoints, runs
# ---------------------------------------------------------------------------

def test_a_config_in_a_folder_it_may_not_enter(tmp_path, tiny_config_text, monkeypatch):
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "x.yaml").write_text(tiny_config_text)
    deny_access(monkeypatch, tmp_path / "private")
    refused(run("validate", tmp_path / "private" / "x.yaml"), f"{tmp_path / 'private' / 'x.yaml'}: cannot access it: "
                                                              f"{PERMISSION_DENIED}")


def test_a_checkpoint_in_a_folder_it_may_not_enter(tmp_path, monkeypatch):
    """Before: the CLI's last resort, `PATH: Permission denied`, without what failed."""
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "x.pt").write_bytes(b"PK")
    deny_access(monkeypatch, tmp_path / "private")
    checkpoint = tmp_path / "private" / "x.pt"
    refused(run("evaluate", checkpoint), f"{checkpoint}: cannot access it: {PERMISSION_DENIED}")


def test_a_loop_of_symbolic_links(tmp_path):
    """Before: validate gave a RuntimeError traceback (pathlib's resolve), evaluate and runs said
    `no such file or directory`."""
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    for args in (["validate"], ["evaluate"], ["runs"], ["plot"]):
        refused(run(*args, tmp_path / "a"), f"{tmp_path / 'a'}: cannot access it: Too many levels of symbolic links")


def test_a_runs_folder_it_may_not_list(tmp_path, monkeypatch):
    (tmp_path / "runs").mkdir()
    deny_access(monkeypatch, tmp_path / "runs")
    refused(run("runs", tmp_path / "runs"), f"{tmp_path / 'runs'}: cannot list the folder: {PERMISSION_DENIED}")


def test_a_name_folder_it_may_not_list_is_not_left_out(images_run, monkeypatch):
    """Before: `dlcli runs` listed the other names' runs and said nothing of this one. Now it is
    listed as damaged with the reason, and the runs that can be read are listed as usual."""
    runs = images_run.parent.parent
    (runs / "other").mkdir(exist_ok=True)
    deny_access(monkeypatch, runs / "other")
    result = run("runs", runs, "--json")
    assert result.exit_code == 0, result.output
    rows = {row["path"]: row for row in json.loads(result.stdout)}
    assert rows[str(runs / "other")]["status"] == "damaged"
    assert rows[str(runs / "other")]["reason"] == f"{runs / 'other'}: cannot list the folder: {PERMISSION_DENIED}"
    assert rows[str(images_run)]["status"] == "finished"


def test_a_run_whose_metrics_it_may_not_read_is_listed_as_damaged(images_run, monkeypatch):
    deny_access(monkeypatch, images_run / "metrics.jsonl")
    result = run("runs", images_run.parent, "--json")
    assert result.exit_code == 0, result.output
    assert f"{images_run / 'metrics.jsonl'}: cannot read the metrics log: {PERMISSION_DENIED}" in result.stdout
    refused(run("plot", images_run), f"{images_run / 'metrics.jsonl'}: cannot read the metrics log: "
                                     f"{PERMISSION_DENIED}")


def test_plot_says_when_it_may_not_list_the_run(images_run, monkeypatch):
    """Before: plot drew the learning curves and silently no confusion matrix (glob skips)."""
    deny_access(monkeypatch, images_run, enter=True)  # its files still read by name
    refused(run("plot", images_run), f"{images_run}: cannot list the folder: {PERMISSION_DENIED}")


def test_resume_says_when_it_may_not_list_the_checkpoints(images_run, monkeypatch):
    """Before: `no checkpoint to resume from: the run stopped before its first epoch ended`."""
    deny_access(monkeypatch, images_run / "checkpoints", enter=True)
    refused(run("train", "--resume", images_run),
            f"{images_run / 'checkpoints'}: cannot list the folder: {PERMISSION_DENIED}")


@pytest.mark.parametrize("suffix", [".npz", ".csv"])
def test_a_data_file_in_a_folder_it_may_not_enter(suffix, tmp_path_factory, tiny_config_text, monkeypatch):
    """Before: validate said `cannot read: Permission denied`, train the CLI's last resort."""
    folder = tmp_path_factory.mktemp("private")
    data = folder / f"data{suffix}"
    data.write_text("")
    config = tmp_path_factory.mktemp("config") / "x.yaml"
    config.write_text(tiny_config_text.replace("dataset: mnist", f"dataset: {suffix[1:]}\n  path: {data}"
                                               + ("\n  target: y" if suffix == ".csv" else "")))
    deny_access(monkeypatch, folder)
    for command in ("validate", "train"):
        refused(run(command, config), f"{data}: cannot access it: {PERMISSION_DENIED}")
