"""Starting and resuming training runs: data, trainer, run directory, callbacks.

    summary = train(cfg, callbacks=[progress])          # a new run
    summary = resume("runs/mnist_cnn/20261126-120000")  # continue where it stopped
"""

from __future__ import annotations

import functools
import json
import os
from contextlib import ExitStack
from pathlib import Path
from shlex import quote

from dlcli.errors import CheckpointError, DataError, RunError, short_list, short_repr, shorten
from dlcli.train.callbacks import Callback, Checkpointer, EarlyStopping, MetricsLogger
from dlcli.train.trainer import SecondSignal, Trainer, TrainingInterrupted

__all__ = ["train", "resume", "run_start", "Trainer", "TrainingInterrupted", "SecondSignal", "Callback", "RunHandle"]


# where a data set's files are (dataset arguments): a resume may find its data elsewhere
DATA_PATHS = ("path", "test_path", "root")
# what a resume may change: how long, where and how fast it trains on, what it shows and logs, where its
# data are now (the data found there must be the data the run trained on: _refuse_changed_data); nothing
# that changes what the run computes
RESUME_OVERRIDES = ("trainer.epochs", "trainer.early_stopping", "trainer.device", "trainer.threads",
                    "trainer.progress", "trainer.log_every_steps", "trainer.evaluate_test", "data.workers",
                    *(f"data.{key}" for key in DATA_PATHS))
RESUME_OVERRIDES_SAID = ("trainer.epochs, trainer.early_stopping, trainer.device, trainer.threads, trainer.progress, "
                         "trainer.log_every_steps, trainer.evaluate_test, data.workers and the data's place "
                         "(data.path, data.test_path, data.root)")


class RunHandle:
    """Where a run writes; set as soon as the directory exists (the CLI reports it)."""

    def __init__(self):
        self.run_dir: Path | None = None
        self.trainer: Trainer | None = None


def _setup(cfg: dict, callbacks, handle: RunHandle | None, run_dir: Path | None = None,
           held: ExitStack | None = None, normalization: dict | None | str = "compute",
           overrides: list[str] = ()):
    from dlcli.config import dump_config
    from dlcli.data.prepare import load_splits, prepare_data
    from dlcli.memory import refuse_training_beyond_memory
    from dlcli.model import build_meta_model, plan_model, resolve_device
    from dlcli.run_lock import run_lock
    from dlcli.runs import ENV_FILE, CONFIG_FILE, create_run_dir, text_sha256, write_text_atomic
    from dlcli.train.warmup import DeviceWarmup

    plan = plan_model(cfg)  # validation's
    # refuses absurd sizes before allocating anything; built once: the trainer materializes it
    meta_model = build_meta_model(plan, fuse=cfg["trainer"]["fuse"])
    device = resolve_device(cfg["trainer"]["device"])
    warmup = DeviceWarmup.start(cfg, device, meta_model)  # the GPU loads its libraries while the CPU reads the data
    try:
        splits = load_splits(cfg, plan, from_checkpoint=run_dir is not None)  # a resumed run's: never downloads
    finally:
        warmup.join()
    if isinstance(normalization, dict):  # a checkpoint's (resume): it must line up with the data read again
        from dlcli.inference import normalization_for

        normalization = normalization_for(normalization, splits, splits.source or cfg["data"]["dataset"])
    # bad data fails here, before a run directory exists
    data = prepare_data(cfg, plan, device, splits, normalization, fingerprint=True)
    refuse_training_beyond_memory(cfg, meta_model, device)  # with the data in memory, before the model is
    trainer = Trainer(cfg, data, device, model=meta_model)  # and settings that do not fit it (drop_last...)
    if warmup.note():
        trainer.notes.append(warmup.note())
    if run_dir is None:
        run_dir = create_run_dir(cfg["trainer"]["out_dir"], cfg["name"])
        held.enter_context(run_lock(run_dir))  # the run's, from its first file to the process's end
        text = dump_config(cfg)
        write_text_atomic(run_dir / CONFIG_FILE, text)
        record = {**_start_record(cfg, device, overrides), "config_sha256": text_sha256(text)}  # what dlcli wrote
        write_text_atomic(run_dir / ENV_FILE, json.dumps(record, indent=2) + "\n")
    if handle is not None:
        handle.run_dir = run_dir
    t = cfg["trainer"]
    # the checkpoint first: it is what a resume needs, the logs are rebuilt from it
    standard = [Checkpointer(run_dir), MetricsLogger(run_dir, t["log_every_steps"])]
    if t["early_stopping"]:
        standard.append(EarlyStopping(t["early_stopping"]["patience"], t["early_stopping"]["min_delta"]))
    trainer.callbacks = standard + list(callbacks)
    if handle is not None:
        handle.trainer = trainer
    return trainer, run_dir


