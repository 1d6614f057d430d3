"""How this process was invoked, as a command line the user can type again (for run records
and the run lock's holder)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path


def command_line() -> str:
    """The command as it can be typed again (from `cwd`): `dlcli train cfg.yaml trainer.epochs=3`,
    shell-quoted, whether it ran as `dlcli`, `python -m dlcli` or dlcli/__main__.py."""
    program = Path(sys.argv[0]).name if sys.argv else ""
    if program in ("dlcli", "__main__.py"):  # the console script; python -m dlcli runs dlcli/__main__.py
        return shlex.join(["dlcli", *sys.argv[1:]])
    return shlex.join(sys.argv)  # dlcli called from another program
