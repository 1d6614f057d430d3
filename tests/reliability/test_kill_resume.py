"""SIGKILL at random moments, then `dlcli train --resume`: the run ends with the same
weights, best.pt, metrics and summary as a run that was never interrupted (CPU).

Each trial starts `dlcli train` on 320 MNIST images (6 epochs of 8 steps), kills it
with SIGKILL, checks what the kill left behind (last.pt loads, metrics.jsonl has
no torn line and agrees with the reference so far), then resumes (or, when no
checkpoint exists yet, checks that --resume says so and starts again) until the
run ends; a third of the trials kill the resumed run too. Kill moments come from
a seeded generator: a delay over the whole length of a run (start-up, data,
epochs, the final evaluation); the moment the n-th checkpoint write has its
temporary file on disk (writes are slowed in the child for that, see
`_cli_server.py`); or the first step of the first epoch.

    DLCLI_KILL_TRIALS=200 DLCLI_KILL_SEED=1 python -m pytest tests/reliability/test_kill_resume.py -s

The children are forked from a warm `python -m dlcli` (`cli_server`), so a trial
costs its run and not the interpreter's start-up; the reference run is a fresh
`python -m dlcli` process, and the forked runs must match it bit for bit.
The narrow windows the random kills hit only now and then are reproduced
exactly by the tests at the end.
"""

from __future__ import annotations

import collections
import json
import os
import random
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from dlcli.checkpoint import load_checkpoint
from dlcli.runs import read_metrics
from dlcli.train import resume

from ._reliability import config_writer, run_cli, without_timing

pytestmark = pytest.mark.skipif(sys.platform == "win32" or not Path("/proc/self/stat").exists(),
                                reason="needs fork, SIGKILL and /proc")

TRIALS = int(os.environ.get("DLCLI_KILL_TRIALS", "20"))
SEED = int(os.environ.get("DLCLI_KILL_SEED", "0"))
WRITE_PAUSE_S = 0.2

CONFIG = """
name: kill
seed: 7
model:
  input_shape: [1, 28, 28]
  layers:
    - conv2d: {filters: 4, kernel_size: 3, activation: relu}
    - maxpool2d: 2
    - dropout: 0.25
    - flatten
    - batchnorm
    - dense: 10
data: {dataset: npz, path: DATA, batch_size: 32, val_split: 0.25}
optimizer: {type: adam, lr: 3e-3}
scheduler: {type: cosine, warmup_steps: 3}
trainer: {epochs: 6, device: cpu, progress: plain, threads: 1, log_every_steps: 4, out_dir: OUT}
"""
EPOCHS = 6


write_config = config_writer(CONFIG, "kill")


def run_dirs(folder: Path) -> list[Path]:
    parent = folder / "runs" / "kill"
    return sorted(parent.iterdir()) if parent.is_dir() else []