def _fit(trainer: Trainer, run_dir: Path) -> dict:
    import torch

    from dlcli.runs import write_summary

    # absolute, as the data paths: summary.json is read from any directory
    base = {"name": trainer.cfg["name"], "run_dir": str(Path(run_dir).absolute()), "monitor": trainer.monitor}

    def stopped(status: str, **why) -> dict:
        return {**base, "status": status, **why, "epochs": trainer.epoch, "steps": trainer.step, "best": trainer.best}

    try:
        try:
            summary = trainer.fit()
        except torch.cuda.OutOfMemoryError:  # torch.OutOfMemoryError since torch 2.5; the same class
            batch = trainer.batch_size
            raise RunError(f"out of {trainer.device.type.upper()} memory at data.batch_size={batch} "
                           f"(epoch {trainer.epoch + 1}); HINT: try data.batch_size={max(batch // 2, 1)}, "
                           f"trainer.precision=bf16, or a smaller model") from None
    except TrainingInterrupted as stop:
        _record_stop(run_dir, stopped("interrupted", signal=stop.signal_name))
        raise
    except KeyboardInterrupt as err:  # SecondSignal, or a Ctrl-C outside the training loop's handlers
        why = (f"a second {err}: stopped at once" if isinstance(err, SecondSignal) else
               "SIGINT outside the training loop: stopped at once")
        _record_stop(run_dir, stopped("interrupted", signal=f"{why}, last.pt may be behind these counts"))
        raise
    except (RunError, DataError) as err:  # DataError: a streamed image that cannot be read
        _record_stop(run_dir, stopped("failed", error=str(err)))
        raise
    except BaseException as err:
        _record_stop(run_dir, stopped("crashed", error=f"{type(err).__name__}: {err}"))
        raise
    summary = {**base, **summary}
    write_summary(run_dir, summary)
    return summary


def _record_stop(run_dir: Path, summary: dict) -> None:
    """summary.json of a run that stopped; when even that cannot be written (the disk that
    stopped the run is full), the error that stopped it is what gets reported."""
    from dlcli.runs import write_summary

    try:
        write_summary(run_dir, summary)
    except RunError:
        pass


def train(cfg: dict, callbacks: list[Callback] = (), handle: RunHandle | None = None,
          overrides: list[str] = ()) -> dict:
    """Train a resolved config in a new run directory; returns the summary. `overrides`: the
    key.path=value overrides `cfg` was resolved with, recorded in environment.json."""
    with ExitStack() as held:  # the run's lock
        trainer, run_dir = _setup(cfg, callbacks, handle, held=held, overrides=overrides)
        trainer.start = run_start(trainer, run_dir)
        return _fit(trainer, run_dir)


def _start_record(cfg: dict, device, overrides: list[str]) -> dict:
    """environment.json's record of one start or resume: the machine and versions, who chose the
    CPU threads, and the command line's overrides."""
    from dlcli.runs import environment_record

    return {**environment_record(str(device)), "cpu_threads_set_by": threads_set_by(cfg),
            "overrides": list(overrides)}


def threads_set_by(cfg: dict) -> str:
    """Who chose the CPU thread count: "trainer.threads", or "default" (torch's choice)."""
    return "trainer.threads" if cfg["trainer"]["threads"] else "default"


def run_start(trainer: Trainer, run_dir: Path, resumed: bool = False) -> dict:
    """What the run starts training with, before its first epoch: device, CPU threads (and who
    chose them), parameters, samples per split, run directory, and where a resume starts."""
    import torch

    params = list(trainer.model.parameters())
    device = trainer.device
    start = {"run_dir": str(run_dir), "device": str(device),
             "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
             "threads": torch.get_num_threads(), "threads_set_by": threads_set_by(trainer.cfg),
             "parameters": sum(p.numel() for p in params),
             "trainable": sum(p.numel() for p in params if p.requires_grad),
             "samples": trainer.sample_counts(), "resumed": None}
    if resumed:
        start["resumed"] = {"epoch": trainer.epoch + 1, "batch": trainer.batch_in_epoch,
                            "batches": trainer.batches_per_epoch, "epochs": trainer.cfg["trainer"]["epochs"]}
    return start


