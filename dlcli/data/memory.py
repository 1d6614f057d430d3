"""How much memory data may take: the probe the loaders, the image streaming and the
evaluation of other data share, so all of them refuse (or stream) by the same numbers.
No torch here: the image folder's declaration quotes IN_MEMORY_FRACTION."""

from __future__ import annotations

from pathlib import Path

# data.in_memory auto holds decoded images in memory while their uint8 tensor takes at most this
# fraction of the available memory: preparing them briefly needs about two copies (the validation
# split is gathered; batches for a GPU are pinned), and training needs the rest.
IN_MEMORY_FRACTION = 0.25


def available_memory() -> int | None:
    """Bytes of memory this process may still use: the kernel's MemAvailable, capped by a
    cgroup (container) limit; None when neither can be read."""
    found = []
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text(encoding="ascii").strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text(encoding="ascii"))
            found.append(max(int(limit) - used, 0))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def holds_in_memory(in_memory, nbytes: int) -> bool:
    """data.in_memory (true, false or "auto") for images whose uint8 tensor takes `nbytes`."""
    if in_memory != "auto":
        return bool(in_memory)
    available = available_memory()
    return available is None or nbytes <= IN_MEMORY_FRACTION * available
