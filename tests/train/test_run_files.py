"""The files a training run writes have the mode any file the user creates gets."""

import os
import stat
from pathlib import Path

from dlcli.train import train


def test_every_file_of_a_run_has_the_umask_mode(tiny_cfg):
    old = os.umask(0o027)
    try:
        run_dir = Path(train(tiny_cfg("trainer.epochs=1"))["run_dir"])
    finally:
        os.umask(old)
    files = {str(p.relative_to(run_dir)): stat.S_IMODE(p.stat().st_mode) for p in run_dir.rglob("*") if p.is_file()}
    # config, summary, checkpoints... are written atomically (a temporary file renamed), metrics.jsonl by appending
    assert sorted(files) == ["checkpoints/best.pt", "checkpoints/last.pt", "config.yaml", "environment.json",
                             "metrics.csv", "metrics.jsonl", "summary.json"]
    assert files == dict.fromkeys(files, 0o640)
