"""A file of another kind where a checkpoint or a config was expected: the message says what the
file is and what to give instead, not the unpickler's 'Unsupported operand 110'."""

from __future__ import annotations

import pytest

from dlcli.export import export_checkpoint

EXPECTED = "expected a checkpoint (.pt, in a run's checkpoints/) or a run directory"


@pytest.mark.parametrize("command", ["evaluate", "export"])
def test_a_config_or_an_export_given_as_the_checkpoint_is_named(mnist_run, tmp_path, cli, command):
    script = export_checkpoint(mnist_run, "torchscript", tmp_path)
    kinds = {mnist_run / "config.yaml": "a YAML file (a config?)",
             script.path: "a TorchScript export (dlcli export; load it with torch.jit.load)",
             script.sidecar: "a JSON file"}
    for path, kind in kinds.items():
        result = cli(command, path)
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert f"{path}: not a readable checkpoint; this is {kind}: {EXPECTED}" in " ".join(result.stderr.split())


def test_random_bytes_are_still_reported_as_unreadable(tmp_path, cli):
    path = tmp_path / "noise.pt"
    path.write_bytes(bytes(range(7, 256)) * 4)
    result = cli("evaluate", path)
    assert result.exit_code == 2 and "not a readable checkpoint (not a torch file: torch files are zip archives, " \
        "and this one does not start like one)" in " ".join(result.stderr.split())


def test_train_given_a_run_or_its_checkpoint_points_to_resume(mnist_run, cli):
    for given in (mnist_run, mnist_run / "checkpoints" / "best.pt"):
        result = cli("train", given)
        assert result.exit_code == 2
        assert f"to continue that run: dlcli train --resume {mnist_run}" in " ".join(result.stderr.split()) or \
            f"to continue the run of a checkpoint: dlcli train --resume {mnist_run}" in " ".join(result.stderr.split())
    assert f"to train its config again: dlcli train {mnist_run / 'config.yaml'}" in \
        " ".join(cli("train", mnist_run).stderr.split())
