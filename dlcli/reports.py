"""Evaluation reports: a checkpoint on a split (or other data), with the loss and
metrics training reported, plus per-class figures and the confusion matrix for
classifiers and MSE, MAE, R² for regression; written as eval_<split>.json,
per_class_<split>.csv and confusion_<split>.csv.

    evaluation = evaluate_checkpoint("runs/mnist_cnn/20261126-120000", split="test")
    paths = write_evaluation(evaluation)

The loss and metrics come from `evaluate_split`, the function the trainer uses,
on data preprocessed with the checkpoint's normalization: on the CPU they equal
the test figures of the run's summary.json to the last digit.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from dlcli.errors import DataError, DlcliError, short_repr
from dlcli.inference import TrainedModel, check_labels, load_trained
from dlcli.model import autocast_dtype
from dlcli.outputs import same_file

SPLITS = ("train", "val", "test")
TOP_K = (3, 5)


@dataclass
class Evaluation:
    report: dict  # plain data: what eval_<split>.json holds
    outputs: torch.Tensor  # (N, *out_shape) model outputs (logits for classifiers), CPU
    targets: torch.Tensor  # (N,) class ids or (N, *out_shape) values, CPU
    trained: TrainedModel
    data: Path | None = None  # the --data file or folder, if any


# ---------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------

def classification_report(predicted: torch.Tensor, targets: torch.Tensor, num_classes: int,
                          class_names: list[str] | None = None) -> dict:
    """Per-class precision, recall, F1 and support, their macro and support-weighted
    averages, accuracy and the confusion matrix (rows: true class, columns: predicted)."""
    predicted, targets = predicted.reshape(-1).long().cpu(), targets.reshape(-1).long().cpu()
    k = num_classes
    confusion = torch.bincount(targets * k + predicted, minlength=k * k).reshape(k, k)  # (true, predicted)
    hits = confusion.diagonal().double()
    support = confusion.sum(1).double()
    predicted_count = confusion.sum(0).double()
    precision = torch.where(predicted_count > 0, hits / predicted_count.clamp_min(1), 0.0)
    recall = torch.where(support > 0, hits / support.clamp_min(1), 0.0)
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp_min(1e-300), 0.0)
    names = class_names if class_names and len(class_names) == k else [str(i) for i in range(k)]
    rows = [{"class": i, "name": names[i], "precision": float(precision[i]), "recall": float(recall[i]),
             "f1": float(f1[i]), "support": int(support[i])} for i in range(k)]
    present = (support + predicted_count) > 0  # classes seen in the targets or the predictions
    n = max(int(support.sum()), 1)

    def average(weights: torch.Tensor) -> dict:
        total = max(float(weights.sum()), 1e-300)
        return {name: float((values * weights).sum()) / total
                for name, values in (("precision", precision), ("recall", recall), ("f1", f1))}

    return {"accuracy": float(hits.sum()) / n, "per_class": rows,
            "macro_avg": average(present.double()), "weighted_avg": average(support),
            "confusion": {"labels": names, "matrix": confusion.tolist()}}


def top_k_accuracy(outputs: torch.Tensor, targets: torch.Tensor, k: int) -> float:
    """Fraction of samples whose true class is among the k highest outputs."""
    top = outputs.topk(min(k, outputs.shape[1]), dim=1).indices  # (N, k)
    return float((top == targets.reshape(-1, 1)).any(dim=1).double().sum()) / max(len(targets), 1)


def regression_report(outputs: torch.Tensor, targets: torch.Tensor) -> dict:
    """MSE, MAE and R² (the coefficient of determination, averaged over outputs as
    scikit-learn does; an output whose targets are constant scores 1 if predicted
    exactly, else 0)."""
    n = len(targets)
    o = outputs.double().reshape(n, -1)  # (N, outputs)
    t = targets.double().reshape(n, -1)
    diff = o - t
    ss_res = diff.pow(2).sum(0)
    ss_tot = (t - t.mean(0)).pow(2).sum(0)
    r2 = torch.where(ss_tot > 0, 1 - ss_res / ss_tot.clamp_min(1e-300), (ss_res == 0).double())
    report = {"mse": float(diff.pow(2).mean()), "mae": float(diff.abs().mean()), "r2": float(r2.mean())}
    if r2.numel() > 1:
        report["r2_per_output"] = r2.tolist()
    return report


# ---------------------------------------------------------------------------
# Evaluating a checkpoint
# ---------------------------------------------------------------------------

def evaluate_checkpoint(path: str | Path, split: str | None = None, data: str | Path | None = None,
                        device: str | None = None, batch_size: int | None = None) -> Evaluation:
    """Evaluate a checkpoint on a split of the data it was trained on (default: test),
    or on other data of the same shape (`data`: an .npz, a .csv or an image folder)."""
    from dlcli.evaluation import evaluate_split, metric_functions
    from dlcli.losses import build_loss

    if split is not None and split not in SPLITS:
        raise DlcliError(f"unknown split {short_repr(split)}; expected one of: {', '.join(SPLITS)}")
    trained = load_trained(path, device)
    cfg = trained.cfg
    if data is None:
        device_split, label, source = _trained_split(trained, split or "test")
    else:
        device_split, label, source = _other_data(trained, Path(data), split)
    result = evaluate_split(trained.model, device_split, build_loss(cfg, trained.device),
                            metric_functions(cfg["metrics"]),
                            batch_size or cfg["data"]["eval_batch_size"], _autocast(trained),
                            collect_outputs=True)
    outputs, targets = result.pop("outputs"), result.pop("targets")
    report = {"checkpoint": str(Path(trained.checkpoint).absolute()), "epoch": trained.epoch, "split": label, "data": source,
              "samples": len(device_split), "task": trained.loss_task, **result}
    _add_details(report, trained, outputs, targets)
    return Evaluation(report, outputs, targets, trained, Path(data) if data is not None else None)


def _trained_split(trained: TrainedModel, split: str):
    """A split of the training data, re-loaded from the embedded config and normalized
    with the checkpoint's statistics; the val split is the same seeded hold-out."""
    from dlcli.data.prepare import load_splits, prepare_data
    from dlcli.inference import normalization_for

    cfg = {**trained.cfg, "data": trained.trained_on.data_as_read}  # feature columns by name, as training read them
    try:
        splits = load_splits(cfg, trained.plan, from_checkpoint=True)  # nothing downloaded where a checkpoint says
        normalization = normalization_for(trained.normalization, splits, splits.source or cfg["data"]["dataset"])
        prepared = prepare_data(cfg, trained.plan, trained.device, splits, normalization)
    except DataError as err:
        raise DataError(f"{err}\n(this is the data the checkpoint was trained on, from its config; evaluate "
                        f"other data with --data PATH)") from None
    splits = {"train": prepared.train, "val": prepared.val, "test": prepared.test}
    chosen = splits[split]
    if chosen is None:
        others = " or ".join(f"--split {name}" for name in ("test", "val", "train")
                             if name != split and splits[name] is not None)
        if split == "val":
            raise DataError(f"{prepared.source}: the run had no validation split (data.val_split was 0 and the "
                            f"data set names none); choose {others}, or --data PATH")
        raise DataError(f"{prepared.source}: has no test split (the config's data section gives none, e.g. no "
                        f"test_path); choose {others}, or --data PATH")
    return chosen, split, prepared.source


