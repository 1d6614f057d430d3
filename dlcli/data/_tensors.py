"""What every data loader returns: whole splits as tensors."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Split:
    """One split: x is (N, *sample_shape) (uint8 images, float32 features or int64 ids);
    y is (N,) int64 class ids for classification, (N, *target_shape) float32 otherwise."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass
class Splits:
    train: Split
    test: Split | None = None
    val: Split | None = None  # a named validation split, where the source has one
    task: str = "classification"  # or "regression"
    num_classes: int | None = None
    class_names: list[str] | None = None
    source: str = ""  # where the data came from, for messages and the run record
    meta: dict = field(default_factory=dict)
