"""Image folders too large for memory: the split holds file paths and labels, and
DataLoader workers decode each batch (with the in-memory loader's own decoder) while
the model trains on the previous ones.

The trainer announces an epoch with `plan(perm, batch_size, batches)`: the batches of
its seeded permutation, from the batch a resume starts at. `batch(idx)` then hands
over the next decoded batch, checked to be the one asked for, so a streamed run sees
the same samples in the same order as an in-memory one. Evaluation streams in order.

When to stream (`data.in_memory`): true holds the images as one uint8 tensor, false
streams, auto holds them while that tensor takes at most IN_MEMORY_FRACTION of the
available memory (`dlcli.data.memory`).
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import numpy as np
import torch

from dlcli.data._tensors import ImageFiles, model_input
from dlcli.data.images import decode_image
from dlcli.errors import DataError, shorten

# Normalization statistics of a streamed training set: the per-channel mean and std of this
# many training images (all of them when there are fewer), a sample seeded by `seed`.
NORMALIZATION_SAMPLE = 10_000
STATS_BATCH = 256  # images per batch while reading the normalization sample
PREFETCH_FACTOR = 4  # batches each worker decodes ahead
# A worker that delivers nothing for this long is stuck (a dead network drive...): the run
# stops with a message instead of waiting forever. A worker that dies is noticed at once.
WORKER_TIMEOUT_S = 300
MAX_DEFAULT_WORKERS = 8
WORKER_DIED = "DataLoader worker (pid"  # how PyTorch's reports of a dead worker begin


def default_workers() -> int:
    """DataLoader worker processes when data.workers is not set: one per CPU this process
    may use, less one for the training loop, at least 1 and at most MAX_DEFAULT_WORKERS."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_WORKERS, cpus - 1))


class _DecodeBatches(torch.utils.data.Dataset):
    """What a worker runs: the sample indices of one batch -> their decoded images.
    A file that cannot be decoded comes back as a message (not a worker traceback)."""

    def __init__(self, files: np.ndarray, shape: tuple):
        self.files, self.shape = files, tuple(shape)

    def __getitem__(self, idx: np.ndarray) -> dict:
        channels, height, width = self.shape
        x = np.empty((len(idx), height, width, channels), dtype=np.uint8)  # (B, H, W, C), as PIL gives it
        for row, i in enumerate(idx.tolist()):
            try:
                x[row] = decode_image(self.files[i], self.shape)
            except DataError as err:
                return {"idx": idx, "error": str(err)}
        return {"idx": idx, "x": torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()}  # (B, C, H, W)

    def __len__(self) -> int:
        return len(self.files)


