"""PNG plots of a run: learning curves from metrics.jsonl and, where `dlcli
evaluate` wrote one, the confusion matrix as a heat map.

matplotlib is a dependency of dlcli, imported only here and only when plotting
(so `dlcli --help` and the listings do not wait for it); figures are drawn on the Agg canvas directly, so no
GUI backend and no pyplot global state are involved.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from shlex import quote

from dlcli.errors import DataError, DlcliError, RunError, install_hint, short_repr
from dlcli.file_access import folder_entries, kind_of

CURVES_FILE = "learning_curves.png"
NOT_CURVES = {"epoch", "step", "kind", "lr", "seconds", "samples_per_s"}


@dataclass
class Plots:
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was skipped, and why


def _matplotlib():
    """(Figure, FigureCanvasAgg), or a DlcliError saying how to install matplotlib again."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise DlcliError(f"dlcli plot needs matplotlib, a dependency of dlcli, which cannot be imported ({err}); "
                         f"install dlcli's dependencies again: pip install -e . in the dlcli checkout (or "
                         f"{install_hint(['matplotlib'])})") from None
    return Figure, FigureCanvasAgg


def plot_run(run_dir: str | Path) -> Plots:
    """learning_curves.png, and confusion_<split>.png for each evaluation with a confusion matrix."""
    run_dir = Path(run_dir)
    kind = kind_of(run_dir, RunError)
    if kind != "folder":
        raise RunError(f"{run_dir}: {'not a directory' if kind else 'no such directory'}; expected a "
                       f"run directory (runs/<name>/<id>)")
    _matplotlib()  # a broken matplotlib install is reported before anything else
    plots = Plots()
    plots.files.append(plot_learning_curves(run_dir, run_dir / CURVES_FILE))
    for label, (labels, matrix, title) in sorted(_confusions(run_dir, plots.notes).items()):
        plots.files.append(plot_confusion(labels, matrix, title, run_dir / f"confusion_{label}.png"))
    return plots


# ---------------------------------------------------------------------------
# Learning curves
# ---------------------------------------------------------------------------

def _plottable(value) -> float | None:
    """A record's value as a float to draw; None for no number, or an integer no float holds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def curve_names(records: list[dict]) -> list[str]:
    """'loss' first, then each metric logged for train or val."""
    names: list[str] = []
    for record in records:
        for key, value in record.items():
            if key in NOT_CURVES or not isinstance(value, (int, float)) or "_" not in key:
                continue
            prefix, name = key.split("_", 1)
            if prefix in ("train", "val") and name not in names:
                names.append(name)
    return sorted(names, key=lambda n: (n != "loss", names.index(n)))


def best_epoch(run_dir: Path, records: list[dict]) -> tuple[int | None, str | None]:
    """(epoch, monitored metric) of the best epoch, as `dlcli runs` gives it: summary.json's, else
    the best of `records` by the config's trainer.monitor and its mode."""
    from dlcli.run_listing import best_of_run
    from dlcli.runs import read_run_config, read_summary

    best = best_of_run(read_summary(run_dir) or {}, read_run_config(run_dir), records)
    return (best["epoch"], best.get("metric")) if isinstance(best.get("epoch"), int) else (None, None)


