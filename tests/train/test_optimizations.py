"""Every speed-up computes the same function as the plain path: outputs and gradients."""

import shutil

import pytest
import torch

from dlcli.activations import ACTIVATIONS
from dlcli.config import config_from_text
from dlcli.layers import LAYERS
from dlcli.layers._modules import ActivatedPool
from dlcli.model import build_model, build_training_model, uses_channels_last

MONOTONE = [e.name for e in ACTIVATIONS if e.meta["monotone"] and e.name != "linear"]
NOT_MONOTONE = [e.name for e in ACTIVATIONS if not e.meta["monotone"]]


def _cfg(activation, rank=2, extra=""):
    shape = "[2, 12, 12]" if rank == 2 else "[3, 20]"
    return config_from_text(f"""
model:
  input_shape: {shape}
  layers:
    - conv{rank}d: {{filters: 5, kernel_size: 3, activation: {activation}}}
    - maxpool{rank}d: {{pool_size: 2{extra}}}
    - flatten
    - dense: 3
data: {{dataset: npz, path: unused.npz}}
trainer: {{channels_last: false}}
""")


def _outputs_and_grads(model, x):
    model.zero_grad()
    out = model(x)
    out.square().sum().backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_the_monotone_list_is_what_we_expect():
    assert {"relu", "relu6", "leaky_relu", "hard_sigmoid"} == set(MONOTONE)
    assert {"gelu", "silu", "mish", "softmax", "sigmoid", "tanh", "softplus"} <= set(NOT_MONOTONE)


@pytest.mark.parametrize("rank", [1, 2])
@pytest.mark.parametrize("padding", ["", ", padding: same"])
@pytest.mark.parametrize("activation", MONOTONE)
def test_activation_moved_after_max_pool_is_bit_identical(activation, rank, padding):
    cfg = _cfg(activation, rank, padding)
    torch.manual_seed(0)
    plain = build_model(cfg)
    fused = build_model(cfg, fuse=True)
    assert any(isinstance(m, ActivatedPool) for m in fused.modules())
    fused.load_state_dict(plain.state_dict())  # same keys: the rewrite adds no parameters
    x = torch.randn(7, *cfg["model"]["input_shape"]) * 3
    out_a, grads_a = _outputs_and_grads(plain, x)
    out_b, grads_b = _outputs_and_grads(fused, x)
    assert torch.equal(out_a, out_b)
    for name in grads_a:
        assert torch.equal(grads_a[name], grads_b[name]), name


WINDOW_POOLS = [e.name for e in LAYERS if e.family == "pool" and not e.name.startswith("global_")]
TORCH_POOLS = {"maxpool1d": torch.nn.MaxPool1d, "maxpool2d": torch.nn.MaxPool2d, "avgpool1d": torch.nn.AvgPool1d,
               "avgpool2d": torch.nn.AvgPool2d}


def test_every_windowed_pool_has_a_torch_twin_below():
    assert sorted(WINDOW_POOLS) == sorted(TORCH_POOLS)


@pytest.mark.parametrize("pool", WINDOW_POOLS)
def test_the_fused_model_equals_conv_relu_pool_written_in_torch(pool):
    """Whatever the rewrite does (an average pool must keep the activation before it), the model
    trainer.fuse builds computes what conv -> relu -> pool -> flatten -> dense does in plain torch."""
    rank = int(pool[-2])
    cfg = _cfg("relu", rank).copy()
    cfg["model"] = {**cfg["model"], "layers": [dict(layer) for layer in cfg["model"]["layers"]]}
    cfg["model"]["layers"][1] = {**cfg["model"]["layers"][1], "type": pool}
    torch.manual_seed(0)
    fused = build_model(cfg, fuse=True)
    conv = (torch.nn.Conv1d if rank == 1 else torch.nn.Conv2d)(cfg["model"]["input_shape"][0], 5, 3)
    width = 5 * (9 if rank == 1 else 25)  # 12x12 -> conv 10x10 -> pool 5x5; length 20 -> 18 -> 9
    hand = torch.nn.Sequential(conv, torch.nn.ReLU(), TORCH_POOLS[pool](2), torch.nn.Flatten(),
                               torch.nn.Linear(width, 3))
    hand.load_state_dict(dict(zip(hand.state_dict(), fused.state_dict().values())))
    x = torch.randn(7, *cfg["model"]["input_shape"]) * 3
    out_hand, grads_hand = _outputs_and_grads(hand, x)
    out_fused, grads_fused = _outputs_and_grads(fused, x)
    torch.testing.assert_close(out_fused, out_hand, rtol=1e-5, atol=1e-5)
    for (name, grad), expected in zip(grads_fused.items(), grads_hand.values()):
        torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("activation", NOT_MONOTONE)
