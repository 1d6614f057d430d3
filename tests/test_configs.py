"""The shipped configs in configs/: every one validates and builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlcli.config import config_from_text, dump_config, load_config

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))


def test_the_shipped_configs_are_all_found():
    # Adding or removing a config in configs/ means updating this number.
    assert len(CONFIGS) == 4, [c.name for c in CONFIGS]


@pytest.mark.parametrize("path", CONFIGS, ids=[c.name for c in CONFIGS])
def test_shipped_config_validates_and_builds(path):
    from dlcli.model import build_meta_model

    cfg = load_config(path)
    assert cfg["name"] == path.stem  # each config names its run after its file
    assert config_from_text(dump_config(cfg)) == cfg  # the resolved config is itself valid
    model = build_meta_model(cfg)
    assert sum(p.numel() for p in model.parameters()) > 0
