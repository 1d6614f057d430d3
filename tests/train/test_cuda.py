"""GPU paths, run where CUDA is available (the lent GPU machine: benchmarks/gpu_check.sh)."""

from pathlib import Path

import pytest
import torch

from dlcli.errors import RunError

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _train(cfg, callbacks=()):
    from tests.samples import prepared
    from dlcli.train.run import new_trainer

    device = torch.device("cuda")
    trainer = new_trainer(cfg, prepared(cfg, device), device, callbacks=callbacks)
    trainer.fit()
    return trainer


def test_default_gpu_path_holds_the_data_on_the_device(tiny_cfg):
    trainer = _train(tiny_cfg("trainer.device=cuda", "trainer.epochs=1"))
    assert trainer.data.train.x.device.type == "cuda"
    assert trainer.graphed is None


RECURRENT = ("model.input_shape=[28, 28]", "trainer.grad_clip=1.0")  # rows as steps, as configs/mnist_lstm.yaml


@pytest.mark.parametrize("model", [
    (),
    # cuDNN's LSTM in the graph; stacked with dropout, cuDNN keeps a dropout state across calls
    (*RECURRENT, "model.layers=[{lstm: {units: 16, num_layers: 2}}, {dense: 10}]"),
    (*RECURRENT, "model.layers=[{lstm: {units: 16, num_layers: 2, dropout: 0.2}}, {dense: 10}]"),
], ids=["cnn", "lstm", "lstm-dropout"])
def test_cuda_graph_step_matches_the_eager_step(tiny_cfg, model):
    # 240 training samples at batch 50: 4 graphed batches and one partial eager batch per epoch
    args = ("trainer.device=cuda", "scheduler=null", "data.batch_size=50", "trainer.epochs=3", *model)
    eager = _train(tiny_cfg(*args))
    graphed = _train(tiny_cfg(*args, "trainer.cuda_graphs=true"))
    assert graphed.graphed is not None and graphed.graphed.graph is not None
    assert graphed.step == eager.step == 15
    for (name, a), b in zip(eager.model.state_dict().items(), graphed.model.state_dict().values()):
        torch.testing.assert_close(a.float(), b.float(), rtol=1e-4, atol=1e-5, msg=name)
    for a, b in zip(eager.history, graphed.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)


def test_nan_on_gpu_names_the_step(tiny_cfg):
    from dlcli.train import Callback

    class Poison(Callback):
        def on_epoch_start(self, trainer):
            if trainer.epoch == 1:
                with torch.no_grad():
                    next(trainer.model.parameters()).fill_(float("nan"))

    with pytest.raises(RunError, match=r"NaN or inf at epoch 2, step 9 \(batch 1"):
        _train(tiny_cfg("trainer.device=cuda", "scheduler=null"), callbacks=[Poison()])


def test_resume_on_gpu_is_exact_with_deterministic_algorithms(tiny_cfg):
    from dlcli.checkpoint import load_checkpoint
    from dlcli.train import resume, train

    args = ("trainer.device=cuda", "scheduler=null", "trainer.deterministic=true")
    straight = train(tiny_cfg(*args))
    first = train(tiny_cfg(*args, "trainer.epochs=2"))
    resume(first["run_dir"], ["trainer.epochs=4"])
    a = load_checkpoint(Path(straight["run_dir"]) / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(Path(first["run_dir"]) / "checkpoints" / "last.pt")["model"]
    for key in a:
        torch.testing.assert_close(a[key].float(), b[key].float(), rtol=1e-4, atol=1e-5, msg=key)


@pytest.mark.parametrize("extra", [(), ("trainer.cuda_graphs=true", "scheduler=null"), ("trainer.precision=bf16",)])
def test_device_warm_up_runs_and_leaves_no_trace(tiny_cfg, extra):
    from dlcli.train.warmup import DeviceWarmup
    from tests.samples import optimizer_params

    device = torch.device("cuda")
    torch.manual_seed(5)
    cpu, gpu = torch.get_rng_state(), torch.cuda.get_rng_state(device)
    with optimizer_params() as made:
        warmup = DeviceWarmup.start(tiny_cfg("trainer.device=cuda", *extra), device)
        assert warmup.thread is not None
        warmup.join()
    assert warmup.error is None  # a silent failure would only cost speed: catch it here
    assert torch.equal(torch.get_rng_state(), cpu) and torch.equal(torch.cuda.get_rng_state(device), gpu)
    # its weights are gone from the device (what the thread's cuBLAS handle keeps as workspace
    # stays, for the next thread that takes the handle)
    assert made and all(ref() is None for ref in made)
