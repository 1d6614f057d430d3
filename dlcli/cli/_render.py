"""Rich renderings of library results: summaries and registry listings."""

from __future__ import annotations

import json

from rich.markup import escape
from rich.table import Table

from dlcli.layers import fmt_shape
from dlcli.registry import Entry, Registry


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.2f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n:.2f} GB"  # pragma: no cover


def summary_table(summary: dict, title: str) -> Table:
    from dlcli.cli._app import escape as escape_text  # the run name may come from a file name

    table = Table(title=f"Model: {escape_text(title)}", title_justify="left")
    table.add_column("Layer (type)")
    table.add_column("Output Shape")
    table.add_column("Param #", justify="right")
    table.add_row("input", fmt_shape(("None", *summary["input_shape"])), "0")
    for row in summary["rows"]:
        label = f"{row.name} ({row.type})"
        if row.note:
            label += f"\n  [dim]{row.note}[/]"
        table.add_row(label, fmt_shape(("None", *row.output_shape)), f"{row.params:,}")
    return table


def summary_totals(summary: dict) -> str:
    return (f"Total params: {summary['total']:,} ({human_bytes(summary['bytes'])})\n"
            f"Trainable params: {summary['trainable']:,}\n"
            f"Non-trainable params: {summary['non_trainable']:,}")


def _arg_text(entry: Entry) -> str:
    parts = []
    for arg in entry.args:
        parts.append(f"{arg.name}: {arg.kind}" + ("" if arg.required else f" = {show_default(arg.default)}"))
    return escape("\n".join(parts)) or "-"


def show_default(value) -> str:
    """Defaults as they are written in YAML: null, true, [1, 1]."""
    return json.dumps(value)


def registry_table(registry: Registry, title: str) -> Table:
    table = Table(title=title, title_justify="left", show_lines=True)
    show_family = any(e.family for e in registry)
    if show_family:
        table.add_column("family", overflow="fold")
    # nothing is cut short (a narrow terminal, COLUMNS=80): names stay whole, the rest folds; never "global_avgpo…"
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("aliases", overflow="fold")
    table.add_column("arguments (kind = default)", overflow="fold")
    table.add_column("description", overflow="fold")
    for entry in sorted(registry, key=lambda e: (e.family, e.name)) if show_family else registry:
        row = [entry.name, ", ".join(entry.aliases) or "-", _arg_text(entry), escape(entry.help)]
        table.add_row(*([entry.family] if show_family else []), *row)
    return table


def entry_table(entry: Entry, kind: str) -> Table:
    table = Table(title=escape(f"{kind} {entry.name}: {entry.help}"), title_justify="left")
    table.add_column("argument", style="bold")
    table.add_column("kind")
    table.add_column("default")
    table.add_column("description")
    for arg in entry.args:
        table.add_row(arg.name, escape(str(arg.kind)), "required" if arg.required else escape(show_default(arg.default)),
                      escape(arg.help))
    if not entry.args:
        table.add_row("-", "-", "-", "takes no arguments")
    return table


def entry_json(entry: Entry, example) -> dict:
    """`example`: the entry's `dlcli.config.Example` (its lines, and the key path they go under)."""
    return {"name": entry.name, "aliases": list(entry.aliases), "family": entry.family or None,
            "help": entry.help, "example": example.text, "example_under": ".".join(example.under),
            "args": [{"name": a.name, "kind": str(a.kind), "required": a.required,
                      "default": None if a.required else a.default, "help": a.help} for a in entry.args]}