def _other_data(trained: TrainedModel, path: Path, split: str | None):
    """Other data for the model: the file's test part with --split test (the default
    when it has one), else its samples."""
    from dlcli.data.prepare import check_fits

    splits = load_data_file(path, trained)
    if split == "val" and splits.val is None:
        raise DataError(f"{path}: has no validation part (only an .npz names one, with x_val and y_val); use "
                        f"--split train (its samples) or test (its test part)")
    if split == "test" and splits.test is None:
        raise DataError(f"{path}: has no test part (x_test/y_test, a test/ folder or test_path); leave out "
                        f"--split to evaluate its samples")
    part = "val" if split == "val" else "test" if splits.test is not None and split != "train" else None
    chosen = {"val": splits.val, "test": splits.test, None: splits.train}[part]
    label = f"data-{path.stem}" + (f"-{part}" if part else "")
    source = splits.source + {"val": " (validation part)", "test": " (test part)", None: ""}[part]
    trained.check_shape(tuple(chosen.x.shape[1:]), str(path))
    chosen = check_labels(trained, chosen, splits.class_names, str(path))
    check_fits(trained.cfg, trained.plan, chosen, "the", str(path))  # targets per sample, for regression
    return trained.fit_samples(chosen.x, chosen.y, str(path)), label, source


def load_data_file(path: Path, trained: TrainedModel):
    """Other data for the model (`evaluate --data`): a `Splits` read by the data source that reads
    such files, as training read its own."""
    from dlcli.data.datasets import reads_for

    return reads_for(path, "evaluate").read(path, trained.trained_on)


def _autocast(trained: TrainedModel):
    """The autocast training evaluated under (GPU with bf16/fp16), else None."""
    dtype = autocast_dtype(trained.cfg["trainer"]["precision"], trained.device)
    return None if dtype is None else lambda: torch.autocast("cuda", dtype=dtype)


