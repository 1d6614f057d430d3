"""Starting and resuming training runs: data, trainer, run directory, callbacks.

    summary = train(cfg, callbacks=[progress])          # a new run
    summary = resume("runs/mnist_cnn/20261126-120000")  # continue where it stopped
"""

from __future__ import annotations

import functools
import json
from contextlib import ExitStack
from pathlib import Path
from shlex import quote

from dlcli.errors import CheckpointError, DataError, RunError, short_list, shorten
from dlcli.train.callbacks import Callback, Checkpointer, EarlyStopping, MetricsLogger
from dlcli.train.trainer import Trainer, TrainingInterrupted

__all__ = ["train", "resume", "Trainer", "TrainingInterrupted", "Callback", "RunHandle"]


class RunHandle:
    """Where a run writes; set as soon as the directory exists (the CLI reports it)."""

    def __init__(self):
        self.run_dir: Path | None = None
        self.trainer: Trainer | None = None


def _setup(cfg: dict, callbacks, handle: RunHandle | None, run_dir: Path | None = None,
           held: ExitStack | None = None):
    from dlcli.config import dump_config
    from dlcli.data.prepare import load_splits, prepare_data
    from dlcli.model import build_meta_model, resolve_device
    from dlcli.run_lock import run_lock
    from dlcli.runs import ENV_FILE, CONFIG_FILE, create_run_dir, environment_record, write_text_atomic
    from dlcli.train.warmup import DeviceWarmup

    build_meta_model(cfg)  # refuses absurd sizes before allocating anything
    device = resolve_device(cfg["trainer"]["device"])
    warmup = DeviceWarmup.start(cfg, device)  # the GPU loads its libraries while the CPU reads the data
    try:
        splits = load_splits(cfg)
    finally:
        warmup.join()
    data = prepare_data(cfg, device, splits)  # bad data fails here, before a run directory exists
    trainer = Trainer(cfg, data, device)  # and settings that do not fit it (drop_last...)
    if warmup.note():
        trainer.notes.append(warmup.note())
    if run_dir is None:
        run_dir = create_run_dir(cfg["trainer"]["out_dir"], cfg["name"])
        held.enter_context(run_lock(run_dir))  # the run's, from its first file to the process's end
        write_text_atomic(run_dir / CONFIG_FILE, dump_config(cfg))
        write_text_atomic(run_dir / ENV_FILE, json.dumps(environment_record(str(device)), indent=2) + "\n")
    if handle is not None:
        handle.run_dir = run_dir
    t = cfg["trainer"]
    # the checkpoint first: it is what a resume needs, the logs are rebuilt from it
    standard = [Checkpointer(run_dir), MetricsLogger(run_dir, t["log_every_steps"])]
    if t["early_stopping"]:
        standard.append(EarlyStopping(t["early_stopping"]["patience"], t["early_stopping"]["min_delta"]))
    trainer.callbacks = standard + list(callbacks)
    if handle is not None:
        handle.trainer = trainer
    return trainer, run_dir


def _fit(trainer: Trainer, run_dir: Path) -> dict:
    import torch

    from dlcli.runs import write_summary

    # absolute, as the data paths: summary.json is read from any directory
    base = {"name": trainer.cfg["name"], "run_dir": str(Path(run_dir).absolute()), "monitor": trainer.monitor}

    def stopped(status: str, **why) -> dict:
        return {**base, "status": status, **why, "epochs": trainer.epoch, "steps": trainer.step, "best": trainer.best}

    try:
        try:
            summary = trainer.fit()
        except torch.cuda.OutOfMemoryError:  # torch.OutOfMemoryError since torch 2.5; the same class
            batch = trainer.batch_size
            raise RunError(f"out of {trainer.device.type.upper()} memory at data.batch_size={batch} "
                           f"(epoch {trainer.epoch + 1}); HINT: try data.batch_size={max(batch // 2, 1)}, "
                           f"trainer.precision=bf16, or a smaller model") from None
    except TrainingInterrupted as stop:
        _record_stop(run_dir, stopped("interrupted", signal=stop.signal_name))
        raise
    except (RunError, DataError) as err:  # DataError: a streamed image that cannot be read
        _record_stop(run_dir, stopped("failed", error=str(err)))
        raise
    except BaseException as err:
        _record_stop(run_dir, stopped("crashed", error=f"{type(err).__name__}: {err}"))
        raise
    summary = {**base, **summary}
    write_summary(run_dir, summary)
    return summary