def alive(pid: int) -> bool:
    """Running (a killed or finished child stays a zombie until the server reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def model_weights(path: Path) -> dict:
    return load_checkpoint(path)["model"]


def assert_same_tensors(actual: dict, expected: dict, what: str) -> None:
    assert actual.keys() == expected.keys(), what
    for key in expected:
        assert torch.equal(actual[key], expected[key]), f"{what}: {key} differs"


def metrics_of(run_dir: Path) -> list[dict]:
    records, skipped = read_metrics(run_dir / "metrics.jsonl")
    assert skipped == 0, f"{run_dir}/metrics.jsonl: {skipped} torn line(s)"
    return without_timing(records)


def leftovers(run_dir: Path) -> list[str]:
    return sorted(p.name for p in [*run_dir.glob(".*.tmp"), *run_dir.glob("checkpoints/.*.tmp")])


@dataclass
class Reference:
    weights: dict
    best_weights: dict
    records: list[dict]
    summary: dict
    seconds: float  # a forked run, start to exit


@pytest.fixture(scope="module")
def reference(tmp_path_factory, mnist_npz, cli_server) -> Reference:
    """One uninterrupted run in a fresh `python -m dlcli`, and the same run forked twice from
    the server (timed: kill delays are drawn over its length); all three must agree."""
    root = tmp_path_factory.mktemp("reference")
    config = write_config(root, mnist_npz)
    done = run_cli(["train", str(config)], root)
    assert done.returncode == 0, done.stderr
    (run_dir,) = run_dirs(root)
    seconds = float("inf")
    for n in range(2):  # the faster of two: a busy moment would send most kills past the end
        started = time.perf_counter()
        assert cli_server.run(["train", config], root, root / f"forked{n}") == 0, (root / f"forked{n}.err").read_text()
        seconds = min(seconds, time.perf_counter() - started)
    forked = [d for d in run_dirs(root) if d != run_dir]
    assert len(forked) == 2
    ref = Reference(model_weights(run_dir / "checkpoints" / "last.pt"),
                    model_weights(run_dir / "checkpoints" / "best.pt"), metrics_of(run_dir),
                    json.loads((run_dir / "summary.json").read_text()), seconds)
    assert len([r for r in ref.records if r["kind"] == "epoch"]) == EPOCHS
    assert ref.summary["status"] == "finished"
    for run in forked:
        assert_same_tensors(model_weights(run / "checkpoints" / "last.pt"), ref.weights, "forked run")
        assert metrics_of(run) == ref.records
    return ref


def assert_finished_like_reference(run_dir: Path, ref: Reference) -> None:
    assert_same_tensors(model_weights(run_dir / "checkpoints" / "last.pt"), ref.weights, "last.pt")
    assert_same_tensors(model_weights(run_dir / "checkpoints" / "best.pt"), ref.best_weights, "best.pt")
    assert metrics_of(run_dir) == ref.records
    csv_rows = (run_dir / "metrics.csv").read_text().splitlines()[1:]
    assert len(csv_rows) == len(ref.records)
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("status", "epochs", "steps", "best", "test", "test_epoch"):
        assert summary.get(key) == ref.summary.get(key), key
    assert leftovers(run_dir) == []


def assert_wreckage_consistent(run_dir: Path, ref: Reference) -> None:
    """What a kill leaves is a prefix of the uninterrupted run: nothing torn, nothing wrong."""
    records = metrics_of(run_dir) if (run_dir / "metrics.jsonl").exists() else []
    assert records == ref.records[:len(records)]
    epochs = [r for r in ref.records if r["kind"] == "epoch"]
    last = run_dir / "checkpoints" / "last.pt"
    if last.exists():
        state = load_checkpoint(last)
        assert without_timing(state["history"]) == epochs[:state["epoch"]]
        assert state["batch_in_epoch"] == 0  # a SIGKILL gets no mid-epoch save
    if (run_dir / "checkpoints" / "best.pt").exists():
        load_checkpoint(run_dir / "checkpoints" / "best.pt")


class Trial:
    """One trial: a first run, one or two SIGKILLs with what each left checked, then
    resumes (or a fresh start where nothing could be resumed) until the run ends."""

    def __init__(self, rng: random.Random, folder: Path, data: Path, server, ref: Reference):
        self.rng, self.folder, self.server, self.ref = rng, folder, server, ref
        self.config = write_config(folder, data)
        self.argv: list | None = ["train", self.config]
        self.run_dir: Path | None = None
        self.launches = 0
        self.events: list[tuple[str, str]] = []  # (what happened, detail)

    def launch(self, **instruments) -> int:
        self.launches += 1
        return self.server.start(self.argv, self.folder, self.folder / f"run{self.launches}", **instruments)

    def log(self, suffix: str) -> str:
        return (self.folder / f"run{self.launches}.{suffix}").read_text()

    def kill(self) -> None:
        draw = self.rng.random()
        if draw < 0.25:
            target = self.rng.randint(1, 2 * EPOCHS)  # last.pt and best.pt each epoch
            stale = self.temporary_files()
            pid = self.launch(pause_in_writes_s=WRITE_PAUSE_S)
            what, detail = self._kill_during_write(pid, target, stale)
        elif draw < 0.35 and self.run_dir is None:
            pid = self.launch()
            what, detail = self._kill_in_first_epoch(pid)
        elif draw < 0.35:  # a resumed run: at once
            pid = self.launch()
            os.kill(pid, signal.SIGKILL)
            what, detail = "killed at a random moment", "at once"
        else:
            delay = self.rng.uniform(0, self.ref.seconds)
            pid = self.launch()
            deadline = time.perf_counter() + delay
            while time.perf_counter() < deadline and alive(pid):
                time.sleep(0.005)
            os.kill(pid, signal.SIGKILL)
            what, detail = "killed at a random moment", f"after {delay:.2f}s"
        rc = self.server.wait(pid)
        assert rc in (0, -signal.SIGKILL), (rc, self.log("err"))
        self._find_run_dir()
        finished = self.run_dir is not None and (self.run_dir / "summary.json").exists() \
            and json.loads((self.run_dir / "summary.json").read_text())["status"] == "finished"
        if finished:  # the kill came after the summary, on the way out
            self.events.append(("finished before the kill", detail))
            self.argv = None
        else:
            assert rc == -signal.SIGKILL, (rc, self.log("err"))
            self.events.append((what, detail))
            self._plan_next_launch()

    def temporary_files(self) -> set[str]:
        return {p.name for p in self.folder.glob("runs/kill/*/checkpoints/.*.pt.*.tmp")}

    def _kill_during_write(self, pid: int, target: int, stale: set[str]) -> tuple[str, str]:
        seen: set[str] = set()
        while alive(pid):
            temps = self.temporary_files() - stale  # not those an earlier kill left
            seen |= temps
            if len(seen) >= target and temps:
                os.kill(pid, signal.SIGKILL)
                return "killed during a checkpoint write", f"{sorted(temps)[0]}, write {len(seen)}"
            time.sleep(0.01)
        return "killed at a random moment", f"after the run: it made {len(seen)} of {target} writes"

    def _kill_in_first_epoch(self, pid: int) -> tuple[str, str]:
        """At the first step record (step 4 of 8): no checkpoint exists yet."""
        while alive(pid):
            if any(self.folder.glob("runs/kill/*/metrics.jsonl")):
                os.kill(pid, signal.SIGKILL)
                return "killed in the first epoch", ""
            time.sleep(0.005)
        return "killed at a random moment", "after the run: no step record seen"

    def _find_run_dir(self) -> None:
        new = [d for d in run_dirs(self.folder) if d != self.run_dir and not (d / "abandoned").exists()]
        assert len(new) <= 1, new
        if new:
            self.run_dir = new[0]

    def _plan_next_launch(self) -> None:
        """After a kill: resume from last.pt, or start again where there is none."""
        if self.run_dir is None:
            self.events.append(("no run directory yet: started again", ""))
            return
        assert_wreckage_consistent(self.run_dir, self.ref)
        if (self.run_dir / "checkpoints" / "last.pt").exists():
            epoch = load_checkpoint(self.run_dir / "checkpoints" / "last.pt")["epoch"]
            self.events.append(("resumed", f"from epoch {epoch}"))
            self.argv = ["train", "--resume", self.run_dir]
            return
        self.argv = ["train", "--resume", self.run_dir]
        assert self.server.wait(self.launch()) == 2
        err = self.log("err")
        assert "no checkpoint to resume from" in err and "Traceback" not in err, err
        config = self.run_dir / "config.yaml"
        self.argv = ["train", config if config.exists() else self.config]
        (self.run_dir / "abandoned").touch()
        self.events.append(("no checkpoint yet: --resume refused, started again", ""))

    def finish(self) -> None:
        if self.argv is not None:
            rc = self.server.wait(self.launch())
            assert rc == 0, self.log("err")
            self._find_run_dir()
        assert_finished_like_reference(self.run_dir, self.ref)


def test_sigkill_at_random_moments_then_resume_ends_like_an_uninterrupted_run(tmp_path, mnist_npz, cli_server,
                                                                                reference):
    rng = random.Random(SEED)
    tally: collections.Counter = collections.Counter()
    started = time.perf_counter()
    for number in range(TRIALS):
        trial = Trial(rng, tmp_path / f"trial{number}", mnist_npz, cli_server, reference)
        try:
            for _ in range(2 if rng.random() < 0.33 else 1):
                if trial.argv is not None:
                    trial.kill()
            trial.finish()
        except BaseException as err:
            err.add_note(f"kill trial {number} (DLCLI_KILL_SEED={SEED}): "
                         f"{'; '.join(f'{what} {detail}'.strip() for what, detail in trial.events)}; "
                         f"files in {trial.folder}")
            raise
        tally.update(what for what, _ in trial.events)
        shutil.rmtree(trial.folder)
    kills = sum(n for what, n in tally.items() if what.startswith("killed"))
    print(f"\n{TRIALS} kill trials ({kills} SIGKILLs) in {time.perf_counter() - started:.1f}s, "
          f"one uninterrupted run {reference.seconds:.1f}s: {dict(tally)}")
    assert kills >= TRIALS // 2  # most kills land before the run ends
    assert tally["killed during a checkpoint write"] >= TRIALS // 10


def test_resume_without_a_checkpoint_says_so_and_how_to_start_again(tmp_path, mnist_npz):
    from dlcli.config import load_config
    from dlcli.errors import RunError
    from dlcli.runs import create_run_dir

    config = write_config(tmp_path, mnist_npz)
    cfg = load_config(str(config))
    run_dir = create_run_dir(cfg["trainer"]["out_dir"], cfg["name"])  # what a kill in epoch 1 leaves
    (run_dir / "config.yaml").write_text(config.read_text())
    with pytest.raises(RunError, match=r"no checkpoint to resume from.*before its first epoch ended.*"
                                       r"start it again: dlcli train .*config\.yaml"):
        resume(run_dir)


# ---- the narrow windows, reproduced exactly -------------------------------------
# Each leaves on disk what a SIGKILL at that moment leaves (no summary.json).

class _Killed(BaseException):
    """Stands for a SIGKILL at a chosen moment."""


def _in_process_config(folder: Path, data: Path, *overrides: str) -> dict:
    from dlcli.config import config_from_text

    text = write_config(folder, data).read_text()
    return config_from_text(text, "kill.yaml", ["trainer.progress=none", "trainer.epochs=3", *overrides])


def _killed_run(cfg: dict, monkeypatch, when) -> Path:
    """Train until `when(path, state)` says a checkpoint write is where the kill lands."""
    import dlcli.checkpoint
    from dlcli.train import RunHandle, train

    original = dlcli.checkpoint.save_checkpoint

    def save(path, state):
        if when(Path(path), state):
            raise _Killed
        original(path, state)

    monkeypatch.setattr(dlcli.checkpoint, "save_checkpoint", save)
    handle = RunHandle()
    with pytest.raises(_Killed):
        train(cfg, handle=handle)
    monkeypatch.undo()
    (handle.run_dir / "summary.json").unlink()  # a SIGKILL writes none
    return handle.run_dir


@pytest.fixture(scope="module")
def reference3(tmp_path_factory, mnist_npz) -> Reference:
    from dlcli.train import train

    folder = tmp_path_factory.mktemp("reference3")
    summary = train(_in_process_config(folder, mnist_npz))
    run_dir = Path(summary["run_dir"])
    return Reference(model_weights(run_dir / "checkpoints" / "last.pt"),
                     model_weights(run_dir / "checkpoints" / "best.pt"), metrics_of(run_dir),
                     json.loads((run_dir / "summary.json").read_text()), summary["seconds"])


def test_killed_between_last_and_best_of_the_final_epoch_resume_repairs_best(tmp_path, mnist_npz, monkeypatch,
                                                                            reference3):
    # last.pt says epoch 3 is the best, best.pt still holds epoch 2: before the fix, --resume
    # refused ("already finished") and best.pt (used by evaluate) stayed an epoch behind
    cfg = _in_process_config(tmp_path, mnist_npz)
    run_dir = _killed_run(cfg, monkeypatch, lambda path, state: path.name == "best.pt" and state["epoch"] == 3)
    assert load_checkpoint(run_dir / "checkpoints" / "best.pt")["epoch"] == 2
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["best"]["epoch"] == 3
    resume(run_dir)
    assert load_checkpoint(run_dir / "checkpoints" / "best.pt")["epoch"] == 3
    assert_finished_like_reference(run_dir, reference3)


def test_killed_before_the_summary_resume_completes_the_run(tmp_path, mnist_npz, reference3):
    from dlcli.errors import RunError
    from dlcli.train import train

    run_dir = Path(train(_in_process_config(tmp_path, mnist_npz))["run_dir"])
    (run_dir / "summary.json").unlink()  # killed during the final evaluation
    resume(run_dir)
    assert_finished_like_reference(run_dir, reference3)
    with pytest.raises(RunError, match="the run already finished its 3 epochs"):
        resume(run_dir)  # now it is


def test_killed_after_early_stopping_resume_trains_no_further(tmp_path, mnist_npz):
    from dlcli.train import train

    # patience 1, min_delta 10: no epoch counts as an improvement, the run stops after epoch 2
    cfg = _in_process_config(tmp_path, mnist_npz, "trainer.early_stopping={patience: 1, min_delta: 10}")
    summary = train(cfg)
    run_dir = Path(summary["run_dir"])
    assert (summary["status"], summary["epochs"]) == ("stopped_early", 2)
    stopped = model_weights(run_dir / "checkpoints" / "last.pt")
    (run_dir / "summary.json").unlink()  # killed before the summary: last.pt is at epoch 2 of 3
    resumed = resume(run_dir)
    assert (resumed["status"], resumed["epochs"]) == ("stopped_early", 2)
    assert_same_tensors(model_weights(run_dir / "checkpoints" / "last.pt"), stopped, "last.pt")


def test_torn_last_metrics_line_is_skipped_reported_and_rewritten_on_resume(tmp_path, mnist_npz, monkeypatch,
                                                                            reference3):
    # a crash in the middle of an append: read_metrics skips the torn line and counts it
    cfg = _in_process_config(tmp_path, mnist_npz)
    run_dir = _killed_run(cfg, monkeypatch, lambda path, state: path.name == "last.pt" and state["epoch"] == 2)
    whole = (run_dir / "metrics.jsonl").read_text()
    with open(run_dir / "metrics.jsonl", "a") as log:
        log.write(whole.splitlines()[-1][:25])  # half a record, no newline
    records, skipped = read_metrics(run_dir / "metrics.jsonl")
    assert skipped == 1 and records == [json.loads(line) for line in whole.splitlines()]
    resume(run_dir)
    assert_finished_like_reference(run_dir, reference3)