def plot_learning_curves(run_dir: Path, path: Path) -> Path:
    Figure, FigureCanvasAgg = _matplotlib()
    from dlcli.runs import METRICS_JSONL, epoch_records

    records = [r for r in epoch_records(run_dir) if abs(r["epoch"]) <= MAX_COUNT]  # 10**400: no epoch to draw
    if not records:
        raise RunError(f"{run_dir / METRICS_JSONL}: no epoch records yet; expected the metrics of a run that "
                       f"finished at least one epoch")
    names = curve_names(records)
    best, monitor = best_epoch(run_dir, records)
    if best is not None and abs(best) > MAX_COUNT:
        best = None
    cols = min(len(names), 3)
    rows = -(-len(names) // cols)
    fig = Figure(figsize=(5 * cols, 3.8 * rows), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        for prefix, style in (("train", "o-"), ("val", "s--")):
            points = [(r["epoch"], value) for r in records
                      if (value := _plottable(r.get(f"{prefix}_{name}"))) is not None]
            if points:
                ax.plot(*zip(*points), style, label=prefix, markersize=4)
                at_best = [v for e, v in points if e == best]
                if at_best:
                    ax.plot([best], at_best, "*", color="crimson", markersize=13, zorder=5)
        if best is not None:
            ax.axvline(best, color="crimson", linestyle=":", linewidth=1,
                       label=plain_text(f"best epoch {best}" + (f" ({monitor})" if monitor else "")))
        ax.set_title(plain_text(name))
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        if records[-1]["epoch"] <= 20:
            ax.set_xticks([r["epoch"] for r in records])
    fig.suptitle(plain_text(f"{run_dir.parent.name}/{run_dir.name}: learning curves"))
    _save(fig, path)
    return path


# ---------------------------------------------------------------------------
# Confusion matrices
# ---------------------------------------------------------------------------

def _confusions(run_dir: Path, notes: list[str]) -> dict[str, tuple]:
    """{split label: (class labels, matrix, title)} from eval_*.json, else confusion_*.csv."""
    from dlcli.reports import read_confusion_csv

    found = {}
    names = [entry.name for entry in folder_entries(run_dir, RunError)]  # not glob, which skips what it cannot list
    for path in [run_dir / name for name in names if name.startswith("eval_") and name.endswith(".json")]:
        label = path.stem.removeprefix("eval_")
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as err:  # torn; 5,000 digits; nested 100,000 deep
            notes.append(f"{path}: skipped, not a readable evaluation ({type(err).__name__})")
            continue
        confusion = report.get("confusion") if isinstance(report, dict) else None
        if confusion is None:
            continue  # a regression report: no confusion matrix
        try:
            labels = [str(n) for n in confusion["labels"]]
            matrix = _counts(confusion["matrix"])
            if len(matrix) != len(labels) or any(len(row) != len(labels) for row in matrix):
                raise ValueError("not square")
        except (KeyError, TypeError, ValueError) as err:
            notes.append(f"{path}: skipped, its confusion matrix is malformed ({type(err).__name__}: {err})")
            continue
        accuracy = report.get("accuracy")
        epoch = report.get("epoch")
        title = (f"confusion matrix, {label}" + (f", epoch {epoch} weights" if isinstance(epoch, int) else "")
                 + (f": accuracy {accuracy:.4f}" if isinstance(accuracy, float) else ""))
        _note_if_stale(run_dir, path, report, notes)
        found[label] = (labels, matrix, title)
    for path in [run_dir / name for name in names if name.startswith("confusion_") and name.endswith(".csv")]:
        label = path.stem.removeprefix("confusion_")
        if label in found:
            continue
        try:
            labels, matrix = read_confusion_csv(path)
            matrix = _counts(matrix)
        except DataError as err:
            notes.append(f"skipped: {err}")
            continue
        except ValueError as err:
            notes.append(f"{path}: skipped, its confusion matrix is malformed ({err})")
            continue
        found[label] = (labels, matrix, f"confusion matrix, {label}")
    return found


# Sample counts beyond this are no evaluation's (and int64, which the heat map takes, ends soon after).
MAX_COUNT = 2 ** 53


def _counts(matrix) -> list[list[int]]:
    """A confusion matrix's rows of sample counts, each a whole number from 0 to MAX_COUNT; a
    ValueError naming the first that is not (a count of 1e20 overflowed the heat map)."""
    rows = []
    for row in matrix:
        counts = []
        for value in row:
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError(f"expected sample counts, received {short_repr(value)}")
            try:
                count = int(value)
            except (ValueError, OverflowError):
                raise ValueError(f"expected sample counts, received {short_repr(value)}") from None
            if count != value and not isinstance(value, str) or not 0 <= count <= MAX_COUNT:
                raise ValueError(f"expected sample counts from 0 to {MAX_COUNT}, received {short_repr(value)}")
            counts.append(count)
        rows.append(counts)
    return rows


def plain_text(text: str) -> str:
    """`text` as matplotlib shows it literally: a class named 'a_$1_$' is no mathtext formula."""
    return str(text).replace("$", r"\$")


def _note_if_stale(run_dir: Path, path: Path, report: dict, notes: list[str]) -> None:
    """An evaluation of this run's best.pt made before the run moved on (a resume found a better
    epoch) is plotted as it is, with a note saying so."""
    from dlcli.runs import read_summary

    try:
        if Path(str(report.get("checkpoint", ""))).resolve() != (run_dir / "checkpoints" / "best.pt").resolve():
            return
    except (OSError, ValueError, RuntimeError):  # a path no file system holds ('\ud800', NUL), a symlink loop
        return
    best = (read_summary(run_dir) or {}).get("best")
    best = best.get("epoch") if isinstance(best, dict) else None
    if isinstance(best, int) and report.get("epoch") != best:
        notes.append(f"{path}: evaluates best.pt as it was at epoch {report.get('epoch')}; best.pt is now epoch "
                     f"{best}: run dlcli evaluate {quote(str(run_dir))} again to plot its confusion matrix")


def plot_confusion(labels: list[str], matrix: list[list[int]], title: str, path: Path) -> Path:
    Figure, FigureCanvasAgg = _matplotlib()
    import numpy as np

    counts = np.asarray(matrix, dtype=np.int64)  # (true, predicted)
    k = len(labels)
    side = min(max(5.0, 0.45 * k + 2.5), 30.0)
    fig = Figure(figsize=(side + 1.2, side), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(counts, cmap="Blues", interpolation="nearest")
    fig.colorbar(image, ax=ax, shrink=0.8, label="samples")
    if k <= 40:
        shown = [plain_text(label) for label in labels]
        ax.set_xticks(range(k), shown, rotation=90 if max(map(len, labels), default=0) > 3 else 0)
        ax.set_yticks(range(k), shown)
    if k <= 25:
        threshold = counts.max() / 2 if counts.size else 0
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if counts[i, j] > threshold else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(plain_text(title))
    _save(fig, path)
    return path


def _save(fig, path: Path) -> None:
    from dlcli.files import atomic_write_bytes

    try:
        atomic_write_bytes(path, lambda handle: fig.savefig(handle, format="png"))
    except OSError as err:
        raise RunError(f"{path}: cannot write the plot: {err.strerror or err}") from None
