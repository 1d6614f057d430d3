"""Validation: the whole config is checked and every problem reported at once.

The result is the *resolved* config: plain data with canonical names and every
default filled in. It is what a run saves and a checkpoint carries, and it
validates again as it is.
"""

from __future__ import annotations

from typing import Any

from dlcli.config._origin import where_in
from dlcli.config._schema import DATA, EARLY_STOPPING, MODEL, TOP, TRAINER
from dlcli.data.datasets import DATASETS
from dlcli.errors import ConfigError, Problem, did_you_mean, format_path, short_list, short_repr
from dlcli.layers import LAYERS, ShapeError, final_activation, fmt_shape
from dlcli.losses import LOSSES
from dlcli.metrics import METRICS
from dlcli.model.layout import channels_first_refusal, channels_last_hint, data_view_fits, looks_channels_last
from dlcli.model.plan import plan_layers, plan_model
from dlcli.optim import OPTIMIZERS, SCHEDULERS
from dlcli.registry import Entry, KindError, Registry, check_args

LAYER_FORMS = "a layer is `- name` , `- name: {arguments}` or `- {type: name, ...arguments}`"
MAX_LAYERS = 1_000  # validate builds and summarizes every layer: about 0.5 ms each


def canonicalize_layers(data: Any, lines: dict) -> None:
    """Rewrite `- conv2d: {filters: 32}` and `- flatten` as `{type: ..., ...}` in place,
    moving the recorded lines along. Malformed entries are left for validation."""
    layers = data.get("model", {}).get("layers") if isinstance(data, dict) and isinstance(data.get("model"), dict) \
        else None
    if not isinstance(layers, list):
        return
    base = ("model", "layers")
    by_layer: dict = {}  # the lines under each `model.layers[i].name`, gathered once rather than per layer
    for path in lines:
        if path[:2] == base and len(path) >= 4:
            by_layer.setdefault(path[:4], []).append(path)
    for i, layer in enumerate(layers):
        if isinstance(layer, str):
            layers[i] = {"type": layer}
            lines[base + (i, "type")] = lines.get(base + (i,))
        elif isinstance(layer, dict) and "type" not in layer and len(layer) == 1:
            (name, value), = layer.items()
            entry = LAYERS.lookup(name)
            if isinstance(value, dict):
                args = value
            elif value is None:
                args = {}
            elif entry is not None and entry.args:
                args = {entry.args[0].name: value}
                lines[base + (i, entry.args[0].name)] = lines.get(base + (i, name))
            else:
                continue
            layers[i] = {"type": name, **args}
            for path in by_layer.get(base + (i, name), []):
                line = lines.pop(path)
                lines[base + (i, *path[4:]) if len(path) > 4 else base + (i, "type")] = line


NAMED_SECTIONS = {"optimizer": "type", "scheduler": "type", "loss": "type", "data": "dataset"}


def canonicalize_sections(data: Any, lines: dict) -> None:
    """Rewrite `optimizer: adam` as `{type: adam}` (likewise scheduler, loss and `data: mnist`) in
    place, so that an override such as `optimizer.lr=0.1` adds an argument instead of replacing the name."""
    if not isinstance(data, dict):
        return
    for section, key in NAMED_SECTIONS.items():
        if isinstance(data.get(section), str):
            data[section] = {key: data[section]}
            if (section,) in lines:
                lines[(section, key)] = lines[(section,)]


def section_defaults() -> dict:
    """{(section,): mapping} for the sections with a default (optimizer: {type: adam}, trainer: {}):
    what an override into a section the config leaves out starts from."""
    out = {}
    for arg in TOP.args:
        if isinstance(arg.default, dict):
            out[(arg.name,)] = arg.default
        elif isinstance(arg.default, str) and arg.name in NAMED_SECTIONS:
            out[(arg.name,)] = {NAMED_SECTIONS[arg.name]: arg.default}
    return out


