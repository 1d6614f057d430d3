"""dlcli.train.callbacks: when early stopping stops, by hand arithmetic over a metric's history."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import pytest

from dlcli.train.callbacks import EarlyStopping
from dlcli.train.trainer import Trainer


def _stop_reason(values: list[float], mode: str, min_delta: float, patience: int = 2) -> str | None:
    """EarlyStopping over an epoch history of `values`, judged by the trainer's own rule of
    improvement (Trainer.improved) in `mode`."""
    monitor = "val_accuracy" if mode == "max" else "val_loss"
    trainer = SimpleNamespace(mode=mode, monitor=monitor, history=[{monitor: v} for v in values], stop_reason=None)
    trainer.improved = functools.partial(Trainer.improved, trainer)
    EarlyStopping(patience, min_delta).check(trainer)
    return trainer.stop_reason


@pytest.mark.parametrize("mode, values, stops", [
    # max: an epoch improves when it beats the best by more than min_delta 0.01
    ("max", [0.50, 0.505, 0.508], True),  # +0.005, +0.008: less than 0.01, twice
    ("max", [0.50, 0.52, 0.535], False),  # +0.02, +0.015: each an improvement
    ("max", [0.50, 0.49, 0.515], False),  # a worse epoch, then +0.015 over the best
    ("max", [0.50, 0.49, 0.48], True),
    # min: an epoch improves when it falls below the best by more than min_delta 0.01
    ("min", [1.00, 0.995, 0.992], True),
    ("min", [1.00, 0.98, 0.965], False),
    ("min", [1.00, 1.01, 0.985], False),
    ("min", [1.00, 1.01, 1.02], True),
])
def test_min_delta_counts_in_the_direction_the_metric_improves(mode, values, stops):
    reason = _stop_reason(values, mode, min_delta=0.01)
    assert (reason is not None) == stops, reason
    if stops:
        assert reason == f"early stopping: val_{'accuracy' if mode == 'max' else 'loss'} did not improve for 2 " \
                         f"epochs (patience 2)"


def test_without_min_delta_any_gain_is_an_improvement():
    assert _stop_reason([0.5, 0.5001, 0.5002], "max", min_delta=0.0) is None
    assert _stop_reason([0.5, 0.5, 0.5], "max", min_delta=0.0) is not None  # equal is no gain
