"""A CSV file with a header row: feature columns and one target column, read by name; with
data.window, each sample is that many consecutive rows and its target the target column of
the next row. Integer targets are class ids (task auto), decimals values, text class names."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import TYPE_CHECKING

from dlcli.data._checks import Found, about_key
from dlcli.data.datasets import DATASETS, TASK, TEST_PATH, Reads, TrainedOn, load_dataset, path_arg
from dlcli.errors import DataError, did_you_mean, short_list, short_repr, shorten
from dlcli.file_access import kind_of
from dlcli.registry import NUMBER_RE, Arg, Int, Optional, Str, StrList

if TYPE_CHECKING:
    import numpy as np
    import torch

    from dlcli.data._tensors import Splits
    from dlcli.model.plan import ModelPlan

NAME = "csv"
CSV_ROWS_CHECKED = 100  # the first data rows of a CSV validate reads; train reads them all


# ---------------------------------------------------------------------------
# validate: the header and the first rows
# ---------------------------------------------------------------------------

def inspect_csv(cfg: dict, plan: ModelPlan) -> list[tuple[tuple, str]]:
    """The files are there, their headers have the target and feature columns, and the first
    CSV_ROWS_CHECKED rows hold numbers where train needs them."""
    data, found = cfg["data"], Found()
    target, tables, features = data["target"], {}, None
    with found.about("path"):
        tables["train"] = CsvTable(Path(data["path"]), limit=CSV_ROWS_CHECKED)
    if "train" in tables:
        train = tables["train"]
        with found.about("path"):
            check_target_column(train, target)
        with found.about("path"):
            features = feature_names(train.path, train.header, target, data["features"], data["window"])
        if features is None:  # check the numbers of the features that are there
            features = [name for name in data["features"] or [] if name in train.header]
        else:  # all there: the samples they make must fit the model, as train's will
            from dlcli.data.prepare import sample_misfit

            sample = (data["window"], len(features)) if data["window"] else (len(features),)
            misfit = sample_misfit(sample, cfg, plan, "training", str(train.path))
            if misfit:
                found.add(("model", "input_shape"), misfit)
    if data["test_path"]:
        with found.about("test_path"):
            tables["test"] = CsvTable(Path(data["test_path"]), limit=CSV_ROWS_CHECKED)
            if features is not None:
                tables["test"].require([*features, target], like=data["path"])
    for split, table in tables.items():
        for name in features or []:
            if name in table.columns:
                with found.about("path" if split == "train" else "test_path"):
                    table.numbers(name)
    if all(target in table.columns for table in tables.values()) and "train" in tables:
        with found.about("path"):
            # the first rows do not settle task auto: integers there may be values further down
            all_numbers = all(_is_number(cell) for cell in tables["train"].columns[target])
            task = "regression" if data["task"] == "auto" and all_numbers else data["task"]
            csv_targets(tables, target, task)
    return found.problems


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------
# the loader
# ---------------------------------------------------------------------------

_INT_RE = re.compile(r"^\s*[-+]?\d+\s*$")


class CsvTable:
    """A CSV read as strings: header names, columns, and each row's line number."""

    def __init__(self, path: Path, limit: int | None = None):
        """`limit`: read the header and at most that many data rows (validate's look)."""
        self.path = path
        self.header, rows, self.lines = _read_csv_rows(path, limit)
        self.columns = {name: [row[i] for row in rows] for i, name in enumerate(self.header)}

    def require(self, names: list[str], like: str | None = None) -> None:
        missing = [n for n in names if n not in self.columns]
        if missing:
            source = f" as in {like}" if like else ""
            hint = did_you_mean(missing[0], self.header)
            raise DataError(f"{self.path}: expected column{'s' if len(missing) > 1 else ''} "
                            f"{short_list(missing, short_repr)}{source};{hint} the file has columns: "
                            f"{short_list(self.header)}")

    def numbers(self, name: str) -> np.ndarray:
        """Column `name` as float64; an empty, non-numeric or non-finite cell names its line."""
        import numpy as np  # lazy, as torch: registration stays fast (see dlcli.data.datasets)

        cells = self.columns[name]
        try:
            values = np.array(cells, dtype=np.float64)
        except ValueError:
            for i, cell in enumerate(cells):
                try:
                    float(cell)
                except ValueError:
                    raise self.cell_error(i, name, "a number", cell) from None
            raise  # pragma: no cover - numpy and float() agree on what a number is
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise self.cell_error(int(bad[0]), name, "a finite number", cells[bad[0]])
        return values

    def cell_error(self, i: int, name: str, expected: str, cell: str) -> DataError:
        received = "an empty cell" if not cell.strip() else short_repr(cell)
        return DataError(f"{self.path}:{self.lines[i]}: column {short_repr(name)} (data row {i + 1}): expected "
                         f"{expected}, received {received}")


