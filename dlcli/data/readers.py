"""Readers of single data files, public: the training loaders (`dlcli.data._sources`) and
`dlcli predict` read images, .npz archives and CSV tables through the same code, so a
sample is the same bits, and a file is refused with the same message, either way."""

from dlcli.data._sources import (IMAGE_EXTENSIONS, CsvTable, check_finite, npz_inputs, open_npz,
                                 read_image_files, read_npz_arrays)

__all__ = ["IMAGE_EXTENSIONS", "CsvTable", "check_finite", "npz_inputs", "open_npz", "read_image_files",
           "read_npz_arrays"]
