"""A trained model put to use: the checkpoint's model, config and preprocessing,
shared by `evaluate`, `predict` and `export` so all three feed the model exactly
what training fed it.

    trained = load_trained("runs/mnist_cnn/20261126-120000")   # its best.pt
    split = trained.fit_samples(x, y)         # raw samples -> a DeviceSplit (normalized, viewed)
    probs = trained.probabilities(xb)         # predict-time outputs of a model-input batch

Samples are preprocessed with the normalization stored in the checkpoint (never
statistics recomputed from other data) through `DeviceSplit.transform`, the
function training used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from dlcli.data._tensors import Split
from dlcli.data.datasets import TrainedOn
from dlcli.data.prepare import DeviceSplit, to_device_split
from dlcli.errors import CheckpointError, DataError, DlcliError, short_list, short_repr
from dlcli.layers import fmt_shape
from dlcli.model.plan import ModelPlan


@dataclass
class TrainedModel:
    """A checkpoint's model in eval mode on its device, with what is needed to feed it."""

    cfg: dict
    plan: ModelPlan  # the model's shapes and task (dlcli.model.plan_model)
    model: torch.nn.Module  # dlcli.model.Model
    device: torch.device
    checkpoint: Path
    epoch: int
    task: str  # the data's: classification | regression
    loss_task: str  # the loss's: classification | binary | regression
    class_names: list[str] | None
    normalization: dict | None
    run_dir: Path | None  # the run directory holding the checkpoint, if any
    prediction_activation: torch.nn.Module  # turns outputs into predict-time outputs
    feature_names: list[str] | None = None  # CSV: the feature columns training read, in order (if recorded)

    @property
    def input_shape(self) -> tuple:
        return self.plan.input_shape

    @property
    def out_shape(self) -> tuple:
        """One sample's output shape."""
        return self.plan.output_shape

    @property
    def num_classes(self) -> int | None:
        return int(self.out_shape[0]) if self.loss_task == "classification" else None

    @property
    def trained_on(self) -> TrainedOn:
        """What a data source needs to read other files as training read its own."""
        return TrainedOn(self.cfg["data"], self.input_shape, self.plan.target_kind, self.feature_names)

    @property
    def csv_features(self) -> list[str] | None:
        """The feature columns to read from a CSV, by name, in the order the model takes
        them (`TrainedOn.feature_columns`); None for data without named columns."""
        return self.trained_on.feature_columns

    def class_name(self, index: int) -> str:
        names = self.class_names
        return names[index] if names and index < len(names) else str(index)

    def fit_samples(self, x: torch.Tensor, y: torch.Tensor | None = None, where: str = "data") -> DeviceSplit:
        """Raw samples (N, *stored shape) as the model takes them: checked against the
        model's input shape and the stored normalization, then held as a DeviceSplit."""
        from dlcli.data.prepare import model_ids

        x = model_ids(self.cfg, self.plan, x, where)
        sample = tuple(x.shape[1:])
        self.check_shape(sample, where)
        normalization = fitted_normalization(self.normalization, sample, where)
        task = self.task
        if y is None:  # inputs without targets (predict): placeholder class ids
            y, task = torch.zeros(len(x), dtype=torch.int64), "classification"
        return to_device_split(Split(x, y), normalization, self.input_shape, self.device, torch.device("cpu"),
                               self.out_shape, task)

    def check_shape(self, sample: tuple, where: str) -> None:
        """Samples of shape `sample` fit the model as they are, rows-as-steps or flattened."""
        from dlcli.model.layout import data_view_fits

        if not data_view_fits(sample, self.input_shape):
            raise DataError(f"{where}: samples have shape {fmt_shape(sample)} but the model takes "
                            f"{fmt_shape(self.input_shape)} (model.input_shape of {self.checkpoint}); expected "
                            f"samples shaped like its training data")

    @torch.no_grad()
    def probabilities(self, xb: torch.Tensor) -> torch.Tensor:
        """Predict-time outputs of a model-input batch: probabilities for classifiers
        (the activation the loss applied, even when the model ends in logits), values
        for regression."""
        if getattr(self.model, "output_activation", None):
            return self.model.predict_proba(xb)
        return self.prediction_activation(self.model(xb))


def fitted_normalization(normalization: dict | None, sample: tuple, where: str) -> dict | None:
    """The stored normalization, checked against samples of shape `sample`: its
    per-channel (or per-feature) statistics must line up with the samples' axis."""
    if normalization is None:
        return None
    axis, count = int(normalization["axis"]), len(normalization["mean"])
    if count == 1:  # one mean and std for everything: fits any shape
        return {**normalization, "axis": 1}
    if axis <= len(sample) and sample[axis - 1] == count:
        return normalization
    raise DataError(f"{where}: samples of shape {fmt_shape(sample)} do not line up with the normalization "
                    f"the model was trained with ({count} per-channel or per-feature statistics on axis {axis} "
                    f"of each batch); expected samples stored like the training data")


