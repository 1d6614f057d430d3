import pytest

from tests.samples import tiny_mnist


@pytest.fixture
def tiny_cfg(tmp_path):
    """`tiny_cfg(*overrides)`: TINY_MNIST (tests/samples.py: dropout, batchnorm, val split,
    scheduler) resolved with the overrides, writing under tmp_path."""
    return lambda *overrides: tiny_mnist(tmp_path / "runs", *overrides)
