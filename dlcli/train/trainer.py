"""The training loop. `Trainer.fit` reads top to bottom: for each epoch, shuffle
by a seeded permutation, run the step (dlcli.train.step) on each batch, evaluate,
hand the epoch's record to the callbacks. Everything a resume needs is in
`state_dict()`. The process-wide settings it trains under (seeds, CPU threads,
cuDNN flags) are the run set-up's (dlcli.train.process), made before it is built.

GPU: no host sync inside the step; loss and metric sums stay on the device and
are read once per epoch (and when the progress display asks).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time

import torch

from dlcli.data.prepare import PreparedData
from dlcli.errors import RunError
from dlcli.evaluation import evaluate_split, metric_functions
from dlcli.interrupts import SecondSignal, StopSignals, TrainingInterrupted
from dlcli.losses import build_loss
from dlcli.metrics import METRICS
from dlcli.model import autocast_dtype, build_training_model, uses_channels_last
from dlcli.optim import SCHEDULERS, build_optimizer
from dlcli.train.process import rng_state, set_rng_state
from dlcli.train.step import CapturedStep, EagerStep, compile_forward, use_cuda_graphs

__all__ = ["Trainer", "TrainingInterrupted", "SecondSignal", "epoch_permutation"]


def epoch_permutation(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The order of epoch `epoch`: a function of (seed, epoch) alone, so a resumed run
    sees the same batches."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


class Trainer:
    """The loop over prepared data, and the state a checkpoint holds: model, optimizer, scheduler,
    progress, best epoch, history. Built by the run set-up (dlcli.train.run.new_trainer), after
    the process-wide settings it trains under."""

    def __init__(self, cfg: dict, data: PreparedData, device: torch.device, callbacks=(), model=None):
        """`model`: the config's model as built on the meta device (dlcli.model.build_meta_model, with
        trainer.fuse), given memory and its seeded initial weights here; None builds it."""
        t = cfg["trainer"]
        self.cfg, self.data, self.device, self.callbacks = cfg, data, device, list(callbacks)
        self.notes: list[str] = []
        self.start: dict = {}  # what the run starts with (dlcli.train.run_start), for the CLI's start banner
        self.model = build_training_model(cfg, device, meta=model)
        self.channels_last = uses_channels_last(cfg, device)
        self.loss_fn = build_loss(cfg, device)
        self.metric_fns = metric_functions(cfg["metrics"])
        use_graphs = use_cuda_graphs(cfg, device, data, self.notes)
        if t["compile"]:
            compile_forward(self.model, device, use_graphs, self.notes)
        self.optimizer = build_optimizer(cfg, self.model.parameters(), device, capturable=use_graphs)
        self.batch_size, self.accum = cfg["data"]["batch_size"], t["grad_accum"]
        n = len(data.train)
        self.batches_per_epoch = n // self.batch_size if cfg["data"]["drop_last"] else math.ceil(n / self.batch_size)
        if self.batches_per_epoch == 0:
            raise RunError(f"data.drop_last: {n} training samples make no full batch of {self.batch_size}")
        self.steps_per_epoch = math.ceil(self.batches_per_epoch / self.accum)
        self.monitor = t["monitor"] or ("val_loss" if data.val is not None else "train_loss")
        # validation checked this for data sets that cannot name a validation split (see may_name_val_split)
        for key, watched in (("trainer.monitor", self.monitor), ("scheduler.monitor",
                                                                 (cfg.get("scheduler") or {}).get("monitor"))):
            if watched and watched.startswith("val_") and data.val is None:
                raise RunError(f"{key}: {watched} needs validation data, and {data.source} names none (no x_val, "
                               f"y_val); set data.val_split (e.g. 0.1)")
        self.mode = self._mode_of(self.monitor) if t["monitor_mode"] == "auto" else t["monitor_mode"]
        self.scheduler, self.scheduler_interval = self._build_scheduler()
        # the schedule lengths the run followed: [{"from_epoch", "from_batch", "epochs"}] (1-based
        # start); a resume with another trainer.epochs adds one for a length-dependent scheduler
        self.schedule_segments = [{"from_epoch": 1, "from_batch": 1, "epochs": t["epochs"]}]
        self.autocast_dtype = self._autocast_dtype(t["precision"])
        self.scaler = torch.amp.GradScaler("cuda") if self.autocast_dtype == torch.float16 else None
        # progress of the run
        self.epoch, self.batch_in_epoch, self.step = 0, 0, 0
        self.first_epoch, self._first_batch = 1, 0  # where this process started (fit), and its epoch
        self.best: dict = {}
        self.best_state: dict | None = None
        self.history: list[dict] = []
        self.stop_reason: str | None = None
        self.signals = StopSignals()  # a first SIGINT/SIGTERM, which the loop asks about after each step
        # Per-batch results of the running epoch, written on the device (no host sync) and
        # summed when read; persistent tensors, since a CUDA graph holds their addresses.
        self.batch_losses = torch.zeros(self.batches_per_epoch, dtype=torch.float32, device=device)
        self.batch_metric_sums = torch.zeros(len(self.metric_fns), self.batches_per_epoch, dtype=torch.float64,
                                             device=device)
        self._batch_sizes = [min(self.batch_size, n - b * self.batch_size) for b in range(self.batches_per_epoch)]
        self.batch_step = CapturedStep(self) if use_graphs else EagerStep(self)  # the step of each batch

    # ---- set-up helpers -------------------------------------------------
    def _build_scheduler(self):
        spec = self.cfg.get("scheduler")
        if not spec:
            return None, None
        entry = SCHEDULERS.get(spec["type"])
        args = {k: v for k, v in spec.items() if k != "type"}
        watching = {}
        if entry.meta.get("needs_metric"):  # which way is better: trainer.monitor's, or its own metric's
            watched = args["monitor"] or self.monitor
            watching["mode"] = self.mode if watched == self.monitor else self._mode_of(watched)
        return (entry.build(args, self.optimizer, self.steps_per_epoch, self.cfg["trainer"]["epochs"], **watching),
                entry.meta["interval"])

    @staticmethod
    def _mode_of(monitor: str) -> str:
        """min for a loss, else what the metric declares (accuracy: max)."""
        name = monitor.split("_", 1)[1]
        return "min" if name == "loss" else METRICS.get(name).meta["mode"]

    def _autocast_dtype(self, precision: str):
        dtype = autocast_dtype(precision, self.device)
        if dtype is None and precision != "fp32":
            self.notes.append(f"trainer.precision={precision} is ignored on {self.device.type}: training in fp32")
        return dtype

    def autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        # no autocast weight cache: it must not outlive a CUDA graph capture
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, cache_enabled=self.graphed is None)

    @property
    def graphed(self):
        """The CUDA graph that full batches replay (trainer.cuda_graphs: a GraphedStep), or None."""
        return self.batch_step.graphed

    def train_step(self, idx: torch.Tensor, batch: torch.Tensor, update: bool) -> None:
        """The step a CUDA graph records (GraphedStep calls it): `batch`, the place in the
        epoch, is a device tensor."""
        self.batch_step.recorded(idx, batch, update)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def improved(self, value: float, best: float, min_delta: float = 0.0) -> bool:
        return value < best - min_delta if self.mode == "min" else value > best + min_delta

    # ---- the loop --------------------------------------------------------
    def fit(self) -> dict:
        """Train from where the trainer stands to trainer.epochs, or until a callback stops it;
        returns the summary. A first SIGINT/SIGTERM stops it where last.pt can hold the state."""
        started, self.first_epoch = time.perf_counter(), self.epoch + 1  # a resumed run starts later
        train = self.data.train
        self._emit("on_fit_start")
        with self.signals:
            # closing: a streamed split stops its workers; worker_failures: one that dies is a DataError
            with contextlib.closing(train), train.worker_failures():
                while self.epoch < self.cfg["trainer"]["epochs"] and self.stop_reason is None:
                    self._train_epoch()
            # the training is over: a first signal from here on lets the test evaluation finish, and the run
            summary = self._summary(time.perf_counter() - started)
        if self.signals.received:
            self.notes.append(f"{self.signals.received} came after the last epoch, during the test evaluation: the "
                              f"run was finished first")
        self._emit("on_fit_end", summary)
        return summary

    def _train_epoch(self) -> None:
        """The rest of the epoch: its batches, the step, the end of the epoch, the callbacks."""
        self._emit("on_epoch_start")
        started, self._first_batch = time.perf_counter(), self.batch_in_epoch
        self.model.train()
        for idx, batch, update in self._batches():
            self.batch_step(idx, batch, update)  # forward, backward, the update when `update`, the sums
            if update:
                self.step += 1
                if self.scheduler is not None and self.scheduler_interval == "step":
                    self.scheduler.step()
            self.batch_in_epoch = batch + 1
            self._emit("on_train_batch_end", batch)
            if update:
                self._stop_if_signalled()  # between two optimizer steps: last.pt can hold this state
        if self.device.type == "cuda":  # the epoch's time includes the GPU work it queued
            torch.cuda.synchronize(self.device)
        record = self._end_epoch(time.perf_counter() - started)
        self._emit("on_epoch_end", record)
        self._stop_if_signalled()  # it came during the validation or the checkpoints: last.pt holds the epoch

    def _batches(self):
        """(training indices, batch, update) for the rest of the epoch, in its seeded order;
        `update`: the batch ends an accumulation window (or the epoch), so the optimizer steps."""
        train, size = self.data.train, self.batch_size
        perm = epoch_permutation(self.cfg["seed"], self.epoch, len(train)) if self.cfg["data"]["shuffle"] \
            else torch.arange(len(train))
        perm = perm.to(train.home)
        batches = range(self.batch_in_epoch, self.batches_per_epoch)
        train.plan(perm, size, batches)  # streamed data start reading ahead
        for batch in batches:
            yield (perm[batch * size:(batch + 1) * size], batch,
                   (batch + 1) % self.accum == 0 or batch + 1 == self.batches_per_epoch)

    def _stop_if_signalled(self) -> None:
        if self.signals.received:
            self._emit("on_interrupt")
            raise TrainingInterrupted(self.signals.received)

    @property
    def stop_requested(self) -> str | None:
        """The signal (SIGINT, SIGTERM) that asked the run to stop at the next step, if any."""
        return self.signals.received

    def non_finite_error(self, batch: int) -> RunError:
        kept = (f"the checkpoint of epoch {self.epoch} is the last good one" if self.epoch else
                "no epoch had ended, so there is no checkpoint to go back to")
        return RunError(f"the loss became NaN or inf at epoch {self.epoch + 1}, step "
                        f"{self.epoch * self.batches_per_epoch + batch + 1} (batch {batch + 1} of the epoch); "
                        f"training stopped: {kept}. HINT: lower optimizer.lr, set trainer.grad_clip, or check the "
                        f"data for NaN values")

    def running_metrics(self) -> dict:
        """Train loss and metrics of the epoch so far (one host sync)."""
        done = self.batch_in_epoch
        if done == 0:
            return {}
        losses = self.batch_losses[:done].double().cpu()
        if not torch.isfinite(losses).all():
            return {"loss": float("nan")}
        sizes = torch.tensor(self._batch_sizes[:done], dtype=torch.float64)
        count = float(sizes.sum())
        weights = sizes if getattr(self.loss_fn, "reduction", "mean") == "mean" else torch.ones_like(sizes)
        metrics = (self.batch_metric_sums[:, :done].sum(1) / count).tolist()
        return {"loss": float((losses * weights).sum()) / count, **dict(zip(self.metric_fns, metrics))}

    def _end_epoch(self, seconds: float) -> dict:
        finite = torch.isfinite(self.batch_losses[:self.batch_in_epoch])
        if not bool(finite.all()):
            raise self.non_finite_error(int((~finite).nonzero()[0]))
        train = self.running_metrics()
        record = {"kind": "epoch", "epoch": self.epoch + 1, "step": self.step,
                  **{f"train_{k}": v for k, v in train.items()}}
        if self.data.val is not None:
            val = evaluate_split(self.model, self.data.val, self.loss_fn, self.metric_fns,
                                 self.cfg["data"]["eval_batch_size"], self.autocast)
            record.update({f"val_{k}": v for k, v in val.items()})
        record.update({"lr": self.lr, "seconds": round(seconds, 4),
                       # the batches this process ran: a resumed epoch starts part-way
                       "samples_per_s": round(sum(self._batch_sizes[self._first_batch:]) / max(seconds, 1e-9),
                                              1)})
        if self.scheduler is not None and self.scheduler_interval == "epoch":
            if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                key = (self.cfg["scheduler"].get("monitor") or self.monitor)
                self.scheduler.step(record[key])
            else:
                self.scheduler.step()
        value = record.get(self.monitor)
        if value is not None and math.isfinite(value) and (not self.best or self.improved(value, self.best["value"])):
            self.best = {"metric": self.monitor, "value": value, "epoch": self.epoch + 1}
            self.best_state = copy.deepcopy(self.model.state_dict())
        self.history.append(record)
        self.epoch += 1
        self.batch_in_epoch = 0
        return record

    def _summary(self, seconds: float) -> dict:
        summary = {"status": "stopped_early" if self.stop_reason else "finished", "stop_reason": self.stop_reason,
                   "first_epoch": self.first_epoch,
                   "epochs": self.epoch, "steps": self.step, "best": self.best, "seconds": round(seconds, 3),
                   "last": self.history[-1] if self.history else None, "notes": self.notes}
        if len(self.schedule_segments) > 1:  # config.yaml gives only the last schedule's length
            summary["schedule_segments"] = self.schedule_segments
        if self.data.test is not None and self.cfg["trainer"]["evaluate_test"]:
            if self.best_state is not None:  # the run is over: the model takes the best weights
                self.model.load_state_dict(self.best_state)
            elif self.best.get("epoch", self.epoch) != self.epoch:  # a resume found no best.pt to take them from
                self.notes.append(f"the best epoch's weights (epoch {self.best['epoch']}) were not available: "
                                  f"checkpoints/best.pt was missing when the run resumed; the test figures are "
                                  f"the last epoch's (epoch {self.epoch})")
            summary["test"] = evaluate_split(self.model, self.data.test, self.loss_fn, self.metric_fns,
                                             self.cfg["data"]["eval_batch_size"],
                                             self.autocast)
            summary["test_epoch"] = self.best["epoch"] if self.best_state is not None else self.epoch
        return summary

    # ---- checkpoints -----------------------------------------------------
    def state_dict(self) -> dict:
        """Everything a checkpoint holds (plain data and tensors only)."""
        import dlcli

        return {
            "dlcli_version": dlcli.__version__, "torch_version": str(torch.__version__),
            "config": self.cfg,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "step": self.step,
            "partial_sums": {"losses": self.batch_losses.cpu(), "metric_sums": self.batch_metric_sums.cpu()}
            if self.batch_in_epoch else None,
            "rng": rng_state(),
            "best": self.best, "monitor": self.monitor, "history": self.history,
            "schedule_segments": self.schedule_segments,
            "normalization": self.data.normalization, "task": self.data.task,
            "num_classes": self.data.num_classes, "class_names": self.data.class_names,
            "data_source": self.data.source, "feature_names": self.data.feature_names,
            "samples": self.sample_counts(),  # with the normalization: what a resume checks its data against
            "data_fingerprint": self.data.fingerprints,  # and the splits' content
        }

    def sample_counts(self) -> dict:
        """Samples per split, as the run trains and evaluates on them."""
        data = self.data
        return {name: len(split) if split is not None else 0
                for name, split in (("train", data.train), ("val", data.val), ("test", data.test))}

    # how the optimizer runs here, not what it computes: torch's load_state_dict takes them from the checkpoint
    OPTIMIZER_IMPLEMENTATION = ("fused", "capturable", "foreach", "differentiable")

    def load_optimizer_state(self, saved: dict) -> None:
        """The saved optimizer state, run the way this trainer built its optimizer: a run trained on
        the CPU and resumed on a GPU gets the fused (and, for a CUDA graph, capturable) update, and a
        GPU run resumed on the CPU the plain one, with the step counts where that update keeps them."""
        built = [{k: group[k] for k in self.OPTIMIZER_IMPLEMENTATION if k in group}
                 for group in self.optimizer.param_groups]
        self.optimizer.load_state_dict(saved)
        for group, flags in zip(self.optimizer.param_groups, built):
            for key in self.OPTIMIZER_IMPLEMENTATION:
                if key in flags:
                    group[key] = flags[key]
                else:
                    group.pop(key, None)
            on_device = bool(group.get("fused") or group.get("capturable"))
            for param in group["params"]:
                step = self.optimizer.state.get(param, {}).get("step")
                if torch.is_tensor(step):
                    self.optimizer.state[param]["step"] = step.to(param.device if on_device else "cpu")

    def load_state_dict(self, state: dict) -> None:
        """Continue from a checkpoint exactly where it stopped."""
        self.model.load_state_dict(state["model"])
        self.load_optimizer_state(state["optimizer"])
        self.epoch, self.batch_in_epoch, self.step = state["epoch"], state["batch_in_epoch"], state["step"]
        self.schedule_segments = [dict(s) for s in state.get("schedule_segments") or
                                  [{"from_epoch": 1, "from_batch": 1, "epochs": state["config"]["trainer"]["epochs"]}]]
        if self.scheduler is not None and state.get("scheduler") is not None:
            length_dependent = SCHEDULERS.get(self.cfg["scheduler"]["type"]).meta.get("length_dependent")
            if length_dependent and self.schedule_segments[-1]["epochs"] != self.cfg["trainer"]["epochs"]:
                self._recompute_schedule(state["scheduler"])
            else:
                self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.best, self.history = dict(state["best"]), list(state["history"])
        if state.get("partial_sums"):
            self.batch_losses.copy_(state["partial_sums"]["losses"])
            self.batch_metric_sums.copy_(state["partial_sums"]["metric_sums"])
        set_rng_state(state["rng"])

    def _recompute_schedule(self, saved: dict) -> None:
        """A resume with another trainer.epochs under a schedule shaped by the run's length
        (cosine, one_cycle): the schedule built here for the new length, taken up at the saved
        step count (the saved one would end too soon, or, for one_cycle, fail past its end), and
        a note that says so: config.yaml describes only the new schedule."""
        import warnings

        state = self.scheduler.state_dict()
        for key in ("last_epoch", "_step_count"):
            if key in saved:
                state[key] = saved[key]
        self.scheduler.load_state_dict(state)
        with warnings.catch_warnings():  # torch's remarks on the step order: this step only sets the lr
            warnings.simplefilter("ignore", UserWarning)
            self.scheduler.last_epoch -= 1
            self.scheduler.step()  # the lr of the new schedule at the saved step
        previous = self.schedule_segments
        self.schedule_segments = previous + [{"from_epoch": self.epoch + 1, "from_batch": self.batch_in_epoch + 1,
                                              "epochs": self.cfg["trainer"]["epochs"]}]
        spans = [f"{_span(seg, nxt)} " + (f"followed the {seg['epochs']}-epoch schedule" if i == 0 else
                                          f"the {seg['epochs']}-epoch one")
                 for i, (seg, nxt) in enumerate(zip(previous, self.schedule_segments[1:]))]
        start = f"epoch {self.epoch + 1}" + (f", batch {self.batch_in_epoch + 1}" if self.batch_in_epoch else "")
        self.notes.append(f"scheduler {self.cfg['scheduler']['type']} is recomputed for "
                          f"{self.cfg['trainer']['epochs']} epochs from {start}; {', '.join(spans)} (config.yaml "
                          f"describes the new schedule only; summary.json lists the segments)")

    # ---- plumbing --------------------------------------------------------
    def _emit(self, hook: str, *args) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)


def _span(segment: dict, following: dict) -> str:
    """The training a schedule segment covered, up to where the next one starts:
    'epochs 1-2', 'epoch 3', 'epoch 1 to epoch 2, batch 3'."""
    first, first_batch = segment["from_epoch"], segment["from_batch"]
    last, last_batch = following["from_epoch"], following["from_batch"] - 1  # the last batch covered
    if last_batch == 0:
        last, last_batch = last - 1, None  # the segment ended with an epoch
    if first_batch == 1 and last_batch is None:
        return f"epoch {first}" if first == last else f"epochs {first}-{last}"
    start = f"epoch {first}" + (f", batch {first_batch}" if first_batch > 1 else "")
    end = f"epoch {last}" + (f", batch {last_batch}" if last_batch else "")
    return f"{start} to {end}"