def _add_details(report: dict, trained: TrainedModel, outputs: torch.Tensor, targets: torch.Tensor) -> None:
    """Per-class figures and the confusion matrix, or MSE/MAE/R²; the figures training
    reported are kept as they are."""
    if not len(targets):
        return
    if trained.loss_task == "classification":
        labels = targets.argmax(1) if targets.dim() > 1 else targets
        details = classification_report(outputs.argmax(1), labels, trained.num_classes, trained.class_names)
        report.setdefault("accuracy", details.pop("accuracy"))
        for k in TOP_K:
            if k < trained.num_classes:
                report.setdefault(f"top{k}_accuracy", top_k_accuracy(outputs, labels, k))
        report.update(details)
    elif trained.loss_task == "binary" and outputs[0].numel() == 1:
        details = classification_report((outputs.reshape(-1) > 0).long(), targets.reshape(-1).round(), 2)
        report.setdefault("binary_accuracy", details.pop("accuracy"))
        report.update(details)
    elif trained.loss_task == "regression":
        for key, value in regression_report(outputs, targets).items():
            report.setdefault(key, value)


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------

def evaluation_dir(checkpoint: Path) -> Path:
    """Where reports go without --out: the checkpoint's run directory, else its folder."""
    from dlcli.runs import run_dir_of

    own = run_dir_of(checkpoint)
    return own if own is not None else Path(checkpoint).parent


def write_evaluation(evaluation: Evaluation, out_dir: str | Path | None = None, force: bool = False) -> list[Path]:
    """eval_<split>.json, and for classifiers per_class_<split>.csv and confusion_<split>.csv, in
    `out_dir` or else `evaluation_dir`. Nothing is written unless every file may be
    (`check_report_folder`, `check_report_files`), and then all of them or none: each is staged
    beside its place, and moved there once all are staged. The JSON carries evaluate's mark and
    the CSVs' SHA-256, which is what proves them earlier reports to a re-run."""
    from dlcli.outputs import WRITTEN_BY, sha256_of, utf8_text, written_by

    report = evaluation.report
    checkpoint = evaluation.trained.checkpoint
    folder = Path(out_dir) if out_dir is not None else evaluation_dir(checkpoint)
    label = report["split"]
    tables = {}
    if "per_class" in report:
        tables[f"per_class_{label}.csv"] = _csv(
            PER_CLASS_HEADER,
            [[r["class"], r["name"], r["precision"], r["recall"], r["f1"], r["support"]] for r in report["per_class"]])
        names, matrix = report["confusion"]["labels"], report["confusion"]["matrix"]
        tables[f"confusion_{label}.csv"] = _csv([CONFUSION_CORNER, *names],
                                                [[name, *row] for name, row in zip(names, matrix)])
    tables = {name: utf8_text(text) for name, text in tables.items()}  # a class folder's name need not be UTF-8
    hashes = {name: sha256_of(text.encode("utf-8")) for name, text in tables.items()}
    marked = {WRITTEN_BY: written_by("evaluate"), **report, "files": hashes}
    files = {folder / f"eval_{label}.json": json.dumps(marked, indent=2) + "\n",
             **{folder / name: text for name, text in tables.items()}}
    check_report_folder(folder, checkpoint, given=out_dir is not None)
    check_report_files(list(files), evaluation, force, given=out_dir is not None)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DlcliError(f"{folder}: cannot create the output directory: {err.strerror or err}") from None
    from dlcli.files import refuse_irregular_target

    try:
        for path in files:  # a link or a FIFO in the place of one file: none is written, not the first ones
            refuse_irregular_target(path)
    except OSError as err:
        raise DlcliError(f"{err.filename}: cannot write: {err.strerror} (no report file was written)") from None
    _write_all_or_none(folder, files)
    return list(files)


