"""dlcli.config._overrides: `key.path=value` on the command line, validated like the file."""

from __future__ import annotations

import re

import pytest

from dlcli.config import ConfigError, load_config
from dlcli.config._overrides import parse_override, parse_path


@pytest.fixture
def config_path(write_config, tiny_config_text):
    return write_config(tiny_config_text)


@pytest.mark.parametrize("text, expected", [
    ("trainer.epochs", ("trainer", "epochs")),
    ("model.layers[0].filters", ("model", "layers", 0, "filters")),
    ("a[1][2].b", ("a", 1, 2, "b")),
    ("model.layers[-1].units", ("model", "layers", -1, "units")),
])
def test_parse_path(text, expected):
    assert parse_path(text) == expected


@pytest.mark.parametrize("text, path, value", [
    ("trainer.epochs=3", ("trainer", "epochs"), 3),
    ("optimizer.lr=1e-3", ("optimizer", "lr"), 1e-3),
    ("model.input_shape=[28, 28]", ("model", "input_shape"), [28, 28]),
    ("loss=mse", ("loss",), "mse"),
    ("data.path=a=b.csv", ("data", "path"), "a=b.csv"),
    ("name==", ("name",), "="),
    ("name=", ("name",), ""),
    ("name=[unclosed", ("name",), "[unclosed"),  # not YAML on its own: kept as text
])
def test_parse_override_splits_at_the_first_equals_and_reads_yaml(text, path, value):
    assert parse_override(text) == (path, value)


def test_a_whole_mapping_that_yaml_refuses_is_its_yaml_error_not_a_string(config_path):
    with pytest.raises(ConfigError, match=r"override 'data=\{dataset: mnist, batch_size: 32, batch_size: 64\}':1: "
                                          r"batch_size: duplicate key 'batch_size'"):
        load_config(config_path, ["data={dataset: mnist, batch_size: 32, batch_size: 64}"])


def test_1e_minus_3_in_an_override_is_a_float(config_path):
    assert type(parse_override("optimizer.lr=1e-3")[1]) is float
    cfg = load_config(config_path, ["optimizer.lr=1e-4"])
    assert type(cfg["optimizer"]["lr"]) is float and cfg["optimizer"]["lr"] == 1e-4


def test_override_changes_the_resolved_config(config_path):
    cfg = load_config(config_path, ["trainer.epochs=3", "data.batch_size=7", "seed=42"])
    assert (cfg["trainer"]["epochs"], cfg["data"]["batch_size"], cfg["seed"]) == (3, 7, 42)


def test_override_value_containing_equals(config_path):
    cfg = load_config(config_path, ["name=a=b=c"])
    assert cfg["name"] == "a=b=c"


def test_override_can_add_an_optional_section(config_path):
    cfg = load_config(config_path, ["scheduler.type=cosine", "scheduler.warmup_steps=5"])
    assert cfg["scheduler"] == {"type": "cosine", "eta_min": 0.0, "warmup_steps": 5}


def test_layer_override_really_changes_the_model(config_path):
    from dlcli.model import build_model

    cfg = load_config(config_path, ["model.layers[0].filters=64"])
    assert cfg["model"]["layers"][0]["filters"] == 64
    model = build_model(cfg)
    assert tuple(model.conv2d.weight.shape) == (64, 1, 3, 3)
    assert model.dense.in_features == 64 * 13 * 13  # the shapes after it follow


@pytest.mark.parametrize("override, section, expected", [
    ("optimizer.lr=0.01", "optimizer", {"type": "adam", "lr": 0.01}),
    ("loss.label_smoothing=0.1", "loss", {"type": "cross_entropy", "label_smoothing": 0.1}),
])
def test_override_of_an_argument_of_a_section_given_by_name(configs_dir, override, section, expected):
    # the Keras config says `optimizer: Adam` and `loss: sparse_categorical_crossentropy`
    cfg = load_config(configs_dir / "mnist_cnn_keras.yaml", [override])
    assert expected.items() <= cfg[section].items()


@pytest.mark.parametrize("overrides, section, expected", [
    (["optimizer=sgd", "optimizer.lr=0.5"], "optimizer", {"type": "sgd", "lr": 0.5}),
    (["loss=mse", "loss.reduction=sum", "metrics=[]"], "loss", {"type": "mse", "reduction": "sum"}),
    (["scheduler=cosine", "scheduler.warmup_steps=5"], "scheduler", {"type": "cosine", "warmup_steps": 5}),
    (["data=mnist", "data.batch_size=5"], "data", {"dataset": "mnist", "batch_size": 5}),
])
def test_a_section_named_by_an_override_takes_later_overrides_of_its_keys(config_path, overrides, section, expected):
    """As in the file (`optimizer: sgd`, then optimizer.lr=0.5), and as Lightning's CLI reads
    `--optimizer SGD --optimizer.lr 0.5`: not 'missing type'."""
    assert expected.items() <= load_config(config_path, overrides)[section].items()


