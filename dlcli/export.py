"""Exporting a checkpoint's model for use without dlcli.

    torchscript  a traced `PredictModule`: raw samples in, predict-time outputs out
    onnx         the same module as ONNX, through torch's torch.export-based exporter (needs
                 the onnx and onnxscript packages, the `onnx` extra); the batch axis is
                 dynamic
    state_dict   the model's weights as a plain dict of tensors (`torch.save`), to load
                 into `dlcli.model.build_model(config)`

Each export gets a JSON sidecar (its file name less `.pt`, plus `.json`:
`best.torchscript.json`, `best.onnx.json`) with the config, the classes,
the normalization and what the inputs and outputs are.

The TorchScript and ONNX modules take a batch shaped (B, *model.input_shape) of raw,
unnormalized values (pixels 0-255, features unscaled; images channels-first) as float
(TorchScript also takes uint8; an ONNX input is typed: float32, or int64 token ids
for a model that starts with an embedding), apply the training normalization and
return what `dlcli predict` shows: class probabilities for classifiers (softmax,
even when the model was trained on logits), sigmoid probabilities for binary
models, values for regression. The TorchScript module refuses a batch of any shape
`dlcli predict` would not take (a channels-last image batch has the right number of values);
the ONNX graph's input is typed (B, *input_shape).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import List

import torch
import torch.nn as nn

from dlcli.data.prepare import affine
from dlcli.errors import DataError, DlcliError, install_hint, short_repr
from dlcli.inference import TrainedModel, load_trained

FORMATS = {"torchscript": ".torchscript.pt", "onnx": ".onnx", "state_dict": ".state_dict.pt"}
SUFFIXES = {"torchscript": (".pt", ".pth"), "onnx": (".onnx",), "state_dict": (".pt", ".pth")}  # an --out's
SIDECAR_FORMAT = "dlcli-export-"  # the sidecar's "format" starts so: dlcli-export-onnx, ...
OUTPUTS = {"classification": "class probabilities (B, classes): softmax of the logits",
           "binary": "probabilities (B, outputs): sigmoid of the logits",
           "regression": "predicted values (B, *outputs)"}
# eval(): dropout off and batchnorm on its running statistics, as predict runs it (build_model returns
# a model in training mode, which the trainer relies on)
STATE_DICT_RECIPE = ("import torch, dlcli.model; model = dlcli.model.build_model(sidecar['config']); "
                     "model.load_state_dict(torch.load(path, weights_only=True)); model.eval()")
REQUIRES = {"torchscript": "torch only",
            "onnx": f"an ONNX runtime (e.g. {install_hint(['onnxruntime'])})",
            "state_dict": "dlcli installed (from its checkout: pip install -e .), which builds the model from the "
                          "config; for plain PyTorch use dlcli export --format torchscript"}
ONNX_PACKAGES = ("onnx", "onnxscript")  # torch.onnx's exporter imports both
ONNX_INLINE_LIMIT = 1536 * 2**20  # weights past this go to <file>.data (torch's threshold; protobuf stops at 2 GiB)


@dataclass
class Export:
    path: Path
    sidecar: Path
    format: str
    info: dict  # what the sidecar holds


class PredictModule(nn.Module):
    """Raw samples (B, *input_shape) -> predict-time outputs: normalization, model,
    output activation. The normalization is the elementwise `x * scale + shift`
    training applied, per channel (images) or per feature. Samples of any other
    shape than `dlcli predict` takes are refused (a channels-last image batch has
    the right number of values but would be read as scrambled pixels)."""

    def __init__(self, trained: TrainedModel):
        super().__init__()
        self.model = trained.model
        self.activation = trained.prediction_activation
        self.view = tuple(trained.input_shape)
        self.expected = f"expected {accepted_inputs(trained)}"
        norm = trained.normalization
        self.normalize = norm is not None
        self.norm_axis, self.norm_count = (int(norm["axis"]), len(norm["mean"])) if norm is not None else (1, 1)
        if norm is not None:
            count = len(norm["mean"])
            # channels first (axis 1: images) or last (features); a reshape keeps the element order
            self.grouping = (count, -1) if norm["axis"] == 1 else (-1, count)
            scale, shift = affine({**norm, "axis": 1 if norm["axis"] == 1 else 2}, self.grouping, "cpu")
            self.register_buffer("scale", scale)  # (1, C, 1) or (1, 1, C)
            self.register_buffer("shift", shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = check_sample_shape(x, list(self.view), self.norm_axis, self.norm_count, self.expected)
        b = x.shape[0]
        if self.normalize:
            x = torch.addcmul(self.shift, x.float().reshape(b, *self.grouping), self.scale)
        x = x.reshape(b, *self.view)  # (B, *input_shape)
        return self.activation(self.model(x))


@torch.jit.script_if_tracing  # compiled into the traced module: a check on every call, not on the example's shape
def check_sample_shape(x: torch.Tensor, view: List[int], norm_axis: int, norm_count: int, expected: str) -> torch.Tensor:
    """The samples `dlcli predict` takes (TrainedModel.fit_samples): shaped `view`
    (model.input_shape), rows-as-steps ((1, H, W) for (H, W)) or, for a flat input,
    any shape of as many values; with the normalization's channels (features) on its axis.
    Returns x (a traced call needs a tensor out)."""
    sample = list(x.shape[1:])  # eager: a torch.Size, which never equals a list
    fits = sample == view
    if not fits:
        if len(view) == 2 and len(sample) == 3:
            fits = sample[0] == 1 and sample[1:] == view
        elif len(view) == 1:
            count = 1
            for size in sample:
                count *= size
            fits = count == view[0]
        if fits and norm_count > 1:
            fits = norm_axis <= len(sample) and sample[norm_axis - 1] == norm_count
    if not fits:
        raise ValueError("dlcli export: input of shape " + str(list(x.shape)) + ": " + expected)
    return x


def accepted_inputs(trained: TrainedModel) -> str:
    """The shapes of raw batches the TorchScript module takes, the layout spelled out."""
    shape = tuple(trained.input_shape)
    batch = f"(B, {', '.join(map(str, shape))})"
    norm = trained.normalization
    if len(shape) == 3:
        return f"{batch} {channels_first(shape)}"
    if len(shape) == 2:
        return f"{batch} (B, steps, features), or (B, 1, {shape[0]}, {shape[1]}) (each image row one step)"
    # images stored (N, C, H, W) with per-channel statistics, flattened by the model: not a table's features
    if norm is not None and 1 < len(norm["mean"]) != shape[0] and int(norm["axis"]) == 1:
        return (f"{batch}, or samples as stored in training (e.g. (B, {len(norm['mean'])}, H, W) channels-first) "
                f"holding {shape[0]} values in that order")
    return f"{batch}, or any (B, ...) of {shape[0]} values per sample in that order (flattened)"


def channels_first(shape: tuple) -> str:
    """The layout of image-shaped (C, H, W) input, and how to get it from channels-last arrays."""
    c, h, w = shape
    return (f"channels-first (B, C, H, W); transpose channels-last (B, {h}, {w}, {c}) arrays first: "
            f"x.permute(0, 3, 1, 2) (numpy: x.transpose(0, 3, 1, 2))")


def normalization_formula(trained: TrainedModel) -> str:
    """(x - mean) / std, and along which axis of the batch."""
    norm = trained.normalization
    if norm is None:
        return "none (integer token ids)" if trained.plan.ids else "none (trained with data.normalize: false)"
    count, axis = len(norm["mean"]), int(norm["axis"])
    if count == 1:
        return "x = (x - mean[0]) / std[0] for every value (normalization.mean, normalization.std)"
    shape = tuple(trained.input_shape)
    last = axis == len(shape) and shape[-1] == count  # features (a table's columns, a window's values)
    along = f"feature c on axis {axis}, the last" if last else f"channel c on axis {axis}"
    return (f"x = (x - mean[c]) / std[c] for each {along} of the (B, ...) batch "
            f"(normalization.mean, normalization.std: {count} values each)")


def default_path(trained: TrainedModel, fmt: str) -> Path:
    """<run>/export/<checkpoint stem><suffix>, else next to the checkpoint."""
    folder = trained.run_dir / "export" if trained.run_dir is not None else trained.checkpoint.parent
    return folder / f"{trained.checkpoint.stem}{FORMATS[fmt]}"


def sidecar_path(target: Path) -> Path:
    """The JSON beside an export: best.torchscript.pt -> best.torchscript.json, best.onnx -> best.onnx.json."""
    return target.with_name(target.name.removesuffix(".pt") + ".json")


def is_export_sidecar(path: Path) -> bool:
    """Whether `path` is a sidecar dlcli export wrote (a JSON object whose format is dlcli-export-*)."""
    try:
        with open(path, "rb") as handle:
            if handle.read(1) != b"{":
                return False  # not the JSON export writes: do not read on (a large binary file)
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(value, dict) and str(value.get("format", "")).startswith(SIDECAR_FORMAT)


def check_target(trained: TrainedModel, fmt: str, target: Path, force: bool = False) -> None:
    """Refuse, before any work, an export `target` (or its sidecar) that is the checkpoint, lies in a
    run's checkpoints/ or is one of its records (even with `force`), whose suffix does not fit
    `fmt`, or that exists and is not an earlier dlcli export (unless `force`)."""
    from dlcli.outputs import refuse_existing, refuse_inputs, refuse_run_files

    instead = default_path(trained, fmt)
    sidecar = sidecar_path(target)
    for path, label in ((target, None), (sidecar, f"--out {target}: its sidecar {sidecar}")):
        refuse_inputs(path, [(trained.checkpoint, "the checkpoint")], instead, label)
        refuse_run_files(path, instead, label)
    if target.suffix.lower() not in SUFFIXES[fmt]:
        raise DlcliError(f"--out {target}: expected a {' or '.join(SUFFIXES[fmt])} file name for --format {fmt} "
                         f"(the default is {instead.name}), received {target.suffix or 'no extension'}")
    refuse_existing(target, lambda path: is_export_sidecar(sidecar_path(path)),
                    f"a dlcli export (no export sidecar {sidecar.name} beside it)", force)
    refuse_existing(sidecar, is_export_sidecar, "a dlcli export sidecar", force,
                    f"--out {target}: its sidecar {sidecar}")


def export_checkpoint(path: str | Path, fmt: str, out: str | Path | None = None, force: bool = False) -> Export:
    """Write the checkpoint's model in `fmt` (torchscript, onnx or state_dict) and its sidecar.
    An existing file is replaced only when it is an earlier export (its sidecar says so), or
    with `force`; never the checkpoint, nor anything in a run's checkpoints/ (`check_target`)."""
    from dlcli.errors import did_you_mean

    if fmt not in FORMATS:
        raise DlcliError(f"unknown export format {short_repr(fmt)};{did_you_mean(fmt, FORMATS)} expected one of: "
                         f"{', '.join(FORMATS)}")
    if fmt == "onnx":
        _require_onnx()
    trained = load_trained(path, "cpu")
    target = Path(out) if out is not None else default_path(trained, fmt)
    if target.is_dir():
        target = target / default_path(trained, fmt).name
    check_target(trained, fmt, target, force)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DlcliError(f"{target.parent}: cannot create the export directory: {err.strerror or err}") from None
    info = sidecar_info(trained, fmt)
    try:
        if fmt == "state_dict":
            _save_state_dict(trained, target)
        elif fmt == "torchscript":
            _save_torchscript(trained, target, info)
        else:
            _save_onnx(trained, target, info)
    except OSError as err:
        raise DlcliError(f"{target}: cannot write the export: {err.strerror or err}") from None
    sidecar = sidecar_path(target)
    from dlcli.runs import write_text_atomic

    write_text_atomic(sidecar, json.dumps(info, indent=2) + "\n")
    return Export(target, sidecar, fmt, info)


