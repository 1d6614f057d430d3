"""dlcli runs: every run with its status, newest first, whatever state its files are in."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dlcli.run_listing import RUNNING_WINDOW_S, best_record, list_runs

REPO = Path(__file__).resolve().parents[2]


def _clone(run, root, name, run_id):
    """A copy of the session's run, written "now": copytree keeps the fixture's file times, and a
    status read from them would depend on how long ago the fixture trained (minutes on a busy
    machine), not on what the test sets with `_age`."""
    target = root / name / run_id
    shutil.copytree(run, target)
    _age(target, 0)
    return target


def _age(path, seconds):
    stamp = time.time() - seconds
    for p in [path, *path.rglob("*")]:
        os.utime(p, (stamp, stamp))


def test_statuses_and_order(mnist_run, tmp_path, cli):
    root = tmp_path / "runs"
    finished = _clone(mnist_run, root, "tiny_mnist", "20260101-100000")
    stopped = _clone(mnist_run, root, "tiny_mnist", "20260101-110000")
    summary = json.loads((stopped / "summary.json").read_text())
    (stopped / "summary.json").write_text(json.dumps({**summary, "status": "stopped_early"}))
    running = _clone(mnist_run, root, "other", "20260102-090000")
    (running / "summary.json").unlink()
    (running / ".lock").unlink()  # an older dlcli's run: no lock to ask, it wrote recently
    crashed = _clone(mnist_run, root, "other", "20260102-080000")
    (crashed / "summary.json").unlink()
    _age(crashed, 2 * RUNNING_WINDOW_S)
    broken = _clone(mnist_run, root, "other", "20260103-080000")
    (broken / "summary.json").write_text('{"status": "finish')
    torn = _clone(mnist_run, root, "other", "20260104-080000")
    (torn / "summary.json").unlink()
    with open(torn / "metrics.jsonl", "a") as handle:
        handle.write('{"kind": "epoch", "epoch": 4, "val_lo')
    (torn / "config.yaml").write_text("trainer: [unclosed\n")
    _age(torn, 2 * RUNNING_WINDOW_S)
    interrupted = _clone(mnist_run, root, "other", "20260105-080000")
    (interrupted / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))

    found = list_runs(root)
    assert len(found) == 7
    assert [r["id"] for r in found] == ["20260105-080000", "20260104-080000", "20260103-080000", "20260102-090000",
                                        "20260102-080000", "20260101-110000", "20260101-100000"]
    status = {r["path"]: r["status"] for r in found}
    assert status == {str(finished): "finished", str(stopped): "stopped", str(running): "running",
                      str(crashed): "crashed", str(broken): "unknown", str(torn): "damaged",
                      str(interrupted): "interrupted"}
    by_id = {r["id"]: r for r in found}
    best = summary["best"]
    assert by_id["20260101-100000"]["best"] == best["value"] and by_id["20260101-100000"]["monitor"] == "val_loss"
    assert (by_id["20260101-100000"]["epochs"], by_id["20260101-100000"]["planned"]) == (3, 3)
    assert "config.yaml" in by_id["20260104-080000"]["reason"]  # a config that does not parse is no run's
    assert by_id["20260102-090000"]["best"] == best["value"]  # computed from metrics.jsonl
    assert by_id["20260101-100000"]["date"] == "2026-01-01T10:00:00"

    result = cli("runs", root)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    for word in ("finished", "stopped", "running", "crashed", "unknown", "damaged", "interrupted", "3/3", "val_loss"):
        assert word in result.output
    result = cli("runs", root, "--json")
    assert result.exit_code == 0 and json.loads(result.output) == found


def test_the_run_lock_tells_running_from_crashed(mnist_run, tmp_path):
    """A run's lock is held while a process trains it and dropped when that process dies, however:
    no guessing from how recently it wrote."""
    root = tmp_path / "runs"
    slow = _clone(mnist_run, root, "tiny_mnist", "20260101-100000")  # a long epoch: nothing written for an hour
    (slow / "summary.json").unlink()
    _age(slow, 4 * RUNNING_WINDOW_S)
    killed = _clone(mnist_run, root, "tiny_mnist", "20260101-110000")  # killed a moment ago
    (killed / "summary.json").unlink()
    resumed = _clone(mnist_run, root, "tiny_mnist", "20260101-120000")  # resumed, then killed
    summary = json.loads((resumed / "summary.json").read_text())
    (resumed / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    _age(resumed / "summary.json", 60)
    code = "import sys; from dlcli.run_lock import acquire; acquire(sys.argv[1]); print('held', flush=True); input()"
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    holder = subprocess.Popen([sys.executable, "-c", code, str(slow)], env=env, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == "held\n"
        status = {r["path"]: r["status"] for r in list_runs(root)}
        assert status == {str(slow): "running", str(killed): "crashed", str(resumed): "crashed"}
    finally:
        holder.kill()
        holder.wait()
    assert {r["path"]: r["status"] for r in list_runs(root)}[str(slow)] == "crashed"


def test_a_single_run_and_a_missing_folder(mnist_run, tmp_path, cli):
    assert [r["path"] for r in list_runs(mnist_run)] == [str(mnist_run)]
    result = cli("runs", tmp_path / "nothing")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "no such directory" in result.output
    (tmp_path / "empty").mkdir()
    assert "no runs in" in cli("runs", tmp_path / "empty").output


def test_runs_of_several_seeds_are_told_apart_by_seed_and_test_figure(mnist_run, tmp_path, cli):
    root = tmp_path / "runs"
    for seed, run_id in ((0, "20260101-100000"), (1, "20260101-110000")):
        run = _clone(mnist_run, root, "sweep", run_id)
        (run / "config.yaml").write_text((run / "config.yaml").read_text().replace("seed: 3", f"seed: {seed}"))
    test = json.loads((mnist_run / "summary.json").read_text())["test"]
    records = list_runs(root)
    assert [r["seed"] for r in records] == [1, 0] and all(r["test"] == test for r in records)
    table = cli("runs", str(root)).stdout
    row = next(line for line in table.splitlines() if "20260101-100000" in line)
    assert "│    0 │" in row and f"accuracy {test['accuracy']:.4f}" in row


@pytest.mark.parametrize("mode, bad", [("min", float("nan")), ("min", float("-inf")), ("max", float("inf")),
                                       ("max", float("nan"))])
def test_best_record_skips_values_the_trainer_never_takes(mode, bad):
    """NaN and infinite epoch values are skipped, as the trainer's `_end_epoch` skips them."""
    records = [{"epoch": 1, "val_loss": bad}, {"epoch": 2, "val_loss": 0.5}, {"epoch": 3, "val_loss": 0.4},
               {"epoch": 4, "val_loss": bad}]
    best = {"min": {"metric": "val_loss", "value": 0.4, "epoch": 3},
            "max": {"metric": "val_loss", "value": 0.5, "epoch": 2}}[mode]
    assert best_record(records, "val_loss", mode) == best
    assert best_record([{"epoch": 1, "val_loss": bad}], "val_loss", mode) == {}


