"""The typer app and what every command shares: bad input becomes a message and
exit status 2, never a traceback (unless --debug)."""

from __future__ import annotations

import functools
import os
import sys
from typing import Callable

import typer
from rich.console import Console

app = typer.Typer(
    name="dlcli",
    help="Train deep-learning models from one YAML file: validate, build, train, checkpoint, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # plain help: typer's rich help shows flags as `--json <bool>`, as if they took a value
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class _Console(Console):
    """A console whose reader may go away (`dlcli train ... | head -1`): its output then goes
    to os.devnull and the command carries on. rich's default (newer versions) is SystemExit(1),
    which killed a training run at its next print; older ones let BrokenPipeError escape."""

    def on_broken_pipe(self) -> None:
        # https://docs.python.org/3/library/signal.html#note-on-sigpipe: the fd, not only this
        # console, is pointed at os.devnull, so that the interpreter's flush at exit is quiet too
        self.quiet = True
        try:
            fd = self.file.fileno()
        except (AttributeError, OSError, ValueError):  # not a real file (a test's StringIO)
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)

    def _check_buffer(self) -> None:
        try:
            super()._check_buffer()
        except BrokenPipeError:  # rich versions without on_broken_pipe
            self.on_broken_pipe()


def _unwrapped_when_piped(console: Console) -> Console:
    """Output that is not a terminal (a pipe, a file, a CI log) gets a width that wraps
    nothing: rich would use 80 columns there and cut run ids and paths across lines, which
    then neither grep nor copy-paste finds. COLUMNS, when set, still decides."""
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console.width = PIPED_WIDTH
    return console


PIPED_WIDTH = 4096  # PATH_MAX on Linux: no path is cut

console = _unwrapped_when_piped(_Console(highlight=False))
err_console = _unwrapped_when_piped(_Console(stderr=True, highlight=False))
state = {"debug": False}


def version_callback(value: bool) -> None:
    if value:
        from dlcli import __version__

        console.print(f"dlcli {__version__}")
        raise typer.Exit()


@app.callback()
def root(debug: bool = typer.Option(False, "--debug", help="show a traceback for errors"),
         version: bool = typer.Option(False, "--version", callback=version_callback, is_eager=True,
                                      help="print the version and exit")) -> None:
    state["debug"] = debug


def report_errors(fn: Callable) -> Callable:
    """Turn a DlcliError into `error: ...` on stderr and its exit code. An OSError no command
    turned into a message of its own (a path too long, a folder this user may not read) is
    reported too, naming the path: exit status 2, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from dlcli.errors import DlcliError

        try:
            return fn(*args, **kwargs)
        except (DlcliError, OSError) as err:
            if state["debug"]:
                raise
            message = str(err) if isinstance(err, DlcliError) else os_error_message(err)
            err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
            raise typer.Exit(getattr(err, "exit_code", 2)) from None

    return wrapper


def os_error_message(err: OSError) -> str:
    """An OSError that no command turned into a message of its own: the path, and that it could
    not be accessed and why, instead of a traceback. (Where dlcli knows what it was doing, its
    own message says that: `cannot list the folder`, `cannot read the image`.)"""
    from dlcli.errors import shorten
    from dlcli.file_access import PATH_SHOWN, refusal

    paths = " -> ".join(shorten(str(p), PATH_SHOWN) for p in (err.filename, err.filename2) if p is not None)
    return f"{paths or 'a file'}: cannot access it: {refusal(err)}"


def visible(text: str) -> str:
    """`text` as it can be shown: control characters (an ESC sequence in a class name, a run name or
    a CSV label) written as \\x1b, and characters stdout cannot encode (the surrogates Python keeps
    for paths and arguments that are not UTF-8) as \\udcNN. Newlines and tabs stay."""
    text = str(text).encode("utf-8", "backslashreplace").decode("utf-8")
    from dlcli.errors import CONTROL_CHARACTERS

    return CONTROL_CHARACTERS.sub(lambda m: m.group() if m.group() in "\n\t" else
                                  m.group().encode("unicode_escape").decode("ascii"), text)


def escape(text: str) -> str:
    """`text` printed as it is (`visible`), rich markup escaped."""
    from rich.markup import escape as _escape

    return _escape(visible(text))


def is_terminal() -> bool:
    return sys.stdout.isatty()


def run_argument(path: str, needs: str) -> str:
    """The path a report command takes: a name folder (runs/NAME) or the runs folder gives its
    newest run, said on stderr (stdout stays the report: --json output is parsed)."""
    from dlcli.run_listing import resolve_run_argument

    chosen, note = resolve_run_argument(path, needs)
    if note is None:
        return path
    err_console.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)
    return str(chosen)