@pytest.mark.parametrize("overrides, lost", [
    (["optimizer.lr=0.5", "optimizer=sgd"], "'optimizer.lr=0.5'"),
    (["model.layers[1].pool_size=3", "model.layers=[{conv2d: {filters: 4, kernel_size: 3}}, maxpool2d: 2, flatten, dense: 10]"],
     "'model.layers[1].pool_size=3'"),
])
def test_an_override_that_replaces_what_an_earlier_one_set_inside_it_is_refused(config_path, overrides, lost):
    with pytest.raises(ConfigError) as err:
        load_config(config_path, overrides)
    assert f"with it what the earlier override {lost} set inside it" in str(err.value)
    assert f"then the keys inside it: {overrides[1]} {overrides[0]}" in str(err.value)
    assert load_config(config_path, list(reversed(overrides)))  # in that order each one counts
    assert load_config(config_path, ["trainer.epochs=3", "trainer.epochs=4"])["trainer"]["epochs"] == 4


def test_override_of_a_data_argument_when_data_is_given_by_name(write_config, tiny_config_text):
    text = tiny_config_text.replace("data:\n  dataset: mnist\n  batch_size: 32\n", "data: mnist\n")
    assert "data: mnist\n" in text
    cfg = load_config(write_config(text), ["data.batch_size=16"])
    assert (cfg["data"]["dataset"], cfg["data"]["batch_size"]) == ("mnist", 16)


@pytest.mark.parametrize("overrides, section, expected", [
    (["optimizer.lr=0.01"], "optimizer", {"type": "adam", "lr": 0.01}),
    (["optimizer.lr=0.01", "optimizer.type=sgd"], "optimizer", {"type": "sgd", "lr": 0.01}),
    (["loss.label_smoothing=0.1"], "loss", {"type": "cross_entropy", "label_smoothing": 0.1}),
    (["trainer.early_stopping.patience=2"], "trainer", {"epochs": 10, "early_stopping": {"patience": 2,
                                                                                         "min_delta": 0.0}}),
])
def test_override_into_a_section_the_config_leaves_out_changes_its_default(write_config, tiny_config_text,
                                                                            overrides, section, expected):
    text = tiny_config_text.replace("optimizer: {type: adam, lr: 1e-3}\n", "").replace("loss: cross_entropy\n", "")
    text = text.replace("trainer:\n  epochs: 1\n  device: cpu\n", "")
    assert "optimizer" not in text and "loss" not in text and "trainer" not in text
    cfg = load_config(write_config(text), overrides)
    assert expected.items() <= cfg[section].items()


def test_override_into_a_defaulted_section_is_checked_against_the_default(write_config, tiny_config_text):
    path = write_config(tiny_config_text.replace("optimizer: {type: adam, lr: 1e-3}\n", ""))
    with pytest.raises(ConfigError, match=re.escape("override 'optimizer.momentum=0.9': optimizer.momentum: unknown "
                                                    "argument 'momentum' for adam")):
        load_config(path, ["optimizer.momentum=0.9"])


def test_override_of_a_key_that_does_not_exist(config_path):
    with pytest.raises(ConfigError, match=re.escape("override 'trainer.epochz=3': trainer.epochz: unknown "
                                                    "argument 'epochz' for trainer; did you mean 'epochs'?")):
        load_config(config_path, ["trainer.epochz=3"])


def test_override_of_an_unknown_section(config_path):
    with pytest.raises(ConfigError, match="override 'optimiser.lr=0.1': optimiser: unknown argument 'optimiser' "
                                          "for config; did you mean 'optimizer'?"):
        load_config(config_path, ["optimiser.lr=0.1"])


def test_override_of_an_out_of_range_list_index(config_path):
    with pytest.raises(ConfigError, match=re.escape("override 'model.layers[9].filters=1': model.layers[9]: "
                                                    "no item [9]: the list has 4 items")):
        load_config(config_path, ["model.layers[9].filters=1"])


