"""dlcli.config._validate: every problem found, each with file:line, key path and a hint."""

from __future__ import annotations

import os
import re
import textwrap

import pytest

from dlcli.config import ConfigError, config_from_text, dump_config, load_config


def model_config(layers: str, input_shape: str = "[1, 28, 28]", rest: str = "data: mnist\n") -> str:
    """A config with the given layer lines (YAML list items, one per line)."""
    layer_lines = textwrap.indent(textwrap.dedent(layers).strip(), "    ")
    return f"model:\n  input_shape: {input_shape}\n  layers:\n{layer_lines}\n{rest}"


def problems_of(write_config, text: str) -> tuple[str, list]:
    path = write_config(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    for problem in info.value.problems:  # every problem says where it is
        assert re.fullmatch(rf"{re.escape(str(path))}:\d+", problem.where), problem
        assert f"{path}:" in str(info.value)
    return str(path), info.value.problems


def _at(path, line: int) -> str:
    return rf"{re.escape(str(path))}:{line}: "


# --- the whole config ----------------------------------------------------------------

def test_tiny_config_resolves_with_defaults(write_config, tiny_config_text):
    cfg = load_config(write_config(tiny_config_text, name="tiny.yaml"))
    assert cfg["name"] == "tiny"
    assert cfg["model"]["layers"][0] == {"type": "conv2d", "filters": 4, "kernel_size": [3, 3], "strides": [1, 1],
                                         "padding": "valid", "dilation_rate": [1, 1], "activation": "relu",
                                         "use_bias": True}
    assert cfg["model"]["layers"][2] == {"type": "flatten"}
    assert cfg["optimizer"]["type"] == "adam" and cfg["optimizer"]["betas"] == [0.9, 0.999]
    assert cfg["scheduler"] is None
    assert cfg["loss"] == {"type": "cross_entropy", "label_smoothing": 0.0, "class_weights": None, "reduction": "mean"}
    assert cfg["trainer"]["epochs"] == 1 and cfg["trainer"]["early_stopping"] is None


def test_name_defaults_to_the_file_name(write_config, tiny_config_text):
    cfg = load_config(write_config(tiny_config_text.replace("name: tiny\n", ""), name="my_run.yaml"))
    assert cfg["name"] == "my_run"


@pytest.mark.parametrize("name", ["../../escape", "/tmp/abs", "a/b", "a\\b", ".", ".."])
def test_run_name_must_be_one_folder_under_out_dir(write_config, tiny_config_text, name):
    path = write_config(tiny_config_text.replace("name: tiny", f"name: '{name}'"))
    with pytest.raises(ConfigError, match=_at(path, 1) + re.escape(
            "name: expected a run name, one folder under trainer.out_dir: any characters except '/', '\\' and NUL, "
            "and not '.' or '..'; received: ")):
        load_config(path)


@pytest.mark.parametrize("name, shown", [("a\\e[31mred", r"'\\x1b'"), ("bell\\a", r"'\\x07'"),
                                         ("csi\\x9b31m", r"'\\x9b'"), ("flip\\u202egnp.exe", r"'\\u202e'"),
                                         ("two\\nlines", r"'\\n'")])
def test_a_run_name_with_a_control_character_is_refused(write_config, tiny_config_text, name, shown):
    """Issue 15 #11: an ESC sequence in a run name reached every terminal listing the run."""
    path = write_config(tiny_config_text.replace("name: tiny", f'name: "{name}"'))
    with pytest.raises(ConfigError, match=_at(path, 1) + r"name: expected a run name of printable characters, "
                                          rf"received one with the control character {shown}"):
        load_config(path)


def test_a_run_name_is_capped_and_the_message_is_short(write_config, tiny_config_text):
    """Issue 15 #15: a 900,000-character name passed validate (and gave a 900,435-character error later)."""
    path = write_config(tiny_config_text.replace("name: tiny", "name: " + "a" * 900_000))
    with pytest.raises(ConfigError, match=_at(path, 1) + r"name: expected a run name of at most 255 bytes \(it "
                                          r"names a folder\), received one of 900,000 bytes") as info:
        load_config(path)
    assert len(str(info.value)) < 400
    assert load_config(write_config(tiny_config_text.replace("name: tiny", "name: " + "é" * 127)))


@pytest.mark.parametrize("name", ["dénse-1.2", "run..1", "...", "my run"])
def test_run_names_without_separators_are_fine(write_config, tiny_config_text, name):
    assert load_config(write_config(tiny_config_text.replace("name: tiny", f"name: '{name}'")))["name"] == name


def test_a_file_name_that_is_no_run_name_needs_a_name(write_config, tiny_config_text):
    path = write_config(tiny_config_text.replace("name: tiny\n", ""), name="...yaml")
    with pytest.raises(ConfigError, match=r"name: the run name defaults to the file name, '\.\.': expected a run "
                                          r"name, .*; set name in the config"):
        load_config(path)


def test_resolved_config_validates_again_as_it_is(write_config, tiny_config_text):
    cfg = load_config(write_config(tiny_config_text))
    assert config_from_text(dump_config(cfg)) == cfg


def test_three_layer_forms_and_keras_aliases_resolve_the_same(write_config):
    text = model_config("""
        - {type: Conv2D, filters: 4, kernel_size: [3, 3]}
        - MaxPooling2D
        - dropout: 0.25
        - Flatten
        - Dense: {units: 10}
    """)
    layers = load_config(write_config(text))["model"]["layers"]
    assert [layer["type"] for layer in layers] == ["conv2d", "maxpool2d", "dropout", "flatten", "dense"]
    assert layers[2]["rate"] == 0.25
    assert layers[1]["pool_size"] == [2, 2]


# --- one mistake each -------------------------------------------------------------------

def test_unknown_key_with_did_you_mean(write_config, tiny_config_text):
    path, problems = problems_of(write_config, tiny_config_text.replace("epochs: 1", "epoch: 1"))
    assert len(problems) == 1
    line = tiny_config_text.splitlines().index("  epochs: 1") + 1
    with pytest.raises(ConfigError, match=_at(path, line) + "trainer.epoch: unknown argument 'epoch' for trainer; "
                                                            "did you mean 'epochs'\\? valid arguments: epochs, "):
        load_config(path)


def test_unknown_section_with_did_you_mean(write_config, tiny_config_text):
    path, problems = problems_of(write_config, tiny_config_text.replace("trainer:", "trainr:"))
    assert [p.message.split(";")[0] for p in problems] == ["unknown argument 'trainr' for config"]
    assert "did you mean 'trainer'?" in problems[0].message


def test_unknown_layer_argument_with_did_you_mean(write_config):
    path, problems = problems_of(write_config, model_config("- conv2d: {filter: 32, kernel_size: 3}"))
    messages = [p.render() for p in problems]
    assert len(problems) == 2
    assert messages[0] == (f"{path}:4: model.layers[0].filter: unknown argument 'filter' for conv2d; did you mean "
                           f"'filters'? valid arguments: filters, kernel_size, strides, padding, dilation_rate, "
                           f"activation, use_bias")
    assert messages[1].startswith(f"{path}:4: model.layers[0]: missing required argument 'filters'")


@pytest.mark.parametrize("optimizer, key, suggested", [
    ("{type: adam, learning_rate: 0.01}", "learning_rate", "lr"),
    ("{type: SGD, learning_rate: 0.01}", "learning_rate", "lr"),
    ("{type: adam, beta_1: 0.8}", "beta_1", "betas"),
    ("{type: rmsprop, epsilon: 1e-6}", "epsilon", "eps"),
])
def test_keras_argument_names_get_a_did_you_mean(write_config, tiny_config_text, optimizer, key, suggested):
    path = write_config(tiny_config_text.replace("optimizer: {type: adam, lr: 1e-3}", f"optimizer: {optimizer}"))
    line = tiny_config_text.splitlines().index("optimizer: {type: adam, lr: 1e-3}") + 1
    with pytest.raises(ConfigError, match=_at(path, line) + re.escape(
            f"optimizer.{key}: unknown argument '{key}' for ") + r"\w+; " + re.escape(
            f"did you mean '{suggested}' (dlcli's argument for {key})? valid arguments: ")):
        load_config(path)


def test_a_layer_input_shape_says_to_set_model_input_shape(write_config):
    text = ("model:\n  layers:\n    - conv2d: {filters: 8, kernel_size: 3, input_shape: [28, 28, 1]}\n"
            "    - flatten\n    - dense: 10\ndata: mnist\n")
    path, problems = problems_of(write_config, text)
    assert [p.render() for p in problems] == [  # only the hint: not also "missing required argument 'input_shape'"
        f"{path}:3: model.layers[0].input_shape: unknown argument 'input_shape' for conv2d: dlcli takes the input shape once, "
        "for the whole model: set model.input_shape instead, e.g. model.input_shape: [1, 28, 28] (channels first); "
        "received: [28, 28, 1]"]


def test_a_layer_input_shape_beside_model_input_shape_is_to_be_removed(write_config):
    path = write_config(model_config("- conv2d: {filters: 8, kernel_size: 3, input_shape: [1, 28, 28]}\n- flatten\n"
                                     "- dense: 10"))
    with pytest.raises(ConfigError, match=_at(path, 4) + re.escape(
            "model.layers[0].input_shape: unknown argument 'input_shape' for conv2d: dlcli takes the input shape once, "
            "for the whole model, from model.input_shape (which this config sets): remove it here; received: "
            "[1, 28, 28]")):
        load_config(path)


@pytest.mark.parametrize("written, suggested", [("conv2", "conv2d"), ("Desne", "dense"), ("lstn", "lstm"),
                                                ("maxpooling2d", "maxpool2d")])
def test_misspelled_layer_type_with_did_you_mean(write_config, written, suggested):
    text = model_config(f"- {written}: {{units: 10}}\n- dense: {{units: 10}}")
    path = write_config(text)
    with pytest.raises(ConfigError, match=_at(path, 4) + rf"model.layers\[0\].type: unknown layer '{written}'; "
                                                         rf"did you mean '{suggested}'\? valid layers: conv1d, "):
        load_config(path)


def test_wrong_type(write_config):
    path = write_config(model_config("- flatten\n- dense: {units: ten}"))
    with pytest.raises(ConfigError, match=_at(path, 5) + r"model.layers\[1\].units: expected an integer > 0; "
                                                         r"received: 'ten'"):
        load_config(path)


def test_wrong_type_for_a_section_value(write_config, tiny_config_text):
    path = write_config(tiny_config_text.replace("batch_size: 32", "batch_size: big"))
    with pytest.raises(ConfigError, match=r"data.batch_size: expected an integer between 1 and 1048576; "
                                          r"received: 'big'"):
        load_config(path)


def test_out_of_range_number(write_config):
    path = write_config(model_config("- flatten\n- dropout: 1.5\n- dense: {units: 10}"))
    with pytest.raises(ConfigError, match=_at(path, 5) + r"model.layers\[1\].rate: expected a number "
                                                         r"\(>= 0, < 1\); received: 1.5"):
        load_config(path)


def test_missing_required_argument(write_config):
    path = write_config(model_config("- conv2d: {kernel_size: 3}\n- flatten\n- dense: {units: 10}"))
    with pytest.raises(ConfigError, match=_at(path, 4) + r"model.layers\[0\]: missing required argument 'filters' "
                                                         r"\(int \(>= 1\)\) for conv2d"):
        load_config(path)


def test_missing_required_section(write_config):
    path = write_config("model:\n  input_shape: [1, 28, 28]\n  layers: [flatten, dense: {units: 10}]\n")
    with pytest.raises(ConfigError, match=_at(path, 1) + "<top level>: missing required argument 'data'"):
        load_config(path)


def test_kernel_larger_than_its_input_names_the_layer_and_shapes(write_config):
    path = write_config(model_config("- conv2d: {filters: 8, kernel_size: 5}\n- flatten\n- dense: {units: 10}",
                                     input_shape="[1, 4, 4]"))
    with pytest.raises(ConfigError, match=_at(path, 4) + re.escape("model.layers[0]: conv2d: conv2d kernel (5, 5) "
                                                                   "(dilation 1) is larger than its input (1, 4, 4)")):
        load_config(path)


CHANNELS_LAST = ("model.input_shape: [28, 28, 1] looks channels-last (height, width, channels), as Keras stores "
                 "images, but dlcli is channels-first like PyTorch: {reader} reads it as 28 channels of 28 x 1; set "
                 "model.input_shape to [1, 28, 28] (as it is, model.layers[{index}]: ")


@pytest.mark.parametrize("layers, reader, index", [
    ("- Conv2D: {filters: 32, kernel_size: 3}", "conv2d", 0),
    ("- conv2d: {filters: 32, kernel_size: 3, padding: same}\n- maxpool2d", "conv2d", 1),
    ("- batchnorm\n- conv2d: {filters: 32, kernel_size: 3}", "batchnorm", 1),
    ("- dropout: 0.1\n- maxpool2d", "maxpool2d", 1),
])
def test_a_channels_last_input_shape_is_blamed_with_the_channels_first_fix(write_config, layers, reader, index):
    path = write_config(model_config(f"{layers}\n- flatten\n- dense: 10", input_shape="[28, 28, 1]",
                                     rest="data: {dataset: npz, path: x.npz}\n"))
    with pytest.raises(ConfigError, match=_at(path, 2) + re.escape(CHANNELS_LAST.format(reader=reader, index=index))):
        load_config(path)


def test_a_channels_last_reshape_target_gets_the_hint_at_the_reshape(write_config):
    """Keras's Reshape((28, 28, 1)) before a Conv2D: the fix is the reshape's target_shape."""
    path = write_config(model_config("- reshape: {target_shape: [28, 28, 1]}\n- conv2d: {filters: 8, kernel_size: 3}",
                                     input_shape="[784]", rest="data: {dataset: npz, path: x.npz}\n"))
    with pytest.raises(ConfigError, match=_at(path, 4) + re.escape(
            "model.layers[0].target_shape: [28, 28, 1] looks channels-last (height, width, channels), as Keras "
            "stores images, but dlcli is channels-first like PyTorch: conv2d reads it as 28 channels of 28 x 1; set "
            "model.layers[0].target_shape to [1, 28, 28] (as it is, model.layers[1]: conv2d: conv2d kernel (3, 3)")):
        load_config(path)


def test_no_channels_last_hint_once_a_layer_has_changed_the_shape(write_config):
    path = write_config(model_config("- flatten\n- conv2d: {filters: 8, kernel_size: 3}", input_shape="[28, 28, 1]",
                                     rest="data: {dataset: npz, path: x.npz}\n"))
    with pytest.raises(ConfigError, match=_at(path, 5) + re.escape("model.layers[1]: conv2d: conv2d expects")):
        load_config(path)


def test_pool_window_larger_than_its_input(write_config):
    path = write_config(model_config("- maxpool2d: {pool_size: 3}\n- flatten\n- dense: {units: 10}",
                                     input_shape="[1, 2, 2]"))
    with pytest.raises(ConfigError, match=re.escape("maxpool2d window (3, 3) is larger than its input (1, 2, 2)")):
        load_config(path)


def test_conv2d_after_a_flatten(write_config):
    path = write_config(model_config("- flatten\n- conv2d: {filters: 8, kernel_size: 3}\n- dense: {units: 10}"))
    with pytest.raises(ConfigError, match=_at(path, 5) + re.escape(
            "model.layers[1]: conv2d: conv2d expects an input of shape (channels, height, width), received (784,); "
            "a conv after a flatten or dense?")):
        load_config(path)


def test_rnn_fed_an_image_without_reshape(write_config):
    path = write_config(model_config("- lstm: {units: 16}\n- dense: {units: 10}"))
    with pytest.raises(ConfigError, match=_at(path, 4) + re.escape(
            "model.layers[0]: lstm: lstm expects a sequence (steps, features), received (1, 28, 28); an image needs "
            "model.input_shape [height, width] (each row one step) or a `reshape: {target_shape: [steps, features]}`")):
        load_config(path)


def test_rnn_after_a_reshape_is_fine(write_config):
    text = model_config("- reshape: {target_shape: [28, 28]}\n- gru: {units: 16}\n- dense: {units: 10}")
    assert load_config(write_config(text))["model"]["layers"][1]["type"] == "gru"


def test_dense_on_an_image_suggests_a_flatten(write_config):
    path = write_config(model_config("- dense: {units: 10}"))
    with pytest.raises(ConfigError, match=r"dense expects a flat input .* received \(1, 28, 28\); add a flatten"):
        load_config(path)


@pytest.mark.parametrize("layer, line, message", [
    ("- dense: {units: 0}", 5, r"model.layers\[1\].units: expected an integer > 0; received: 0"),
    ("- dense: {units: -3}", 5, r"model.layers\[1\].units: expected an integer > 0; received: -3"),
    ("- reshape: {target_shape: [0, 784]}", 5, r"model.layers\[1\].target_shape: expected a list of 1 to 8 "
                                               r"integers >= 1; received: \[0, 784\]"),
])
def test_zero_or_negative_layer_size(write_config, layer, line, message):
    path = write_config(model_config(f"- flatten\n{layer}\n- dense: {{units: 10}}"))
    with pytest.raises(ConfigError, match=_at(path, line) + message):
        load_config(path)


def test_permute_dims_are_checked_as_an_argument_and_against_the_input_rank(write_config):
    path, problems = problems_of(write_config, model_config(
        "- permute: [2, 2]\n- flatten\n- dense: {units: 10}", input_shape="[28, 28]"))
    assert [p.render() for p in problems] == [
        f"{path}:4: model.layers[0].dims: expected a permutation of the sample axes 1..n (numbered from 1, as in "
        f"Keras), e.g. [2, 1]; received: [2, 2]"]
    path, problems = problems_of(write_config, model_config("- permute: [2, 1]\n- flatten\n- dense: {units: 10}"))
    assert [p.render() for p in problems] == [
        f"{path}:4: model.layers[0]: permute: permute dims [2, 1] orders 2 axes but its input (1, 28, 28) has 3; "
        f"expected a permutation of 1..3 (the batch axis is not numbered)"]


@pytest.mark.parametrize("shape", ["[0, 28, 28]", "[1, -28, 28]", "[]"])
def test_zero_or_negative_input_shape(write_config, shape):
    path = write_config(model_config("- flatten\n- dense: {units: 10}", input_shape=shape))
    with pytest.raises(ConfigError, match=_at(path, 2) + r"model.input_shape: expected a list of 1 to 4 integers "
                                                         r">= 1; received: "):
        load_config(path)


def test_zero_kernel_size(write_config):
    path = write_config(model_config("- conv2d: {filters: 4, kernel_size: 0}\n- flatten\n- dense: {units: 10}"))
    with pytest.raises(ConfigError, match=r"model.layers\[0\].kernel_size: expected an integer >= 1 or a list "
                                          r"of 2 such integers; received: 0"):
        load_config(path)


def test_list_where_a_mapping_belongs(write_config, tiny_config_text):
    path = write_config(tiny_config_text.replace("trainer:\n  epochs: 1\n  device: cpu\n", "trainer: [1, cpu]\n"))
    line = tiny_config_text.splitlines().index("trainer:") + 1
    with pytest.raises(ConfigError, match=_at(path, line) + re.escape("trainer: expected a mapping (epochs, device, "
                                                                      "...), received list: [1, 'cpu']")):
        load_config(path)


def test_a_list_as_the_whole_config(write_config):
    path = write_config("- model\n- data\n")
    with pytest.raises(ConfigError, match=_at(path, 1) + r"<top level>: expected a mapping \(sections model, data"):
        load_config(path)


def test_a_layer_that_is_a_list(write_config):
    path = write_config(model_config("- [conv2d, 32]\n- flatten\n- dense: {units: 10}"))
    with pytest.raises(ConfigError, match=_at(path, 4) + r"model.layers\[0\]: a layer is `- name` "):
        load_config(path)


def test_empty_layer_list(write_config):
    path = write_config("model:\n  input_shape: [1, 28, 28]\n  layers: []\ndata: mnist\n")
    with pytest.raises(ConfigError, match=_at(path, 3) + "model.layers: expected a non-empty list of layers"):
        load_config(path)


def test_unknown_dataset_optimizer_and_loss(write_config):
    path, problems = problems_of(write_config, model_config("- flatten\n- dense: {units: 10}",
                                                            rest="data: mnits\noptimizer: adamm\nloss: crossentropy\n"))
    assert [p.message.split(";")[0] for p in problems] == [
        "unknown dataset 'mnits'", "unknown optimizer 'adamm'", "unknown loss 'crossentropy'"]
    assert [p.where for p in problems] == [f"{path}:6", f"{path}:7", f"{path}:8"]
    assert "did you mean 'cross_entropy'? valid losses: cross_entropy," in problems[2].message


def test_a_model_without_input_shape_anywhere_is_told_it_is_missing(write_config):
    path, problems = problems_of(write_config, "model:\n  layers:\n    - flatten\n    - dense: 10\ndata: mnist\n")
    assert [p.render() for p in problems] == [
        f"{path}:1: model: missing required argument 'input_shape' ([int, ...]) for model"]


@pytest.mark.parametrize("loss", ["binary_crossentropy", "bce_with_logits"])
def test_a_binary_loss_on_a_dataset_of_classes_names_cross_entropy(write_config, tiny_config_text, loss):
    """Issue 13: binary_crossentropy on a 10-class model was refused only once training read the data."""
    path = write_config(tiny_config_text.replace("loss: cross_entropy", f"loss: {loss}")
                        .replace("metrics: [accuracy]", "metrics: [binary_accuracy]"))
    line = tiny_config_text.splitlines().index("loss: cross_entropy") + 1
    with pytest.raises(ConfigError, match=_at(path, line) + re.escape(
            "loss.type: bce_with_logits (binary_crossentropy) takes 0/1 labels, one output per label, but mnist's "
            "targets are class ids of 10 classes; use loss: cross_entropy, with a last layer of 10 units")):
        load_config(path)


def test_metric_that_does_not_fit_the_loss(write_config, tiny_config_text):
    path = write_config(tiny_config_text.replace("metrics: [accuracy]", "metrics: [accuracy, mae]"))
    with pytest.raises(ConfigError, match=r"metrics\[1\]: mae is a regression metric but the loss cross_entropy "
                                          r"is for classification"):
        load_config(path)


def test_unknown_metric_with_did_you_mean(write_config, tiny_config_text):
    path = write_config(tiny_config_text.replace("metrics: [accuracy]", "metrics: [acuracy]"))
    with pytest.raises(ConfigError, match=r"metrics\[0\]: unknown metric 'acuracy'; did you mean 'accuracy'\?"):
        load_config(path)


def test_output_units_must_match_the_dataset_classes(write_config, tiny_config_text):
    path = write_config(tiny_config_text.replace("units: 10", "units: 5"))
    with pytest.raises(ConfigError, match=r"model.layers\[3\]: mnist has 10 classes but the model outputs 5 values; "
                                          r"set the last layer's units to 10"):
        load_config(path)


def test_input_shape_must_fit_the_dataset(write_config, tiny_config_text):
    path = write_config(tiny_config_text.replace("input_shape: [1, 28, 28]", "input_shape: [3, 28, 28]"))
    with pytest.raises(ConfigError, match=re.escape("model.input_shape: mnist samples have shape (1, 28, 28); "
                                                    "model.input_shape must be [1, 28, 28]")):
        load_config(path)


@pytest.mark.parametrize("last, ends_in", [("- dense: {units: 10}", "no activation"),
                                            ("- dense: {units: 10, activation: softmax}", "softmax"),
                                            ("- dense: {units: 10}\n- activation: softmax", "softmax")])
def test_nll_needs_a_model_that_ends_in_log_softmax(write_config, last, ends_in):
    path = write_config(model_config(f"- flatten\n{last}", rest="data: mnist\nloss: nll\n"))
    line = 4 + len(last.splitlines())
    index = len(last.splitlines())
    with pytest.raises(ConfigError, match=_at(path, line) + re.escape(
            f"model.layers[{index}]: nll needs a model that ends in log_softmax, but this one ends in {ends_in}, so "
            f"the loss would train on the wrong values; use loss: cross_entropy (which takes logits), or end the "
            f"model in log_softmax")):
        load_config(path)


@pytest.mark.parametrize("last", ["- dense: {units: 10, activation: log_softmax}",
                                  "- dense: {units: 10}\n- activation: log_softmax"])
def test_nll_after_log_softmax_is_valid(write_config, last):
    cfg = load_config(write_config(model_config(f"- flatten\n{last}", rest="data: mnist\nloss: NLLLoss\n")))
    assert cfg["loss"]["type"] == "nll"


def test_input_shape_hint_offers_rows_as_steps_only_for_one_channel_images(write_config):
    path = write_config(model_config("- lstm: 8\n- dense: 10", input_shape="[28, 27]"))
    with pytest.raises(ConfigError, match=re.escape("model.input_shape: mnist samples have shape (1, 28, 28); "
                                                    "model.input_shape must be [1, 28, 28] (or [28, 28] to read "
                                                    "each row as a time step)")):
        load_config(path)
    path = write_config(model_config("- lstm: 8\n- dense: 10", input_shape="[32, 32]", rest="data: cifar10\n"))
    with pytest.raises(ConfigError, match=re.escape("model.input_shape: cifar10 samples have shape (3, 32, 32); "
                                                    "model.input_shape must be [3, 32, 32]") + "$"):
        load_config(path)


def test_monitor_needs_validation_data(write_config, tiny_config_text):
    path = write_config(tiny_config_text + "  monitor: val_accuracy\n")
    with pytest.raises(ConfigError, match="trainer.monitor: val_accuracy needs validation data: set data.val_split"):
        load_config(path)


def test_plateau_scheduler_monitor_needs_validation_data(write_config, tiny_config_text):
    path = write_config(tiny_config_text + "scheduler:\n  type: reduce_on_plateau\n  monitor: val_loss\n")
    line = len(tiny_config_text.splitlines()) + 3
    with pytest.raises(ConfigError, match=_at(path, line) + "scheduler.monitor: val_loss needs validation data: "
                                                            "set data.val_split"):
        load_config(path)
    cfg = load_config(path, ["data.val_split=0.1"])
    assert cfg["scheduler"]["monitor"] == "val_loss"


def test_plateau_scheduler_monitor_typo_with_did_you_mean(write_config, tiny_config_text):
    path = write_config(tiny_config_text + "scheduler: {type: reduce_on_plateau, monitor: train_los}\n")
    with pytest.raises(ConfigError, match=r"scheduler.monitor: unknown metric 'train_los'; did you mean "
                                          r"'train_loss'\? expected one of: train_loss, train_accuracy, "):
        load_config(path)


@pytest.mark.parametrize("optimizer, expected", [
    ("{type: sgd, nesterov: true}", "optimizer.nesterov: Nesterov momentum needs momentum > 0 (e.g. momentum: 0.9); "
                                    "received: momentum 0"),
    ("{type: sgd, nesterov: true, momentum: 0.9, dampening: 0.1}",
     "optimizer.dampening: Nesterov momentum needs dampening 0; received: 0.1"),
])
def test_sgd_nesterov_needs_momentum_and_no_dampening(write_config, tiny_config_text, optimizer, expected):
    path = write_config(tiny_config_text.replace("optimizer: {type: adam, lr: 1e-3}", f"optimizer: {optimizer}"))
    row = tiny_config_text.splitlines().index("optimizer: {type: adam, lr: 1e-3}") + 1
    with pytest.raises(ConfigError, match=_at(path, row) + re.escape(expected)):
        load_config(path)


# --- several mistakes at once ----------------------------------------------------------------

def test_three_mistakes_give_exactly_three_problems(write_config):
    text = model_config("""
        - conv2d: {kernel_size: 3}
        - flatten
        - dropout: {rate: 1.5}
        - dense: {units: 10}
    """, rest="data: mnist\ntrainer:\n  epoch: 3\n")
    path, problems = problems_of(write_config, text)
    assert len(problems) == 3
    assert [p.where for p in problems] == [f"{path}:4", f"{path}:6", f"{path}:10"]
    assert [p.message.count("did you mean") for p in problems] == [0, 0, 1]
    with pytest.raises(ConfigError) as info:
        load_config(path)
    rendered = str(info.value)
    assert rendered.startswith(f"{path}: 3 problems\n")
    assert rendered.count("did you mean") == 1


# --- huge input: what a message echoes is cut --------------------------------------------------

HUGE = 100_000
SHORT_MESSAGE = 2_000  # characters; a value echoed in full made one of 900 KB


CUT_KEY = r"k{57}\.\.\. \(100,000 characters\)"  # a key in a key path
CUT_NAME = r"'k{55}\.\.\.' \(100,000 characters\)"  # a value, as repr() quotes it
UNKNOWN_KEY = r"unknown argument 'k{57}\.\.\.' \(100,000 characters\) for"


@pytest.mark.parametrize("old, new, expected", [
    ("device: cpu", f"device: {'a' * HUGE}",
     r"trainer\.device: expected auto, cpu, cuda, cuda:N or mps; received: 'a{55}\.\.\.' \(100,000 characters\)$"),
    ("  epochs: 1", f"  epochs: 1\n  ? {'k' * HUGE}\n  : 1",  # `? key` has no length limit in YAML
     rf"trainer\.{CUT_KEY}: {UNKNOWN_KEY} trainer; valid arguments: epochs, "),
    ("- flatten", f"- type: flatten\n      ? {'k' * HUGE}\n      : 1",
     rf"model\.layers\[2\]\.{CUT_KEY}: {UNKNOWN_KEY} flatten; valid arguments: none$"),
    ("loss: cross_entropy", f"loss: {'k' * HUGE}",
     rf"loss\.type: unknown loss {CUT_NAME}; valid losses: cross_entropy, "),
    ("  epochs: 1", f"  epochs: 1\n  monitor: {'k' * HUGE}",
     rf"trainer\.monitor: unknown metric {CUT_NAME}; expected one of: train_loss, "),
], ids=["string value", "key", "layer argument", "name", "monitor"])
def test_a_huge_value_or_key_is_cut_in_the_message(write_config, tiny_config_text, old, new, expected):
    path = write_config(tiny_config_text.replace(old, new))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert len(message) < SHORT_MESSAGE, message[:SHORT_MESSAGE]
    assert re.fullmatch(rf"{re.escape(str(path))}: 1 problem\n  - {re.escape(str(path))}:\d+: {expected}.*", message), \
        message


def test_a_list_of_100_000_items_is_cut_in_the_message(tiny_config_text):
    from dlcli.config import resolve_config
    from dlcli.config._load import parse_yaml

    data, lines = parse_yaml(tiny_config_text, "tiny.yaml")  # a file that long is refused before validation
    data["model"]["input_shape"] = [1] * HUGE
    with pytest.raises(ConfigError) as info:
        resolve_config(data, lines, "tiny.yaml")
    assert str(info.value) == ("tiny.yaml: 1 problem\n  - tiny.yaml:3: model.input_shape: expected a list of 1 to 4 "
                               "integers >= 1; received: [" + "1, " * 18 + "1...] (100,000 items, 300,000 characters)")


def test_thousands_of_problems_show_the_first_and_count_the_rest(write_config, tiny_config_text):
    path = write_config(tiny_config_text.replace("metrics: [accuracy]", f"metrics: [{', '.join(['acuracy'] * 5_000)}]"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert len(info.value.problems) == 5_000
    lines = str(info.value).splitlines()
    assert lines[0] == f"{path}: 5000 problems" and lines[-1] == "  ... and 4,980 more problems"
    assert len(lines) == 22 and all("metrics[" in line for line in lines[1:-1])


# --- sequence layout: (steps, features) sequences against channels-first 1-D layers ------------

def test_keras_lstm_then_global_average_pooling_is_refused_with_what_it_would_do(write_config):
    """Keras's LSTM(16, return_sequences=True) -> GlobalAveragePooling1D gives (16,), the mean over
    the steps; dlcli's channels-first global_avgpool1d would give (28,), the mean over the features."""
    layers = "- lstm: {units: 16, return_sequences: true}\n- GlobalAveragePooling1D\n- dense: 10"
    path, problems = problems_of(write_config, model_config(layers, input_shape="[28, 28]"))
    assert [p.render() for p in problems] == [
        f"{path}:5: model.layers[1]: global_avgpool1d: its input (28, 16) is a sequence (steps, features), from the "
        f"lstm at model.layers[0] (return_sequences), but global_avgpool1d is channels-first, (channels, length), "
        f"as in PyTorch: it would average over the 16 features of each of the 28 steps, giving (28,), where "
        f"Keras's GlobalAveragePooling1D works over the steps, giving (16,). HINT: put `- permute: [2, 1]` before "
        f"it, to give it (16, 28): (features, steps)"]
    fixed = load_config(write_config(model_config(layers.replace("- Global", "- permute: [2, 1]\n- Global"),
                                                  input_shape="[28, 28]")))
    assert [layer["type"] for layer in fixed["model"]["layers"]] == ["lstm", "permute", "global_avgpool1d", "dense"]


def test_embedding_then_conv1d_is_refused_with_a_permute_before_it_and_one_back_for_the_rnn(write_config):
    layers = ("- embedding: {input_dim: 100, output_dim: 16}\n- dropout: 0.1\n"
              "- conv1d: {filters: 8, kernel_size: 3, activation: relu}\n- maxpool1d: 2\n- lstm: {units: 8}\n"
              "- dense: 3")
    rest = "data: {dataset: npz, path: unused.npz}\n"
    path, problems = problems_of(write_config, model_config(layers, input_shape="[40]", rest=rest))
    assert [p.render() for p in problems] == [
        f"{path}:6: model.layers[2]: conv1d: its input (40, 16) is a sequence (steps, features), from the embedding "
        f"at model.layers[0], but conv1d is channels-first, (channels, length), as in PyTorch: it would convolve "
        f"along the 16 features, with the 40 steps as input channels, where Keras's Conv1D convolves along the "
        f"steps, with the features as channels. HINT: put `- permute: [2, 1]` before it, to give it (16, 40): "
        f"(features, steps), and another `- permute: [2, 1]` after the maxpool1d at model.layers[3] to give the "
        f"lstm at model.layers[4] (steps, features) again"]
    fixed = layers.replace("- conv1d", "- permute: [2, 1]\n- conv1d").replace("- lstm", "- permute: [2, 1]\n- lstm")
    cfg = load_config(write_config(model_config(fixed, input_shape="[40]", rest=rest)))
    assert [layer["type"] for layer in cfg["model"]["layers"]] == [
        "embedding", "dropout", "permute", "conv1d", "maxpool1d", "permute", "lstm", "dense"]


@pytest.mark.parametrize("between", ["- dropout: 0.2", "- activation: tanh", "- layernorm", "- dense: 12"])
def test_batchnorm_after_a_sequence_is_refused_through_layers_that_keep_the_layout(write_config, between):
    layers = f"- gru: {{units: 16, return_sequences: true}}\n{between}\n- batchnorm\n- flatten\n- dense: 10"
    path, problems = problems_of(write_config, model_config(layers, input_shape="[28, 28]"))
    features = 12 if "dense" in between else 16
    assert [p.render() for p in problems] == [
        f"{path}:6: model.layers[2]: batchnorm: its input (28, {features}) is a sequence (steps, features), from the "
        f"gru at model.layers[0] (return_sequences), but batchnorm is channels-first, (channels, length), as in "
        f"PyTorch: it would normalize each of the 28 steps separately, with statistics over the batch and the "
        f"{features} features, where Keras's BatchNormalization normalizes each of the {features} features over "
        f"the batch and the steps. HINT: put `- permute: [2, 1]` before it, to give it ({features}, 28): "
        f"(features, steps)"]


@pytest.mark.parametrize("input_shape, layers", [
    ("[2, 30]", "- conv1d: {filters: 4, kernel_size: 3}\n- maxpool1d: 2\n- batchnorm\n- global_avgpool1d"),
    ("[28, 28]", "- conv1d: {filters: 4, kernel_size: 3}\n- flatten"),  # rows as channels: not a known sequence
    ("[28, 28]", "- lstm: {units: 16}\n- batchnorm"),  # the final state (16,) is no sequence
    ("[28, 28]", "- lstm: {units: 16, return_sequences: true}\n- flatten\n- batchnorm"),
    ("[28, 28]", "- lstm: {units: 16, return_sequences: true}\n- reshape: [16, 28]\n- global_maxpool1d"),
    ("[28, 28]", "- simple_rnn: {units: 8, return_sequences: true}\n- permute: [2, 1]\n- conv1d: {filters: 4, "
                 "kernel_size: 3}\n- avgpool1d: 2\n- batchnorm\n- permute: [2, 1]\n- gru: {units: 8}"),
])
def test_channels_first_layers_on_what_is_not_a_sequence_validate(write_config, input_shape, layers):
    cfg = load_config(write_config(model_config(f"{layers}\n- flatten\n- dense: 10", input_shape=input_shape,
                                                rest="data: {dataset: npz, path: unused.npz}\n")))
    assert cfg["model"]["layers"][-1]["type"] == "dense"


def test_a_permute_back_to_steps_and_features_is_a_sequence_again(write_config):
    """embedding -> permute -> conv1d -> permute gives (steps, filters): a global pool there is refused again."""
    layers = ("- embedding: {input_dim: 100, output_dim: 16}\n- permute: [2, 1]\n- conv1d: {filters: 8, "
              "kernel_size: 3}\n- permute: [2, 1]\n- global_maxpool1d\n- dense: 3")
    _, problems = problems_of(write_config, model_config(layers, input_shape="[40]",
                                                         rest="data: {dataset: npz, path: unused.npz}\n"))
    assert len(problems) == 1 and problems[0].path == ("model", "layers", 4)
    assert problems[0].message.startswith("global_maxpool1d: its input (38, 8) is a sequence (steps, features), "
                                          "from the embedding at model.layers[0], but global_maxpool1d is ")
    assert "it would take the maximum over the 8 features of each of the 38 steps, giving (38,)" in problems[0].message


CSV_WINDOW = "data: {dataset: csv, path: unused.csv, target: v, window: 20}\nloss: mse\n"


def test_a_conv1d_on_csv_windows_is_refused(write_config):
    """data.window makes (steps, features) samples: the audit's Conv1D(8, 2) on 20 steps of 2 features."""
    layers = "- Conv1D: {filters: 8, kernel_size: 2}\n- flatten\n- dense: 1"
    path, problems = problems_of(write_config, model_config(layers, input_shape="[20, 2]", rest=CSV_WINDOW))
    assert [p.render() for p in problems] == [
        f"{path}:4: model.layers[0]: conv1d: its input (20, 2) is a sequence (steps, features), from the csv data "
        f"(data.window: 20), but conv1d is channels-first, (channels, length), as in PyTorch: it would convolve "
        f"along the 2 features, with the 20 steps as input channels, where Keras's Conv1D convolves along the steps, "
        f"with the features as channels. HINT: put `- permute: [2, 1]` before it, to give it (2, 20): "
        f"(features, steps)"]
    cfg = load_config(write_config(model_config("- permute: [2, 1]\n" + layers, input_shape="[20, 2]",
                                                rest=CSV_WINDOW)))
    assert [layer["type"] for layer in cfg["model"]["layers"]] == ["permute", "conv1d", "flatten", "dense"]
    without_window = CSV_WINDOW.replace(", window: 20", "")  # rows are no sequence: [20, 2] is whatever it says
    assert load_config(write_config(model_config(layers, input_shape="[20, 2]", rest=without_window)))


@pytest.mark.parametrize("rest", ["data: mnist\n", "data: {dataset: image_folder, path: unused}\n"])
def test_a_conv1d_on_images_read_row_by_row_is_refused(write_config, rest):
    """input_shape [H, W] reads an image's rows as steps (an LSTM's sequence): Keras's Conv1D
    convolves along them; a channels-first conv1d would take the rows as channels."""
    layers = "- conv1d: {filters: 8, kernel_size: 3}\n- global_avgpool1d\n- dense: 10"
    path, problems = problems_of(write_config, model_config(layers, input_shape="[28, 28]", rest=rest))
    dataset = "mnist" if "mnist" in rest else "image_folder"
    assert [p.render() for p in problems] == [
        f"{path}:4: model.layers[0]: conv1d: its input (28, 28) is a sequence (steps, features), from the {dataset} "
        f"images read row by row (model.input_shape: [28, 28]), but conv1d is channels-first, (channels, length), "
        f"as in PyTorch: it would convolve along the 28 features, with the 28 steps as input channels, where Keras's "
        f"Conv1D convolves along the steps, with the features as channels. HINT: put `- permute: [2, 1]` before it, "
        f"to give it (28, 28): (features, steps)"]
    assert load_config(write_config(model_config("- permute: [2, 1]\n" + layers, input_shape="[28, 28]", rest=rest)))
    assert load_config(write_config(model_config("- lstm: 16\n- dense: 10", input_shape="[28, 28]", rest=rest)))


@pytest.mark.parametrize("layers, rest, refused", [
    ("- lstm: {units: 16, return_sequences: true}\n- global_avgpool1d\n- dense: 10", "data: mnist\n",
     "global_avgpool1d is channels-first"),
    ("- lstm: {units: 16, dropout: 0.2}\n- dense: 10", "data: mnist\n", r"dropout: acts only between stacked layers"),
    ("- lstm: 16\n- dense: 10", "data: mnist\nloss: nll\n", "nll needs a model that ends in log_softmax"),
], ids=["sequence layout", "rnn dropout", "nll on logits"])
def test_a_checkpoint_s_config_from_before_a_guard_still_resolves(layers, rest, refused):
    """A model trained before a guard against a likely mistake existed keeps working: its
    weights are what they are."""
    import yaml

    from dlcli.checkpoint import checkpoint_config
    from dlcli.config import resolve_config

    text = model_config(layers, input_shape="[28, 28]", rest=rest)
    with pytest.raises(ConfigError, match=refused):
        resolve_config(yaml.safe_load(text), {}, "old.yaml")
    cfg = resolve_config(yaml.safe_load(text), {}, "old.yaml", guards=False)
    assert checkpoint_config({"config": cfg}) == cfg


def test_recurrent_dropout_with_one_layer_is_refused_with_keras_s_equivalent(write_config):
    """torch's dropout acts between stacked layers: Keras's LSTM(dropout=0.2) would lose it silently."""
    path, problems = problems_of(write_config, model_config("- lstm: {units: 16, dropout: 0.2}\n- dense: 10",
                                                            input_shape="[28, 28]"))
    assert [p.render() for p in problems] == [
        f"{path}:4: model.layers[0].dropout: acts only between stacked layers (num_layers > 1), as torch's does, so "
        f"with one layer it would do nothing; received: dropout 0.2 with num_layers 1. HINT: for Keras's dropout on "
        f"the inputs put `- dropout: 0.2` before this layer"]
    assert load_config(write_config(model_config("- lstm: {units: 16, dropout: 0.2, num_layers: 2}\n- dense: 10",
                                                 input_shape="[28, 28]")))


def test_data_paths_are_made_absolute_from_the_current_directory(tmp_path, monkeypatch):
    """So the run's config.yaml and checkpoints name the data wherever evaluate or --resume run."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cfg = config_from_text("model: {input_shape: [2], layers: [{dense: 2}]}\n"
                           "data: {dataset: npz, path: data/train.npz, test_path: ~/test.npz}\n")
    assert cfg["data"]["path"] == str(tmp_path / "data" / "train.npz")
    assert cfg["data"]["test_path"] == str(tmp_path / "home" / "test.npz")
    assert config_from_text(dump_config(cfg))["data"] == cfg["data"]  # resolving again changes nothing
    with pytest.raises(ConfigError, match=r"data.path: expected a path, received an empty string"):
        config_from_text("model: {input_shape: [2], layers: [{dense: 2}]}\ndata: {dataset: npz, path: ''}\n")


def test_a_keras_layer_name_is_answered_with_how_dlcli_names_layers(write_config):
    path = write_config("model:\n  input_shape: [4]\n  layers:\n    - Dense: {units: 2, name: fc1}\ndata: mnist\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert [p.render() for p in info.value.problems] == [
        f"{path}:4: model.layers[0].name: unknown argument 'name' for dense: dlcli names the layers itself, as "
        f"Keras does by default (dense, dense_1, ...: the module and weight names); remove it; received: 'fc1'"]


@pytest.mark.parametrize("layers, rest, message", [
    ("- Bidirectional: {layer: {LSTM: {units: 64}}}\n- dense: 10", "data: mnist\n",
     r"model.layers\[0\].type: unknown layer 'Bidirectional': give the recurrent layer bidirectional: true instead, "
     r"e.g. `- lstm: \{units: 64, bidirectional: true\}` for Keras's Bidirectional\(LSTM\(64\)\)"),
    ("- embedding: {input_dim: 50, output_dim: 4, input_length: 80}\n- gru: 4\n- dense: 2",
     "data: {dataset: npz, path: x.npz}\n",
     r"model.layers\[0\].input_length: unknown argument 'input_length' for embedding: the sequence length is "
     r"model.input_shape \(e.g. \[80\]\)"),
    ("- lstm: 8\n- dense: 1", "data: {dataset: npz, path: x.npz}\nloss: binary_crossentropy\nmetrics: [accuracy]\n",
     r"metrics\[0\]: accuracy is a classification metric but the loss bce_with_logits is for binary; "
     r"use binary_accuracy"),
], ids=["Bidirectional", "input_length", "binary accuracy"])
def test_keras_spellings_point_at_the_dlcli_equivalent(write_config, layers, rest, message):
    input_shape = "[80]" if "embedding" in layers else "[28, 28]"
    path, problems = problems_of(write_config, model_config(layers, input_shape=input_shape, rest=rest))
    assert len(problems) == 1 and re.search(message, problems[0].render()), problems[0].render()


def test_a_section_s_key_at_the_top_says_where_it_belongs(write_config, tiny_config_text):
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tiny_config_text), ["epochs=3", "batch_size=8", "learning_rate=0.1"])
    assert [p.message for p in info.value.problems] == [
        "unknown argument 'epochs' for config: it belongs under trainer, as trainer.epochs (override: "
        "trainer.epochs=...)",
        "unknown argument 'batch_size' for config: it belongs under data, as data.batch_size (override: "
        "data.batch_size=...)",
        "unknown argument 'learning_rate' for config: it belongs under optimizer, as optimizer.lr (override: "
        "optimizer.lr=...)"]


def test_an_argument_every_optimizer_takes_at_the_top_belongs_under_optimizer(write_config, tiny_config_text):
    """Read from the optimizers' declarations (with their known_as names), not from a list kept here."""
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tiny_config_text), ["weight_decay=0.1", "lr=0.1"])
    assert [p.message for p in info.value.problems] == [
        f"unknown argument '{key}' for config: it belongs under optimizer, as optimizer.{key} (override: "
        f"optimizer.{key}=...)" for key in ("weight_decay", "lr")]


def test_class_weights_need_one_weight_per_class(write_config, tiny_config_text):
    text = tiny_config_text.replace("loss: cross_entropy", "loss: {type: cross_entropy, class_weights: [1, 2, 3]}")
    with pytest.raises(ConfigError, match=r"loss.class_weights: expected one weight per class, 10 for a model with "
                                          r"10 outputs; received 3"):
        load_config(write_config(text))
    assert load_config(write_config(tiny_config_text.replace(
        "loss: cross_entropy", "loss: {type: cross_entropy, class_weights: [1, 1, 1, 1, 1, 5, 1, 1, 1, 1]}")))


def test_an_empty_out_dir_is_refused_not_read_as_the_current_directory(write_config, tiny_config_text):
    with pytest.raises(ConfigError, match=r"trainer\.out_dir: expected a non-empty string \(the current directory "
                                          r"is '\.'\); received: ''"):
        load_config(write_config(tiny_config_text), ["trainer.out_dir="])
    assert load_config(write_config(tiny_config_text), ["trainer.out_dir=."])["trainer"]["out_dir"] == "."


def test_a_file_name_that_is_not_utf8_is_no_run_name(tmp_path, tiny_config_text):
    """The run name defaults to the file's; one holding bytes that are not UTF-8 was dumped into the
    run's config.yaml as a lone surrogate, which the loader then refused: `dlcli runs` called the
    run damaged and `dlcli validate RUN/config.yaml` failed. Refused at the start instead."""
    path = tmp_path / os.fsdecode(b"z\xff.yaml")
    path.write_text(tiny_config_text.replace("name: tiny\n", ""))
    with pytest.raises(ConfigError, match=r"name: the run name defaults to the file name, 'z\\udcff': expected a "
                                          r"run name of UTF-8 text .*; set name in the config"):
        load_config(path)
    path.write_text(tiny_config_text)  # with a name of its own, the file name does not matter
    assert load_config(path)["name"] == "tiny"
    with pytest.raises(ConfigError, match=r"name: expected a run name of UTF-8 text"):
        load_config(path, [os.fsdecode(b"name=y\xfe")])
