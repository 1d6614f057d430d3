"""The command line: thin commands that parse arguments, call the library and
turn a DlcliError into a message and exit status 2. One module per command."""

from dlcli.cli._app import app
from dlcli.cli import listing, train, validate  # noqa: F401  (registers the commands)
from dlcli.cli import evaluate, export, plot, predict, runs  # noqa: F401  (evaluation and reports)


def main() -> None:
    app()
