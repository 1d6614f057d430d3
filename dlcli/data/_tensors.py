"""What every data loader returns: whole splits as tensors, or (image folders too
large for memory) the files to stream."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class Split:
    """One split: x is (N, *sample_shape) (uint8 images, float32 features or int64 ids);
    y is (N,) int64 class ids for classification, (N, *target_shape) float32 otherwise."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def sample_shape(self) -> tuple:
        return tuple(self.x.shape[1:])

    def take(self, index) -> Split:
        """The samples at `index` (a slice or an index tensor)."""
        return Split(self.x[index], self.y[index])


@dataclass
class ImageFiles:
    """A split of image files, decoded per batch while streaming: paths and labels, no pixels.

    files: (N,) numpy strings (one array, not N Python objects, which DataLoader workers
    would copy on read); y: int64 (N,); shape: (C, H, W) of a decoded uint8 sample."""

    files: np.ndarray
    y: torch.Tensor
    shape: tuple

    def __len__(self) -> int:
        return len(self.files)

    @property
    def sample_shape(self) -> tuple:
        return tuple(self.shape)

    def take(self, index) -> ImageFiles:
        """The samples at `index` (a slice or an index tensor)."""
        files = self.files[index if isinstance(index, slice) else index.numpy()]
        return ImageFiles(files, self.y[index], self.shape)


@dataclass
class Splits:
    train: Split | ImageFiles
    test: Split | ImageFiles | None = None
    val: Split | None = None  # a named validation split, where the source has one
    task: str = "classification"  # or "regression"
    num_classes: int | None = None
    class_names: list[str] | None = None
    source: str = ""  # where the data came from, for messages and the run record
    meta: dict = field(default_factory=dict)


def model_input(xb: torch.Tensor, scale: torch.Tensor | None, shift: torch.Tensor | None,
                view: tuple) -> torch.Tensor:
    """Raw samples (B, *stored shape) -> normalized model input (B, *view)."""
    if scale is not None:
        xb = torch.addcmul(shift, xb.float(), scale)  # x * scale + shift
    elif xb.dtype == torch.uint8:
        xb = xb.float()
    return xb.reshape(xb.shape[0], *view)
