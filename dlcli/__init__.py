"""dlcli: train deep-learning models from one YAML file.

The package is importable without torch: the config package, the registry
declarations and the CLI's help answer at once; torch is imported only where a
model is built or trained.
"""

__version__ = "0.1.0"