def read_batches(files: ImageFiles, batches: list[np.ndarray], workers: int,
                 pin_memory: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(indices, uint8 (B, C, H, W) images) for each batch of sample indices, in order,
    decoded by `workers` processes (0: in this one). Closing the generator stops them."""
    loader = torch.utils.data.DataLoader(
        _DecodeBatches(files.files, files.shape), batch_size=None, sampler=batches, num_workers=workers,
        pin_memory=pin_memory, timeout=WORKER_TIMEOUT_S if workers else 0,
        prefetch_factor=PREFETCH_FACTOR if workers else None,
        generator=torch.Generator())  # its own: the workers' seeds must not draw on the training's random numbers
    pending = iter(loader)
    for _ in range(len(batches)):
        try:
            item = next(pending)
        except RuntimeError as err:  # a worker was killed (out of memory?), exited or timed out
            raise _worker_failed(files, err) from None
        if "error" in item:
            raise DataError(item["error"])
        yield item["idx"], item["x"]


def _worker_failed(files: ImageFiles, err: RuntimeError) -> DataError:
    reason = shorten(" ".join(str(err).split()), 300)
    return DataError(f"reading the images of {files.files[0]} and the rest of its split stopped: a "
                     f"DataLoader worker failed ({reason}); HINT: data.workers=0 decodes in the "
                     f"training process, which shows the error the worker met")


@contextlib.contextmanager
def worker_deaths_reported(files: ImageFiles):
    """PyTorch reports a DataLoader worker that dies from its SIGCHLD handler, as a
    RuntimeError raised wherever this process is at that moment (in the model's forward,
    say), not only in a batch read: within this block it becomes the DataError of `files`."""
    try:
        yield
    except RuntimeError as err:
        if not str(err).startswith(WORKER_DIED):
            raise
        raise _worker_failed(files, err) from None


def channel_histograms(files: ImageFiles, seed: int, workers: int) -> torch.Tensor:
    """(C, 256) int64: how often each uint8 value occurs per channel in a seeded sample of
    NORMALIZATION_SAMPLE training images (all of them when there are fewer). Sums of
    values and squares taken from counts are exact, as the in-memory statistics are."""
    n = len(files)
    if n <= NORMALIZATION_SAMPLE:
        chosen = np.arange(n)
    else:
        generator = torch.Generator().manual_seed(seed)
        chosen = np.sort(torch.randperm(n, generator=generator)[:NORMALIZATION_SAMPLE].numpy())
    batches = [chosen[start:start + STATS_BATCH] for start in range(0, len(chosen), STATS_BATCH)]
    channels = files.shape[0]
    counts = torch.zeros(channels, 256, dtype=torch.int64)
    with worker_deaths_reported(files):
        for _, xb in read_batches(files, batches, workers):
            for c in range(channels):
                counts[c] += torch.bincount(xb[:, c].reshape(-1), minlength=256)
    return counts


class StreamSplit:
    """A split decoded from its files batch by batch; the interface of `DeviceSplit`."""

    streamed = True
    home = torch.device("cpu")  # where batch indices live

    def __init__(self, files: ImageFiles, y: torch.Tensor, scale: torch.Tensor | None,
                 shift: torch.Tensor | None, view: tuple, device: torch.device, workers: int):
        self.files, self.y = files, y  # y: (N, ...) targets as the loss wants them, on the CPU
        self.scale, self.shift, self.view, self.device, self.workers = scale, shift, tuple(view), device, workers
        self._planned: Iterator | None = None

    def __len__(self) -> int:
        return len(self.files)

    def plan(self, perm: torch.Tensor, batch_size: int, batches: range) -> None:
        """The coming epoch: these batches of `perm`, in order; the workers start decoding."""
        self.close()
        order = perm.cpu().numpy()
        self._planned = read_batches(self.files, [order[b * batch_size:(b + 1) * batch_size] for b in batches],
                                     self.workers, pin_memory=self.device.type == "cuda")

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The next planned batch, which must be the samples `idx`."""
        planned = next(self._planned, None) if self._planned is not None else None
        if planned is None or not torch.equal(planned[0], idx.cpu()):
            raise RuntimeError("a streamed split was asked for a batch outside the planned epoch; the trainer "
                               "must call plan(perm, batch_size, batches) with the batches it then asks for")
        return self._to_device(planned[0], planned[1])

    def slices(self, batch_size: int):
        """Consecutive batches in order (evaluation)."""
        n = len(self)
        batches = [np.arange(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
        for idx, xb in read_batches(self.files, batches, self.workers, pin_memory=self.device.type == "cuda"):
            yield self._to_device(idx, xb)

    def worker_failures(self):
        """The block in which this split's workers run: one that dies stops it with a DataError."""
        return worker_deaths_reported(self.files)

    def close(self) -> None:
        """Stop the workers of a planned epoch (an interrupted run leaves one unfinished)."""
        if self._planned is not None:
            self._planned.close()
            self._planned = None

    def _to_device(self, idx: torch.Tensor, xb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        yb = self.y[idx]
        if self.device.type != "cpu":
            xb, yb = xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True)
        return model_input(xb, self.scale, self.shift, self.view), yb

