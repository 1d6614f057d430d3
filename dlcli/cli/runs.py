"""`dlcli runs [DIR]`: the runs in a folder, newest first."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from dlcli.cli._app import app, console, escape, report_errors, visible

STATUS_STYLE = {"finished": "green", "stopped": "green", "running": "cyan", "interrupted": "yellow",
                "failed": "red", "crashed": "red", "damaged": "red", "unknown": "magenta"}


@app.command("runs", short_help="List runs, newest first, with their status.")
@report_errors
def runs(directory: str = typer.Argument("runs", help="a folder of runs (default: runs/)"),
         as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """List runs: path, seed, epochs done / planned, best monitored value, test figure, status and
    the overrides each was started with."""
    from dlcli.run_listing import list_runs

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
    # the run: its path (runs/<name>/<id>, whose id is its start; the JSON output has the date too),
    # then the overrides it was started with, which tell apart runs of one config (data.subset=...)
    for column in ("run", "seed", "epochs", "best", "test", "status"):
        table.add_column(column, justify="right" if column in ("seed", "epochs") else "left",
                         no_wrap=column in ("seed", "epochs", "status"), overflow="fold",
                         min_width=8 if column in ("best", "test") else None)  # "val_loss" whole
    # as wide as the widest path: a path cut by wrapping cannot be copied; the overrides wrap under it
    table.columns[0].width = max(len(visible(run["path"])) for run in found)  # as printed
    for run in found:
        epochs = f"{run['epochs']}/{run['planned'] if run['planned'] is not None else '?'}"
        best = "-" if run["best"] is None else \
            f"{run['monitor']} {run['best']:.4f}" + (f" @{run['best_epoch']}" if run["best_epoch"] else "")
        style = STATUS_STYLE.get(run["status"], "")
        overrides = overrides_text(run["overrides"])
        if run.get("reason"):  # a damaged run: why, where its overrides would be
            overrides = run["reason"]
        table.add_row(escape(run["path"]) + (f"\n[dim]{escape(overrides)}[/]" if overrides else ""),
                      "-" if run["seed"] is None else str(run["seed"]), epochs, escape(best),
                      escape(test_figure(run["test"])), f"[{style}]{run['status']}[/]" if style else run["status"])
    return table


def overrides_text(overrides: list[str] | None) -> str:
    """The run's overrides as typed (shell-quoted), '' for none; said when an older run did not record them."""
    from shlex import join

    return "(overrides not recorded)" if overrides is None else join(overrides)


def test_figure(test: dict) -> str:
    """The test split's first metric (accuracy, mae...), else its loss: what runs are compared on."""
    metrics = [k for k in test if k != "loss"] or [k for k in test]
    return f"{metrics[0]} {test[metrics[0]]:.4f}" if metrics else "-"
