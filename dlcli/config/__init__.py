"""The config package: load YAML (keeping lines), apply overrides, validate.

    cfg = load_config("configs/mnist_cnn.yaml", ["trainer.epochs=3"])

returns the resolved config (plain data, every default filled in) or raises a
`ConfigError` listing every problem with its file:line and key path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlcli.config._examples import Example, entry_example
from dlcli.config._load import dump_yaml, parse_yaml, read_config_file
from dlcli.config._origin import ConfigOrigin
from dlcli.config._overrides import apply_overrides
from dlcli.config._validate import canonicalize_layers, canonicalize_sections, section_defaults, validate
from dlcli.errors import ConfigError

__all__ = ["load_config", "load_config_with_origin", "ConfigOrigin", "resolve_config", "config_from_text",
           "dump_config", "ConfigError", "Example", "entry_example"]


def resolve_config(data: Any, lines: dict, source: str, overrides: list[str] = (), default_name: str = "run",
                   guards: bool = True) -> dict:
    """guards=False: a checkpoint's config, trained before a guard against a likely mistake
    existed, stays usable (see validate)."""

    def canonical() -> None:  # the long forms, which later overrides can set keys of (optimizer: sgd -> {type: sgd})
        canonicalize_layers(data, lines)
        canonicalize_sections(data, lines)

    canonical()
    problems = apply_overrides(data, lines, list(overrides), section_defaults(), canonical) if overrides else []
    try:
        resolved = validate(data, lines, source, default_name=default_name, guards=guards)
    except ConfigError as err:
        raise ConfigError(problems + err.problems, source) from None
    if problems:
        raise ConfigError(problems, source)
    return resolved


def load_config(path: str | Path, overrides: list[str] = ()) -> dict:
    """Read, override and validate a config file."""
    data, lines, source = read_config_file(path)
    return resolve_config(data, lines, source, overrides, default_name=Path(path).stem)


def load_config_with_origin(path: str | Path, overrides: list[str] = ()) -> tuple[dict, ConfigOrigin]:
    """`load_config`, and where each key came from: for the problems found later (in the data
    the config names, on its device), reported at the key's file and line as config problems are."""
    data, lines, source = read_config_file(path)
    cfg = resolve_config(data, lines, source, overrides, default_name=Path(path).stem)
    return cfg, ConfigOrigin(source, lines, data)


def config_from_text(text: str, source: str = "<config>", overrides: list[str] = ()) -> dict:
    data, lines = parse_yaml(text, source)
    return resolve_config(data, lines, source, overrides)


def dump_config(cfg: dict) -> str:
    """The config as YAML that load_config reads back as the same config (the loader's own rules
    decide what is quoted: `name: '1e3'` stays a string)."""
    return dump_yaml(cfg)
