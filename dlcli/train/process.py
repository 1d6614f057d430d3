"""What a run sets for its whole process, made by the run set-up (dlcli.train.run) before the
trainer is built, never by a constructor: every random generator seeded, trainer.threads CPU
threads, cuDNN's flags. And the generators' state, which a checkpoint saves and a resume
puts back."""

from __future__ import annotations

import random

import numpy as np
import torch


def set_process_state(cfg: dict, device: torch.device) -> None:
    """Seed every generator with the config's seed; trainer.threads CPU threads (unset: torch's
    choice); on a GPU, cuDNN's algorithms deterministic as trainer.deterministic asks, and none
    picked by timing (benchmark mode would choose by the machine's load)."""
    t = cfg["trainer"]
    seed_everything(cfg["seed"])
    if t["threads"]:
        torch.set_num_threads(t["threads"])
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = t["deterministic"]
        torch.backends.cudnn.benchmark = False


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    np_state = np.random.get_state()
    return {"python": random.getstate(),
            "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict) -> None:
    random.setstate(_tuples(state["python"]))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value
