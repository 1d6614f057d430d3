"""dlcli.cli._app: what every command shares, here the last line of defence for OSErrors."""

import dlcli.checkpoint


def test_an_os_error_no_command_foresaw_names_the_path_not_a_traceback(tmp_path, monkeypatch, cli):
    """Issue 15 #7: `evaluate /root/x.pt` as an unprivileged user gave a PermissionError traceback."""
    def denied(path, prefer="best.pt"):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(dlcli.checkpoint, "resolve_checkpoint_path", denied)
    result = cli("evaluate", "/root/x.pt")
    assert result.exit_code == 2 and result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert "error: /root/x.pt: cannot access it: Permission denied (as this user; check the permissions of the " \
           "file and of the folders above it)" in " ".join(result.output.split())