class _Checker:
    def __init__(self, lines: dict, source: str):
        self.lines, self.source = lines, source
        self.problems: list[Problem] = []

    def where(self, path: tuple) -> str:
        return where_in(self.lines, self.source, path)

    def add(self, path: tuple, message: str) -> None:
        self.problems.append(Problem(tuple(path), message, self.where(path)))

    def mapping(self, value: Any, path: tuple, what: str) -> dict | None:
        if isinstance(value, dict):
            return value
        self.add(path, f"expected a mapping ({what}), received {type(value).__name__}: {short_repr(value)}")
        return None

    def args(self, entry: Entry, given: dict, path: tuple, reserved=("type",)) -> dict:
        out, problems = check_args(entry, given, reserved)
        for key, message in problems:
            self.add(path + ((key,) if key is not None else ()), message)
        return out

    def typed(self, registry: Registry, value: Any, path: tuple, key: str = "type") -> dict | None:
        """A `{type: name, ...args}` section (or a bare name); returns it resolved."""
        if isinstance(value, str):
            value = {key: value}
        section = self.mapping(value, path, f"{key}: name, plus its arguments")
        if section is None:
            return None
        if key not in section:
            self.add(path, f"missing '{key}': expected one of: {', '.join(registry.names())}")
            return None
        entry = registry.lookup(section[key])
        if entry is None:
            self.add(path + (key,), registry.unknown_message(section[key]))
            return None
        return {key: entry.name, **self.args(entry, section, path, reserved=(key,))}


def validate(data: Any, lines: dict, source: str, default_name: str = "run", guards: bool = True) -> dict:
    """guards=False leaves out the checks that stop a new run from training something other than
    the user meant (a 1-D layer across a sequence's features, a recurrent dropout that does
    nothing, nll on logits), for a checkpoint's config: it was trained as it is, and its
    weights are what evaluate, predict, export and --resume work with."""
    check = _Checker(lines, source)
    top = check.mapping(data, (), "sections model, data, optimizer, loss, trainer")
    if top is None:
        raise ConfigError(check.problems, source)
    top = _section_keys_at_the_top(check, top)
    resolved = check.args(TOP, top, (), reserved=())
    if not resolved.get("name"):
        try:
            resolved["name"] = TOP.arg("name").kind.check(default_name)
        except KindError as err:
            check.add(("name",), f"the run name defaults to the file name, {short_repr(default_name)}: {err}; "
                                 f"set name in the config")

    model = _model(check, top["model"], guards) if "model" in top else None  # missing: with TOP's arguments
    resolved["model"] = model
    data_cfg = _data(check, top["data"]) if "data" in top else None
    resolved["data"] = data_cfg
    resolved["optimizer"] = check.typed(OPTIMIZERS, top.get("optimizer", {"type": "adam"}), ("optimizer",))
    scheduler = top.get("scheduler")
    resolved["scheduler"] = None if scheduler is None else check.typed(SCHEDULERS, scheduler, ("scheduler",))
    resolved["loss"] = check.typed(LOSSES, top.get("loss", "cross_entropy"), ("loss",))
    resolved["trainer"] = _trainer(check, top.get("trainer", {}))
    resolved["metrics"] = _metrics(check, top.get("metrics"), resolved["loss"])
    if not check.problems:
        _cross_checks(check, resolved, guards)
    if check.problems:
        raise ConfigError(check.problems, source)
    return _plain(resolved)


def _section_keys_at_the_top(check: _Checker, top: dict) -> dict:
    """`epochs: 3` at the top (or the override epochs=3) belongs to a section: say which,
    rather than 'unknown argument for config'; returns the rest."""
    owners = (("data", DATA.args), ("trainer", TRAINER.args), ("optimizer", _every_optimizer_s_args()))
    sections = {name: f"{section}.{arg.name}" for section, args in owners for arg in args
                for name in (arg.name, *arg.known_as)}  # known_as: learning_rate, as Keras calls lr
    rest = {}
    for key, value in top.items():
        if isinstance(key, str) and TOP.arg(key) is None and key in sections:
            check.add((key,), f"unknown argument {short_repr(key)} for config: it belongs under "
                              f"{sections[key].split('.')[0]}, as {sections[key]} (override: {sections[key]}=...)")
        else:
            rest[key] = value
    return rest


def _every_optimizer_s_args() -> list:
    """The arguments every optimizer takes (lr, weight_decay): at the top, whichever optimizer the
    config names, they belong under optimizer."""
    entries = OPTIMIZERS.entries()
    return [arg for arg in entries[0].args if all(entry.arg(arg.name) is not None for entry in entries[1:])]


