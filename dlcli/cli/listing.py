"""`dlcli list-layers [NAME]` and `dlcli list KIND [NAME]`: what the registries hold."""

from __future__ import annotations

import json
from typing import Optional

import typer

from dlcli.cli._app import app, console, report_errors
from dlcli.errors import DlcliError, did_you_mean, short_repr

# what `dlcli list` takes, for --help, which imports no registry; registries() says the same
KINDS = ("layers", "activations", "optimizers", "schedulers", "losses", "metrics", "datasets")


def registries() -> dict:
    """Every registry by the kind `dlcli list` names it (its plural), imported when something is
    listed (the declarations need no torch)."""
    from dlcli.activations import ACTIVATIONS
    from dlcli.data import DATASETS
    from dlcli.layers import LAYERS
    from dlcli.losses import LOSSES
    from dlcli.metrics import METRICS
    from dlcli.optim import OPTIMIZERS, SCHEDULERS

    return {registry.plural: registry
            for registry in (LAYERS, ACTIVATIONS, OPTIMIZERS, SCHEDULERS, LOSSES, METRICS, DATASETS)}


def _registry(kind: str):
    registry = registries().get(kind)
    if registry is None:
        raise DlcliError(f"unknown kind {short_repr(kind)};{did_you_mean(kind, KINDS)} expected one of: "
                         f"{', '.join(KINDS)}")
    return registry


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
