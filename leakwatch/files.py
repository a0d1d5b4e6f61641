"""Every file leakwatch writes or reads back, handled safely.

Writing: whole, to a temporary file beside the target, then renamed over it. A reader (a
master reading its workers' reports, `leakwatch run` reading the report of a process killed
mid-write, a user tailing a graph) sees the old file or the new one, never half of one. The
temporary file is created anew with `O_EXCL` under a name nobody can predict (`mkstemp`), so a
link planted beside the target is never followed; it is readable by the owner only (0600):
reports and graphs name the application's types, files and lines. A failed write leaves
nothing behind.

Reading a file someone else may put there (a graph request): never through a symbolic link,
only a regular file, and at most a few bytes of it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile

TMP_SUFFIX = ".tmp"
FILE_MODE = 0o600


def write_atomically(path: str, data: str | bytes) -> None:
    """Replace `path` with `data` in one rename; raises OSError (and leaves no temporary file)."""
    directory, name = os.path.split(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=TMP_SUFFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            fd = -1  # the file closes it now
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_small(path: str, limit: int) -> bytes:
    """At most `limit` bytes of the regular file `path`, never through a symbolic link.
    Raises OSError (ELOOP for a link, EINVAL for anything but a regular file)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(22, "not a regular file", path)
        return os.read(fd, limit)
    finally:
        os.close(fd)
