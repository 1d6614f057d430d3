"""Live progress for `dlcli train`: a rich bar per epoch on a terminal, plain
lines otherwise (CI, log files): one per epoch, and one every plain_every_s within
it. Presentation only: it reads the trainer."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from dlcli.cli._app import escape, visible
from dlcli.train import Callback


def format_record(record: dict, epochs: int) -> str:
    parts = [f"epoch {record['epoch']}/{epochs}"]
    for key, value in record.items():
        if key.startswith(("train_", "val_")):
            parts.append(f"{key} {value:.4f}")
    parts.append(f"lr {record['lr']:.2e}")
    parts.append(f"{record['seconds']:.1f}s ({record['samples_per_s']:,.0f} samples/s)")
    return "  ".join(parts)


def start_banner(start: dict) -> list[str]:
    """The lines `dlcli train` prints before the first epoch (dlcli.train.run_start's record);
    the run directory first: it is all that trainer.progress=none shows."""
    threads = f"{start['threads']} CPU thread{'' if start['threads'] == 1 else 's'}"
    chosen = "trainer.threads" if start["threads_set_by"] == "trainer.threads" else \
        "torch's default; trainer.threads=N sets it"
    gpu = f" ({start['gpu']})" if start.get("gpu") else ""
    samples = start["samples"]
    lines = [f"run directory: {start['run_dir']}",
             f"device: {start['device']}{gpu}, {threads} ({chosen})",
             f"parameters: {start['parameters']:,} ({start['trainable']:,} trainable)",
             f"samples: {samples['train']:,} train, {samples['val']:,} val, {samples['test']:,} test"]
    resumed = start.get("resumed")
    if resumed:
        at = f", batch {resumed['batch'] + 1} of {resumed['batches']}" if resumed["batch"] else ""
        lines.append(f"resuming: at epoch {resumed['epoch']} of {resumed['epochs']}{at}" if
                     resumed["epoch"] <= resumed["epochs"] else
                     f"resuming: after its last epoch ({resumed['epochs']}), to finish the run")
    return lines


class ProgressDisplay(Callback):
    plain_every_s = 30.0  # plain mode: a line this often within an epoch, so a long one shows signs of life

    def __init__(self, console: Console, mode: str | None = None, refresh_s: float = 0.25):
        """`mode`: bar, plain, none or auto; None takes the run's trainer.progress when the fit
        starts (a resumed run's comes from its checkpoint and a trainer.progress= override)."""
        self.console, self.refresh_s = console, refresh_s
        self.mode = self._resolved(mode) if mode is not None else None
        self.progress: Progress | None = None
        self.task = None
        self._last = 0.0  # the bar's last refresh
        self._last_line = 0.0  # plain mode's last line
        self._t0 = 0.0
        self._done0 = 0
        self._stop_said = False  # a stop request acknowledged

    def _resolved(self, mode: str) -> str:
        return ("bar" if self.console.is_terminal else "plain") if mode == "auto" else mode

    def on_fit_start(self, trainer) -> None:
        if self.mode is None:
            self.mode = self._resolved(trainer.cfg["trainer"]["progress"])
        lines = start_banner(trainer.start) if trainer.start else []
        for line in lines if self.mode != "none" else lines[:1]:  # none: where the run writes, no more
            self.console.print(visible(line), highlight=False, markup=False, soft_wrap=True)  # a cut path cannot be copied
        for note in trainer.notes:
            self.console.print(f"[yellow]note:[/] {escape(note)}")

    def on_epoch_start(self, trainer) -> None:
        self._t0, self._done0 = time.perf_counter(), trainer.batch_in_epoch
        self._last_line = self._t0
        if self.mode != "bar":
            return
        self.progress = Progress(TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("{task.fields[stats]}"), TimeRemainingColumn(),
                                 console=self.console, transient=True)
        self.progress.start()
        self.task = self.progress.add_task("train", total=trainer.batches_per_epoch,
                                           completed=trainer.batch_in_epoch,
                                           epoch=f"{trainer.epoch + 1}/{trainer.cfg['trainer']['epochs']}", stats="")

    def on_train_batch_end(self, trainer, batch: int) -> None:
        window_ends = (batch + 1) % trainer.accum == 0 or batch + 1 == trainer.batches_per_epoch
        if trainer.stop_requested and not window_ends and not self._stop_said:  # the accumulation window goes on
            self._stop_said = True
            self.console.print(f"[yellow]{trainer.stop_requested}[/]: stopping at the end of the accumulation window "
                               f"(trainer.grad_accum), with a checkpoint; again to stop at once")
        if self.mode == "plain":
            self._plain_line(trainer, batch)
        if self.progress is None:
            return
        now = time.perf_counter()
        if now - self._last < self.refresh_s and batch + 1 < trainer.batches_per_epoch:
            return
        self._last = now
        self.progress.update(self.task, completed=batch + 1, stats=self._stats(trainer, batch, now))

    def _stats(self, trainer, batch: int, now: float, prefix: str = "") -> str:
        """The epoch so far: running train loss and metrics (one host sync), samples/s."""
        running = trainer.running_metrics()
        rate = (batch + 1 - self._done0) * trainer.batch_size / max(now - self._t0, 1e-9)
        return "  ".join(f"{prefix}{k} {v:.4f}" for k, v in running.items()) + f"  {rate:,.0f} samples/s"

    def _plain_line(self, trainer, batch: int) -> None:
        """Every plain_every_s within an epoch (not after its last batch: the epoch line follows)."""
        now = time.perf_counter()  # no host sync: the trainer is asked only when a line is printed
        if now - self._last_line < self.plain_every_s or batch + 1 >= trainer.batches_per_epoch:
            return
        self._last_line = now
        epochs, batches = trainer.cfg["trainer"]["epochs"], trainer.batches_per_epoch
        where = f"epoch {trainer.epoch + 1}/{epochs}  batch {batch + 1}/{batches}"
        # named as in the epoch line: the running means of the epoch so far
        self.console.print(f"{where}  {self._stats(trainer, batch, now, prefix='train_')}", highlight=False,
                           markup=False, soft_wrap=True)

    def _stop_bar(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def on_epoch_end(self, trainer, record: dict) -> None:
        self._stop_bar()
        if self.mode != "none":
            self.console.print(format_record(record, trainer.cfg["trainer"]["epochs"]), highlight=False, soft_wrap=True)

    def on_interrupt(self, trainer) -> None:
        self._stop_bar()

    def on_fit_end(self, trainer, summary: dict) -> None:
        self._stop_bar()
