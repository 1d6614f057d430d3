"""evaluate, predict, export and --resume on hostile and broken checkpoints: each is
refused with a clear message and exit status 2; a code payload never runs."""

import copy
import pickle
import random
import shutil
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from dlcli.cli import app
from tests.samples import Payload, train_smallest_cnn



@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_smallest_cnn(tmp_path_factory.mktemp("runs"), "hostile")


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "digit.png"
    Image.new("L", (28, 28), 128).save(path)
    return path


def _hostile(kind: str, run_dir: Path, where: Path, marker: Path) -> Path:
    """A checkpoint of the given kind, placed as a run directory's last.pt and best.pt."""
    target = where / kind
    shutil.copytree(run_dir, target)
    path = target / "checkpoints" / "best.pt"
    good = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)
    if kind == "torch_pickle_payload":
        torch.save({"format": "dlcli-checkpoint", "config": good["config"], "model": Payload(marker),
                    "epoch": 0, "step": 0}, path)
    elif kind == "raw_pickle_payload":
        path.write_bytes(pickle.dumps(Payload(marker)))
    elif kind == "truncated":
        path.write_bytes((run_dir / "checkpoints" / "best.pt").read_bytes()[:2000])
    elif kind == "random_bytes":
        path.write_bytes(random.Random(0).randbytes(4096))
    elif kind == "other_config":
        state = copy.deepcopy(good)
        state["model"]["conv2d.weight"] = torch.zeros(5, 1, 3, 3)  # weights of a 5-filter conv
        torch.save(state, path)
    elif kind == "invalid_embedded_config":
        state = copy.deepcopy(good)
        state["config"]["model"]["layers"][0]["filters"] = -4
        state["config"]["trainer"]["epochz"] = 3
        torch.save(state, path)
    elif kind in WRONG_TYPES:
        state = copy.deepcopy(good)
        state.update(WRONG_TYPES[kind])
        torch.save(state, path)
    elif kind in DAMAGED:
        state = copy.deepcopy(good)
        DAMAGED[kind](state)
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(20_000)  # pickling a config nested 3,000 deep recurses that deep
        try:
            torch.save(state, path)
        finally:
            sys.setrecursionlimit(limit)
    elif kind == "directory_without_checkpoints":
        shutil.rmtree(target / "checkpoints")
        (target / "checkpoints").mkdir()
        return target
    shutil.copyfile(path, target / "checkpoints" / "last.pt")
    return target / "checkpoints" / ("last.pt" if kind == "raw_pickle_payload" else "best.pt")


# well-formed files whose fields hold the wrong kind of value
WRONG_TYPES = {
    "format_version_text": {"format_version": "two"},
    "epoch_text": {"epoch": "3"},
    "negative_step": {"step": -1},
    "model_not_tensors": {"model": {"conv2d.weight": [1.0, 2.0]}},
}


def _nested(depth: int) -> dict:
    config: dict = {}
    for _ in range(depth):
        config = {"a": config}
    return config


def _set(path: tuple, value):
    """A damage: `value` put at `path` in the checkpoint (a callable: applied to what is there)."""
    def apply(state: dict) -> None:
        *parents, last = path
        for key in parents:
            state = state[key]
        state[last] = value(state[last]) if callable(value) else value
    return apply


def _nan_weight(weight):
    weight = weight.clone()
    weight.view(-1)[0] = float("nan")
    return weight


