"""Seeded mutations of a good checkpoint's fields, for the checkpoint fuzz suite.

`mutate(state, index)` returns a copy of `state` (a dict as `torch.load` gives it) with one to
three of its fields damaged the way a hand edit, a foreign tool or an attacker would: a wrong
kind of value, NaN and infinities, zeros, negative and huge numbers, long lists, deep nesting,
a missing key, a tensor where plain data belongs. `python tests/fuzz/checkpoint_mutations.py N`
prints what case N does.
"""

from __future__ import annotations

import copy
import random
import sys
from typing import Any

# the fields of a checkpoint (dlcli.train.trainer.Trainer.state_dict) that every reader looks at
FIELDS = ["config", "normalization", "normalization.axis", "normalization.mean", "normalization.std",
          "class_names", "num_classes", "task", "history", "best", "samples", "feature_names", "epoch", "step",
          "batch_in_epoch", "format_version", "model", "config.model.input_shape", "config.model.layers",
          "config.data", "config.trainer", "config.name", "config.loss", "config.metrics", "data_fingerprint",
          "data_fingerprint.train", "data_fingerprint.test"]


def _deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def hostile_values(rng: random.Random) -> list:
    import torch

    return [None, True, 0, -1, 2**63, 10**30, 1e308, float("nan"), float("inf"), -0.0, "", "abc", "\x1b[31mred",
            "x" * 10_000, [], {}, [None], [float("nan")], [0.0], [-1.0], [1.0] * 1000, ["a", 1, None], {"a": 1},
            {1: "a"}, _deep(rng.choice([60, 3000])), torch.zeros(3), torch.tensor(float("nan")), b"bytes",
            (1, 2), [[1, 2], [3]], 99, rng.randint(-5, 5)]


def _set(state: dict, path: str, value: Any, delete: bool) -> None:
    *parents, last = path.split(".")
    for key in parents:
        if not isinstance(state, dict) or not isinstance(state.get(key), dict):
            return
        state = state[key]
    if not isinstance(state, dict):
        return
    if delete:
        state.pop(last, None)
    else:
        state[last] = value


def _weights(state: dict, rng: random.Random) -> str:
    """Damage one weight tensor: NaN, inf, another shape, another dtype."""
    import torch

    weights = state.get("model")
    tensors = sorted(name for name, value in weights.items() if isinstance(name, str)
                     and isinstance(value, torch.Tensor)) if isinstance(weights, dict) else []
    if not tensors:  # an earlier damage replaced them
        return "weights: none"
    name = rng.choice(tensors)
    tensor = weights[name]
    how = rng.choice(["nan", "inf", "shape", "dtype"])
    if how in ("nan", "inf") and tensor.is_floating_point() and tensor.numel():
        tensor = tensor.clone()
        tensor.view(-1)[rng.randrange(tensor.numel())] = float(how)
    elif how == "shape":
        tensor = torch.zeros(tensor.numel() + 1)
    else:
        tensor = tensor.to(torch.int64)
    weights[name] = tensor
    return f"weights {name}: {how}"


def _describe(value: Any) -> str:
    depth = 0
    while isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
        value, depth = value[0], depth + 1
    return f"a list nested {depth + 1} deep" if depth > 5 else f"{type(value).__name__} {repr(value)[:40]}"


def mutate(state: dict, index: int) -> tuple[dict, list[str]]:
    """A damaged copy of `state` and what was done to it, the same for the same `index`."""
    rng = random.Random(index)
    state = copy.deepcopy(state)
    done = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        if rng.random() < 0.15:
            done.append(_weights(state, rng))
            continue
        path = rng.choice(FIELDS)
        delete = rng.random() < 0.1
        value = rng.choice(hostile_values(rng))
        _set(state, path, value, delete)
        done.append(f"{path}: {'deleted' if delete else _describe(value)}")
    return state, done


if __name__ == "__main__":
    import torch  # noqa: F401

    print(mutate({"config": {"model": {}}, "model": {}}, int(sys.argv[1]))[1])
