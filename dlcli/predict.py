"""Predictions of a checkpoint for new inputs: image files, an image folder, an
.npz (array x) or a .csv (the training features).

    predictions = predict("runs/mnist_cnn/20261126-120000", ["digit.png"], top_k=3)
    write_predictions(predictions, "predictions.csv")

Inputs are preprocessed exactly as in training: images converted to the model's
channels and resized to its image size with the loader training used, the
checkpoint's normalization, the same view (rows as steps, flattened) through
`DeviceSplit.transform`.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dlcli.errors import DlcliError
from dlcli.inference import TrainedModel, load_trained

OUTPUT_FORMATS = (".csv", ".json")
KINDS = ("classes", "probabilities", "values")


@dataclass
class Predictions:
    kind: str  # "classes" (top-k classes with probabilities), "probabilities" (sigmoid outputs) or "values"
    rows: list[dict] = field(default_factory=list)  # {"input", "predictions": [...]} or {"input", "value": [...]}
    checkpoint: str = ""
    inputs: list[str] = field(default_factory=list)  # the paths given: write_predictions never replaces one


def predict(path: str | Path, inputs: list[str | Path], top_k: int = 3, device: str | None = None,
            batch_size: int | None = None) -> Predictions:
    """Predict every sample of `inputs` with the checkpoint (a run directory means its best.pt)."""
    if not inputs:
        raise DlcliError("no inputs: give image files, an image folder, an .npz or a .csv")
    if top_k < 1:
        raise DlcliError(f"--top-k must be at least 1, received {top_k}")
    trained = load_trained(path, device)
    kind = "classes" if trained.loss_task == "classification" else \
        "probabilities" if trained.loss_task == "binary" else "values"
    predictions = Predictions(kind, checkpoint=str(trained.checkpoint), inputs=[str(item) for item in inputs])
    size = batch_size or trained.cfg["data"]["eval_batch_size"]
    for item in inputs:
        x, names = read_inputs(trained, Path(item))
        split = trained.fit_samples(x, where=str(item))
        outputs = torch.cat([trained.probabilities(xb).float().cpu() for xb, _ in split.slices(size)])
        predictions.rows += _rows(trained, names, outputs, kind, top_k)
    return predictions


def _rows(trained: TrainedModel, names: list[str], outputs: torch.Tensor, kind: str, top_k: int) -> list[dict]:
    if kind == "classes":
        probs, classes = outputs.topk(min(top_k, outputs.shape[1]), dim=1)  # (N, k)
        return [{"input": name, "predictions": [
            {"class": int(c), "name": trained.class_name(int(c)), "probability": float(p)}
            for c, p in zip(classes[i].tolist(), probs[i].tolist())]} for i, name in enumerate(names)]
    flat = outputs.reshape(len(outputs), -1)
    return [{"input": name, "value": flat[i].tolist()} for i, name in enumerate(names)]


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------

def read_inputs(trained: TrainedModel, path: Path) -> tuple[torch.Tensor, list[str]]:
    """(raw samples (N, *stored shape), a name per sample) of one input path, read by the data
    source that reads such files, as training read its own."""
    from dlcli.data.datasets import reads_for

    return reads_for(path, "predict").read(path, trained.trained_on)


def input_files(path: Path) -> list[Path]:
    """The files predict reads for one input path: a folder's images, else the path."""
    from dlcli.data.datasets import files_read

    return files_read(path, "predict")


# ---------------------------------------------------------------------------
# Output files
# ---------------------------------------------------------------------------

def check_output_path(out: Path) -> None:
    if out.suffix.lower() not in OUTPUT_FORMATS:
        raise DlcliError(f"--out {out}: expected a .csv or .json file name, received {out.suffix or 'no extension'}")
    if out.is_dir():
        raise DlcliError(f"--out {out}: is a directory; expected a .csv or .json file name")