def _record_stop(run_dir: Path, summary: dict) -> None:
    """summary.json of a run that stopped; when even that cannot be written (the disk that
    stopped the run is full), the error that stopped it is what gets reported."""
    from dlcli.runs import write_summary

    try:
        write_summary(run_dir, summary)
    except RunError:
        pass


def train(cfg: dict, callbacks: list[Callback] = (), handle: RunHandle | None = None) -> dict:
    """Train a resolved config in a new run directory; returns the summary."""
    with ExitStack() as held:  # the run's lock
        trainer, run_dir = _setup(cfg, callbacks, handle, held=held)
        return _fit(trainer, run_dir)


def _holding_the_run_lock(resume_run):
    """The resume holds its run's lock (RUN/.lock) from before it reads the run to continue it
    until it returns: a run that another process is training is refused, untouched."""

    @functools.wraps(resume_run)
    def locked(path, *args, **kwargs):
        from dlcli.run_lock import run_lock

        with run_lock(_run_dir_to_resume(Path(path))):
            return resume_run(path, *args, **kwargs)

    return locked


def _run_dir_to_resume(path: Path) -> Path | None:
    """The run directory `resume(path)` continues, found without reading a checkpoint (a run
    still in its first epoch has none); None when there is none (resume says why)."""
    from dlcli.checkpoint import resolve_checkpoint_path
    from dlcli.runs import CONFIG_FILE

    if (path / CONFIG_FILE).is_file():
        return path
    try:
        run_dir = resolve_checkpoint_path(path, prefer="last.pt").parent.parent  # as resume finds it
    except CheckpointError:
        return None
    return run_dir if (run_dir / CONFIG_FILE).is_file() else None


@_holding_the_run_lock
def resume(path: str | Path, overrides: list[str] = (), callbacks: list[Callback] = (),
           handle: RunHandle | None = None) -> dict:
    """Continue a run from its last.pt (or a given checkpoint) in the same directory."""
    from dlcli.checkpoint import checkpoint_config, load_checkpoint, load_model_from_checkpoint
    from dlcli.config import resolve_config
    from dlcli.runs import CONFIG_FILE, MetricsLog, read_metrics

    _refuse_run_without_checkpoint(Path(path))
    state = load_checkpoint(path, prefer="last.pt")
    cfg = checkpoint_config(state)
    planned = cfg["trainer"]["epochs"]  # what the run was training to, before any override
    load_model_from_checkpoint(state, "cpu", cfg)  # the weights fit the config, before anything else
    if overrides:
        allowed = ("trainer.epochs=", "trainer.device=", "trainer.progress=", "trainer.early_stopping=",
                   "trainer.early_stopping.")
        bad = [o for o in overrides if not o.startswith(allowed)]
        if bad:
            raise RunError(f"--resume takes only overrides of trainer.epochs, trainer.early_stopping, trainer.device "
                           f"and trainer.progress (the rest must stay as trained); received: "
                           f"{short_list(bad, lambda override: shorten(override, 100), sep=' ')}")
        import copy

        cfg = resolve_config(copy.deepcopy(cfg), {}, "command line", overrides, default_name=cfg["name"],
                             guards=False)  # the checkpoint's model, as checkpoint_config took it
    ckpt_path = Path(state["path"])
    run_dir = ckpt_path.parent.parent
    if not (run_dir / CONFIG_FILE).is_file():
        raise CheckpointError(f"{ckpt_path}: not inside a run directory (no {run_dir / CONFIG_FILE}); "
                              f"--resume continues a run where it was written")
    _refuse_rewind(run_dir, state)
    _refuse_fewer_epochs(run_dir, state, cfg, planned)
    # A run killed after its last checkpoint but before its summary is completed, not refused.
    ended = _summary_at(run_dir, state) if not state.get("batch_in_epoch") else None
    if ended and ended.get("status") == "finished" and state["epoch"] >= cfg["trainer"]["epochs"]:
        done = (f"already trained {state['epoch']} epochs; trainer.epochs={cfg['trainer']['epochs']} is not more "
                f"than that" if any(o.startswith("trainer.epochs=") for o in overrides) else
                f"already finished its {state['epoch']} epochs")
        raise RunError(f"{run_dir}: the run {done}; to train longer: dlcli train --resume {quote(str(run_dir))} "
                       f"trainer.epochs=N (N > {state['epoch']})")
    if ended and ended.get("status") == "stopped_early" \
            and not any(o.startswith("trainer.early_stopping") for o in overrides):
        raise RunError(f"{run_dir}: the run stopped early at epoch {state['epoch']} ({ended.get('stop_reason')}), "
                       f"and would stop again before training; to train on: dlcli train --resume {quote(str(run_dir))} "
                       f"trainer.early_stopping.patience=N (a larger N) or trainer.early_stopping=null")
    trainer, _ = _setup(cfg, callbacks, handle, run_dir=run_dir)
    if overrides:  # the run's record says what it now trains to (trainer.epochs=N...)
        from dlcli.config import dump_config
        from dlcli.runs import write_text_atomic

        write_text_atomic(run_dir / CONFIG_FILE, dump_config(cfg))
    try:
        trainer.load_state_dict(state)
    except (KeyError, ValueError, RuntimeError, TypeError, IndexError) as err:
        raise CheckpointError(f"{state['path']}: the training state does not fit its config "
                              f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
                              f"evaluate and predict can still use its weights") from None
    trainer.best_state = _best_weights(run_dir, state)
    _remove_temporary_files(run_dir)
    _record_resume(run_dir, trainer, state)
    # The logs may run ahead of the checkpoint (killed between the two writes) or
    # end in a torn line: keep what the checkpoint covers, from its own history.
    log = MetricsLog(run_dir)
    steps = [r for r in read_metrics(log.jsonl)[0] if r.get("kind") == "step" and r.get("step", 0) <= state["step"]]
    log.rewrite(sorted(steps + list(state["history"]), key=lambda r: (r.get("step", 0), r.get("kind") == "epoch")))
    return _fit(trainer, run_dir)