def test_two_runs_on_other_subsets_differ_by_their_overrides(cli, write_config, tmp_path):
    """The table shows each run's path and the overrides it was started with; --json has both."""
    from tests.samples import TINY_MNIST

    config = write_config(TINY_MNIST)
    for subset in (160, 320):
        result = cli("train", config, "trainer.epochs=1", f"data.subset={subset}",
                     f"trainer.out_dir={tmp_path / 'runs'}")
        assert result.exit_code == 0, result.output
    found = list_runs(tmp_path / "runs")
    assert len(found) == 2
    by_subset = {run["overrides"][1]: run for run in found}
    assert sorted(by_subset) == ["data.subset=160", "data.subset=320"]
    table = cli("runs", tmp_path / "runs").stdout
    for subset, run in by_subset.items():
        path, *overrides = _run_cell(table, run["path"])  # the overrides wrap to the path's width
        assert " ".join(overrides) == f"trainer.epochs=1 {subset} trainer.out_dir={tmp_path / 'runs'}", table
        assert run["path"].startswith(str(tmp_path / "runs" / "tiny") + os.sep)
    listed = json.loads(cli("runs", tmp_path / "runs", "--json").stdout)
    assert {run["path"]: run["overrides"] for run in listed} == {run["path"]: run["overrides"] for run in found}


@pytest.mark.parametrize("environment, shown", [
    ({"command": "dlcli train 'my cfg.yaml' data.subset=500 'trainer.device=cuda:0'"},  # an older dlcli's run
     ["data.subset=500", "trainer.device=cuda:0"]),
    ({"command": "dlcli train cfg.yaml", "overrides": ["data.subset=9"]}, ["data.subset=9"]),
    ({"command": "dlcli train cfg.yaml"}, []),
    ({"command": "python my_script.py data.subset=3"}, None),  # dlcli called from a program: not told
    ({}, None)])