def check_output(out: str | Path, checkpoint: str | Path, inputs: list[str | Path], force: bool = False) -> None:
    """Refuse, before any work, an --out that is the checkpoint or a file predict reads, lies in a
    run's checkpoints/ or is one of its records (even with `force`), or exists and is not an
    earlier predictions file (unless `force`)."""
    from dlcli.outputs import (OLDER_OUTPUT_HINT, is_marker, marker_path, refuse_existing, refuse_inputs,
                               refuse_run_files)

    out = Path(out)
    check_output_path(out)
    read = [(_checkpoint_file(checkpoint), "the checkpoint")]
    read += [(file, "the input file") for item in inputs for file in input_files(Path(item))]
    instead = out.with_name(f"{out.stem}.predictions{out.suffix}")
    refuse_inputs(out, read, instead)
    refuse_run_files(out, _beside_run(out))
    refuse_existing(out, is_predictions_file, "a dlcli predictions file", force, hint=OLDER_OUTPUT_HINT)
    if out.suffix.lower() == ".csv":
        marker = marker_path(out)
        refuse_inputs(marker, read, instead, f"--out {out}: its marker {marker}")
        refuse_run_files(marker, _beside_run(out), f"--out {out}: its marker {marker}")
        refuse_existing(marker, lambda path: is_marker(path, "predict"), "a dlcli marker file", force,
                        f"--out {out}: its marker {marker}")


def _checkpoint_file(checkpoint: str | Path) -> Path:
    """The checkpoint file predict reads (a run directory's best.pt); as given when there is none
    (loading it says what is wrong)."""
    from dlcli.checkpoint import resolve_checkpoint_path
    from dlcli.errors import CheckpointError

    try:
        return resolve_checkpoint_path(checkpoint, prefer="best.pt")
    except CheckpointError:
        return Path(checkpoint)


def _beside_run(out: Path) -> Path:
    """<run>/predictions.csv for an --out in a run's checkpoints/ or over its records (a suggestion)."""
    for folder in out.parents:
        if folder.name == "checkpoints":
            return folder.parent / f"predictions{out.suffix}"
    return out.with_name(f"predictions{out.suffix}")


def is_predictions_file(path: Path) -> bool:
    """Whether `path` is what write_predictions wrote: a JSON with predict's mark, or a CSV whose
    marker file vouches for its exact bytes (a header alone proves nothing: a user's table may
    share it)."""
    from dlcli.outputs import is_marked, proved_by_marker, read_output_head

    if path.suffix.lower() == ".json":
        head = read_output_head(path, True)
        return (is_marked(head, "predict") and {"checkpoint", "kind", "predictions"} <= set(head)
                and head["kind"] in KINDS and isinstance(head["predictions"], list))
    return proved_by_marker(path, "predict")


def write_predictions(predictions: Predictions, out: str | Path, force: bool = False) -> Path:
    """CSV (one row per input: classes and probabilities, or values) or JSON (the rows).
    Refuses an --out that would replace an input, the checkpoint or a file that is not an
    earlier predictions file (`check_output`)."""
    from dlcli.outputs import marker_path, marker_text, utf8_text
    from dlcli.runs import write_text_atomic

    out = Path(out)
    check_output(out, predictions.checkpoint, predictions.inputs, force)
    if out.suffix.lower() == ".json":
        files = {out: predictions_json(predictions)}
    else:
        text = utf8_text(_csv_text(predictions))
        files = {out: text, marker_path(out): marker_text(out, text.encode("utf-8"), "predict")}
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        for path, text in files.items():  # the CSV first: a marker never vouches for what is not there
            write_text_atomic(path, text)
    except OSError as err:
        raise DlcliError(f"--out {out}: cannot write: {err.strerror or err}") from None
    return out


def predictions_json(predictions: Predictions) -> str:
    """The predictions as a .json --out holds them (and `predict --json` prints them)."""
    from dlcli.outputs import WRITTEN_BY, written_by

    return json.dumps({WRITTEN_BY: written_by("predict"), "checkpoint": predictions.checkpoint,
                       "kind": predictions.kind, "predictions": predictions.rows}, indent=2) + "\n"


def _csv_text(predictions: Predictions) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    rows = predictions.rows
    if predictions.kind == "classes":
        writer.writerow(_csv_header("classes", max((len(r["predictions"]) for r in rows), default=0)))
        for r in rows:
            cells = [v for p in r["predictions"] for v in (p["class"], p["name"], p["probability"])]
            writer.writerow([r["input"], *cells])
    else:
        writer.writerow(_csv_header(predictions.kind, max((len(r["value"]) for r in rows), default=1)))
        for r in rows:
            writer.writerow([r["input"], *r["value"]])
    return buffer.getvalue()


def _csv_header(kind: str, width: int) -> list[str]:
    """The header row of a predictions CSV: `width` top classes (3 columns each) or values."""
    if kind == "classes":
        return ["input", *[f"{col}_{i + 1}" for i in range(width) for col in ("class", "name", "probability")]]
    column = "probability" if kind == "probabilities" else "value"
    return ["input", *([column] if width == 1 else [f"{column}_{i + 1}" for i in range(width)])]
