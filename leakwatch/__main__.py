"""`python -m leakwatch` is the `leakwatch` command."""

from __future__ import annotations

import sys

from leakwatch.cli import main

if __name__ == "__main__":
    sys.exit(main())
