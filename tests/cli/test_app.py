"""dlcli.cli._app: what every command shares, here the last line of defence for OSErrors."""

import os
import sys

import pytest

import dlcli.checkpoint


def test_an_os_error_no_command_foresaw_names_the_path_not_a_traceback(tmp_path, monkeypatch, cli):
    """Issue 15 #7: `evaluate /root/x.pt` as an unprivileged user gave a PermissionError traceback."""
    def denied(path, prefer="best.pt"):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(dlcli.checkpoint, "resolve_checkpoint_path", denied)
    result = cli("evaluate", "/root/x.pt")
    assert result.exit_code == 2 and result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert "error: /root/x.pt: Permission denied (as this user; check the permissions of the file and of the " \
           "folders above it)" in " ".join(result.output.split())


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0,
                    reason="runs as root, whom permissions do not stop: the test above stands in for it")
def test_a_config_this_user_may_not_read_is_a_message(tmp_path, tiny_config_text, cli):
    folder = tmp_path / "private"
    folder.mkdir()
    (folder / "x.yaml").write_text(tiny_config_text)
    folder.chmod(0)
    try:
        result = cli("validate", folder / "x.yaml")
    finally:
        folder.chmod(0o755)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert str(folder / "x.yaml") in result.output
