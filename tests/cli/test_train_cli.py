"""The summary `dlcli train` prints when a run ends."""

import io

import pytest
from rich.console import Console

from dlcli.cli import train as train_cli


@pytest.mark.parametrize("epochs, said", [(1, "trained 1 epoch in 2.5s"), (3, "trained 3 epochs in 2.5s")])
def test_the_closing_line_counts_epochs(monkeypatch, epochs, said):
    out = io.StringIO()
    monkeypatch.setattr(train_cli, "console", Console(file=out, width=200))
    train_cli.report({"epochs": epochs, "seconds": 2.46, "run_dir": "runs/x/1",
                      "best": {"epoch": 1, "metric": "val_loss", "value": 0.25}, "test": {"accuracy": 0.5}, "test_epoch": 1})
    assert out.getvalue().splitlines() == ["best epoch 1: val_loss 0.2500",
                                           "test (epoch 1 weights): test_accuracy 0.5000",
                                           f"{said}; wrote runs/x/1"]