def test_non_monotone_activations_stay_where_they_are(activation):
    if activation in ("softmax", "log_softmax"):
        pytest.skip("not a conv activation one would pool")
    fused = build_model(_cfg(activation), fuse=True)
    assert not any(isinstance(m, ActivatedPool) for m in fused.modules())


def test_channels_last_computes_the_same_function():
    cfg = _cfg("relu")
    cfg["trainer"]["channels_last"] = True
    torch.manual_seed(0)
    plain = build_model(cfg)
    fast = build_training_model(cfg, torch.device("cpu"))
    assert uses_channels_last(cfg, torch.device("cpu"))
    fast.load_state_dict(plain.state_dict())
    x = torch.randn(7, 2, 12, 12)
    out_a, grads_a = _outputs_and_grads(plain, x)
    out_b, grads_b = _outputs_and_grads(fast, x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out_a, out_b, rtol=1e-5, atol=1e-6)
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=1e-4, atol=1e-5)


def test_training_with_and_without_the_rewrite_gives_identical_weights(tiny_cfg):
    from dlcli.checkpoint import load_checkpoint
    from dlcli.train import train
    from pathlib import Path

    runs = [train(tiny_cfg("trainer.epochs=2", "trainer.channels_last=false", f"trainer.fuse={flag}"))
            for flag in ("false", "true")]
    weights = [load_checkpoint(Path(r["run_dir"]) / "checkpoints" / "last.pt")["model"] for r in runs]
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key


def test_cuda_graphs_on_cpu_fall_back_with_a_note(tiny_cfg):
    from tests.samples import prepared
    from dlcli.train.run import new_trainer

    cfg = tiny_cfg("trainer.cuda_graphs=true")
    trainer = new_trainer(cfg, prepared(cfg, torch.device("cpu")), torch.device("cpu"))
    assert trainer.graphed is None
    assert any("cuda_graphs ignored: it needs a CUDA device" in n and "scheduler" in n for n in trainer.notes)


def test_graph_blockers_name_each_reason(tiny_cfg):
    from dlcli.train.cuda_graphs import graph_blockers

    cfg = tiny_cfg("trainer.grad_accum=2", "trainer.precision=fp16", "optimizer.type=rmsprop")
    reasons = " | ".join(graph_blockers(cfg, torch.device("cuda")))
    for word in ("scheduler", "accumulation", "fp16", "rmsprop"):
        assert word in reasons
    assert graph_blockers(tiny_cfg("scheduler=null"), torch.device("cuda")) == []


def test_graph_blockers_read_which_optimizers_are_captured_from_the_registry(tiny_cfg, monkeypatch):
    from dlcli.optim import OPTIMIZERS
    from dlcli.train.cuda_graphs import graph_blockers

    cfg = tiny_cfg("scheduler=null", "optimizer.type=rmsprop")
    assert graph_blockers(cfg, torch.device("cuda")) == [
        "optimizer rmsprop is not captured (use one of adam, adamw, sgd)"]
    monkeypatch.setitem(OPTIMIZERS.get("rmsprop").meta, "capturable", True)
    assert graph_blockers(cfg, torch.device("cuda")) == []
    reasons = graph_blockers(tiny_cfg("scheduler=null", "optimizer.type=adagrad"), torch.device("cuda"))
    assert reasons == ["optimizer adagrad is not captured (use one of adam, adamw, sgd, rmsprop)"]


