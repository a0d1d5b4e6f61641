"""What counts as leakwatch's own code: one definition that every probe uses.

The census leaves out leakwatch's own types, and allocation sites leave out leakwatch's own
files, so that the watcher never suspects itself. Everything in the `leakwatch` package is
leakwatch's own except the demo service, which plays the application in `leakwatch demo`.
"""

from __future__ import annotations

import os

PACKAGE = "leakwatch"
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
# Modules of the package that play the application, left visible on purpose.
APPLICATION_MODULES = frozenset({"leakwatch.demo"})
_APPLICATION_FILES = frozenset({os.path.join(PACKAGE_DIR, "demo.py")})
_PREFIX = PACKAGE + "."
_DIR_PREFIX = PACKAGE_DIR + os.sep


def is_own_module(name: object) -> bool:
    """Whether a module name (a type's `__module__`) is leakwatch's own."""
    return isinstance(name, str) and (name == PACKAGE or name.startswith(_PREFIX)) and name not in APPLICATION_MODULES


def is_own_file(filename: str) -> bool:
    """Whether a source file (as tracemalloc names it) is leakwatch's own."""
    return filename.startswith(_DIR_PREFIX) and filename not in _APPLICATION_FILES
