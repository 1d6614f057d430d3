import pytest

from dlcli.config import config_from_text

TINY = """
name: tiny
seed: 3
model:
  input_shape: [1, 28, 28]
  layers:
    - conv2d: {filters: 4, kernel_size: 3, activation: relu}
    - maxpool2d: 2
    - dropout: 0.2
    - flatten
    - dense: {units: 16, activation: relu}
    - batchnorm
    - dense: 10
data: {dataset: mnist, batch_size: 32, subset: 320, test_subset: 200, val_split: 0.25}
optimizer: {type: adam, lr: 3e-3}
scheduler: {type: cosine, warmup_steps: 3}
trainer: {epochs: 4, device: cpu, progress: none}
"""


@pytest.fixture
def tiny_cfg(tmp_path):
    """A small MNIST config (dropout, batchnorm, val split, scheduler) writing under tmp_path."""

    def make(*overrides):
        return config_from_text(TINY, "tiny.yaml", [f"trainer.out_dir={tmp_path / 'runs'}", *overrides])

    return make
