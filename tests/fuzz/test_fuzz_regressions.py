"""Inputs the config fuzzer found breaking the package, kept as regression tests.

Each names the fuzz case it came from (`python tests/fuzz/config_mutations.py N`
prints the case) and asserts the clean outcome: a ConfigError/DlcliError with a
useful message, in bounded time and memory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dlcli.config import config_from_text, load_config
from dlcli.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
MNIST_CNN = (ROOT / "configs" / "mnist_cnn.yaml").read_text()


# case 373 (`!!float abc`), case 175 (control characters): PyYAML raised ValueError,
# KeyError, AttributeError, IndexError or ReaderError straight through the loader
@pytest.mark.parametrize("text, message", [
    ("lr: !!float abc", "'abc' is not a valid float"),
    ("lr: !!int three", "'three' is not a valid int"),
    ("lr: !!int ''", "'' is not a valid int"),
    ("x: !!bool maybe", "'maybe' is not a valid bool"),
    ("x: !!timestamp nope", "'nope' is not a valid timestamp"),
    ("x: !!timestamp 2001-13-45", "not a valid timestamp"),
    ("!!int three: 1", "'three' is not a valid int"),
    ("\x07\x08\x0b\x0c", "special characters are not allowed"),
])
def test_values_pyyaml_cannot_construct_are_config_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        config_from_text(text)
