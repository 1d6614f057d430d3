"""dlcli.losses, dlcli.optim, dlcli.metrics: every registered entry builds and works,
parametrized over the registries."""

from __future__ import annotations

import math

import pytest
import torch

from dlcli.losses import LOSSES
from dlcli.metrics import METRICS
from dlcli.optim import OPTIMIZERS, SCHEDULERS
from tests.samples import sample_args

BATCH, CLASSES = 6, 4


def _names(registry):
    return pytest.mark.parametrize("name", registry.names())


def _aliases(registry):
    pairs = [(alias, e.name) for e in registry for alias in e.aliases]
    return pytest.mark.parametrize("alias, name", pairs, ids=[a for a, _ in pairs])


def outputs_and_targets(task: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Model outputs and targets of the kind a loss or metric of `task` takes."""
    torch.manual_seed(0)
    if task == "classification":
        return torch.randn(BATCH, CLASSES, requires_grad=True), torch.randint(0, CLASSES, (BATCH,))
    if task == "binary":
        return torch.randn(BATCH, 1, requires_grad=True), torch.randint(0, 2, (BATCH, 1)).float()
    if task == "regression":
        return torch.randn(BATCH, 3, requires_grad=True), torch.randn(BATCH, 3)
    raise AssertionError(f"unknown task {task!r}: teach this test")


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))


def one_backward(model: torch.nn.Module) -> None:
    model.zero_grad()
    model(torch.randn(5, 3)).pow(2).mean().backward()


# --- losses ---------------------------------------------------------------------------------------

@_names(LOSSES)
def test_every_loss_computes_on_targets_of_its_task(name):
    entry = LOSSES.get(name)
    assert entry.meta["task"] in ("classification", "binary", "regression")
    assert "logits_of" in entry.meta and "needs_final" in entry.meta
    loss_fn = entry.build(sample_args(entry))
    outputs, targets = outputs_and_targets(entry.meta["task"])
    loss = loss_fn(outputs, targets)
    assert loss.shape == () and torch.isfinite(loss)
    loss.backward()
    assert outputs.grad is not None and torch.isfinite(outputs.grad).all()


@_aliases(LOSSES)
def test_loss_aliases_resolve(alias, name):
    assert LOSSES.get(alias) is LOSSES.get(name)


def test_cross_entropy_takes_logits():
    logits, targets = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([0])
    loss = LOSSES.get("sparse_categorical_crossentropy").build(sample_args(LOSSES.get("cross_entropy")))
    expected = -torch.log_softmax(logits, dim=1)[0, 0]
    torch.testing.assert_close(loss(logits, targets), expected)


def test_class_weights_make_the_weighted_mean_of_keras_class_weight():
    from dlcli.registry import check_args

    entry = LOSSES.get("cross_entropy")
    args, problems = check_args(entry, {"class_weights": [1.0, 4.0, 0.5]})
    assert not problems
    logits, targets = torch.randn(6, 3), torch.tensor([0, 1, 1, 2, 0, 1])
    per_sample = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    weights = torch.tensor([1.0, 4.0, 0.5])[targets]
    torch.testing.assert_close(entry.build(args)(logits, targets), (weights * per_sample).sum() / weights.sum())
    for bad in ([1.0], [0.0, 0.0], [1.0, -1.0], "heavy"):
        assert check_args(entry, {"class_weights": bad})[1], bad


def test_pos_weight_weights_the_positive_targets():
    from dlcli.registry import check_args

    entry = LOSSES.get("bce_with_logits")
    args, problems = check_args(entry, {"pos_weight": 3.0})
    assert not problems
    logits, targets = torch.randn(5, 1), torch.tensor([[1.0], [0.0], [1.0], [0.0], [0.0]])
    p = torch.sigmoid(logits)
    expected = -(3.0 * targets * torch.log(p) + (1 - targets) * torch.log(1 - p)).mean()
    torch.testing.assert_close(entry.build(args)(logits, targets), expected)


def test_binary_label_smoothing_is_keras_s():
    from dlcli.registry import check_args

    entry = LOSSES.get("bce_with_logits")
    args, problems = check_args(entry, {"label_smoothing": 0.2})
    assert not problems
    logits, targets = torch.randn(5, 2), torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    smoothed = targets * 0.8 + 0.1  # Keras: y * (1 - s) + 0.5 * s
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, smoothed)
    torch.testing.assert_close(entry.build(args)(logits, targets), expected)
    assert type(entry.build(check_args(entry, {})[0])) is torch.nn.BCEWithLogitsLoss  # none: the plain loss


def test_loss_reduction_sum():
    entry = LOSSES.get("mse")
    loss = entry.build(sample_args(entry, {"reduction": "sum"}))
    assert loss(torch.ones(2, 2), torch.zeros(2, 2)).item() == 4.0


# --- optimizers --------------------------------------------------------------------------------------

@_names(OPTIMIZERS)
def test_every_optimizer_builds_and_takes_a_step(name):
    entry = OPTIMIZERS.get(name)
    model = tiny_model()
    optimizer = entry.build(sample_args(entry), model.parameters())
    assert isinstance(optimizer, torch.optim.Optimizer)
    before = [p.detach().clone() for p in model.parameters()]
    one_backward(model)
    optimizer.step()
    after = list(model.parameters())
    assert any(not torch.equal(b, a) for b, a in zip(before, after)), f"{name} did not move the parameters"
    assert all(torch.isfinite(p).all() for p in after)


@_names(OPTIMIZERS)
def test_every_optimizer_builder_takes_the_implementation_keywords_its_meta_declares(name):
    """meta["fused"] / meta["capturable"] say which keywords build_optimizer passes: a builder
    takes exactly those, so none is accepted and ignored."""
    import inspect

    entry = OPTIMIZERS.get(name)
    keywords = set(inspect.signature(entry.build).parameters) - {"args", "params"}
    assert {entry.meta["fused"], entry.meta["capturable"]} <= {True, False}
    assert keywords == {k for k in ("fused", "capturable") if entry.meta[k]}


@_names(OPTIMIZERS)
def test_build_optimizer_builds_every_optimizer_on_the_cpu(name):
    from dlcli.optim import build_optimizer

    spec = {"type": name, **sample_args(OPTIMIZERS.get(name))}
    optimizer = build_optimizer({"optimizer": spec}, tiny_model().parameters(), torch.device("cpu"))
    assert not any(group.get("fused") or group.get("capturable") for group in optimizer.param_groups)


@_names(OPTIMIZERS)
def test_every_optimizer_uses_the_configured_learning_rate(name):
    entry = OPTIMIZERS.get(name)
    if entry.arg("lr") is None:
        pytest.skip(f"{name} has no lr")
    optimizer = entry.build(sample_args(entry, {"lr": 0.123}), tiny_model().parameters())
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.123)


@_aliases(OPTIMIZERS)
def test_optimizer_aliases_resolve(alias, name):
    assert OPTIMIZERS.get(alias) is OPTIMIZERS.get(name)


def test_rmsprop_rho_is_torch_alpha():
    entry = OPTIMIZERS.get("rmsprop")
    optimizer = entry.build(sample_args(entry, {"rho": 0.5}), tiny_model().parameters())
    assert optimizer.param_groups[0]["alpha"] == 0.5


@pytest.mark.parametrize("momentum, dampening, nesterov", [
    (0.0, 0.0, True), (0.9, 0.1, True), (0.0, 0.1, True), (0.9, 0.0, True), (0.0, 0.0, False), (0.9, 0.1, False)])
def test_sgd_settings_that_validate_are_the_ones_torch_builds(momentum, dampening, nesterov):
    from dlcli.registry import check_args

    entry = OPTIMIZERS.get("sgd")
    args, problems = check_args(entry, {"momentum": momentum, "dampening": dampening, "nesterov": nesterov})
    try:
        entry.build(args, tiny_model().parameters())
        built = True
    except ValueError:
        built = False
    assert (problems == []) == built, problems


# --- schedulers ------------------------------------------------------------------------------------

@_names(SCHEDULERS)
def test_every_scheduler_builds_and_steps(name):
    entry = SCHEDULERS.get(name)
    assert entry.meta["interval"] in ("epoch", "step")
    model = tiny_model()
    optimizer_entry = OPTIMIZERS.get("sgd")
    optimizer = optimizer_entry.build(sample_args(optimizer_entry, {"lr": 0.1}), model.parameters())
    watching = {"mode": "min"} if entry.meta.get("needs_metric") else {}
    scheduler = entry.build(sample_args(entry), optimizer, 4, 3, **watching)  # 4 steps per epoch, 3 epochs
    lrs = []
    for step in range(6):
        one_backward(model)
        optimizer.step()
        if entry.meta.get("needs_metric"):
            scheduler.step(1.0)
        else:
            scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    assert all(math.isfinite(lr) and lr >= 0 for lr in lrs)


@_names(SCHEDULERS)
def test_every_scheduler_takes_only_its_declared_args_and_mode_when_it_watches_a_metric(name):
    """Declared args are exactly what a builder reads: what the trainer adds is a keyword."""
    import inspect

    entry = SCHEDULERS.get(name)
    keywords = set(inspect.signature(entry.build).parameters) - {"args", "optimizer", "steps_per_epoch", "epochs"}
    assert keywords == ({"mode"} if entry.meta.get("needs_metric") else set())


@pytest.mark.parametrize("mode", ["min", "max"])
def test_reduce_on_plateau_takes_mode_as_a_keyword(mode):
    entry = SCHEDULERS.get("reduce_on_plateau")
    optimizer = torch.optim.SGD(tiny_model().parameters(), lr=1.0)
    assert entry.build(sample_args(entry), optimizer, 4, 3, mode=mode).mode == mode


@_aliases(SCHEDULERS)
def test_scheduler_aliases_resolve(alias, name):
    assert SCHEDULERS.get(alias) is SCHEDULERS.get(name)


def test_cosine_warms_up_then_decays_to_eta_min():
    entry = SCHEDULERS.get("cosine")
    optimizer = torch.optim.SGD(tiny_model().parameters(), lr=1.0)
    scheduler = entry.build(sample_args(entry, {"warmup_steps": 2, "eta_min": 0.1}), optimizer, 5, 2)
    lrs = [optimizer.param_groups[0]["lr"]]
    for _ in range(10):
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    assert lrs[:3] == pytest.approx([0.5, 1.0, 1.0])
    assert lrs[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:]))


# --- metrics -----------------------------------------------------------------------------------------

@_names(METRICS)
def test_every_metric_runs_on_outputs_of_its_task(name):
    entry = METRICS.get(name)
    assert entry.meta["mode"] in ("min", "max")
    outputs, targets = outputs_and_targets(entry.meta["task"])
    value = entry.build()(outputs.detach(), targets)
    assert isinstance(value, torch.Tensor) and value.shape == ()
    assert 0 <= value.item() and math.isfinite(value.item())
    if entry.meta["mode"] == "max":  # fractions: a per-batch sum of at most one per sample
        assert value.item() <= BATCH


@_aliases(METRICS)
def test_metric_aliases_resolve(alias, name):
    assert METRICS.get(alias) is METRICS.get(name)


def test_accuracy_counts_correct_samples():
    outputs = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    accuracy = METRICS.get("accuracy").build()
    assert accuracy(outputs, torch.tensor([1, 0, 0])).item() == 2
    assert accuracy(outputs, torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])).item() == 2  # one-hot


def test_top_k_accuracy():
    outputs = torch.tensor([[0.5, 0.3, 0.2, 0.0], [0.0, 0.1, 0.2, 0.7]])
    assert METRICS.get("top3_accuracy").build()(outputs, torch.tensor([2, 0])).item() == 1
    assert METRICS.get("top5_accuracy").build()(outputs, torch.tensor([3, 0])).item() == 2  # k > classes: all


def test_binary_accuracy_uses_logit_sign():
    correct = METRICS.get("binary_accuracy").build()
    assert correct(torch.tensor([2.0, -1.0, 0.5]), torch.tensor([1.0, 0.0, 0.0])).item() == 2


def test_regression_metrics_sum_per_sample_means():
    outputs, targets = torch.tensor([[1.0, 3.0], [0.0, 0.0]]), torch.zeros(2, 2)
    assert METRICS.get("mse").build()(outputs, targets).item() == 5.0
    assert METRICS.get("mae").build()(outputs, targets).item() == 2.0
