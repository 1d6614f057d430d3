"""Callbacks: the extras around the loop, each with no-op hooks named
`on_<stage>_<start|end>`. The callback decides *when* something happens; what a
checkpoint holds is decided in one place (`Trainer.state_dict`)."""

from __future__ import annotations

from pathlib import Path
from shlex import quote

from dlcli.errors import RunError


class Callback:
    def on_fit_start(self, trainer) -> None: ...

    def on_epoch_start(self, trainer) -> None: ...

    def on_train_batch_end(self, trainer, batch: int) -> None: ...

    def on_epoch_end(self, trainer, record: dict) -> None: ...

    def on_interrupt(self, trainer) -> None: ...

    def on_fit_end(self, trainer, summary: dict) -> None: ...


class Checkpointer(Callback):
    """Writes checkpoints/last.pt after every epoch (and on interruption) and
    checkpoints/best.pt when the monitored metric improves. A checkpoint that cannot
    be written (full disk, read-only folder) stops the run with a RunError that says
    what was kept and where the lost state went: an emergency copy in the temporary
    directory when one can be written there."""

    def __init__(self, run_dir: Path):
        self.folder = Path(run_dir) / "checkpoints"
        self.saved_epoch: int | None = None  # of the last last.pt this run wrote

    def on_epoch_end(self, trainer, record: dict) -> None:
        state = trainer.state_dict()
        self._save("last.pt", state)
        if trainer.best.get("epoch") == record["epoch"]:
            self._save("best.pt", state)

    def on_interrupt(self, trainer) -> None:
        if trainer.batch_in_epoch == 0 and self.saved_epoch == trainer.epoch:
            return  # stopped between epochs: last.pt holds this state already (no second write in a grace period)
        self._save("last.pt", trainer.state_dict())

    def _save(self, name: str, state: dict) -> None:
        from dlcli.checkpoint import save_checkpoint
        from dlcli.errors import CheckpointError

        try:
            save_checkpoint(self.folder / name, state)
        except CheckpointError as err:
            raise RunError(f"{err}. {self._what_was_kept(name, state)}") from None
        if name == "last.pt":
            self.saved_epoch = state["epoch"]

    def _what_was_kept(self, name: str, state: dict) -> str:
        run_dir, last = self.folder.parent, self.folder / "last.pt"
        at = f"epoch {state['epoch']}" + (f", batch {state['batch_in_epoch']}" if state["batch_in_epoch"] else "")
        if name != "last.pt":  # last.pt of this very state was written
            return (f"Training stopped at {at}, which {last} holds; to go on, make room and run: "
                    f"dlcli train --resume {quote(str(run_dir))} (best.pt is written again then)")
        previous = (f"{last} (epoch {self.saved_epoch})" if self.saved_epoch is not None
                    else str(last) if last.exists() else None)
        kept = f"the previous checkpoint, {previous}, is intact" if previous else "no earlier checkpoint exists"
        rescue = self._rescue(state)
        if isinstance(rescue, Path):
            return (f"Training stopped at {at}; {kept}. The state at {at} was saved to {rescue} instead: to go on, "
                    f"make room, copy it over {last} and run: dlcli train --resume {quote(str(run_dir))}")
        again = f"resume from it: dlcli train --resume {quote(str(run_dir))}" if previous else \
            f"start again: dlcli train {quote(str(run_dir / 'config.yaml'))}"
        return (f"Training stopped at {at}; {kept}. The progress since is lost (an emergency copy in the temporary "
                f"directory failed too: {rescue}); make room, then {again}")

    def _rescue(self, state: dict) -> Path | str:
        """An emergency copy of `state` in a new temporary folder, or why there is none."""
        import tempfile

        from dlcli.checkpoint import save_checkpoint
        from dlcli.errors import CheckpointError

        try:
            folder = Path(tempfile.mkdtemp(prefix=f"dlcli-rescue-{self.folder.parent.name}-"))
        except OSError as err:
            return f"{tempfile.gettempdir()}: {err.strerror or err}"
        try:
            save_checkpoint(folder / "last.pt", state)
        except CheckpointError as err:
            try:
                folder.rmdir()
            except OSError:
                pass
            return str(err).split("; the previous")[0]
        return folder / "last.pt"


class MetricsLogger(Callback):
    """metrics.jsonl / metrics.csv: one record per epoch, and every N optimizer steps if asked.
    The hook runs after every batch: with trainer.grad_accum > 1 the step count stays the same
    over several batches, so a step is logged once, when it is reached, never the one the fit
    starts at (0, or a resumed run's saved step, which the first process logged)."""

    def __init__(self, run_dir: Path, every_steps: int = 0):
        from dlcli.runs import MetricsLog

        self.log = MetricsLog(Path(run_dir))
        self.every = every_steps
        self.logged = 0  # the step logged last, or the one the fit started at

    def on_fit_start(self, trainer) -> None:
        self.logged = trainer.step

    def on_train_batch_end(self, trainer, batch: int) -> None:
        if self.every and trainer.step != self.logged and trainer.step % self.every == 0:
            self.logged = trainer.step
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