def sidecar_info(trained: TrainedModel, fmt: str) -> dict:
    import dlcli

    weights = fmt == "state_dict"
    features = trained.csv_features
    order = f"; the {len(features)} features in the order of feature_names" if features else ""
    shape = tuple(trained.input_shape)
    batch = f"(B, {', '.join(map(str, shape))})" + (f" {channels_first(shape)}" if len(shape) == 3 else "")
    raw = "unnormalized values" + (" (pixels 0-255)" if len(shape) == 3 else "")
    if weights:
        takes = f"normalized samples {batch}{order}; as training fed the model: {normalization_formula(trained)}"
    elif fmt == "onnx":
        takes = (f"raw samples {batch}, exactly this shape (the graph's input), {_input_type(trained, fmt)}, "
                 f"{raw}{order}; "
                 f"normalization applied inside: {normalization_formula(trained)}")
    else:
        takes = (f"raw samples {accepted_inputs(trained)}, {_input_type(trained, fmt)}, {raw}{order}; "
                 f"other shapes are refused; "
                 f"normalization applied inside: {normalization_formula(trained)}")
    return {
        "format": f"dlcli-export-{fmt}", "dlcli_version": dlcli.__version__, "torch_version": str(torch.__version__),
        "checkpoint": str(Path(trained.checkpoint).absolute()), "epoch": trained.epoch,
        "input": takes,
        "output": ("the model's forward outputs (logits for classifiers; apply output_activation for "
                   "probabilities)" if weights else OUTPUTS[trained.loss_task]),
        "load": STATE_DICT_RECIPE if weights
        else ("torch.jit.load(path)" if fmt == "torchscript"
              else "onnxruntime.InferenceSession(path).run(['output'], {'input': x})[0]"),
        "requires": REQUIRES[fmt],
        "input_shape": list(trained.input_shape), "task": trained.loss_task,
        "output_activation": getattr(trained.model, "output_activation", None),
        "class_names": trained.class_names, "feature_names": features, "normalization": trained.normalization,
        "image_files": _image_recipe(trained),
        "config": trained.cfg,
    }


