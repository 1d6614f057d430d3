"""The background device warm-up: it overlaps the data loading, draws no random
numbers the run would see, changes no result, and never fails a run. The CUDA
side runs in tests/train/test_cuda.py and in the cuda cases here; elsewhere the same thread
runs on the CPU."""

import threading
import time
from pathlib import Path

import pytest
import torch

from dlcli.train import warmup as warmup_module
from dlcli.train.warmup import DeviceWarmup, warm_up
from tests.hang_guard import HANG_S

CONFIGS = sorted(p.name for p in (Path(__file__).parents[2] / "configs").glob("*.yaml"))
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.fixture
def warm_on_cpu(monkeypatch):
    """Let the warm-up thread run for CPU training too (it is only started for CUDA)."""
    monkeypatch.setattr(DeviceWarmup, "DEVICE_TYPES", ("cuda", "cpu"))


def test_no_thread_where_there_is_nothing_to_load(tiny_cfg):
    warmup = DeviceWarmup.start(tiny_cfg(), torch.device("cpu"))
    assert warmup.thread is None
    warmup.join()


@pytest.mark.parametrize("config", CONFIGS)
def test_warm_up_runs_a_step_of_every_shipped_config(config, repo_root):
    from dlcli.config import load_config

    cfg = load_config(repo_root / "configs" / config, ["data.batch_size=8"])
    warm_up(cfg, torch.device("cpu"))  # raises if the step does not run


def test_warm_up_feeds_integer_ids_to_an_embedding():
    from dlcli.config import config_from_text

    cfg = config_from_text("""
model:
  input_shape: [12]
  layers: [{embedding: {input_dim: 50, output_dim: 8}}, {lstm: 16}, {dense: 3}]
data: {dataset: npz, path: unused.npz, batch_size: 4}
optimizer: adamw
""", "ids.yaml")
    warm_up(cfg, torch.device("cpu"))  # raises if the step does not run


def test_the_thread_leaves_the_random_state_as_it_was(tiny_cfg, warm_on_cpu):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    warmup = DeviceWarmup.start(tiny_cfg(), torch.device("cpu"))  # dropout in the step draws numbers
    warmup.join()
    assert warmup.error is None
    assert torch.equal(torch.get_rng_state(), before)


def test_nothing_of_the_warm_up_outlives_it(run_python):
    # In a fresh process, with automatic garbage collection off: the first optimizer a process
    # creates (it imports torch._dynamo) leaves a reference cycle that would keep the warm-up's
    # weights alive, on the GPU, until some later collection.
    script = """
import gc, torch
from dlcli.config import load_config
from dlcli.train.warmup import DeviceWarmup
from tests.samples import optimizer_params
gc.disable()
DeviceWarmup.DEVICE_TYPES = ("cpu",)
with optimizer_params() as made:
    warmup = DeviceWarmup.start(load_config("configs/mnist_cnn.yaml", ["data.batch_size=8"]), torch.device("cpu"))
    warmup.join()
print(warmup.error, len(made), sum(ref() is not None for ref in made))
"""
    result = run_python("-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["None", "4", "0"]  # 4 tensors made, none left


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
@pytest.mark.parametrize("config", CONFIGS)
def test_the_thread_imports_nothing(run_python, config, device):
    # The main thread reads the data meanwhile, which imports modules (PIL, torchvision):
    # imports in both threads at once can deadlock. A fresh process, so that nothing is
    # imported yet that the first training step needs.
    script = f"""
import sys, torch
from dlcli.config import load_config
from dlcli.train import warmup
real, imported = warmup.warm_up, []
def watched(*args):
    before = set(sys.modules)
    real(*args)
    imported.extend(sorted(set(sys.modules) - before))
warmup.warm_up = watched
warmup.DeviceWarmup.DEVICE_TYPES = ("cpu", "cuda")
cfg = load_config("configs/{config}", ["data.batch_size=8", "trainer.device={device}"])
job = warmup.DeviceWarmup.start(cfg, torch.device("{device}"))
job.join()
print(job.error, imported)
"""
    result = run_python("-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "None []"


def test_a_failing_warm_up_is_ignored(tiny_cfg, warm_on_cpu, monkeypatch):
    def broken(*args):
        raise RuntimeError("no kernel image is available")

    monkeypatch.setattr(warmup_module, "warm_up", broken)
    warmup = DeviceWarmup.start(tiny_cfg(), torch.device("cpu"))
    warmup.join()
    assert isinstance(warmup.error, RuntimeError)


def test_a_run_whose_warm_up_failed_trains_and_says_so(tiny_cfg, warm_on_cpu, monkeypatch):
    from dlcli.train import train

    def broken(*args):
        raise RuntimeError("no kernel image is available")

    monkeypatch.setattr(warmup_module, "warm_up", broken)
    summary = train(tiny_cfg())
    assert summary["status"] == "finished"
    assert summary["notes"] == ["the device warm-up failed and was skipped (RuntimeError: no kernel image is "
                                "available); the first epoch pays for loading the device's libraries instead"]


def test_a_model_the_warm_up_cannot_build_is_ignored(tiny_cfg, warm_on_cpu, monkeypatch):
    def unbuildable(cfg):
        raise RuntimeError("a layer that cannot be built on the meta device")

    monkeypatch.setattr(warmup_module, "meta_model", unbuildable)
    warmup = DeviceWarmup.start(tiny_cfg(), torch.device("cpu"))
    assert warmup.thread is None and isinstance(warmup.error, RuntimeError)
    warmup.join()


def test_the_data_is_read_while_the_device_warms_up(tiny_cfg, warm_on_cpu, monkeypatch):
    from dlcli.data import prepare
    from dlcli.train import train

    events, loading = {}, threading.Event()
    real_load = prepare.load_splits

    def slow_warm_up(*args):  # a warm-up that lasts until the data is being read (or a hang guard)
        events["warm_start"] = time.perf_counter()
        loading.wait(HANG_S)
        events["warm_end"] = time.perf_counter()

    def load(*args, **kwargs):  # whatever load_splits takes: a TypeError here would leave the warm-up waiting
        events["load_start"] = time.perf_counter()
        loading.set()
        return real_load(*args, **kwargs)

    monkeypatch.setattr(warmup_module, "warm_up", slow_warm_up)
    monkeypatch.setattr(prepare, "load_splits", load)
    train(tiny_cfg("trainer.epochs=1"))
    assert events["warm_start"] < events["load_start"] < events["warm_end"]  # overlapped, not in series
    assert not any(t.name == "dlcli-device-warmup" for t in threading.enumerate())  # joined before training


def test_training_with_the_warm_up_is_identical(tiny_cfg, warm_on_cpu, monkeypatch):
    from dlcli.checkpoint import load_checkpoint
    from dlcli.train import train

    calls = []
    real = warmup_module.warm_up
    monkeypatch.setattr(warmup_module, "warm_up", lambda *args: calls.append(1) or real(*args))
    warmed = train(tiny_cfg("trainer.epochs=2"))
    assert calls == [1]
    monkeypatch.setattr(DeviceWarmup, "DEVICE_TYPES", ())
    plain = train(tiny_cfg("trainer.epochs=2"))
    assert calls == [1]
    a = load_checkpoint(Path(warmed["run_dir"]) / "checkpoints" / "last.pt")
    b = load_checkpoint(Path(plain["run_dir"]) / "checkpoints" / "last.pt")
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert warmed["test"] == plain["test"]
