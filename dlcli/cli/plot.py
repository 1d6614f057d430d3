"""`dlcli plot RUN_DIR`: learning curves and confusion matrices as PNG files."""

from __future__ import annotations

import typer

from dlcli.cli._app import app, console, escape, report_errors, run_argument


@app.command(short_help="Learning curves and confusion matrices as PNG.")
@report_errors
def plot(run_dir: str = typer.Argument(..., help="a run directory (runs/<name>/<id>), or runs/NAME or runs/ "
                                                  "(the newest run)")) -> None:
    """Plot a run's learning curves and confusion matrices as PNG files."""
    from dlcli.plots import plot_run

    plots = plot_run(run_argument(run_dir, needs="epochs"))
    for note in plots.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)
    for path in plots.files:
        console.print(f"wrote {escape(str(path))}", soft_wrap=True)