def _holding_the_run_lock(resume_run):
    """The resume holds its run's lock (RUN/.lock) from before it reads the run to continue it
    until it returns: a run that another process is training is refused, untouched."""

    @functools.wraps(resume_run)
    def locked(path, *args, **kwargs):
        from dlcli.run_lock import run_lock

        with run_lock(_run_dir_to_resume(Path(path))):
            return resume_run(path, *args, **kwargs)

    return locked


def _run_dir_to_resume(path: Path) -> Path | None:
    """The run directory `resume(path)` continues, found without reading a checkpoint (a run
    still in its first epoch has none); None when there is none (resume says why)."""
    from dlcli.checkpoint import resolve_checkpoint_path
    from dlcli.runs import CONFIG_FILE

    try:
        if (path / CONFIG_FILE).is_file():
            return path
        run_dir = resolve_checkpoint_path(path, prefer="last.pt").parent.parent  # as resume finds it
        return run_dir if (run_dir / CONFIG_FILE).is_file() else None
    except (CheckpointError, OSError):  # a path too long for the file system...: resume says what is wrong
        return None


@_holding_the_run_lock
def resume(path: str | Path, overrides: list[str] = (), callbacks: list[Callback] = (),
           handle: RunHandle | None = None) -> dict:
    """Continue a run from its last.pt (or a given checkpoint) in the same directory."""
    overrides = list(overrides)
    state, cfg, run_dir = _resumable(Path(path), overrides)  # every refusal that needs no data, first
    trainer, _ = _setup(cfg, callbacks, handle, run_dir=run_dir, normalization=_kept_normalization(cfg, state))
    _refuse_changed_data(run_dir, state, trainer)
    _load_training_state(trainer, state, run_dir)
    # nothing in the run directory changes before the state has loaded and the data checked
    _update_run_records(run_dir, state, cfg, trainer, overrides)
    trainer.start = run_start(trainer, run_dir, resumed=True)
    return _fit(trainer, run_dir)


def _kept_normalization(cfg: dict, state: dict) -> dict | None | str:
    """The checkpoint's normalization for image files, which are normalized over every image when
    held in memory and over a sample of them when streamed, a choice data.in_memory: auto makes by
    the memory free when a process starts: a resume must not see "other data" in that. "compute"
    for other data sets (and checkpoints without one), whose statistics the resume checks."""
    from dlcli.data import DATASETS

    images = DATASETS.get(cfg["data"]["dataset"]).meta.get("images")
    return state["normalization"] if images and "normalization" in state else "compute"


def _resumable(path: Path, overrides: list[str]) -> tuple[dict, dict, Path]:
    """(checkpoint state, config with the overrides, run directory) of a run that can go on;
    a run that cannot (no checkpoint, a rewind, nothing left to train, its data gone...) is
    refused here, before anything is built or written."""
    from dlcli.checkpoint import checkpoint_config, load_checkpoint, load_model_from_checkpoint
    from dlcli.runs import CONFIG_FILE

    _refuse_run_without_checkpoint(path)
    state = load_checkpoint(path, prefer="last.pt")
    cfg = checkpoint_config(state)
    planned = cfg["trainer"]["epochs"]  # what the run was training to, before any override
    load_model_from_checkpoint(state, "cpu", cfg)  # the weights fit the config, before anything else
    cfg = _with_resume_overrides(cfg, overrides)
    ckpt_path = Path(state["path"])
    run_dir = ckpt_path.parent.parent
    if not (run_dir / CONFIG_FILE).is_file():  # the mark of a run: resume writes its records there
        raise CheckpointError(f"{ckpt_path}: not inside a run directory (no {run_dir / CONFIG_FILE}); --resume "
                              f"continues a run in its directory and writes the run's logs there. HINT: to continue "
                              f"this run, put the checkpoint at DIR/checkpoints/last.pt beside the run's "
                              f"DIR/config.yaml, then: dlcli train --resume DIR; to train a new run: dlcli train "
                              f"CONFIG (evaluate, predict and export take the checkpoint where it is)")
    _refuse_linked_files(run_dir)
    _refuse_rewind(run_dir, state)
    _refuse_fewer_epochs(run_dir, state, cfg, planned)
    _refuse_nothing_to_train(run_dir, state, cfg, overrides)
    _refuse_missing_data(run_dir, state, cfg, overrides)
    return state, cfg, run_dir