def _write_all_or_none(folder: Path, files: dict[Path, str]) -> None:
    """Stage every file (a new temporary beside it), then move each into place: a failure while
    staging (a full disk) leaves the folder as it was."""
    import os
    import tempfile

    from dlcli.files import current_umask

    staged: dict[Path, str] = {}
    try:
        for path, text in files.items():
            fd, staged[path] = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".staged", dir=folder)
            os.fchmod(fd, 0o666 & ~current_umask())
            with os.fdopen(fd, "wb") as handle:
                handle.write(text.encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
        for path, stage in staged.items():
            os.replace(stage, path)
    except OSError as err:
        for stage in staged.values():
            with contextlib.suppress(OSError):
                os.unlink(stage)
        raise DlcliError(f"{folder}: cannot write the report: {err.strerror or err}") from None


PER_CLASS_HEADER = ["class", "name", "precision", "recall", "f1", "support"]
CONFUSION_CORNER = "true \\ predicted"
REPORT_KEYS = {"checkpoint", "epoch", "split", "data", "samples", "task"}  # what every eval_<split>.json holds


def check_report_folder(folder: Path, checkpoint: Path, given: bool = True) -> None:
    """Refuse, even with --force, a folder in a run's checkpoints/ (only training writes there) or
    another run's directory (its eval_*.json are its reports: `dlcli plot` draws them as its own).
    `given`: the folder is --out; else it is `evaluation_dir(checkpoint)`, and the message says so."""
    from dlcli.errors import OutputError
    from dlcli.runs import is_run_directory, run_checkpoints_folder, run_dir_of

    folder, own = Path(folder), run_dir_of(checkpoint)
    instead = f", e.g. {own}" if own is not None else ""
    inside = run_checkpoints_folder(folder)
    if inside is not None:
        if not given:
            raise OutputError(f"{checkpoint}: without --out its reports go to its folder {folder}, which is inside "
                              f"the run's checkpoints folder {inside}, where only training writes; HINT: give --out "
                              f"with a folder outside it")
        raise OutputError(f"--out {folder} is inside the run's checkpoints folder {inside}; only training writes "
                          f"there. Expected a folder outside it{instead} (--force never writes there)")
    if is_run_directory(folder) and (own is None or not same_file(folder, own)):
        if not given:
            raise OutputError(f"{checkpoint}: without --out its reports go to its folder {folder}, which is another "
                              f"run's directory: its eval_*.json are that run's reports, and this checkpoint is not "
                              f"one of its; HINT: give --out with a folder of no run")
        whose = f"the run of {checkpoint}" if own is None else f"{own}, the run of {checkpoint}"
        raise OutputError(f"--out {folder} is another run's directory: its eval_*.json are that run's reports, and "
                          f"this checkpoint is not one of its (expected {whose}, or a folder of no run); "
                          f"--force never writes there")


def check_report_files(paths: list[Path], evaluation: Evaluation, force: bool = False, given: bool = True) -> None:
    """Refuse a report file that is the checkpoint or the --data file (even with --force), or that
    exists and is not an earlier report of dlcli evaluate (unless `force`). `given`: as in
    `check_report_folder`."""
    from dlcli.outputs import OLDER_OUTPUT_HINT, refuse_existing, refuse_inputs

    inputs = [(evaluation.trained.checkpoint, "the checkpoint")]
    if evaluation.data is not None:
        inputs.append((evaluation.data, "the --data file"))
    for path in paths:
        label = f"{'--out ' if given else ''}{path.parent}: its report {path.name}"
        refuse_inputs(path, inputs, label=label)
        refuse_existing(path, is_evaluation_file, "an earlier report of dlcli evaluate", force, label=label,
                        hint=OLDER_OUTPUT_HINT)


def is_evaluation_file(path: Path) -> bool:
    """Whether `path` is what write_evaluation wrote: an eval_*.json report with evaluate's mark,
    or a per_class_*.csv or confusion_*.csv whose bytes that report's "files" vouch for."""
    from dlcli.outputs import holds_sha256, is_marked, read_output_head

    if path.suffix == ".json":
        report = read_output_head(path, True)
        return is_marked(report, "evaluate") and REPORT_KEYS <= set(report)
    split = path.stem.removeprefix("per_class_").removeprefix("confusion_")
    if split == path.stem:
        return False
    report = read_output_head(path.with_name(f"eval_{split}.json"), True)
    hashes = report.get("files") if is_marked(report, "evaluate") else None
    return isinstance(hashes, dict) and holds_sha256(path, hashes.get(path.name))


def _csv(header: list, rows: list[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def read_confusion_csv(path: Path) -> tuple[list[str], list[list[int]]]:
    """(labels, matrix) of a confusion_<split>.csv; a DataError when it is not one."""
    try:
        rows = list(csv.reader(io.StringIO(Path(path).read_text(encoding="utf-8"))))
        labels = rows[0][1:]
        matrix = [[int(v) for v in row[1:]] for row in rows[1:] if row]
    except (OSError, UnicodeDecodeError, csv.Error, IndexError, ValueError) as err:
        raise DataError(f"{path}: not a readable confusion matrix: {err}") from None
    if not labels or len(matrix) != len(labels) or any(len(row) != len(labels) for row in matrix):
        raise DataError(f"{path}: expected a square confusion matrix with a header row of class names")
    return labels, matrix
