"""How much memory data may take: the probe (dlcli.memory's) and the budget the loaders, the
image streaming and the evaluation of other data share, so all of them refuse (or stream) by the
same numbers. No torch here: the image folder's declaration quotes IN_MEMORY_FRACTION."""

from __future__ import annotations

from dlcli.memory import available_memory  # the probe; read through this module (tests patch it here)

# data.in_memory auto holds decoded images in memory while their uint8 tensor takes at most this
# fraction of the available memory: preparing them briefly needs about two copies (the validation
# split is gathered; batches for a GPU are pinned), and training needs the rest.
IN_MEMORY_FRACTION = 0.25


def holds_in_memory(in_memory, nbytes: int) -> bool:
    """data.in_memory (true, false or "auto") for images whose uint8 tensor takes `nbytes`."""
    if in_memory != "auto":
        return bool(in_memory)
    available = available_memory()
    return available is None or nbytes <= IN_MEMORY_FRACTION * available
