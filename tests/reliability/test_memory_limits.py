"""Files and configs that declare more than memory holds are refused with the figures (exit 2)
before the memory is taken: a 3 MB checkpoint holding a deflated 3 GB tensor, a checkpoint whose
config declares a layer of a million units, and a 687M-parameter model trained under 5 GiB.
None of these tests allocates more than a few hundred MB: the memory is faked in-process, or
the child runs under an address-space limit."""

from __future__ import annotations

import io
import os
import re
import resource
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import pytest
import torch

from dlcli import memory
from tests.samples import train_smallest_cnn

from ._reliability import REPO, cli_env

GiB = 1 << 30
MiB = 1 << 20


@pytest.fixture(scope="module")
def good_state(tmp_path_factory) -> dict:
    run_dir = train_smallest_cnn(tmp_path_factory.mktemp("runs"), "memory")
    return torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)


def _write_zeros_deflated(archive: zipfile.ZipFile, name: str, size: int) -> None:
    """A record of `size` zero bytes (a multiple of 1 MiB), deflated to about a thousandth.
    After a full flush, deflate encodes each MiB of zeros as the same bytes: they are made once
    and handed to zipfile in place of deflating 3 GB again (seconds of CPU)."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = deflate.compress(bytes(MiB)) + deflate.flush(zlib.Z_FULL_FLUSH)
    end = deflate.flush()

    class Repeat:  # zipfile's compressor interface: compress(data), flush()
        def compress(self, data: bytes) -> bytes:
            return block

        def flush(self) -> bytes:
            return end

    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    zeros = bytes(MiB)
    with archive.open(info, "w", force_zip64=True) as record:
        record._compressor = Repeat()
        for _ in range(size // MiB):
            record.write(zeros)  # zipfile computes the CRC of what it is given


def _bomb(state: dict, path: Path, size: int) -> None:
    """A dlcli checkpoint with an extra tensor whose record is `size` deflated zero bytes: torch
    reads a record whole, so loading it takes `size` bytes of memory."""
    marker = 1234  # the extra tensor's bytes: finds its record
    buffer = io.BytesIO()
    torch.save({**state, "extra": torch.zeros(marker, dtype=torch.uint8)}, buffer)
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(path, "w") as target:
        records = source.infolist()
        extra = [info.filename for info in records if "/data/" in info.filename and info.file_size == marker]
        assert len(extra) == 1
        for info in records:
            if info.filename == extra[0]:
                _write_zeros_deflated(target, info.filename, size)
            else:
                target.writestr(info, source.read(info))


# Runs `dlcli ARGV` with the address space held to what importing torch and dlcli takes plus
# ROOM, as `ulimit -v` would: the limit, not the machine's memory, is what is available.
CHILD = """
import resource, sys
import torch  # the address space torch reserves when imported counts against the limit
from dlcli.cli import main
size = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (size + int(sys.argv[1]), resource.RLIM_INFINITY))
sys.argv = ["dlcli", *sys.argv[2:]]
main()
"""


def _run_limited(argv: list[str], room: int, folder: Path) -> tuple[int, str, int]:
    """(exit status, stderr, peak resident bytes) of `dlcli ARGV` under the address-space limit."""
    with open(folder / "out", "wb") as out, open(folder / "err", "wb") as err:
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(room), *argv], cwd=folder, env=cli_env(),
                                 stdout=out, stderr=err)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, (folder / "err").read_text(), usage.ru_maxrss * 1024


def test_a_deflated_3gb_tensor_is_refused_before_loading(good_state, tmp_path):
    path = tmp_path / "bomb.pt"
    _bomb(good_state, path, 3 * GiB)
    assert path.stat().st_size < 4 * MiB  # a 3 MB file
    code, stderr, peak = _run_limited(["evaluate", str(path)], GiB, tmp_path)
    message = " ".join(stderr.split())  # the console wraps long lines
    assert code == 2, stderr
    assert re.search(r"bomb\.pt: the checkpoint's tensors take 3\.0 GiB unpacked \(the file is 3\.\d MiB: packed, "
                     r"which dlcli's checkpoints never are\); [\d,.]+ MiB of memory is available: refused before "
                     r"loading$", message), stderr
    assert "Traceback" not in stderr
    assert peak < GiB  # torch and dlcli take about 500 MB; the tensor would take 3 GB more


def test_a_checkpoint_within_memory_loads_under_the_same_limit(good_state, tmp_path):
    torch.save(good_state, tmp_path / "good.pt")
    code, stderr, _ = _run_limited(["evaluate", str(tmp_path / "good.pt")], GiB, tmp_path)
    assert code == 0, stderr


MILLION_UNITS = [{"type": "flatten"}, {"type": "dense", "units": 1_000_000}, {"type": "dense", "units": 10}]


def test_a_checkpoint_config_of_a_million_unit_layer_is_refused_before_building(good_state, tmp_path, cli,
                                                                                monkeypatch):
    state = {**good_state, "config": {**good_state["config"],
                                      "model": {**good_state["config"]["model"], "layers": MILLION_UNITS}}}
    path = tmp_path / "wide.pt"
    torch.save(state, path)
    assert path.stat().st_size < 100_000
    monkeypatch.setattr(memory, "available_memory", lambda: int(1.2 * GiB))

    def allocated(*args, **kwargs):
        raise AssertionError("the model was built")

    monkeypatch.setattr("dlcli.model.build_training_model", allocated)
    result = cli("evaluate", path)
    message = " ".join(result.stderr.split())
    assert result.exit_code == 2, result.output
    assert (f"wide.pt: the checkpoint's config: model: 795,000,010 parameters take 3.0 GiB in float32, and 1.2 GiB of "
            f"memory is available: refused before building it; the largest layer is model.layers[1] (dense, "
            f"785,000,000 parameters)") in message


# 687M parameters: validation accepts it, 5 GiB cannot train it
LARGE_MLP = """
name: large
model:
  input_shape: [1, 28, 28]
  layers: [flatten, {dense: {units: 864000, activation: relu}}, {dense: 10}]