# Issue 15 #5: fields whose damage gave tracebacks (TypeError, RuntimeError, IndexError, RecursionError,
# AttributeError after resume had rewritten the run's records) or NaN outputs with exit 0
DAMAGED = {
    "normalization_std_text": _set(("normalization", "std"), "abc"),
    "normalization_1000_values": _set(("normalization",), {"axis": 1, "mean": [0.0] * 1000, "std": [1.0] * 1000}),
    "normalization_axis_99": _set(("normalization", "axis"), 99),
    "normalization_nan": _set(("normalization", "mean"), [float("nan")]),
    "normalization_zero_std": _set(("normalization", "std"), [0.0]),
    "class_names_mixed": _set(("class_names",), ["0", 1, None, "3", "4", "5", "6", "7", "8", "9"]),
    "history_text": _set(("history",), "nope"),
    "config_nested_3000": _set(("config", "data", "deep"), _nested(3000)),
    "config_huge_layer": _set(("config", "model", "layers"),
                              lambda layers: [*layers[:3], {"dense": {"units": 100_000_000}}, *layers[3:]]),
    "nan_weights": _set(("model", "dense.weight"), _nan_weight),
}
EXPECTED = {
    "normalization_std_text": r"damaged checkpoint: normalization\.std: expected a list of 1 to 1,048,576 finite "
                              r"numbers > 0, received 'abc'",
    "normalization_1000_values": r"damaged checkpoint: normalization holds 1,000 per-channel or per-feature "
                                 r"statistics, which do not line up with the model's input .* \(784 values a sample\)",
    "normalization_axis_99": r"damaged checkpoint: normalization\.axis: expected an integer from 1 to 8 .*received 99",
    "normalization_nan": r"damaged checkpoint: normalization\.mean\[0\]: expected a finite number, received nan",
    "normalization_zero_std": r"normalization\.std\[0\]: expected a finite number > 0, received 0\.0 \(a division "
                              r"by zero\)",
    "class_names_mixed": r"damaged checkpoint: class_names: expected a list of class names \(strings\)",
    "history_text": r"damaged checkpoint: history: expected a list of epoch records \(mappings\), received 'nope'",
    "config_nested_3000": r"damaged checkpoint: config: nested more than 50 levels deep",
    "config_huge_layer": r"the checkpoint's config: model: [\d,]+ parameters .* is more than dlcli builds",
    "nan_weights": r"damaged checkpoint: model: the weights dense\.weight hold 1 NaN or infinite value \(a run "
                   r"that diverged\?\); every output would be NaN",

    "torch_pickle_payload": "refused to load",
    "raw_pickle_payload": "refused to load|not a readable checkpoint",
    "truncated": "not a readable checkpoint",
    "random_bytes": "not a readable checkpoint",
    "other_config": "do not fit the model",
    "invalid_embedded_config": "embedded config is invalid",
    "directory_without_checkpoints": "a directory without checkpoints|no checkpoint to resume from",
    "format_version_text": "format_version: expected an integer, received 'two'",
    "epoch_text": "damaged checkpoint: epoch: expected an integer >= 0, received '3'",
    "negative_step": "damaged checkpoint: step: expected an integer >= 0, received -1",
    "model_not_tensors": "damaged checkpoint: model: expected a dict of named tensors",
}
COMMANDS = {
    "evaluate": lambda ckpt, image, out: ["evaluate", str(ckpt), "--out", str(out)],
    "predict": lambda ckpt, image, out: ["predict", str(ckpt), str(image)],
    "export": lambda ckpt, image, out: ["export", str(ckpt), "--format", "torchscript", "--out", str(out / "m.pt")],
    "resume": lambda ckpt, image, out: ["train", "--resume", str(ckpt), "trainer.epochs=2"],
}


@pytest.mark.parametrize("kind", list(EXPECTED))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_hostile_checkpoint_is_refused(kind, command, run_dir, image, tmp_path):
    marker = tmp_path / "code-ran"
    ckpt = _hostile(kind, run_dir, tmp_path, marker)
    result = CliRunner().invoke(app, COMMANDS[command](ckpt, image, tmp_path))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    import re

    assert re.search(EXPECTED[kind], " ".join(result.output.split())), result.output
    assert not marker.exists(), "the payload ran"
    if command == "resume" and kind in DAMAGED:  # refused before the run's records were touched
        run = ckpt.parent.parent
        for name in ("config.yaml", "environment.json", "metrics.jsonl", "summary.json"):
            assert (run / name).read_bytes() == (run_dir / name).read_bytes(), name