def _record_resume(run_dir: Path, trainer: Trainer, state: dict) -> None:
    """environment.json keeps the first start's record and gains one per resume (its command,
    directory, device and versions may differ): what ran, where, for each part of the run."""
    from dlcli.runs import ENV_FILE, environment_record, read_environment, write_text_atomic

    record = read_environment(run_dir) or {}  # lost or damaged: this start's record stands for the run
    resumed = {**environment_record(str(trainer.device)), "from_epoch": state["epoch"] + 1,
               "from_batch": (state.get("batch_in_epoch") or 0) + 1, "checkpoint": str(state["path"])}
    record["resumes"] = [*(record.get("resumes") if isinstance(record.get("resumes"), list) else []), resumed]
    write_text_atomic(run_dir / ENV_FILE, json.dumps(record, indent=2) + "\n")


def _refuse_rewind(run_dir: Path, state: dict) -> None:
    """A checkpoint behind the run's last.pt (best.pt of a run that went on) would train the
    later epochs again over their checkpoints and records: refused before anything is written."""
    from dlcli.checkpoint import load_checkpoint
    from dlcli.runs import MetricsLog, read_metrics

    given, last = Path(state["path"]), run_dir / "checkpoints" / "last.pt"
    if given.resolve() == last.resolve():
        return  # the run's own end; logs that ran ahead of it (a kill between writes) are cut back
    here = (state["epoch"], state.get("batch_in_epoch") or 0)
    furthest, where = here, None
    if last.is_file():
        try:
            saved = load_checkpoint(last)
        except CheckpointError:
            saved = None  # the metrics log still tells how far the run went
        if saved is not None and (saved["epoch"], saved.get("batch_in_epoch") or 0) > furthest:
            furthest, where = (saved["epoch"], saved.get("batch_in_epoch") or 0), last
    log = MetricsLog(run_dir).jsonl
    logged = [r["epoch"] for r in read_metrics(log)[0] if r.get("kind") == "epoch" and isinstance(r.get("epoch"), int)]
    if logged and (max(logged), 0) > furthest:
        furthest, where = (max(logged), 0), log
    if where is None:
        return
    first, end = here[0] + 1, furthest[0] + (1 if furthest[1] else 0)
    later = f"epoch {first}" if first == end else f"epochs {first}-{end}"
    raise RunError(f"{given}: this checkpoint is at {_position(here)}, but the run went on to {_position(furthest)} "
                   f"({where}); resuming from it would discard {later} and train again over them (last.pt, "
                   f"metrics.jsonl and summary.json rewritten). To continue the run from its last checkpoint: "
                   f"dlcli train --resume {quote(str(run_dir))} (with trainer.epochs=N to train longer); to train "
                   f"from scratch in a new run: dlcli train {quote(str(run_dir / 'config.yaml'))}")


