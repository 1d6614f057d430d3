"""Callbacks: the extras around the loop, each with no-op hooks named
`on_<stage>_<start|end>`. The callback decides *when* something happens; what a
checkpoint holds is decided in one place (`Trainer.state_dict`)."""

from __future__ import annotations

from pathlib import Path


class Callback:
    def on_fit_start(self, trainer) -> None: ...

    def on_epoch_start(self, trainer) -> None: ...

    def on_train_batch_end(self, trainer, batch: int) -> None: ...

    def on_epoch_end(self, trainer, record: dict) -> None: ...

    def on_interrupt(self, trainer) -> None: ...

    def on_fit_end(self, trainer, summary: dict) -> None: ...


class Checkpointer(Callback):
    """Writes checkpoints/last.pt after every epoch (and on interruption) and
    checkpoints/best.pt when the monitored metric improves."""

    def __init__(self, run_dir: Path):
        self.folder = Path(run_dir) / "checkpoints"

    def on_epoch_end(self, trainer, record: dict) -> None:
        from dlcli.checkpoint import save_checkpoint

        state = trainer.state_dict()
        save_checkpoint(self.folder / "last.pt", state)
        if trainer.best.get("epoch") == record["epoch"]:
            save_checkpoint(self.folder / "best.pt", state)

    def on_interrupt(self, trainer) -> None:
        from dlcli.checkpoint import save_checkpoint

        save_checkpoint(self.folder / "last.pt", trainer.state_dict())


class MetricsLogger(Callback):
    """metrics.jsonl / metrics.csv: one record per epoch, and every N steps if asked."""

    def __init__(self, run_dir: Path, every_steps: int = 0):
        from dlcli.runs import MetricsLog

        self.log = MetricsLog(Path(run_dir))
        self.every = every_steps

    def on_train_batch_end(self, trainer, batch: int) -> None:
        if self.every and trainer.step % self.every == 0 and trainer.last_step_logged != trainer.step:
            trainer.last_step_logged = trainer.step
            self.log.append({"kind": "step", "epoch": trainer.epoch + 1, "step": trainer.step,
                             **{f"train_{k}": v for k, v in trainer.running_metrics().items()},
                             "lr": trainer.lr})

    def on_epoch_end(self, trainer, record: dict) -> None:
        self.log.append(record)


class EarlyStopping(Callback):
    """Stop when the monitored metric has not improved by min_delta for `patience`
    epochs. Its state is derived from the trainer's history, so a resumed run
    stops where the uninterrupted one would."""

    def __init__(self, patience: int, min_delta: float):
        self.patience, self.min_delta = patience, min_delta

    def on_fit_start(self, trainer) -> None:
        self.check(trainer)  # a resumed run that had already stopped stays stopped

    def on_epoch_end(self, trainer, record: dict) -> None:
        self.check(trainer)

    def check(self, trainer) -> None:
        values = [r[trainer.monitor] for r in trainer.history if trainer.monitor in r]
        best, since = None, 0
        for value in values:
            if best is None or trainer.improved(value, best, self.min_delta):
                best, since = value, 0
            else:
                since += 1
        if since >= max(self.patience, 1):
            trainer.stop_reason = (f"early stopping: {trainer.monitor} did not improve for {since} epochs "
                                   f"(patience {self.patience})")
