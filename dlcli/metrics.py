"""Metrics, computed as per-batch sums on the training device and read once per
epoch (no host sync inside the step). `build(args)` returns
`fn(outputs, targets) -> 0-d tensor` summed over the batch."""

from __future__ import annotations

from dlcli.registry import Registry

METRICS = Registry("metric", meta_keys=("mode", "task"))


def _topk(k: int):
    def build(args=None):
        def topk_correct(outputs, targets):
            if targets.dim() > 1:  # one-hot / soft targets
                targets = targets.argmax(dim=1)
            if k == 1:
                return (outputs.argmax(dim=1) == targets).sum()
            k_ = min(k, outputs.shape[1])
            top = outputs.topk(k_, dim=1).indices  # (B, k)
            return (top == targets.unsqueeze(1)).any(dim=1).sum()

        return topk_correct

    return build


METRICS.register("accuracy", help="fraction of samples whose top class is right",
                 aliases=("acc", "sparse_categorical_accuracy", "categorical_accuracy"),
                 task="classification", mode="max")(_topk(1))
METRICS.register("top3_accuracy", help="fraction whose true class is in the top 3",
                 task="classification", mode="max")(_topk(3))
METRICS.register("top5_accuracy", help="fraction whose true class is in the top 5",
                 aliases=("top_k_accuracy", "sparse_top_k_categorical_accuracy"),
                 task="classification", mode="max")(_topk(5))


@METRICS.register("binary_accuracy", help="fraction of 0/1 labels predicted right (logit > 0)",
                  task="binary", mode="max")
def build_binary_accuracy(args=None):
    def correct(outputs, targets):
        return ((outputs > 0).to(targets.dtype) == targets).float().mean(dim=tuple(range(1, targets.dim()))).sum() \
            if targets.dim() > 1 else ((outputs.reshape(-1) > 0).to(targets.dtype) == targets).sum()

    return correct


@METRICS.register("mse", help="mean squared error", aliases=("mean_squared_error",), task="regression", mode="min")
def build_mse_metric(args=None):
    def sq(outputs, targets):
        diff = (outputs.reshape(targets.shape) - targets).float()
        return diff.pow(2).reshape(diff.shape[0], -1).mean(dim=1).sum()

    return sq


@METRICS.register("mae", help="mean absolute error", aliases=("mean_absolute_error",), task="regression", mode="min")
def build_mae_metric(args=None):
    def ab(outputs, targets):
        diff = (outputs.reshape(targets.shape) - targets).float()
        return diff.abs().reshape(diff.shape[0], -1).mean(dim=1).sum()

    return ab