def normalization_for(normalization: dict | None, splits, where: str) -> dict | None:
    """A checkpoint's normalization checked (fitted_normalization) against the data its config
    loads again (`splits`, the first part with samples): a checkpoint whose statistics do not
    line up with its own data is refused before any batch is normalized."""
    for split in (splits.train, splits.val, splits.test):
        if split is not None and len(split):
            return fitted_normalization(normalization, tuple(split.sample_shape), where)
    return normalization


def prediction_activation(cfg: dict, model) -> torch.nn.Module:
    """What turns the model's forward outputs into probabilities or values."""
    import torch.nn as nn

    from dlcli.activations import build_activation
    from dlcli.losses import LOSSES

    if getattr(model, "output_activation", None):
        return model.output_act
    loss = LOSSES.get(cfg["loss"]["type"])
    if loss.meta.get("logits_of"):  # cross_entropy: softmax, bce_with_logits: sigmoid
        return build_activation(loss.meta["logits_of"])
    if loss.meta.get("needs_final") == "log_softmax":  # nll: trained on log-probabilities
        return _Exp()
    return nn.Identity()


class _Exp(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.exp()


def check_device_name(name: str) -> None:
    """--device takes the devices trainer.device does: torch knows more kinds (meta, xla, hpu...)
    that dlcli cannot run a model on, and `meta` would give outputs without values."""
    from dlcli.config._schema import Device
    from dlcli.registry import KindError

    try:
        Device().check(name)
    except KindError as err:
        raise DlcliError(f"--device: {err} (the devices dlcli runs models on), received {short_repr(name)}") from None


def inference_device(name: str | None, cfg: dict) -> torch.device:
    """--device, else the config's trainer.device (a missing GPU says how to override)."""
    from dlcli.model import resolve_device

    if name is not None:
        check_device_name(name)
        return resolve_device(name, "--device")
    try:
        return resolve_device(cfg["trainer"]["device"])
    except DlcliError as err:
        raise DlcliError(f"{err}; the device comes from the checkpoint's config: choose another with "
                         f"--device cpu") from None


def load_trained(path: str | Path, device: str | None = None) -> TrainedModel:
    """Load a checkpoint (a run directory means its best.pt) ready for inference."""
    from dlcli.checkpoint import checkpoint_config, load_checkpoint, load_model_from_checkpoint
    from dlcli.model.plan import plan_model
    from dlcli.runs import run_dir_of

    if device is not None:
        check_device_name(device)  # before the checkpoint is read
    state = load_checkpoint(path, prefer="best.pt")
    if "normalization" not in state:
        raise CheckpointError(f"{state['path']}: incomplete checkpoint: missing normalization (the statistics "
                              f"training normalized its inputs with)")

    cfg = checkpoint_config(state)
    dev = inference_device(device, cfg)
    if cfg["trainer"].get("threads"):
        torch.set_num_threads(cfg["trainer"]["threads"])
    cfg, model = load_model_from_checkpoint(state, dev, cfg)
    model = model.eval()
    plan = plan_model(cfg)  # the checkpoint config's validation planned it
    task = state.get("task") or plan.target_kind
    class_names = state.get("class_names")
    if plan.task == "classification" and class_names and len(class_names) != plan.output_shape[0]:
        class_names = None  # names that do not match the outputs would mislabel them
    checkpoint = Path(state["path"])
    return TrainedModel(cfg=cfg, plan=plan, model=model, device=dev, checkpoint=checkpoint, epoch=int(state["epoch"]),
                        task=task, loss_task=plan.task,
                        class_names=list(class_names) if class_names else None,
                        normalization=state["normalization"], run_dir=run_dir_of(checkpoint),
                        prediction_activation=prediction_activation(cfg, model).to(dev),
                        feature_names=state.get("feature_names"))


def check_labels(trained: TrainedModel, split: Split, class_names: list[str] | None, where: str) -> Split:
    """Labels of other data checked against (and, for named classes, mapped onto)
    the model's classes."""
    if trained.loss_task != "classification":
        return split
    model_names = trained.class_names
    y = split.y
    named = class_names and class_names != [str(i) for i in range(len(class_names))]
    if named and model_names and class_names != model_names[:len(class_names)]:
        unknown = [name for name in class_names if name not in model_names]
        if unknown:
            listed = short_list(model_names, limit=12)
            raise DataError(f"{where}: class {short_repr(unknown[0])} is not one of the model's {len(model_names)} "
                            f"classes ({listed})")
        lookup = torch.tensor([model_names.index(name) for name in class_names], dtype=torch.int64)
        y = lookup[y.long()]
    classes = trained.num_classes
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= classes):
        bad = int(y.max()) if int(y.max()) >= classes else int(y.min())
        raise DataError(f"{where}: labels must be class ids 0..{classes - 1} for this model ({classes} classes); "
                        f"found label {bad}" + (f" (data with {len(class_names)} classes)" if class_names else ""))
    return Split(split.x, y)
