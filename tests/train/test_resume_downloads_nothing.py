"""Issue 15 #10: a resumed run's data come from its checkpoint's config, which may come from
anyone: a torchvision data set with `download: true` and a `root` of the sender's choosing is
never downloaded there, and no folder is created; the message says what is missing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from dlcli.errors import DataError
from dlcli.train import resume, train


def _point_at_torchvision(run_dir: Path, root: Path) -> None:
    """The run's config.yaml and checkpoints, rewritten to read Fashion-MNIST from `root`, downloading."""
    data = {"dataset": "fashion_mnist", "root": str(root), "download": True}
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["data"].update(data)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    for path in (run_dir / "checkpoints").glob("*.pt"):
        state = torch.load(path, weights_only=True)
        state["config"]["data"].update(data)
        torch.save(state, path)


def test_a_resume_never_downloads_nor_creates_the_checkpoints_data_root(tiny_cfg, tmp_path):
    run_dir = Path(train(tiny_cfg("trainer.epochs=1"))["run_dir"])
    root = tmp_path / "chosen" / "by" / "the" / "sender"
    _point_at_torchvision(run_dir, root)
    with pytest.raises(DataError, match=rf"fashion_mnist: the data set is not in {root} \(missing .*FashionMNIST.*\); "
                                        r"commands that read a checkpoint \(evaluate, train --resume\) never download"):
        resume(run_dir, ["trainer.epochs=2"])
    assert not (tmp_path / "chosen").exists()
