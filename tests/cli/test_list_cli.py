"""`dlcli list-layers` and `dlcli list KIND`: what the registries hold, as tables or JSON."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from dlcli.cli.listing import KINDS, _registry
from dlcli.config import config_from_text
from dlcli.errors import ConfigError
from dlcli.layers import LAYERS

# What `dlcli list KIND` documents (README); listing.KINDS must offer exactly these.
DOCUMENTED_KINDS = ("layers", "activations", "optimizers", "schedulers", "losses", "metrics", "datasets")


def test_list_offers_the_documented_kinds():
    assert sorted(KINDS) == sorted(DOCUMENTED_KINDS)


def test_each_kind_is_the_registry_that_calls_itself_so():
    from dlcli.cli.listing import registries
    from dlcli.data import DATASETS

    assert list(registries()) == list(KINDS)  # the --help text names no kind that is not there
    assert _registry("datasets") is DATASETS and _registry("losses").kind == "loss"


def test_list_layers_lists_every_layer_name(cli, monkeypatch):
    from dlcli.cli._app import console

    monkeypatch.setattr(console, "width", 80)  # a narrow terminal (piped output does not wrap)
    result = cli("list-layers")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{len(LAYERS)} layers")
    for name in LAYERS.names():
        assert f" {name} " in result.stdout, f"{name} missing from list-layers"
    assert "…" not in result.stdout  # nothing cut short at 80 columns


def test_list_layers_one_layer_shows_its_arguments_and_an_example(cli):
    result = cli("list-layers", "lstm")
    assert result.exit_code == 0, result.output
    assert "layer lstm: long short-term memory" in result.stdout
    for arg in ("units", "num_layers", "bidirectional", "return_sequences", "dropout"):
        assert arg in result.stdout
    assert "required" in result.stdout
    assert "aliases: LSTM" in result.stdout
    assert "example (under model.layers):\n  - lstm: {units: 128}" in result.stdout


def test_list_layers_shows_permute_with_its_keras_numbering(cli):
    result = cli("list-layers", "Permute")
    assert result.exit_code == 0, result.output
    assert "layer permute: reorder the sample axes, numbered from 1 as in Keras" in " ".join(result.stdout.split())
    assert "dims" in result.stdout and "permutation" in result.stdout and "aliases: Permute" in result.stdout
    assert "example (under model.layers):\n  - permute: [2, 1]" in result.stdout


def test_list_layers_by_alias(cli):
    result = cli("list-layers", "MaxPooling2D")
    assert result.exit_code == 0 and "layer maxpool2d:" in result.stdout


def test_list_layers_json_has_one_item_per_layer(cli):
    result = cli("list-layers", "--json")
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)
    assert [item["name"] for item in items] == LAYERS.names()
    conv = next(item for item in items if item["name"] == "conv2d")
    assert conv["aliases"] == ["Conv2D"] and conv["family"] == "conv"
    filters = conv["args"][0]
    assert filters == {"name": "filters", "kind": "int (>= 1)", "required": True, "default": None,
                       "help": "number of output channels"}


def test_list_layers_json_one_layer(cli):
    result = cli("list-layers", "dense", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["example"] == "- dense: {units: 10, activation: softmax}"


@pytest.mark.parametrize("kind", DOCUMENTED_KINDS)
def test_list_kind_shows_every_name(cli, kind):
    registry = _registry(kind)
    result = cli("list", kind)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{len(registry)} {kind}")
    for name in registry.names():
        assert f" {name} " in result.stdout, f"{kind}: {name} missing"
    assert "…" not in result.stdout


@pytest.mark.parametrize("kind", DOCUMENTED_KINDS)
def test_list_kind_json_and_each_entry(cli, kind):
    registry = _registry(kind)
    result = cli("list", kind, "--json")
    assert result.exit_code == 0, result.output
    assert [item["name"] for item in json.loads(result.stdout)] == registry.names()
    for entry in registry:
        result = cli("list", kind, entry.name)
        assert result.exit_code == 0, result.output
        assert f"{registry.kind} {entry.name}:" in result.stdout
        assert "\nexample (" in result.stdout


def test_list_optimizers_shows_arguments(cli):
    result = cli("list", "optimizers", "adam")
    assert result.exit_code == 0
    assert "lr" in result.stdout and "0.001" in result.stdout and "betas" in result.stdout
    assert "example (at the top level of a config):\n  optimizer: {type: adam}" in result.stdout


@pytest.mark.parametrize("args, message", [
    (("list-layers", "lstn"), "unknown layer 'lstn'; did you mean 'lstm'? valid layers: conv1d"),
    (("list", "optimizers", "adamm"), "unknown optimizer 'adamm'; did you mean 'adam'?"),
    (("list", "losses", "crossentropy"), "unknown loss 'crossentropy'; did you mean 'cross_entropy'? valid losses:"),
    (("list", "optimisers"), "unknown kind 'optimisers'; did you mean 'optimizers'? expected one of: layers,"),
])
def test_unknown_name_exits_2_with_did_you_mean(cli, args, message):
    result = cli(*args)
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.output


# --- every example `dlcli list KIND NAME` prints, pasted where it says, validates -----------------

EXAMPLE_HEADING = re.compile(r"^example \((?:under (?P<under>[\w.]+)|at the top level of a config)(?:; .*)?\):$")


def _every_entry():
    for kind in KINDS:
        for entry in _registry(kind):
            yield pytest.param(kind, entry, id=f"{kind}-{entry.name}")


EVERY_ENTRY = list(_every_entry())


def test_the_example_cases_cover_every_registry_entry():
    assert len(EVERY_ENTRY) == sum(len(_registry(kind)) for kind in KINDS) > 60


def printed_example(cli, kind: str, name: str) -> tuple[tuple, object]:
    """(the key path the example goes under, its YAML) as `dlcli list KIND NAME` prints them."""
    result = cli("list", kind, name)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    starts = [i for i, line in enumerate(lines) if EXAMPLE_HEADING.match(line)]
    assert len(starts) == 1, f"no 'example (under KEY):' or 'example (at the top level ...)' heading:\n{result.stdout}"
    under = EXAMPLE_HEADING.match(lines[starts[0]])["under"]
    body = []
    for line in lines[starts[0] + 1:]:
        if not line.startswith("  "):
            break
        body.append(line[2:])
    assert body, result.stdout
    return tuple(under.split(".")) if under else (), yaml.safe_load("\n".join(body))


def base_config(kind: str, entry, input_shape: list) -> dict:
    """A minimal valid config for the task the entry declares (metrics and losses: their task;
    data sets: their sample shape and classes; a loss: the final activation it needs), as the
    example's note says. Layers get an .npz file's data, whose samples take any shape (not read here)."""
    task = entry.meta.get("task") if kind in ("metrics", "losses") else "classification"
    if task == "classification":
        shape = entry.meta.get("sample_shape") if kind == "datasets" else None
        last = {"units": entry.meta.get("num_classes") or 10 if kind == "datasets" else 10}
        if kind == "losses" and entry.meta["needs_final"]:
            last["activation"] = entry.meta["needs_final"]
        data = {"dataset": "npz", "path": "train.npz"} if kind in ("layers", "activations") else "mnist"
        return {"model": {"input_shape": list(shape or input_shape), "layers": ["flatten", {"dense": last}]},
                "data": data, "loss": "cross_entropy"}
    return {"model": {"input_shape": [4], "layers": [{"dense": {"units": 1}}]},
            "data": {"dataset": "csv", "path": "train.csv", "target": "y"},
            "loss": "bce_with_logits" if task == "binary" else "mse"}


@pytest.mark.parametrize("kind, entry", EVERY_ENTRY)
def test_every_printed_example_validates_where_it_says(cli, kind, entry):
    under, example = printed_example(cli, kind, entry.name)
    assert under in ((), ("model", "layers")), under
    problems = []
    # a layer must fit one of these sample shapes: an image, a sequence (or channels x length), flat
    for shape in ([1, 28, 28], [28, 28], [784]) if under else ([1, 28, 28],):
        config = base_config(kind, entry, shape)
        if under:
            assert isinstance(example, list), example
            config["model"]["layers"][:0] = example
        else:
            assert isinstance(example, dict), example
            config.update(example)
        try:
            config_from_text(yaml.safe_dump(config, sort_keys=False), f"<{kind} {entry.name}>")
            return
        except ConfigError as err:
            problems.append(f"{shape}: {err}")
    pytest.fail(f"the example of {kind} {entry.name} does not validate: {problems}")


def test_a_regression_metric_says_which_losses_it_needs(cli):
    result = cli("list", "metrics", "mae")
    assert "example (at the top level of a config; with a regression loss: mse, mae, huber):\n" \
           "  metrics: [mae]" in result.stdout


def test_a_dataset_with_required_arguments_shows_them(cli):
    result = cli("list", "datasets", "csv")
    assert "  data: {dataset: csv, path: data/train.csv, target: label}" in result.stdout
    result = cli("list", "datasets", "cifar10", "--json")
    assert json.loads(result.stdout)["example"] == "data: {dataset: cifar10}"
    assert json.loads(result.stdout)["example_under"] == ""


def test_an_activation_example_shows_both_places_it_goes(cli):
    result = cli("list", "activations", "relu")
    assert "example (under model.layers):\n  - dense: {units: 64, activation: relu}\n  - activation: relu" \
           in result.stdout
