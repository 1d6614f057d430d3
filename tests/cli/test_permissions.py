"""Files and folders this user may not read (issue 15 #7), for real: `python -m dlcli` as a user
whom permissions stop (tests/privileges.py; uid 65534 when the suite runs as root). Each is exit
status 2 and a message naming the path and what dlcli could not do, never a traceback, and never
a listing that silently leaves out a folder it could not read."""

from __future__ import annotations

import pytest

from tests.samples import PERMISSION_DENIED, STREAMED_IMAGES, tiny_images_config, write_tiny_images


def refused(result, message: str) -> None:
    """Exit status 2, `error: ...` holding `message` (the message joined back into one line)."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert message in " ".join(result.stderr.split()), result.stderr


@pytest.fixture
def images_run(unprivileged, cli):
    """A run trained (here, before the workspace is handed over) on unprivileged.root/train."""
    config = tiny_images_config(unprivileged.root, write_tiny_images(unprivileged.root / "train"), "trained.yaml")
    result = cli("train", config)
    assert result.exit_code == 0, result.output
    (run,) = (unprivileged.root / "runs" / "pets").iterdir()
    return run


def test_a_config_in_a_folder_this_user_may_not_enter(unprivileged, tiny_config_text):
    folder = unprivileged.root / "private"
    folder.mkdir()
    (folder / "x.yaml").write_text(tiny_config_text)
    folder.chmod(0)
    refused(unprivileged.run("validate", folder / "x.yaml"),
            f"{folder / 'x.yaml'}: cannot access it: {PERMISSION_DENIED}")


def test_a_config_this_user_may_not_read(unprivileged, tiny_config_text):
    config = unprivileged.root / "x.yaml"
    config.write_text(tiny_config_text)
    config.chmod(0)
    refused(unprivileged.run("validate", config), f"cannot read the file: {PERMISSION_DENIED}")


def test_a_checkpoint_in_a_folder_this_user_may_not_enter(unprivileged):
    folder = unprivileged.root / "private"
    folder.mkdir()
    (folder / "x.pt").write_bytes(b"PK")
    folder.chmod(0)
    refused(unprivileged.run("evaluate", folder / "x.pt"), f"{folder / 'x.pt'}: cannot access it: {PERMISSION_DENIED}")


def test_a_runs_folder_this_user_may_not_list(unprivileged):
    folder = unprivileged.root / "private"
    folder.mkdir()
    folder.chmod(0)
    refused(unprivileged.run("runs", folder), f"{folder}: cannot list the folder: {PERMISSION_DENIED}")


def test_a_class_folder_this_user_may_not_list(unprivileged, images_run):
    """Before: validate and train said the class folder held no images, predict left its images
    out without a word."""
    data = write_tiny_images(unprivileged.root / "data")
    (data / "dog").chmod(0)
    expected = f"{data / 'dog'}: cannot list the folder: {PERMISSION_DENIED}"
    refused(unprivileged.run("validate", tiny_images_config(unprivileged.root, data)), expected)
    refused(unprivileged.run("train", tiny_images_config(unprivileged.root, data, extra=STREAMED_IMAGES)), expected)
    refused(unprivileged.run("evaluate", images_run, "--data", data), expected)
    refused(unprivileged.run("predict", images_run, data), expected)


def test_an_image_this_user_may_not_read(unprivileged, images_run):
    data = write_tiny_images(unprivileged.root / "data")
    (data / "dog" / "1.png").chmod(0)
    expected = f"{data / 'dog' / '1.png'}: cannot read the image: {PERMISSION_DENIED}"
    refused(unprivileged.run("validate", tiny_images_config(unprivileged.root, data)), expected)
    refused(unprivileged.run("train", tiny_images_config(unprivileged.root, data)), expected)
    streamed = tiny_images_config(unprivileged.root, data, "streamed.yaml", STREAMED_IMAGES)
    refused(unprivileged.run("train", streamed), expected)
    refused(unprivileged.run("predict", images_run, data), expected)
    refused(unprivileged.run("predict", images_run, data / "dog" / "1.png"), expected)