def _read_csv_rows(path: Path, limit: int | None = None) -> tuple[list[str], list[list[str]], list[int]]:
    kind = kind_of(path, DataError)  # a folder above it this user may not enter: said, with the path
    if kind is None:
        raise DataError(f"{path}: file not found; expected a CSV file with a header row")
    if kind == "folder":
        raise DataError(f"{path}: expected a CSV file, received a directory")
    rows, lines = [], []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or not any(h.strip() for h in header):
                raise DataError(f"{path}: expected a header row with column names, received an empty "
                                f"{'file' if header is None else 'first line'}")
            header = [h.strip() for h in header]
            for row in reader:
                if not row:  # a blank line
                    continue
                if len(row) != len(header):
                    raise DataError(f"{path}:{reader.line_num}: expected {len(header)} fields as in the header, "
                                    f"received {len(row)}")
                rows.append(row)
                lines.append(reader.line_num)
                if limit is not None and len(rows) >= limit:
                    break
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: expected UTF-8 text, cannot decode: {err}") from None
    except csv.Error as err:
        raise DataError(f"{path}: not a readable CSV file: {err}") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read: {err}") from None
    blank = [i + 1 for i, h in enumerate(header) if not h]
    if blank:
        raise DataError(f"{path}:1: expected a name for every column, column {blank[0]} has none")
    if all(NUMBER_RE.match(h) for h in header):  # not nan or inf, which could be names: a header of these is data
        raise DataError(f"{path}:1: expected a header row of column names, received a row of numbers "
                        f"({short_list(header, limit=8)}), which looks like data; HINT: add a first line naming "
                        f"the columns (taking this row as names would also drop it as a sample)")
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise DataError(f"{path}:1: expected unique column names, received {short_list(duplicates, short_repr)} "
                        f"more than once")
    if not rows:
        raise DataError(f"{path}: expected data rows after the header, the file has none")
    return header, rows, lines


def load_csv_file(args: dict) -> Splits:
    """A CSV with a header row: feature columns and one target column.

    x: float32 (N, F), or (N, window, F) with `window` (consecutive rows; the
    target is the target column of the row after the window, so N = rows - window).
    y: int64 (N,) class ids (text targets: classes are the sorted unique strings),
    or float32 (N, 1) values.
    """
    import numpy as np  # lazy, as torch: registration stays fast
    import torch

    from dlcli.data._tensors import Split, Splits
    from dlcli.data.targets import finish_targets

    path, test_path = Path(args["path"]), args["test_path"]
    target, window, task = args["target"], args["window"], args["task"]
    tables = {"train": CsvTable(path)}
    features = csv_columns(tables["train"], target, args["features"], window)
    if test_path:
        with about_key("test_path"):
            tables["test"] = CsvTable(Path(test_path))
            tables["test"].require([*features, target], like=str(path))
    where = {s: str(t.path) for s, t in tables.items()}

    xs = {s: np.stack([t.numbers(name) for name in features], axis=1).astype(np.float32)  # (rows, F)
          for s, t in tables.items()}
    task, ys, class_names = csv_targets(tables, target, task)
    if window:
        for split in list(xs):
            xs[split], ys[split] = _windows(xs[split], ys[split], window, where[split])
    if task == "regression":
        _, ys_t, num_classes = finish_targets(ys, "regression", where)
    else:
        ys_t = {s: torch.from_numpy(y.astype(np.int64)) for s, y in ys.items()}
        num_classes = len(class_names) if class_names else int(max(int(y.max()) for y in ys_t.values())) + 1
    splits = {s: Split(torch.from_numpy(np.ascontiguousarray(xs[s])), ys_t[s]) for s in xs}
    source = f"csv {path}" + (f" (test: {test_path})" if test_path else "")
    return Splits(train=splits["train"], test=splits.get("test"), task=task, num_classes=num_classes,
                  class_names=class_names, source=source,
                  meta={"features": features, "target": target, "window": window})


