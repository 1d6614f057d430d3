"""dlcli.registry: the one registry mechanism, its argument kinds and check_args."""

from __future__ import annotations

import re

import pytest

from dlcli.activations import ACTIVATIONS
from dlcli.data import DATASETS
from dlcli.layers import LAYERS
from dlcli.losses import LOSSES
from dlcli.metrics import METRICS
from dlcli.optim import OPTIMIZERS, SCHEDULERS
from dlcli.registry import (REQUIRED, Arg, Bool, Entry, Float, FloatList, Int, IntList, IntTuple, KindError,
                            Optional, Padding, Permutation, Registry, Str, StrList, check_args)

REGISTRIES = {r.kind: r for r in (LAYERS, ACTIVATIONS, OPTIMIZERS, SCHEDULERS, LOSSES, METRICS, DATASETS)}


def _noop(*args, **kwargs):
    return None


# --- registration ------------------------------------------------------------

def test_register_twice_raises():
    reg = Registry("widget")
    reg.register("thing", help="a thing")(_noop)
    with pytest.raises(ValueError, match="widget 'thing' is registered twice"):
        reg.register("thing", help="again")(_noop)
    assert len(reg) == 1


def test_a_fact_the_registry_does_not_declare_is_refused_at_registration():
    """A misspelt meta key (length_dependant) would be read by nothing: refused at import."""
    reg = Registry("widget", meta_keys=("length_dependent",))
    reg.register("thing", help="a thing", length_dependent=True)(_noop)
    with pytest.raises(ValueError, match="widget 'other': unknown meta length_dependant; a widget declares "
                                         "length_dependent"):
        reg.register("other", help="x", length_dependant=True)(_noop)
    assert reg.names() == ["thing"]


def test_a_required_argument_without_an_example_value_is_refused_at_registration():
    """`dlcli list` derives each entry's example from its required arguments' example values."""
    reg = Registry("widget")
    with pytest.raises(ValueError, match="widget 'thing': required argument size declares no example value"):
        reg.register("thing", help="a thing", args=(Arg("size", Int(min=1)),))(_noop)
    reg.register("thing", help="a thing", args=(Arg("size", Int(min=1), example=3),))(_noop)
    reg.register("other", help="x", args=(Arg("size", Int(min=1)),), example="- other: {size: 3}")(_noop)
    assert reg.get("thing").example_args() == {"size": 3}


def test_every_registry_declares_its_entries_facts():
    from dlcli.activations import ACTIVATIONS
    from dlcli.data import DATASETS
    from dlcli.layers import LAYERS
    from dlcli.losses import LOSSES
    from dlcli.metrics import METRICS
    from dlcli.optim import OPTIMIZERS, SCHEDULERS

    for registry in (ACTIVATIONS, DATASETS, LAYERS, LOSSES, METRICS, OPTIMIZERS, SCHEDULERS):
        assert registry.meta_keys, registry.kind
        assert set().union(*(entry.meta for entry in registry.entries())) == registry.meta_keys, registry.kind


def test_alias_clashing_with_a_name_or_alias_raises():
    reg = Registry("widget")
    reg.register("thing", help="a thing", aliases=("Thing",))(_noop)
    with pytest.raises(ValueError, match="'thing' is registered twice"):
        reg.register("other", help="x", aliases=("thing",))(_noop)
    with pytest.raises(ValueError, match="'Thing' is registered twice"):
        reg.register("third", help="x", aliases=("Thing",))(_noop)
    assert reg.names() == ["thing"]


def test_registering_an_existing_layer_raises_and_leaves_the_registry_intact():
    before = LAYERS.all_names()
    with pytest.raises(ValueError, match="registered twice"):
        LAYERS.register("dense", help="a second dense")(_noop)
    assert LAYERS.all_names() == before


@pytest.mark.parametrize("name", ["Dense", "conv-2d", "2d_conv", "max pool", "", "dense!"])
def test_names_must_be_lowercase_snake_case(name):
    with pytest.raises(ValueError, match="lowercase snake case"):
        Registry("widget").register(name, help="x")


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_registered_names_are_lowercase_snake_case(kind):
    registry = REGISTRIES[kind]
    assert len(registry) > 0
    for name in registry.names():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name), f"{kind} {name!r} is not lowercase snake case"


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_every_entry_is_documented_and_buildable(kind):
    for entry in REGISTRIES[kind]:
        assert entry.help, f"{kind} {entry.name} has no help"
        assert callable(entry.build)
        for arg in entry.args:
            assert re.fullmatch(r"[a-z][a-z0-9_]*", arg.name), f"{entry.name}.{arg.name}"
            assert arg.help, f"{kind} {entry.name}: argument {arg.name} has no help"
            if not arg.required and arg.default is not None:
                arg.kind.check(arg.default)  # every default is a valid value


def test_lookup_resolves_aliases_to_the_same_entry():
    assert LAYERS.lookup("Conv2D") is LAYERS.get("conv2d")
    assert LAYERS.lookup("MaxPooling2D").name == "maxpool2d"
    assert LAYERS.lookup("nope") is None
    assert LAYERS.lookup(3) is None
    assert "Dense" in LAYERS and "dense" in LAYERS and "densee" not in LAYERS


