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
], ids=["float", "int", "empty-int", "bool", "timestamp", "bad-date", "key", "control-chars"])
def test_values_pyyaml_cannot_construct_are_config_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        config_from_text(text)


# case 488 (a 5,000-digit integer: ValueError from int()), case 10 (an override
# `patience=1:1:1:...`: base-60 integers read in quadratic time, 600 KB took 19 s),
# cases 214, 470, 480 (`lr: 10**400`, `input_shape: [1, 10**400, 28]`: OverflowError
# from float() in the Float kind and in conv2d's `same` padding arithmetic)
@pytest.mark.parametrize("old, new", [
    ("lr: 1e-3", "lr: " + "9" * 5000),
    ("lr: 1e-3", "lr: " + "1:" * 300_000 + "1"),
    ("lr: 1e-3", f"lr: {10**400}"),
    ("lr: 1e-3", "lr: 0x" + "f" * 5000),
    ("[1, 28, 28]", f"[1, {10**400}, 28]"),
], ids=["5000-digits", "base-60", "lr-10**400", "hex-5000", "input-shape-10**400"])
def test_integers_longer_than_a_config_number_are_refused_quickly(old, new):
    import time

    start = time.perf_counter()
    with pytest.raises(ConfigError, match="characters long; a config number has at most 100"):
        config_from_text(MNIST_CNN.replace(old, new))
    assert time.perf_counter() - start < 1.0


def test_the_largest_int64_is_still_read():
    cfg = config_from_text(MNIST_CNN.replace("lr: 1e-3", "lr: 1e-3\n  weight_decay: 0x7fff_ffff_ffff_ffff"))
    assert cfg["optimizer"]["weight_decay"] == float(2**63 - 1)


# `metrics: !!python/object/apply:os.system [accuracy]` resolved as a valid config:
# the builder constructs mappings and lists itself and dropped their tags, so an
# object tag on a list or mapping was silently read as plain data (never run, but
# never refused either); `!foo {a: 1}` likewise
@pytest.mark.parametrize("old, new", [
    ("metrics: [accuracy]", "metrics: !!python/object/apply:os.system [accuracy]"),
    ("metrics: [accuracy]", "metrics: !!python/object/new:builtins.list [[accuracy]]"),
    ("  type: adam\n", "  type: adam\n  betas: !!python/tuple [0.9, 0.999]\n"),
    ("optimizer:\n", "optimizer: !!python/object:builtins.dict\n"),
    ("metrics: [accuracy]", "metrics: !foo [accuracy]"),
    ("metrics: [accuracy]", "metrics: !!set {accuracy}"),
], ids=["apply-on-list", "new-on-list", "tuple", "object-on-mapping", "unknown-tag", "set"])
def test_tags_on_lists_and_mappings_are_refused(old, new):
    text = MNIST_CNN.replace(old, new)
    assert text != MNIST_CNN
    with pytest.raises(ConfigError, match="tags that create objects are not allowed"):
        config_from_text(text)
