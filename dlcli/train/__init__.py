"""Starting and resuming training runs: data, trainer, run directory, callbacks.

    summary = train(cfg, callbacks=[progress])          # a new run
    summary = resume("runs/mnist_cnn/20261126-120000")  # continue where it stopped
"""

from __future__ import annotations

import json
from pathlib import Path

from dlcli.errors import CheckpointError, RunError
from dlcli.train.callbacks import Callback, Checkpointer, EarlyStopping, MetricsLogger
from dlcli.train.trainer import Trainer, TrainingInterrupted

__all__ = ["train", "resume", "Trainer", "TrainingInterrupted", "Callback", "RunHandle"]


class RunHandle:
    """Where a run writes; set as soon as the directory exists (the CLI reports it)."""

    def __init__(self):
        self.run_dir: Path | None = None
        self.trainer: Trainer | None = None


def _setup(cfg: dict, callbacks, handle: RunHandle | None, run_dir: Path | None = None):
    from dlcli.config import dump_config
    from dlcli.data.prepare import prepare_data
    from dlcli.model import build_meta_model, resolve_device
    from dlcli.runs import ENV_FILE, CONFIG_FILE, create_run_dir, environment_record, write_text_atomic

    build_meta_model(cfg)  # refuses absurd sizes before allocating anything
    device = resolve_device(cfg["trainer"]["device"])
    data = prepare_data(cfg, device)  # bad data fails here, before a run directory exists
    if run_dir is None:
        run_dir = create_run_dir(cfg["trainer"]["out_dir"], cfg["name"])
        write_text_atomic(run_dir / CONFIG_FILE, dump_config(cfg))
        write_text_atomic(run_dir / ENV_FILE, json.dumps(environment_record(str(device)), indent=2) + "\n")
    if handle is not None:
        handle.run_dir = run_dir
    t = cfg["trainer"]
    standard = [MetricsLogger(run_dir, t["log_every_steps"]), Checkpointer(run_dir)]
    if t["early_stopping"]:
        standard.append(EarlyStopping(t["early_stopping"]["patience"], t["early_stopping"]["min_delta"]))
    trainer = Trainer(cfg, data, device, callbacks=standard + list(callbacks))
    if handle is not None:
        handle.trainer = trainer
    return trainer, run_dir


def _fit(trainer: Trainer, run_dir: Path) -> dict:
    import torch

    from dlcli.runs import write_summary

    base = {"name": trainer.cfg["name"], "run_dir": str(run_dir), "monitor": trainer.monitor}
    try:
        try:
            summary = trainer.fit()
        except torch.OutOfMemoryError:
            batch = trainer.batch_size
            raise RunError(f"out of {trainer.device.type.upper()} memory at data.batch_size={batch} "
                           f"(epoch {trainer.epoch + 1}); HINT: try data.batch_size={max(batch // 2, 1)}, "
                           f"trainer.precision=bf16, or a smaller model") from None
    except TrainingInterrupted as stop:
        write_summary(run_dir, {**base, "status": "interrupted", "signal": stop.signal_name,
                                "epochs": trainer.epoch, "steps": trainer.step, "best": trainer.best})
        raise
    except RunError as err:
        write_summary(run_dir, {**base, "status": "failed", "error": str(err), "epochs": trainer.epoch,
                                "steps": trainer.step, "best": trainer.best})
        raise
    except BaseException as err:
        write_summary(run_dir, {**base, "status": "crashed", "error": f"{type(err).__name__}: {err}",
                                "epochs": trainer.epoch, "steps": trainer.step, "best": trainer.best})
        raise
    summary = {**base, **summary}
    write_summary(run_dir, summary)
    return summary


def train(cfg: dict, callbacks: list[Callback] = (), handle: RunHandle | None = None) -> dict:
    """Train a resolved config in a new run directory; returns the summary."""
    trainer, run_dir = _setup(cfg, callbacks, handle)
    return _fit(trainer, run_dir)


def resume(path: str | Path, overrides: list[str] = (), callbacks: list[Callback] = (),
           handle: RunHandle | None = None) -> dict:
    """Continue a run from its last.pt (or a given checkpoint) in the same directory."""
    from dlcli.checkpoint import checkpoint_config, load_checkpoint, load_model_from_checkpoint
    from dlcli.config import resolve_config
    from dlcli.runs import CONFIG_FILE, MetricsLog, read_metrics

    state = load_checkpoint(path, prefer="last.pt")
    cfg = checkpoint_config(state)
    load_model_from_checkpoint(state, "cpu", cfg)  # the weights fit the config, before anything else
    if overrides:
        allowed = ("trainer.epochs=", "trainer.device=", "trainer.progress=")
        bad = [o for o in overrides if not o.startswith(allowed)]
        if bad:
            raise RunError(f"--resume takes only overrides of trainer.epochs, trainer.device and trainer.progress "
                           f"(the rest must stay as trained); received: {' '.join(bad)}")
        import copy

        cfg = resolve_config(copy.deepcopy(cfg), {}, "command line", overrides, default_name=cfg["name"])
    ckpt_path = Path(state["path"])
    run_dir = ckpt_path.parent.parent
    if not (run_dir / CONFIG_FILE).is_file():
        raise CheckpointError(f"{ckpt_path}: not inside a run directory (no {run_dir / CONFIG_FILE}); "
                              f"--resume continues a run where it was written")
    if state["epoch"] >= cfg["trainer"]["epochs"] and not state.get("batch_in_epoch"):
        raise RunError(f"{run_dir}: the run already finished its {cfg['trainer']['epochs']} epochs; "
                       f"to train longer: dlcli train --resume {run_dir} trainer.epochs=N")
    trainer, _ = _setup(cfg, callbacks, handle, run_dir=run_dir)
    try:
        trainer.load_state_dict(state)
    except (KeyError, ValueError, RuntimeError, TypeError, IndexError) as err:
        raise CheckpointError(f"{state['path']}: the training state does not fit its config "
                              f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
                              f"evaluate and predict can still use its weights") from None
    best_file = run_dir / "checkpoints" / "best.pt"
    if trainer.best and best_file.is_file():
        trainer.best_state = load_checkpoint(best_file)["model"]
    # The logs may run ahead of the checkpoint (killed between the two writes) or
    # end in a torn line: keep what the checkpoint covers, from its own history.
    log = MetricsLog(run_dir)
    steps = [r for r in read_metrics(log.jsonl)[0] if r.get("kind") == "step" and r.get("step", 0) <= state["step"]]
    log.rewrite(sorted(steps + list(state["history"]), key=lambda r: (r.get("step", 0), r.get("kind") == "epoch")))
    return _fit(trainer, run_dir)
