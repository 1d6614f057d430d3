"""The files a training run writes: the mode any file the user creates gets, the environment
record, and the metrics log, whose appends stay cheap however long the run."""

import json
import os
import re
import stat
from pathlib import Path

import pytest

from dlcli.train import train


def test_every_file_of_a_run_has_the_umask_mode(tiny_cfg):
    old = os.umask(0o027)
    try:
        run_dir = Path(train(tiny_cfg("trainer.epochs=1"))["run_dir"])
    finally:
        os.umask(old)
    files = {str(p.relative_to(run_dir)): stat.S_IMODE(p.stat().st_mode) for p in run_dir.rglob("*") if p.is_file()}
    # config, summary, checkpoints... are written atomically (a temporary file renamed), metrics.jsonl by appending
    assert sorted(files) == [".lock", "checkpoints/best.pt", "checkpoints/last.pt", "config.yaml",
                             "environment.json", "metrics.csv", "metrics.jsonl", "summary.json"]
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


def _step(step, **more):
    return {"kind": "step", "epoch": 1, "step": step, "train_loss": 1 / step, "lr": 0.1, **more}


def _csv_of(tmp_path, records):
    """metrics.csv as a full rewrite of `records` gives it."""
    from dlcli.runs import MetricsLog

    folder = tmp_path / f"rewritten{len(records)}"
    folder.mkdir()
    MetricsLog(folder).rewrite(records)
    return (folder / "metrics.csv").read_text()


def test_metrics_log_appends_a_row_without_reading_the_log_back(tmp_path, monkeypatch):
    """An append costs the same however long the run: metrics.jsonl is not read back and
    metrics.csv not rewritten (same inode), unless the record brings a new column."""
    import dlcli.runs
    from dlcli.runs import MetricsLog, read_metrics

    reads = []
    monkeypatch.setattr(dlcli.runs, "read_metrics", lambda path: reads.append(path) or read_metrics(path))
    log = MetricsLog(tmp_path)
    records = [_step(1)]
    log.append(records[0])  # the first append learns the columns
    inode = (tmp_path / "metrics.csv").stat().st_ino
    for step in range(2, 52):
        records.append(_step(step))
        log.append(records[-1])
    assert len(reads) == 1
    assert (tmp_path / "metrics.csv").stat().st_ino == inode
    assert (tmp_path / "metrics.csv").read_text() == _csv_of(tmp_path, records)
    records.append({**_step(52), "kind": "epoch", "val_loss": 0.5})  # a new column: the CSV is rewritten
    log.append(records[-1])
    assert len(reads) == 2
    assert (tmp_path / "metrics.csv").read_text() == _csv_of(tmp_path, records)
    assert read_metrics(tmp_path / "metrics.jsonl") == (records, 0)


def test_metrics_csv_left_torn_by_a_crash_is_rebuilt_from_metrics_jsonl(tmp_path):
    """A crash can leave metrics.csv with a torn row, or behind metrics.jsonl (written first):
    the next process's first append rebuilds it."""
    from dlcli.runs import MetricsLog

    records = [_step(step) for step in range(1, 6)]
    log = MetricsLog(tmp_path)
    for record in records[:4]:
        log.append(record)
    csv_path = tmp_path / "metrics.csv"
    csv_path.write_text(csv_path.read_text()[:-7])  # the last row torn
    with open(tmp_path / "metrics.jsonl", "a") as handle:  # and a record the CSV never got
        handle.write(json.dumps(records[4]) + "\n")
    records.append(_step(6))
    MetricsLog(tmp_path).append(records[-1])
    assert csv_path.read_text() == _csv_of(tmp_path, records)


