"""dlcli.memory: what is available (ulimit included), and the training footprint's parts
checked against torch's own optimizers and by hand."""

from __future__ import annotations

import math
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dlcli import memory
from dlcli.errors import DlcliError
from dlcli.model import build_meta_model
from dlcli.optim import OPTIMIZERS, build_optimizer
from tests.samples import config_from_text, sample_args

REPO = Path(__file__).resolve().parents[1]


def test_available_memory_is_capped_by_ulimit_v():
    """`ulimit -v` (RLIMIT_AS) is how users and tests hold a process to some memory: what it
    leaves, not the machine's free memory, is available."""
    limit = 1 << 30
    code = "from dlcli.memory import available_memory; print(available_memory())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)},
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
    assert done.returncode == 0, done.stderr
    available = int(done.stdout)
    assert 0 < available < limit  # the limit less the interpreter's own address space


def test_available_memory_without_a_limit_is_the_machines():
    assert resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY  # as the suite runs
    available = memory.available_memory()
    assert available is None or available > 0


VARIANTS = {"adam": [{}, {"amsgrad": True}], "adamw": [{}, {"amsgrad": True}],
            "sgd": [{}, {"momentum": 0.9}], "rmsprop": [{}, {"momentum": 0.9, "centered": True}, {"centered": True}],
            "adagrad": [{}]}


def test_every_optimizer_is_in_the_variants():
    assert sorted(VARIANTS) == sorted(entry.name for entry in OPTIMIZERS)


@pytest.mark.parametrize("name,given", [(name, given) for name, variants in VARIANTS.items() for given in variants])
def test_optimizer_slots_are_what_torch_keeps(name, given):
    """The values per parameter an optimizer declares are the parameter-sized tensors torch's
    optimizer holds after a step."""
    args = sample_args(OPTIMIZERS.get(name), given)
    layer = torch.nn.Linear(3, 5)
    optimizer = build_optimizer({"optimizer": {"type": name, **args}}, layer.parameters(), torch.device("cpu"))
    layer(torch.ones(2, 3)).sum().backward()
    optimizer.step()
    kept = [t for state in optimizer.state.values() for t in state.values()
            if isinstance(t, torch.Tensor) and t.shape == layer.weight.shape]
    assert memory.optimizer_slots({"type": name, **args}) == len(kept)


MLP = """
model:
  input_shape: [1, 28, 28]
  layers: [flatten, {dense: {units: 100, activation: relu}}, {dense: 10}]
data: {dataset: mnist, batch_size: 8}
optimizer: {type: sgd, momentum: 0.9}
trainer: {device: cpu}
"""


def test_training_footprint_by_hand():
    cfg = config_from_text(MLP)
    footprint = memory.training_footprint(cfg, build_meta_model(cfg))
    params = 784 * 100 + 100 + 100 * 10 + 10
    assert footprint.weights == footprint.gradients == params * 4
    assert footprint.optimizer_state == params * 4  # momentum: one value per parameter
    values = 784 + 784 + 100 + 10  # the input, then each layer's output
    assert footprint.activations == 2 * values * 8 * 4
    assert footprint.total == 3 * params * 4 + footprint.activations


def test_training_beyond_memory_is_refused_with_the_figures(monkeypatch):
    cfg = config_from_text(MLP)
    model = build_meta_model(cfg)
    need = memory.training_footprint(cfg, model).total
    monkeypatch.setattr(memory, "available_memory", lambda: math.ceil(need * memory.MARGIN))
    memory.refuse_training_beyond_memory(cfg, model, torch.device("cpu"))  # fits, with the margin
    monkeypatch.setattr(memory, "available_memory", lambda: need)
    with pytest.raises(DlcliError, match=r"^model: training needs about 1\.0 MiB \(weights 310\.6 KiB, gradients "
                                         r"310\.6 KiB, optimizer state 310\.6 KiB, activations for a batch of 8: "
                                         r"104\.9 KiB\); 1\.0 MiB of memory is available\. HINT: fewer or smaller "
                                         r"layers \(the largest is model.layers\[1\] \(dense, 78,500 parameters\)\); "
                                         r"an optimizer that keeps less state \(sgd keeps 1 value per parameter; sgd "
                                         r"without momentum keeps none\)$") as err:
        memory.refuse_training_beyond_memory(cfg, model, torch.device("cpu"))
    assert err.value.key == ("model",)
    monkeypatch.setattr(memory, "available_memory", lambda: None)  # unknown: not refused
    memory.refuse_training_beyond_memory(cfg, model, torch.device("cpu"))


def test_unpacked_size_of_what_is_no_zip_archive(tmp_path):
    (tmp_path / "text.pt").write_text("not a torch file")
    assert memory.unpacked_size(tmp_path / "text.pt") is None
    assert memory.unpacked_size(tmp_path / "missing.pt") is None
    assert memory.unpacked_size(tmp_path) is None
    torch.save({"x": torch.zeros(1000)}, tmp_path / "x.pt")
    assert 4000 < memory.unpacked_size(tmp_path / "x.pt") < 4000 + 1000
