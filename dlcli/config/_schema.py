"""The sections of a config, declared with the same `Arg` records as the registry.

A section that names a registered thing (`optimizer.type`, `data.dataset`, a
layer's type) takes that entry's arguments beside its own; the validator reads
both declarations, so there is no second list of keys anywhere.
"""

from __future__ import annotations

import re

from dlcli.errors import CONTROL_CHARACTERS
from dlcli.registry import Arg, AutoBool, Bool, Entry, Float, Int, IntList, Kind, KindError, Optional, Str

SECTIONS = ("name", "seed", "model", "data", "optimizer", "scheduler", "loss", "trainer", "metrics")


class Device(Kind):
    describe = "auto | cpu | cuda | cuda:N | mps"

    def check(self, value):
        if isinstance(value, str) and re.fullmatch(r"auto|cpu|cuda|cuda:\d+|mps", value):
            return value
        raise KindError("expected auto, cpu, cuda, cuda:N or mps")


class RunName(Kind):
    """One folder name under trainer.out_dir: a name with a path separator, or `.` or `..`,
    would put the run somewhere else (`../../x`, `/abs/path`)."""

    describe = "str (a folder name: no / or \\)"
    max_bytes = 255  # NAME_MAX: the longest folder name most file systems hold

    def check(self, value):
        if not isinstance(value, str):
            raise KindError("expected a string")
        if any(c in value for c in "/\\\0") or value in (".", ".."):
            raise KindError("expected a run name, one folder under trainer.out_dir: any characters except "
                            "'/', '\\' and NUL, and not '.' or '..'")
        if any("\ud800" <= c <= "\udfff" for c in value):  # bytes of a file name or argument that are not UTF-8
            raise KindError("expected a run name of UTF-8 text (config.yaml records it, and must read back), "
                            "received one holding bytes that are not UTF-8")
        control = CONTROL_CHARACTERS.search(value)
        if control is not None:  # an ESC sequence in a name reaches every terminal that lists the run
            raise KindError(f"expected a run name of printable characters, received one with the control "
                            f"character {control.group()!r}")
        size = len(value.encode("utf-8", "surrogateescape"))
        if size > self.max_bytes:
            raise KindError(f"expected a run name of at most {self.max_bytes} bytes (it names a folder), received "
                            f"one of {size:,} bytes")
        return value


TOP = Entry("config", "a dlcli config", args=(
    Arg("name", Optional(RunName()), None, "run name (default: the file name); runs go to runs/<name>/"),
    Arg("seed", Int(min=0, max=2**32 - 1), 0, "seed for every random number generator"),
    Arg("model", Kind(), help="input_shape and layers"),
    Arg("data", Kind(), help="dataset and batching"),
    Arg("optimizer", Kind(), {"type": "adam"}, "optimizer type and arguments"),
    Arg("scheduler", Kind(), None, "learning-rate scheduler type and arguments"),
    Arg("loss", Kind(), "cross_entropy", "loss type (and arguments)"),
    Arg("trainer", Kind(), {}, "training loop settings"),
    Arg("metrics", Kind(), None, "metric names (default: accuracy for classification, mae for regression)"),
))

MODEL = Entry("model", "the network", args=(
    Arg("input_shape", IntList(max_len=4), help="shape of one sample, without the batch axis: "
                                                "[channels, height, width] or [steps, features]"),
    Arg("layers", Kind(), help="list of layers; each `- type: {arguments}`"),
))

DATA = Entry("data", "the data set and how it is batched", args=(
    Arg("dataset", Str(), help="registered dataset name (dlcli list datasets)"),
    Arg("batch_size", Int(min=1, max=2**20), 128, "samples per training step"),
    Arg("eval_batch_size", Int(min=1, max=2**20), 256, "samples per evaluation step (larger: faster, more memory)"),
    Arg("val_split", Float(min=0.0, max=1.0, max_open=True), 0.0,
        "fraction of the training set held out for validation"),
    Arg("normalize", Bool(), True, "standardize inputs with the training set's mean and std"),
    Arg("subset", Optional(Int(min=1)), None,
        "use only the first N training samples (quick runs); from an image folder, stored class by class, "
        "a seeded sample of N across its classes"),
    Arg("test_subset", Optional(Int(min=1)), None, "use only the first N test samples (image folders: as subset)"),
    Arg("split_seed", Optional(Int(min=0)), None,
        "seed of the data's random choices: the validation split, image-folder subsets and the sample behind "
        "image normalization (null: the run's seed); fix it to compare runs of several seeds on the same split"),
    Arg("shuffle", Bool(), True, "reshuffle the training set every epoch"),
    Arg("drop_last", Bool(), False, "drop the last partial batch of each epoch"),
))

EARLY_STOPPING = Entry("early_stopping", "stop when the monitored metric stops improving", args=(
    Arg("patience", Int(min=0), 5, "epochs without improvement before stopping"),
    Arg("min_delta", Float(min=0.0), 0.0, "smallest change that counts as improvement"),
))

TRAINER = Entry("trainer", "the training loop", args=(
    Arg("epochs", Int(min=1, max=1_000_000), 10, "passes over the training set", resume="length"),
    Arg("device", Device(), "auto", "where to train: auto picks cuda, then mps, then cpu", resume="machine"),
    Arg("precision", Str(("fp32", "bf16", "fp16")), "fp32", "autocast precision on GPU (ignored on CPU)"),
    Arg("grad_clip", Optional(Float(min=0.0, min_open=True)), None, "clip the gradient norm to this"),
    Arg("grad_accum", Int(min=1, max=4096), 1, "batches per optimizer step"),
    Arg("monitor", Optional(Str()), None, "metric for best.pt and early stopping "
                                          "(default: val_loss with validation data, else train_loss)"),
    Arg("monitor_mode", Str(("auto", "min", "max")), "auto", "whether lower or higher is better"),
    Arg("early_stopping", Kind(), None, "{patience, min_delta}, or null for none", resume="length"),
    Arg("log_every_steps", Int(min=0), 0, "also log train metrics every N steps: the running means of the epoch "
        "so far, as the epoch line gives them at its end (0: per epoch only)", resume="records"),
    Arg("out_dir", Str(empty=False), "runs", "where run directories are created"),
    Arg("progress", Str(("auto", "bar", "plain", "none")), "auto", "bar on a terminal, plain lines otherwise",
        resume="display"),
    Arg("evaluate_test", Bool(), True, "evaluate best.pt on the test split at the end", resume="records"),
    Arg("compile", Bool(), False,
        "torch.compile the model's forward (compiling takes seconds to minutes: it pays off on long runs only)"),
    Arg("cuda_graphs", Bool(), False, "capture the training step in a CUDA graph (GPU only)"),
    Arg("channels_last", AutoBool(), "auto", "channels-last memory format (auto: for conv2d models on the CPU)"),
    Arg("fuse", Bool(), True, "exact rewrites that run faster (e.g. max-pool before ReLU)"),
    Arg("threads", Optional(Int(min=1, max=1024)), None, "CPU threads (default: torch's choice)", resume="machine"),
    Arg("deterministic", Bool(), False, "deterministic cuDNN algorithms: repeatable GPU runs and resumes, slower"),
))