def test_cuda_graphs_refuse_a_training_set_held_in_cpu_memory(tiny_cfg, monkeypatch):
    """Data too large for the GPU stay in CPU memory and are copied per batch: a captured step
    would gather its batch once, at capture time, and replay that batch forever."""
    import dlcli.train.step as step_module
    from tests.samples import prepared
    from dlcli.train.cuda_graphs import graph_blockers
    from dlcli.train.run import new_trainer

    cfg = tiny_cfg("scheduler=null")
    reasons = graph_blockers(cfg, torch.device("cuda"), on_host=True)
    assert len(reasons) == 1 and "held in CPU memory" in reasons[0]
    assert graph_blockers(cfg, torch.device("cuda")) == []
    calls = []
    monkeypatch.setattr(step_module, "graph_blockers", lambda *a, **kw: calls.append(kw) or ["x"])
    new_trainer(tiny_cfg("trainer.cuda_graphs=true"), prepared(cfg, torch.device("cpu")), torch.device("cpu"))
    assert calls == [{"streamed": False, "on_host": False}]  # the data live where the CPU trainer trains


def test_graph_dispatch_full_batches_replayed_partial_batch_eager(tiny_cfg):
    """The fast path's bookkeeping, on the CPU: full batches go through the graphed step
    (here a stand-in that runs the step eagerly), the last partial batch through the eager
    step, gradients are zeroed in place, and the result equals the plain path bit for bit."""
    from tests.samples import prepared
    from dlcli.train.run import new_trainer
    from dlcli.train.step import CapturedStep

    class EagerStandIn:
        def __init__(self, trainer):
            self.trainer, self.calls = trainer, 0

        def step(self, idx, batch):
            self.calls += 1
            assert len(idx) == self.trainer.batch_size
            self.trainer.train_step(idx, torch.tensor(batch), update=True)

    cfg = tiny_cfg("scheduler=null", "data.batch_size=50", "trainer.epochs=2")  # 240 train samples: 4 x 50 + 40
    device = torch.device("cpu")
    plain = new_trainer(cfg, prepared(cfg, device), device)
    plain.fit()
    fast = new_trainer(cfg, prepared(cfg, device), device)
    fast.batch_step = CapturedStep(fast, graphed=EagerStandIn(fast))
    fast.fit()
    assert fast.graphed.calls == 2 * 4 and fast.step == plain.step == 2 * 5
    for (name, a), b in zip(plain.model.state_dict().items(), fast.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert [r["train_loss"] for r in plain.history] == [r["train_loss"] for r in fast.history]


def test_graphed_step_captures_once_after_its_warmups_with_the_heap_frozen(monkeypatch):
    """GraphedStep on the CPU, with torch.cuda's stream and graph calls replaced by
    recorders: three eager warm-up steps, then one capture with no garbage collection
    able to walk the heap (older torch collects on entering torch.cuda.graph), then
    replays; the collector's state is restored after the capture."""
    import contextlib
    import gc
    from types import SimpleNamespace

    from dlcli.train.cuda_graphs import GraphedStep

    events = []

    class Graph:
        def replay(self):
            events.append("replay")

    @contextlib.contextmanager
    def capture(graph):
        events.append(("capture", gc.isenabled(), gc.get_freeze_count() > 0))
        yield

    stream = SimpleNamespace(wait_stream=lambda other: None)
    monkeypatch.setattr(torch.cuda, "Stream", lambda: stream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda: stream)
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph)
    monkeypatch.setattr(torch.cuda, "graph", capture)
    cpu = torch.device("cpu")
    trainer = SimpleNamespace(batch_size=4, device=cpu, data=SimpleNamespace(train=SimpleNamespace(home=cpu)),
                              train_step=lambda idx, batch, update: events.append(("step", int(batch))))
    step = GraphedStep(trainer)
    assert gc.isenabled() and gc.get_freeze_count() == 0
    for batch in range(6):
        step.step(torch.arange(4), batch)
    assert events == [("step", 0), ("step", 1), ("step", 2), ("capture", False, True), ("step", 3), "replay",
                      "replay", "replay"]
    assert gc.isenabled() and gc.get_freeze_count() == 0


