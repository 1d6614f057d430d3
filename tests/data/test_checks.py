"""Each data source's `inspect`: validate's look at the data, per data set, through the registry."""

from __future__ import annotations

import pytest

from dlcli.data import DATASETS
from dlcli.data import check_data as check_data_of_plan
from dlcli.model import plan_model


def check_data(cfg: dict) -> list:
    return check_data_of_plan(cfg, plan_model(cfg))


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_data_set_declares_its_check(name):
    assert callable(DATASETS.get(name).meta.get("inspect")), name


def test_the_shipped_mnist_passes(configs_dir):
    from dlcli.config import load_config

    assert check_data(load_config(configs_dir / "mnist_cnn.yaml")) == []


def csv_cfg(write_config, path, task="auto", loss="mse", units=1):
    from dlcli.config import load_config

    return load_config(write_config(f"""\
        model: {{input_shape: [1], layers: [{{dense: {{units: {units}}}}}]}}
        data: {{dataset: csv, path: {path}, target: t, task: {task}}}
        loss: {loss}
        metrics: [{'mae' if loss == 'mse' else 'accuracy'}]
        trainer: {{device: cpu}}
        """))


def test_integer_targets_in_the_first_rows_are_not_taken_for_classes(write_config, make_csv):
    """Task auto reads a column of integers as class ids, but the first rows do not settle it:
    values further down may be decimals (a regression), so negative integers there are fine."""
    from dlcli.data.sources.csv import CSV_ROWS_CHECKED

    rows = [["x", "t"], *[[i, -i] for i in range(CSV_ROWS_CHECKED)], [1, 0.5]]
    assert check_data(csv_cfg(write_config, make_csv(rows))) == []
    # the same cells with task classification are refused, as train refuses them
    problems = check_data(csv_cfg(write_config, make_csv(rows), task="classification", loss="cross_entropy",
                                  units=3))
    assert [key for key, _ in problems] == [("data", "path")]
    assert "expected a class id (an integer >= 0), received '-1'" in problems[0][1]


def test_a_csv_head_reads_only_the_rows_asked_for(make_csv):
    from dlcli.data.sources.csv import CsvTable

    path = make_csv([["x", "t"], [1, 2], [3, 4], [5, 6], ["broken"]])  # a short row: the full read refuses it
    head = CsvTable(path, limit=3)
    assert head.columns == {"x": ["1", "3", "5"], "t": ["2", "4", "6"]} and head.lines == [2, 3, 4]
    with pytest.raises(Exception, match="expected 2 fields as in the header, received 1"):
        CsvTable(path)
