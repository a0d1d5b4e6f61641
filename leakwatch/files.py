"""Every file leakwatch writes is written whole: to a temporary file beside it, then renamed.

A reader (a master reading its workers' reports, `leakwatch run` reading the report of a
process killed mid-write, a user tailing a graph) sees the old file or the new one, never
half of one.
"""

from __future__ import annotations

import os

TMP_SUFFIX = ".tmp"


def write_atomically(path: str, data: str | bytes) -> None:
    """Replace `path` with `data` in one rename; raises OSError (and leaves no temporary file)."""
    tmp = f"{path}.{os.getpid()}{TMP_SUFFIX}"
    try:
        if isinstance(data, bytes):
            with open(tmp, "wb") as f:
                f.write(data)
        else:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(data)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
