"""Resuming a run: `resume(path)` continues a run from its last.pt (or a given checkpoint), in
its directory. Whatever can refuse it does so before anything is built or written (`_resumable`
and its `_refuse_*` checks), the data once read (`_refuse_changed_data`) before anything in the
run directory changes; then the trainer takes up the checkpoint's state (`_load_training_state`)
and the run's records follow (`_update_run_records`). Which overrides a resume takes, each
config argument declares (Arg.resume)."""

from __future__ import annotations

import functools
from pathlib import Path
from shlex import quote

from dlcli.errors import CheckpointError, DataError, RunError, short_list, short_repr, shorten
from dlcli.registry import RESUME_CHANGES
from dlcli.train.callbacks import Callback
from dlcli.train.run import RunHandle, _fit, _setup, run_start
from dlcli.train.trainer import Trainer

PLACE = ("files", "cache")  # the Arg.resume changes that say where the data are: they must be the same data


def resume_overrides() -> dict[str, str]:
    """{key: what a resume changes with it (Arg.resume)} for every key a `--resume` override may
    set: the trainer's, then the data's and every data set's arguments, in the order of
    RESUME_CHANGES, then of declaration."""
    from dlcli.config._schema import DATA, TRAINER
    from dlcli.data import DATASETS

    declared = [("trainer", arg) for arg in TRAINER.args]
    declared += [("data", arg) for entry in (DATA, *DATASETS) for arg in entry.args]
    flagged = {}
    for section, arg in declared:
        if arg.resume:
            flagged.setdefault(f"{section}.{arg.name}", arg.resume)
    order = sorted(flagged, key=lambda key: (not key.startswith("trainer."), RESUME_CHANGES.index(flagged[key])))
    return {key: flagged[key] for key in order}


def resume_overrides_said() -> str:
    """The keys of resume_overrides in words, as the refusal of any other override names them."""
    keys = resume_overrides()
    place = [key for key, change in keys.items() if change in PLACE]
    return f"{', '.join(key for key in keys if key not in place)} and the data's place ({', '.join(place)})"


def data_place() -> list[str]:
    """The data arguments that say where the data are ("path", "test_path", "root"): a resume may
    find its data elsewhere, if they are the data the run trained on (_refuse_changed_data)."""
    return [key.split(".", 1)[1] for key, change in resume_overrides().items() if change in PLACE]


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
    allowed = tuple(f"{key}{then}" for key in resume_overrides() for then in "=.")  # trainer.early_stopping.patience
    bad = [o for o in overrides if not o.startswith(allowed)]
    if bad:
        raise RunError(f"--resume takes only overrides of {resume_overrides_said()} (the rest must stay as trained); "
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
    from dlcli.runs import (cut_logs_back, read_environment, record_resume, remove_temporary_files,
                            rewrite_run_config, run_starts, start_record)

    environment = read_environment(run_dir) or {}  # lost or damaged: this resume's record stands for the run
    text = dump_config(cfg)
    why = f"a resume trains on the config in its checkpoint; --resume takes overrides of {resume_overrides_said()} only"
    edited = rewrite_run_config(run_dir, text, dump_config(state["config"]), environment, why)
    if edited is not None:
        trainer.notes.append(edited)
    remove_temporary_files(run_dir)
    threads = _other_threads_note(run_starts(environment)[-1], trainer)  # before this resume is added
    if threads:
        trainer.notes.append(threads)
    resumed = {**start_record(trainer.cfg, trainer.device, overrides), "from_epoch": state["epoch"] + 1,
               "from_batch": (state.get("batch_in_epoch") or 0) + 1, "checkpoint": str(Path(state["path"]).absolute())}
    record_resume(run_dir, environment, resumed, text)
    cut_logs_back(run_dir, state["step"], state["history"])


def _refuse_missing_data(run_dir: Path, state: dict, cfg: dict, overrides: list[str]) -> None:
    """A data path of the checkpoint that no longer exists (the data moved, another machine):
    refused saying where the path came from and how to point the resume to the data."""
    given = {override.split("=", 1)[0] for override in overrides}
    for key in data_place():
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
