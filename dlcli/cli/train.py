"""`dlcli train CONFIG [overrides...]` and `dlcli train --resume RUN_DIR`."""

from __future__ import annotations

from shlex import quote
from typing import List, Optional

import typer

from dlcli.cli._app import app, console, err_console, escape, report_errors


@app.command(short_help="Train a model (or --resume a run).")
@report_errors
def train(config: Optional[str] = typer.Argument(None, help="the YAML config (omit with --resume)"),
          overrides: Optional[List[str]] = typer.Argument(None, help="key.path=value overrides"),
          resume: Optional[str] = typer.Option(None, "--resume", help="continue a run: its directory or a checkpoint"),
          ) -> None:
    """Train a model; writes runs/<name>/<id>/ with config, metrics, checkpoints and summary."""
    from dlcli.config import load_config_with_origin
    from dlcli.errors import DlcliError, short_repr, shorten

    overrides = list(overrides or [])
    if resume is not None and config is not None:
        if "=" in config:  # `--resume RUN trainer.epochs=20`: typer takes the override as CONFIG
            overrides.insert(0, config)
        else:
            raise DlcliError(f"give a CONFIG or --resume RUN_DIR, not both (received {short_repr(config, 300)} and "
                             f"--resume {shorten(resume, 300)})")
    if resume is None and config is None:
        raise DlcliError("missing CONFIG: dlcli train CONFIG [key.path=value ...] or dlcli train --resume RUN_DIR")
    # config errors before torch loads; the origin reports later data and device errors at their keys' lines
    cfg, origin = load_config_with_origin(config, overrides) if resume is None else (None, None)

    from dlcli.cli._progress import ProgressDisplay
    from dlcli.train import RunHandle, SecondSignal, TrainingInterrupted, resume as resume_run, train as train_run

    handle = RunHandle()
    display = ProgressDisplay(console)  # trainer.progress of the run, as resolved (resume: its checkpoint's)
    try:
        if cfg is not None:
            console.print(f"training [bold]{escape(shorten(cfg['name'], 300))}[/] ({escape(shorten(config, 300))})",
                          soft_wrap=True)
            summary = train_run(cfg, callbacks=[display], handle=handle, overrides=overrides)
        else:
            console.print(f"resuming {escape(shorten(resume, 300))}", soft_wrap=True)
            summary = resume_run(resume, overrides, callbacks=[display], handle=handle)
    except TrainingInterrupted as stop:
        last = handle.run_dir / "checkpoints" / "last.pt"
        trainer = handle.trainer
        at = (f"epoch {trainer.epoch + 1}, batch {trainer.batch_in_epoch}" if trainer.batch_in_epoch else
              f"the end of epoch {trainer.epoch}")
        err_console.print(f"[yellow]stopped by {stop.signal_name}[/]: saved {escape(str(last))} ({at}).\n"
                          f"resume with: dlcli train --resume {escape(quote(str(handle.run_dir)))}", soft_wrap=True)
        raise typer.Exit(130) from None
    except KeyboardInterrupt as stop:  # a second signal (SecondSignal), or a Ctrl-C outside the training loop
        if handle.run_dir is None:
            raise typer.Exit(130) from None  # nothing was written yet
        last = handle.run_dir / "checkpoints" / "last.pt"
        kept = (f"the last checkpoint is {escape(str(last))}.\nresume from it with: dlcli train --resume "
                f"{escape(quote(str(handle.run_dir)))}" if last.exists() else
                "no checkpoint had been saved; start the run again")
        how = f"by a second {stop}" if isinstance(stop, SecondSignal) else "by SIGINT"
        err_console.print(f"[yellow]stopped at once {how}[/]: {kept}", soft_wrap=True)
        raise typer.Exit(130) from None
    except DlcliError as err:
        if origin is not None:
            err = origin.located(err)  # `cfg.yaml:12: data.path: ...` for an error about a config key
        if handle.run_dir is not None:
            last = handle.run_dir / "checkpoints" / "last.pt"
            kept = f"; last good checkpoint: {last}" if last.exists() else ""
            err.args = (f"{err}\nrun directory: {handle.run_dir}{kept}",)  # any DlcliError, whatever its arguments
        raise err from None
    report(summary)


def report(summary: dict) -> None:
    best = summary.get("best") or {}
    if summary.get("stop_reason"):
        console.print(summary["stop_reason"])
    if best:
        console.print(f"best epoch {best['epoch']}: {best['metric']} {best['value']:.4f}")
    test = summary.get("test")
    if test:
        shown = "  ".join(f"test_{k} {v:.4f}" for k, v in test.items())
        console.print(f"test (epoch {summary.get('test_epoch')} weights): {shown}")
    console.print(f"{_trained(summary)} in {summary['seconds']:.1f}s; wrote {escape(str(summary['run_dir']))}",
                  soft_wrap=True)  # a path cut by line wrapping cannot be copied


def _trained(summary: dict) -> str:
    """What this process trained: 'trained 3 epochs', or for a resumed run 'trained epochs 6 to 10'."""
    first, last = summary.get("first_epoch", 1), summary["epochs"]
    if first == 1:
        return f"trained {last} epoch{'' if last == 1 else 's'}"
    if first > last:
        return f"no epoch left to train (the run was at epoch {last})"
    return f"trained epoch {last}" if first == last else f"trained epochs {first} to {last}"
