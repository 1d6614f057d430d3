"""dlcli.files.atomic_write_bytes: the mode of what it writes, as `open(path, "w")` gives it."""

from __future__ import annotations

import os
import stat
import sys

import pytest

from dlcli.files import atomic_write_bytes, current_umask


@pytest.fixture
def umask():
    """`umask(mask)` sets the process umask for the test; the old one is put back after."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def write(path, data: bytes) -> None:
    atomic_write_bytes(path, lambda handle: handle.write(data))


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077, 0o002])
def test_a_new_file_gets_the_mode_open_gives_under_the_umask(tmp_path, umask, mask):
    umask(mask)
    assert current_umask() == mask
    write(tmp_path / "atomic.bin", b"new")
    (tmp_path / "plain.bin").write_bytes(b"new")
    assert mode_of(tmp_path / "atomic.bin") == mode_of(tmp_path / "plain.bin") == 0o666 & ~mask


def test_overwriting_keeps_the_file_s_mode_and_replaces_its_content(tmp_path, umask):
    umask(0o022)
    path = tmp_path / "summary.json"
    write(path, b"old")
    path.chmod(0o600)  # the user made it private: as with open(path, "w"), it stays so
    write(path, b"new")
    assert path.read_bytes() == b"new" and mode_of(path) == 0o600
    path.chmod(0o664)
    write(path, b"newer")
    assert path.read_bytes() == b"newer" and mode_of(path) == 0o664
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]  # no temporary file left


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the umask is shown in /proc on Linux only")
def test_writing_never_sets_the_umask(tmp_path, monkeypatch):
    # os.umask reads the umask by setting it: a thread creating a file meanwhile would get the wrong mode
    calls = []
    monkeypatch.setattr(os, "umask", calls.append)
    write(tmp_path / "atomic.bin", b"x")
    assert calls == [] and (tmp_path / "atomic.bin").read_bytes() == b"x"