def test_resume_removes_only_its_own_temporary_files(tiny_cfg):
    """Leftovers of dlcli's atomic writes of the run's files go, also those an older dlcli named
    .<name>.<8 random>.tmp; a user's hidden .tmp files and a concurrent `dlcli evaluate`'s
    temporary report stay."""
    from dlcli.files import atomic_write_bytes
    from dlcli.train import resume

    run_dir = Path(train(tiny_cfg("trainer.epochs=1"))["run_dir"])
    seen = []
    atomic_write_bytes(run_dir / "notes.txt", lambda handle: seen.extend(p.name for p in run_dir.glob(".*.tmp")))
    assert len(seen) == 1 and seen[0].startswith(".notes.txt.dlcli-") and seen[0].endswith(".tmp")
    kept = [run_dir / ".notes.tmp", run_dir / "checkpoints" / ".my-backup.tmp", run_dir / ".last.pt.backup.tmp",
            run_dir / ".eval_test.json.dlcli-k2j4x9ab.tmp", run_dir / "checkpoints" / ".last.pt.copy.tmp",
            run_dir / ".eval_test.json.k2j4x9ab.tmp", run_dir / "checkpoints" / ".model.pt.k2j4x9ab.tmp"]
    removed = [run_dir / ".metrics.jsonl.dlcli-a1b2c3d4.tmp", run_dir / ".summary.json.dlcli-x.tmp",
               run_dir / "checkpoints" / ".last.pt.dlcli-0f9e8d7c.tmp",
               run_dir / "checkpoints" / ".last.pt.0f9e8d7c.tmp", run_dir / "checkpoints" / ".best.pt.a_b2c3d4.tmp",
               run_dir / ".metrics.jsonl.zz9y8x7w.tmp"]  # an older dlcli's
    for path in kept + removed:
        path.write_text("x")
    resume(run_dir, ["trainer.epochs=2"])
    assert [p for p in kept + removed if p.exists()] == kept


def _snapshot(folder: Path) -> dict:
    """Every file but the lock, which records who holds it"""
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".lock"}


@pytest.mark.parametrize("name", ["config.yaml", "environment.json", "metrics.jsonl", "metrics.csv", "summary.json",
                                  "checkpoints/best.pt"])
def test_a_resume_refuses_a_run_file_that_is_a_link_before_writing_anything(name, tiny_cfg, tmp_path, cli):
    """Issue 15 #1: a run received from someone else may hold `metrics.jsonl -> ~/.bashrc`."""
    run_dir = Path(train(tiny_cfg("trainer.epochs=1"))["run_dir"])
    record = run_dir / name
    victim = tmp_path / "victim"
    victim.write_bytes(record.read_bytes())  # what the link points to reads as the record
    record.unlink()
    record.symlink_to(victim)
    before, kept = _snapshot(run_dir), victim.read_bytes()
    result = cli("train", "--resume", run_dir, "trainer.epochs=2")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert re.search(rf"{re.escape(str(record))}: a resume rewrites this file of the run, but it is a symbolic link, "
                     rf"and dlcli never writes through a link.*nothing in the run was changed",
                     " ".join(result.output.split()))
    assert victim.read_bytes() == kept and _snapshot(run_dir) == before


def test_a_resume_refuses_a_checkpoints_folder_that_is_a_link(tiny_cfg, tmp_path, cli):
    run_dir = Path(train(tiny_cfg("trainer.epochs=1"))["run_dir"])
    elsewhere = tmp_path / "elsewhere"
    (run_dir / "checkpoints").rename(elsewhere)
    (run_dir / "checkpoints").symlink_to(elsewhere)
    before = _snapshot(elsewhere)
    result = cli("train", "--resume", run_dir, "trainer.epochs=2")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{run_dir / 'checkpoints'}: it is a symbolic link, and a resume writes the run's checkpoints there" \
        in " ".join(result.output.split())
    assert _snapshot(elsewhere) == before


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "fifo"])
def test_metrics_appends_never_write_through_a_link_or_into_a_fifo(kind, tmp_path):
    from dlcli.errors import RunError
    from dlcli.runs import MetricsLog

    victim = tmp_path / "victim"
    victim.write_text("kept\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    log = MetricsLog(run_dir)
    {"symlink": lambda: log.jsonl.symlink_to(victim), "hardlink": lambda: os.link(victim, log.jsonl),
     "fifo": lambda: os.mkfifo(log.jsonl)}[kind]()
    with pytest.raises(RunError, match=rf"{re.escape(str(log.jsonl))}: cannot append the metrics: it is a "
                                       rf"(symbolic link|hard link|FIFO)"):
        log.append({"kind": "epoch", "epoch": 1})
    assert victim.read_text() == "kept\n"


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory"])
def test_an_atomic_write_refuses_a_target_that_is_not_a_regular_file(kind, tmp_path):
    from dlcli.errors import RunError
    from dlcli.runs import write_text_atomic

    victim = tmp_path / "victim"
    victim.write_text("kept\n")
    target = tmp_path / "summary.json"
    {"symlink": lambda: target.symlink_to(victim), "fifo": lambda: os.mkfifo(target),
     "directory": lambda: target.mkdir()}[kind]()
    with pytest.raises(RunError, match=rf"{re.escape(str(target))}: cannot write: it is a "
                                       rf"(symbolic link|FIFO|directory)"):
        write_text_atomic(target, "{}\n")
    assert victim.read_text() == "kept\n" and sorted(p.name for p in tmp_path.iterdir()) == ["summary.json", "victim"]
