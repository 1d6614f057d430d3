"""evaluate, predict, export and --resume on hostile and broken checkpoints: each is
refused with a clear message and exit status 2; a code payload never runs."""

import copy
import pickle
import random
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from dlcli.cli import app
from dlcli.config import config_from_text
from dlcli.train import train
from tests.samples import Payload

TINY = """
name: hostile
seed: 1
model:
  input_shape: [1, 28, 28]
  layers: [{conv2d: {filters: 2, kernel_size: 3, activation: relu}}, {maxpool2d: 2}, flatten, {dense: 10}]
data: {dataset: mnist, batch_size: 32, subset: 64, test_subset: 32}
trainer: {epochs: 1, device: cpu, progress: none}
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return Path(train(config_from_text(TINY, "hostile.yaml", [f"trainer.out_dir={out}"]))["run_dir"])


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
EXPECTED = {
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
    "resume": lambda ckpt, image, out: ["train", "--resume", str(ckpt)],
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

    assert re.search(EXPECTED[kind], result.output), result.output
    assert not marker.exists(), "the payload ran"
