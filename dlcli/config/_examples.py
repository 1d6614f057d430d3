"""The example `dlcli list KIND NAME` shows: the entry written where a config takes it.

Derived from the declarations: the registry says where its entries go (a layer under
model.layers, an optimizer as the `optimizer` section, a data set as `data` with its
`dataset` key), the entry its required arguments, each with its declared example value.
A layer's hand-written `example` (which shows a typical use) is taken as it is. The tests
paste every example into a config and validate it.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlcli.activations import ACTIVATIONS
from dlcli.config._validate import NAMED_SECTIONS
from dlcli.data.datasets import DATASETS
from dlcli.layers import LAYERS
from dlcli.losses import LOSSES
from dlcli.metrics import METRICS
from dlcli.optim import OPTIMIZERS, SCHEDULERS
from dlcli.registry import Entry, Registry

# the layer whose `activation` argument an activation's example fills
ACTIVATION_HOST = "dense"


@dataclass(frozen=True)
class Example:
    """YAML `lines` that go under the key path `under` (() is the top level of a config)."""

    under: tuple
    lines: tuple[str, ...]
    note: str = ""  # what else the example needs, e.g. a regression loss beside a regression metric

    @property
    def heading(self) -> str:
        where = f"under {'.'.join(self.under)}" if self.under else "at the top level of a config"
        return f"example ({where}{'; ' + self.note if self.note else ''}):"

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def flow(mapping: dict) -> str:
    """A mapping as one line of YAML, keys in their order: {units: 64, activation: relu}."""
    import yaml

    return yaml.safe_dump(mapping, default_flow_style=True, sort_keys=False, width=10_000).strip()


def _layer_line(entry: Entry, extra: dict | None = None) -> str:
    args = {**entry.example_args(), **(extra or {})}
    return f"- {entry.name}: {flow(args)}" if args else f"- {entry.name}"


def _section(section: str, entry: Entry) -> str:
    return f"{section}: {flow({NAMED_SECTIONS[section]: entry.name, **entry.example_args()})}"


def entry_example(registry: Registry, entry: Entry) -> Example:
    """Where and how a config writes `entry` of `registry`."""
    if registry is LAYERS:
        return Example(("model", "layers"), (entry.example or _layer_line(entry),))
    if registry is ACTIVATIONS:  # a layer's activation argument, or a layer of its own
        host = LAYERS.get(ACTIVATION_HOST)
        return Example(("model", "layers"), (_layer_line(host, {"activation": entry.name}),
                                             f"- activation: {entry.name}"))
    if registry is METRICS:
        task = entry.meta["task"]
        losses = [loss.name for loss in LOSSES if loss.meta["task"] == task]
        return Example((), (f"metrics: [{entry.name}]",), note=f"with a {task} loss: {', '.join(losses)}")
    if registry is DATASETS:
        shape, classes = entry.meta.get("sample_shape"), entry.meta.get("num_classes")
        needs = ([f"model.input_shape: {list(shape)}"] if shape else []) + (
            [f"a last layer of {classes} units"] if classes else [])
        return Example((), (_section("data", entry),), note="with " + " and ".join(needs) if needs else "")
    if registry is LOSSES and entry.meta["needs_final"]:
        return Example((), (_section("loss", entry),),
                       note=f"with a model that ends in {entry.meta['needs_final']} (the last layer's activation)")
    sections = {OPTIMIZERS: "optimizer", SCHEDULERS: "scheduler", LOSSES: "loss"}
    if registry in sections:
        return Example((), (_section(sections[registry], entry),))
    raise ValueError(f"no example form for the {registry.kind} registry")
