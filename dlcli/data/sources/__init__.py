"""The data sources, one module each: its DATASETS entry (arguments and facts, see
`dlcli.data.datasets`), its loader, its `inspect` for `dlcli validate`, and how it reads
other files for `evaluate --data` and `predict`. Generic code asks these declarations,
never a source's name. Importing this package registers them all (no torch, no numpy:
each module imports those when it reads data), in the order `dlcli list datasets` shows.
"""

from dlcli.data.sources import mnist, torchvision, npz, csv, image_folder  # noqa: F401  (registers, in order)
