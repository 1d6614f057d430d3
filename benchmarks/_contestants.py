"""One contestant of benchmarks/train_speed.py (and config_speed.py), run in its own
process so that its peak RSS is its own. Prints one JSON line: per-epoch seconds, test
accuracy (None where not measured), RSS.

    python benchmarks/_contestants.py dlcli|hand|dataloader|graph --epochs 10 --device cpu
    python benchmarks/_contestants.py dlcli|plain --config configs/mnist_lstm.yaml --subset 6000

--config picks the config dlcli trains (default configs/mnist_cnn.yaml); `plain` is the
loop a user writes for that config by hand (see run_plain). --subset trains on the first
N training samples only, for both.
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MNIST = REPO / "dlcli" / "data" / "mnist"


def launch(contestant: str, options: list[str], timeout: float, label: str | None = None) -> dict:
    """Run one contestant in its own process (this script) and return its JSON result; a
    contestant that fails stops the benchmark with its stderr."""
    import subprocess

    cmd = [sys.executable, str(Path(__file__).resolve()), contestant, *options]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise SystemExit(f"{label or contestant} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def steady(epoch_values: list[float]) -> float:
    """Median per epoch, the first (warm-up) epoch left out when there are others."""
    import statistics

    return statistics.median(epoch_values[1:] if len(epoch_values) > 1 else epoch_values)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def kernel_work() -> tuple[float, int]:
    """(system CPU seconds, minor page faults) of this process so far: a training loop that
    spends time in the kernel is zeroing pages the allocator gave back and takes again."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_stime, usage.ru_minflt


def sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def seed_model():
    """The Keras example, written by hand: Conv2D(32, 3, relu) -> MaxPool(2) -> Flatten -> Dense(10)."""
    import torch.nn as nn

    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(5408, 10))


def run_dlcli(args) -> dict:
    from dlcli.config import load_config
    from dlcli.train import Callback, RunHandle, train

    kernel: list[tuple[float, int]] = []

    class KernelWork(Callback):  # from an epoch's start to its last batch, as its seconds
        def on_epoch_start(self, trainer):
            self.start = kernel_work()

        def on_train_batch_end(self, trainer, batch):
            if batch + 1 == trainer.batches_per_epoch:
                end = kernel_work()
                kernel.append((end[0] - self.start[0], end[1] - self.start[1]))

    out = tempfile.mkdtemp(prefix="dlcli-bench-")
    overrides = [f"trainer.epochs={args.epochs}", f"trainer.device={args.device}", "trainer.progress=none",
                 f"trainer.out_dir={out}"] + (["data.subset=%d" % args.subset] if args.subset else []) \
        + args.override
    cfg = load_config(args.config, overrides)
    start = time.perf_counter()
    handle = RunHandle()
    summary = train(cfg, callbacks=[KernelWork()], handle=handle)
    total = time.perf_counter() - start
    from dlcli.runs import read_metrics

    # an epoch's "seconds": its training batches, measured before its validation pass and checkpoint
    records = [r for r in read_metrics(Path(summary["run_dir"]) / "metrics.jsonl")[0] if r["kind"] == "epoch"]
    shutil.rmtree(out, ignore_errors=True)
    return {"epoch_seconds": [r["seconds"] for r in records],
            "test_accuracy": (summary.get("test") or {}).get("accuracy"), "end_to_end_seconds": total,
            "train_samples": len(handle.trainer.data.train),
            "epoch_sys_seconds": [k[0] for k in kernel], "epoch_minor_faults": [k[1] for k in kernel]}


def _tensors(device):
    import numpy as np
    import torch

    def read(name, offset):
        return np.frombuffer(gzip.open(MNIST / name).read(), dtype=np.uint8, offset=offset)

    x = torch.from_numpy(read("train-images-idx3-ubyte.gz", 16).copy()).reshape(-1, 1, 28, 28)
    y = torch.from_numpy(read("train-labels-idx1-ubyte.gz", 8).astype(np.int64))
    xt = torch.from_numpy(read("t10k-images-idx3-ubyte.gz", 16).copy()).reshape(-1, 1, 28, 28)
    yt = torch.from_numpy(read("t10k-labels-idx1-ubyte.gz", 8).astype(np.int64))
    norm = lambda t: ((t.float() / 255) - 0.1307) / 0.3081  # noqa: E731
    return norm(x).to(device), y.to(device), norm(xt).to(device), yt.to(device)