def _model(check: _Checker, value: Any, guards: bool) -> dict | None:
    model = check.mapping(value, ("model",), "input_shape and layers")
    if model is None:
        return None
    layers = model.get("layers")
    # Keras's way, input_shape on the first layer: answered there (_keras_only_arguments), not twice
    in_a_layer = "input_shape" not in model and isinstance(layers, list) and any(
        isinstance(layer, dict) and "input_shape" in layer for layer in layers)
    resolved = check.args(MODEL, model, ("model",), reserved=("input_shape",) if in_a_layer else ())
    if "layers" in model and not (isinstance(layers, list) and layers):
        check.add(("model", "layers"), f"expected a non-empty list of layers, received {short_repr(layers)}")
        return None
    if not isinstance(layers, list):
        return None
    if len(layers) > MAX_LAYERS:
        check.add(("model", "layers"), f"expected at most {MAX_LAYERS:,} layers, received {len(layers):,}")
        return None
    resolved_layers, ok = [], True
    for i, layer in enumerate(layers):
        path = ("model", "layers", i)
        if not isinstance(layer, dict) or "type" not in layer:
            keys = short_list(layer) if isinstance(layer, dict) else short_repr(layer)
            check.add(path, f"{LAYER_FORMS}; received {keys}")
            ok = False
            continue
        entry = LAYERS.lookup(layer["type"])
        if entry is None:
            check.add(path + ("type",), LAYERS.unknown_message(layer["type"]))
            ok = False
            continue
        before = len(check.problems)
        layer = _keras_only_arguments(check, entry, layer, path, "input_shape" in model)
        args = check.args(entry, layer, path)
        if guards and len(check.problems) == before and entry.meta.get("guard"):
            for key, message in entry.meta["guard"](args):
                check.add(path + (key,), message)
        resolved_layers.append({"type": entry.name, **args})
        ok = ok and len(check.problems) == before
    resolved["layers"] = resolved_layers
    if ok and "input_shape" in resolved:
        _plan(check, resolved["input_shape"], resolved_layers, guards)
    return resolved


def _plan(check: _Checker, input_shape: list, layers: list[dict], guards: bool) -> None:
    """Plan the model (dlcli.model.plan: what every later user of it takes as given): a layer that
    cannot take its input, or (guards) a channels-first 1-D layer on a sequence that a layer made,
    is a problem of that layer; the first of them, as the layers are read."""
    types = [layer["type"] for layer in layers]
    try:
        walked, failed = plan_layers(input_shape, layers), None
    except ShapeError as err:
        walked, failed = err.walked, err
    refused = channels_first_refusal(walked, types) if guards else None
    if refused is not None:
        i, message = refused
        check.add(("model", "layers", i), f"{types[i]}: {message}")
    elif failed is not None:
        i = failed.index
        problem = f"{types[i]}: {failed}"
        found = channels_last_hint(walked)
        if found:
            where, hint = found
            check.add(where, f"{hint} (as it is, {format_path(('model', 'layers', i))}: {problem})")
        else:
            check.add(("model", "layers", i), problem)


def _keras_only_arguments(check: _Checker, entry: Entry, layer: dict, path: tuple, model_has_shape: bool) -> dict:
    """Keras's layer arguments whose job dlcli does elsewhere (the first layer's input_shape, a
    layer's name, Embedding's input_length): each answered with where, instead of a bare
    'unknown argument'; returns the layer without them."""
    answers = {
        "input_shape": lambda value: _layer_input_shape_message(entry.name, value, model_has_shape),
        "name": lambda value: (f"unknown argument 'name' for {entry.name}: dlcli names the layers itself, as Keras "
                               f"does by default ({entry.name}, {entry.name}_1, ...: the module and weight names); "
                               f"remove it; received: {short_repr(value)}"),
        "input_length": lambda value: (f"unknown argument 'input_length' for {entry.name}: the sequence length is "
                                       f"model.input_shape (e.g. [{short_repr(value)}])"),
    }
    if not entry.meta.get("int_input"):
        del answers["input_length"]  # only an embedding's
    rest = dict(layer)
    for key, answer in answers.items():
        if key in rest and entry.arg(key) is None:
            check.add(path + (key,), answer(rest.pop(key)))
    return rest