def csv_columns(table: CsvTable, target: str, features: list[str] | None, window: int | None) -> list[str]:
    """The feature columns of a CSV config, once its header has the target and them."""
    check_target_column(table, target)
    return feature_names(table.path, table.header, target, features, window)


def check_target_column(table: CsvTable, target: str) -> None:
    if target not in table.header:
        raise DataError(f"{table.path}: target column {short_repr(target)} not found;"
                        f"{did_you_mean(target, table.header)} the file has columns: {short_list(table.header)}")


def feature_names(path: Path, header: list[str], target: str, features: list[str] | None,
                   window: int | None) -> list[str]:
    if features is None:
        features = [h for h in header if h != target]
        if not features:
            raise DataError(f"{path}: expected feature columns besides the target {short_repr(target)}, the file "
                            f"has only {short_list(header)}" + (f"; to predict a series from its own past list "
                                                                f"it: features: [{shorten(target)}]" if window else ""))
        return features
    if not features:
        raise DataError(f"{path}: expected at least one name in data.features, received an empty list")
    missing = [name for name in features if name not in header]
    if missing:
        raise DataError(f"{path}: feature column{'s' if len(missing) > 1 else ''} {short_list(missing, short_repr)} "
                        f"not found;{did_you_mean(missing[0], header)} the file has columns: {short_list(header)}")
    repeated = sorted({f for f in features if features.count(f) > 1})
    if repeated:
        raise DataError(f"{path}: expected each feature once in data.features, received "
                        f"{short_list(repeated, short_repr)} more than once")
    if target in features and not window:
        raise DataError(f"{path}: the target {short_repr(target)} is also listed in data.features, so the model "
                        f"would see the answer; expected features without the target (with data.window the target's "
                        f"past values may be features)")
    return list(features)


def csv_targets(tables: dict[str, CsvTable], target: str, task: str) -> tuple[str, dict, list[str] | None]:
    """({split: numpy targets per row}, class names) for the target column.

    Integer cells are class ids (auto), decimals are values, text cells are class
    names (sorted unique strings of the training file); ids and values have no names (None).
    """
    import numpy as np  # lazy: registration stays fast

    from dlcli.data.targets import MAX_CLASS_ID

    train = tables["train"]
    cells = train.columns[target]
    numeric = []
    for i, cell in enumerate(cells):
        if not cell.strip():
            raise train.cell_error(i, target, "a target value", cell)
        try:
            float(cell)
            numeric.append(True)
        except ValueError:
            numeric.append(False)
    if not all(numeric):
        first_text = numeric.index(False)
        if task == "regression":
            raise train.cell_error(first_text, target, "a number (task: regression)", cells[first_text])
        if task == "auto" and any(numeric):
            first_number = numeric.index(True)
            raise DataError(f"{train.path}: target column {short_repr(target)} mixes numbers "
                            f"({short_repr(cells[first_number])} on line {train.lines[first_number]}) and text "
                            f"({short_repr(cells[first_text])} on line "
                            f"{train.lines[first_text]}); expected one or the other, or set task: "
                            f"classification to read every cell as a class name")
        return "classification", *_text_classes(tables, target)
    if task == "auto":
        task = "classification" if all(_INT_RE.match(c) for c in cells) else "regression"
    ys = {s: t.numbers(target) for s, t in tables.items()}
    if task == "regression":
        return task, ys, None
    for split, y in ys.items():
        table = tables[split]
        for i in np.flatnonzero((y != np.round(y)) | (y < 0)):
            raise table.cell_error(int(i), target, "a class id (an integer >= 0)", table.columns[target][i])
        for i in np.flatnonzero(y > MAX_CLASS_ID):
            raise table.cell_error(int(i), target, f"a class id from 0 to {MAX_CLASS_ID}", table.columns[target][i])
    # class ids name themselves; names as many as the ids are made once the model's outputs bound them
    return task, {s: y.astype(np.int64) for s, y in ys.items()}, None


