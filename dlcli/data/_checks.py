"""Data problems tied to the config key they are about. The loaders raise them (`about_key`);
`dlcli validate`'s look at the data, each source's declared `inspect`, gathers them (`Found`):
files and folders there, CSV headers and first rows, .npz array headers, class folders, never a
whole data set, in the words the loaders use (the same functions, on less of the file), so
validate and train say the same thing.
"""

from __future__ import annotations

import contextlib

from dlcli.errors import DataError, shorten


@contextlib.contextmanager
def about_key(key: str | tuple):
    """DataErrors raised inside are about config key `key` (`"test_path"`: data.test_path),
    unless they name one already; `dlcli.data.prepare.load_splits` gives the rest data.path."""
    try:
        yield
    except DataError as err:
        raise err.at_key(("data", key) if isinstance(key, str) else key)


class Found:
    """Problems gathered check by check: a DataError inside `about(key)` is one, and the checks
    after it still run. `problems`: [(config key, message)], as `inspect` returns them."""

    def __init__(self):
        self.problems: list[tuple[tuple, str]] = []

    @contextlib.contextmanager
    def about(self, key: str | tuple):
        key = ("data", key) if isinstance(key, str) else key
        try:
            yield
        except DataError as err:
            self.add(err.key or key, str(err))
        except OSError as err:  # a folder that cannot be listed, a name too long for the file system
            self.add(key, f"{shorten(str(err.filename), 300)}: cannot read: {err.strerror}")

    def add(self, key: tuple, message: str) -> None:
        self.problems.append((tuple(key), message))
