"""`dlcli validate`'s look at the data a config names: files and folders there, CSV headers and
first rows, .npz array headers, class folders; never a whole data set. Each data set declares its
check (`inspect` in the DATASETS registry); each returns [(config key, message)], every problem it
found, in the words the loaders use (the same functions, on less of the file), so validate and
train say the same thing.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from dlcli.data import _sources as sources
from dlcli.errors import DataError, did_you_mean, short_list, shorten

CSV_ROWS_CHECKED = 100  # the first data rows of a CSV validate reads; train reads them all


class _Found:
    """Problems gathered check by check: a DataError inside `about(key)` is one, and the checks
    after it still run."""

    def __init__(self):
        self.problems: list[tuple[tuple, str]] = []

    @contextlib.contextmanager
    def about(self, key: str | tuple):
        key = ("data", key) if isinstance(key, str) else key
        try:
            yield
        except DataError as err:
            self.add(err.key or key, str(err))
        except OSError as err:  # a folder that cannot be listed, a name too long for the file system
            self.add(key, f"{shorten(str(err.filename), 300)}: cannot read: {err.strerror}")

    def add(self, key: tuple, message: str) -> None:
        self.problems.append((tuple(key), message))


def inspect_mnist(cfg: dict) -> list[tuple[tuple, str]]:
    """The MNIST files shipped with dlcli are there (their checksums are checked by train)."""
    from dlcli.data import MNIST_DIR

    found = _Found()
    names = ["SHA256SUMS", *(name for pair in sources.MNIST_FILES.values() for name in pair)]
    missing = [name for name in names if not (MNIST_DIR / name).is_file()]
    if missing:
        found.add(("data", "dataset"), f"{MNIST_DIR}: {short_list(missing)} not found; expected the MNIST files "
                                       f"shipped with dlcli; reinstall dlcli")
    return found.problems


def inspect_torchvision(name: str, cls: str, cfg: dict) -> list[tuple[tuple, str]]:
    """The data set's files are in data.root, or data.download lets train fetch them (validate
    downloads nothing)."""
    from dlcli.data import cache_dir

    data = cfg["data"]
    found = _Found()
    if data["download"]:
        return []
    try:
        import torchvision.datasets
    except ImportError as err:
        found.add(("data", "dataset"), f"{name} needs torchvision, which cannot be imported: {err}")
        return found.problems
    dataset_cls = getattr(torchvision.datasets, cls, None)
    root = cache_dir(data["root"])
    files = None if dataset_cls is None else sources.torchvision_files(dataset_cls, root)
    if files is not None and not all(f.is_file() for f in files):
        found.add(("data", "root"), sources.torchvision_missing(name, dataset_cls, root))
    return found.problems


def inspect_npz(cfg: dict) -> list[tuple[tuple, str]]:
    """The archives are there, hold x and y (and x_test, y_test / x_val, y_val in pairs), numbers,
    one target per sample, and samples that fit model.input_shape: all from the arrays' headers."""
    data, found = cfg["data"], _Found()
    inline = {}
    with found.about("path"):
        inline = _npz_split_shapes(Path(data["path"]), cfg, found, "path", inline_ok=True)
    if "val" in inline and data["val_split"] > 0:
        from dlcli.data.prepare import two_validation_splits

        found.add(("data", "val_split"), two_validation_splits(data["path"], "x_val, y_val", data["val_split"]))
    if data["test_path"]:
        if "test" in inline:
            found.add(("data", "test_path"), sources.two_test_splits(Path(data["path"]), data["test_path"]))
        with found.about("test_path"):
            _npz_split_shapes(Path(data["test_path"]), cfg, found, "test_path")
    return found.problems


