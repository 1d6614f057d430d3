"""Where the time of one dlcli run goes, phase by phase, for the seed config: the
set-up (device warm-up thread, reading the data, preparing it, building the
trainer) and, inside the first epoch, the fast path's eager warm-up steps, the
CUDA-graph capture and the eager last partial batch. The CUDA-graph criterion of
issue #5 counts the epochs only, so the first epoch's extra cost is what stands
between the steady epoch time and the target.

    python benchmarks/first_epoch.py --device cuda --override trainer.cuda_graphs=true
    python benchmarks/first_epoch.py --epochs 2 --override data.subset=2000     # CPU

The phases are timed by wrapping dlcli's own functions in this process; the timed
steps (each kind's first) synchronize the GPU before and after, so they are
attributed exactly; every other step runs unsynchronized, as in any dlcli run.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

START = time.perf_counter()


class Timeline:
    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")
        self.rows: list[tuple[str, float, float, str]] = []  # phase, start, seconds, thread
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()

    def sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()

    @contextlib.contextmanager
    def phase(self, name: str, sync: bool = False, once: bool = False):
        with self.lock:
            self.counts[name] = self.counts.get(name, 0) + 1
            record = not once or self.counts[name] == 1
        sync = sync and record  # the steps not recorded run as dlcli runs them, unsynchronized
        if sync:
            self.sync()
        begin = time.perf_counter()
        try:
            yield
        finally:
            if sync:
                self.sync()
            if record:
                with self.lock:
                    self.rows.append((name, begin - START, time.perf_counter() - begin,
                                      threading.current_thread().name))

    def wrap(self, owner, attribute: str, name: str, sync: bool = False, once: bool = False) -> None:
        original = getattr(owner, attribute)
        timeline = self

        def timed(*args, **kwargs):
            with timeline.phase(name, sync, once):
                return original(*args, **kwargs)

        setattr(owner, attribute, timed)


def instrument(timeline: Timeline) -> None:
    import dlcli.data.prepare as prepare
    import dlcli.train.cuda_graphs as cuda_graphs
    import dlcli.train.step as steps
    import dlcli.train.trainer as trainer
    import dlcli.train.warmup as warmup

    timeline.wrap(warmup, "warm_up", "device warm-up (its thread)")
    timeline.wrap(warmup.DeviceWarmup, "join", "wait for the warm-up")
    timeline.wrap(prepare, "load_splits", "read the data")
    timeline.wrap(prepare, "prepare_data", "prepare the data", sync=True)
    timeline.wrap(trainer.Trainer, "__init__", "build the trainer", sync=True)
    eager_step = steps.EagerStep.__call__
    graphed_step = cuda_graphs.GraphedStep.step
    inside = threading.local()

    def step(self, idx, batch):  # GraphedStep.step: warm-up steps and the capture, timed apart from replays
        phase = ("replay" if self.graph is not None else
                 "fast path: eager warm-up step" if self.warmups < self.WARMUP_STEPS else "fast path: capture")
        inside.graphed = True
        try:
            if phase == "replay":
                return graphed_step(self, idx, batch)
            with timeline.phase(phase, sync=True):
                return graphed_step(self, idx, batch)
        finally:
            inside.graphed = False

    def train_step(self, idx, batch, update):  # the eager step outside the graph: first one and partial batches
        if getattr(inside, "graphed", False):
            return eager_step(self, idx, batch, update)
        name = "eager step, first" if self.trainer.batch_in_epoch == 0 and self.trainer.epoch == 0 else \
            f"eager step, batch of {len(idx)}"
        with timeline.phase(name, sync=True, once=True):
            return eager_step(self, idx, batch, update)

    cuda_graphs.GraphedStep.step = step
    steps.EagerStep.__call__ = train_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--override", action="append", default=[], help="dlcli override key=value")
    args = parser.parse_args()
    import torch  # noqa: F401 - the imports are not a phase of the run

    from dlcli.config import load_config
    from dlcli.runs import read_metrics
    from dlcli.train import train

    imported = time.perf_counter() - START
    timeline = Timeline(args.device)
    instrument(timeline)
    out = tempfile.mkdtemp(prefix="dlcli-first-epoch-")
    overrides = [f"trainer.epochs={args.epochs}", f"trainer.device={args.device}", "trainer.progress=none",
                 f"trainer.out_dir={out}"] + args.override
    try:
        cfg = load_config(REPO / "configs" / "mnist_cnn.yaml", overrides)
        begin = time.perf_counter()
        with timeline.phase("train() in all"):
            summary = train(cfg)
        records = [r for r in read_metrics(Path(summary["run_dir"]) / "metrics.jsonl")[0] if r["kind"] == "epoch"]
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(f"device {args.device}, overrides {' '.join(args.override) or '-'}; imports took {imported:.2f} s; "
          f"times from the start of train(), in seconds")
    print(f"{'phase':<36}{'at':>8}{'took':>9}  thread")
    for name, at, seconds, thread in sorted(timeline.rows, key=lambda row: row[1]):
        print(f"{name:<36}{at - (begin - START):>8.3f}{seconds:>9.3f}  {thread}")
    epochs = [r["seconds"] for r in records]
    steady = sorted(epochs[1:])[len(epochs[1:]) // 2] if len(epochs) > 1 else epochs[0]
    print(f"epochs: {' '.join(f'{s:.3f}' for s in epochs)}; the first is {epochs[0] - steady:+.3f} s over the "
          f"median of the others; notes: {'; '.join(summary.get('notes') or []) or '-'}")


if __name__ == "__main__":
    main()
