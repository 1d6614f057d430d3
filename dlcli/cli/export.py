"""`dlcli export CHECKPOINT --format torchscript|onnx|state_dict [--out PATH] [--force]`."""

from __future__ import annotations

from typing import Optional

import typer

from dlcli.cli._app import app, console, escape, report_errors, run_argument


@app.command(short_help="Export a model: TorchScript, ONNX or state_dict.")
@report_errors
def export(checkpoint: str = typer.Argument(..., help="a checkpoint (.pt), a run directory (its best.pt), "
                                                 "or runs/NAME (its newest run)"),
           fmt: str = typer.Option("torchscript", "--format", help="torchscript | onnx | state_dict"),
           out: Optional[str] = typer.Option(None, "--out", help="the file to write (default: "
                                             "<run>/export/<checkpoint>.<format>)"),
           force: bool = typer.Option(False, "--force", help="replace an existing --out that is not an earlier "
                                      "export (never the checkpoint, nor anything in a run's checkpoints/)"),
           ) -> None:
    """Export a model as TorchScript or ONNX (raw samples in, predictions out) or a plain state_dict."""
    from dlcli.export import export_checkpoint

    checkpoint = run_argument(checkpoint, needs="checkpoint")
    result = export_checkpoint(checkpoint, fmt, out, force=force)
    console.print(f"wrote {escape(str(result.path))} ({result.format})", soft_wrap=True)
    console.print(f"  input:  {escape(result.info['input'])}", soft_wrap=True)
    console.print(f"  output: {escape(result.info['output'])}", soft_wrap=True)
    console.print(f"  load:   {escape(result.info['load'])}", soft_wrap=True)
    if "external_data" in result.info:
        console.print(f"  weights: {escape(result.info['external_data'])}", soft_wrap=True)
    console.print(f"sidecar {escape(str(result.sidecar))}", soft_wrap=True)
