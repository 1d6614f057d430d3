"""The DATASETS registry's generic questions (dlcli.data.datasets): which data source reads a
file for `evaluate --data` and `predict`, and what a trained model's data was, all from what
each source declares in its own module (dlcli.data.sources), never from its name."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import pytest

import dlcli
from dlcli.data import DATASETS
from dlcli.data.datasets import Reads, TrainedOn, files_read, reads_for
from dlcli.errors import DataError
from dlcli.registry import Entry

PACKAGE = Path(dlcli.__file__).parent
SOURCES = PACKAGE / "data" / "sources"


@pytest.fixture
def tsv_source(monkeypatch):
    """A data source registered for one test: it reads .tsv files for both commands, and
    records what it was asked to read."""
    asked = []

    def read(path, trained):
        asked.append((path, trained))
        return f"read {path.name}"

    reads = Reads(("a .tsv file",), read, suffixes=(".tsv",))
    entry = Entry(name="tsv", help="tab-separated values (a test's)", build=lambda args, input_shape: None,
                  meta={"evaluate_data": reads, "predict_inputs": reads})
    monkeypatch.setitem(DATASETS._entries, "tsv", entry)  # registered as its module would, undone after
    return asked


def test_a_new_source_is_asked_for_its_files_by_evaluate_and_predict(tsv_source, tmp_path):
    from dlcli.predict import read_inputs
    from dlcli.reports import load_data_file

    path = tmp_path / "table.TSV"
    path.write_text("a\tb\n1\t2\n")
    trained = SimpleNamespace(trained_on="what the checkpoint says")
    assert load_data_file(path, trained) == "read table.TSV"
    assert read_inputs(trained, path) == "read table.TSV"
    assert tsv_source == [(path, "what the checkpoint says")] * 2


def test_a_file_no_source_reads_is_refused_with_what_the_sources_read(tsv_source, tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"\0")
    with pytest.raises(DataError, match=r"x\.bin: cannot evaluate a \.bin file; expected an \.npz file, a \.csv "
                                        r"file, a folder of class folders or a \.tsv file$"):
        reads_for(path, "evaluate")
    with pytest.raises(DataError, match=r"x\.bin: cannot predict a \.bin file; expected an \.npz file, a \.csv "
                                        r"file, images \(\.jpg, .*\.gif\), a folder of images or a \.tsv file$"):
        reads_for(path, "predict")
    with pytest.raises(DataError, match=r"nothing\.tsv: no such file or directory; expected an \.npz file, .* or "
                                        r"a \.tsv file$"):
        reads_for(tmp_path / "nothing.tsv", "predict")


def test_a_folder_is_read_by_the_source_that_reads_folders(tmp_path):
    (tmp_path / "cats").mkdir()
    for name in ("b.png", "a.JPG", "notes.txt"):
        (tmp_path / "cats" / name).write_bytes(b"")
    assert reads_for(tmp_path, "evaluate") is DATASETS.get("image_folder").meta["evaluate_data"]
    assert files_read(tmp_path, "predict") == [tmp_path / "cats" / "a.JPG", tmp_path / "cats" / "b.png"]
    assert files_read(tmp_path / "x.npz", "predict") == [tmp_path / "x.npz"]


def test_feature_columns_are_those_of_a_source_that_declares_them():
    data = {"dataset": "csv", "path": "t.csv", "target": "y", "features": None, "window": None}
    recorded = TrainedOn(data, (2,), "regression", feature_names=["b", "a"])
    assert recorded.feature_columns == ["b", "a"]
    assert recorded.data_as_read == {**data, "features": ["b", "a"]}
    assert TrainedOn({**data, "features": ["a", "b"]}, (2,), "regression").feature_columns == ["a", "b"]
    npz = TrainedOn({"dataset": "npz", "path": "t.npz"}, (2,), "regression", feature_names=["ignored"])
    assert npz.feature_columns is None and npz.data_as_read == {"dataset": "npz", "path": "t.npz"}


def test_every_source_module_registers_and_every_entry_comes_from_one():
    modules = {f"dlcli.data.sources.{path.stem}" for path in SOURCES.glob("*.py") if path.stem != "__init__"}
    assert len(modules) == 5
    assert {entry.build.__module__ for entry in DATASETS} == modules


def test_generic_code_never_names_a_data_source():
    """A source's name as a string (`== "csv"`) belongs in its own module; elsewhere the code asks
    what the source declares."""
    named = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if SOURCES in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in DATASETS:
                named.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.value!r}")
    assert len(list(PACKAGE.rglob("*.py"))) > 50  # the walk found the package
    assert named == []


def test_registering_the_sources_imports_neither_torch_nor_numpy(run_python):
    result = run_python("-c", "import sys, dlcli.data; print(len(dlcli.data.DATASETS), "
                              "'torch' in sys.modules, 'numpy' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["8", "False", "False"]
