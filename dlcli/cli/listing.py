"""`dlcli list-layers [NAME]` and `dlcli list KIND [NAME]`: what the registries hold."""

from __future__ import annotations

import json
from typing import Optional

import typer

from dlcli.cli._app import app, console, report_errors
from dlcli.errors import DlcliError, short_repr

KINDS = ("layers", "activations", "optimizers", "schedulers", "losses", "metrics", "datasets")


def _registry(kind: str):
    if kind == "layers":
        from dlcli.layers import LAYERS as reg
    elif kind == "activations":
        from dlcli.activations import ACTIVATIONS as reg
    elif kind in ("optimizers", "schedulers"):
        from dlcli import optim

        reg = optim.OPTIMIZERS if kind == "optimizers" else optim.SCHEDULERS
    elif kind == "losses":
        from dlcli.losses import LOSSES as reg
    elif kind == "metrics":
        from dlcli.metrics import METRICS as reg
    elif kind == "datasets":
        from dlcli.data import DATASETS as reg
    else:
        from dlcli.errors import did_you_mean

        raise DlcliError(f"unknown kind {short_repr(kind)};{did_you_mean(kind, KINDS)} expected one of: "
                         f"{', '.join(KINDS)}")
    return reg


def show(kind: str, name: Optional[str], as_json: bool) -> None:
    from dlcli.cli._render import entry_json, entry_table, registry_table
    from dlcli.config import entry_example

    registry = _registry(kind)
    if name is None:
        if as_json:
            console.print_json(json.dumps([entry_json(e, entry_example(registry, e)) for e in registry]))
        else:
            console.print(registry_table(registry, f"{len(registry)} {kind}"))
        return
    entry = registry.lookup(name)
    if entry is None:
        raise DlcliError(registry.unknown_message(name))
    example = entry_example(registry, entry)
    if as_json:
        console.print_json(json.dumps(entry_json(entry, example)))
        return
    console.print(entry_table(entry, registry.kind))
    if entry.aliases:
        console.print(f"aliases: {', '.join(entry.aliases)}")
    console.print(f"\n{example.heading}\n" + "\n".join("  " + line for line in example.lines), markup=False)


@app.command("list-layers")
@report_errors
def list_layers(name: Optional[str] = typer.Argument(None, help="show one layer in detail"),
                as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """List every layer type with its aliases and arguments."""
    show("layers", name, as_json)


@app.command("list", short_help="List layers, optimizers, schedulers, losses, metrics, datasets.")
@report_errors
def list_kind(kind: str = typer.Argument(..., help=f"one of: {', '.join(KINDS)}"),
              name: Optional[str] = typer.Argument(None, help="show one entry in detail"),
              as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """List layers, activations, optimizers, schedulers, losses, metrics or datasets."""
    show(kind, name, as_json)
