"""`dlcli validate CONFIG [overrides...]`: check a config and print the model summary."""

from __future__ import annotations

from typing import List, Optional

import typer

from dlcli.cli._app import app, console, err_console, escape, report_errors


@app.command(short_help="Check a config and print the model summary.")
@report_errors
def validate(config: str = typer.Argument(..., help="the YAML config"),
             overrides: Optional[List[str]] = typer.Argument(None, help="key.path=value overrides"),
             show_config: bool = typer.Option(False, "--print-config",
                                              help="print the resolved config, alone on stdout (the summary goes "
                                                   "to stderr): `> resolved.yaml` is a config"),
             no_data: bool = typer.Option(False, "--no-data",
                                          help="skip the data checks (files there, CSV headers, array shapes, "
                                               "class folders)")) -> None:
    """Validate a config and print the model summary: the config, the device it asks for and the
    data it names (files, headers and shapes, never whole data sets; --no-data skips these)."""
    from dlcli.config import dump_config, load_config_with_origin

    cfg, origin = load_config_with_origin(config, overrides or [])
    from dlcli.cli._render import summary_table, summary_totals
    from dlcli.model import build_meta_model, plan_model, summarize
    from dlcli.preflight import preflight

    plan = plan_model(cfg)  # validation's
    model = build_meta_model(plan)
    summary = summarize(plan, model)
    preflight(cfg, origin, data=not no_data, model=model)
    report = err_console if show_config else console  # with --print-config, stdout is the YAML alone
    report.print(summary_table(summary, cfg["name"]))
    report.print(summary_totals(summary))
    if show_config:
        console.print(dump_config(cfg), markup=False, soft_wrap=True)  # as YAML wrote it: no re-wrapping
    report.print(f"[green]{escape(config)}: valid[/]", soft_wrap=True)