def _with_resume_overrides(cfg: dict, overrides: list[str]) -> dict:
    """The checkpoint's config with the overrides a resume takes (how long, where and how it
    trains on, where its data are now); any other is refused: the rest must stay as trained."""
    if not overrides:
        return cfg
    import copy

    from dlcli.config import resolve_config

    # data paths too: the data they find must be the data the run trained on (_refuse_changed_data)
    allowed = tuple(f"{key}=" for key in RESUME_OVERRIDES) + ("trainer.early_stopping.",)
    bad = [o for o in overrides if not o.startswith(allowed)]
    if bad:
        raise RunError(f"--resume takes only overrides of {RESUME_OVERRIDES_SAID} (the rest must stay as trained); "
                       f"received: {short_list(bad, lambda override: shorten(override, 100), sep=' ')}")
    return resolve_config(copy.deepcopy(cfg), {}, "command line", overrides, default_name=cfg["name"],
                          guards=False)  # the checkpoint's model, as checkpoint_config took it


def _refuse_nothing_to_train(run_dir: Path, state: dict, cfg: dict, overrides: list[str]) -> None:
    """A finished run without more epochs, or one that stopped early and would stop again. A run
    killed after its last checkpoint but before its summary is completed, not refused."""
    ended = _summary_at(run_dir, state) if not state.get("batch_in_epoch") else None
    if ended and ended.get("status") == "finished" and state["epoch"] >= cfg["trainer"]["epochs"]:
        done = (f"already trained {state['epoch']} epochs; trainer.epochs={cfg['trainer']['epochs']} is not more "
                f"than that" if any(o.startswith("trainer.epochs=") for o in overrides) else
                f"already finished its {state['epoch']} epochs")
        raise RunError(f"{run_dir}: the run {done}; to train longer: dlcli train --resume {quote(str(run_dir))} "
                       f"trainer.epochs=N (N > {state['epoch']})")
    if ended and ended.get("status") == "stopped_early" \
            and not any(o.startswith("trainer.early_stopping") for o in overrides):
        raise RunError(f"{run_dir}: the run stopped early at epoch {state['epoch']} ({ended.get('stop_reason')}), "
                       f"and would stop again before training; to train on: dlcli train --resume {quote(str(run_dir))} "
                       f"trainer.early_stopping.patience=N (a larger N) or trainer.early_stopping=null")


def _load_training_state(trainer: Trainer, state: dict, run_dir: Path) -> None:
    """The trainer takes up the checkpoint's state (weights, optimizer, RNGs, progress) and the
    best epoch's weights, from best.pt, for the test evaluation at the end."""
    try:
        trainer.load_state_dict(state)
    except (KeyError, ValueError, RuntimeError, TypeError, IndexError) as err:
        raise CheckpointError(f"{state['path']}: the training state does not fit its config "
                              f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
                              f"evaluate and predict can still use its weights") from None
    trainer.best_state = _best_weights(run_dir, state)