data: {dataset: mnist, batch_size: 64, subset: 64, test_subset: 32}
trainer: {epochs: 1, device: cpu, progress: none, out_dir: OUT}
"""


@pytest.fixture
def large_config(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "large.yaml"
    path.write_text(LARGE_MLP.replace("OUT", str(tmp_path / "runs")))
    monkeypatch.setattr(memory, "available_memory", lambda: 5 * GiB)
    return path


TRAINING_NEEDS = ("model: training needs about 10.6 GiB (weights 2.6 GiB, gradients 2.6 GiB, optimizer state 5.1 "
                  "GiB, activations for a batch of 64: 422.6 MiB); 5.0 GiB of memory is available. HINT: fewer or "
                  "smaller layers (the largest is model.layers[1] (dense, 678,240,000 parameters)); an optimizer "
                  "that keeps less state (adam keeps 2 values per parameter; sgd without momentum keeps none)")


def test_training_that_memory_cannot_hold_is_refused_before_the_model_is_built(large_config, cli, monkeypatch):
    def allocated(*args, **kwargs):
        raise AssertionError("the model was built")

    monkeypatch.setattr("dlcli.train.trainer.build_training_model", allocated)
    result = cli("train", large_config)
    assert result.exit_code == 2, result.output
    message = " ".join(result.stderr.split())
    assert f"large.yaml:3: {TRAINING_NEEDS}" in message
    assert not (large_config.parent / "runs").exists()  # refused before the run directory


def test_validate_reports_training_that_memory_cannot_hold(large_config, cli):
    result = cli("validate", large_config, "--no-data")
    assert result.exit_code == 2, result.output
    assert TRAINING_NEEDS in " ".join(result.stderr.split())
