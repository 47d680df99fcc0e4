"""Every file npvae writes goes through ``atomic_write``: checkpoints, histories, figures...

    files.atomic_write(path, lambda f: f.write(data))   write to a temporary file beside
                                                        ``path``, fsync, then rename over it
    files.write_json(path, obj)                         the same, for indented JSON

A reader of ``path`` sees either the old file or the whole new one, never a part: a full disk,
a file-size limit (``ulimit -f``), Ctrl-C or ``kill -9`` in the middle of a write leaves the
previous file as it was. A failed write raises WriteError, naming the file, what went wrong
and the fix, in words ("no space left on the device"), never the temporary file's name.
"""

import errno
import glob
import json
import os
import secrets
from pathlib import Path

import numpy as np

from ..core.errors import NpvaeError


class WriteError(NpvaeError, OSError):
    """A file could not be written (disk full, file too large, read-only, no permission); the
    previous version of the file is kept. ``path`` is the file, ``errno`` the cause."""

    def __init__(self, message, path=None, code=None):
        super().__init__(message)
        self.path, self.code = path, code

    def __str__(self):
        return self.args[0]


# What a failed write means, and what fixes it, for the causes a user can do something about.
CAUSES = {
    errno.ENOSPC: ("no space left on the device", "free some space (or write elsewhere)"),
    errno.EFBIG: ("the file is larger than this process may write (the file-size limit, "
                  "ulimit -f)", "raise the limit (ulimit -f unlimited) or write elsewhere"),
    errno.EDQUOT: ("the disk quota is exceeded", "free some space (or write elsewhere)"),
    errno.EROFS: ("the file system is read-only", "write to another folder"),
    errno.EACCES: ("permission denied", "write to a folder you own"),
    errno.EPERM: ("permission denied", "write to a folder you own"),
}


def reason(exc):
    """(what went wrong, the fix) for the OSError ``exc``, in words."""
    return CAUSES.get(exc.errno, (exc.strerror or str(exc), "check the folder and try again"))


def atomic_write(path, write):
    """Call ``write(file)`` on a temporary file next to ``path``, then move it into place.

    The data is flushed and fsynced before ``os.replace``, which swaps the file in one step. On
    any failure (Ctrl-C included) the temporary file is removed and ``path`` is untouched; an
    OSError becomes a WriteError naming ``path``. Returns ``path`` as a Path.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_tmp(path)
        tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    except OSError as exc:
        raise _write_error(path, exc) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, WriteError):
            raise _write_error(path, exc) from exc
        raise
    _fsync_folder(path.parent)  # make the rename itself durable
    return path


def _write_error(path, exc):
    what, fix = reason(exc)
    kept = "the previous version is kept" if path.exists() else "nothing was written"
    return WriteError(f"cannot write {path}: {what}; {kept}. Fix: {fix}.", path, exc.errno)


def write_json(path, obj):
    """Write ``obj`` as indented JSON to ``path``, atomically. NaN and infinity are written as
    JSON's NaN and Infinity (Python reads them back)."""
    text = json.dumps(obj, indent=1, default=to_builtin) + "\n"
    return atomic_write(path, lambda f: f.write(text.encode()))


def to_builtin(obj):
    """JSON fallback: numpy arrays and scalars (e.g. in an MT19937 state) to Python values,
    paths to text."""
    if isinstance(obj, (np.ndarray, np.generic)):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store a {type(obj).__name__} in JSON")


def _remove_stale_tmp(path):
    """Delete the temporary files that an interrupted write of ``path`` left (``kill -9`` in
    mid-write): those named ``.<name>.<pid>.<hex>.tmp`` whose process no longer runs."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:].split(".")[0]
        if pid.isdigit() and not _running(int(pid)):
            tmp.unlink(missing_ok=True)


def _running(pid):
    """True if a process with this pid exists (or may: one we cannot signal)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def _fsync_folder(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open a folder; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