def _image_recipe(trained: TrainedModel) -> str | None:
    """How dlcli predict reads an image file into one sample, for a model trained on images."""
    from dlcli.data.images import decode_recipe

    try:
        return decode_recipe(trained.trained_on.image_shape("export"))
    except DataError:  # not trained on images
        return None


def _input_type(trained: TrainedModel, fmt: str) -> str:
    if fmt != "onnx":
        return "float (or uint8)"
    # an ONNX graph's input is typed as the example batch was
    return "int64 token ids" if trained.normalization is None and trained.plan.ids else "float32"


def _save_state_dict(trained: TrainedModel, target: Path) -> None:
    from dlcli.files import atomic_write_bytes

    weights = {name: tensor.detach().cpu().clone() for name, tensor in trained.model.state_dict().items()}
    atomic_write_bytes(target, lambda handle: torch.save(weights, handle))


def example_batch(trained: TrainedModel, batch: int = 2) -> torch.Tensor:
    """A batch of raw samples to trace with: pixel-like values, or token ids for embeddings."""
    generator = torch.Generator().manual_seed(0)
    shape = (batch, *trained.input_shape)
    if trained.normalization is None and trained.plan.ids:
        return torch.zeros(shape, dtype=torch.int64)
    return torch.rand(shape, generator=generator) * 255


