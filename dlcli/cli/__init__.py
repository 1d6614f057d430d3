"""The command line: thin commands that parse arguments, call the library and
turn a DlcliError into a message and exit status 2. One module per command."""

from dlcli.cli._app import app
from dlcli.cli import listing, train, validate  # noqa: F401  (registers the commands)
from dlcli.cli import evaluate, export, plot, predict, runs  # noqa: F401  (evaluation and reports)


def main() -> None:
    """The `dlcli` program: a Ctrl-C anywhere ends it with exit status 130 (dlcli/interrupts.py)."""
    import sys

    from dlcli import interrupts

    interrupts.install()
    code = 0
    try:
        app()
    except KeyboardInterrupt:  # outside click's own handling (while it parses): stopped all the same
        code = interrupts.EXIT_INTERRUPTED
    except SystemExit as done:
        code = done.code
    finally:
        interrupts.finishing()
    if interrupts.interrupted() and code in (0, None, 1):  # 1: click's "Aborted!" for a KeyboardInterrupt
        code = interrupts.EXIT_INTERRUPTED  # an error the interrupt did not cause stays what it was
    sys.exit(code)
