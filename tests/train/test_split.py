"""The training package split by job (issue 16): the package's face only re-exports, the
overrides a resume takes are what the config's arguments declare (Arg.resume), and the
process-wide settings are the run set-up's, not the trainer's constructor's."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import torch

import dlcli.train


def test_the_train_package_face_only_re_exports():
    tree = ast.parse(Path(dlcli.train.__file__).read_text(encoding="utf-8"))
    body = tree.body[1:] if ast.get_docstring(tree) else tree.body
    kinds = [type(node).__name__ for node in body
             if not isinstance(node, (ast.Import, ast.ImportFrom))
             and not (isinstance(node, ast.Assign) and [t.id for t in node.targets] == ["__all__"])]
    assert kinds == []
    assert all(hasattr(dlcli.train, name) for name in dlcli.train.__all__)


def test_a_resume_takes_the_overrides_the_arguments_flag(monkeypatch):
    """No hand-kept list: flagging an argument lets a resume take it, and the refusal of
    other overrides names it."""
    from dlcli.config import _schema
    from dlcli.train.resume import resume_overrides, resume_overrides_said

    assert "trainer.fuse" not in resume_overrides()
    args = tuple(dataclasses.replace(arg, resume="machine") if arg.name == "fuse" else arg
                 for arg in _schema.TRAINER.args)
    monkeypatch.setattr(_schema, "TRAINER", dataclasses.replace(_schema.TRAINER, args=args))
    assert resume_overrides()["trainer.fuse"] == "machine"
    assert resume_overrides_said().startswith("trainer.epochs, trainer.early_stopping, trainer.device, "
                                              "trainer.fuse, trainer.threads, trainer.progress")


def test_the_trainer_leaves_the_process_wide_settings_to_the_run_set_up(tiny_cfg):
    """Trainer(...) seeds nothing and sets no thread count; the run set-up (new_trainer) does
    both, so two trainers it builds start from the same weights."""
    from tests.samples import prepared
    from dlcli.train.run import new_trainer
    from dlcli.train.trainer import Trainer

    cpu, threads = torch.device("cpu"), torch.get_num_threads()
    pinned = 1 if threads != 1 else 2
    cfg = tiny_cfg(f"trainer.threads={pinned}")
    data = prepared(cfg, cpu)
    try:
        torch.manual_seed(cfg["seed"] + 1)  # not the run's seed
        plain = Trainer(cfg, data, cpu)
        assert torch.get_num_threads() == threads
        runs = [new_trainer(cfg, data, cpu) for _ in range(2)]
        assert torch.get_num_threads() == pinned
    finally:
        torch.set_num_threads(threads)
    weights = [dict(t.model.state_dict()) for t in (plain, *runs)]
    assert all(torch.equal(weights[1][k], weights[2][k]) for k in weights[1])
    assert not all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