def _npz_split_shapes(path: Path, cfg: dict, found: _Found, key: str, inline_ok: bool = False) -> dict:
    """Checks one archive; returns {'train': x's sample shape, 'test'/'val': theirs, when present}."""
    from dlcli.data.prepare import sample_misfit

    input_shape = cfg["model"]["input_shape"]
    with sources.open_npz(path, "arrays x and y") as npz:
        names = list(npz.files)
        pairs = [("train", "x", "y")] + ([("test", "x_test", "y_test"), ("val", "x_val", "y_val")] if inline_ok else [])
        samples = {}
        for split, x_name, y_name in pairs:
            if split != "train" and x_name not in names and y_name not in names:
                continue
            absent = [n for n in (x_name, y_name) if n not in names]
            if absent and split != "train":  # the loaders' words for each case
                found.add(("data", key), f"{path}: expected {x_name} and {y_name} together, {absent[0]} is missing")
            elif absent:
                found.add(("data", key), f"{path}: expected an array named {absent[0]!r};"
                                         f"{did_you_mean(absent[0], names)} the file has: "
                                         f"{short_list(names) or 'no arrays'}")
            if absent:
                continue
            with found.about(key):
                x, y = _npz_array_header(npz, x_name, path), _npz_array_header(npz, y_name, path)
                sources.check_pair_shapes(x, y, x_name, y_name, str(path))
                samples[split] = sources.npz_sample_shape(x[1:], input_shape)
                misfit = sample_misfit(samples[split], cfg, {"train": "training"}.get(split, split), str(path))
                if misfit:
                    found.add(("model", "input_shape"), misfit)
    return samples


def _npz_array_header(npz, name: str, path: Path) -> tuple:
    """The shape of array `name`, from its .npy header: numbers only, as train reads them."""
    header = sources.npz_header(npz, name)
    if header is None:
        raise DataError(f"{path}: cannot read the header of array {name!r}; expected an array saved by np.savez")
    shape, dtype = header
    if dtype.kind not in "biuf":
        raise DataError(f"{path}: expected numbers in array {name!r}, received dtype {dtype}")
    return shape


def inspect_csv(cfg: dict) -> list[tuple[tuple, str]]:
    """The files are there, their headers have the target and feature columns, and the first
    CSV_ROWS_CHECKED rows hold numbers where train needs them."""
    data, found = cfg["data"], _Found()
    target, tables, features = data["target"], {}, None
    with found.about("path"):
        tables["train"] = sources.CsvTable(Path(data["path"]), limit=CSV_ROWS_CHECKED)
    if "train" in tables:
        train = tables["train"]
        with found.about("path"):
            sources.check_target_column(train, target)
        with found.about("path"):
            features = sources.feature_names(train.path, train.header, target, data["features"], data["window"])
        if features is None:  # check the numbers of the features that are there
            features = [name for name in data["features"] or [] if name in train.header]
        else:  # all there: the samples they make must fit the model, as train's will
            from dlcli.data.prepare import sample_misfit

            sample = (data["window"], len(features)) if data["window"] else (len(features),)
            misfit = sample_misfit(sample, cfg, "training", str(train.path))
            if misfit:
                found.add(("model", "input_shape"), misfit)
    if data["test_path"]:
        with found.about("test_path"):
            tables["test"] = sources.CsvTable(Path(data["test_path"]), limit=CSV_ROWS_CHECKED)
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
            sources.csv_targets(tables, target, task)
    return found.problems


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def inspect_image_folder(cfg: dict) -> list[tuple[tuple, str]]:
    """Class folders with images (listed, not decoded), the same classes for the test split, and
    no more classes than the model has outputs."""
    from dlcli.config import infer_shapes
    from dlcli.losses import LOSSES

    found = _Found()
    with found.about("path"):
        _, _, classes, _ = sources.scan_image_folder(cfg["data"], cfg["model"]["input_shape"])
        layers = cfg["model"]["layers"]
        out_shape = infer_shapes(cfg["model"]["input_shape"], layers)[-1][3]
        classifies = LOSSES.get(cfg["loss"]["type"]).meta["task"] == "classification"
        if classifies and len(out_shape) == 1 and len(classes) > out_shape[0]:
            found.add(("model", "layers", len(layers) - 1),
                      f"{cfg['data']['path']}: has {len(classes)} class folders ({short_list(classes, limit=10)}) "
                      f"but the model outputs {out_shape[0]} values; set the last layer's units to {len(classes)}")
    return found.problems