def _text_classes(tables: dict[str, CsvTable], target: str) -> tuple[dict, list[str]]:
    import numpy as np  # lazy: registration stays fast

    names = sorted({c.strip() for c in tables["train"].columns[target]})
    index = {name: i for i, name in enumerate(names)}
    listed = short_list(names, limit=10)
    ys = {}
    for split, table in tables.items():
        ids = []
        for i, cell in enumerate(table.columns[target]):
            if cell.strip() not in index:
                raise table.cell_error(i, target, f"one of the training file's classes ({listed})", cell)
            ids.append(index[cell.strip()])
        ys[split] = np.array(ids, dtype=np.int64)
    return ys, names


def _windows(x: np.ndarray, y: np.ndarray, window: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows (R, F) -> samples (R - window, window, F); sample i is rows i..i+window-1 and
    its target is row i + window's."""
    import numpy as np  # lazy: registration stays fast

    rows = len(x)
    if rows < window + 1:
        raise DataError(f"{where}: data.window={window} needs at least {window + 1} data rows (a window and "
                        f"the next row's target), received {rows}")
    views = np.lib.stride_tricks.sliding_window_view(x, window, axis=0)  # (R - window + 1, F, window)
    return views[: rows - window].transpose(0, 2, 1).copy(), y[window:]


# ---------------------------------------------------------------------------
# evaluate --data and predict: other CSV files for a trained model
# ---------------------------------------------------------------------------

def read_csv_data(path: Path, trained: TrainedOn) -> Splits:
    """evaluate --data: the feature columns training read, by name, and its target column."""
    data = trained.data
    if data["dataset"] != NAME:
        raise DataError(f"{path}: a CSV needs to name its target column, which only a model trained on CSV "
                        f"data knows; this one was trained on {data['dataset']} data: give an .npz with "
                        f"arrays x and y instead")
    return load_dataset(NAME, {"path": str(path), "task": trained.task, "target": data["target"],
                               "features": trained.feature_columns, "window": data["window"]})


def read_csv_inputs(path: Path, trained: TrainedOn) -> tuple[torch.Tensor, list[str]]:
    """predict: the feature columns of a CSV as training read them: selected by name in the
    model's order (`TrainedOn.feature_columns`) whatever the file's order, other columns
    ignored; with data.window, one sample per window of rows (named by its last row)."""
    import numpy as np  # lazy, as torch: registration stays fast
    import torch

    data = trained.data
    trained_on_csv = data["dataset"] == NAME
    target = data["target"] if trained_on_csv else None
    window = data["window"] if trained_on_csv else None
    features = trained.feature_columns
    table = CsvTable(path)
    if features is None:  # a checkpoint that predates recorded names, or a model not trained on CSV
        features = [h for h in table.header if h != target]
    else:
        table.require(features, like=f"the model's training data ({short_list(features)})")
    x = np.stack([table.numbers(name) for name in features], axis=1).astype(np.float32)  # (rows, F)
    names = [f"{path}:{line}" for line in table.lines]
    if window:
        if len(x) < window:
            raise DataError(f"{path}: the model reads windows of {window} rows (data.window), the file has "
                            f"{len(x)} data rows")
        x = np.lib.stride_tricks.sliding_window_view(x, window, axis=0).transpose(0, 2, 1).copy()  # (N, window, F)
        names = names[window - 1:]  # a window is named by its last row
    return torch.from_numpy(np.ascontiguousarray(x)), names


_CSV_FILE = ("a .csv file",)


@DATASETS.register(NAME, help="a CSV file: feature columns and a target column; `window` makes sequences",
                   args=(path_arg("data/train.csv"), TEST_PATH, TASK,
                         Arg("target", Str(), help="name of the target column", example="label"),
                         Arg("features", Optional(StrList()), None, "feature columns (default: all but target)"),
                         Arg("window", Optional(Int(min=1)), None,
                             "sequence mode: each sample is `window` consecutive rows, the target is the "
                             "target column of the next row")),
                   # with it, samples are sequences (steps, features): see dlcli.model.layout
                   sequence_arg="window",
                   # with it, samples are windows of that many rows sliding over rows in time order:
                   # data.val_split holds out the last ones (see validation_split)
                   sliding_window_arg="window",
                   feature_columns="features",  # read by name; training records them in checkpoints
                   inspect=inspect_csv,
                   evaluate_data=Reads(_CSV_FILE, read_csv_data, suffixes=(".csv",)),
                   predict_inputs=Reads(_CSV_FILE, read_csv_inputs, suffixes=(".csv",)))
def load_csv(args, input_shape):
    return load_csv_file(args)
