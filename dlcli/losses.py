"""Loss functions, with the Keras names as aliases.

`meta["task"]` says what targets a loss takes (class ids, values, 0/1 labels) and
`meta["logits_of"]` which final activation the loss already contains: a model that
ends in that activation is trained on its logits (like Keras' from_logits=True),
and the activation is applied only where probabilities are wanted.
`meta["needs_final"]` is the final activation a model must end in for the loss
to read its outputs as they are (nll: log_softmax); the validator checks it.
"""

from __future__ import annotations

from dlcli.registry import Arg, Float, Optional, Registry, Str, Weights

LOSSES = Registry("loss", meta_keys=("logits_of", "needs_final", "task"))


def target_kind(loss_type: str) -> str:
    """What the data's targets are for a loss: "classification" (class ids) or "regression"
    (values: a binary loss's 0/1 labels are read as values too)."""
    return "classification" if LOSSES.get(loss_type).meta["task"] == "classification" else "regression"


def build_loss(cfg: dict, device):
    """The config's loss module on `device` (its class weights are tensors): the trainer's and
    evaluation's, one construction."""
    spec = cfg["loss"]
    return LOSSES.get(spec["type"]).build({k: v for k, v in spec.items() if k != "type"}).to(device)
_REDUCTION = Arg("reduction", Str(("mean", "sum")), "mean", "how the per-sample losses are combined")


@LOSSES.register("cross_entropy", help="softmax cross-entropy on logits; targets are class ids (or one-hot)",
                 aliases=("sparse_categorical_crossentropy", "categorical_crossentropy", "CrossEntropyLoss"),
                 args=(Arg("label_smoothing", Float(min=0.0, max=1.0, max_open=True), 0.0,
                           "spread this much probability over the other classes"),
                       Arg("class_weights", Optional(Weights()), None,
                           "one weight per class (Keras's class_weight): a rare class counts more; the loss is "
                           "the weighted mean"), _REDUCTION),
                 task="classification", logits_of="softmax", needs_final=None)
def build_cross_entropy(args):
    import torch
    import torch.nn as nn

    weights = args.get("class_weights")
    return nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32) if weights else None,
                               label_smoothing=args["label_smoothing"], reduction=args["reduction"])


@LOSSES.register("nll", help="negative log-likelihood on log-probabilities (after log_softmax)",
                 aliases=("NLLLoss",), args=(_REDUCTION,), task="classification", logits_of=None,
                 needs_final="log_softmax")
def build_nll(args):
    import torch.nn as nn

    return nn.NLLLoss(reduction=args["reduction"])


@LOSSES.register("bce_with_logits", help="sigmoid + binary cross-entropy on logits; targets 0/1",
                 aliases=("binary_crossentropy", "BCEWithLogitsLoss"),
                 args=(Arg("pos_weight", Optional(Float(min=0.0, min_open=True)), None,
                           "weight of the positive (1) targets, e.g. negatives / positives for rare positives "
                           "(Keras's class_weight {0: 1, 1: w})"),
                       Arg("label_smoothing", Float(min=0.0, max=1.0, max_open=True), 0.0,
                           "pull the 0/1 targets towards 0.5 by this much, as Keras's BinaryCrossentropy does"),
                       _REDUCTION),
                 task="binary", logits_of="sigmoid", needs_final=None)
def build_bce(args):
    import torch
    import torch.nn as nn

    class SmoothedBCEWithLogitsLoss(nn.BCEWithLogitsLoss):
        """Targets t become t * (1 - s) + s / 2 before the loss (Keras's label_smoothing for binary targets)."""

        def __init__(self, smoothing: float, **kwargs):
            super().__init__(**kwargs)
            self.smoothing = smoothing

        def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            return super().forward(logits, targets * (1 - self.smoothing) + self.smoothing / 2)

    weight = args.get("pos_weight")
    kwargs = {"pos_weight": torch.tensor([weight]) if weight else None, "reduction": args["reduction"]}
    smoothing = args.get("label_smoothing", 0.0)
    return SmoothedBCEWithLogitsLoss(smoothing, **kwargs) if smoothing else nn.BCEWithLogitsLoss(**kwargs)


@LOSSES.register("mse", help="mean squared error", aliases=("mean_squared_error", "MSELoss"),
                 args=(_REDUCTION,), task="regression", logits_of=None, needs_final=None)
def build_mse(args):
    import torch.nn as nn

    return nn.MSELoss(reduction=args["reduction"])


@LOSSES.register("mae", help="mean absolute error", aliases=("mean_absolute_error", "l1", "L1Loss"),
                 args=(_REDUCTION,), task="regression", logits_of=None, needs_final=None)
def build_mae(args):
    import torch.nn as nn

    return nn.L1Loss(reduction=args["reduction"])


@LOSSES.register("huber", help="squared error below delta, absolute error above", aliases=("HuberLoss",),
                 args=(Arg("delta", Float(min=0.0, min_open=True), 1.0, "where squared turns absolute"),
                       _REDUCTION), task="regression", logits_of=None, needs_final=None)
def build_huber(args):
    import torch.nn as nn

    return nn.HuberLoss(delta=args["delta"], reduction=args["reduction"])
