"""Setting up and fitting a run: the data, the process-wide settings, the trainer, the run
directory and its callbacks (`_setup`), then the fit and the summary however it ends (`_fit`).
A new run is `train`; a resume (dlcli.train.resume) sets up and fits the same way."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from dlcli.errors import DataError, RunError
from dlcli.interrupts import SecondSignal, TrainingInterrupted
from dlcli.train.callbacks import Callback, Checkpointer, EarlyStopping, MetricsLogger
from dlcli.train.trainer import Trainer


class RunHandle:
    """Where a run writes; set as soon as the directory exists (the CLI reports it)."""

    def __init__(self):
        self.run_dir: Path | None = None
        self.trainer: Trainer | None = None


def train(cfg: dict, callbacks: list[Callback] = (), handle: RunHandle | None = None,
          overrides: list[str] = ()) -> dict:
    """Train a resolved config in a new run directory; returns the summary. `overrides`: the
    key.path=value overrides `cfg` was resolved with, recorded in environment.json."""
    with ExitStack() as held:  # the run's lock
        trainer, run_dir = _setup(cfg, callbacks, handle, held=held, overrides=overrides)
        trainer.start = run_start(trainer, run_dir)
        return _fit(trainer, run_dir)


def new_trainer(cfg: dict, data, device, callbacks=(), model=None) -> Trainer:
    """The run's trainer, built after the process-wide settings it trains under (seeds, CPU
    threads, cuDNN flags: dlcli.train.process), as a run sets them. `model`: the run's model
    built on the meta device, which the trainer materializes (built once per run)."""
    from dlcli.train.process import set_process_state

    set_process_state(cfg, device)
    return Trainer(cfg, data, device, callbacks, model=model)


def _setup(cfg: dict, callbacks, handle: RunHandle | None, run_dir: Path | None = None,
           held: ExitStack | None = None, normalization: dict | None | str = "compute",
           overrides: list[str] = ()):
    from dlcli.config import dump_config
    from dlcli.data.prepare import load_splits, prepare_data
    from dlcli.memory import refuse_training_beyond_memory
    from dlcli.model import build_meta_model, plan_model, resolve_device
    from dlcli.run_lock import run_lock
    from dlcli.runs import create_run_dir, write_start_records
    from dlcli.train.warmup import DeviceWarmup

    plan = plan_model(cfg)  # validation's
    # refuses absurd sizes before allocating anything; built once: the trainer materializes it
    meta_model = build_meta_model(plan, fuse=cfg["trainer"]["fuse"])
    device = resolve_device(cfg["trainer"]["device"])
    warmup = DeviceWarmup.start(cfg, device, meta_model)  # the GPU loads its libraries while the CPU reads the data
    try:
        splits = load_splits(cfg, plan, from_checkpoint=run_dir is not None)  # a resumed run's: never downloads
    finally:
        warmup.join()
    if isinstance(normalization, dict):  # a checkpoint's (resume): it must line up with the data read again
        from dlcli.inference import normalization_for

        normalization = normalization_for(normalization, splits, splits.source or cfg["data"]["dataset"])
    # bad data fails here, before a run directory exists
    data = prepare_data(cfg, plan, device, splits, normalization, fingerprint=True)
    refuse_training_beyond_memory(cfg, meta_model, device)  # with the data in memory, before the model is
    trainer = new_trainer(cfg, data, device, model=meta_model)  # and settings that do not fit it (drop_last...)
    if warmup.note():
        trainer.notes.append(warmup.note())
    if run_dir is None:
        run_dir = create_run_dir(cfg["trainer"]["out_dir"], cfg["name"])
        held.enter_context(run_lock(run_dir))  # the run's, from its first file to the process's end
        write_start_records(run_dir, dump_config(cfg), cfg, device, overrides)
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
    except KeyboardInterrupt as err:  # SecondSignal, or a Ctrl-C outside the training loop's handlers
        why = (f"a second {err}: stopped at once" if isinstance(err, SecondSignal) else
               "SIGINT outside the training loop: stopped at once")
        _record_stop(run_dir, stopped("interrupted", signal=f"{why}, last.pt may be behind these counts"))
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


def run_start(trainer: Trainer, run_dir: Path, resumed: bool = False) -> dict:
    """What the run starts training with, before its first epoch: device, CPU threads (and who
    chose them), parameters, samples per split, run directory, and where a resume starts."""
    import torch

    from dlcli.runs import threads_set_by

    params = list(trainer.model.parameters())
    device = trainer.device
    start = {"run_dir": str(run_dir), "device": str(device),
             "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
             "threads": torch.get_num_threads(), "threads_set_by": threads_set_by(trainer.cfg),
             "parameters": sum(p.numel() for p in params),
             "trainable": sum(p.numel() for p in params if p.requires_grad),
             "samples": trainer.sample_counts(), "resumed": None}
    if resumed:
        start["resumed"] = {"epoch": trainer.epoch + 1, "batch": trainer.batch_in_epoch,
                            "batches": trainer.batches_per_epoch, "epochs": trainer.cfg["trainer"]["epochs"]}
    return start
