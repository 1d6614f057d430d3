"""`dlcli runs [DIR]`: the runs in a folder, newest first."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from dlcli.cli._app import app, console, escape, report_errors

STATUS_STYLE = {"finished": "green", "stopped": "green", "running": "cyan", "interrupted": "yellow",
                "failed": "red", "crashed": "red", "unknown": "magenta"}


@app.command("runs")
@report_errors
def runs(directory: str = typer.Argument("runs", help="a folder of runs (default: runs/)"),
         as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """List runs: name, id, date, epochs done / planned, best monitored value, status."""
    from dlcli.runs import list_runs

    found = list_runs(directory)
    if as_json:
        console.print_json(json.dumps(found))
        return
    if not found:
        console.print(f"no runs in {escape(directory)}", soft_wrap=True)
        return
    console.print(runs_table(found, directory))


def runs_table(found: list[dict], directory: str) -> Table:
    table = Table(title=f"{len(found)} run{'s' if len(found) != 1 else ''} in {escape(directory)}",
                  title_justify="left")
    for column in ("name", "id", "date", "epochs", "best", "status"):
        table.add_column(column, justify="right" if column == "epochs" else "left",
                         no_wrap=column in ("epochs", "status"), overflow="fold",
                         min_width=10 if column == "best" else None)
    for run in found:
        epochs = f"{run['epochs']}/{run['planned'] if run['planned'] is not None else '?'}"
        best = "-" if run["best"] is None else \
            f"{run['monitor']} {run['best']:.4f}" + (f" @{run['best_epoch']}" if run["best_epoch"] else "")
        style = STATUS_STYLE.get(run["status"], "")
        table.add_row(escape(run["name"]), escape(run["id"]), (run["date"] or "-").replace("T", " ")[:16], epochs,
                      escape(best), f"[{style}]{run['status']}[/]" if style else run["status"])
    return table