def _update_run_records(run_dir: Path, state: dict, cfg: dict, trainer: Trainer, overrides: list[str]) -> None:
    """The run's files as the resume continues it: config.yaml with the overrides (hand edits
    kept aside, and noted), no leftover temporaries, this resume in environment.json, and the
    logs cut back to what the checkpoint covers."""
    from dlcli.config import dump_config
    from dlcli.runs import CONFIG_FILE, MetricsLog, read_environment, read_metrics, write_text_atomic

    environment = read_environment(run_dir) or {}  # lost or damaged: this resume's record stands for the run
    current, text = _read_text(run_dir / CONFIG_FILE), dump_config(cfg)
    edited = _hand_edits(run_dir, state, current, {start.get("config_sha256") for start in _starts(environment)})
    if current != text:  # the run's record says what it now trains to (trainer.epochs=N...)
        if edited is not None and current and current.strip():  # the user's text is kept beside it
            kept = _edited_config_path(run_dir, current)
            if not kept.exists():
                write_text_atomic(kept, current)
            edited += f"; config.yaml now shows the run's config, and the edited text is in {kept.name}"
        write_text_atomic(run_dir / CONFIG_FILE, text)
    if edited is not None:
        trainer.notes.append(edited)
    _remove_temporary_files(run_dir)
    threads = _other_threads_note(_starts(environment)[-1], trainer)  # before this resume is added
    if threads:
        trainer.notes.append(threads)
    _record_resume(run_dir, environment, trainer, state, text, overrides)
    # The logs may run ahead of the checkpoint (killed between the two writes) or
    # end in a torn line: keep what the checkpoint covers, from its own history.
    log = MetricsLog(run_dir)
    steps = [r for r in read_metrics(log.jsonl)[0] if r.get("kind") == "step" and r.get("step", 0) <= state["step"]]
    log.rewrite(sorted(steps + list(state["history"]), key=lambda r: (r.get("step", 0), r.get("kind") == "epoch")))


EDITED_CONFIG_FILE = "config.edited.yaml"  # then config.edited.1.yaml, config.edited.2.yaml...


def _edited_config_path(run_dir: Path, text: str) -> Path:
    """Where a hand-edited config.yaml (`text`) is kept: the copy of an earlier resume that holds
    this very text, else the first free name of config.edited.yaml, config.edited.1.yaml, ...:
    each edit is kept, none overwritten."""
    import itertools

    for n in itertools.count():
        path = run_dir / (EDITED_CONFIG_FILE if n == 0 else EDITED_CONFIG_FILE.replace(".yaml", f".{n}.yaml"))
        if not os.path.lexists(path):  # a dangling link too is somebody's: not written through, skipped
            return path
        if not path.is_symlink() and _read_text(path) == text:
            return path


def _hand_edits(run_dir: Path, state: dict, text: str | None, written: set) -> str | None:
    """A note when the run's config.yaml (its `text`; None: unreadable) is not what the run wrote
    (edited by hand): a resume trains on the checkpoint's config, which the edits do not change.
    `written`: the sha256 of each config.yaml text dlcli wrote for the run (environment.json)."""
    import yaml

    from dlcli.config import dump_config
    from dlcli.errors import format_path
    from dlcli.runs import CONFIG_FILE, text_sha256

    path = run_dir / CONFIG_FILE
    saved = dump_config(state["config"])
    if text is None:
        return None
    if text == saved or text_sha256(text) in written:
        return None  # dlcli's own text (a resume that wrote it may have died before its first checkpoint)
    try:
        changed = [format_path(key) or "the whole file" for key in _differences(yaml.safe_load(text),
                                                                                yaml.safe_load(saved))]
    except yaml.YAMLError:
        changed = []
    what = f" ({short_list(changed, limit=6)})" if changed else " (comments or layout)" if text.strip() else ""
    return (f"{path} was edited since the run wrote it{what}: a resume trains on the config in its checkpoint; "
            f"--resume takes overrides of {RESUME_OVERRIDES_SAID} only")


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _starts(environment: dict) -> list[dict]:
    """environment.json's records of the run's processes: its start's, then each resume's."""
    resumes = environment.get("resumes") if isinstance(environment.get("resumes"), list) else []
    return [environment, *(resume for resume in resumes if isinstance(resume, dict))]