def test_a_negative_index_counts_from_the_end_as_in_python(config_path):
    cfg = load_config(config_path, ["model.layers[-4].filters=6", "model.layers[-1].units=10"])
    assert cfg["model"]["layers"][0]["filters"] == 6
    with pytest.raises(ConfigError, match=re.escape("override 'model.layers[-5].filters=1': model.layers[-5]: "
                                                    "no item [-5]: the list has 4 items")):
        load_config(config_path, ["model.layers[-5].filters=1"])


def test_override_index_into_a_mapping(config_path):
    with pytest.raises(ConfigError, match=re.escape("override 'trainer[0]=1': trainer[0]: is not a list; "
                                                    "cannot take item [0]")):
        load_config(config_path, ["trainer[0]=1"])


def test_override_with_a_bad_value_is_validated_like_the_file(config_path):
    with pytest.raises(ConfigError, match=r"override 'trainer.epochs=0': trainer.epochs: expected an integer "
                                          r"between 1 and 1000000; received: 0"):
        load_config(config_path, ["trainer.epochs=0"])


def test_override_problems_and_file_problems_are_reported_together(write_config, tiny_config_text):
    path = write_config(tiny_config_text.replace("epochs: 1", "epochs: -1"))
    with pytest.raises(ConfigError, match="2 problems") as info:
        load_config(path, ["model.layers[7].units=3"])
    wheres = [p.where for p in info.value.problems]
    assert wheres[0] == "override 'model.layers[7].units=3'"
    assert re.fullmatch(rf"{re.escape(str(path))}:\d+", wheres[1])


@pytest.mark.parametrize("text, message", [
    ("trainer.epochs", "expected key.path=value"),
    ("trainer..epochs=3", "is not a key path"),
    ("model.layers[x]=3", "the bad part is 'layers\\[x\\]'"),
])
def test_malformed_overrides(config_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(config_path, [text])


@pytest.mark.parametrize("override, expected", [
    (f"trainer.epochs={'9' * 100_000}", r"trainer\.epochs: expected an integer between 1 and 1000000; received: "
                                        r"'9{55}\.\.\.' \(100,000 characters\)"),  # too long a number: read as text
    (f"trainer.device={'a' * 100_000}", r"trainer\.device: expected auto, cpu, cuda, cuda:N or mps; received: "
                                        r"'a{55}\.\.\.' \(100,000 characters\)"),
    (f"trainer.{'k' * 100_000}=1", r"trainer\.k{57}\.\.\. \(100,000 characters\): unknown argument "
                                   r"'k{57}\.\.\.' \(100,000 characters\) for trainer; valid arguments: epochs, "),
    ("k" * 100_000, r"<top level>: expected key\.path=value"),
    (f"trainer..{'k' * 100_000}=1", r"<top level>: 'trainer\.\.k{48}\.\.\.' \(100,009 characters\) is not a key "
                                    r"path .* the bad part is ''"),
], ids=["long number", "long string", "long key", "no =", "bad path"])
def test_a_huge_override_is_cut_in_the_message(config_path, override, expected):
    with pytest.raises(ConfigError) as info:
        load_config(config_path, [override])
    message = str(info.value)
    assert len(message) < 2_000, message[:2_000]
    where = re.escape(f"override '{override[:97]}...' ({len(override):,} characters)")
    assert re.fullmatch(rf"[^\n]+: 1 problem\n  - {where}: {expected}.*", message), message


def test_a_list_of_100000_items_is_refused_as_yaml_too_large_for_a_config(config_path):
    override = f"model.input_shape=[{', '.join(['1'] * 100_000)}]"
    with pytest.raises(ConfigError) as info:
        load_config(config_path, [override])
    message = str(info.value)
    assert len(message) < 2_000 and message.endswith(
        f"override '{override[:97]}...' ({len(override):,} characters):1: <top level>: invalid YAML: the document "
        f"has more than 50,000 keys and values; a config is small"), message[:2_000]


@pytest.mark.parametrize("override, layer", [
    ("model.layers[3]={dense: {units: 10}}", {"type": "dense", "units": 10}),
    ("model.layers[2]=flatten", {"type": "flatten"}),
    ("model.layers[1]={dropout: 0.5}", {"type": "dropout", "rate": 0.5}),
    ("model.layers[1]={type: maxpool2d, pool_size: 3}", {"type": "maxpool2d", "pool_size": [3, 3]}),
])
def test_a_whole_layer_given_by_an_override_takes_the_short_forms_too(config_path, override, layer):
    cfg = load_config(config_path, [override])
    index = int(override[len("model.layers["):].split("]")[0])
    assert {k: v for k, v in cfg["model"]["layers"][index].items() if k in layer} == layer