def _inference_module(trained: TrainedModel) -> PredictModule:
    module = PredictModule(trained).eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)  # outputs without autograd history
    return module


def _trace(trained: TrainedModel) -> torch.jit.ScriptModule:
    module = _inference_module(trained)
    example = example_batch(trained)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about python values baked in (shapes, flags)
        try:
            traced = torch.jit.trace(module, example)
        except Exception as err:  # torch raises assorted errors for modules it cannot trace
            raise DlcliError(f"{trained.checkpoint}: the model cannot be traced to TorchScript: "
                             f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None
    return traced


def _save_torchscript(trained: TrainedModel, target: Path, info: dict) -> None:
    from dlcli.files import atomic_write_bytes

    traced = _trace(trained)
    extra = {"dlcli.json": json.dumps({k: v for k, v in info.items() if k != "config"})}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.save points at torch.export
        atomic_write_bytes(target, lambda handle: torch.jit.save(traced, handle, _extra_files=extra))


def _require_onnx() -> None:
    """Both packages torch.onnx's exporter imports, checked before anything loads."""
    import importlib

    missing = []
    for name in ONNX_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise DlcliError(f"--format onnx needs the {' and '.join(missing)} package{'s' * (len(missing) > 1)}, "
                         f"which {'are' if len(missing) > 1 else 'is'} not installed (optional for dlcli): "
                         f"{install_hint(ONNX_PACKAGES, 'onnx')}; "
                         f"or export --format torchscript")


def _onnx_program(trained: TrainedModel):
    """The PredictModule through torch.export (the exporter torch recommends; the
    TorchScript-based one is deprecated), with a dynamic batch axis."""
    module = _inference_module(trained)
    batch = torch.export.Dim("batch")
    try:
        # when capture fails torch prints partial graphs and logs to stderr: the error says it in one line
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            return torch.onnx.export(module, (example_batch(trained),), dynamo=True, verbose=False,
                                     input_names=["input"], output_names=["output"],
                                     dynamic_shapes=({0: batch},))
    except Exception as err:  # the exporter raises assorted errors for code it cannot capture or map
        raise DlcliError(f"{trained.checkpoint}: ONNX export failed{_failing_layer(trained, err)}: "
                         f"{_root_cause(err)}; --format torchscript may still work") from None


def _causes(err: BaseException) -> list[BaseException]:
    chain = [err]
    while chain[-1].__cause__ is not None and len(chain) < 16:
        chain.append(chain[-1].__cause__)
    return chain


def _root_cause(err: BaseException) -> str:
    """`Type: first line` of the innermost cause: the exporter wraps it in its own advice."""
    root = _causes(err)[-1]
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(root)).strip()  # colour codes
    return f"{type(root).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def _failing_layer(trained: TrainedModel, err: BaseException) -> str:
    """` at model.layers[i] (name)` for the innermost layer whose forward the traceback passes through."""
    layers = {id(module): name for name, module in trained.model.named_children()}
    found = None
    for cause in _causes(err):
        frame = cause.__traceback__
        while frame is not None:
            found = layers.get(id(frame.tb_frame.f_locals.get("self")), found)
            frame = frame.tb_next
    if found is None:
        return ""
    return f" at model.layers[{trained.plan.layer(found).index}] ({found})"


def _save_onnx(trained: TrainedModel, target: Path, info: dict) -> None:
    program = _onnx_program(trained)
    size = sum(t.numel() * t.element_size() for t in trained.model.state_dict().values())
    # staged under the final name in a folder beside the target, so that a model whose
    # weights go to a separate file names it correctly; then renamed into place, the model last
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.", dir=target.parent) as staging:
        staged = Path(staging) / target.name
        program.save(staged, external_data=size > ONNX_INLINE_LIMIT)
        written = sorted(Path(staging).iterdir(), key=lambda path: path == staged)
        for path in written:
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(path, target.parent / path.name)
    weights = [path.name for path in written if path != staged]
    if weights:
        info["external_data"] = f"{', '.join(weights)} (the weights: keep beside {target.name})"
