"""Layer families. Importing this package registers every layer (without torch)."""

from dlcli.layers._registry import (CHANNELS_FIRST, CHANNELS_FIRST_2D, KEEPS_LAYOUT, LAYERS, PERMUTES, RECURRENT,
                                   SEQUENCE, ShapeError, final_activation, fmt_shape, reads_channels)
from dlcli.layers import conv, core, normalization, pool, recurrent  # noqa: F401  (registers)

__all__ = ["LAYERS", "ShapeError", "final_activation", "fmt_shape", "SEQUENCE", "RECURRENT", "KEEPS_LAYOUT",
           "CHANNELS_FIRST", "CHANNELS_FIRST_2D", "PERMUTES", "reads_channels"]