def _layer_input_shape_message(layer: str, value: Any, model_has_one: bool) -> str:
    """Keras gives the first layer an input_shape; dlcli gives the model one."""
    start = f"unknown argument 'input_shape' for {layer}: dlcli takes the input shape once, for the whole model"
    if model_has_one:
        return f"{start}, from model.input_shape (which this config sets): remove it here; received: " \
               f"{short_repr(value)}"
    shape = value if isinstance(value, list) and value and all(type(n) is int for n in value) else None
    if shape and looks_channels_last(shape):
        shape = [shape[-1], *shape[:-1]]
    example = f", e.g. model.input_shape: {shape} (channels first)" if shape else ""
    return f"{start}: set model.input_shape instead{example}; received: {short_repr(value)}"


def _data(check: _Checker, value: Any) -> dict | None:
    if isinstance(value, str):
        value = {"dataset": value}
    section = check.mapping(value, ("data",), "dataset: name, plus batch_size, val_split, ...")
    if section is None:
        return None
    if "dataset" not in section:
        check.add(("data",), f"missing 'dataset': expected one of: {', '.join(DATASETS.names())}")
        return None
    entry = DATASETS.lookup(section["dataset"])
    if entry is None:
        check.add(("data", "dataset"), DATASETS.unknown_message(section["dataset"]))
        return None
    merged = Entry("data", DATA.help, args=DATA.args + entry.args)
    resolved = check.args(merged, section, ("data",), reserved=())
    resolved["dataset"] = entry.name
    return resolved


def _trainer(check: _Checker, value: Any) -> dict | None:
    section = check.mapping(value, ("trainer",), "epochs, device, ...")
    if section is None:
        return None
    resolved = check.args(TRAINER, section, ("trainer",), reserved=())
    early = section.get("early_stopping")
    if early is True:
        early = {}
    if early is None or early is False:
        resolved["early_stopping"] = None
    elif check.mapping(early, ("trainer", "early_stopping"), "patience, min_delta") is not None:
        resolved["early_stopping"] = check.args(EARLY_STOPPING, early, ("trainer", "early_stopping"), reserved=())
    return resolved


def _metrics(check: _Checker, value: Any, loss: dict | None) -> list | None:
    task = LOSSES.get(loss["type"]).meta["task"] if loss else None
    if value is None:
        return {"classification": ["accuracy"], "binary": ["binary_accuracy"]}.get(task, ["mae"])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        check.add(("metrics",), f"expected a list of metric names, received {short_repr(value)}")
        return None
    names = []
    for i, name in enumerate(value):
        entry = METRICS.lookup(name)
        if entry is None:
            check.add(("metrics", i), METRICS.unknown_message(name))
            continue
        if task and entry.meta["task"] != task:
            same = [e.name for e in METRICS if e.meta["task"] == task and e.name.endswith(entry.name)]
            check.add(("metrics", i), f"{entry.name} is a {entry.meta['task']} metric but the loss "
                                      f"{loss['type']} is for {task}" + (f"; use {same[0]}" if same else ""))
            continue
        if entry.name not in names:
            names.append(entry.name)
    return names


