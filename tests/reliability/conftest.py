"""Fixtures for the reliability tests: a small MNIST subset as an .npz and a warm
CLI server (see `_reliability.py`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ._reliability import CliServer


@pytest.fixture(scope="session")
def mnist_npz(tmp_path_factory) -> Path:
    """The first 320 MNIST training images and 64 test images (uint8, (N, 1, 28, 28)) in one .npz:
    loads in milliseconds, where the shipped MNIST takes a second to verify and unpack."""
    from dlcli.data import MNIST_DIR
    from dlcli.data.sources.mnist import load_mnist_idx

    splits = load_mnist_idx(MNIST_DIR)
    path = tmp_path_factory.mktemp("data") / "mnist_320.npz"
    np.savez(path, x=splits.train.x[:320].numpy(), y=splits.train.y[:320].numpy(),
             x_test=splits.test.x[:64].numpy(), y_test=splits.test.y[:64].numpy())
    return path


@pytest.fixture(scope="session")
def cli_server():
    server = CliServer()
    yield server
    server.close()
