"""The files a training run writes have the mode any file the user creates gets."""

import os
import stat
from pathlib import Path

from dlcli.train import train


def test_every_file_of_a_run_has_the_umask_mode(tiny_cfg):
    old = os.umask(0o027)
    try:
        run_dir = Path(train(tiny_cfg("trainer.epochs=1"))["run_dir"])
    finally:
        os.umask(old)
    files = {str(p.relative_to(run_dir)): stat.S_IMODE(p.stat().st_mode) for p in run_dir.rglob("*") if p.is_file()}
    # config, summary, checkpoints... are written atomically (a temporary file renamed), metrics.jsonl by appending
    assert sorted(files) == ["checkpoints/best.pt", "checkpoints/last.pt", "config.yaml", "environment.json",
                             "metrics.csv", "metrics.jsonl", "summary.json"]
    assert files == dict.fromkeys(files, 0o640)


def test_environment_record_gives_the_command_as_typed_where_it_ran_and_uncommitted_changes(tmp_path, monkeypatch):
    import shutil
    import subprocess
    import sys

    from dlcli.runs import environment_record

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["/somewhere/dlcli/__main__.py", "train", "my cfg.yaml", "trainer.epochs=2"])
    record = environment_record("cpu")
    assert record["command"] == "dlcli train 'my cfg.yaml' trainer.epochs=2"
    assert record["cwd"] == str(tmp_path) and record["argv"][0] == "/somewhere/dlcli/__main__.py"
    assert record["git_commit"] is None and record["git_dirty"] is None  # not a repository
    if shutil.which("git"):
        git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
        (tmp_path / "cfg.yaml").write_text("a: 1\n")
        for args in (["init", "-q"], ["add", "cfg.yaml"], ["commit", "-qm", "c"]):
            subprocess.run(git + args, cwd=tmp_path, check=True)
        assert environment_record("cpu")["git_dirty"] is False
        (tmp_path / "cfg.yaml").write_text("a: 2\n")
        record = environment_record("cpu")
        assert len(record["git_commit"]) == 40 and record["git_dirty"] is True


def test_summary_names_the_run_directory_absolutely_for_a_relative_out_dir(tmp_path, monkeypatch):
    import json
    from pathlib import Path

    from dlcli.train import train
    from tests.samples import tiny_mnist

    monkeypatch.chdir(tmp_path)
    summary = train(tiny_mnist("relative/runs", "trainer.epochs=1", "scheduler=null"))
    written = json.loads((Path(summary["run_dir"]) / "summary.json").read_text())
    assert Path(written["run_dir"]).is_absolute() and Path(written["run_dir"]).parent.parent == \
        tmp_path / "relative" / "runs"