def _cross_checks(check: _Checker, cfg: dict, guards: bool) -> None:
    model, data, trainer = cfg["model"], cfg["data"], cfg["trainer"]
    plan = plan_model(cfg)  # _model's, walked there
    sequence_data = _sequence_data(data, model["input_shape"])
    if guards and sequence_data:  # _plan checked the sequences that layers make
        refused = channels_first_refusal(plan.layers, [layer.type for layer in plan.layers], sequence_data)
        if refused is not None:
            i, message = refused
            check.add(("model", "layers", i), f"{plan.layers[i].type}: {message}")
    out_shape = plan.output_shape
    last = plan.output_key
    loss = LOSSES.get(cfg["loss"]["type"])
    if loss.meta["task"] == "classification" and (len(out_shape) != 1 or out_shape[0] < 2):
        check.add(last, f"{loss.name} needs one output per class, shape (classes,) with at least 2 classes; "
                        f"the model outputs {fmt_shape(out_shape)}")
    weights = cfg["loss"].get("class_weights")
    if weights and len(out_shape) == 1 and len(weights) != out_shape[0]:
        check.add(("loss", "class_weights"), f"expected one weight per class, {out_shape[0]} for a model with "
                                             f"{out_shape[0]} outputs; received {len(weights)}")
    needs = loss.meta["needs_final"]
    ends_in = final_activation(model["layers"])
    if guards and needs and ends_in != needs:
        instead = next(e.name for e in LOSSES if e.meta["task"] == loss.meta["task"] and e.meta["logits_of"])
        check.add(last, f"{loss.name} needs a model that ends in {needs}, but this one ends in "
                        f"{ends_in or 'no activation'}, so the loss would train on the wrong values; use loss: "
                        f"{instead} (which takes logits), or end the model in {needs} (the last layer's "
                        f"activation, or a final `- activation: {needs}`)")
    dataset = DATASETS.get(data["dataset"])
    classes = dataset.meta.get("num_classes")
    if classes and loss.meta["task"] == "classification" and len(out_shape) == 1 and out_shape[0] != classes:
        check.add(last, f"{dataset.name} has {classes} classes but the model outputs {out_shape[0]} values; "
                        f"set the last layer's units to {classes}")
    if classes and classes > 2 and loss.meta["task"] == "binary":  # its targets are class ids, never all 0/1
        instead = next(e.name for e in LOSSES if e.meta["task"] == "classification" and e.meta["logits_of"])
        also = f" ({loss.aliases[0]})" if loss.aliases else ""  # binary_crossentropy, as Keras calls it
        check.add(("loss", "type"), f"{loss.name}{also} takes 0/1 labels, one output "
                                    f"per label, but {dataset.name}'s targets are class ids of {classes} classes; "
                                    f"use loss: {instead}, with a last layer of {classes} units")
    sample = dataset.meta.get("sample_shape")
    if sample and not data_view_fits(tuple(sample), tuple(model["input_shape"])):
        rows = tuple(sample[1:])  # offered only where it fits: one-channel images
        alternative = (f" (or {list(rows)} to read each row as a time step)"
                       if data_view_fits(tuple(sample), rows) and len(rows) == 2 else "")
        check.add(("model", "input_shape"), f"{dataset.name} samples have shape {fmt_shape(sample)}; "
                                            f"model.input_shape must be {list(sample)}{alternative}")
    _check_monitor(check, ("trainer", "monitor"), trainer["monitor"], cfg)
    scheduler = cfg.get("scheduler")
    if scheduler and SCHEDULERS.get(scheduler["type"]).meta.get("needs_metric"):  # reduce_on_plateau
        _check_monitor(check, ("scheduler", "monitor"), scheduler["monitor"], cfg)


def _check_monitor(check: _Checker, path: tuple, monitor: str | None, cfg: dict) -> None:
    """A monitored metric (trainer.monitor, scheduler.monitor) must be one that the run logs."""
    if monitor is None:
        return
    valid = [f"{split}_{name}" for split in ("train", "val") for name in ["loss", *cfg["metrics"]]]
    if monitor not in valid:
        check.add(path, f"unknown metric {short_repr(monitor)};{did_you_mean(monitor, valid)} "
                        f"expected one of: {', '.join(valid)}")
    elif (monitor.startswith("val_") and not cfg["data"]["val_split"] > 0
          and not DATASETS.get(cfg["data"]["dataset"]).meta.get("may_name_val_split")):
        check.add(path, f"{monitor} needs validation data: set data.val_split (e.g. 0.1)")


def _sequence_data(data: dict, input_shape: list) -> str | None:
    """Where the data's samples are sequences (steps, features), for messages: 'the csv data
    (data.window: 20)'; None if they are not. A dataset declares the argument that makes them so;
    images taken as a model.input_shape [H, W] are read row by row, each row a step."""
    entry = DATASETS.get(data["dataset"])
    arg = entry.meta.get("sequence_arg")
    if arg and data.get(arg):
        return f"the {data['dataset']} data (data.{arg}: {data[arg]})"
    sample = entry.meta.get("sample_shape")
    if len(input_shape) == 2 and (entry.meta.get("images") or (sample is not None and len(sample) == 3)):
        return f"the {data['dataset']} images read row by row (model.input_shape: {list(input_shape)})"
    return None


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
