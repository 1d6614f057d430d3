"""`dlcli list-layers` and `dlcli list KIND`: what the registries hold, as tables or JSON."""

from __future__ import annotations

import json

import pytest

from dlcli.cli.listing import KINDS, _registry
from dlcli.layers import LAYERS

# What `dlcli list KIND` documents (README); listing.KINDS must offer exactly these.
DOCUMENTED_KINDS = ("layers", "activations", "optimizers", "schedulers", "losses", "metrics", "datasets")


def test_list_offers_the_documented_kinds():
    assert sorted(KINDS) == sorted(DOCUMENTED_KINDS)


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
    assert "example:\n  - lstm: {units: 128}" in result.stdout


def test_list_layers_shows_permute_with_its_keras_numbering(cli):
    result = cli("list-layers", "Permute")
    assert result.exit_code == 0, result.output
    assert "layer permute: reorder the sample axes, numbered from 1 as in Keras" in " ".join(result.stdout.split())
    assert "dims" in result.stdout and "permutation" in result.stdout and "aliases: Permute" in result.stdout
    assert "example:\n  - permute: [2, 1]" in result.stdout


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
        assert "example:" in result.stdout


def test_list_optimizers_shows_arguments(cli):
    result = cli("list", "optimizers", "adam")
    assert result.exit_code == 0
    assert "lr" in result.stdout and "0.001" in result.stdout and "betas" in result.stdout
    assert "example:\n  optimizer: {type: adam}" in result.stdout


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
