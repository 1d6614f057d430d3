"""Targets as the loaders hand them over, shared by the sources that read them from files
(.npz arrays, CSV columns): class ids or values, checked, with the task they imply."""

from __future__ import annotations

import numpy as np
import torch

from dlcli.errors import DataError

# Class ids beyond this are no class of any model (a float64 cell holds integers exactly up to it);
# the model's output count bounds them further (dlcli.data.prepare), before anything per class is built.
MAX_CLASS_ID = 2 ** 53


def finish_targets(ys: dict[str, np.ndarray], task: str, where: dict[str, str]) -> tuple[str, dict, int | None]:
    """Numeric targets per split -> (task, {split: y tensor}, num_classes).

    task auto: integer (or bool) targets are class ids, and so are one-hot rows (N, C) of
    any type (Keras's categorical targets); other float targets are values.
    Class ids: int64 (N,), >= 0, num_classes = max + 1 over all splits (C for one-hot).
    Values: float32 (N, *target_shape); a flat (N,) becomes (N, 1) to match a 1-unit output.
    """
    one_hot_classes = 0
    if task != "regression":
        for split, y in ys.items():
            if _one_hot(y):
                one_hot_classes = max(one_hot_classes, y.shape[1])
                ys = {**ys, split: y.argmax(1).astype(np.int64)}
    train_y = ys["train"]
    if task == "auto":
        task = "classification" if train_y.dtype.kind in "biu" else "regression"
    if task == "regression":
        out = {}
        for split, y in ys.items():
            y = y.astype(np.float32)
            out[split] = torch.from_numpy(y.reshape(len(y), 1) if y.ndim == 1 else y)
        for split, t in out.items():
            if t.shape[1:] != out["train"].shape[1:]:
                raise DataError(f"{where[split]}: expected targets of shape {tuple(out['train'].shape[1:])} per "
                                f"sample as in {where['train']}, received {tuple(t.shape[1:])}")
        return task, out, None
    out = {}
    for split, y in ys.items():
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise DataError(f"{where[split]}: expected one class id per sample, shape (N,), or one-hot rows "
                            f"(N, classes), received targets of shape {y.shape} that are not one-hot; for several "
                            f"values per sample use task: regression")
        if y.dtype.kind == "f":
            fractional = np.flatnonzero(y != np.round(y))
            if len(fractional):
                i = int(fractional[0])
                raise DataError(f"{where[split]}: task classification expects integer class ids, received "
                                f"{y[i].item()} at sample {i}; use task: regression (or auto) for values")
        if y.dtype.kind == "b":
            y = y.astype(np.int64)
        if len(y) and y.max() > MAX_CLASS_ID:  # before int64 wraps it round (2**64 - 1 -> -1)
            i = int(np.argmax(y))
            raise DataError(f"{where[split]}: expected class ids from 0 to {MAX_CLASS_ID}, received "
                            f"{_exact(y[i])} at sample {i}")
        if len(y) and y.min() < 0:
            i = int(np.argmin(y))
            raise DataError(f"{where[split]}: expected class ids >= 0, received {y[i]} at sample {i}")
        out[split] = torch.from_numpy(y.astype(np.int64))
    num_classes = max(int(max(int(t.max()) for t in out.values() if len(t))) + 1, one_hot_classes)
    return task, out, num_classes


def _exact(value) -> str:
    """A label as stored: 18446744073709551615, not 1.8446744073709552e+19 or -1."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _one_hot(y: np.ndarray) -> bool:
    """(N, C) rows of zeros with a single one each, C >= 2."""
    if y.ndim != 2 or y.shape[1] < 2 or len(y) == 0:
        return False
    ones = y == 1
    return bool(((y == 0) | ones).all() and (ones.sum(1) == 1).all())


def check_finite(array: np.ndarray, what: str, where: str) -> None:
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise DataError(f"{where}: expected finite numbers in {what}, received {array[index]} at "
                        f"{what}[{', '.join(map(str, index))}]")
