"""Live progress for `dlcli train`: a rich bar per epoch on a terminal, plain
lines otherwise (CI, log files). Presentation only: it reads the trainer."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from dlcli.train import Callback


def format_record(record: dict, epochs: int) -> str:
    parts = [f"epoch {record['epoch']}/{epochs}"]
    for key, value in record.items():
        if key.startswith(("train_", "val_")):
            parts.append(f"{key} {value:.4f}")
    parts.append(f"lr {record['lr']:.2e}")
    parts.append(f"{record['seconds']:.1f}s ({record['samples_per_s']:,.0f} samples/s)")
    return "  ".join(parts)


class ProgressDisplay(Callback):
    def __init__(self, console: Console, mode: str = "auto", refresh_s: float = 0.25):
        if mode == "auto":
            mode = "bar" if console.is_terminal else "plain"
        self.console, self.mode, self.refresh_s = console, mode, refresh_s
        self.progress: Progress | None = None
        self.task = None
        self._last = 0.0
        self._t0 = 0.0
        self._done0 = 0

    def on_fit_start(self, trainer) -> None:
        for note in trainer.notes:
            self.console.print(f"[yellow]note:[/] {note}")

    def on_epoch_start(self, trainer) -> None:
        if self.mode != "bar":
            return
        self.progress = Progress(TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("{task.fields[stats]}"), TimeRemainingColumn(),
                                 console=self.console, transient=True)
        self.progress.start()
        self.task = self.progress.add_task("train", total=trainer.batches_per_epoch,
                                           completed=trainer.batch_in_epoch,
                                           epoch=f"{trainer.epoch + 1}/{trainer.cfg['trainer']['epochs']}", stats="")
        self._t0, self._done0 = time.perf_counter(), trainer.batch_in_epoch

    def on_train_batch_end(self, trainer, batch: int) -> None:
        if self.progress is None:
            return
        now = time.perf_counter()
        if now - self._last < self.refresh_s and batch + 1 < trainer.batches_per_epoch:
            return
        self._last = now
        running = trainer.running_metrics()
        rate = (batch + 1 - self._done0) * trainer.batch_size / max(now - self._t0, 1e-9)
        stats = "  ".join(f"{k} {v:.4f}" for k, v in running.items()) + f"  {rate:,.0f} samples/s"
        self.progress.update(self.task, completed=batch + 1, stats=stats)

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
