"""Data sets, by name: the DATASETS registry (`dlcli.data.datasets`), filled with one
module per source (`dlcli.data.sources`) when this package is imported. Declarations
only (no torch): `load_dataset` runs a source's loader when data is really needed.

Every loader returns a `Splits` of tensors (see `dlcli.data._tensors`); the trainer holds
small data sets on the training device and batches by index. An image folder too large
for memory gives the files instead, which are streamed through DataLoader workers
(`dlcli.data.stream`).
"""

from __future__ import annotations

from dlcli.data import sources  # noqa: F401  (registers every data source)
from dlcli.data.datasets import DATASETS, check_data, load_dataset
from dlcli.data.sources.mnist import MNIST_DIR

__all__ = ["DATASETS", "MNIST_DIR", "check_data", "load_dataset"]
