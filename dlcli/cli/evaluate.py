"""`dlcli evaluate CHECKPOINT|RUN_DIR`: loss, metrics and per-class figures of a
checkpoint on a split of its data (or other data), printed and written as files."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from dlcli.cli._app import app, console, err_console, escape, report_errors, run_argument

MAX_CONFUSION_SHOWN = 20  # larger matrices are only written to the CSV


@app.command(short_help="Loss, metrics and per-class figures of a checkpoint.")
@report_errors
def evaluate(checkpoint: str = typer.Argument(..., help="a checkpoint (.pt), a run directory (its best.pt), "
                                                   "or runs/NAME (its newest run)"),
             split: Optional[str] = typer.Option(None, "--split", help="train | val | test (default: test; "
                                                 "with --data: the file's test part if it has one)"),
             data: Optional[str] = typer.Option(None, "--data", help="other data of the same shape: an .npz, a "
                                                "CSV or a folder of class folders"),
             out: Optional[str] = typer.Option(None, "--out", help="directory for the report files (default: "
                                               "the run directory, else the checkpoint's folder)"),
             force: bool = typer.Option(False, "--force", help="replace existing report files that are not earlier "
                                        "reports of dlcli evaluate (never the checkpoint, nor in a run's "
                                        "checkpoints/ or another run's directory)"),
             device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, ... (default: the config's)"),
             batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1,
                                                      help="evaluation batch size (default: data.eval_batch_size)"),
             as_json: bool = typer.Option(False, "--json", help="print the report as JSON, alone on stdout (the "
                                          "files are written as usual; where, goes to stderr)"),
             ) -> None:
    """Evaluate a checkpoint: loss, metrics, per-class table and confusion matrix, or MSE, MAE, R²."""
    from dlcli.reports import evaluate_checkpoint, write_evaluation

    checkpoint = run_argument(checkpoint, needs="checkpoint")
    _check_report_folder(out, checkpoint)  # before any work
    evaluation = evaluate_checkpoint(checkpoint, split=split, data=data, device=device, batch_size=batch_size)
    report = evaluation.report
    files = write_evaluation(evaluation, out, force)  # refused before anything is shown
    if as_json:
        import json

        console.print_json(json.dumps(report))
        err_console.print(f"wrote {', '.join(escape(f.name) for f in files)} in {escape(str(files[0].parent))}",
                          soft_wrap=True)
        return
    console.print(f"[bold]{escape(report['checkpoint'])}[/] (epoch {report['epoch']}) on "
                  f"[bold]{escape(report['split'])}[/]: {escape(report['data'])}, {report['samples']:,} samples",
                  soft_wrap=True)
    console.print(figures_table(report))
    if "per_class" in report:
        console.print(per_class_table(report))
        names, matrix = report["confusion"]["labels"], report["confusion"]["matrix"]
        if len(names) <= MAX_CONFUSION_SHOWN:
            console.print(confusion_table(names, matrix))
    console.print(f"wrote {', '.join(escape(f.name) for f in files)} in {escape(str(files[0].parent))}",
                  soft_wrap=True)


def _check_report_folder(out: Optional[str], checkpoint: str) -> None:
    """The report folder (--out, else the run directory or the checkpoint's folder) in a run's
    checkpoints/ or another run's directory, refused before the evaluation."""
    from pathlib import Path

    from dlcli.checkpoint import resolve_checkpoint_path
    from dlcli.files import file_kind
    from dlcli.errors import CheckpointError
    from dlcli.reports import check_report_folder, evaluation_dir

    try:
        path = resolve_checkpoint_path(checkpoint, prefer="best.pt")
    except CheckpointError:
        return  # loading it says what is wrong
    if file_kind(path) not in (None, "a torch file"):
        return  # a config, an export...: loading it names the kind of file
    folder = Path(out) if out is not None else evaluation_dir(path)
    check_report_folder(folder, path, given=out is not None)


def figures_table(report: dict) -> Table:
    table = Table(title="figures", title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in report.items():
        if isinstance(value, float):
            table.add_row(key, f"{value:.4f}")
    return table


def per_class_table(report: dict) -> Table:
    table = Table(title="per class", title_justify="left")
    for column in ("class", "precision", "recall", "F1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in report["per_class"]:
        label = f"{row['class']}" if row["name"] == str(row["class"]) else f"{row['class']} {row['name']}"
        table.add_row(escape(label), f"{row['precision']:.4f}", f"{row['recall']:.4f}", f"{row['f1']:.4f}",
                      f"{row['support']:,}")
    support = sum(row["support"] for row in report["per_class"])
    for name in ("macro_avg", "weighted_avg"):
        avg = report[name]
        table.add_row(name.replace("_", " "), f"{avg['precision']:.4f}", f"{avg['recall']:.4f}",
                      f"{avg['f1']:.4f}", f"{support:,}", style="dim")
    return table


def confusion_table(names: list[str], matrix: list[list[int]]) -> Table:
    table = Table(title="confusion matrix", title_justify="left")
    table.add_column("true \\ pred")
    for name in names:
        table.add_column(escape(name), justify="right")
    for i, (name, row) in enumerate(zip(names, matrix)):
        cells = [f"[bold green]{v}[/]" if j == i and v else (f"{v}" if v else "[dim]0[/]") for j, v in enumerate(row)]
        table.add_row(escape(name), *cells)
    return table