def _accuracy(model, xt, yt):
    import torch

    model.eval()
    with torch.no_grad():
        correct = sum(int((model(xt[i:i + 1000]).argmax(1) == yt[i:i + 1000]).sum()) for i in range(0, len(xt), 1000))
    return correct / len(xt)


def _timed_epochs(epochs: int, device, model, epoch) -> list[float]:
    """Seconds of each of `epochs` calls of `epoch()`, the model in training mode, waiting
    for the GPU at both ends."""
    times = []
    for _ in range(epochs):
        sync(device)
        start = time.perf_counter()
        model.train()
        epoch()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def _result(times: list[float], model, xt, yt, begin: float) -> dict:
    accuracy = _accuracy(model, xt, yt)
    return {"epoch_seconds": times, "test_accuracy": accuracy, "end_to_end_seconds": time.perf_counter() - begin}


def run_hand(args) -> dict:
    """The hand-written loop: the whole dataset as one tensor on the device, batches by index."""
    import torch
    import torch.nn.functional as F

    begin = time.perf_counter()
    torch.manual_seed(0)
    device = torch.device(args.device)
    x, y, xt, yt = _tensors(device)
    model = seed_model().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, **({"fused": True} if device.type == "cuda" else {}))

    def epoch():
        perm = torch.randperm(len(x), device=device)
        for i in range(0, len(x), 128):
            idx = perm[i:i + 128]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    times = _timed_epochs(args.epochs, device, model, epoch)
    return _result(times, model, xt, yt, begin)


def run_plain(args) -> dict:
    """The plain loop a user writes for a config: the config's layers as a plain nn.Module
    (build_model without the trainer's exact rewrites, fuse, and without channels_last), the
    same loss, optimizer, lr, scheduler and gradient clipping (dlcli's builders return the
    plain torch objects), the same batch size and number of training samples (data.subset
    and data.val_split taken out as dlcli does), the data as one resident normalized tensor,
    and a standard zero_grad / forward / loss / backward / (clip) / step / (scheduler) loop.
    No validation pass, no per-batch metrics: only the training batches are timed."""
    import math

    import torch

    from dlcli.config import load_config
    from dlcli.losses import build_loss
    from dlcli.model import build_model
    from dlcli.optim import SCHEDULERS, build_optimizer

    begin = time.perf_counter()
    cfg = load_config(args.config, [f"trainer.device={args.device}"])
    data, t = cfg["data"], cfg["trainer"]
    if data["dataset"] != "mnist":
        raise SystemExit(f"the plain contestant reads MNIST; {args.config} trains on {data['dataset']}")
    torch.manual_seed(cfg["seed"])
    device = torch.device(args.device)
    x, y, _, _ = _tensors(device)
    n = min(args.subset or len(x), len(x))
    n_train = n - int(round(n * data["val_split"])) if data["val_split"] > 0 else n
    x = x[:n_train].reshape(n_train, *cfg["model"]["input_shape"]).contiguous()
    y = y[:n_train]
    model = build_model(cfg, fuse=False).to(device)
    loss_fn = build_loss(cfg, device)
    opt = build_optimizer(cfg, model.parameters(), device)
    batch_size, clip = data["batch_size"], t["grad_clip"]
    scheduler, interval = None, None
    if cfg.get("scheduler"):
        spec = cfg["scheduler"]
        entry = SCHEDULERS.get(spec["type"])
        if entry.meta.get("needs_metric"):
            raise SystemExit(f"the plain contestant has no validation metric for scheduler {spec['type']}")
        scheduler = entry.build({k: v for k, v in spec.items() if k != "type"}, opt,
                                math.ceil(n_train / batch_size), args.epochs)
        interval = entry.meta["interval"]

    kernel: list[tuple[float, int]] = []

    def epoch():
        start = kernel_work()
        perm = torch.randperm(n_train, device=device)
        for i in range(0, n_train, batch_size):
            idx = perm[i:i + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            if interval == "step":
                scheduler.step()
        if interval == "epoch":
            scheduler.step()
        end = kernel_work()
        kernel.append((end[0] - start[0], end[1] - start[1]))

    times = _timed_epochs(args.epochs, device, model, epoch)
    return {"epoch_seconds": times, "test_accuracy": None, "end_to_end_seconds": time.perf_counter() - begin,
            "train_samples": n_train, "epoch_sys_seconds": [k[0] for k in kernel],
            "epoch_minor_faults": [k[1] for k in kernel]}


def run_graph(args) -> dict:
    """The CUDA-graph limit (0.14 s/epoch on an H200 in the project's peer measurements), by
    hand: resident data, the whole step (gather, forward, backward, Adam with capturable=True)
    captured in one graph after three warm-up steps on a side stream; the last partial batch
    of each epoch is dropped."""
    import torch
    import torch.nn.functional as F

    if args.device == "cpu":
        raise SystemExit("the graph contestant needs --device cuda")
    begin = time.perf_counter()
    torch.manual_seed(0)
    device = torch.device(args.device)
    x, y, xt, yt = _tensors(device)
    model = seed_model().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True, capturable=True)
    static_idx = torch.zeros(128, dtype=torch.long, device=device)

    def step():
        loss = F.cross_entropy(model(x[static_idx]), y[static_idx])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=False)

    graph = None

    def epoch():
        nonlocal graph
        perm = torch.randperm(len(x), device=device)
        for i in range(0, len(x) - 127, 128):
            static_idx.copy_(perm[i:i + 128])
            if graph is None:
                if i < 3 * 128:  # warm-up steps, real training steps, on a side stream
                    side = torch.cuda.Stream()
                    side.wait_stream(torch.cuda.current_stream())
                    with torch.cuda.stream(side):
                        step()
                    torch.cuda.current_stream().wait_stream(side)
                    continue
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    step()
            graph.replay()

    times = _timed_epochs(args.epochs, device, model, epoch)
    return _result(times, model, xt, yt, begin)


