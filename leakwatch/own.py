"""What counts as leakwatch's own code: one definition that every probe uses.

The census leaves out leakwatch's own types, and allocation sites leave out leakwatch's own
files, so that the watcher never suspects itself. Everything in the `leakwatch` package is
leakwatch's own except the demo service, which plays the application in `leakwatch demo`.
So is pympler, which leakwatch runs on its own account to size suspects (`refgraph.retained`):
its caches of type definitions grow as it meets new types, and would otherwise show up as
growth of the application's.
"""

from __future__ import annotations

import importlib.util
import os

PACKAGE = "leakwatch"
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
# Modules of the package that play the application, left visible on purpose.
APPLICATION_MODULES = frozenset({"leakwatch.demo"})
_APPLICATION_FILES = frozenset({os.path.join(PACKAGE_DIR, "demo.py")})
# Packages leakwatch runs on its own account: their objects and allocations are leakwatch's.
BORROWED = ("pympler",)
_ROOTS = frozenset((PACKAGE, *BORROWED))
_PREFIXES = tuple(f"{name}." for name in _ROOTS)


def _package_dir(name: str) -> str | None:
    spec = importlib.util.find_spec(name)
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    return os.path.join(os.path.abspath(locations[0]), "") if locations else None


_DIR_PREFIXES = tuple(d for d in (os.path.join(PACKAGE_DIR, ""), *map(_package_dir, BORROWED)) if d)


def is_own_module(name: object) -> bool:
    """Whether a module name (a type's `__module__`) is leakwatch's own, or a package's it runs."""
    return (
        isinstance(name, str)
        and (name in _ROOTS or name.startswith(_PREFIXES))
        and name not in APPLICATION_MODULES
    )


def is_own_file(filename: str) -> bool:
    """Whether a source file (as tracemalloc names it) is leakwatch's own, or a package's it runs."""
    return filename.startswith(_DIR_PREFIXES) and filename not in _APPLICATION_FILES
