"""Exporting a checkpoint's model for use without dlcli.

    torchscript  a traced `PredictModule`: raw samples in, predict-time outputs out
    onnx         the same module as ONNX, through torch's torch.export-based exporter (needs
                 the onnx and onnxscript packages: pip install 'dlcli[onnx]'); the batch axis is
                 dynamic
    state_dict   the model's weights as a plain dict of tensors (`torch.save`), to load
                 into `dlcli.model.build_model(config)`

Each export gets a JSON sidecar (its file name less `.pt`, plus `.json`:
`best.torchscript.json`, `best.onnx.json`) with the config, the classes,
the normalization and what the inputs and outputs are.

The TorchScript and ONNX modules take a batch shaped (B, *model.input_shape) of raw
values as the data files hold them (pixels 0-255, features unscaled) as float
(TorchScript also takes uint8; an ONNX input is typed: float32, or int64 token ids
for a model that starts with an embedding), apply the training normalization and
return what `dlcli predict` shows: class probabilities for classifiers (softmax,
even when the model was trained on logits), sigmoid probabilities for binary
models, values for regression.
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

import torch
import torch.nn as nn

from dlcli.data.prepare import affine
from dlcli.errors import DlcliError, short_repr
from dlcli.inference import TrainedModel, load_trained

FORMATS = {"torchscript": ".torchscript.pt", "onnx": ".onnx", "state_dict": ".state_dict.pt"}
OUTPUTS = {"classification": "class probabilities (B, classes): softmax of the logits",
           "binary": "probabilities (B, outputs): sigmoid of the logits",
           "regression": "predicted values (B, *outputs)"}
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
    training applied, per channel (images) or per feature."""

    def __init__(self, trained: TrainedModel):
        super().__init__()
        self.model = trained.model
        self.activation = trained.prediction_activation
        self.view = tuple(trained.input_shape)
        norm = trained.normalization
        self.normalize = norm is not None
        if norm is not None:
            count = len(norm["mean"])
            # channels first (axis 1: images) or last (features); a reshape keeps the element order
            self.grouping = (count, -1) if norm["axis"] == 1 else (-1, count)
            scale, shift = affine({**norm, "axis": 1 if norm["axis"] == 1 else 2}, self.grouping, "cpu")
            self.register_buffer("scale", scale)  # (1, C, 1) or (1, 1, C)
            self.register_buffer("shift", shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        if self.normalize:
            x = torch.addcmul(self.shift, x.float().reshape(b, *self.grouping), self.scale)
        x = x.reshape(b, *self.view)  # (B, *input_shape)
        return self.activation(self.model(x))


def default_path(trained: TrainedModel, fmt: str) -> Path:
    """<run>/export/<checkpoint stem><suffix>, else next to the checkpoint."""
    folder = trained.run_dir / "export" if trained.run_dir is not None else trained.checkpoint.parent
    return folder / f"{trained.checkpoint.stem}{FORMATS[fmt]}"


def export_checkpoint(path: str | Path, fmt: str, out: str | Path | None = None) -> Export:
    """Write the checkpoint's model in `fmt` (torchscript, onnx or state_dict) and its sidecar."""
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
    sidecar = target.with_name(target.name.removesuffix(".pt") + ".json")  # best.onnx -> best.onnx.json
    from dlcli.runs import write_text_atomic

    write_text_atomic(sidecar, json.dumps(info, indent=2) + "\n")
    return Export(target, sidecar, fmt, info)


def sidecar_info(trained: TrainedModel, fmt: str) -> dict:
    import dlcli

    weights = fmt == "state_dict"
    return {
        "format": f"dlcli-export-{fmt}", "dlcli_version": dlcli.__version__, "torch_version": str(torch.__version__),
        "checkpoint": str(trained.checkpoint), "epoch": trained.epoch,
        "input": ("normalized samples (B, *input_shape) as training fed the model: see normalization" if weights
                  else f"raw samples (B, *input_shape), {_input_type(trained, fmt)}, values as in the data files; "
                       f"normalization is applied inside"),
        "output": ("the model's forward outputs (logits for classifiers; apply output_activation for "
                   "probabilities)" if weights else OUTPUTS[trained.loss_task]),
        "load": ("cfg = sidecar['config']; model = dlcli.model.build_model(cfg); "
                 "model.load_state_dict(torch.load(path, weights_only=True))" if weights
                 else ("torch.jit.load(path)" if fmt == "torchscript"
                       else "onnxruntime.InferenceSession(path).run(['output'], {'input': x})[0]")),
        "input_shape": list(trained.input_shape), "task": trained.loss_task,
        "output_activation": getattr(trained.model, "output_activation", None),
        "class_names": trained.class_names, "normalization": trained.normalization,
        "config": trained.cfg,
    }


def _input_type(trained: TrainedModel, fmt: str) -> str:
    if fmt != "onnx":
        return "float (or uint8)"
    # an ONNX graph's input is typed as the example batch was
    return "int64 token ids" if trained.normalization is None and _takes_ids(trained) else "float32"


def _save_state_dict(trained: TrainedModel, target: Path) -> None:
    from dlcli.checkpoint import atomic_write_bytes

    weights = {name: tensor.detach().cpu().clone() for name, tensor in trained.model.state_dict().items()}
    atomic_write_bytes(target, lambda handle: torch.save(weights, handle))


def example_batch(trained: TrainedModel, batch: int = 2) -> torch.Tensor:
    """A batch of raw samples to trace with: pixel-like values, or token ids for embeddings."""
    generator = torch.Generator().manual_seed(0)
    shape = (batch, *trained.input_shape)
    if trained.normalization is None and _takes_ids(trained):
        return torch.zeros(shape, dtype=torch.int64)
    return torch.rand(shape, generator=generator) * 255


def _takes_ids(trained: TrainedModel) -> bool:
    first = trained.cfg["model"]["layers"][0]["type"]
    return first == "embedding"


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
    from dlcli.checkpoint import atomic_write_bytes

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
                         f"pip install 'dlcli[onnx]' (or pip install {' '.join(ONNX_PACKAGES)}); "
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
    from dlcli.model import plan_layers

    layers = {id(module): name for name, module in trained.model.named_children()}
    found = None
    for cause in _causes(err):
        frame = cause.__traceback__
        while frame is not None:
            found = layers.get(id(frame.tb_frame.f_locals.get("self")), found)
            frame = frame.tb_next
    if found is None:
        return ""
    index = [name for name, *_ in plan_layers(trained.cfg)].index(found)
    return f" at model.layers[{index}] ({found})"


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