def _differences(a, b, path: tuple = ()) -> list[tuple]:
    """The key paths where two parsed YAML values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [p for key in dict.fromkeys([*a, *b]) for p in _differences(a.get(key), b.get(key), path + (key,))]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [p for i, (x, y) in enumerate(zip(a, b)) for p in _differences(x, y, path + (i,))]
    return [] if a == b else [path]


def _refuse_missing_data(run_dir: Path, state: dict, cfg: dict, overrides: list[str]) -> None:
    """A data path of the checkpoint that no longer exists (the data moved, another machine):
    refused saying where the path came from and how to point the resume to the data."""
    given = {override.split("=", 1)[0] for override in overrides}
    for key in DATA_PATHS:
        value = cfg["data"].get(key)
        if key == "root" and cfg["data"].get("download"):
            continue  # a cache folder that was cleaned: the data set downloads again
        if value and f"data.{key}" not in given and not Path(value).exists():
            again = " ".join(["dlcli train --resume", quote(str(run_dir)), *map(quote, overrides),
                              f"data.{key}=NEW_PATH"])
            raise DataError(f"{value}: not found; data.{key} comes from the run's checkpoint {state['path']}, "
                            f"where the data were when the run trained. HINT: if they moved, point the resume to "
                            f"them: {again} (the same data: the resume compares them with the checkpoint)")


def _refuse_changed_data(run_dir: Path, state: dict, trainer: Trainer) -> None:
    """The data a resume reads again must be what the checkpoint trained on: the same samples per
    split and the same normalization statistics (to the last bit) and classes, and then the same
    content (dlcli.data.fingerprint: labels and inputs, or a streamed folder's files). Other data
    would train the rest of the run on another training set, validation split and normalization than
    its first part, with test figures that `dlcli evaluate` cannot reproduce. What an older
    checkpoint did not record is not compared."""
    data, changes = trainer.data, []
    if isinstance(state.get("samples"), dict):
        now = trainer.sample_counts()
        for key, name in (("train", "training"), ("val", "validation"), ("test", "test")):
            if key in state["samples"] and state["samples"][key] != now[key]:
                changes.append(f"{now[key]} {name} samples now, {state['samples'][key]} then")
    partial = (state.get("partial_sums") or {}).get("losses")
    if not changes and partial is not None and len(partial) != trainer.batches_per_epoch:
        changes.append(f"{trainer.batches_per_epoch} batches an epoch now, {len(partial)} then")
    if "normalization" in state and state["normalization"] != data.normalization:
        changes.append(_normalization_change(data.normalization, state["normalization"]))
    if "num_classes" in state and state["num_classes"] != data.num_classes:
        changes.append(f"{data.num_classes} classes now, {state['num_classes']} then")
    elif "class_names" in state and state["class_names"] != data.class_names:
        names = (lambda n: short_list(n, limit=5) if isinstance(n, (list, tuple)) else short_repr(n, 60))
        changes.append(f"class names {names(data.class_names)} now, {names(state['class_names'])} then")
    if not changes:  # the same counts, normalization and classes: the same samples?
        from dlcli.data.fingerprint import content_changes

        images = len(trainer.cfg["model"]["input_shape"]) == 3
        changes = content_changes(state.get("data_fingerprint"), data.fingerprints, trainer.sample_counts(), images)
    if changes:
        raise DataError(f"{data.source}: the data changed since the checkpoint {state['path']} was written: "
                        f"{'; '.join(changes)}; resuming would train the rest of the run on other data than its "
                        f"first part. HINT: restore the data the run trained on (data.path=PATH if it moved), or "
                        f"train a new run on this data: dlcli train {quote(str(run_dir / 'config.yaml'))}")


def _normalization_change(now: dict | None, then: dict | None) -> str:
    """The first difference of two normalizations: 'normalization mean[0] 0.2027 now, -0.04712 then'."""
    if not isinstance(now, dict) or not isinstance(then, dict):
        show = (lambda n: f"{len(n.get('mean') or [])} means and stds" if isinstance(n, dict) else
                "none" if n is None else short_repr(n, 60))
        return f"normalization {show(now)} now, {show(then)} then"
    for key in ("axis", "mean", "std"):
        a, b = now.get(key), then.get(key)
        if a == b:
            continue
        if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            i = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
            a, b = a[i], b[i]
            # 6 digits where they show the difference, else every digit
            numbers = all(isinstance(v, (int, float)) for v in (a, b))
            show = (lambda v: f"{v:.6g}") if numbers and f"{a:.6g}" != f"{b:.6g}" else short_repr
            return f"normalization {key}[{i}] {show(a)} now, {show(b)} then"
        count = (lambda v: f"{len(v)} values" if isinstance(v, list) else short_repr(v, 40))
        return f"normalization {key} {count(a)} now, {count(b)} then"
    return "normalization differs"


def _record_resume(run_dir: Path, environment: dict, trainer: Trainer, state: dict, config_text: str,
                   overrides: list[str]) -> None:
    """environment.json (as read: `environment`) keeps the first start's record and gains one per
    resume (its command, directory, device and versions may differ; `config_text`: the
    config.yaml it left): what ran, where, for each part of the run."""
    from dlcli.runs import ENV_FILE, text_sha256, write_text_atomic

    resumed = {**_start_record(trainer.cfg, trainer.device, overrides), "from_epoch": state["epoch"] + 1,
               "from_batch": (state.get("batch_in_epoch") or 0) + 1, "checkpoint": str(Path(state["path"]).absolute()),
               "config_sha256": text_sha256(config_text)}
    record = {**environment, "resumes": [*_starts(environment)[1:], resumed]}
    write_text_atomic(run_dir / ENV_FILE, json.dumps(record, indent=2) + "\n")


def _other_threads_note(last: dict, trainer: Trainer) -> str | None:
    """On the CPU, another thread count sums in another order: a note when the run last trained
    (`last`: environment.json's record of its start, or of its latest resume) with other threads
    than this resume."""
    import torch

    trained, now = last.get("cpu_threads"), torch.get_num_threads()
    on_cpu = trainer.device.type == "cpu" and str(last.get("device")).split(":")[0] == "cpu"
    if not on_cpu or type(trained) is not int or trained == now:
        return None
    return (f"trained with {trained} CPU thread{'s' if trained != 1 else ''}, resuming with {now}: results will not "
            f"be bit-identical to an uninterrupted run; trainer.threads={trained} to match")


def _refuse_linked_files(run_dir: Path) -> None:
    """The run's own files and checkpoints/ as a resume will write them: a symbolic link, a FIFO
    or a folder in the place of one (a run received from someone else: `metrics.jsonl ->
    ~/.bashrc`) is refused before anything is written, rather than written through or halfway."""
    from dlcli.files import refuse_irregular_target
    from dlcli.runs import CHECKPOINTS_DIR, RUN_RECORDS

    folder = run_dir / CHECKPOINTS_DIR
    if folder.is_symlink():
        raise RunError(f"{folder}: it is a symbolic link, and a resume writes the run's checkpoints there; dlcli "
                       f"never writes through a link: make it a folder of the run (a run copied from elsewhere?) "
                       f"and try again (nothing in the run was changed)")
    for path in [run_dir / name for name in RUN_RECORDS] + [folder / "last.pt", folder / "best.pt"]:
        try:
            refuse_irregular_target(path)
        except OSError as err:
            raise RunError(f"{path}: a resume rewrites this file of the run, but {err.strerror} (nothing in the "
                           f"run was changed)") from None


def _refuse_rewind(run_dir: Path, state: dict) -> None:
    """A checkpoint behind the run's last.pt (best.pt of a run that went on) would train the
    later epochs again over their checkpoints and records: refused before anything is written."""
    from dlcli.checkpoint import load_checkpoint
    from dlcli.runs import MetricsLog, read_metrics

    given, last = Path(state["path"]), run_dir / "checkpoints" / "last.pt"
    if given.resolve() == last.resolve():
        return  # the run's own end; logs that ran ahead of it (a kill between writes) are cut back
    here = (state["epoch"], state.get("batch_in_epoch") or 0)
    furthest, where = here, None
    if last.is_file():
        try:
            saved = load_checkpoint(last)
        except CheckpointError:
            saved = None  # the metrics log still tells how far the run went
        if saved is not None and (saved["epoch"], saved.get("batch_in_epoch") or 0) > furthest:
            furthest, where = (saved["epoch"], saved.get("batch_in_epoch") or 0), last
    log = MetricsLog(run_dir).jsonl
    logged = [r["epoch"] for r in read_metrics(log)[0] if r.get("kind") == "epoch" and isinstance(r.get("epoch"), int)]
    if logged and (max(logged), 0) > furthest:
        furthest, where = (max(logged), 0), log
    if where is None:
        return
    first, end = here[0] + 1, furthest[0] + (1 if furthest[1] else 0)
    later = f"epoch {first}" if first == end else f"epochs {first}-{end}"
    raise RunError(f"{given}: this checkpoint is at {_position(here)}, but the run went on to {_position(furthest)} "
                   f"({where}); resuming from it would discard {later} and train again over them (last.pt, "
                   f"metrics.jsonl and summary.json rewritten). To continue the run from its last checkpoint: "
                   f"dlcli train --resume {quote(str(run_dir))} (with trainer.epochs=N to train longer); to train "
                   f"from scratch in a new run: dlcli train {quote(str(run_dir / 'config.yaml'))}")


def _position(at: tuple[int, int]) -> str:
    """(epochs done, batches into the next) in words: 'the end of epoch 4', 'batch 3 of epoch 5'."""
    epoch, batch = at
    return f"batch {batch} of epoch {epoch + 1}" if batch else f"the end of epoch {epoch}"


def _refuse_fewer_epochs(run_dir: Path, state: dict, cfg: dict, planned: int) -> None:
    """trainer.epochs below what the run trained (or inside the epoch it stopped in) would
    mark it finished and drop that training: refused, with the epochs actually trained."""
    trained, partial, target = state["epoch"], state.get("batch_in_epoch") or 0, cfg["trainer"]["epochs"]
    again = f"dlcli train --resume {quote(str(run_dir))}"
    if partial and target <= trained:
        to_plan = f"{again} (to its {planned} epochs) or " if planned > trained else ""
        raise RunError(f"{run_dir}: the run stopped inside epoch {trained + 1} (after batch {partial}), and "
                       f"trainer.epochs={target} would end it before that epoch, discarding the {partial} batches "
                       f"of it already trained; to finish it: {to_plan}{again} trainer.epochs=N (N > {trained})")
    if target < trained:
        raise RunError(f"{run_dir}: the run already trained {trained} epochs; trainer.epochs={target} is not more "
                       f"than that; to train longer: {again} trainer.epochs=N (N > {trained})")


def _refuse_run_without_checkpoint(path: Path) -> None:
    """A run directory stopped (killed) before its first epoch ended has nothing to resume."""
    from dlcli.file_access import folder_entries, kind_of
    from dlcli.runs import CONFIG_FILE

    folder = path / "checkpoints"
    if kind_of(path, RunError) != "folder" or kind_of(folder, RunError) != "folder" or any(
            entry.name.endswith(".pt") for entry in folder_entries(folder, RunError)):  # one it cannot list: said
        return
    config = path / CONFIG_FILE
    again = f"dlcli train {quote(str(config))}" if kind_of(config, RunError) == "file" else "dlcli train CONFIG"
    raise RunError(f"{path}: no checkpoint to resume from: the run stopped before its first epoch ended "
                   f"(checkpoints/last.pt is written at the end of each epoch); start it again: {again}")


def _summary_at(run_dir: Path, state: dict) -> dict | None:
    """summary.json when it records the run's end at the checkpoint's epoch (else None: a
    run killed after its last checkpoint and before its summary is completed on resume)."""
    from dlcli.runs import read_summary

    summary = read_summary(run_dir)
    return summary if summary is not None and summary.get("epochs") == state["epoch"] else None


def _best_weights(run_dir: Path, state: dict) -> dict | None:
    """The weights of the best epoch that last.pt records. A kill between the two writes
    at an epoch's end leaves best.pt behind last.pt: the best epoch is then last.pt's own,
    and best.pt is written again from it."""
    from dlcli.checkpoint import load_checkpoint, save_checkpoint

    best = state.get("best") or {}
    if not best:
        return None
    best_file = run_dir / "checkpoints" / "best.pt"
    saved = load_checkpoint(best_file) if best_file.is_file() else None
    if saved is not None and saved["epoch"] == best.get("epoch"):
        return saved["model"]
    if best.get("epoch") == state["epoch"] and not state.get("batch_in_epoch"):
        save_checkpoint(best_file, {k: v for k, v in state.items() if k != "path"})
        return state["model"]
    return saved["model"] if saved is not None else None


def _remove_temporary_files(run_dir: Path) -> None:
    """Temporary files that a killed process left behind writing the run's own files, by the
    names dlcli's atomic writes give them, now or before (a run of an older dlcli may hold
    .last.pt.<random>.tmp); no other file (a user's, a `dlcli evaluate` at work)."""
    from dlcli.files import temporary_files
    from dlcli.runs import RUN_RECORDS

    owned = [run_dir / name for name in RUN_RECORDS] + [run_dir / "checkpoints" / n for n in ("last.pt", "best.pt")]
    for leftover in [temp for path in owned for temp in temporary_files(path, legacy=True)]:
        leftover.unlink(missing_ok=True)