def run_dataloader(args) -> dict:
    """The idiomatic loop: torchvision MNIST + ToTensor + Normalize + DataLoader."""
    import torch
    import torch.nn.functional as F
    from torchvision import datasets, transforms

    begin = time.perf_counter()
    torch.manual_seed(0)
    device = torch.device(args.device)
    root = Path(tempfile.mkdtemp(prefix="mnist-tv-"))
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for gz in MNIST.glob("*.gz"):  # torchvision reads the uncompressed IDX files
        (raw / gz.name[:-3]).write_bytes(gzip.open(gz).read())
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train_set = datasets.MNIST(root, train=True, transform=tf, download=False)
    test_set = datasets.MNIST(root, train=False, transform=tf, download=False)
    loader = torch.utils.data.DataLoader(train_set, batch_size=128, shuffle=True, num_workers=args.workers,
                                         pin_memory=device.type == "cuda", persistent_workers=args.workers > 0)
    model = seed_model().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, **({"fused": True} if device.type == "cuda" else {}))

    def epoch():
        for xb, yb in loader:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    times = _timed_epochs(args.epochs, device, model, epoch)
    xt = torch.stack([test_set[i][0] for i in range(len(test_set))]).to(device)
    yt = test_set.targets.to(device)
    shutil.rmtree(root, ignore_errors=True)
    return _result(times, model, xt, yt, begin)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("contestant", choices=["dlcli", "hand", "dataloader", "graph", "plain"])
    parser.add_argument("--config", default=str(REPO / "configs" / "mnist_cnn.yaml"),
                        help="the config of dlcli and plain")
    parser.add_argument("--subset", type=int, help="train dlcli and plain on the first N samples only")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--override", action="append", default=[], help="dlcli override key=value")
    args = parser.parse_args()
    result = {"dlcli": run_dlcli, "hand": run_hand, "dataloader": run_dataloader,
              "graph": run_graph, "plain": run_plain}[args.contestant](args)
    result.update(contestant=args.contestant, peak_rss_mb=round(peak_rss_mb(), 1), epochs=args.epochs)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
