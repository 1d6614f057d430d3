"""`dlcli predict CHECKPOINT INPUT...`: predictions for image files, an image
folder, an .npz or a .csv; a table, and a CSV or JSON file with --out."""

from __future__ import annotations

from typing import List, Optional

import typer
from rich.table import Table

from dlcli.cli._app import app, console, err_console, escape, report_errors, run_argument

MAX_ROWS_SHOWN = 50


@app.command(short_help="Predict classes or values for new inputs.")
@report_errors
def predict(checkpoint: str = typer.Argument(..., help="a checkpoint (.pt), a run directory (its best.pt), "
                                                  "or runs/NAME (its newest run)"),
            inputs: List[str] = typer.Argument(..., help="image files, an image folder, an .npz (array x) or a "
                                                         ".csv (the training features)"),
            top_k: int = typer.Option(3, "--top-k", min=1, help="classes shown per input (classification)"),
            out: Optional[str] = typer.Option(None, "--out", help="write the predictions to FILE.csv or FILE.json"),
            device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, ... (default: the config's)"),
            batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1,
                                                     help="batch size (default: data.eval_batch_size)"),
            force: bool = typer.Option(False, "--force", help="replace an existing --out that is not an earlier "
                                       "predictions file (never an input or the checkpoint)"),
            as_json: bool = typer.Option(False, "--json", help="print every prediction as JSON, alone on stdout "
                                         "(what a .json --out holds), instead of the table"),
            ) -> None:
    """Predict with a checkpoint: the top-k classes with probabilities, or the values."""
    from dlcli.predict import check_output, predict as run_predict, predictions_json, write_predictions

    checkpoint = run_argument(checkpoint, needs="checkpoint")
    if out is not None:
        check_output(out, checkpoint, inputs, force)  # before any work
    predictions = run_predict(checkpoint, inputs, top_k=top_k, device=device, batch_size=batch_size)
    if as_json:
        console.print(predictions_json(predictions), markup=False, highlight=False, emoji=False, soft_wrap=True,
                      end="")  # as a .json --out holds it: nothing interpreted, nothing wrapped
        if out is not None:
            err_console.print(f"wrote {escape(str(write_predictions(predictions, out, force)))}", soft_wrap=True)
        return
    # the checkpoint on its own line: as the table's title it would wrap to the table's width, cutting the path
    console.print(f"predictions of {escape(predictions.checkpoint)}", soft_wrap=True)
    console.print(predictions_table(predictions))
    if len(predictions.rows) > MAX_ROWS_SHOWN:
        console.print(f"[dim]... {len(predictions.rows) - MAX_ROWS_SHOWN:,} more "
                      f"({len(predictions.rows):,} inputs){'' if out else '; all of them with --out FILE.csv'}[/]",
                      soft_wrap=True)
    if out is not None:
        console.print(f"wrote {escape(str(write_predictions(predictions, out, force)))}", soft_wrap=True)


def predictions_table(predictions) -> Table:
    # fold, not cut, on a narrow terminal: a cut path or probability says nothing (piped output does not wrap)
    table = Table()
    table.add_column("input", overflow="fold")
    rows = predictions.rows[:MAX_ROWS_SHOWN]
    if predictions.kind == "classes":
        k = max((len(r["predictions"]) for r in rows), default=0)
        for i in range(k):
            table.add_column(f"#{i + 1} class (probability)" if i == 0 else f"#{i + 1}", overflow="fold")
        for r in rows:
            table.add_row(escape(r["input"]), *[f"{escape(p['name'])} ({p['probability']:.3f})"
                                                for p in r["predictions"]])
    else:
        table.add_column("probability" if predictions.kind == "probabilities" else "value", justify="right",
                         overflow="fold")
        for r in rows:
            table.add_row(escape(r["input"]), ", ".join(f"{v:.6g}" for v in r["value"]))
    return table