def test_overrides_of_older_runs_are_read_from_their_command(mnist_run, tmp_path, cli, environment, shown):
    run = _clone(mnist_run, tmp_path / "runs", "tiny_mnist", "20260101-100000")
    (run / "environment.json").write_text(json.dumps(environment))
    (found,) = list_runs(tmp_path / "runs")
    assert found["overrides"] == shown
    said = "(overrides not recorded)" if shown is None else " ".join(shown)
    assert _run_cell(cli("runs", tmp_path / "runs").stdout, str(run)) == [str(run), *([said] if said else [])]


def _run_cell(table: str, path: str) -> list[str]:
    """The lines of the run column of `dlcli runs` for the run at `path`: its path, then its overrides."""
    lines = table.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"│ {path} "))
    cell = [path]
    for line in lines[start + 1:]:
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if not cells or cells[1]:  # the border, or the next run's row
            break
        cell.append(cells[0])
    return cell


DAMAGE = {  # what no run writes, as an attack on the records leaves it: (file, text, reason)
    "alias bomb": ("config.yaml", "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi")),
        r"config\.yaml:1: the document has more than 50,000 values \(an alias bomb\?\)"),
    "deep config": ("config.yaml", "a: " + "[" * 100_000 + "]" * 100_000 + "\n", r"config\.yaml[:\d]*: .*nested"),
    "huge integer in the summary": ("summary.json", '{"status": "finished", "epochs": ' + "9" * 5000 + "}",
                                    r"summary\.json: not a record a run writes"),
    "deep summary": ("summary.json", "[" * 100_000 + "]" * 100_000, r"summary\.json: nested too deeply"),
    "huge integer in the environment": ("environment.json", '{"seed": ' + "9" * 5000 + "}",
                                        r"environment\.json: not a record a run writes"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_run_is_listed_as_damaged_and_the_others_as_usual(case, mnist_run, tmp_path, cli):
    """Issue 15 #9: one run's hostile record crashed `dlcli runs` for the whole folder (or took
    98 s expanding an alias bomb); now that run is `damaged`, with the reason, at once."""
    import re

    root = tmp_path / "runs"
    good = _clone(mnist_run, root, "tiny_mnist", "20260101-100000")
    bad = _clone(mnist_run, root, "tiny_mnist", "20260102-100000")
    name, text, reason = DAMAGE[case]
    (bad / name).write_text(text)
    with open(bad / "metrics.jsonl", "a") as handle:  # and a record no float holds, which is skipped
        handle.write('{"kind": "epoch", "epoch": 9, "val_loss": ' + "9" * 5000 + "}\n")
    found = {r["id"]: r for r in list_runs(root)}
    assert found[good.name]["status"] == "finished" and found[bad.name]["status"] == "damaged"
    assert re.search(reason, found[bad.name]["reason"]), found[bad.name]["reason"]
    result = cli("runs", root)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "damaged" in result.output and "finished" in result.output


def test_a_record_of_an_integer_no_float_holds_is_no_number(mnist_run, tmp_path):
    run = _clone(mnist_run, tmp_path / "runs", "tiny_mnist", "20260101-100000")
    summary = json.loads((run / "summary.json").read_text())
    summary["best"]["value"] = 10 ** 400  # 400 digits: json reads it, float() overflows
    summary["test"] = {"accuracy": 10 ** 400}
    (run / "summary.json").write_text(json.dumps(summary))
    [found] = list_runs(tmp_path / "runs")
    assert found["status"] == "finished" and found["best"] is None and found["test"] == {}


@pytest.mark.parametrize("name", ["environment.json", "summary.json", "metrics.jsonl"])
def test_a_fifo_in_a_records_place_is_damage_not_a_hang(name, mnist_run, tmp_path, cli):
    """Opening a FIFO blocks until someone writes to it: `dlcli runs` and `dlcli plot runs/NAME`
    hung on one left in a run. Records are opened without blocking and must be regular files."""
    root = tmp_path / "runs"
    good = _clone(mnist_run, root, "tiny_mnist", "20260101-100000")
    bad = _clone(mnist_run, root, "tiny_mnist", "20260102-100000")
    (bad / name).unlink()
    os.mkfifo(bad / name)
    found = {r["id"]: r for r in list_runs(root)}
    assert found[good.name]["status"] == "finished" and found[bad.name]["status"] == "damaged"
    assert f"{bad / name}: not a regular file (a FIFO" in found[bad.name]["reason"]
    if name == "metrics.jsonl":  # the newest run's metrics, where plot looks for epochs
        result = cli("plot", root / "tiny_mnist")
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert "not a regular file" in result.output
