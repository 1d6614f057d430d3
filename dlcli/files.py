"""Files dlcli writes and reads: atomic writes that never follow a link, regular-file checks,
the process umask, temporary files a killed write left, and what a file given in the wrong
place looks like (for messages). No torch, no other dlcli module: everything may import it."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
import zipfile
from pathlib import Path


def _proc_umask() -> int | None:
    """The umask as Linux shows it (/proc/self/status, kernel 4.7+), read without changing it."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _umask_by_setting_it() -> int:
    """Elsewhere os.umask must set the umask to read it, and threads creating files meanwhile
    would get the wrong mode: so it is done once, while this module is imported."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK_AT_IMPORT = _proc_umask()
if _UMASK_AT_IMPORT is None:
    _UMASK_AT_IMPORT = _umask_by_setting_it()


def current_umask() -> int:
    """The process umask: as it is now where Linux shows it, else as it was at import."""
    mask = _proc_umask()
    return _UMASK_AT_IMPORT if mask is None else mask


TEMPORARY_MARK = ".dlcli-"  # in the temporary file's name: .<name>.dlcli-<random>.tmp


LEGACY_RANDOM = "[a-z0-9_]" * 8  # mkstemp's random part: .<name>.<random>.tmp, the names dlcli gave before TEMPORARY_MARK


def temporary_files(path: Path, legacy: bool = False) -> list[Path]:
    """The temporary files that atomic writes of `path` left behind (a killed process). `legacy`:
    also those of dlcli before TEMPORARY_MARK, which carry no mark (pass it only for a name that
    nothing but dlcli writes)."""
    import glob

    path = Path(path)
    name = glob.escape(path.name)
    patterns = [f".{name}{TEMPORARY_MARK}*.tmp"] + ([f".{name}.{LEGACY_RANDOM}.tmp"] if legacy else [])
    return sorted({temp for pattern in patterns for temp in path.parent.glob(pattern)})


# Files dlcli writes are regular files of their own: a run directory received from someone
# else may hold a symbolic link (RUN/.lock -> ~/.bashrc), a hard link or a FIFO where a record
# should be, and writing through it would change a file elsewhere (or hang). Such a target is
# refused with an OSError whose strerror says what it is; the writers' messages name the path.
_NOT_FOLLOWED = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) \
    | getattr(os, "O_CLOEXEC", 0)
_LINK_REFUSED = "it is a symbolic link, and dlcli never writes through a link; remove the link (a run copied " \
                "from elsewhere?) and try again"


def _not_regular(mode: int) -> str | None:
    """Why a file of st_mode `mode` is no place to write, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return _LINK_REFUSED
    kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else
            "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else
            "not a regular file")
    return f"it is {kind}, not a regular file; dlcli writes only regular files there"


def refuse_irregular_target(path: Path) -> None:
    """An OSError when `path` exists as anything but a regular file (a symbolic link, a FIFO, a
    directory...): an atomic write would replace it, and dlcli replaces only its own files."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    why = _not_regular(mode)
    if why is not None:
        raise OSError(errno.EEXIST, why, str(path))


def open_regular_file(path: Path, flags: int, mode: int = 0o666) -> int:
    """`os.open(path, flags)` for a file written in place (the run lock, an appended log):
    without following a symbolic link (O_NOFOLLOW) or blocking on a FIFO, and refusing with an
    OSError anything but a regular file with a single link (a hard link would write through to
    the file it shares its data with)."""
    try:
        fd = os.open(path, flags | _NOT_FOLLOWED, mode)
    except OSError:
        refuse_irregular_target(path)  # O_NOFOLLOW's ELOOP, a FIFO's ENXIO without a reader: say what it is
        raise
    try:
        info = os.fstat(fd)
        why = _not_regular(info.st_mode)
        if why is None and info.st_nlink > 1:
            why = (f"it is a hard link ({info.st_nlink} names for one file), and writing it would change the "
                   f"other names too; remove it (a run copied from elsewhere?) and try again")
        if why is not None:
            raise OSError(errno.EEXIST, why, str(path))
        if not hasattr(os, "O_NOFOLLOW") and os.path.islink(path):  # Windows: checked after opening
            raise OSError(errno.ELOOP, _LINK_REFUSED, str(path))
        return fd
    except BaseException:
        os.close(fd)
        raise


def atomic_write_bytes(path: Path, write) -> None:
    """Write through `write(file)` to a temporary file in the same directory,
    flush and fsync it, then rename it over `path`: a crash at any moment leaves
    the old file or the new one, never a torn one. A `path` that is not a regular file
    (a symbolic link, a FIFO...) is refused: an OSError naming it.

    The file gets the mode `open(path, "w")` would give it: an existing file keeps its
    own, a new one gets 0o666 minus the umask (mkstemp alone makes every file 0o600)."""
    path = Path(path)
    refuse_irregular_target(path)
    try:
        mode = stat.S_IMODE(os.lstat(path).st_mode)
    except OSError:  # no such file yet
        mode = 0o666 & ~current_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TEMPORARY_MARK}", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # not on Windows before Python 3.13
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass



def file_kind(path: Path) -> str | None:
    """What a file given where a checkpoint or a config was expected looks like (TorchScript,
    torch file, ONNX, YAML, other text), for the message; None when it says nothing."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
            if any("/code/" in name or name.endswith("/constants.pkl") for name in names):
                return "a TorchScript export (dlcli export; load it with torch.jit.load)"
            return "a torch file" if any(name.endswith("/data.pkl") for name in names) else "a zip archive"
        with open(path, "rb") as file:
            head = file.read(4096)
    except (OSError, zipfile.BadZipFile):
        return None
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return "an ONNX export (dlcli export; run it with onnxruntime)"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 3:  # not a character cut by the 4096-byte read
            return None
    if b"\0" in head or not head:
        return None
    return {".yaml": "a YAML file (a config?)", ".yml": "a YAML file (a config?)", ".json": "a JSON file",
            ".csv": "a CSV file"}.get(suffix, "a text file")