def _position(at: tuple[int, int]) -> str:
    """(epochs done, batches into the next) in words: 'the end of epoch 4', 'batch 3 of epoch 5'."""
    epoch, batch = at
    return f"batch {batch} of epoch {epoch + 1}" if batch else f"the end of epoch {epoch}"


def _refuse_fewer_epochs(run_dir: Path, state: dict, cfg: dict, planned: int) -> None:
    """trainer.epochs below what the run trained (or inside the epoch it stopped in) would
    mark it finished and drop that training: refused, with the epochs actually trained."""
    trained, partial, target = state["epoch"], state.get("batch_in_epoch") or 0, cfg["trainer"]["epochs"]
    again = f"dlcli train --resume {quote(str(run_dir))}"
    if partial and target <= trained:
        to_plan = f"{again} (to its {planned} epochs) or " if planned > trained else ""
        raise RunError(f"{run_dir}: the run stopped inside epoch {trained + 1} (after batch {partial}), and "
                       f"trainer.epochs={target} would end it before that epoch, discarding the {partial} batches "
                       f"of it already trained; to finish it: {to_plan}{again} trainer.epochs=N (N > {trained})")
    if target < trained:
        raise RunError(f"{run_dir}: the run already trained {trained} epochs; trainer.epochs={target} is not more "
                       f"than that; to train longer: {again} trainer.epochs=N (N > {trained})")


def _refuse_run_without_checkpoint(path: Path) -> None:
    """A run directory stopped (killed) before its first epoch ended has nothing to resume."""
    from dlcli.runs import CONFIG_FILE

    folder = path / "checkpoints"
    if not path.is_dir() or not folder.is_dir() or any(folder.glob("*.pt")):
        return
    config = path / CONFIG_FILE
    again = f"dlcli train {quote(str(config))}" if config.is_file() else "dlcli train CONFIG"
    raise RunError(f"{path}: no checkpoint to resume from: the run stopped before its first epoch ended "
                   f"(checkpoints/last.pt is written at the end of each epoch); start it again: {again}")


def _summary_at(run_dir: Path, state: dict) -> dict | None:
    """summary.json when it records the run's end at the checkpoint's epoch (else None: a
    run killed after its last checkpoint and before its summary is completed on resume)."""
    from dlcli.runs import read_summary

    summary = read_summary(run_dir)
    return summary if summary is not None and summary.get("epochs") == state["epoch"] else None


def _best_weights(run_dir: Path, state: dict) -> dict | None:
    """The weights of the best epoch that last.pt records. A kill between the two writes
    at an epoch's end leaves best.pt behind last.pt: the best epoch is then last.pt's own,
    and best.pt is written again from it."""
    from dlcli.checkpoint import load_checkpoint, save_checkpoint

    best = state.get("best") or {}
    if not best:
        return None
    best_file = run_dir / "checkpoints" / "best.pt"
    saved = load_checkpoint(best_file) if best_file.is_file() else None
    if saved is not None and saved["epoch"] == best.get("epoch"):
        return saved["model"]
    if best.get("epoch") == state["epoch"] and not state.get("batch_in_epoch"):
        save_checkpoint(best_file, {k: v for k, v in state.items() if k != "path"})
        return state["model"]
    return saved["model"] if saved is not None else None


def _remove_temporary_files(run_dir: Path) -> None:
    """Temporary files that a killed process left behind writing the run's own files, by the
    names dlcli's atomic writes give them; no other file (a user's, a `dlcli evaluate` at work)."""
    from dlcli.checkpoint import temporary_files
    from dlcli.runs import RUN_RECORDS

    owned = [run_dir / name for name in RUN_RECORDS] + [run_dir / "checkpoints" / n for n in ("last.pt", "best.pt")]
    for leftover in [temp for path in owned for temp in temporary_files(path)]:
        leftover.unlink(missing_ok=True)
