"""Ctrl-C (SIGINT) stops every command with exit status 130, without a traceback.

Python turns SIGINT into a KeyboardInterrupt wherever the main thread is, and click (under typer)
turns that into "Aborted!" and exit status 1. Worse, a KeyboardInterrupt raised while a finalizer
runs (a `__del__`, a weakref callback, a garbage collection pass: common while torch imports) is
printed as "Exception ignored" and dropped, and the command then went on to exit 0. So the
handler here records the signal before raising, a KeyboardInterrupt that a finalizer swallowed
is delivered again outside it, and `main` exits 130 whenever a SIGINT came.

The CLI installs it (dlcli.cli.main, and `python -m dlcli` before anything else is imported);
`dlcli train` installs its own handlers while it trains (finish the step, save last.pt) and puts
this one back afterwards.
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