@pytest.mark.skipif(not any(shutil.which(c) for c in ("c++", "g++", "clang++")),
                    reason="torch.compile on the CPU needs a C++ compiler")
def test_compile_trains_the_same_function(tiny_cfg):
    """trainer.compile: the forward runs compiled, the weights end close to the eager run's,
    and the checkpoint keeps the plain keys (evaluate builds the model uncompiled)."""
    from pathlib import Path

    from dlcli.checkpoint import load_checkpoint
    from dlcli.train import RunHandle, train

    # no dropout: compiled code draws its masks from another random stream than eager torch
    args = ("trainer.epochs=1", "data.drop_last=true", "data.val_split=0", "trainer.evaluate_test=false",
            "model.layers[2].rate=0")
    handle = RunHandle()
    compiled = train(tiny_cfg(*args, "trainer.compile=true"), handle=handle)
    assert handle.trainer.model._compiled_call_impl is not None and not compiled["notes"]
    eager = train(tiny_cfg(*args))
    a, b = (load_checkpoint(Path(r["run_dir"]) / "checkpoints" / "last.pt")["model"] for r in (compiled, eager))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)


def test_compile_is_ignored_with_a_note_where_it_cannot_run(tiny_cfg, monkeypatch):
    from tests.samples import prepared
    from dlcli.train.run import new_trainer
    from dlcli.train.step import compile_forward

    cfg = tiny_cfg("trainer.compile=true")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    trainer = new_trainer(cfg, prepared(cfg, torch.device("cpu")), torch.device("cpu"))
    assert trainer.model._compiled_call_impl is None
    assert any("trainer.compile ignored: compiling for the CPU needs a C++ compiler" in n for n in trainer.notes)
    trainer.notes.clear()
    compile_forward(trainer.model, trainer.device, True, trainer.notes)
    assert trainer.model._compiled_call_impl is None
    assert trainer.notes == ["trainer.compile ignored: trainer.cuda_graphs captures the whole step already"]


@pytest.mark.parametrize("overrides, mode", [
    (("scheduler={type: reduce_on_plateau, monitor: val_accuracy}",), "max"),  # an accuracy rises
    (("scheduler={type: reduce_on_plateau, monitor: val_loss}", "trainer.monitor=val_accuracy"), "min"),
    (("scheduler={type: reduce_on_plateau}", "trainer.monitor=val_accuracy"), "max"),  # trainer.monitor's
    (("scheduler={type: reduce_on_plateau}", "trainer.monitor=val_accuracy", "trainer.monitor_mode=min"), "min"),
])
def test_reduce_on_plateau_knows_which_way_its_metric_improves(tiny_cfg, overrides, mode):
    """It used to minimize whatever it watched: an improving accuracy cut the learning rate."""
    from tests.samples import prepared
    from dlcli.train.run import new_trainer

    cfg = tiny_cfg(*overrides)
    trainer = new_trainer(cfg, prepared(cfg, torch.device("cpu")), torch.device("cpu"))
    assert trainer.scheduler.mode == mode


def test_a_flat_input_reshaped_into_images_trains_in_channels_last(tiny_cfg):
    """Keras's flat MNIST (N, 784) then Reshape: the conv2d makes channels_last auto on the CPU,
    and the (B, 784) batch is no image to convert (it crashed at the first step)."""
    from dlcli.train import train

    cfg = tiny_cfg("model.input_shape=[784]", "trainer.epochs=1",
                   "model.layers[0]={type: reshape, target_shape: [1, 28, 28]}",
                   "model.layers[1]={type: conv2d, filters: 4, kernel_size: 3, activation: relu}",
                   "model.layers[2]={type: maxpool2d, pool_size: 2}")
    assert uses_channels_last(cfg, torch.device("cpu"))
    assert train(cfg)["status"] == "finished"
