"""Ctrl-C (SIGINT) stops every command with exit status 130, without a traceback.

Python turns SIGINT into a KeyboardInterrupt wherever the main thread is, and click (under typer)
turns that into "Aborted!" and exit status 1. Worse, a KeyboardInterrupt raised while a finalizer
runs (a `__del__`, a weakref callback, a garbage collection pass: common while torch imports) is
printed as "Exception ignored" and dropped, and the command then went on to exit 0. So the
handler here records the signal before raising, a KeyboardInterrupt that a finalizer swallowed
is delivered again outside it, and `main` exits 130 whenever a SIGINT came.

The CLI installs it (dlcli.cli.main, and `python -m dlcli` before anything else is imported);
`dlcli train` installs its own handlers while it trains (`StopSignals`: finish the step, save
last.pt) and puts this one back afterwards.
"""

from __future__ import annotations

import _thread
import signal
import sys
import threading

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a process Ctrl-C stopped
REDELIVER_S = 0.01  # a swallowed interrupt comes again this long after: outside the finalizer
_received = threading.Event()
_finishing = threading.Event()  # the command has ended: a late signal is recorded, not raised


def install() -> None:
    """Take over SIGINT and the report of exceptions that finalizers drop (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, _on_sigint)
    if not getattr(sys.unraisablehook, "_dlcli", False):
        sys.unraisablehook = _redelivering(sys.unraisablehook)


def interrupted() -> bool:
    """Whether a SIGINT came since `install`."""
    return _received.is_set()


def finishing() -> None:
    """The command has ended (its exit status is being decided): a SIGINT from now on, or one
    delivered again, only counts towards exit status 130, instead of breaking the exit."""
    _finishing.set()


def _on_sigint(signum, frame) -> None:
    _received.set()
    if not _finishing.is_set():
        raise KeyboardInterrupt


def _redelivering(hook):
    def unraisable(report) -> None:
        if report.exc_type is not None and issubclass(report.exc_type, KeyboardInterrupt):
            # raised inside a finalizer, which Python does not let it leave: raised again, later,
            # where the main thread runs ordinary code (interrupt_main runs the SIGINT handler)
            timer = threading.Timer(REDELIVER_S, _thread.interrupt_main)
            timer.daemon = True
            timer.start()
            return
        hook(report)

    unraisable._dlcli = True
    return unraisable


class SecondSignal(KeyboardInterrupt):
    """A second SIGINT/SIGTERM while the first waited for the step to end: stopped at once."""


class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM: last.pt was saved; the run can be resumed."""

    def __init__(self, signal_name: str):
        super().__init__(signal_name)
        self.signal_name = signal_name


class StopSignals:
    """SIGINT and SIGTERM while a run trains, as a context the training loop asks once per step:
    the first is only recorded (`received`: its name), so that the loop stops where a checkpoint
    can hold its state; a second raises SecondSignal at once. The handlers are installed in the
    main thread only (elsewhere Python allows none), and the previous ones come back on exit."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.received: str | None = None
        self._previous: dict = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        previous, self._previous = self._previous, {}
        for s, handler in previous.items():
            signal.signal(s, handler)

    def _handle(self, signum, frame) -> None:
        if self.received:
            raise SecondSignal(signal.Signals(signum).name)
        self.received = signal.Signals(signum).name