def test_unknown_name_lists_choices_and_suggests_the_canonical_name():
    message = LAYERS.unknown_message("Conv2d")  # closest spelling is the alias Conv2D
    assert "did you mean 'conv2d'?" in message
    assert "valid layers: conv1d, conv2d," in message
    with pytest.raises(KeyError, match="unknown optimizer 'adamm'; did you mean 'adam'"):
        OPTIMIZERS.get("adamm")


def test_unknown_name_without_a_close_match_has_no_suggestion():
    message = LOSSES.unknown_message("zzzzzz")
    assert "did you mean" not in message
    assert "valid losses: cross_entropy, nll," in message


# --- argument kinds ----------------------------------------------------------

@pytest.mark.parametrize("kind, value, expected", [
    (Int(min=1), 3, 3),
    (Int(min=1), 3.0, 3),
    (Int(min=0, max=5), 0, 0),
    (Float(min=0.0, min_open=True), 1, 1.0),
    (Float(), "1e-3", 1e-3),
    (Float(), 1e-3, 1e-3),
    (Bool(), True, True),
    (Str(("a", "b")), "b", "b"),
    (Optional(Int()), None, None),
    (IntTuple(2), 3, (3, 3)),
    (IntTuple(2), [3, 5], (3, 5)),
    (IntList(), [1, 28, 28], [1, 28, 28]),
    (FloatList(2), [0.9, 0.999], [0.9, 0.999]),
    (Padding(), "same", "same"),
    (Padding(), 2, 2),
    (StrList(), "x", ["x"]),
    (Permutation(), [2, 1], [2, 1]),
    (Permutation(), (1, 3, 2), [1, 3, 2]),
])
def test_kinds_accept_and_normalize(kind, value, expected):
    result = kind.check(value)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize("kind, value, message", [
    (Int(min=1), 0, "expected an integer > 0"),
    (Int(min=1), -3, "expected an integer > 0"),
    (Int(min=1), True, "expected an integer"),
    (Int(min=1), "3", "expected an integer"),
    (Int(min=1), 2.5, "expected an integer"),
    (Int(min=0, max=5), 6, "between 0 and 5"),
    (Float(min=0.0, max=1.0, max_open=True), 1.0, r"expected a number \(>= 0, < 1\)"),
    (Float(), "fast", "expected a number"),
    (Float(), float("nan"), "finite"),
    (Bool(), "yes", "true or false"),
    (Str(("valid", "same")), "smae", "expected one of: valid, same; did you mean 'same'"),
    (IntTuple(2), [3, 3, 3], "a list of 2 such integers"),
    (IntTuple(2), 0, "integer >= 1"),
    (IntList(), [], "list of 1 to 8 integers"),
    (IntList(), [1, 0], "integers >= 1"),
    (Padding(), -1, "'valid', 'same' or an integer >= 0"),
    (StrList(lambda: ["a", "b"]), ["c"], "unknown name 'c'"),
    (Permutation(), [2, 2], r"expected a permutation of the sample axes 1..n \(numbered from 1, as in Keras\)"),
    (Permutation(), [0, 1], "a permutation of the sample axes 1..n"),
    (Permutation(), [1, 3], "a permutation of the sample axes 1..n"),
    (Permutation(), [], "a permutation"),
    (Permutation(), 2, "a permutation"),
    (Permutation(), [True, 1], "a permutation"),
])
def test_kinds_refuse_with_the_rule(kind, value, message):
    with pytest.raises(KindError, match=message):
        kind.check(value)


# --- check_args ----------------------------------------------------------------

_ENTRY = Entry("widget", "a test widget", args=(
    Arg("units", Int(min=1), help="how many"),
    Arg("strides", IntTuple(2), 1, "step"),
    Arg("rate", Float(min=0.0, max=1.0), 0.5, "a fraction"),
))


def test_check_args_fills_and_normalizes_defaults():
    args, problems = check_args(_ENTRY, {"units": 4})
    assert problems == []
    assert args == {"units": 4, "strides": (1, 1), "rate": 0.5}


def test_check_args_reports_every_problem():
    _, problems = check_args(_ENTRY, {"unit": 4, "rate": 2})
    messages = [m for _, m in problems]
    assert len(problems) == 3
    assert problems[0][0] == "unit" and "did you mean 'units'?" in messages[0]
    assert "valid arguments: units, strides, rate" in messages[0]
    assert problems[1][0] == "rate" and "received: 2" in messages[1]
    assert problems[2][0] is None and "missing required argument 'units'" in messages[2]


def test_required_marker():
    assert _ENTRY.arg("units").required and _ENTRY.arg("units").default is REQUIRED
    assert not _ENTRY.arg("rate").required
    assert _ENTRY.defaults() == {"strides": 1, "rate": 0.5}
    assert _ENTRY.arg("nope") is None


def test_an_argument_declaring_an_unknown_resume_change_is_refused():
    """Arg.resume names what a `--resume` override of it changes: a misspelt change is refused
    where it is declared, not met as a surprise by the resume."""
    with pytest.raises(ValueError, match="resume='speed' is not one of length, machine"):
        Arg("epochs", Int(), 1, resume="speed")
