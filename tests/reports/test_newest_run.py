"""evaluate, predict, export and plot given runs/NAME (or runs/) take its newest run, by run id."""

import json
import os
import shutil
from pathlib import Path

import pytest

from dlcli.errors import RunError
from dlcli.run_listing import resolve_run_argument, run_id_key

IDS = ("20260101-120000", "20251231-235959", "20260101-090000")  # the newest first, not in copy order


def _runs(run, root: Path, name: str = "tiny_table", ids=IDS) -> list[Path]:
    """Copies of `run` as root/name/<id>, each copied later given a later file time than the
    one before: the newest by run id (IDS[0]) is the oldest on disk."""
    copies = []
    for age, run_id in enumerate(ids):
        target = Path(shutil.copytree(run, root / name / run_id))
        for path in [target, *target.rglob("*")]:
            os.utime(path, (1e9 + age, 1e9 + age))  # a fixed time: nothing depends on the clock
        copies.append(target)
    return copies


def _without_checkpoints(run: Path) -> Path:
    """A run that stopped before its first epoch ended: no checkpoint, no epoch record."""
    for checkpoint in (run / "checkpoints").glob("*.pt"):
        checkpoint.unlink()
    (run / "metrics.jsonl").write_text("")
    return run


def test_run_ids_sort_by_start_then_suffix():
    names = ["20260101-120000-1", "baseline", "20260101-120000", "20251231-235959", "20260101-120000-10"]
    assert sorted(names, key=run_id_key) == ["baseline", "20251231-235959", "20260101-120000",
                                             "20260101-120000-1", "20260101-120000-10"]


@pytest.mark.parametrize("command", ["evaluate", "predict", "export", "plot"])
def test_a_name_folder_gives_its_newest_run_and_says_which(table_run, tmp_path, cli, command):
    newest, *_ = _runs(table_run, tmp_path / "runs")
    args = {"evaluate": ["--split", "train", "--json"], "predict": [table_run.parents[2] / "table.csv", "--json"],
            "export": ["--format", "state_dict"], "plot": []}[command]
    result = cli(command, tmp_path / "runs" / "tiny_table", *args)
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"note: using the newest run of 3: {newest}\n")
    written = {"evaluate": "eval_train.json", "predict": None, "export": "export/best.state_dict.pt",
               "plot": "learning_curves.png"}[command]
    if command in ("evaluate", "predict"):  # stdout is the report alone, as --json promises
        assert json.loads(result.stdout)["checkpoint"] == str(newest / "checkpoints" / "best.pt")
    if written:
        others = [p for p in (tmp_path / "runs" / "tiny_table").iterdir() if p != newest]
        assert (newest / written).is_file() and not any((p / written).exists() for p in others)


@pytest.mark.parametrize("command, needs, lacking", [("evaluate", "checkpoint", "a checkpoint"),
                                                     ("predict", "checkpoint", "a checkpoint"),
                                                     ("export", "checkpoint", "a checkpoint"),
                                                     ("plot", "epochs", "a finished epoch")])
def test_newer_runs_without_a_checkpoint_are_skipped_with_a_note(table_run, tmp_path, cli, command, needs, lacking):
    newest, older, oldest = _runs(table_run, tmp_path / "runs")
    _without_checkpoints(newest)
    chosen, note = resolve_run_argument(tmp_path / "runs" / "tiny_table", needs)
    assert chosen == oldest  # IDS: 20260101-090000 is the newest after 20260101-120000
    assert note == (f"using the newest run of 3: {oldest} (skipped 1 newer run without {lacking} yet, still in or "
                    f"crashed in its first epoch: {newest})")
    args = {"evaluate": ["--split", "train"], "predict": [table_run.parents[2] / "table.csv"],
            "export": ["--format", "state_dict"], "plot": []}[command]
    result = cli(command, tmp_path / "runs" / "tiny_table", *args)
    assert result.exit_code == 0, result.output
    assert f"skipped 1 newer run without {lacking} yet" in " ".join(result.stderr.split())


def test_the_runs_folder_gives_the_newest_run_of_every_name(table_run, tmp_path, cli):
    _runs(table_run, tmp_path / "runs", "a", IDS[1:])
    (newest,) = _runs(table_run, tmp_path / "runs", "b", IDS[:1])
    result = cli("plot", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"note: using the newest run of 3 runs in 2 name folders: {newest}\n")
    assert (newest / "learning_curves.png").is_file()


@pytest.mark.parametrize("command", ["evaluate", "predict", "export", "plot"])
def test_an_empty_name_folder_is_refused(tmp_path, cli, command):
    (tmp_path / "runs" / "tiny_table").mkdir(parents=True)
    args = ["x.csv"] if command == "predict" else []
    result = cli(command, tmp_path / "runs" / "tiny_table", *args)
    assert result.exit_code == 2 and result.exception is not None and isinstance(result.exception, SystemExit)
    assert " ".join(result.stderr.split()) == (
        f"error: {tmp_path / 'runs' / 'tiny_table'}: no runs in it; expected a run directory (runs/<name>/<id>), "
        f"a folder of runs (runs/<name>) or of name folders (runs/), as dlcli train writes them (trainer.out_dir)")


def test_a_folder_whose_runs_have_no_checkpoint_is_refused(table_run, tmp_path, cli):
    for run in _runs(table_run, tmp_path / "runs", ids=IDS[:2]):
        _without_checkpoints(run)
    folder = tmp_path / "runs" / "tiny_table"
    with pytest.raises(RunError, match=r"tiny_table: none of its 2 runs has a checkpoint yet \(.*20260101-120000, "
                                       r".*20251231-235959\); expected a run that finished at least one epoch"):
        resolve_run_argument(folder, "checkpoint")
    result = cli("export", folder)
    assert result.exit_code == 2 and "none of its 2 runs has a checkpoint yet" in result.stderr


def test_a_run_directory_a_checkpoint_and_a_missing_path_are_taken_as_given(table_run, tmp_path):
    for path in (table_run, table_run / "checkpoints", table_run / "checkpoints" / "best.pt", tmp_path / "nothing"):
        assert resolve_run_argument(path, "checkpoint") == (path, None)
